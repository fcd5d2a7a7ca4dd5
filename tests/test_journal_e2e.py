"""Issue 11: Exchange journal reports (``X-MS-Journal-Report``, the original
attached) are unwrapped: the original is processed once, as from its real
sender, and trust is judged on the journal envelope. End to end through
Dovecot and aiosmtpd, with the shipped Exchange trust setting."""
from __future__ import annotations

from email import message_from_bytes
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest

from conventions.helpers import LI, SYSTEM, ZHANG, Flow, report_body, shape

AGENT = "MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@company.example"
INTERNAL = b"X-MS-Exchange-Organization-AuthAs: Internal\r\n"


@pytest.fixture
def flow(tmp_path, imap_server, smtp_server, capsys):
    return Flow(tmp_path, imap_server, smtp_server, capsys, trust='server = "exchange"')


def journal(original: bytes, *, sender: str = ZHANG, internal: bool = True) -> bytes:
    """The journal report Exchange's journaling agent writes (envelope journaling)."""
    inner = message_from_bytes(original)
    msg = MIMEMultipart("mixed")
    msg["From"] = f"Microsoft Exchange <{AGENT}>"
    msg["To"] = SYSTEM
    msg["Subject"] = inner["Subject"]
    msg["Message-ID"] = "<journal-1@company.example>"
    msg["Date"] = inner["Date"]
    msg["X-MS-Journal-Report"] = ""
    msg["MIME-Version"] = "1.0"
    msg.attach(MIMEText(f"Sender: {sender}\r\nSubject: {inner['Subject']}\r\nMessage-Id: {inner['Message-ID']}\r\n"
                        f"To: {inner['To']}\r\n", "plain", "utf-8"))
    msg.attach(MIMEMessage(inner))
    return (INTERNAL if internal else b"") + msg.as_bytes()


def report(flow, **kw) -> bytes:
    return flow.mail(sender=ZHANG, sender_name="张三", to=(LI,), cc=kw.pop("cc", ()), subject="客户沟通-华夏银行-张三",
                     body=report_body(), message_id="<orig-7@company.example>", **kw)


def test_journal_report_is_processed_as_from_its_real_sender(flow):
    sent = flow.deliver(journal(report(flow)))
    assert shape(sent) == [((ZHANG,), ())]
    assert sent[0].subject.startswith("回执：汇报邮件已记录 HB2026-0001（华夏银行）")
    assert sent[0].in_reply_to == "<orig-7@company.example>"
    [row] = flow.tracking()
    assert (row["汇报人"], row["邮件"]) == ("张三", "<orig-7@company.example>")
    [(status, from_addr)] = flow.db("select status, from_addr from messages")
    assert (status, from_addr) == ("processed", ZHANG)


def test_journal_copy_and_the_cc_copy_make_one_record(flow):
    original = report(flow, cc=(SYSTEM,))
    sent = flow.deliver(INTERNAL + original, journal(original))
    assert shape(sent) == [((ZHANG,), ())]
    assert len(flow.tracking()) == 1


def test_journal_envelope_from_outside_is_untrusted(flow):
    assert flow.deliver(journal(report(flow), internal=False)) == []
    assert flow.tracking() == []
    [(status,)] = flow.db("select status from messages")
    assert status == "untrusted"


def test_journal_listing_another_sender_than_the_attached_from_is_untrusted(flow):
    assert flow.deliver(journal(report(flow), sender="mallory@company.example")) == []
    [(status, reason)] = flow.db("select status, reason from messages")
    assert status == "untrusted" and "mallory@company.example" in reason
