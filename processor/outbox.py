"""Outgoing mail: building it, queueing it in the store, delivering it over SMTP.

Workflows produce ``Outgoing`` objects (plain data). The pipeline renders them
and writes ``Outbox`` rows in the same transaction as the state change. The
sender job claims due rows under a lease, delivers them over reused SMTP
connections, records each recipient's result (accepted; deferred, and retried
alone; refused for good), retries with exponential backoff, and marks a row
sent once no recipient is left to try. A row's Message-ID is its idempotency
key. Every value taken from a mail is sanitised before it goes into a header.
"""
from __future__ import annotations

import asyncio
import contextlib
import base64
import functools
import binascii
import email
import hashlib
import hmac
import logging
import os
import re
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.generator import BytesGenerator
from email.policy import compat32
from email.utils import format_datetime, formataddr
from io import BytesIO
from pathlib import Path
from urllib.parse import quote

import aiosmtplib
from sqlalchemy import bindparam, case, func, or_, select, update

from . import eventloop, statuses
from .config import Config
from .failures import smtp_line
from .oauth import provider_for
from .render import Rendered, Renderer, plain_layout
from .store.models import Outbox, OutboxContent

log = logging.getLogger(__name__)

LOOP_HEADER = "X-Ticket-Processor"


@dataclass
class Outgoing:
    template: str
    to: list[str]
    cc: list[str] = field(default_factory=list)
    reply_to: list[str] = field(default_factory=list)
    variables: dict = field(default_factory=dict)
    kind: str = "reply"  # reply (to the sender: rate-limited) | notice | escalation | forward
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    ticket_token: str | None = None
    attachments: list[tuple[str, str, bytes]] = field(default_factory=list)  # (filename, mime type, data)
    message_id: str | None = None  # set when queued
    ticket: object = None  # the record it belongs to, if the workflow has it at hand
    # Rows that keep this mail's Message-ID: their ``outbox_message_id`` is set when it is queued.
    stamp: list = field(default_factory=list)
    # The mail that opened the record's thread: (Message-ID, when it arrived),
    # and its subject without prefixes: Outlook's Thread-Index and Thread-Topic.
    thread_root: tuple | None = None
    thread_topic: str | None = None


class MessageIds:
    """Our Message-IDs carry an HMAC so replies to us (and our own mail
    coming back) can be recognised without a lookup."""

    def __init__(self, secret: bytes, domain: str):
        self.secret = secret
        self.domain = domain

    def _mac(self, local: str) -> str:
        return hmac.digest(self.secret, local.encode(), "sha256").hex()[:12]  # hmac.new(...).hexdigest(), one call

    def new(self) -> str:
        local = f"tp.{int(time.time()*1000):x}.{base64.b32encode(os.urandom(5)).decode().lower()}"
        return f"<{local}.{self._mac(local)}@{self.domain}>"

    def is_ours(self, mid: str | None) -> bool:
        if not mid:
            return False
        mid = mid.strip().strip("<>")
        local, _, domain = mid.partition("@")
        base, _, mac = local.rpartition(".")
        return bool(base.startswith("tp.") and mac) and hmac.compare_digest(self._mac(base), mac)


_LINE76 = re.compile(rb".{1,76}", re.S)


def _b64(data: bytes) -> bytes:
    """``data`` in base64, lines of 76 with CRLF: what base64.encodebytes
    gives (with CRLF), without its Python loop over every 57 bytes."""
    if not data:
        return b""
    return b"\r\n".join(_LINE76.findall(binascii.b2a_base64(data, newline=False))) + b"\r\n"


def text_part(subtype: str, text: str) -> bytes:
    """A text/``subtype`` part in UTF-8, header and body. The text goes as
    it is, 8bit (RFC 6152; 7bit when ASCII), when every line fits the
    998-octet limit of RFC 5322 and it has no NUL; else in base64. A reply
    is about a quarter smaller than in base64, with a third of its lines,
    which both the sender and the server pay for; a server without 8BITMIME
    gets it re-encoded at sending time (``downgrade``)."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    body = text.replace("\n", "\r\n").encode("utf-8")
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"
    if b"\0" in body or (len(body) > 998 and max(map(len, body.split(b"\r\n"))) > 998):
        cte, body = "base64", _b64(text.encode("utf-8"))
    else:
        cte = "7bit" if body.isascii() else "8bit"
    return f"Content-Type: text/{subtype}; charset=\"utf-8\"\r\nContent-Transfer-Encoding: {cte}\r\n\r\n".encode() + body


_HEAD_END = re.compile(rb"\r?\n\r?\n")
_FIELD_START = re.compile(rb"\r?\n(?![ \t])")


def _keep_head(original: bytes, regenerated: bytes) -> bytes:
    """``regenerated``'s body under ``original``'s own header fields (the
    generator refolds them), with the regenerated Content-Transfer-Encoding;
    ``regenerated`` as it is when the original's header block is not ASCII."""
    m, g = _HEAD_END.search(original), _HEAD_END.search(regenerated)
    if m is None or g is None or not original[:m.start()].isascii():
        return regenerated

    def fields(head: bytes) -> list[bytes]:
        return [f for f in _FIELD_START.split(head) if f.strip()]

    cte = [f for f in fields(regenerated[:g.start()]) if f.lower().startswith(b"content-transfer-encoding:")]
    kept = [f for f in fields(original[:m.start()]) if not f.lower().startswith(b"content-transfer-encoding:")]
    return b"\r\n".join(kept + cte) + b"\r\n\r\n" + regenerated[g.end():]


def downgrade(raw: bytes) -> bytes:
    """An outgoing mail with 8bit text parts for a server without 8BITMIME:
    those parts re-encoded in base64, its own header fields (Message-ID
    included) untouched; as it is when that cannot be done."""
    return _as_7bit(raw) or raw


def _as_7bit(data: bytes) -> bytes | None:
    """The mail ``data`` as a message/rfc822 part may carry it: 7bit (so the
    outgoing mail stays ASCII and needs no 8BITMIME or SMTPUTF8 from the
    server), CRLF line ends, no line over 998 octets (RFC 2046 5.2.1, RFC
    5322 2.1.1). 8-bit bodies are re-encoded (base64 in their own charset);
    None when that cannot be done (unknown charset, NUL...): the caller
    attaches the bytes as a file instead."""
    if not data.isascii():
        try:
            msg = email.message_from_bytes(data, policy=compat32)
            buf = BytesIO()
            BytesGenerator(buf, mangle_from_=False, policy=compat32.clone(cte_type="7bit", linesep="\r\n")).flatten(msg)
            data = _keep_head(data, buf.getvalue())
        except Exception:  # noqa: BLE001 - any failure: send it as a file
            return None
    if not data.isascii() or b"\0" in data:
        return None
    lines = re.split(rb"\r\n|\r|\n", data)
    if any(len(line) > 998 for line in lines):
        return None
    data = b"\r\n".join(lines)
    return data if data.endswith(b"\r\n") else data + b"\r\n"


# -- headers: nothing a sender wrote reaches them unchecked ---------------------

