"""Templates render in strict mode against the variables their callers pass:
``check`` catches a misspelt variable, attribute or filter and a syntax error
before any mail arrives, one Chinese line each. That the callers really pass
the declared variables is checked on every render of every test (the recorder
in conftest.py); the scans below check what no test run can see."""
from __future__ import annotations

import re
import shutil

import pytest

from processor import template_contexts as tc
from support import ROOT, run, write_config

WORKFLOWS = ROOT / "processor" / "workflows"


@pytest.fixture
def tpl(tmp_path):
    d = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", d)
    return d


def edit(path, old, new):
    src = path.read_text(encoding="utf-8")
    assert old in src, old
    path.write_text(src.replace(old, new, 1), encoding="utf-8")


def check(tmp_path, capsys, tpl, **kw) -> tuple[int, list[str]]:
    code = run(write_config(tmp_path, templates_dir=tpl, **kw), "check")
    out = capsys.readouterr()
    return code, (out.out + out.err).splitlines()


def test_shipped_templates_have_no_problems():
    assert tc.template_problems(ROOT / "templates", ROOT / "rules") == []


def test_every_shipped_template_is_declared_and_every_declared_one_is_shipped():
    shipped = {p.name.removesuffix(".txt.j2") for p in (ROOT / "templates").glob("*.txt.j2")}
    assert shipped == set(tc.CONTEXTS)


def test_check_names_an_undefined_variable_with_the_fix(tmp_path, capsys, tpl):
    edit(tpl / "too_large.txt.j2", "{{ (size / 1048576)", "{{ (sise / 1048576)")
    code, lines = check(tmp_path, capsys, tpl)
    assert code == 1
    assert (f"  {tpl / 'too_large.txt.j2'}: 第 5 行: 模板使用了未定义的变量 sise，是不是 size？"
            "这个模板可用的变量：limit、size、subject、system") in lines


def test_check_finds_an_undefined_variable_in_a_branch_the_samples_do_not_take(tmp_path, capsys, tpl):
    edit(tpl / "survey_thanks.txt.j2", "{% elif low %}", "{% elif low and reopend %}")
    code, lines = check(tmp_path, capsys, tpl)
    assert code == 1
    [line] = [l for l in lines if "survey_thanks" in l]
    assert line.startswith(f"  {tpl / 'survey_thanks.txt.j2'}: 第 14 行: 模板使用了未定义的变量 reopend，是不是 reopened？"
                           "这个模板可用的变量：comment、engineer、kind_name、low、")


def test_check_names_a_misspelt_attribute(tmp_path, capsys, tpl):
    edit(tpl / "command_denied.txt.j2", "记录 {{ ticket.number }}（", "记录 {{ ticket.numbr }}（")
    code, lines = check(tmp_path, capsys, tpl)
    assert code == 1
    assert (f"  {tpl / 'command_denied.txt.j2'}: 第 5 行: 模板使用了 ticket.numbr，但 ticket 没有 numbr 这一项，可用的有："
            "closed_at、data、due_at、id、kind、number、opened_at、opened_by_message、owner、project、state、token"
            in lines), lines


def test_check_names_a_misspelt_key_of_a_dict_with_the_keys(tmp_path, capsys, tpl):
    edit(tpl / "lixiang_ack.txt.j2", "{{ values.customer }}", "{{ values.custome }}")
    code, lines = check(tmp_path, capsys, tpl)
    assert code == 1
    assert (f"  {tpl / 'lixiang_ack.txt.j2'}: 第 8 行: 模板使用了 values.custome，但 values 没有 custome 这一项，"
            "可用的有：content、customer、name、presales1、presales2、sales") in lines, lines


def test_check_names_an_unknown_filter_even_in_a_branch_not_taken(tmp_path, capsys, tpl):
    edit(tpl / "bug_ack.txt.j2", '{{ added_cc | join("、") }}', '{{ added_cc | joint("、") }}')
    code, lines = check(tmp_path, capsys, tpl)
    assert code == 1
    assert f"  {tpl / 'bug_ack.txt.j2'}: 第 19 行: 模板使用了未知的过滤器 joint；是不是 join？" in lines, lines


def test_check_explains_a_syntax_error_with_its_line(tmp_path, capsys, tpl):
    edit(tpl / "ping_ack.txt.j2", "{{ rule.description }}", "{{ rule.description }")
    edit(tpl / "report_not_counted.txt.j2", "本邮件已登记", "{% if roles %}本邮件已登记")
    code, lines = check(tmp_path, capsys, tpl)
    assert code == 1
    assert f"  {tpl / 'ping_ack.txt.j2'}: 第 7 行: 模板语法错误：这里多了 “}}”：{{{{ }}}} 和 {{% %}} 要成对" in lines, lines
    assert (f"  {tpl / 'report_not_counted.txt.j2'}: 第 11 行: 模板语法错误：{{% if %}} 没有对应的 {{% endif %}}，请补上"
            in lines), lines
    # One line per problem: a template that does not parse is not rendered too.
    assert len([l for l in lines if "ping_ack" in l]) == 1


