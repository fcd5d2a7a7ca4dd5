"""Signature removal (processor/mail/signature.py) and its use by the parser."""
from __future__ import annotations

import pytest

from processor.mail.parse import parse_mail
from processor.mail.signature import html_signature_start, strip_signature, strip_signoff
from support import make_mail


@pytest.mark.parametrize("sig", ["发自我的iPhone", "发自我的 iPhone", "Sent from my iPhone", "Sent from my HUAWEI P60",
                                 "发自网易邮箱大师", "来自华为手机", "发自我的小米手机", "Get Outlook for iOS",
                                 "从我的 iPad 发送", "發自我的 iPhone"])
def test_mobile_and_webmail_lines_start_a_signature(sig):
    assert strip_signature(f"同意，请尽快安排\n\n{sig}\n") == "同意，请尽快安排"


@pytest.mark.parametrize("delim", ["-- ", "--"])
def test_the_rfc_3676_delimiter(delim):
    assert strip_signature(f"驳回：日志不全\n{delim}\n张三\n手机：138-0000-1234") == "驳回：日志不全"


def test_qq_mail_rule_above_a_short_block_only():
    assert strip_signature("同意\n\n------------------\n赵六\n售前部") == "同意"
    long_tail = "\n".join(f"第{i}行" for i in range(12))
    text = f"说明\n------------------\n{long_tail}"
    assert strip_signature(text) == text


def test_text_that_merely_mentions_a_phone_is_kept():
    text = "请用iPhone测试一下\n发自我的电脑上的截图见附件\n来自客户的反馈：仍有丢包"
    assert strip_signature(text) == text


def test_an_unmarked_sign_off_with_the_senders_name():
    assert strip_signoff("处理结果：换驱动\n\n谢谢！\n张三\n华信科技有限公司\n手机：138", ["张三"]) == "处理结果：换驱动"
    assert strip_signoff("同意\n\n赵六", ["赵六"]) == "同意"
    assert strip_signoff("已解决\n谢谢！\n张三", ["张三"]) == "已解决"
    # someone else's name, or nothing left: kept
    assert strip_signoff("同意\n\n王五说明天到现场", ["赵六"]) == "同意\n\n王五说明天到现场"
    assert strip_signoff("张三", ["张三"]) == "张三"
    # a last line that starts with the name but says something is content
    assert strip_signoff("同意\n\n张三 明天到现场复测", ["张三"]) == "同意\n\n张三 明天到现场复测"
    assert strip_signoff("同意\n\n张三 | 技术支持部\n华信科技有限公司", ["张三"]) == "同意"


@pytest.mark.parametrize("html", ['<hr style="width: 210px; height: 1px;" color="#b5c4df" size="1" align="left">',
                                  '<a name="_MailAutoSig">', '<div id="Signature">', "<sign signid='0'>"])
def test_html_markers(html):
    assert html_signature_start("<div>同意</div>" + html + "<div>赵六</div>") == len("<div>同意</div>")


def test_the_parser_body_has_no_signature_and_the_text_keeps_it():
    pm = parse_mail(make_mail(sender_name="赵六", body="同意\n\n赵六\n华信科技 售前部\n"))
    assert pm.body == "同意"
    assert "华信科技" in pm.text
    pm = parse_mail(make_mail(body="", html="<div>同意</div><div>-- </div><div>张三</div>"))
    assert pm.body == "同意"


def test_a_mail_that_is_only_a_signature_has_an_empty_body():
    assert parse_mail(make_mail(body="\n发自我的iPhone\n")).body == ""
