"""Mails built the way real clients build them (Outlook, Foxmail, QQ Mail,
iPhone Mail): multipart/alternative with the client's own charset, transfer
encoding and HTML, for the end-to-end tests of issue 11."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from email.header import Header
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr

from conventions.helpers import NAMES, SYSTEM


def _headers(msg, *, sender, to, cc, subject, message_id=None, in_reply_to=None, date=None, mailer=None,
             date_header: str | None = None):
    msg["From"] = formataddr((str(Header(NAMES.get(sender, sender), "utf-8")), sender))
    msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = Header(subject, "utf-8").encode()
    msg["Date"] = date_header or format_datetime(date or datetime.now(timezone.utc))
    msg["Message-ID"] = message_id or f"<{uuid.uuid4().hex}@client.example>"
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    if mailer:
        msg["X-Mailer"] = mailer
    msg["MIME-Version"] = "1.0"
    return msg


def outlook(*, text: str, html: str, sender: str, to=(), cc=(SYSTEM,), subject: str, attachments=(), **kw) -> bytes:
    """Outlook 2016+: multipart/alternative (text/plain + text/html), gb2312
    base64 text, inside multipart/mixed when there are attachments."""
    alt = MIMEMultipart("alternative")
    alt.attach(MIMEText(text, "plain", "gb18030"))
    alt.attach(MIMEText(html, "html", "gb18030"))
    for part in alt.get_payload():
        part.set_param("charset", "gb2312")
    if attachments:
        msg = MIMEMultipart("mixed")
        msg.attach(alt)
        for a in attachments:
            msg.attach(a)
    else:
        msg = alt
    _headers(msg, sender=sender, to=to, cc=cc, subject=subject, mailer="Microsoft Outlook 16.0", **kw)
    return msg.as_bytes()


def foxmail(*, html: str, sender: str, to=(), cc=(SYSTEM,), subject: str, **kw) -> bytes:
    """Foxmail 7.2: multipart/alternative, the text part derived from the HTML
    (Foxmail writes its signature below an <hr> and its text as the HTML's text)."""
    from processor.mail.html import html_to_text
    alt = MIMEMultipart("alternative")
    alt.attach(MIMEText(html_to_text(html), "plain", "gb18030"))
    alt.attach(MIMEText(html, "html", "gb18030"))
    for part in alt.get_payload():
        part.set_param("charset", "GB2312")
    _headers(alt, sender=sender, to=to, cc=cc, subject=subject, mailer="Foxmail 7.2.25.228[cn]", **kw)
    return alt.as_bytes()


def plain(*, text: str, sender: str, to=(), cc=(SYSTEM,), subject: str, charset="utf-8", mailer=None, **kw) -> bytes:
    """A plain-text mail (iPhone Mail, 网易邮箱大师, Thunderbird)."""
    msg = MIMEText(text, "plain", charset)
    _headers(msg, sender=sender, to=to, cc=cc, subject=subject, mailer=mailer, **kw)
    return msg.as_bytes()


def attachment(ctype: str, data: bytes, filename: str) -> MIMEBase:
    main, sub = ctype.split("/")
    part = MIMEBase(main, sub)
    part.set_payload(data)
    from email import encoders
    encoders.encode_base64(part)
    part.add_header("Content-Disposition", "attachment", filename=filename)
    return part
