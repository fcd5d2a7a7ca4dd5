"""The keyword-reply command parser (``processor/workflows/commands.py``), in
process: what staff type as the first line of a reply in a record's thread,
through the real mail parser (quoted history stripped as in production)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from processor.config import load_config
from processor.mail.parse import parse_mail
from processor.workflows.commands import DEFAULT_KEYWORDS, first_line, parse, starts_with_any
from support import make_mail, write_config


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    return load_config(write_config(tmp_path_factory.mktemp("commands")))


def reply(cfg, body: str = "", *, html: str | None = None) -> SimpleNamespace:
    """What ``parse`` reads of a workflow context: the config and the parsed reply."""
    pm = parse_mail(make_mail(sender="zhaoliu@company.example", sender_name="赵六", subject="答复: 记录 [#GD2026-0001]",
                              body=body, html=html))
    return SimpleNamespace(cfg=cfg, mail=pm)


def cmd(cfg, body: str, allowed=None):
    c = parse(reply(cfg, body), allowed)
    return None if c is None else (c.keyword, c.arg)


def cmd_html(cfg, html: str):
    c = parse(reply(cfg, "", html=html))
    return None if c is None else (c.keyword, c.arg)


# -- every command form -------------------------------------------------------------


@pytest.mark.parametrize("canon,syn", [(k, s) for k, syns in DEFAULT_KEYWORDS.items() for s in (k, *syns)])
def test_every_default_keyword_and_synonym_gives_its_canonical_command(cfg, canon, syn):
    assert cmd(cfg, f"{syn}\n\n赵六") == (canon, "")


@pytest.mark.parametrize("line,expected", [
    ("同意", ("同意", "")),
    ("批准，按计划执行", ("同意", ",按计划执行")),  # the full-width comma is folded, not a separator
    ("驳回：日志不全，请补充 debug 输出", ("驳回", "日志不全,请补充 debug 输出")),
    ("不同意：方案未评审", ("驳回", "方案未评审")),  # 不同意 is 驳回, not 同意
    ("退回 : 缺少测试报告", ("驳回", "缺少测试报告")),
    ("拒绝 客户未确认", ("驳回", "客户未确认")),  # no colon: the rest of the line
    ("指派：王五", ("指派", "王五")),
    ("转交:王五", ("指派", "王五")),
    ("已修复，请验证", ("申请关闭", ",请验证")),
    ("同意关闭", ("确认关闭", "")),  # the longest synonym wins over 同意
    ("确认解决", ("确认关闭", "")),
    ("未解决：重启后仍然掉线", ("重新打开", "重启后仍然掉线")),
    ("重开", ("重新打开", "")),
    ("转定制开发：需要新增接口", ("转定制", "需要新增接口")),  # not 转定制 + arg 开发
    ("撤销", ("撤回", "")),
    ("问题已解决", ("已解决", "")),
    ("满意度：4", ("满意度", "4")),
    ("评分 5", ("满意度", "5")),
    ("净研发时间：3.5天", ("研发用时", "3.5天")),  # not 研发时间
    ("研发用时:2天", ("研发用时", "2天")),
])
def test_command_forms_and_their_arguments(cfg, line, expected):
    assert cmd(cfg, line + "\n\n赵六\n华信科技有限公司") == expected


# -- 驳回：原因, full-width and half-width -------------------------------------------


@pytest.mark.parametrize("line", ["驳回：日志不全", "驳回:日志不全", "驳回 ： 日志不全", "驳回\uff1a  日志不全",
                                  "驳回 日志不全", "驳回日志不全", "　驳回：日志不全"])
def test_reject_with_a_reason_after_any_colon_or_none(cfg, line):
    assert cmd(cfg, line) == ("驳回", "日志不全")


def test_reject_without_a_reason_has_an_empty_argument(cfg):
    # StateMachine.handle then asks for the reason (command_needs_arg).
    assert cmd(cfg, "驳回") == ("驳回", "")
    assert cmd(cfg, "驳回：") == ("驳回", "")
    assert cmd(cfg, "驳回：\n日志不全") == ("驳回", "")  # the reason must be on the command line


def test_full_width_letters_and_digits_are_folded(cfg):
    assert cmd(cfg, "满意度：５") == ("满意度", "5")
    assert cmd(cfg, "驳回：ＰＯＣ未通过") == ("驳回", "POC未通过")


def test_leading_punctuation_and_blank_lines_before_the_command_are_skipped(cfg):
    assert cmd(cfg, "\n\n  \n- 同意\n") == ("同意", "")
    assert cmd(cfg, "...驳回：重复提交") == ("驳回", "重复提交")


def test_the_command_line_is_kept_as_written_after_folding(cfg):
    c = parse(reply(cfg, "驳回：日志不全，请补充\n其余见附件"))
    assert c.line == "驳回:日志不全,请补充"


# -- quoted replies ------------------------------------------------------------------


def test_a_keyword_in_the_quoted_history_is_not_a_command(cfg):
    outlook = ("收到，我看一下\n\n"
               "-----原始邮件-----\n发件人: 工单系统 <tracking@company.example>\n发送时间: 2026年11月24日 10:00\n"
               "收件人: 赵六\n主题: 待审批\n\n请回复“同意”或“驳回：原因”。\n同意\n")
    assert cmd(cfg, outlook) is None


def test_a_reply_with_nothing_above_the_quote_is_no_command(cfg):
    gmail = "\n在 2026年11月24日周二 10:00，工单系统 <tracking@company.example> 写道：\n> 同意\n> 驳回：原因\n"
    assert cmd(cfg, gmail) is None
    assert cmd(cfg, "> 同意\n> 驳回：原因\n") is None


def test_the_command_above_the_quote_is_taken_and_the_quote_ignored(cfg):
    body = ("驳回：测试环境未就绪\n\n赵六\n\n"
            "在 2026年11月24日周二 10:00，工单系统 <tracking@company.example> 写道：\n> 同意\n")
    assert cmd(cfg, body) == ("驳回", "测试环境未就绪")


def test_a_command_below_the_quote_is_taken_bottom_posting(cfg):
    assert cmd(cfg, "> 请回复“同意”或“驳回：原因”\n> GD2026-0001 待审批\n\n驳回：缺少测试报告\n") == ("驳回", "缺少测试报告")


def test_a_command_in_an_html_reply(cfg):
    html = ("<html><body><div>同意</div><div><br></div><div>赵六</div>"
            "<blockquote><div>-----原始邮件-----</div><div>驳回：原因</div></blockquote></body></html>")
    assert cmd_html(cfg, html) == ("同意", "")


# -- unknown words ------------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    "谢谢，收到",
    "好的",
    "可以",  # not a synonym of 同意 (可以提交 is)
    "关闭",  # neither 申请关闭 nor 确认关闭
    "请同意",  # the keyword must start the line
    "赵六你好：\n同意",  # only the first non-empty line counts
    "",
])
def test_unknown_words_and_a_keyword_not_at_the_start_are_no_command(cfg, body):
    assert cmd(cfg, body) is None


def test_allowed_limits_the_keywords_a_record_accepts(cfg):
    assert cmd(cfg, "同意", allowed=("满意度",)) is None
    assert cmd(cfg, "满意度：3", allowed=("满意度",)) == ("满意度", "3")
    # With 同意关闭 not allowed, its 同意 prefix is what is left.
    assert cmd(cfg, "同意关闭", allowed=("同意", "驳回")) == ("同意", "关闭")


def test_configured_keywords_replace_the_defaults_for_that_command(tmp_path):
    cfg = load_config(write_config(tmp_path, extra='[workflows.commands.keywords]\n"同意" = ["OK", "没问题"]\n'
                                                  '"暂缓" = ["先放一放"]\n'))
    assert cmd(cfg, "OK") == ("同意", "")
    assert cmd(cfg, "没问题，去做吧") == ("同意", ",去做吧")
    assert cmd(cfg, "批准") is None  # the default synonyms of 同意 are replaced
    assert cmd(cfg, "驳回：不行") == ("驳回", "不行")  # other commands keep theirs
    assert cmd(cfg, "先放一放：等客户回复") == ("暂缓", "等客户回复")


# -- the helpers other conventions use ------------------------------------------------------


def test_first_line_and_starts_with_any():
    assert first_line("\n \n　驳回：原因\n第二行") == "驳回:原因"
    assert first_line("") == ""
    assert starts_with_any("【已解决】客户确认", ["已解决", "未解决"]) == "已解决"
    assert starts_with_any("  １.问题已解决", ["问题已解决"]) is None  # the digit is not punctuation
    assert starts_with_any("未解决", ["已解决"]) is None
