"""Outgoing mail: building it, queueing it in the store, delivering it over SMTP.

Workflows produce ``Outgoing`` objects (plain data). The pipeline renders them
and writes ``Outbox`` rows in the same transaction as the state change. The
sender job delivers due rows over reused SMTP connections, retries with
exponential backoff, and marks them sent. A row's Message-ID is its
idempotency key.
"""
from __future__ import annotations

import asyncio
import contextlib
import base64
import hashlib
import hmac
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.header import Header
from email.utils import format_datetime, formataddr
from pathlib import Path

import aiosmtplib
from sqlalchemy import bindparam, select, update

from .config import Config
from .render import Rendered
from .store.models import Outbox

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


class MessageIds:
    """Our Message-IDs carry an HMAC so replies to us (and our own mail
    coming back) can be recognised without a lookup."""

    def __init__(self, secret: bytes, domain: str):
        self.secret = secret
        self.domain = domain

    def _mac(self, local: str) -> str:
        return hmac.new(self.secret, local.encode(), hashlib.sha256).hexdigest()[:12]

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


def _b64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def _hdr(value: str) -> str:
    """RFC 2047-encode a header value only when it is not plain ASCII."""
    if value.isascii():
        return value
    return Header(value, "utf-8", maxlinelen=76).encode()


def build_mime(cfg: Config, out: Outgoing, rendered: Rendered, message_id: str, now: datetime) -> tuple[str, bytes]:
    """Return (subject, raw bytes) of the outgoing mail.

    Built directly rather than through EmailMessage: the stdlib's header
    registry made this ~40x slower and it is on the hot path."""
    subject = rendered.subject
    if out.ticket_token and f"[#{out.ticket_token}]" not in subject:
        subject = f"{subject} [#{out.ticket_token}]"
    h = [("From", formataddr((cfg.system.name, cfg.system.address), charset="utf-8")),
         ("To", ", ".join(out.to))]
    if out.cc:
        h.append(("Cc", ", ".join(out.cc)))
    if out.reply_to:
        h.append(("Reply-To", ", ".join(out.reply_to)))
    h += [("Subject", _hdr(subject)), ("Date", format_datetime(now)), ("Message-ID", message_id)]
    if out.in_reply_to:
        h.append(("In-Reply-To", out.in_reply_to))
    refs = [r for r in out.references if r]
    if out.in_reply_to and out.in_reply_to not in refs:
        refs.append(out.in_reply_to)
    if refs:
        h.append(("References", "\r\n ".join(refs[-20:])))
    h += [("Auto-Submitted", "auto-replied" if out.kind == "reply" else "auto-generated"),
          ("X-Auto-Response-Suppress", "All"), (LOOP_HEADER, cfg.system.address), ("MIME-Version", "1.0")]
    tag = message_id.strip("<>").split("@")[0].replace(".", "")
    alt = f"=_alt_{tag}"
    body = (f"--{alt}\r\nContent-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: base64\r\n\r\n").encode() \
        + _b64(rendered.text.encode("utf-8")) \
        + (f"--{alt}\r\nContent-Type: text/html; charset=\"utf-8\"\r\nContent-Transfer-Encoding: base64\r\n\r\n").encode() \
        + _b64(rendered.html.encode("utf-8")) + f"--{alt}--\r\n".encode()
    if out.attachments:
        mixed = f"=_mix_{tag}"
        parts = [f"--{mixed}\r\nContent-Type: multipart/alternative; boundary=\"{alt}\"\r\n\r\n".encode() + body]
        for filename, ctype, data in out.attachments:
            if ctype == "message/rfc822":
                # 7bit/8bit only for message/rfc822 (RFC 2046), so send it as an .eml file.
                ctype = "application/octet-stream"
            fn = _hdr(filename)
            parts.append((f"--{mixed}\r\nContent-Type: {ctype}; name=\"{fn}\"\r\nContent-Transfer-Encoding: base64\r\n"
                          f"Content-Disposition: attachment; filename=\"{fn}\"\r\n\r\n").encode() + _b64(data))
        body = b"".join(parts) + f"--{mixed}--\r\n".encode()
        h.append(("Content-Type", f"multipart/mixed; boundary=\"{mixed}\""))
    else:
        h.append(("Content-Type", f"multipart/alternative; boundary=\"{alt}\""))
    head = "".join(f"{k}: {v}\r\n" for k, v in h).encode("ascii")
    return subject, head + b"\r\n" + body


# -- delivery ---------------------------------------------------------------


