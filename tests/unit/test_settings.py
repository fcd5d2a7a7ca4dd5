"""Typed settings per action (processor/workflows/settings.py and the model
beside each workflow), in process: the shipped rules and the defaults are
accepted, wrong types, values and unknown keys are refused with the Chinese
reasons `check` prints, a config override wins over the rule's value, and
the model is built once per rule."""
from __future__ import annotations

import logging
import shutil

import pytest

from processor.config import load_config
from processor.rules.engine import SETTINGS_CHECKS, Match, load_rules
from processor.workflows import ACTIONS, Context
from processor.workflows.complaint import ComplaintSettings, PenaltyRule
from processor.workflows.followup import FollowupSettings
from processor.workflows.improvement import ImprovementSettings, rd_limit
from processor.workflows.lixiang import LixiangSettings
from processor.workflows.report import ReportSettings
from processor.workflows.settings import MODELS, for_rule
from processor.workflows.survey import SurveySettings
from processor.workflows.survey import problems as survey_problems
from processor.workflows.survey import settings as survey_settings
from processor.workflows.workorder import WorkorderSettings
from support import ROOT, run, write_config

SHIPPED = load_rules(ROOT / "rules", set(ACTIONS))
ROLES_LIST = "销售、售前、售前经理、技术支持部经理、技术总监、总经理、研发经理、研发、测试组、销售负责人"


def test_every_action_declares_a_settings_model_that_check_uses():
    assert set(MODELS) == set(ACTIONS)
    assert set(SETTINGS_CHECKS) == set(ACTIONS)
    for action, model in MODELS.items():
        assert SETTINGS_CHECKS[action] == model.problems, action


@pytest.mark.parametrize("rule", SHIPPED.rules, ids=lambda r: r.name)
def test_the_shipped_rule_settings_are_accepted_and_read_as_written(rule):
    model = MODELS[rule.action]
    assert model.problems(rule.settings) == []
    st = model.model_validate(rule.settings)
    for key, value in rule.settings.items():
        got = getattr(st, key)
        if key == "penalties":
            got = [p.model_dump() for p in got]
        assert (list(got) if isinstance(got, tuple) else got) == value, key


@pytest.mark.parametrize("model", sorted(set(MODELS.values()) | {SurveySettings}, key=lambda m: m.__name__),
                         ids=lambda m: m.__name__)
def test_the_defaults_pass_their_own_checks(model):
    defaults = model().model_dump()
    assert model.problems(defaults) == []
    assert model.model_validate(defaults) == model()


def test_the_defaults_are_the_regulations_numbers():
    assert (ReportSettings().followup_due_hours, ReportSettings().close_words) == (72, ("已解决",))
    assert [(p.name, p.every, p.window) for p in ComplaintSettings().penalties] == [
        ("monthly", 2, "month"), ("permanent", 4, "never")]
    assert (ImprovementSettings().engineer_quota, rd_limit(ImprovementSettings())) == (2, 7)
    assert (WorkorderSettings().min_attempts, WorkorderSettings().approver_roles) == (3, ("售前经理",))
    assert LixiangSettings().reminders_before_stop == 3
    assert (SurveySettings().threshold, SurveySettings().delay_hours, SurveySettings().party) == (2, 24, "sales")


