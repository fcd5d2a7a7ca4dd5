"""The aiosmtpd capture server accepts real SMTP from aiosmtplib."""

from __future__ import annotations

import asyncio
import os
from email.message import EmailMessage

import aiosmtplib
import pytest

from processor.devservers._net import port_accepts
from processor.devservers.smtp import CaptureSMTPServer, SMTPSinkProcess, load_captured


def make_mail(i: int, *, html: bool = False) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "工单系统 <tickets@example.com>"
    msg["To"] = "客户 <customer@example.cn>"
    msg["Subject"] = f"[工单 #{i}] 已收到您的请求"
    msg["Message-ID"] = f"<reply-{i}@example.com>"
    msg.set_content(f"您好，工单 {i} 已创建。\n", charset="utf-8", cte="8bit")
    if html:
        msg.add_alternative(f"<p>工单 <b>{i}</b></p>", subtype="html", charset="utf-8", cte="8bit")
    return msg


async def _send_over_one_connection(host: str, port: int, msgs: list[EmailMessage]) -> None:
    client = aiosmtplib.SMTP(hostname=host, port=port, timeout=30)
    await client.connect()
    try:
        for m in msgs:
            await client.send_message(m)
    finally:
        await client.quit()


def send(srv, msgs: list[EmailMessage]) -> None:
    asyncio.run(_send_over_one_connection(srv.host, srv.port, msgs))


def test_three_mails_over_one_connection(smtp_server: CaptureSMTPServer):
    send(smtp_server, [make_mail(1), make_mail(2, html=True), make_mail(3)])
    got = smtp_server.wait_for(3)
    assert len(got) == 3
    assert [c.subject for c in got] == [f"[工单 #{i}] 已收到您的请求" for i in (1, 2, 3)]
    first = got[0]
    assert first.mail_from == "tickets@example.com"
    assert first.rcpt_tos == ["customer@example.cn"]
    assert "工单 1 已创建" in first.text
    assert "工单 1 已创建".encode("utf-8") in first.data  # 8-bit data kept raw
    assert first.html is None and "<b>2</b>" in got[1].html
    assert first.header("Message-ID") == "<reply-1@example.com>"
    assert first.received_at > 0
    assert set(smtp_server.by_message_id()) == {f"<reply-{i}@example.com>" for i in (1, 2, 3)}
    smtp_server.clear()
    assert smtp_server.messages == []


def test_large_message(smtp_server: CaptureSMTPServer):
    msg = make_mail(1)
    msg.add_attachment(b"\x00\xff" * (3 * 1024 * 1024), maintype="application", subtype="octet-stream",
                       filename="dump.bin")
    send(smtp_server, [msg])
    (got,) = smtp_server.wait_for(1)
    assert len(got.data) > 8 * 1024 * 1024
    assert got.attachments[0].get_content() == b"\x00\xff" * (3 * 1024 * 1024)


def test_tempfail_gives_4xx(smtp_server: CaptureSMTPServer):
    smtp_server.set_fail("tempfail")
    with pytest.raises(aiosmtplib.SMTPResponseException) as exc:
        send(smtp_server, [make_mail(1)])
    assert 400 <= exc.value.code < 500
    assert smtp_server.messages == []
    smtp_server.set_fail("tempfail_rcpt")
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as exc2:
        send(smtp_server, [make_mail(1)])
    assert all(400 <= e.code < 500 for e in exc2.value.recipients)
    smtp_server.set_fail(None)
    send(smtp_server, [make_mail(2)])
    assert smtp_server.wait_for(1)[0].subject.startswith("[工单 #2]")


def test_down_mode_and_stop_start_same_port(smtp_server: CaptureSMTPServer):
    port = smtp_server.port
    smtp_server.set_fail("down")
    assert not port_accepts(smtp_server.host, port)
    with pytest.raises(aiosmtplib.SMTPConnectError):
        send(smtp_server, [make_mail(1)])
    smtp_server.set_fail(None)  # back up on the same port
    assert smtp_server.port == port
    send(smtp_server, [make_mail(2)])
    smtp_server.stop()
    assert not port_accepts(smtp_server.host, port)
    smtp_server.start()
    assert smtp_server.port == port
    smtp_server.restart()
    assert smtp_server.port == port
    send(smtp_server, [make_mail(3)])
    assert len(smtp_server.wait_for(2)) == 2


def test_stop_drops_open_sessions(smtp_server: CaptureSMTPServer):
    async def scenario() -> None:
        client = aiosmtplib.SMTP(hostname=smtp_server.host, port=smtp_server.port, timeout=10)
        await client.connect()
        await asyncio.get_running_loop().run_in_executor(None, smtp_server.stop)
        with pytest.raises(aiosmtplib.SMTPException):
            await client.send_message(make_mail(1))
    asyncio.run(scenario())


def test_wait_for_times_out(smtp_server: CaptureSMTPServer):
    with pytest.raises(TimeoutError):
        smtp_server.wait_for(1, timeout=0.2)


def test_many_messages(smtp_server: CaptureSMTPServer):
    send(smtp_server, [make_mail(i) for i in range(300)])
    assert len(smtp_server.wait_for(300)) == 300


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_separate_process_sink(tmp_path, loop):
    with SMTPSinkProcess(tmp_path / "out", loop=loop) as sink:
        assert f"--loop {loop}" in " ".join(sink._proc.args)
        assert sink.pid == sink._proc.pid and sink.pid != os.getpid()  # (the benchmarks read its CPU time)
        send(sink, [make_mail(1), make_mail(2)])
        got = sink.wait_for(2)
        port = sink.port
    assert not port_accepts("127.0.0.1", port) and sink.pid is None
    assert [c.subject for c in got] == ["[工单 #1] 已收到您的请求", "[工单 #2] 已收到您的请求"]
    assert load_captured(tmp_path / "out")[1].rcpt_tos == ["customer@example.cn"]


def test_scripted_answers_per_recipient(smtp_server: CaptureSMTPServer):
    smtp_server.script_rcpt("busy@example.cn", "451 4.2.1 mailbox busy")
    smtp_server.script_rcpt("gone@example.cn", then="550 5.1.1 no such user")
    msg = make_mail(1)
    del msg["To"]
    msg["To"] = "customer@example.cn, busy@example.cn, gone@example.cn"
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused):  # aiosmtplib raises only when all are refused...
        send(smtp_server, [_only(msg, "gone@example.cn")])
    send(smtp_server, [msg])  # ...and otherwise delivers to the accepted ones
    (got,) = smtp_server.wait_for(1)
    assert got.rcpt_tos == ["customer@example.cn"]
    send(smtp_server, [msg])  # the 451 was given once; the 550 sticks
    assert smtp_server.wait_for(2)[1].rcpt_tos == ["customer@example.cn", "busy@example.cn"]
    assert smtp_server.rcpt_log == [("gone@example.cn", 550),
                                    ("customer@example.cn", 250), ("busy@example.cn", 451), ("gone@example.cn", 550),
                                    ("customer@example.cn", 250), ("busy@example.cn", 250), ("gone@example.cn", 550)]
    with pytest.raises(ValueError):
        smtp_server.script_rcpt("x@example.cn", "hello")



def _only(msg: EmailMessage, to: str) -> EmailMessage:
    m = make_mail(0)
    del m["To"]
    m["To"] = to
    return m
