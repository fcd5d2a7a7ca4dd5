"""The lifecycles declared in rules/*.toml, and the loader's validation
(processor.lifecycles), in process: no servers, no store."""
from __future__ import annotations

import tomllib

import pytest

from processor.directory import ROLES
from processor.lifecycles import Lifecycles, parse
from processor.rules.engine import load_rules
from processor.workflows import ACTIONS
from support import ROOT

SHIPPED = load_rules(ROOT / "rules", set(ACTIONS)).lifecycles
KINDS = ["report", "followup", "complaint", "workorder", "project", "improvement", "bug", "support_record", "document", "implementation", "confirmation"]


def test_every_record_kind_has_one_lifecycle_with_its_prefix_and_label():
    assert sorted(lc.kind for lc in SHIPPED) == sorted(KINDS)
    assert {lc.kind: lc.prefix for lc in SHIPPED} == {
        "report": "HB", "complaint": "TS", "followup": "GJ", "workorder": "GD", "project": "LX",
        "improvement": "GJSQ", "bug": "BUG", "support_record": "ZC", "document": "WD", "implementation": "SS", "confirmation": "QR"}
    assert SHIPPED.label("workorder") == "故障处理工作单" and SHIPPED.label("followup") == "遗留问题跟进单"
    assert len({lc.prefix for lc in SHIPPED}) == len(KINDS)


def test_states_are_grouped_and_named_in_chinese():
    wo = SHIPPED["workorder"]
    assert wo.initial == ("pending_approval",)
    assert wo.final == ("closed", "custom")
    assert wo.name("pending_approval") == "待审批" and wo.name("custom_pending") == "待确认转定制"
    fu = SHIPPED["followup"]
    assert (fu.initial, fu.final, fu.name("open"), fu.reopen) == (("open",), ("closed",), "处理中", "open")
    for kind in ("report", "complaint", "project", "improvement", "bug", "support_record"):
        lc = SHIPPED[kind]
        assert lc.open_states == () and lc.final, f"{kind}: a record complete when made"
    for lc in SHIPPED:
        assert all(name and not name.isascii() for name in lc.states.values()), lc.kind


def _cases():
    for lc in SHIPPED:
        for i, t in enumerate(lc.transitions):
            yield pytest.param(lc.kind, i, id=f"{lc.kind}-{t.command}-{'|'.join(t.sources)}->{t.target}")


@pytest.mark.parametrize("kind,i", list(_cases()))
def test_each_transition_is_allowed_from_its_states_and_refused_from_the_others(kind, i):
    lc = SHIPPED[kind]
    t = lc.transitions[i]
    for state in lc.states:
        found = lc.find(t.command, state, t.target)
        if state in t.sources:
            assert found == t
        else:
            assert found is None or found is not t and state in found.sources


def test_step_owners_come_from_who_and_the_rule_settings():
    wo = SHIPPED["workorder"]
    assert wo.step_owner("pending_approval") == "售前经理"
    assert wo.step_owner("rd_review") == "研发经理"
    assert wo.step_owner("close_requested") == "raiser" and wo.step_owner("custom_pending") == "raiser"
    # [workflows.workorder] approver_roles in the config overlays the rule's settings.
    over = {**wo.settings, "approver_roles": ["技术支持部经理"]}
    assert wo.step_owner("pending_approval", over) == "技术支持部经理"
    assert wo.resolve(("settings.approver_roles", "raiser"), over) == ("技术支持部经理", "raiser")
    assert wo.step_owner("closed") == ""  # only the system (a 回访 score) leaves 已关闭


def test_reopen_is_a_declared_transition_out_of_a_final_state():
    wo = SHIPPED["workorder"]
    t = wo.reopen_transition("closed")
    assert (t.command, t.target, t.who) == ("满意度", "assigned", ("system",))
    assert wo.reopen_transition("custom") is None  # 已转定制 is not reopened by a score
    assert SHIPPED["complaint"].reopen_transition("counted") is None


def test_clocks_are_declared_per_kind():
    wo, fu = SHIPPED["workorder"], SHIPPED["followup"]
    assert wo.clocks.steps == ("pending_approval", "rd_review", "close_requested", "custom_pending")
    assert fu.clocks.start == ("response", "update", "resolution") and fu.clocks.steps == ()
    assert fu.clocks.stop_on_reply == ("response",) and fu.clocks.restart_on_reply == ("update",)
    assert SHIPPED["report"].clocks.start == ()


def test_unknown_kinds_fall_back_to_their_keys():
    empty = Lifecycles()
    assert (empty.label("x"), empty.state_name("x", "open"), empty.is_final("x", "closed")) == ("x", "open", False)


# -- validation -------------------------------------------------------------------

