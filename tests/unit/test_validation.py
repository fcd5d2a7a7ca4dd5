"""Validation (``Rule.validate``) in process: each problem is data -- a code,
the field it is about and the parameters of its wording -- and renders in
Chinese from templates/messages.toml. No servers, no store."""
from __future__ import annotations

import pytest

from processor.directory import Person
from processor.messages import default
from processor.reasons import Problem
from processor.rules.engine import load_rule
from processor.workflows import ACTIONS

RULE = '''
name = "sample"
description = "样例邮件"
[match]
subject = '^样例-(?P<project>.+)$'
[fields.result]
label = "沟通结果"
[fields.project]
label = "项目名称"
[fields.remaining]
label = "遗留的问题描述"
[fields.issue]
label = "沟通的具体问题"
[validate]
required = ["result", "project"]
sender_roles = ["售前"]
[validate.allowed]
result = ["成功", "问题遗留"]
[[validate.require_when]]
field = "result"
equals = "问题遗留"
require = ["remaining"]
[validate.specific]
fields = ["issue"]
min_length = 6
vague = ["解决了技术问题", "已解决"]
[do]
action = "record_report"
'''

PRESALES = Person("张三", ("zhang@example.com",), frozenset({"售前"}))
SALES = Person("李四", ("li@example.com",), frozenset({"销售"}))
GOOD = {"result": "成功", "project": "华夏银行", "issue": "核心交换机升级后VRRP主备频繁切换"}


@pytest.fixture(scope="module")
def rule(tmp_path_factory):
    path = tmp_path_factory.mktemp("rules") / "sample.toml"
    path.write_text(RULE, encoding="utf-8")
    r, probs = load_rule(path, set(ACTIONS))
    assert probs == [] and r is not None, probs
    return r


def text(p: Problem) -> str:
    return default().problem(p)


def test_a_complete_body_from_a_presales_has_no_problem(rule):
    assert rule.validate(GOOD, PRESALES) == []


def test_missing_field(rule):
    probs = rule.validate({**GOOD, "project": ""}, PRESALES)
    assert probs == [Problem("missing_field", "project", {"label": "项目名称"})]
    assert text(probs[0]) == "缺少“项目名称”：请写一行“项目名称：……”。"


def test_not_allowed_value(rule):
    probs = rule.validate({**GOOD, "result": "还行"}, PRESALES)
    assert probs == [Problem("not_allowed_value", "result",
                             {"label": "沟通结果", "value": "还行", "allowed": ["成功", "问题遗留"]})]
    assert text(probs[0]) == "“沟通结果”只能填写“成功”或“问题遗留”，而不是“还行”。"


def test_required_when(rule):
    probs = rule.validate({**GOOD, "result": "问题遗留"}, PRESALES)
    assert probs == [Problem("required_when", "remaining",
                             {"label": "沟通结果", "equals": "问题遗留", "required": "遗留的问题描述"})]
    assert text(probs[0]) == "“沟通结果”为“问题遗留”时，必须填写“遗留的问题描述”。"


@pytest.mark.parametrize("value", ["已解决", "解决了技术问题。", "解决了"])
def test_too_vague(rule, value):
    probs = rule.validate({**GOOD, "issue": value}, PRESALES)
    assert probs == [Problem("too_vague", "issue", {"label": "沟通的具体问题", "value": value})]
    assert text(probs[0]).startswith(f"“沟通的具体问题”写得太笼统（“{value}”）：请写明具体解决了什么问题")


def test_too_short(rule):
    probs = rule.validate({**GOOD, "issue": "改配置"}, PRESALES)
    assert probs == [Problem("too_short", "issue", {"label": "沟通的具体问题", "value": "改配置", "min_length": 6})]
    assert text(probs[0]) == "“沟通的具体问题”太短（“改配置”），至少写6个字，说明具体是什么问题。"


@pytest.mark.parametrize("sender, who", [(SALES, "李四"), (None, "发件人")])
def test_sender_role(rule, sender, who):
    probs = rule.validate(GOOD, sender)
    assert probs == [Problem("sender_role", "", {"who": who, "roles": ["售前"]})]
    assert text(probs[0]) == f"{who}不是售前，不能发送此类邮件。"


def test_several_problems_come_in_rule_order_each_with_its_field(rule):
    probs = rule.validate({"result": "问题遗留", "issue": "好"}, SALES)
    assert [(p.code, p.field) for p in probs] == [
        ("sender_role", ""), ("missing_field", "project"), ("required_when", "remaining"), ("too_short", "issue")]


def test_a_problem_is_stored_as_plain_data(rule):
    (p,) = rule.validate({**GOOD, "result": "还行"}, PRESALES)
    assert p.as_dict() == {"code": "not_allowed_value", "field": "result",
                           "params": {"label": "沟通结果", "value": "还行", "allowed": ["成功", "问题遗留"]}}


def test_why_a_rule_matched_is_data_worded_in_chinese(rule):
    caps, why = rule.check("样例-华夏银行", PRESALES, [])
    assert caps == {"project": "华夏银行"}
    assert [(w.code, w.params) for w in why] == [
        ("subject_matched", {"rule": "样例邮件", "pattern": "^样例-(?P<project>.+)$"})]
    assert default().why(why) == "主题符合“样例邮件”的格式"