def test_check_reports_an_unused_template_and_a_missing_one(tmp_path, capsys, tpl):
    (tpl / "sla_digest.txt.j2").rename(tpl / "sla_digests.txt.j2")
    code, lines = check(tmp_path, capsys, tpl)
    assert code == 1
    assert any(l.startswith(f"  {tpl / 'sla_digest.txt.j2'}: -: 缺少这个模板：系统会用它发邮件。"
                            "请从程序自带的 templates/ 中复制 sla_digest.txt.j2；可用的变量：count、greeting、items、now、system")
               for l in lines), lines
    assert (f"  {tpl / 'sla_digests.txt.j2'}: -: 系统不会用到这个模板（没有声明它的变量，也没有规则在 [do.templates] 中引用它）："
            "如果是为某条规则新写的模板，请在该规则的 [do.templates] 中写上 用途 = \"sla_digests\"；否则删除这个文件") in lines


def test_a_template_a_rule_names_gets_the_variables_of_that_purpose(tmp_path, capsys, tpl):
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    edit(rules / "customer_report.toml", 'ack = "report_ack"', 'ack = "our_report_ack"')
    shutil.copy(tpl / "report_ack.txt.j2", tpl / "our_report_ack.txt.j2")
    code, lines = check(tmp_path, capsys, tpl, rules_dir=rules)
    assert code == 0, lines
    edit(tpl / "our_report_ack.txt.j2", "{{ owner_name }}", "{{ owner }}")
    code, lines = check(tmp_path, capsys, tpl, rules_dir=rules)
    assert code == 1
    assert any(l.startswith(f"  {tpl / 'our_report_ack.txt.j2'}: 第 5 行: 模板使用了未定义的变量 owner，") for l in lines), lines


def test_mismatch_names_what_a_caller_adds_or_leaves_out():
    passed = tc.CONTEXTS["too_large"].names - {"limit"} | {"limits"}
    assert tc.mismatch("too_large", passed) == ({"limits"}, {"limit"})
    # A variable some callers leave out (ABSENT in a variant) may be missing, no other.
    assert tc.mismatch("lixiang_not_allowed", tc.CONTEXTS["lixiang_not_allowed"].names - {"roles"}) == (set(), set())
    assert tc.mismatch("lixiang_not_allowed", tc.CONTEXTS["lixiang_not_allowed"].names - {"reason"}) == (set(), {"reason"})


def _template_calls() -> list[tuple[str, str, str]]:
    """(file, role, default) of every `template("role", "default")` a
    workflow makes (ctx.template, followup.answer, lixiang._template...)."""
    pat = re.compile(r'(?:template|answer|tpl)\((?:ctx, )?"(\w+)", f?"(\w+|complaint_\{tpl\})"')
    out = []
    for p in sorted(WORKFLOWS.glob("*.py")):
        out += [(p.stem, role, default) for role, default in pat.findall(p.read_text(encoding="utf-8"))]
    return out


def test_default_template_is_what_the_workflows_use():
    action_of = {"report": "record_report", "followup": "record_report", "ping": "acknowledge"}
    calls = _template_calls()
    assert len(calls) > 50
    for stem, role, default in calls:
        if default == "complaint_{tpl}":
            continue
        action = action_of.get(stem, f"record_{stem}")
        assert tc.default_template(action, role) == default, (stem, role, default)
    assert tc.default_template("record_complaint", "penalty") == "complaint_penalty"


def test_every_template_name_in_the_code_is_declared():
    """Template names the code sends (workflows, sla, surveys, reports,
    pipeline) all have a declared context; a new one must be declared."""
    names = set()
    for p in (ROOT / "processor").rglob("*.py"):
        src = p.read_text(encoding="utf-8")
        names |= {d for _, d in re.findall(r'(?:template|answer|tpl)\((?:ctx, )?"(\w+)", "(\w+)"', src)}
        names |= set(re.findall(r'Outgoing\(\s*"(\w+)"', src))
        names |= set(re.findall(r'template="(\w+)"', src))
        names |= set(re.findall(r'ctx\.(?:reply|send)\(\s*"(\w+)"', src))
        names |= set(re.findall(r'tpl = "(\w+)" if .* else "(\w+)"', src)[0] if 'tpl = "sla_' in src else ())
        names |= set(re.findall(r'(?:MONTHLY|WEEKLY)_TEMPLATE = "(\w+)"', src))
    assert len(names) > 50
    assert names - set(tc.CONTEXTS) == set()


def test_check_names_a_variable_only_some_callers_pass(tmp_path, capsys, tpl):
    """lixiang_not_allowed gets filed_by only when another salesperson filed
    the project; using it in the other branch fails for those mails."""
    edit(tpl / "lixiang_not_allowed.txt.j2", "系统收到了您的邮件《{{ subject }}》。", "系统收到了您的邮件《{{ subject }}》（{{ filed_by }}）。")
    code, lines = check(tmp_path, capsys, tpl)
    assert code == 1
    assert (f"  {tpl / 'lixiang_not_allowed.txt.j2'}: 第 6 行: 有些邮件不带变量 filed_by（只在某些情况下才有），"
            "请用 {% if filed_by is defined %}…{% endif %} 包住用到它的地方。这个模板可用的变量：filed_by、mail_date、now、"
            "project_name、reason、record、record_number、roles、sender、sender_name、subject、system、ticket、topic") in lines, lines


def test_check_refuses_a_layout_that_reads_a_mails_own_variables(tmp_path, capsys, tpl):
    # The sender lays out a queued mail from its text alone: the layout has
    # its own variables, not those of the template it wraps.
    edit(tpl / "_layout.html.j2", "{{ number }}", "{{ number }}{{ project.name }}")
    code, lines = check(tmp_path, capsys, tpl)
    assert code == 1
    hit = [ln for ln in lines if "_layout.html.j2" in ln and "未定义的变量 project" in ln]
    assert hit and "record_kind" in hit[0] and "system" in hit[0]
