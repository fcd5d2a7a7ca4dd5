"""Nothing a sender writes reaches an outgoing header or MIME parameter
unchecked: attachment names, subjects, addresses and Message-IDs. End to end
through Dovecot and aiosmtpd; assertions on the bytes the SMTP server got."""
from __future__ import annotations

import base64
import email
import email.policy
import email.utils
from datetime import datetime, timezone
from urllib.parse import quote

from conventions.helpers import LI, SYSTEM, ZHANG, ZHAO, Flow, one, report_body, shape
import pytest

from processor.config import load_config
from processor.outbox import Outgoing, build_mime, safe_filename
from processor.render import Rendered
from support import make_mail, write_config
from workflows4.test_workorder import LOG, WO, fields

HOSTILE = 'log.txt"\r\nContent-Type: text/html\r\nX-Injected: 1\r\n\r\n<h1>Your mailbox expires today…'


def submission_with(name: str) -> bytes:
    """A 故障处理 submission whose log's name is encoded per RFC 2231, as a
    hand-made client would send it: the decoded name has the line breaks."""
    mid = "<wo-inject@client.example>"
    return (
        "From: =?utf-8?b?5byg5LiJ?= <zhangsan@company.example>\r\n"
        f"To: {ZHAO}\r\nCc: {SYSTEM}\r\n"
        "Subject: =?utf-8?b?" + base64.b64encode("故障处理-华夏银行-核心交换机VRRP主备频繁切换".encode()).decode() + "?=\r\n"
        f"Date: {email.utils.format_datetime(datetime.now(timezone.utc))}\r\nMessage-ID: {mid}\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    ).encode() + fields().encode() + (
        "\r\n--b1\r\nContent-Type: text/plain; name*=utf-8''" + quote(name.encode(), safe="") + "\r\n"
        "Content-Disposition: attachment; filename*=utf-8''" + quote(name.encode(), safe="") + "\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode() + base64.encodebytes(LOG).replace(b"\n", b"\r\n") + b"--b1--\r\n"


@pytest.fixture
def wo(tmp_path, imap_server, smtp_server, capsys, db_url):
    return WO(Flow(tmp_path, imap_server, smtp_server, capsys, db_url=db_url))


def test_an_attachment_name_with_headers_in_it_reaches_no_outgoing_header(wo):
    flow = wo.flow
    sent = flow.deliver(submission_with(HOSTILE))
    assert shape(sent) == [((ZHANG,), ()), ((ZHAO,), ())]
    notice = one(sent, to=ZHAO)
    assert notice.attachments == ["log.txt"]
    (got,) = [c for c in flow.smtp.messages if c.header("Message-ID") == notice.message_id]
    data = got.data
    # (the text parts go 8bit: what the mail says is in the bytes as it is)
    assert b"X-Injected" not in data and b"<h1>" not in data and b"mailbox expires" not in data
    assert "- log.txt（" in got.text  # listed under the name it is sent on under, on one line
    assert data.count(b"Content-Type: text/html") == 1  # our own HTML alternative, nothing else
    assert [p.get_content_type() for p in got.message.walk()] == [
        "multipart/mixed", "multipart/alternative", "text/plain", "text/html", "text/plain"]
    (att,) = got.attachments
    assert sorted(att.keys()) == ["Content-Disposition", "Content-Transfer-Encoding", "Content-Type"]
    assert att.get_content().encode() == LOG
    # The store keeps what the sender wrote, for display.
    ((stored,),) = flow.db("select filename from attachments")
    assert "X-Injected: 1" in stored


def test_every_header_value_from_a_mail_is_sanitised(tmp_path):
    cfg = load_config(write_config(tmp_path))
    out = Outgoing("x", to=["zhangsan@company.example", "evil@x.example\r\nBcc: boss@company.example"],
                   cc=["lisi@company.example"], reply_to=['"a" <a@x.example>', "wangwu@company.example"],
                   in_reply_to="<原件@client.example>", references=["<ok-1@client.example>", "<bad\r\nX-A: 1@x>", "ok-2@c.example"],
                   ticket_token="HB2026-0001",
                   attachments=[("../../etc/passwd", "text/plain\r\nX-B: 1", b"root"), ("日志\\..\\故障处理.log", "text/plain", b"x"),
                                ("..", "message/rfc822", b"y")])
    rendered = Rendered(subject="回执：客户沟通-华夏银行\r\nBcc: boss@company.example\r\n\r\n正文", text="t", html="<p>t</p>")
    subject, raw = build_mime(cfg, out, rendered, "<tp.1.abc@company.example>", datetime.now(timezone.utc),
                              names={"zhangsan@company.example": "张三\r\nBcc: boss@company.example"})
    assert b"\nBcc:" not in raw and b"X-A: 1" not in raw and b"X-B: 1" not in raw
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert subject == "回执：客户沟通-华夏银行 Bcc: boss@company.example 正文 [#HB2026-0001]" == str(msg["Subject"])
    # A display name is one encoded line: it shows as a name and never becomes a header.
    assert [(a.display_name, a.addr_spec) for a in msg["To"].addresses] == [
        ("张三 Bcc: boss@company.example", "zhangsan@company.example")]
    assert str(msg["Cc"]) == "lisi@company.example"
    assert str(msg["Reply-To"]) == "wangwu@company.example"
    assert msg["In-Reply-To"] is None  # not ASCII: dropped, not fatal
    assert str(msg["References"]).split() == ["<ok-1@client.example>", "<ok-2@c.example>"]
    assert [(a.get_filename(), a.get_content_type()) for a in msg.iter_attachments()] == [
        ("passwd", "application/octet-stream"), ("故障处理.log", "text/plain"), ("attachment", "message/rfc822")]
    assert raw.isascii()


def test_safe_filename_keeps_a_plain_name_and_bounds_a_long_one():
    assert safe_filename("vrrp.log") == "vrrp.log" and safe_filename("故障 日志.log") == "故障 日志.log"
    assert safe_filename(HOSTILE) == "log.txt"
    long = safe_filename("日志" * 200 + ".log")
    assert len(long) == 150 and long.endswith("….log")


# ---------------------------------------------------------------------------
# Message-IDs that are not ASCII
# ---------------------------------------------------------------------------

@pytest.fixture
def flow(tmp_path, imap_server, smtp_server, capsys, db_url):
    return Flow(tmp_path, imap_server, smtp_server, capsys, db_url=db_url)


def _utf8(raw: bytes, placeholder: str, value: str) -> bytes:
    return raw.replace(placeholder.encode(), value.encode("utf-8"))


def test_a_report_with_a_non_ascii_message_id_is_processed_and_answered(flow):
    raw = _utf8(make_mail(sender=ZHANG, sender_name="张三", to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行-张三",
                          body=report_body(), message_id="<PLACEHOLDER@client.example>"), "PLACEHOLDER", "汇报一")
    sent = flow.deliver(raw)
    assert shape(sent) == [((ZHANG,), ())]
    ack = sent[0]
    assert ack.subject == "回执：汇报邮件已记录 HB2026-0001（华夏银行） [#HB2026-0001]"
    assert ack.in_reply_to == ""  # the ID could not be written: left out
    assert [m[1] for m in flow.messages()] == ["processed"]
    assert len(flow.tracking()) == 1
    assert flow.db("select count(*) from quarantine") == [(0,)]


def test_a_report_with_non_ascii_references_keeps_the_usable_ones(flow):
    raw = _utf8(make_mail(sender=ZHANG, sender_name="张三", to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行-张三",
                          body=report_body(), message_id="<rep-utf8@client.example>",
                          references="<PLACEHOLDER@client.example> <earlier@client.example>"), "PLACEHOLDER", "上一封")
    sent = flow.deliver(raw)
    assert shape(sent) == [((ZHANG,), ())]
    (got,) = flow.smtp.messages
    assert got.header("In-Reply-To") == "<rep-utf8@client.example>"
    assert got.header("References").split() == ["<earlier@client.example>", "<rep-utf8@client.example>"]
    assert [m[1] for m in flow.messages()] == ["processed"]


def test_the_original_goes_inline_as_7bit_or_as_a_file_when_it_cannot(tmp_path):
    """An 8-bit original (a client's 8bit UTF-8 body) is re-encoded and
    attached as message/rfc822; one whose charset nobody knows goes as
    original.eml, as before. Either way the mail stays ASCII."""
    cfg = load_config(write_config(tmp_path))
    good = make_mail(subject="客户沟通-华夏银行-张三", body="沟通结果：成功\n沟通方式：电话\n")
    bad = good.replace(b'charset="utf-8"', b'charset="x-nobody"')
    out = Outgoing("x", to=["lisi@company.example"], attachments=[("original.eml", "message/rfc822", good),
                                                                 ("original.eml", "message/rfc822", bad)])
    _, raw = build_mime(cfg, out, Rendered(subject="s", text="t", html="<p>t</p>"), "<tp.2.abc@company.example>",
                        datetime.now(timezone.utc))
    assert raw.isascii()
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    inline, as_file = msg.iter_attachments()
    assert (inline.get_content_type(), inline.get_content_disposition()) == ("message/rfc822", "inline")
    assert "沟通方式：电话" in inline.get_content().get_content()
    assert (as_file.get_content_type(), as_file.get_filename()) == ("application/octet-stream", "original.eml")
    assert as_file.get_content() == bad
