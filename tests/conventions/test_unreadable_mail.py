"""Issue 11: mail whose body cannot be read (Outlook TNEF, unknown charsets,
broken MIME) is answered with what went wrong and how to resend, never with
「缺少五个字段」, and is not counted as a 退回. End to end through Dovecot."""
from __future__ import annotations

import pytest

from conventions.helpers import LI, SYSTEM, ZHANG, Flow, shape
from conventions.tnef import REPORT_HTML, outlook_tnef


@pytest.fixture
def flow(tmp_path, imap_server, smtp_server, capsys):
    return Flow(tmp_path, imap_server, smtp_server, capsys)


def _tnef_mail(blob: bytes) -> bytes:
    return outlook_tnef(blob, cc=SYSTEM)


def _no_rejection(flow):
    rows = flow.report("reports")
    assert all(r["退回"] == "0" for r in rows) and all(r["已记录"] == "0" for r in rows)
    assert flow.db("select count(*) from tickets")[0][0] == 0


def test_outlook_tnef_report_is_read_from_winmail_dat(flow):
    from conventions.tnef import tnef
    sent = flow.deliver(_tnef_mail(tnef(html=REPORT_HTML)))
    assert shape(sent) == [((ZHANG,), ())]
    assert sent[0].subject.startswith("回执：汇报邮件已记录 HB2026-0001（华夏银行）")
    [row] = flow.tracking()
    assert (row["沟通方式"], row["沟通的具体问题"]) == ("电话", "调整防火墙策略开放8443端口")


def test_outlook_rich_text_report_held_only_as_compressed_rtf_is_recorded(flow):
    from conventions.tnef import REPORT_LINES, outlook_rtf, tnef
    sent = flow.deliver(_tnef_mail(tnef(rtf=outlook_rtf(REPORT_LINES))))
    assert shape(sent) == [((ZHANG,), ())]
    assert sent[0].subject.startswith("回执：汇报邮件已记录 HB2026-0001（华夏银行）")
    [row] = flow.tracking()
    assert (row["沟通方式"], row["沟通的具体问题"]) == ("电话", "调整防火墙策略开放8443端口")


def test_rtf_only_tnef_is_answered_as_unreadable_not_as_missing_fields(flow):
    from conventions.tnef import RTF_ONLY, tnef
    sent = flow.deliver(_tnef_mail(tnef(rtf=RTF_ONLY)))  # compressed RTF that decompresses to nothing
    assert shape(sent) == [((ZHANG,), ())]
    reply = sent[0]
    assert reply.subject == "邮件无法读取，请重新发送：客户沟通-华夏银行-张三"
    assert "读不出它的正文：正文只在 Outlook 的 winmail.dat 附件里（RTF 格式），系统无法读取" in reply.text
    assert "不算退回" in reply.text and "HTML" in reply.text and "纯文本" in reply.text
    assert "缺少" not in reply.text
    _no_rejection(flow)
    [(status, rule, code)] = flow.db("select status, rule, outcome_code from messages")
    assert (status, rule, code) == ("processed", "customer_report", "unreadable")


def test_unknown_charset_is_answered_as_unreadable(flow):
    from email.header import Header
    raw = ("From: =?utf-8?b?5byg5LiJ?= <zhangsan@company.example>\r\nTo: " + LI + "\r\nCc: " + SYSTEM + "\r\n"
           "Subject: " + Header("客户沟通-华夏银行-张三", "utf-8").encode() + "\r\n"
           "Message-ID: <charset-1@client.example>\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=\"x-unknown-cjk\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n").encode()
    sent = flow.deliver(raw + bytes(range(0x80, 0x100)) * 3 + b"\r\n")
    assert shape(sent) == [((ZHANG,), ())]
    assert sent[0].subject == "邮件无法读取，请重新发送：客户沟通-华夏银行-张三"
    assert "正文的字符编码（x-unknown-cjk）无法识别" in sent[0].text and "缺少" not in sent[0].text
    _no_rejection(flow)


def test_a_report_that_is_only_an_outlook_signature_is_answered_as_unreadable(flow):
    from conventions.clients import outlook
    from conventions.tnef import SIG
    html = ("<html><body><div class=WordSection1><p class=MsoNormal><o:p>&nbsp;</o:p></p>"
            "<p class=MsoNormal>张三</p><p class=MsoNormal>华信科技有限公司 技术支持部</p>"
            "<p class=MsoNormal>手机：138-0000-1234</p></div></body></html>")
    sent = flow.deliver(outlook(text="\n" + SIG, html=html, sender=ZHANG, to=(LI,), subject="客户沟通-华夏银行-张三"))
    assert shape(sent) == [((ZHANG,), ())]
    reply = sent[0]
    assert reply.subject == "邮件无法读取，请重新发送：客户沟通-华夏银行-张三"
    assert "但正文里只有签名，签名之上没有内容" in reply.text and "请把内容写在签名之上" in reply.text
    assert "不算退回" in reply.text and "缺少" not in reply.text
    _no_rejection(flow)
    [(status, code)] = flow.db("select status, outcome_code from messages")
    assert (status, code) == ("processed", "unreadable")