GOOD = """
prefix = "GD"
label = "工单"
reopen = "open"
parties = { raiser = "提出人" }
[states]
initial = { open = "处理中" }
final = { closed = "已关闭" }
[[transitions]]
command = "确认关闭"
from = ["open"]
to = "closed"
who = ["raiser", "settings.approver_roles"]
[[transitions]]
command = "满意度"
from = ["closed"]
to = "open"
who = ["system"]
[clocks]
start = ["response"]
steps = ["open"]
"""


def problems(text: str, settings=None) -> list[tuple[str, str]]:
    lc, probs = parse("wo", tomllib.loads(text), settings=settings or {"approver_roles": ["售前经理"]}, roles=ROLES)
    assert (lc is None) == bool(probs)
    return probs


def test_a_good_table_parses():
    assert problems(GOOD) == []


@pytest.mark.parametrize("old,new,key,reason", [
    ('prefix = "GD"', 'prefix = "gd"', "lifecycle.wo.prefix", "记录编号的前缀"),
    ('label = "工单"', "", "lifecycle.wo.label", "必填：记录类型的中文名称"),
    ("initial = {", "inital = {", "lifecycle.wo.states.inital", "是不是 initial？"),
    ('final = { closed = "已关闭" }', 'active = { closed = "已关闭" }', "lifecycle.wo.states.final",
     "至少要有一个结束状态"),
    ('to = "closed"', 'to = "clossed"', "lifecycle.wo.transitions[0].to", "未声明的状态 'clossed'，是不是 closed？"),
    ('from = ["open"]', 'from = ["opened"]', "lifecycle.wo.transitions[0].from", "未声明的状态 'opened'"),
    ('who = ["raiser", "settings.approver_roles"]', 'who = ["经理"]', "lifecycle.wo.transitions[0].who[0]",
     "既不是通讯录中的角色，也不是本记录的当事人（parties）、owner、system 或 settings.键名：'经理'"),
    ('who = ["raiser", "settings.approver_roles"]', 'who = ["settings.approvers"]',
     "lifecycle.wo.transitions[0].who[0]", "规则的 [settings] 中没有 'approvers'"),
    ('who = ["system"]', "", "lifecycle.wo.transitions[1].who", "必填：谁可以执行"),
    ('reopen = "open"', 'reopen = "closed"', "lifecycle.wo.reopen", "不能是结束状态"),
    ('command = "满意度"', 'command = "满意度"\nguard = 1', "lifecycle.wo.transitions[1].guard", "未知的键"),
    ('start = ["response"]', 'start = ["respond"]', "lifecycle.wo.clocks.start", "未知的计时 'respond'"),
    ('steps = ["open"]', 'steps = ["closed"]', "lifecycle.wo.clocks.steps", "结束状态 'closed' 不计时"),
    ('start = ["response"]', 'start = ["response"]\nstop_on_reply = ["update"]', "lifecycle.wo.clocks.stop_on_reply",
     "计时 'update' 没有写在 start 中"),
    ('start = ["response"]', 'start = ["response"]\nstop_on_reply = ["response"]\nrestart_on_reply = ["response"]',
     "lifecycle.wo.clocks.restart_on_reply", "回复要么停止它，要么重新计时"),
    ('prefix = "GD"', 'prefx = "GD"', "lifecycle.wo.prefx", "是不是 prefix？"),
])
def test_validation_names_the_key_and_the_reason_in_chinese(old, new, key, reason):
    assert old in GOOD
    probs = problems(GOOD.replace(old, new, 1))
    assert any(k == key and reason in r for k, r in probs), probs


def test_a_state_in_two_groups_and_conflicting_transitions_are_refused():
    probs = problems(GOOD.replace('final = { closed = "已关闭" }', 'final = { closed = "已关闭", open = "开" }'))
    assert ("lifecycle.wo.states.final.open", "状态 'open' 已在 initial 组中声明，每个状态只能属于一组") in probs
    twice = GOOD.replace("[[transitions]]\ncommand = \"满意度\"",
                         "[[transitions]]\ncommand = \"确认关闭\"\nfrom = [\"open\"]\nto = \"open\"\nwho = [\"raiser\"]\n"
                         "[[transitions]]\ncommand = \"满意度\"", 1)
    assert any(k == "lifecycle.wo.transitions[1]" and "同一命令“确认关闭”从同一状态" in r for k, r in problems(twice))


def test_reopen_needs_a_declared_way_back():
    text = GOOD.replace('command = "满意度"\nfrom = ["closed"]\nto = "open"', 'command = "撤回"\nfrom = ["open"]\nto = "closed"')
    assert any(k == "lifecycle.wo.reopen" and "没有从结束状态到 'open' 的转换" in r for k, r in problems(text))


