"""templates/messages.toml: the Chinese wording of problems, outcomes and rule
matches, how a message row's outcome renders from it, and what ``check``
reports about it (naming the file and the key). In process: no servers."""
from __future__ import annotations

import re
import shutil

import pytest

from processor.messages import CODES, FILE_NAME, Messages, check, declared, default
from processor.reasons import Problem
from support import ROOT


def test_the_shipped_file_words_every_code_with_known_placeholders():
    assert check(ROOT / "templates") == []


def test_every_code_the_program_uses_is_declared_and_every_declared_code_is_used():
    """Each ctx.decide / ctx.did / Decision / Problem code in the source is in
    CODES, so ``check`` covers it; and CODES lists no code nothing uses."""
    src = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "processor").rglob("*.py"))
    said = set()
    for a, b in re.findall(r'(?:ctx\.(?:decide|did)|Decision)\(\s*"(\w+)"(?:\s+if\s[^"]*?else\s+"(\w+)")?', src):
        said |= {a, b} - {""}
    said |= set(re.findall(r'"(penalty_(?:fired|rebased|revoked))"', src))  # complaint.PENALTY_EVENTS
    said |= set(re.findall(r'\.text\("outcome",\s*"(\w+)"', src))
    problems = set(re.findall(r'Problem\(\s*"(\w+)"', src)) | set(re.findall(r'code="(\w+)"', src))
    assert said - set(CODES["outcome"]) - set(CODES["why"]) == set()
    assert problems - set(CODES["problem"]) == set()
    # Rule.validate's codes are built in one place: each must be produced by it.
    assert set(CODES["problem"]) - problems == set()
    assert (set(CODES["outcome"]) | set(CODES["why"])) - said == set()


def render(code: str, params: dict) -> str:
    return default().outcome(code, params)


def test_an_outcome_renders_with_what_else_was_done_the_problems_and_why():
    params = {"number": "HB2026-0001", "owner": "张三",
              "_also": [{"code": "followup_opened", "params": {"number": "GJ2026-0001"}},
                        {"code": "forwarded_to_sales", "params": {}}],
              "_why": [{"code": "subject_matched", "params": {"rule": "客户沟通汇报邮件", "pattern": "^客户沟通"}},
                       {"code": "sender_has_role", "params": {"roles": ["售前"]}}]}
    assert render("report_accepted", params) == (
        "HB2026-0001：已记入张三的项目跟踪表；已建立遗留问题跟进单 GJ2026-0001；已转发给责任销售"
        "（主题符合“客户沟通汇报邮件”的格式；发件人的角色为 售前）")


def test_a_rejection_lists_each_problem_in_chinese():
    problems = [Problem("missing_field", "method", {"label": "沟通方式"}).as_dict(),
                Problem("not_allowed_value", "result", {"label": "沟通结果", "value": "好",
                                                        "allowed": ["成功", "问题遗留"]}).as_dict()]
    assert render("rejected", {"number": "HB2026-0002", "count": 2, "_problems": problems}) == (
        "HB2026-0002：已退回，2 个问题，已回复说明：缺少“沟通方式”：请写一行“沟通方式：……”。 "
        "“沟通结果”只能填写“成功”或“问题遗留”，而不是“好”。")


def test_a_list_is_joined_and_an_empty_list_says_none():
    assert render("unregistered", {"number": "HB1", "project": "华厦", "candidates": ["华夏银行", "华夏证券"]}) == (
        "HB1：项目“华厦”未立项，不在通讯录中；相近的项目：华夏银行、华夏证券")
    assert render("unregistered", {"number": "HB1", "project": "某某", "candidates": []}).endswith("相近的项目：无")


def test_every_outcome_renders_without_english_or_braces():
    """Every declared code, given its parameters, renders in Chinese with every placeholder filled."""
    wording = default()
    for section, codes in CODES.items():
        for code in codes:
            params = {name: (["甲", "乙"] if is_list else "值") for name, is_list in declared(section, code).items()}
            text = wording.text(section, code, params)
            assert "{" not in text and "}" not in text, (section, code, text)
            words = set(re.findall(r"(?<![A-Za-z])[A-Za-z]{2,}(?![A-Za-z])", text))
            assert words <= {"Message", "ID", "UID", "From", "POC", "bug", "vista", "VRRP"}, (section, code, text)


def copy_templates(tmp_path):
    folder = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", folder)
    return folder, folder / FILE_NAME


def test_check_names_the_file_and_key_of_a_missing_code(tmp_path):
    folder, path = copy_templates(tmp_path)
    path.write_text(re.sub(r"(?m)^report_accepted = .*\n", "", path.read_text(encoding="utf-8")), encoding="utf-8")
    probs = check(folder)
    assert len(probs) == 1, probs
    f, key, reason = probs[0]
    assert (f, key) == (str(path), "outcome.report_accepted")
    assert reason.startswith("缺少这条处理结果的中文文字") and "number、owner" in reason


def test_check_names_a_placeholder_that_is_no_parameter(tmp_path):
    folder, path = copy_templates(tmp_path)
    text = path.read_text(encoding="utf-8").replace('missing_field = "缺少“{label}”', 'missing_field = "缺少“{lable}”')
    path.write_text(text, encoding="utf-8")
    assert check(folder) == [(str(path), "problem.missing_field", "占位符 {lable} 不存在；这条文字可用的参数：label")]


@pytest.mark.parametrize("line, reason", [
    ('too_short = "{label:、}太短"', "只有列表参数可以在冒号后写分隔符，label 不是列表"),
    ('too_short = "{label太短"', "花括号不成对"),
    ('too_short = "{label.upper}太短"', "占位符 {label.upper} 不存在"),
])
def test_check_refuses_bad_placeholders(tmp_path, line, reason):
    folder, path = copy_templates(tmp_path)
    text = re.sub(r"(?m)^too_short = .*$", lambda _m: line, path.read_text(encoding="utf-8"))
    path.write_text(text, encoding="utf-8")
    probs = check(folder)
    assert [(f, k) for f, k, _ in probs] == [(str(path), "problem.too_short")] and reason in probs[0][2], probs


def test_check_reports_an_unknown_code_and_a_missing_file(tmp_path):
    folder, path = copy_templates(tmp_path)
    path.write_text(path.read_text(encoding="utf-8") + 'report_acepted = "拼错了"\n', encoding="utf-8")
    probs = check(folder)
    assert [(f, k) for f, k, _ in probs] == [(str(path), "outcome.report_acepted")]
    assert "系统不会用到这个代码" in probs[0][2]
    path.unlink()
    probs = check(folder)
    assert len(probs) == 1 and probs[0][0] == str(path) and "找不到这个文件" in probs[0][2]


def test_an_admin_edit_is_used_and_a_code_it_lacks_falls_back_to_the_shipped_wording(tmp_path):
    folder, path = copy_templates(tmp_path)
    path.write_text('[outcome]\nreport_accepted = "{number} 收到，进了{owner}的表"\n', encoding="utf-8")
    m = Messages.load(folder)
    assert m.outcome("report_accepted", {"number": "HB1", "owner": "张三"}) == "HB1 收到，进了张三的表"
    assert m.outcome("noted_in_thread", {"number": "HB1"}) == "已记录在 HB1 的会话中"