# Control characters, and what Python or a mail client may take for a line break.
_CTL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")
_MSGID = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]{1,250}>")  # printable ASCII, no < > inside
_ADDR = re.compile(r"[^\s<>()\[\],;:\"\\]+@[^\s<>()\[\],;:\"\\@]+")
_CTYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
_TOKEN = re.compile(r"[A-Za-z0-9!#$&+.^_`|~ -]+")  # safe inside a quoted MIME parameter
MAX_FILENAME = 150


def one_line(value: str) -> str:
    """The value on one line: CR, LF and other control characters become spaces."""
    return _CTL.sub(" ", str(value)).strip()


def _hdr(value: str) -> str:
    """A header value that is safe to write: one line, RFC 2047-encoded
    (and folded) when it is not short plain ASCII."""
    value = one_line(value)
    if value.isascii() and len(value) <= 900:
        return value
    # Encoded words of at most 39 UTF-8 bytes (64 characters each, so a
    # folded line stays under 78 with the header name), never splitting a
    # character; the stdlib's Header does the same, several times slower.
    raw = value.encode("utf-8")
    words, i, n = [], 0, len(raw)
    while i < n:
        j = min(i + 39, n)
        while j < n and raw[j] & 0xC0 == 0x80:  # a continuation byte: cut before its character
            j -= 1
        words.append(raw[i:j])
        i = j
    return "\r\n ".join(f"=?utf-8?b?{base64.b64encode(w).decode('ascii')}?=" for w in words)


def msg_id(value: str | None) -> str | None:
    """A Message-ID fit for In-Reply-To/References, or None: one that is not
    plain ASCII (RFC 5322 msg-id) is dropped, never fatal."""
    if not value:
        return None
    value = str(value).strip()
    if not value.startswith("<"):
        value = f"<{value}>"
    return value if _MSGID.fullmatch(value) else None


def addresses(addrs) -> list[str]:
    """Bare addresses fit for a header or the envelope: one without an @, or
    with spaces, brackets, quotes or line breaks, is left out."""
    out = []
    for a in addrs or []:
        a = str(a).strip()
        if _ADDR.fullmatch(a) and not _CTL.search(a):
            out.append(a)
    return out


def content_type(ctype: str | None) -> str:
    """The attachment's type if it is a plain type/subtype we can send as a
    base64 leaf, else application/octet-stream."""
    ctype = (ctype or "").strip().lower()
    if not _CTYPE.fullmatch(ctype) or ctype.startswith(("multipart/", "message/")):
        # message/rfc822 is 7bit/8bit only (RFC 2046): sent as an .eml file.
        return "application/octet-stream"
    return ctype


def safe_filename(name: str | None) -> str:
    """The name an attachment goes out under: the last path part only (no
    ../, / or \\), no control characters, none of the characters file
    systems refuse, at most MAX_FILENAME characters (the extension kept).
    The store keeps the original for display."""
    name = re.split(r"[\r\n\x85\u2028\u2029]", name or "")[0]  # a name is one line: the rest is not part of it
    name = re.split(r"[\\/]", one_line(name))[-1]
    name = re.sub(r'[<>:"|?*]', "", name)
    name = " ".join(name.split()).strip(" .")
    if len(name) > MAX_FILENAME:
        stem, dot, ext = name.rpartition(".")
        ext = ext if dot and 0 < len(ext) <= 10 else ""
        name = name[:MAX_FILENAME - len(ext) - 2].rstrip(" .") + "…" + ("." + ext if ext else "")
    return name or "attachment"


def _param(key: str, value: str) -> str:
    """``; key="value"``, or encoded per RFC 2231 (UTF-8, percent-encoded,
    split into continuations) when the value is not plain ASCII text."""
    if _TOKEN.fullmatch(value) and len(value) <= 60:
        return f'; {key}="{value}"'
    enc = quote(value.encode("utf-8"), safe="")
    chunks, i = [], 0
    while i < len(enc):
        j = min(len(enc), i + 60)
        if "%" in enc[j - 2:j]:  # never split a %XX escape
            j = enc.rindex("%", i, j)
        chunks.append(enc[i:j])
        i = j
    if len(chunks) == 1:
        return f";\r\n {key}*=utf-8''{chunks[0]}"
    charset = "utf-8''"
    return "".join(f";\r\n {key}*{n}*={charset if n == 0 else ''}{c}" for n, c in enumerate(chunks))


def named(addrs, names=None) -> str:
    """An address list for To/Cc: each bare address (see ``addresses``) with
    its person's display name where ``names`` (address -> name) has one,
    RFC 2047-encoded when not plain ASCII: ``=?utf-8?b?6LW15pWP?= <zhaomin@…>``
    shows as 赵敏 in every client."""
    out = []
    for a in addresses(addrs):
        name = one_line((names or {}).get(a.lower()) or "")[:100]
        if not name:
            out.append(a)
        elif name.isascii():
            out.append(formataddr((name, a)))
        else:
            out.append(f"{_hdr(name)} <{a}>")
    return ", ".join(out)


# Outlook threads by Thread-Index (PidTagConversationIndex, MS-OXOMSG
# 2.2.1.3) and Thread-Topic. The index is derived from the thread alone, so
# every mail about a record carries the same 22-byte header: 0x01, the top
# 40 bits of the thread's start as a FILETIME, and a GUID from the thread's
# opening Message-ID; a mail in the thread adds one 5-byte response level.
_THREAD_NS = uuid.UUID("6f1c2d4e-8a3b-5c7d-9e0f-112233445566")
_THREAD_NS_BYTES = _THREAD_NS.bytes
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=timezone.utc)