@pytest.mark.parametrize("model, settings, expected", [
    # wrong types: TOML gives real ones, "3" is not 3 and 1 is not true
    (ReportSettings, {"followup_due_hours": "3天"}, [("followup_due_hours", '必须是 ≥ 1 的整数（小时），现为 "3天"')]),
    (ReportSettings, {"followup_due_hours": 2.5}, [("followup_due_hours", "必须是 ≥ 1 的整数（小时），现为 2.5")]),
    (ReportSettings, {"forward_to_sales": 1}, [("forward_to_sales", "必须是 true 或 false，现为 1")]),
    (ReportSettings, {"close_words": "已解决"},
     [("close_words", '必须是至少含一项的列表，每项是非空的字符串，例如 ["已解决"]，现为 "已解决"')]),
    (ReportSettings, {"result_synonyms": ["問題遺留"]},
     [("result_synonyms", '必须是表：写法 = "标准写法"，例如 { "問題遺留" = "问题遗留" }，现为 ["問題遺留"]')]),
    (LixiangSettings, {"none_words": ["无", 0]},
     [("none_words", '必须是非空字符串的列表，例如 ["已解决"]，现为 0')]),
    (ImprovementSettings, {"rd_days_limit": "一周"},
     [("rd_days_limit", '必须是 ≥ 0 的天数（第二十二条：一周 = 7），现为 "一周"')]),
    (ImprovementSettings, {"rd_days_limit": True},
     [("rd_days_limit", "必须是 ≥ 0 的天数（第二十二条：一周 = 7），现为 true")]),
    # wrong values
    (ReportSettings, {"followup_due_hours": 0}, [("followup_due_hours", "必须是 ≥ 1 的整数（小时），现为 0")]),
    (ReportSettings, {"close_words": []},
     [("close_words", '必须是至少含一项的列表，每项是非空的字符串，例如 ["已解决"]，现为 []')]),
    (ReportSettings, {"result_open": ""}, [("result_open", '必须是非空的字符串，现为 ""')]),
    (WorkorderSettings, {"min_attempts": -1}, [("min_attempts", "必须是 ≥ 0 的整数（次），现为 -1")]),
    (WorkorderSettings, {"approver_roles": []},
     [("approver_roles", '必须是至少含一个角色名称的列表，例如 ["售前经理"]，现为 []')]),
    (WorkorderSettings, {"approver_roles": ["售前经理", "部门经理"]},
     [("approver_roles", f"未知的角色“部门经理”；可用的角色：{ROLES_LIST}")]),
    (ImprovementSettings, {"engineer_parties": ["第三售前"]},
     [("engineer_parties", '必须是列表，可写 第一售前 和/或 第二售前，现为 "第三售前"')]),
    (SurveySettings, {"threshold": 6}, [("threshold", "必须是 0 到 5 的整数，现为 6")]),
    (SurveySettings, {"party": ""}, [("party", '必须是 "sales"、"raiser" 等，或按记录类型分别设置的表，'
                                               '例如 { followup = "sales", workorder = "raiser" }，现为 ""')]),
    # unknown keys, with the closest known key
    (ReportSettings, {"close_word": ["已解决"]}, [("close_word", "未知的键（拼写错误？）：是不是 close_words？")]),
    (LixiangSettings, {"remind_sale": True}, [("remind_sale", "未知的键（拼写错误？）：是不是 remind_sales？")]),
    (MODELS["acknowledge"], {"greeting": "你好"}, [("greeting", "未知的键（拼写错误？）")]),
])
def test_wrong_settings_are_refused_with_the_chinese_reason(model, settings, expected):
    assert model.problems(settings) == expected


def test_penalty_rules_are_checked_per_table_and_key():
    pens = [{"name": "monthly", "every": 0, "window": "weekly", "penalty": "扣发", "count": 1},
            {"name": "permanent", "every": 4, "penalty": ""}]
    assert ComplaintSettings.problems({"penalties": pens}) == [
        ("penalties[0].every", "必须是 ≥ 1 的整数（每 N 次投诉），现为 0"),
        ("penalties[0].window", '必须是 month、quarter、year、never 之一，现为 "weekly"'),
        ("penalties[0].count", "未知的键（拼写错误？）；这里可以写的键：every、name、penalty、window"),
        ("penalties[1].penalty", '必须是非空的处罚文字，例如 "当月绩效工资扣发1级"，现为 ""'),
    ]
    assert ComplaintSettings.problems({"penalties": [{"name": "monthly", "every": 2}]}) == [
        ("penalties[0].penalty", '必填：非空的处罚文字，例如 "当月绩效工资扣发1级"')]
    twice = [{"name": "monthly", "every": 2, "penalty": "扣发"}, {"name": "monthly", "every": 4, "penalty": "降级"}]
    assert ComplaintSettings.problems({"penalties": twice}) == [
        ("penalties", "名称 “monthly” 用了两次，每条规则的 name 必须不同")]
    st = ComplaintSettings.model_validate({"penalties": [{"name": "q", "every": 3, "penalty": "扣发"}]})
    assert st.penalties == (PenaltyRule(name="q", every=3, window="month", penalty="扣发"),)


def _cfg(tmp_path, extra=""):
    return load_config(write_config(tmp_path, extra=extra))


def test_the_config_overrides_the_rules_settings_key_by_key(tmp_path):
    cfg = _cfg(tmp_path, "[workflows.customer_report]\nfollowup_due_hours = 24\nclose_words = [\"好了\"]\n")
    st = for_rule(SHIPPED.by_name["customer_report"], cfg)
    assert isinstance(st, ReportSettings)
    assert (st.followup_due_hours, st.close_words) == (24, ("好了",))
    assert st.result_synonyms == {"問題遺留": "问题遗留"}  # from the rule file
    assert st.forward_to_sales is True


def test_a_wrong_override_keeps_the_rules_value_and_says_so_in_the_log(tmp_path, caplog):
    cfg = _cfg(tmp_path, "[workflows.workorder]\nmin_attempts = \"三次\"\napprover_roles = [\"技术总监\"]\n")
    with caplog.at_level(logging.WARNING, logger="processor.workflows.settings"):
        st = for_rule(SHIPPED.by_name["workorder"], cfg)
    assert (st.min_attempts, st.approver_roles) == (3, ("技术总监",))
    assert ("配置文件 [workflows.workorder] 中的设置 min_attempts 不正确，按规则文件的值或默认值处理（运行 check 查看原因）"
            in caplog.messages)