def _backoff(cfg: Config, attempts: int) -> timedelta:
    return timedelta(seconds=min(cfg.outbox.backoff_max, cfg.outbox.backoff_base * (2 ** max(0, attempts - 1))))


def journal_path(store) -> Path | None:
    """Where the SQLite store's delivery journal lives (None for PostgreSQL)."""
    url = store.engine.url
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database + ".delivered")
    return None


def fold_journal(store, path: Path | None) -> set[int]:
    """Mark every row the delivery journal says was accepted as sent, then
    empty the journal. Returns the rows whose send had started but whose
    acceptance is not recorded: after a crash, exactly those are uncertain."""
    if path is None or not path.exists():
        return set()
    done: dict[int, str] = {}
    started: set[int] = set()
    for line in path.read_text().splitlines():
        a, _, b = line.partition("\t")
        if a == "s" and b.isdigit():
            started.add(int(b))
        elif a.isdigit() and b:  # a torn last line (crash mid-write) has no timestamp
            done[int(a)] = b
    if done:
        with store.session() as s, s.begin():
            for rid, at in done.items():
                s.execute(update(Outbox).where(Outbox.id == rid).values(
                    status="sent", sent_at=datetime.fromisoformat(at), last_error=""))
    path.write_bytes(b"")
    return started - set(done)


def recover(store) -> int:
    """After a crash: first record what the journal says was accepted. Rows
    still 'sending' go back to pending; those whose send was under way are
    marked uncertain (the server may or may not have accepted them; they go
    out again with the same Message-ID). Without a journal (PostgreSQL) every
    row left 'sending' is uncertain. Run once at start-up. Returns the number
    of uncertain rows."""
    jpath = journal_path(store)
    in_flight = fold_journal(store, jpath)
    with store.session() as s, s.begin():
        q = update(Outbox).where(Outbox.status == "sending")
        if jpath is None:
            return s.execute(q.values(status="pending", uncertain=True)).rowcount or 0
        n = 0
        if in_flight:
            n = s.execute(q.where(Outbox.id.in_(in_flight)).values(status="pending", uncertain=True)).rowcount or 0
        s.execute(q.values(status="pending"))
        return n


async def _send_one(smtp: aiosmtplib.SMTP, mail_from: str, rcpt: list[str], raw: bytes) -> None:
    """MAIL, RCPT..., DATA on an open aiosmtplib connection.

    aiosmtplib's sendmail() re-parses every address with email.utils on each
    call (~0.15 ms of CPU per mail); our addresses are already bare and
    lower-cased, so the commands are issued directly. Replies are checked as
    sendmail() would, raising the same exceptions."""
    opts = b" SMTPUTF8" if not (mail_from.isascii() and all(r.isascii() for r in rcpt)) else b""
    resp = await smtp.execute_command(b"MAIL", b"FROM:<" + mail_from.encode() + b">" + opts)
    if resp.code != 250:
        await smtp.rset()
        raise aiosmtplib.SMTPSenderRefused(resp.code, resp.message, mail_from)
    refused = []
    for r in rcpt:
        resp = await smtp.execute_command(b"RCPT", b"TO:<" + r.encode() + b">")
        if resp.code not in (250, 251):
            refused.append(aiosmtplib.SMTPRecipientRefused(resp.code, resp.message, r))
    if len(refused) == len(rcpt):
        await smtp.rset()
        raise aiosmtplib.SMTPRecipientsRefused(refused)
    await smtp.data(raw)


@dataclass
class DeliveryStats:
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    error: str = ""