def _filetime(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    delta = dt - _FILETIME_EPOCH
    return (delta.days * 86400 + delta.seconds) * 10_000_000 + delta.microseconds * 10


def _uuid5(key: str) -> bytes:
    """``uuid.uuid5(_THREAD_NS, key).bytes`` without building UUID objects
    (RFC 4122 4.3: SHA-1 of namespace and name, version 5, variant 10)."""
    h = bytearray(hashlib.sha1(_THREAD_NS_BYTES + key.encode("utf-8")).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x50
    h[8] = (h[8] & 0x3F) | 0x80
    return bytes(h)


def thread_index(root: str, start: datetime, now: datetime, this: str) -> str:
    """The Thread-Index of mail ``this`` in the thread opened by Message-ID
    ``root`` at ``start``: base64 of the conversation index header, plus one
    response level (time since ``start``) unless ``this`` opens the thread."""
    key = root.strip().strip("<>").lower()
    head_time = (_filetime(start) >> 24) & 0xFF_FFFF_FFFF
    out = b"\x01" + head_time.to_bytes(5, "big") + _uuid5(key)
    if this.strip().strip("<>").lower() != key:
        delta = max(0, _filetime(now) - (head_time << 24))
        dc, bits = (0, (delta >> 18)) if delta < 1 << 49 else (1, (delta >> 23))
        tail = hashlib.sha256(this.encode("utf-8", "replace")).digest()[0]  # 4 random bits, 4 sequence bits
        out += ((dc << 39) | ((bits & 0x7FFF_FFFF) << 8) | tail).to_bytes(5, "big")
    return base64.b64encode(out).decode("ascii")


@functools.lru_cache(maxsize=8)
def _from(name: str, address: str) -> str:
    """The From header: the system's name (RFC 2047 when not ASCII) and address,
    the same for every mail of a configuration."""
    return formataddr((one_line(name), address), charset="utf-8")


@dataclass
class Draft:
    """What an outgoing mail's bytes are built from, every value JSON-able.

    A mail without attachments is queued as its draft (``OutboxContent.draft``)
    and built into bytes by the sender (:func:`mail_bytes`): laying out its
    HTML part and encoding the MIME were about a sixth of the intake's CPU
    on the mix benchmark, and the sender runs beside the intake. A mail with
    attachments is built when it is queued (``OutboxContent.raw``): its files are
    not copied into a draft. So is every mail while the sender is behind
    (``SENDER_BEHIND``)."""
    message_id: str
    date: str  # ISO 8601: when it was queued (the Date header)
    subject: str  # the record's token included
    to: list
    cc: list
    reply_to: list
    names: dict  # address (lower-case) -> the display name To and Cc show
    in_reply_to: str | None
    references: list
    thread_root: list | None  # [Message-ID, ISO time] of the mail that opened the thread
    thread_topic: str
    kind: str
    text: str
    html: str | None = None  # the HTML part when made already; None: laid out from the text
    heading: str = ""  # the template's subject, without the token: the layout's title
    number: str = ""  # the record's number and its kind's label, shown by the layout
    record_kind: str = ""


_DRAFT_FIELDS = frozenset(Draft.__dataclass_fields__)

# More mails than this waiting for a sender: it is behind, and the intake
# builds the mails it queues itself rather than leave it more work. Where the
# sender has a core to itself (the mail server is another machine) it keeps
# up and builds them; where the second core is busy too (the benchmarks' SMTP
# server on the same machine), it does not, and the work goes back to the
# intake. Measured on the mix with the sink on asyncio's loop: drafts alone
# 44-48 % of the baseline, built by the intake alone 47-48 %, balanced 48-51 %.
SENDER_BEHIND = 100


def sender_behind(s, limit: int | None = None) -> bool:
    """Do more than ``limit`` (default ``SENDER_BEHIND``) due mails wait for
    a sender? One query, which counts no further than that: its cost does
    not grow with a queue that grows (a mail server down for hours)."""
    limit = SENDER_BEHIND if limit is None else limit
    due = (select(Outbox.id).where(Outbox.status == "pending", Outbox.next_attempt_at <= datetime.now(timezone.utc))
           .limit(limit + 1).subquery())
    return s.scalar(select(func.count()).select_from(due)) > limit


def subject_line(subject: str, token: str | None) -> str:
    """The Subject of a mail: one line, with the record's token."""
    subject = one_line(subject)
    if token and f"[#{token}]" not in subject:
        subject = f"{subject} [#{one_line(token)}]"
    return subject


def draft_of(out: Outgoing, rendered: Rendered, message_id: str, now: datetime, names: dict | None = None,
             number: str = "", record_kind: str = "") -> Draft:
    """The draft of an Outgoing rendered: plain values, not yet sanitised
    (:func:`compose` does that). ``rendered.html`` None: the layout makes the
    HTML part from the text when the mail is built."""
    subject = subject_line(rendered.subject, out.ticket_token)
    root = None
    if out.thread_root:
        r, start = out.thread_root
        root = [r, start.isoformat() if isinstance(start, datetime) else None]
    return Draft(message_id=message_id, date=now.isoformat(), subject=subject, to=list(out.to), cc=list(out.cc),
                 reply_to=list(out.reply_to), names=dict(names or {}), in_reply_to=out.in_reply_to,
                 references=list(out.references), thread_root=root,
                 thread_topic=out.thread_topic or out.variables.get("topic") or subject, kind=out.kind,
                 text=rendered.text, html=rendered.html, heading=rendered.subject, number=number,
                 record_kind=record_kind)


def compose(cfg: Config, d: Draft, html: str, attachments=()) -> bytes:
    """The bytes of a mail: its draft, its HTML part and its attachments
    ((filename, MIME type, data)). The one builder of every mail we send.

    Built directly rather than through EmailMessage: the stdlib's header
    registry made this ~40x slower and it is on the hot path. Every value
    that may come from a mail (subject, addresses, Message-IDs, attachment
    names and types) goes through the sanitisers above."""
    now = datetime.fromisoformat(d.date)
    message_id = d.message_id
    h = [("From", _from(cfg.system.name, cfg.system.address))]
    if addresses(d.to):
        h.append(("To", named(d.to, d.names)))
    if addresses(d.cc):
        h.append(("Cc", named(d.cc, d.names)))
    if addresses(d.reply_to):
        h.append(("Reply-To", ", ".join(addresses(d.reply_to))))
    h += [("Subject", _hdr(d.subject)), ("Date", format_datetime(now)), ("Message-ID", message_id)]
    in_reply_to = msg_id(d.in_reply_to)
    if in_reply_to:
        h.append(("In-Reply-To", in_reply_to))
    refs = list(dict.fromkeys(m for m in map(msg_id, d.references) if m))
    if in_reply_to and in_reply_to not in refs:
        refs.append(in_reply_to)
    if refs:
        h.append(("References", "\r\n ".join(refs[-20:])))
    # Outlook's own threading: the same index header for every mail of the thread.
    if d.thread_root:
        root, start = d.thread_root[0], (datetime.fromisoformat(d.thread_root[1]) if d.thread_root[1] else now)
    else:
        root, start = (refs[0] if refs else message_id), now
    h.append(("Thread-Index", thread_index(root, start, now, message_id)))
    h.append(("Thread-Topic", _hdr(d.thread_topic[:200])))
    h += [("Auto-Submitted", "auto-replied" if d.kind == "reply" else "auto-generated"),
          ("X-Auto-Response-Suppress", "All"), (LOOP_HEADER, cfg.system.address), ("MIME-Version", "1.0")]
    tag = message_id.strip("<>").split("@")[0].replace(".", "")
    alt = f"=_alt_{tag}"
    body = f"--{alt}\r\n".encode() + text_part("plain", d.text) \
        + f"--{alt}\r\n".encode() + text_part("html", html) + f"--{alt}--\r\n".encode()
    if attachments:
        mixed = f"=_mix_{tag}"
        parts = [f"--{mixed}\r\nContent-Type: multipart/alternative; boundary=\"{alt}\"\r\n\r\n".encode() + body]
        for filename, ctype, data in attachments:
            fn = safe_filename(filename)
            inner = _as_7bit(data) if (ctype or "").strip().lower() == "message/rfc822" else None
            if inner is not None:
                # The original mail, shown inline by the clients.
                parts.append((f"--{mixed}\r\nContent-Type: message/rfc822\r\n"
                              f"Content-Transfer-Encoding: 7bit\r\n"
                              f"Content-Disposition: inline{_param('filename', fn)}\r\n\r\n").encode() + inner)
                continue
            parts.append((f"--{mixed}\r\nContent-Type: {content_type(ctype)}{_param('name', fn)}\r\n"
                          f"Content-Transfer-Encoding: base64\r\n"
                          f"Content-Disposition: attachment{_param('filename', fn)}\r\n\r\n").encode() + _b64(data))
        body = b"".join(parts) + f"--{mixed}--\r\n".encode()
        h.append(("Content-Type", f"multipart/mixed; boundary=\"{mixed}\""))
    else:
        h.append(("Content-Type", f"multipart/alternative; boundary=\"{alt}\""))
    # UTF-8 only in an address (RFC 6532; sent with SMTPUTF8): all else is ASCII by now.
    head = "".join(f"{k}: {v}\r\n" for k, v in h).encode("utf-8")
    return head + b"\r\n" + body


def build_mime(cfg: Config, out: Outgoing, rendered: Rendered, message_id: str, now: datetime,
               names: dict | None = None) -> tuple[str, bytes]:
    """Return (subject, raw bytes) of the outgoing mail, built at once
    (``rendered.html`` made already). ``names`` maps addresses
    (lower-case) to the display names To and Cc show."""
    d = draft_of(out, rendered, message_id, now, names)
    return d.subject, compose(cfg, d, rendered.html, out.attachments)


def mail_bytes(cfg: Config, raw: bytes | None, draft: dict | None, templates) -> bytes:
    """The bytes of an outbox row: ``raw`` when it was built as it was
    queued, else built from its ``draft``. ``templates()`` returns the
    ``Renderer`` whose layout draws a draft's HTML part; if that fails, the
    mail goes with its text in a plain HTML part, and the log says why."""
    if raw is not None:
        return raw
    if draft is None:  # its outbox_content row is missing
        raise LookupError("存储中没有这封邮件的内容")
    d = Draft(**{k: v for k, v in draft.items() if k in _DRAFT_FIELDS})  # a field a later version added: ignored
    html = d.html
    if html is None:
        try:
            html = templates().layout(d.heading, d.text, d.number, d.record_kind, system=cfg.system)
        except Exception as e:  # noqa: BLE001 - an admin's template error must not hold the mail back
            log.warning("邮件 %s 的 HTML 版式无法生成（%s: %s），改用纯文本版式发送；请运行 python run.py check 检查模板",
                        one_line(d.message_id), type(e).__name__, one_line(str(e))[:300])
            html = plain_layout(d.text)
    return compose(cfg, d, html)


# -- delivery ---------------------------------------------------------------
#
# A sender claims due rows under a lease (status 'claimed', claimed_by,
# lease_until) and starts no send after half the lease. Before each send it
# marks the row in flight: a line in its own journal file with SQLite (no
# database lock), status 'sending' with PostgreSQL. Any process may take back
# rows whose lease expired, or at once those of a process known to be dead;
# only rows marked in flight without a recorded result become `uncertain`.
#
# Each recipient has its own result (rcpt_state): accepted, deferred (4xx:
# tried again alone, same Message-ID) or failed (5xx, or 4xx until the last
# attempt). A row is 'sent' once no recipient is left to try and at least
# one accepted it, 'failed' when none did.

HELD = ("claimed", "sending")


async def _xoauth2(smtp: aiosmtplib.SMTP, username: str, token: str) -> None:
    """AUTH XOAUTH2 (the SASL form of RFC 6750 bearer tokens that Exchange
    Online and Gmail speak). A refusal comes as a 334 carrying a JSON error,
    to be answered with an empty line; the final reply is then 535."""
    raw = f"user={username}\x01auth=Bearer {token}\x01\x01".encode()
    r = await smtp.execute_command(b"AUTH", b"XOAUTH2", base64.b64encode(raw))
    if r.code == 334:
        r = await smtp.execute_command(b"")
    if r.code != 235:
        raise aiosmtplib.SMTPAuthenticationError(r.code, r.message)


async def sign_in(smtp: aiosmtplib.SMTP, c) -> None:
    """Authenticate an ehlo'd connection as [smtp] says (SmtpConfig): a
    password, an OAuth2 token (a refused token is dropped, a fresh one
    fetched and tried once more), or nothing without a username."""
    if c.auth == "xoauth2":
        if "xoauth2" not in smtp.server_auth_methods:
            # Exchange Online offers AUTH only after STARTTLS.
            raise aiosmtplib.SMTPException("SMTP AUTH XOAUTH2 not supported by the server (its EHLO offers no AUTH XOAUTH2)")
        provider = provider_for(c.oauth)
        token = await asyncio.to_thread(provider.token)
        try:
            await _xoauth2(smtp, c.username, token)
        except aiosmtplib.SMTPAuthenticationError:
            provider.invalidate(token)
            token = await asyncio.to_thread(provider.token)
            log.info("发信服务器 SMTP：服务器拒绝了访问令牌，已重新获取令牌再登录一次")
            await _xoauth2(smtp, c.username, token)
    elif c.username:
        await smtp.login(c.username, c.secret())


def _backoff(cfg: Config, attempts: int) -> timedelta:
    return timedelta(seconds=min(cfg.outbox.backoff_max, cfg.outbox.backoff_base * (2 ** max(0, attempts - 1))))


def _proc_start(pid: int) -> str | None:
    """The process's start time (clock ticks after boot) from /proc; None when
    there is no such process (or only its zombie), "" when unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        if not Path("/proc/self/stat").exists():  # no procfs: ask the kernel
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return None
            except OSError:
                pass
        return None if Path("/proc/self/stat").exists() else ""
    except (OSError, IndexError):
        return ""
    if fields and fields[0] in ("Z", "X"):
        return None
    return fields[19] if len(fields) > 19 else ""


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "_", text)[:100]


def _host() -> str:
    """This host, as far as its process ids go: the host name and the pid
    namespace (two containers may share a name, never a namespace)."""
    try:
        ns = re.sub(r"\D", "", os.readlink("/proc/self/ns/pid"))
    except OSError:
        ns = ""
    return _safe(socket.gethostname()) + (f"-{ns}" if ns else "")


def new_sender_id(journal: bool = False) -> str:
    """host_pid_start_random: unique per sender, and enough to tell from the
    same host whether the process still runs (file-name safe). ``journal``:
    the sender keeps its marks in a journal (the random part ends in "j"),
    which only a process that can read that file can take its claims back
    from (``_journal_elsewhere``)."""
    pid = os.getpid()
    return f"{_host()}_{pid}_{_proc_start(pid) or ''}_{os.urandom(3).hex()}{'j' if journal else ''}"


def _owner_host(owner: str) -> str | None:
    parts = owner.rsplit("_", 3)
    return parts[0] if len(parts) == 4 else None


def _journal_elsewhere(store, owner: str) -> bool:
    """Did ``owner`` keep its marks in a journal that this process cannot
    read? A sender on another host with a journal of its own (PostgreSQL's
    ``outbox.journal_dir``): which of its claimed mails went out is written
    only there."""
    if not owner.endswith("j") or _owner_host(owner) == _host():
        return False
    jpath = _journal_for(store, owner)
    return jpath is None or not jpath.exists()


def _owner_dead(owner: str) -> bool:
    """True only when the claiming process is known to be gone: it ran on
    this host and its process no longer exists (or the pid is reused)."""
    try:
        host, pid, start, _ = owner.rsplit("_", 3)
        pid = int(pid)
    except ValueError:
        return False
    if host != _host():
        return False
    now = _proc_start(pid)
    if now is None:
        return True
    return bool(start and now and start != now)


def journal_path(store) -> Path | None:
    """The store's journal base path (``Store.journal``): beside a SQLite
    database; for PostgreSQL in ``outbox.journal_dir``, or None. Each sender
    appends to its own file, ``<base>.<sender id>``."""
    return getattr(store, "journal", None)


def _journal_for(store, owner: str) -> Path | None:
    base = journal_path(store)
    if base is None:
        return None
    return base if not owner else base.with_name(f"{base.name}.{owner}")


def _read_journal(path: Path | None) -> tuple[dict[int, str], set[int]]:
    """(rows accepted -> when, rows whose send started)."""
    done: dict[int, str] = {}
    started: set[int] = set()
    if path is None or not path.exists():
        return done, started
    for line in path.read_text().splitlines():
        a, _, b = line.partition("\t")
        if a == "s" and b.isdigit():
            started.add(int(b))
        elif a.isdigit() and b:  # a torn last line (crash mid-write) has no timestamp
            done[int(a)] = b
    return done, started


# One statement for every row a journal says was accepted (executemany on the
# Core connection: no ORM evaluation of the session's objects per row).
_DONE = update(Outbox.__table__).where(Outbox.__table__.c.id == bindparam("rid")).values(
    status="sent", sent_at=bindparam("at"), last_error="", claimed_by="", lease_until=None)


def _apply_done(s, done: dict[int, str]) -> None:
    if done:
        s.connection().execute(_DONE, [{"rid": rid, "at": datetime.fromisoformat(at)} for rid, at in done.items()])


def _empty(journal: Path) -> None:
    """Empty a journal whose contents are committed to the store."""
    if journal.exists():
        journal.write_bytes(b"")


def recover(store, *, exclude: str = "") -> int:
    """Take back the outbox rows whose claim lapsed: the lease expired, or the
    claiming process (on this host) is dead. What a journal says was accepted
    is recorded first; rows that were in flight (marked before the send, no
    result recorded) are flagged uncertain: the server may or may not have
    accepted them, and they go out again with the same Message-ID. Rows still
    under a live lease are left alone, so any number of senders can share a
    store and run this at any time. So are the rows of a sender on another
    host whose journal is there, not here: which of them went out is not
    known here (they are logged, for ``outbox release``). Returns the number
    of uncertain rows."""
    now = datetime.now(timezone.utc)
    with store.reader() as s:
        held = s.execute(select(Outbox.claimed_by, Outbox.lease_until).where(Outbox.status.in_(HELD)).distinct()).all()
    owners: dict[str, bool] = {}  # owner -> dead
    for owner, until in held:
        if owner == exclude or owner in owners and owners[owner]:
            continue
        dead = _owner_dead(owner)
        if dead or until is None or until < now:
            owners[owner] = dead
    n = 0
    for owner, dead in owners.items():
        if _journal_elsewhere(store, owner):
            _log_held_elsewhere(store, owner)
            continue
        jpath = _journal_for(store, owner)
        with store.session() as s, s.begin():  # on SQLite the write lock: recoveries take turns
            done, started = _read_journal(jpath)
            _apply_done(s, done)
            cond = [Outbox.claimed_by == owner, Outbox.status.in_(HELD)]
            if not dead:
                cond.append(or_(Outbox.lease_until.is_(None), Outbox.lease_until < now))
            # In flight: in the journal, or (a sender without one) marked in the store.
            flag = or_(Outbox.id.in_(list(started - set(done))), Outbox.status == "sending")
            back = dict(status="pending", claimed_by="", lease_until=None)
            n += s.execute(update(Outbox).where(*cond, flag).values(uncertain=True, **back)).rowcount or 0
            s.execute(update(Outbox).where(*cond).values(**back))
        if jpath is not None and (dead or not owner):  # not owner: the journal of a version before leases
            jpath.unlink(missing_ok=True)
    base = journal_path(store)
    if base is not None:  # journals of dead senders that held nothing any more
        for p in base.parent.glob(base.name + ".*"):
            owner = p.name[len(base.name) + 1:]
            if owner != exclude and owner not in owners and _owner_dead(owner):
                with store.session() as s, s.begin():
                    _apply_done(s, _read_journal(p)[0])
                p.unlink(missing_ok=True)
    return n


def held_elsewhere(store) -> dict[str, int]:
    """The lapsed claims ``recover`` leaves alone, because their sender's
    journal is on another host: sender id -> mails it holds (for ``report
    outbox`` and ``check --connect``)."""
    now = datetime.now(timezone.utc)
    with store.reader() as s:
        held = s.execute(select(Outbox.claimed_by, func.count()).where(
            Outbox.status.in_(HELD), Outbox.lease_until < now).group_by(Outbox.claimed_by)).all()
    return {owner: n for owner, n in held if _journal_elsewhere(store, owner)}


def held_elsewhere_line(owner: str, n: int) -> str:
    """What to do about such a claim, in one Chinese line."""
    return (f"主机 {_owner_host(owner)} 上的发信进程 {owner} 持有 {n} 封邮件，租约已过期；它的发送日志在那台主机上，本机无法判断"
            f"其中哪些已经发出。请在那台主机上重新启动服务；确认那台主机无法恢复时，运行 python run.py outbox release {owner}"
            "（这些邮件将以相同的 Message-ID 再发一次，收件方可据此去重）")


_held_logged: set[tuple[str, str]] = set()  # (store, owner) already logged by this process


def _log_held_elsewhere(store, owner: str) -> None:
    if (store.url, owner) in _held_logged:
        return
    _held_logged.add((store.url, owner))
    with store.reader() as s:
        n = s.scalar(select(func.count()).select_from(Outbox).where(Outbox.claimed_by == owner,
                                                                     Outbox.status.in_(HELD)))
    log.warning("发信：%s；本进程不接手", held_elsewhere_line(owner, n))


class LeaseRunning(Exception):
    """``release`` refused: the sender's lease runs until ``until`` (UTC)."""

    def __init__(self, until: datetime):
        super().__init__(until)
        self.until = until


def release(store, owner: str) -> int:
    """``outbox release``: put back the rows held by ``owner`` whose lease
    has expired, flagged uncertain (they go out again with the same
    Message-ID). For a sender whose journal is out of reach (another host,
    gone for good). Raises LeaseRunning while its lease runs."""
    now = datetime.now(timezone.utc)
    with store.session() as s, s.begin():
        leases = s.scalars(select(Outbox.lease_until).where(Outbox.claimed_by == owner,
                                                             Outbox.status.in_(HELD))).all()
        live = [u for u in leases if u is not None and u >= now]
        if live and not _owner_dead(owner):
            raise LeaseRunning(max(live))
        if not leases:
            return 0
        return s.execute(update(Outbox).where(Outbox.claimed_by == owner, Outbox.status.in_(HELD))
                         .values(status="pending", uncertain=True, claimed_by="", lease_until=None)).rowcount or 0


async def _send_one(smtp: aiosmtplib.SMTP, mail_from: str, rcpt: list[str], raw: bytes) -> dict[str, tuple[int, str]]:
    """MAIL, RCPT..., DATA on an open aiosmtplib connection. Returns each
    recipient's outcome (reply code, server text): its RCPT refusal, or the
    DATA reply for the recipients accepted at RCPT. Raises for MAIL FROM
    refused (SMTPSenderRefused) and for a broken connection.

    aiosmtplib's sendmail() re-parses every address with email.utils on each
    call (~0.15 ms of CPU per mail) and hides which recipients were refused
    when others were accepted; our addresses are already bare and
    lower-cased, so the commands are issued directly."""
    params = b""
    ascii_addresses = mail_from.isascii() and all(r.isascii() for r in rcpt)
    if not (ascii_addresses and raw.isascii()):
        end = raw.find(b"\r\n\r\n") % (len(raw) + 1)  # (no blank line: all head)
        if not (ascii_addresses and raw[:end].isascii()):
            params += b" SMTPUTF8"  # UTF-8 in an address (RFC 6531)
        if not raw[end:].isascii():  # an 8bit text part (text_part)
            if smtp.supports_extension("8bitmime"):
                params += b" BODY=8BITMIME"
            else:
                raw = downgrade(raw)
    resp = await smtp.execute_command(b"MAIL", b"FROM:<" + mail_from.encode() + b">" + params)
    if resp.code != 250:
        await smtp.rset()
        raise aiosmtplib.SMTPSenderRefused(resp.code, resp.message, mail_from)
    out: dict[str, tuple[int, str]] = {}
    accepted = []
    for r in rcpt:
        if not addresses([r]):  # never written into an SMTP command
            out[r] = (553, "5.1.3 invalid address, not sent")
            continue
        resp = await smtp.execute_command(b"RCPT", b"TO:<" + r.encode() + b">")
        if resp.code in (250, 251):
            accepted.append(r)
        else:
            out[r] = (resp.code, resp.message)
    if not accepted:
        await smtp.rset()
        return out
    try:
        resp = await smtp.data(raw)
        code, text = resp.code, resp.message
    except aiosmtplib.SMTPResponseException as e:
        code, text = e.code, e.message
    except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as e:
        raise _LostInData(accepted) from e
    for r in accepted:
        out[r] = (code, text)
    return out


class _LostInData(Exception):
    """The connection broke after DATA began: the server may have accepted
    the mail for these recipients."""

    def __init__(self, accepted: list[str]):
        super().__init__(accepted)
        self.accepted = accepted


@dataclass
class DeliveryStats:
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    error: str = ""


@dataclass
class _Row:
    id: int
    mail_from: str
    rcpt: list
    raw: bytes | None
    draft: dict | None
    attempts: int
    state: dict
    message_id: str
    subject: str

    def targets(self) -> list[str]:
        """Recipients still to try: not accepted, not refused for good."""
        return [r for r in self.rcpt if (self.state or {}).get(r, {}).get("state") not in ("sent", "failed")]


def _clip(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[:n - 1] + "…"


def status_label(status: str, rcpt_state: dict | None, uncertain: bool = False) -> str:
    """The row's state in Chinese, recipient by recipient where they differ."""
    states = [v.get("state") for v in (rcpt_state or {}).values()]
    label = statuses.name(statuses.OUTBOX, status)
    if status == "pending" and "deferred" in states:
        label = "部分已送达，其余待重试" if "sent" in states else "待重试"
    elif status == "sent" and "failed" in states:
        label = f"已发送（{states.count('failed')} 位收件人未送达）"
    if uncertain and status != "suppressed":
        label += "，可能重复发送"
    return label


def undelivered(rcpt_state: dict | None) -> str:
    """Recipients refused for good, with the server's answer."""
    return "；".join(f"{a}（{v.get('code') or ''} {v.get('reply', '')}".replace("（ ", "（").rstrip() + "）"
                    for a, v in (rcpt_state or {}).items() if v.get("state") == "failed")


def _unsynced(conn, on: bool = True) -> None:
    """PostgreSQL: the sender's commits of one mail each (without a journal:
    in flight and result; with one: a result other than "accepted by every
    recipient") do not wait for the write-ahead log to reach the disk. Such a commit
    survives the sender's own death (the database server has it); only a
    crash of the database server or its machine can lose the last fraction of
    a second of them, and those mails then go out again with their own
    Message-ID: the journal makes the same promise (appended, not
    synced). Waiting for the disk once per mail made the sender, not intake,
    set the pace (about a sixth of the mix benchmark's time). Intake's
    commits are not touched: they stay durable.

    While it sends, the connection is in autocommit: each statement commits
    itself, one round trip per mail (a transaction is BEGIN, the statement
    and COMMIT: three). The pool gives it back in its usual mode."""
    if conn.dialect.name == "postgresql":
        if on:
            conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql("SET synchronous_commit TO " + ("OFF" if on else "DEFAULT"))
        conn.commit()


# PostgreSQL without a journal (``outbox.journal_dir = ""``): a claim of at
# least this many mails gets the event loop's own connection for its per-mail
# statements (``_open_mail_conn``). Opening one
# costs a few milliseconds (the server starts a backend for it), about what
# the blocked round trips of a dozen mails cost; a smaller claim (a daemon
# answering mail as it comes) uses the pooled connection.
OWN_CONNECTION_FROM = 16


class Deliverer:
    def __init__(self, cfg: Config, store, sender_id: str | None = None, templates=None):
        """``templates``: returns the loaded templates (a ``Renderer``: the
        daemon's, which a reload replaces); without it, the sender loads
        them from ``paths.templates`` once, when a mail needs its layout."""
        self.cfg = cfg
        self.store = store
        self._templates = templates
        self._renderer = None
        self.owner = sender_id or new_sender_id(journal=journal_path(store) is not None)
        self._deadline = 0.0
        self._premarked: set[int] = set()  # rows marked in flight with the previous result (PostgreSQL)
        self._aconn = None  # PostgreSQL: the event loop's connection for the per-mail statements (_execute)
        self._compiled: dict = {}
        self._next_recover = time.monotonic() + cfg.outbox.lease / 4

    def _loaded(self) -> Renderer:
        if self._templates is not None:
            return self._templates()
        if self._renderer is None:
            self._renderer = Renderer(self.cfg.path(self.cfg.paths.templates))
        return self._renderer

    def _bytes(self, row: _Row) -> bytes:
        return mail_bytes(self.cfg, row.raw, row.draft, self._loaded)

    def _claim(self, limit: int, fold: Path | None = None) -> list[_Row]:
        """Claim up to ``limit`` due rows. ``fold``: the journal of the batch
        just sent, folded in the same transaction (SQLite: one wait for the
        write lock per batch, not two; the intake holds it for most of the
        time)."""
        lease = self.cfg.outbox.lease
        with self.store.session() as s, s.begin():
            # The write lock first (SQLite: the wait may be long), then what
            # is due by then: rows committed during the wait are taken too.
            s.connection()
            now, t0 = datetime.now(timezone.utc), time.monotonic()
            if fold is not None:
                self._fold(s, fold)
            q = (select(Outbox.id).where(Outbox.status == "pending", Outbox.next_attempt_at <= now)
                 .order_by(Outbox.id).limit(limit))
            if s.bind.dialect.name == "postgresql":
                q = q.with_for_update(skip_locked=True)
            ids = list(s.scalars(q))
            if ids:
                s.execute(update(Outbox).where(Outbox.id.in_(ids)).values(
                    status="claimed", claimed_by=self.owner, lease_until=now + timedelta(seconds=lease)))
        if fold is not None:
            _empty(fold)
        # The mails themselves are read once they are ours, after the commit:
        # on SQLite the write lock is held for the claim only, not while 500
        # mails of about 10 kB are read (the intake waits for it: on the mix
        # the claims held it 19 ms each).
        rows = []
        if ids:
            with self.store.reader() as s:
                rows = [_Row(*r) for r in s.execute(
                    select(Outbox.id, Outbox.mail_from, Outbox.rcpt, OutboxContent.raw, OutboxContent.draft,
                           Outbox.attempts, Outbox.rcpt_state, Outbox.message_id, Outbox.subject)
                    .outerjoin(Outbox.content).where(Outbox.id.in_(ids)).order_by(Outbox.id)).all()]
        # Half the lease is left for the last send and for clocks that differ.
        self._deadline = t0 + lease / 2
        return rows

    _SENT = update(Outbox).where(Outbox.id == bindparam("rid")).values(
        status="sent", sent_at=bindparam("now"), attempts=bindparam("n"), last_error="", claimed_by="", lease_until=None)
    _SENDING = update(Outbox).where(Outbox.id == bindparam("rid")).values(status="sending")
    # Both at once (PostgreSQL): row ``rid`` sent, the connection's next row ``nxt`` in flight.
    _mine = Outbox.id == bindparam("rid")
    _SENT_NEXT = update(Outbox).where(Outbox.id.in_([bindparam("rid"), bindparam("nxt")])).values(
        status=case((_mine, "sent"), else_="sending"), sent_at=case((_mine, bindparam("now")), else_=Outbox.sent_at),
        attempts=case((_mine, bindparam("n")), else_=Outbox.attempts), last_error=case((_mine, ""), else_=Outbox.last_error),
        claimed_by=case((_mine, ""), else_=Outbox.claimed_by), lease_until=case((_mine, None), else_=Outbox.lease_until))
    del _mine

    async def _open_mail_conn(self) -> None:
        """PostgreSQL: a connection of the event loop's own for the per-mail
        statements (a mail in flight, a mail sent). Each is a round trip to
        the server; made on the pooled connection it blocked the loop, and
        with it every other SMTP connection's exchange (about a third of the
        sender's time on the mix benchmark). The sender still waits for each
        before going on with that SMTP connection: a mail's in-flight mark
        is committed before its first byte. Autocommit, and commits that do
        not wait for the disk (see _unsynced)."""
        engine = self.store.engine
        if engine.dialect.name != "postgresql":
            return
        import psycopg

        args, kw = engine.dialect.create_connect_args(engine.url)
        self._aconn = await psycopg.AsyncConnection.connect(*args, **kw, autocommit=True)
        await self._aconn.execute("SET synchronous_commit TO OFF")

    async def _close_mail_conn(self) -> None:
        if self._aconn is not None:
            aconn, self._aconn = self._aconn, None
            await aconn.close()

    async def _execute(self, stmt, params: dict) -> None:
        """One per-mail statement: on the loop's connection where there is
        one (PostgreSQL), else on the pooled one."""
        if self._aconn is None:
            self._conn.execute(stmt, params)
            return
        compiled = self._compiled.get(stmt)
        if compiled is None:
            compiled = self._compiled[stmt] = stmt.compile(dialect=self.store.engine.dialect)
        procs = compiled._bind_processors
        values = {k: procs[k](v) if k in procs else v for k, v in compiled.construct_params(params).items()}
        await self._aconn.execute(compiled.string, values)

    async def _started(self, row: _Row) -> None:
        """Mark the row in flight, before its first byte goes out. With
        PostgreSQL the mark usually went in with the previous row's result
        (one commit per mail, not two)."""
        if self._journal is not None:
            self._journal.write(f"s\t{row.id}\n")
            self._journal.flush()
        elif row.id in self._premarked:
            self._premarked.discard(row.id)
        else:
            await self._execute(self._SENDING, {"rid": row.id})
            self._conn.commit()

    async def _commit(self, nxt: _Row | None, sent: dict | None = None) -> None:
        """Commit a result (``sent``: the parameters of _SENT, for a row every
        recipient accepted); with PostgreSQL mark the connection's next row in
        flight in the same transaction, in the same statement as ``sent`` (if
        the process dies before that send, the row is flagged uncertain
        without having gone out: still at most one row per connection)."""
        if nxt is not None and self._journal is None:
            if sent is not None:
                await self._execute(self._SENT_NEXT, {**sent, "nxt": nxt.id})
            else:
                await self._execute(self._SENDING, {"rid": nxt.id})
            self._premarked.add(nxt.id)
        elif sent is not None:
            await self._execute(self._SENT, sent)
        self._conn.commit()

    async def _record(self, row: _Row, results: dict[str, tuple[int | None, str]], stats: DeliveryStats,
                uncertain: bool = False, nxt: _Row | None = None) -> None:
        """Record one attempt's outcome at once: the window in which a crash
        could make us send a mail again is one write long. With SQLite a
        complete acceptance is appended to the journal (no database lock, so
        delivery never waits for intake's write transaction) and folded in
        per batch."""
        now = datetime.now(timezone.utc)
        n = row.attempts + 1
        last_try = n >= self.cfg.outbox.max_attempts
        if results and not row.state and not uncertain and all(c is not None and c < 400 for c, _ in results.values()):
            stats.sent += 1
            if self._journal is not None:
                self._journal.write(f"{row.id}\t{now.isoformat()}\n")
                self._journal.flush()
            else:  # one statement, one commit per mail
                await self._commit(nxt, sent={"rid": row.id, "now": now, "n": n})
            return
        state = dict(row.state or {})
        gave_up = []
        for addr, (code, reply) in results.items():
            if code is not None and code < 400:
                st = "sent"
            elif (code is not None and code >= 500) or last_try:
                st = "failed"
                gave_up.append(addr)
            else:
                st = "deferred"
            state[addr] = {"state": st, "code": code, "reply": _clip(reply, 300), "at": now.isoformat(timespec="seconds")}
        left = [r for r in row.rcpt if state.get(r, {}).get("state") not in ("sent", "failed")]
        if left:
            status = "pending"
            stats.deferred += 1
        elif any(state.get(r, {}).get("state") == "sent" for r in row.rcpt):
            status = "sent"
            stats.sent += 1
        else:
            status = "failed"
            stats.failed += 1
        error = "; ".join(f"{a}: {v['code'] or ''} {v['reply']}".replace(":  ", ": ")
                          for a, v in state.items() if v["state"] != "sent")
        values = dict(status=status, attempts=n, rcpt_state=state, last_error=error[:2000], claimed_by="",
                      lease_until=None, next_attempt_at=now + _backoff(self.cfg, n), sent_at=now if status == "sent" else None)
        if uncertain:
            values["uncertain"] = True
        self._conn.execute(update(Outbox).where(Outbox.id == row.id).values(**values))
        await self._commit(nxt)
        for addr in gave_up:
            code, reply = state[addr]["code"], state[addr]["reply"]
            log.warning("发信失败：邮件《%s》%s 无法送达 %s，%s（%s），不再重试",
                        _clip(row.subject, 80), row.message_id, addr,
                        "收件服务器拒收" if code and code >= 500 else f"已尝试 {n} 次仍被暂时拒收",
                        f"{code or ''} {reply}".strip())

    def _release(self, rows: list[_Row], error: str, stats: DeliveryStats) -> None:
        """Rows not tried because the connection failed (server down, sign-in
        refused, connection lost before their turn): back to pending with the
        error recorded, due again after the first backoff step. No attempt
        is counted: an outage or an expired password is not the mail's
        fault, and must not use up ``max_attempts`` (it would turn a long
        outage into failed mails); each round still makes one connection."""
        if not rows:
            return
        now = datetime.now(timezone.utc)
        self._conn.execute(update(Outbox).where(Outbox.id.in_([r.id for r in rows]), Outbox.claimed_by == self.owner,
                                                Outbox.status.in_(HELD))
                           .values(status="pending", claimed_by="", lease_until=None, last_error=_clip(error, 2000),
                                   next_attempt_at=now + _backoff(self.cfg, 1)))
        self._conn.commit()
        stats.deferred += len(rows)

    def _fold(self, s, journal: Path) -> None:
        """Record in ``s`` what this sender's journal says: the rows accepted
        are sent; the rows whose send started and that are still held by us
        with no result (an error cut the batch short) are uncertain, and
        back to pending."""
        done, started = _read_journal(journal)
        _apply_done(s, done)
        left = started - set(done)
        if left:
            s.execute(update(Outbox).where(Outbox.id.in_(list(left)), Outbox.claimed_by == self.owner,
                                           Outbox.status.in_(HELD))
                      .values(status="pending", uncertain=True, claimed_by="", lease_until=None))

    def _unclaim(self, rows: list[_Row]) -> None:
        """Give back rows not tried (the lease is running out)."""
        if rows:
            self._conn.execute(update(Outbox).where(Outbox.id.in_([r.id for r in rows]), Outbox.claimed_by == self.owner,
                                                    Outbox.status.in_(HELD))
                               .values(status="pending", claimed_by="", lease_until=None))
            self._conn.commit()

    async def _worker(self, queue: list[_Row], stats: DeliveryStats):
        c = self.cfg.smtp
        if not queue:
            return
        smtp = aiosmtplib.SMTP(hostname=c.host, port=c.port, use_tls=c.ssl, start_tls=c.starttls if c.starttls else False,
                               timeout=c.timeout)
        try:
            await smtp.connect()
            await smtp.ehlo()  # MAIL is issued directly below, so greet explicitly
            await sign_in(smtp, c)
        except Exception as e:  # server down: leave every row for a later attempt
            stats.error = smtp_line(e, c)  # one Chinese line: cause and fix
            self._release(queue, stats.error, stats)
            queue.clear()
            return
        try:
            while queue:
                if time.monotonic() > self._deadline:
                    self._unclaim(queue)
                    queue.clear()
                    break
                row = queue.pop(0)
                targets = row.targets()
                if not targets:
                    await self._record(row, {}, stats)
                    continue
                try:
                    raw = self._bytes(row)
                except Exception as e:  # noqa: BLE001 - a draft that cannot be built: this mail waits, not the rest
                    log.error("邮件 %s 无法生成（%s: %s），稍后重试", one_line(row.message_id), type(e).__name__,
                              one_line(str(e))[:300])
                    await self._record(row, {a: (None, f"无法生成这封邮件：{type(e).__name__}: {e}") for a in targets},
                                       stats)
                    continue
                await self._started(row)
                try:
                    results = await _send_one(smtp, row.mail_from, targets, raw)
                except aiosmtplib.SMTPResponseException as e:  # MAIL FROM refused, or 421 closing
                    await self._record(row, {a: (e.code, e.message) for a in targets}, stats)
                    if e.code == 421:
                        raise
                except _LostInData as e:
                    why = f"与发信服务器的连接在发送正文时中断：{e.__cause__}"
                    await self._record(row, {a: (None, why) for a in targets}, stats, uncertain=True)
                    raise e.__cause__
                except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as e:
                    await self._record(row, {a: (None, f"与发信服务器的连接中断：{e}") for a in targets}, stats)
                    raise
                else:
                    nxt = queue[0] if queue and time.monotonic() <= self._deadline else None
                    await self._record(row, results, stats, nxt=nxt)
        except Exception as e:
            stats.error = str(e)
            self._release(queue, f"与发信服务器的连接中断：{e}", stats)
            queue.clear()
        finally:
            try:
                await smtp.quit()
            except Exception:
                smtp.close()

    async def _deliver(self, rows) -> DeliveryStats:
        stats = DeliveryStats()
        n = max(1, min(self.cfg.smtp.connections, len(rows)))
        queues = [rows[i::n] for i in range(n)]
        if self._journal is None and len(rows) >= OWN_CONNECTION_FROM:
            await self._open_mail_conn()
        try:
            await asyncio.gather(*(self._worker(q, stats) for q in queues))
        finally:
            await self._close_mail_conn()
        return stats

    def deliver_due(self, max_batches: int | None = None) -> DeliveryStats:
        """Deliver everything due now. Returns counts."""
        if time.monotonic() >= self._next_recover:  # rows of senders that died or stalled
            self._next_recover = time.monotonic() + self.cfg.outbox.lease / 4
            n = recover(self.store)
            if n:
                log.warning("发信：%d 封邮件在另一个发信进程停止时正在发送，将以相同的 Message-ID 重发", n)
        total = DeliveryStats()
        batches = 0
        carry: Path | None = None  # the journal of the batch just sent: folded with the next claim
        try:
            while True:
                rows = self._claim(self.cfg.outbox.batch, fold=carry)
                carry = None
                if not rows:
                    break
                jpath = _journal_for(self.store, self.owner)
                if jpath is not None:
                    jpath.parent.mkdir(parents=True, exist_ok=True)
                self._premarked = set()
                with self.store.engine.connect() as self._conn, \
                        (open(jpath, "a", encoding="ascii") if jpath else contextlib.nullcontext()) as self._journal:
                    _unsynced(self._conn)
                    try:
                        st = eventloop.run(self._deliver(rows))
                    finally:
                        _unsynced(self._conn, False)
                        if jpath is not None:
                            self._journal.close()
                            carry = jpath
                total.sent += st.sent
                total.deferred += st.deferred
                total.failed += st.failed
                total.error = st.error or total.error
                batches += 1
                if st.error or (max_batches and batches >= max_batches) or not (st.sent or st.deferred or st.failed):
                    break  # (no progress: the lease ran out before the first send)
        finally:
            if carry is not None:  # the last batch's journal, when no claim followed it
                with self.store.session() as s, s.begin():
                    self._fold(s, carry)
                _empty(carry)
        if total.sent or total.deferred or total.failed:
            log.info("发信：已发送 %d 封，稍后重试 %d 封，失败 %d 封 %s", total.sent, total.deferred, total.failed, total.error)
        return total