def test_check_refuses_a_bad_lifecycle_in_a_rule_file_naming_file_key_and_reason(tmp_path, capsys):
    import shutil

    from support import run, write_config

    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    wo = (rules / "workorder.toml").read_text(encoding="utf-8")
    wo = wo.replace('who = ["settings.approver_roles"]\neffect = "approve"', 'who = ["售前径理"]\neffect = "approve"', 1)
    wo = wo.replace('final = { closed = "已关闭", custom = "已转定制" }', 'final = { closed = "已关闭" }', 1)
    (rules / "workorder.toml").write_text(wo, encoding="utf-8")
    cr = (rules / "customer_report.toml").read_text(encoding="utf-8")
    (rules / "customer_report.toml").write_text(cr.replace('prefix = "GJ"', 'prefix = "HB"\nprefix_ = "GJ"', 1),
                                                encoding="utf-8")
    cfg = write_config(tmp_path, rules_dir=rules)
    assert run(cfg, "check") == 1
    err = capsys.readouterr().err
    f = rules / "workorder.toml"
    assert (f"{f}: lifecycle.workorder.transitions[0].who[0]: 既不是通讯录中的角色，也不是本记录的当事人（parties）、"
            "owner、system 或 settings.键名：'售前径理'，是不是 售前经理？") in err
    assert f"{f}: lifecycle.workorder.transitions[9].to: 未声明的状态 'custom'" in err
    g = rules / "customer_report.toml"
    assert f"{g}: lifecycle.followup.prefix_: 未知的键（拼写错误？）：是不是 prefix？" in err
    # The same kind declared twice, or two kinds sharing a number prefix, are refused too.
    (rules / "extra.toml").write_text(
        'name = "extra"\n[match]\nsubject = "^x"\n[do]\naction = "acknowledge"\n'
        '[lifecycle.bug]\nprefix = "BG"\nlabel = "重复"\n[lifecycle.bug.states]\nfinal = { done = "完成" }\n',
        encoding="utf-8")
    (rules / "customer_report.toml").write_text(cr.replace('prefix = "GJ"', 'prefix = "HB"', 1), encoding="utf-8")
    assert run(cfg, "check") == 1
    err = capsys.readouterr().err
    assert f"{rules / 'extra.toml'}: lifecycle.bug: 记录类型 'bug' 的生命周期已在 {rules / 'bug.toml'} 中声明" in err
    assert f"{g}: lifecycle.followup.prefix: 编号前缀 'HB' 已被" in err


def test_check_refuses_a_rule_whose_records_have_no_lifecycle(tmp_path, capsys):
    """An old rules folder without [lifecycle] tables is refused at load time
    (not when the first mail tries to open a record)."""
    import shutil

    from support import run, write_config

    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    c = (rules / "complaint.toml").read_text(encoding="utf-8")
    (rules / "complaint.toml").write_text(c[:c.index("[lifecycle.complaint]")], encoding="utf-8")
    assert run(write_config(tmp_path, rules_dir=rules), "check") == 1
    err = capsys.readouterr().err
    assert (f"{rules / 'complaint.toml'}: lifecycle: 动作 'record_complaint' 会建立“complaint”记录，"
            "但没有规则文件声明它的生命周期：请加上 [lifecycle.complaint]") in err


def test_sla_warns_of_profile_states_no_lifecycle_times(tmp_path):
    from processor.config import load_config
    from processor.sla import Sla
    from support import write_config

    cfg = load_config(write_config(tmp_path, extra="""
[sla]
[[sla.profiles]]
name = "workorder"
steps = { pending_approval = "4h", assigend = "1d" }
pause_states = ["custom_pending", "closed"]
"""))
    assert Sla(cfg).state_warnings() == []  # no lifecycles: nothing to compare with
    warnings = Sla(cfg, SHIPPED).state_warnings()
    assert warnings == [
        "警告：时限方案 workorder 的 steps 中的状态 'assigend' 不是任何记录生命周期中的计时环节"
        "（[lifecycle.<记录类型>.clocks] steps），不会计时",
        "警告：时限方案 workorder 的 pause_states 中的状态 'closed' 不是任何记录生命周期中未结束的状态，不会暂停计时"]
    assert Sla(load_config(write_config(tmp_path / "default")), SHIPPED).state_warnings() == []


def test_settings_roles_come_from_the_rule_overlaid_by_the_config():
    wo = SHIPPED["workorder"]
    step = wo.find("同意", "pending_approval")
    assert wo.resolve(step.who, wo.settings_in({})) == ("售前经理",)
    overlaid = wo.settings_in({wo.rule: {"approver_roles": ["技术支持部经理"]}, "other": {"approver_roles": ["x"]}})
    assert wo.resolve(step.who, overlaid) == ("技术支持部经理",)
    assert wo.step_owner("pending_approval", overlaid) == "技术支持部经理"
    assert wo.settings["approver_roles"] != overlaid["approver_roles"]  # the declared settings are left alone