def test_settings_are_validated_once_per_rule_and_config(tmp_path):
    cfg = _cfg(tmp_path)
    rule = SHIPPED.by_name["complaint"]
    assert for_rule(rule, cfg) is for_rule(rule, cfg)
    other = _cfg(tmp_path / "b", "[workflows.complaint]\nallow_other_sales = true\n")
    assert for_rule(rule, other).allow_other_sales is True and for_rule(rule, cfg).allow_other_sales is False


def test_the_context_reads_the_matched_rules_typed_settings(tmp_path):
    cfg = _cfg(tmp_path, "[workflows.workorder]\napprover_roles = [\"技术支持部经理\"]\n")
    rule = SHIPPED.by_name["workorder"]

    def ctx(match):
        return Context(cfg=cfg, mail=None, message=None, sender=None, directory=None, repo=None, now=None,
                       match=match, rules=SHIPPED)

    a, b = ctx(Match(rule, {}, "", {}, [])), ctx(Match(rule, {}, "", {}, []))
    assert isinstance(a.settings, WorkorderSettings) and a.settings is b.settings
    assert a.settings.approver_roles == ("技术支持部经理",)
    late = ctx(None)
    assert late.settings is None
    late.match = Match(SHIPPED.by_name["bug"], {}, "", {}, [])  # a reply handler binds the record's rule
    assert late.settings.route_to == ("测试组",)
    # A lifecycle's ``settings.approver_roles`` reads the same model.
    lc = SHIPPED.lifecycles["workorder"]
    assert lc.resolve(["settings.approver_roles", "owner"], a.settings) == ("技术支持部经理", "owner")
    assert a.settings["approver_roles"] == a.settings.get("approver_roles") == ("技术支持部经理",)
    assert a.settings.get("no_such_key", ()) == ()


def test_the_follow_up_reads_the_report_rules_keys():
    assert issubclass(ReportSettings, FollowupSettings)
    assert set(FollowupSettings.model_fields) <= set(SHIPPED.by_name["customer_report"].settings)


def test_survey_settings_fall_back_to_the_default_key_by_key(tmp_path):
    cfg = _cfg(tmp_path, "[workflows.survey]\ndelay_hours = -1\nthreshold = 3\nreopen = \"no\"\nparty = { workorder = \"raiser\" }\n"
                         "intervall_seconds = 5\n")
    st = survey_settings(cfg)
    assert (st.delay_hours, st.threshold, st.reopen, st.party) == (24, 3, True, {"workorder": "raiser"})
    assert survey_problems(cfg) == [
        ("delay_hours", "必须是 ≥ 0 的小时数，现为 -1"),
        ("reopen", '必须是 true 或 false，现为 "no"'),
        ("intervall_seconds", "未知的键（拼写错误？）：是不是 interval_seconds？"),
    ]


def test_check_names_the_rule_file_and_key_of_a_wrong_setting(tmp_path, capsys):
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    text = (rules / "lixiang.toml").read_text(encoding="utf-8")
    (rules / "lixiang.toml").write_text(text.replace("remind_sales = true", "remind_sales = \"是\"")
                                        .replace("only_owner_updates = true", "only_owner_update = true"), encoding="utf-8")
    cfg = write_config(tmp_path, rules_dir=rules)
    assert run(cfg, "check") == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "配置有误（文件: 键: 原因）："
    assert f"  {rules / 'lixiang.toml'}: settings.remind_sales: 必须是 true 或 false，现为 \"是\"" in lines
    assert f"  {rules / 'lixiang.toml'}: settings.only_owner_update: 未知的键（拼写错误？）：是不是 only_owner_updates？" in lines
    assert not [line for line in lines if "customer_report.toml" in line]  # the other rules are fine


def test_check_names_the_config_file_and_key_of_a_wrong_override(tmp_path, capsys):
    cfg = write_config(tmp_path, extra=(
        "[workflows.customer_report]\nfollowup_due_hours = 0\nclose_word = [\"已解决\"]\n\n"
        "[workflows.survey]\nthreshold = \"两分\"\n"))
    assert run(cfg, "check") == 1
    lines = capsys.readouterr().err.splitlines()
    assert sorted(lines[1:]) == sorted([
        f"  {cfg}: workflows.customer_report.followup_due_hours: 必须是 ≥ 1 的整数（小时），现为 0",
        f"  {cfg}: workflows.customer_report.close_word: 未知的键（拼写错误？）：是不是 close_words？",
        f"  {cfg}: workflows.survey.threshold: 必须是 0 到 5 的整数，现为 \"两分\"",
    ])