class Deliverer:
    def __init__(self, cfg: Config, store):
        self.cfg = cfg
        self.store = store

    def due_count(self) -> int:
        now = datetime.now(timezone.utc)
        with self.store.reader() as s:
            return len(s.execute(select(Outbox.id).where(Outbox.status == "pending", Outbox.next_attempt_at <= now)).all())

    def _claim(self, limit: int) -> list[tuple[int, str, list, bytes, int]]:
        now = datetime.now(timezone.utc)
        with self.store.session() as s, s.begin():
            q = (select(Outbox.id, Outbox.mail_from, Outbox.rcpt, Outbox.raw, Outbox.attempts)
                 .where(Outbox.status == "pending", Outbox.next_attempt_at <= now)
                 .order_by(Outbox.id).limit(limit))
            if s.bind.dialect.name == "postgresql":
                q = q.with_for_update(skip_locked=True)
            rows = [tuple(r) for r in s.execute(q).all()]
            if rows:
                s.execute(update(Outbox).where(Outbox.id.in_([r[0] for r in rows])).values(status="sending"))
        return rows

    _SENT = update(Outbox).where(Outbox.id == bindparam("rid")).values(
        status="sent", sent_at=bindparam("now"), attempts=bindparam("n"), last_error="")
    _RETRY = update(Outbox).where(Outbox.id == bindparam("rid")).values(
        status=bindparam("st"), attempts=bindparam("n"), last_error=bindparam("err"), next_attempt_at=bindparam("nxt"))

    def _mark(self, row_id: int, attempts: int, ok: bool, error: str = "", permanent: bool = False):
        """Record one send's result at once: the window in which a crash could
        make us send a mail again is one write long. With SQLite an acceptance
        is appended to the delivery journal (no database lock, so delivery
        never waits for intake's write transaction) and folded in per batch."""
        now = datetime.now(timezone.utc)
        if ok and self._journal is not None:
            self._journal.write(f"{row_id}\t{now.isoformat()}\n")
            self._journal.flush()
            return
        conn = self._conn
        if ok:
            conn.execute(self._SENT, {"rid": row_id, "now": now, "n": attempts + 1})
        else:
            n = attempts + 1
            final = permanent or n >= self.cfg.outbox.max_attempts
            conn.execute(self._RETRY, {"rid": row_id, "st": "failed" if final else "pending", "n": n,
                                       "err": error[:2000], "nxt": now + _backoff(self.cfg, n)})
        conn.commit()

    def _release(self, rows, error: str):
        for r in rows:
            self._mark(r[0], r[4], False, error)

    async def _worker(self, queue: list, stats: DeliveryStats):
        c = self.cfg.smtp
        if not queue:
            return
        smtp = aiosmtplib.SMTP(hostname=c.host, port=c.port, use_tls=c.ssl, start_tls=c.starttls if c.starttls else False,
                               timeout=c.timeout)
        try:
            await smtp.connect()
            await smtp.ehlo()  # MAIL is issued directly below, so greet explicitly
            if c.username:
                await smtp.login(c.username, c.secret())
        except Exception as e:  # server down: leave every row for a later attempt
            stats.deferred += len(queue)
            stats.error = f"连接发信服务器（SMTP）失败：{e}"
            self._release(queue, stats.error)
            queue.clear()
            return
        try:
            while queue:
                row = queue.pop(0)
                row_id, mail_from, rcpt, raw, attempts = row
                if self._journal is not None:
                    self._journal.write(f"s\t{row_id}\n")
                    self._journal.flush()
                try:
                    await _send_one(smtp, mail_from, rcpt, raw)
                except aiosmtplib.SMTPRecipientsRefused as e:
                    permanent = all(getattr(x, "code", 500) >= 500 for x in e.recipients)
                    self._mark(row_id, attempts, False, str(e), permanent=permanent)
                    stats.failed += permanent
                    stats.deferred += not permanent
                except aiosmtplib.SMTPResponseException as e:
                    self._mark(row_id, attempts, False, f"{e.code} {e.message}", permanent=e.code >= 500)
                    stats.failed += e.code >= 500
                    stats.deferred += e.code < 500
                    if e.code == 421:
                        raise
                except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as e:
                    self._mark(row_id, attempts, False, f"与发信服务器的连接中断：{e}")
                    stats.deferred += 1
                    raise
                else:
                    self._mark(row_id, attempts, True)
                    stats.sent += 1
        except Exception as e:
            stats.error = str(e)
            stats.deferred += len(queue)
            self._release(queue, f"与发信服务器的连接中断：{e}")
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
        await asyncio.gather(*(self._worker(q, stats) for q in queues))
        return stats

    def deliver_due(self, max_batches: int | None = None) -> DeliveryStats:
        """Deliver everything due now. Returns counts."""
        total = DeliveryStats()
        batches = 0
        while True:
            rows = self._claim(self.cfg.outbox.batch)
            if not rows:
                break
            jpath = journal_path(self.store)
            with self.store.engine.connect() as self._conn, \
                    (open(jpath, "a", encoding="ascii") if jpath else contextlib.nullcontext()) as self._journal:
                try:
                    st = asyncio.run(self._deliver(rows))
                finally:
                    if jpath is not None:
                        self._journal.close()
                        fold_journal(self.store, jpath)
            total.sent += st.sent
            total.deferred += st.deferred
            total.failed += st.failed
            total.error = st.error or total.error
            batches += 1
            if st.error or (max_batches and batches >= max_batches):
                break
        if total.sent or total.deferred or total.failed:
            log.info("发件箱：发出 %d 封，推迟 %d 封，失败 %d 封 %s", total.sent, total.deferred, total.failed, total.error)
        return total
