"""The path every mail travels: parse -> guard -> classify -> act -> store + outbox.

``Pipeline.process`` takes a batch of raw mails (from IMAP or files) and writes
everything that results -- the message rows, the workflow state, the outbox
rows, the audit trail and the mailbox sync position -- in ONE transaction. If
anything in the batch raises, the batch is rolled back and re-run one mail per
transaction, so one poison mail never blocks the others: it is recorded as
failed, retried a bounded number of times, then quarantined.
"""
from __future__ import annotations

import logging
import os
import secrets
import socket
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from .config import Config
from .directory import AmbiguousProject, Directory, load_directory
from . import gcpolicy, trust
from .guard import machine_reason
from .mail.journal import unwrap_journal
from .mail.parse import MailLimits, ParsedMail, parse_mail, settle_date
from .mail.subject import find_ticket_token
from .outbox import MessageIds, Outgoing, sender_behind
from .queueing import MailQueue
from .render import Renderer
from .sla import Sla
from .rules.engine import RuleSet, load_rules
from .store.bulk import insert_rows
from .store.db import Store
from .messages import Messages
from .reasons import Decision, Reason, clip
from .store.models import InFlight, Message, Quarantine, Setting, SyncState
from .store.raw import RawStore, sha256
from .records import fresh, records_of
from .workflows import ACTIONS, REPLY_HANDLERS, REPLY_HOOKS, Context
from .workflows.confidential import guard as guard_internal
from .workflows.hints import hint_after_note, reply_does_nothing
from .store.models import Outbox

# Outcomes of a reply that was only kept in the record's thread.
_NOTED = ("noted_in_thread", "workorder_noted", "not_a_new_record")

log = logging.getLogger(__name__)


@dataclass
class Incoming:
    raw: bytes
    account: str = "replay"
    folder: str = ""
    uidvalidity: int | None = None
    uid: int | None = None
    size: int | None = None
    too_large: bool = False  # raw holds only the header block
    arrived: datetime | None = None  # the server's INTERNALDATE, when known


@dataclass
class Outcome:
    """What happened to one mail (for the CLI, the demo and logs)."""
    row: "Message | int"
    status: str
    subject: str
    from_addr: str
    rule: str | None = None
    reason: str = ""
    outgoing: list[tuple[list[str], list[str], str]] = field(default_factory=list)  # (to, cc, subject)

    @property
    def row_id(self) -> int:
        return self.row if isinstance(self.row, int) else self.row.id

    def settle(self) -> "Outcome":
        """After the commit: keep the row's id, not the row (memory stays flat
        however large the backlog)."""
        if not isinstance(self.row, int):
            self.row = self.row.id
        return self


def load_secret(cfg: Config, store: Store) -> bytes:
    """The HMAC secret for our Message-IDs: from the environment if set,
    else generated once and kept in the store (shared by every worker)."""
    env = os.environ.get(cfg.system.hmac_secret_env, "") if cfg.system.hmac_secret_env else ""
    if env:
        return env.encode()
    try:
        with store.session() as s, s.begin():
            row = s.get(Setting, "hmac_secret")
            if row is None:
                row = Setting(key="hmac_secret", value=secrets.token_hex(32))
                s.add(row)
            value = row.value
    except IntegrityError:  # another worker starting at the same moment stored it first
        with store.reader() as s:
            value = s.get(Setting, "hmac_secret").value
    return value.encode()


class Runtime:
    """Everything loaded from the config: store, directory, rules, templates."""

    def __init__(self, cfg: Config, store: Store | None = None, clock: Callable[[], datetime] | None = None):
        self.cfg = cfg
        self.store = store or Store(cfg.store_url, journal_dir=cfg.journal_dir)
        self.raw = RawStore(self.store)
        self.ids = MessageIds(load_secret(cfg, self.store), cfg.system.address.split("@", 1)[1])
        self.tz = ZoneInfo(cfg.system.timezone)
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.reload()
        gcpolicy.apply()

    def refresh_projects(self, s) -> None:
        """Merge projects defined by 立项 mails (the store) into the directory;
        the directory file wins for a project it defines."""
        from .directory import Project
        from .store.models import ProjectRecord

        recs = list(s.scalars(select(ProjectRecord)))
        # Always a fresh copy: a 立项 in this batch changes it in place, and a
        # rolled-back batch must not leave that behind in the loaded file.
        self.directory = self.file_directory.with_projects([
            Project(r.name, tuple(r.aliases or ()), r.sales, r.presales1, r.presales2, r.status, r.customer, source="立项")
            for r in recs])

    def reload(self) -> None:
        """(Re)load the directory, rules and templates. Raises ConfigError."""
        self.file_directory: Directory = load_directory(self.cfg.path(self.cfg.paths.directory))
        self.directory: Directory = self.file_directory
        self.rules: RuleSet = load_rules(self.cfg.path(self.cfg.paths.rules), set(ACTIONS))
        self.renderer = Renderer(self.cfg.path(self.cfg.paths.templates),
                                 {lc.kind: lc.label for lc in self.rules.lifecycles})
        self.messages = Messages.load(self.cfg.path(self.cfg.paths.templates))
        self.sla = Sla(self.cfg, self.rules.lifecycles)


class _Seen:
    """What the store already holds for a batch, looked up in three queries
    instead of several per mail; the batch's own rows are added as it goes."""

    def __init__(self):
        self.uids: set[tuple] = set()
        self.keys: dict[str, object] = {}  # dedupe key -> row id or new row
        self.mids: dict[str, list[tuple[str, object]]] = {}  # Message-ID -> [(sha256, row id or row)]
        self.reply_counts: dict = {}

    @classmethod
    def load(cls, s, prepared) -> "_Seen":
        self = cls()
        by_box: dict[tuple, list[int]] = {}
        for inc, _sha, _pm in prepared:
            if inc.uid is not None:
                by_box.setdefault((inc.account, inc.folder, inc.uidvalidity), []).append(inc.uid)
        for (account, folder, uv), uids in by_box.items():
            for (uid,) in s.execute(select(Message.uid).where(Message.account == account, Message.folder == folder,
                                                              Message.uidvalidity == uv, Message.uid.in_(uids))):
                self.uids.add((account, folder, uv, uid))
        keys = [f"{pm.message_id or ''}|{sha}" for _inc, sha, pm in prepared]
        for rid, key in s.execute(select(Message.id, Message.dedupe_key).where(Message.dedupe_key.in_(keys))):
            self.keys[key] = rid
        rec = records_of(s)  # earlier copies of the batch's Message-IDs, loaded once for the batch
        for mid in {pm.message_id[:998] for _inc, _sha, pm in prepared if pm.message_id}:
            for r in rec.stored_copies(mid):
                self.mids.setdefault(mid, []).append((r["sha256"], r["id"]))
        return self


def mail_limits(cfg: Config) -> MailLimits:
    lim = cfg.limits
    return MailLimits(max_depth=lim.max_mime_depth, max_parts=lim.max_mime_parts, max_decoded=lim.max_decoded_size,
                      max_attachment=lim.max_attachment_size, max_attachments_total=lim.max_attachments_total,
                      max_text_chars=lim.max_text_chars, max_subject_chars=lim.max_subject_chars)


_OWNER = f"{socket.gethostname()[:150]}:{os.getpid()}"


def _owner_alive(owner: str) -> bool:
    """Is the process that wrote an in-flight marker still running? Only
    answerable on this host; another host's marker counts as dead."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname()[:150] or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Pipeline:
    def __init__(self, rt: Runtime, *, suppress: str = ""):
        """``suppress``: a reason to record every mail this pipeline queues
        as not to be sent (a backfill with ``replay --no-send``)."""
        self.rt = rt
        self.cfg = rt.cfg
        self.suppress = suppress
        self.queue = MailQueue(rt, suppress=suppress)
        self.limits = mail_limits(rt.cfg)
        # The next batch's in-flight marks, written with the batch before it:
        # (its mails' sha256, the deaths found when they were written).
        self._premarked: tuple[tuple[str, ...], dict[str, int]] | None = None

    def parse(self, raw: bytes) -> ParsedMail:
        return parse_mail(raw, self.limits)

    def _read(self, inc: Incoming) -> ParsedMail:
        """The mail as processed: parsed, its date settled against its
        arrival, an Exchange journal report unwrapped."""
        pm = self.parse(inc.raw)
        settle_date(pm, inc.arrived or self.rt.clock(), self.rt.tz)
        if pm.attached is not None:
            # A report forwarded as an attachment is dated by its own Date,
            # bounded by its own arrival (its top Received) or the forward's.
            settle_date(pm.attached, pm.date, self.rt.tz)
        unwrapped = unwrap_journal(pm)
        if unwrapped is not None:
            # An Exchange journal report: the original is the mail; the
            # envelope is kept for the trust decision (see _handle).
            original, envelope = unwrapped
            settle_date(original, pm.date, self.rt.tz)
            original.journal = envelope
            return original
        return pm

    # -- public -------------------------------------------------------------
    def process(self, items: list[Incoming], sync: dict[tuple[str, str], tuple[int, int]] | None = None,
                upcoming: Callable[[], list[Incoming] | None] | None = None) -> list[Outcome]:
        """Process a batch; commit once. ``sync`` maps (account, folder) to the
        (uidvalidity, last_uid) to record in the same transaction.

        Each mail is marked in flight (committed) first. If a marker is already
        there, a process died while on that mail: the batch then goes one mail
        at a time, and a mail the process died on ``limits.max_crashes`` times
        while it was processed alone is quarantined without being parsed.

        ``upcoming``: the next batch's mails when they are at hand already
        (None if not): they are marked in flight in this batch's transaction,
        and that batch needs no transaction of its own for its marks."""
        shas = [sha256(inc.raw) for inc in items]
        deaths = self._premarked_deaths(shas)
        if deaths is None:
            deaths = self._mark(shas, solo=len(set(shas)) == 1)
        if deaths:
            return self._process_carefully(items, shas, deaths, sync)
        prepared = [(inc, sha, self._read(inc)) for inc, sha in zip(items, shas)]
        try:
            with self.rt.store.session() as s, s.begin():
                self.rt.raw.put_many(s, [(sha, inc.raw) for inc, sha, _pm in prepared])
                self.rt.refresh_projects(s)
                self.queue.build_now = sender_behind(s)
                self._prime(s, prepared)
                seen = _Seen.load(s, prepared)
                outcomes = [self._handle(s, inc, sha, pm, seen=seen) for inc, sha, pm in prepared]
                self._write_sync(s, sync)
                self._unmark(s, shas)
                premarked = self._mark_upcoming(s, upcoming)
            self._premarked = premarked
            outcomes = [o.settle() for o in outcomes]
            self._log_untrusted(outcomes)
            return outcomes
        except Exception:
            log.warning("一批 %d 封邮件处理出错，改为逐封处理", len(items), exc_info=True)
        outcomes = [self._process_one(inc, sha, pm) for inc, sha, pm in prepared]
        with self.rt.store.session() as s, s.begin():
            self._write_sync(s, sync)
        self._log_untrusted(outcomes)
        return outcomes

    @staticmethod
    def _prime(s, prepared) -> None:
        """Load what the batch's mails refer to (threads, records, earlier
        copies) in a few queries; ids for the batch's message rows."""
        rec = records_of(s)
        rec.message_ids.reserve(len(prepared))
        rec.prime([(pm.message_id or "")[:998] for _i, _s, pm in prepared],
                  [r for _i, _s, pm in prepared for r in (pm.in_reply_to, *pm.references)],
                  [find_ticket_token(pm.subject) for _i, _s, pm in prepared])

    def _process_one(self, inc: Incoming, sha: str, pm: ParsedMail) -> Outcome:
        try:
            with self.rt.store.session() as s, s.begin():
                self.rt.refresh_projects(s)
                self.rt.raw.put_many(s, [(sha, inc.raw)])
                o = self._handle(s, inc, sha, pm)
                self._unmark(s, [sha])
            return o.settle()
        except Exception as e:
            return self._record_failure(inc, sha, pm, e)

    def _process_carefully(self, items, shas, deaths: dict[str, int], sync) -> list[Outcome]:
        """One mail per transaction, each marked as processed alone first, so
        that the next death is charged to the mail that caused it."""
        outcomes = []
        limit = self.cfg.limits.max_crashes
        for inc, sha in zip(items, shas):
            n = deaths.get(sha, 0)
            if n >= limit:
                outcomes.append(self._quarantine_unparsed(inc, sha, Reason("crashed_repeatedly", {"deaths": n})))
                continue
            self._mark([sha], solo=True)
            outcomes.append(self._process_one(inc, sha, self._read(inc)))
        with self.rt.store.session() as s, s.begin():
            self._write_sync(s, sync)
        return outcomes

    def _mark(self, shas: list[str], solo: bool) -> dict[str, int]:
        """Write in-flight markers and commit. Returns {sha: deaths} for the
        mails that already had a marker left by a dead process (empty when all
        is well)."""
        with self.rt.store.session() as s, s.begin():
            return self._mark_in(s, shas, solo)

    def _mark_in(self, s, shas: list[str], solo: bool) -> dict[str, int]:
        """``_mark`` in the transaction of ``s``."""
        found: dict[str, int] = {}
        now = self.rt.clock()
        uniq = list(dict.fromkeys(shas))
        rows = {r.sha256: r for r in s.scalars(select(InFlight).where(InFlight.sha256.in_(uniq)))}
        fresh = [{"sha256": sha, "solo": solo, "deaths": 0, "owner": _OWNER, "started_at": now}
                 for sha in uniq if sha not in rows]
        if fresh:  # the usual case, every mail: one statement, no ORM object per mail
            insert_rows(s.connection(), InFlight.__table__, fresh)
        for sha, r in rows.items():
            if r.owner != _OWNER:
                if _owner_alive(r.owner):
                    found[sha] = r.deaths  # another live worker holds it: no death
                else:
                    if r.solo:
                        r.deaths += 1
                    found[sha] = r.deaths
                    log.warning("邮件 %s 处理时进程意外终止（第 %d 次）", sha[:12], r.deaths)
            r.owner, r.solo, r.started_at = _OWNER, solo, now
        return found

    def _mark_upcoming(self, s, upcoming: Callable[[], list[Incoming] | None] | None):
        """Mark the next batch in flight in this batch's transaction: (its
        mails' sha256, the deaths found), or None when it is not at hand. A
        process killed after this commit finds those marks, as it would have
        found the marks the next batch wrote itself: its own transaction for
        them cost about 20 ms a batch, most of it waiting for the sender's
        hold on SQLite's write lock."""
        items = upcoming() if upcoming is not None else None
        if not items:
            return None
        shas = tuple(sha256(inc.raw) for inc in items)
        return shas, self._mark_in(s, list(shas), solo=len(set(shas)) == 1)

    def _premarked_deaths(self, shas: list[str]) -> dict[str, int] | None:
        """The deaths found when this batch was marked with the one before
        it; None when it was not (it marks itself)."""
        pre, self._premarked = self._premarked, None
        if pre is None:
            return None
        if pre[0] == tuple(shas):
            return pre[1]
        self.forget_premarked(pre)
        return None

    def forget_premarked(self, pre=None) -> None:
        """Remove the marks written for a next batch that this process will
        not process (the intake stopped before it)."""
        pre = pre if pre is not None else self._premarked
        self._premarked = None
        if pre is None:
            return
        try:
            with self.rt.store.session() as s, s.begin():
                s.execute(delete(InFlight).where(InFlight.sha256.in_(list(set(pre[0]))), InFlight.owner == _OWNER))
        except Exception as e:  # left behind, they only make those mails go one at a time later
            log.warning("无法清除预先写入的处理中标记：%s", e)

    @staticmethod
    def _unmark(s, shas: list[str]) -> None:
        s.execute(delete(InFlight).where(InFlight.sha256.in_(list(set(shas)))))

    def _quarantine_unparsed(self, inc: Incoming, sha: str, reason: Reason) -> Outcome:
        """Record and quarantine a mail without parsing it (it killed the
        process before)."""
        pm = ParsedMail()
        pm.defects.append(reason.text())
        with self.rt.store.session() as s, s.begin():
            self.rt.raw.put_many(s, [(sha, inc.raw)])
            row = self._new_row(inc, sha, pm)
            row.dedupe_key = None
            row.status = "quarantined"
            row.reason = reason.text()
            records_of(s).new_message(row)
            self._quarantine(s, row, inc, reason)
            self._unmark(s, [sha])
            out = self._outcome(row)
        log.error("邮件已隔离：%s", reason.text())
        return out.settle()

    def retry_failed(self) -> list[Outcome]:
        """Re-run mails whose processing raised; quarantine after the limit."""
        out = []
        with self.rt.store.reader() as s:
            failed = list(s.scalars(select(Message.id).where(Message.status == "failed")))
        for row_id in failed:
            out.append(self.rerun(row_id))
        return out

    def rerun(self, row_id: int, *, from_quarantine: bool = False) -> Outcome:
        """Run a stored mail again (failed retry, or quarantine retry)."""
        with self.rt.store.reader() as s:
            row = s.get(Message, row_id)
            inc = Incoming(self.rt.raw.get(row.sha256), row.account, row.folder, row.uidvalidity, row.uid, row.size,
                           arrived=row.received_at)
            attempts = row.attempts
            sha = row.sha256
        # Marked in flight like any mail: a failed mail that kills the process
        # when retried is quarantined after limits.max_crashes deaths too.
        deaths = self._mark([sha], solo=True).get(sha, 0)
        if deaths >= self.cfg.limits.max_crashes:
            return self._quarantine_row(row_id, inc, sha, Reason("crashed_repeatedly", {"deaths": deaths}))
        pm = self._read(inc)
        try:
            with self.rt.store.session() as s, s.begin():
                self.rt.refresh_projects(s)  # the store's projects, on a copy this mail may change
                self._unmark(s, [sha])
                old = s.get(Message, row_id)
                qs = list(s.scalars(select(Quarantine).where(Quarantine.message == row_id)))
                for q in qs:
                    q.message = None
                    q.status = "retried"
                    q.updated_at = self.rt.clock()
                s.delete(old)
                s.flush()
                outcome = self._handle(s, inc, old.sha256, pm, force=from_quarantine)
                new = s.get(Message, outcome.row_id)
                new.attempts = attempts + 1
                for q in qs:
                    q.message = new.id
            return outcome.settle()
        except Exception as e:
            return self._record_failure(inc, sha, pm, e, row_id=row_id)

    def _quarantine_row(self, row_id: int, inc: Incoming, sha: str, reason: Reason) -> Outcome:
        """Quarantine a stored mail (not parsed again)."""
        with self.rt.store.session() as s, s.begin():
            row = s.get(Message, row_id)
            row.status = "quarantined"
            row.reason = reason.text()
            if s.scalars(select(Quarantine.id).where(Quarantine.message == row_id,
                                                     Quarantine.status == "open")).first() is None:
                self._quarantine(s, row, inc, reason)
            self._unmark(s, [sha])
            out = self._outcome(row)
        log.error("邮件已隔离：%s", reason.text())
        return out.settle()

    # -- internals ------------------------------------------------------------
    def _log_untrusted(self, outcomes: list[Outcome]) -> None:
        """Untrusted mails (after the commit): one line each for the admin,
        and today's count so far (in the configured zone)."""
        bad = [o for o in outcomes if o.status == "untrusted"]
        if not bad:
            return
        for o in bad:
            log.warning("不受信任的邮件 #%d（发件人 %s）：%s", o.row_id, o.from_addr, o.reason)
        local = self.rt.clock().astimezone(self.rt.tz)
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        try:
            with self.rt.store.reader() as s:
                n = s.scalar(select(func.count()).select_from(Message).where(
                    Message.status == "untrusted", Message.received_at >= start))
        except Exception as e:  # the count is informative; never fail a batch for it
            log.warning("无法统计今天不受信任的邮件数：%s", e)
            return
        log.warning("今天（%s）共收到 %d 封不受信任的邮件，均未做任何更改（python run.py report messages 可查看）",
                    f"{local:%Y-%m-%d}", n)

    def _write_sync(self, s, sync):
        for (account, folder), (uidvalidity, last_uid) in (sync or {}).items():
            st = s.get(SyncState, (account, folder))
            if st is None:
                s.add(SyncState(account=account, folder=folder, uidvalidity=uidvalidity, last_uid=last_uid))
            else:
                st.uidvalidity = uidvalidity
                st.last_uid = max(st.last_uid, last_uid) if st.uidvalidity == uidvalidity else last_uid
                st.updated_at = self.rt.clock()

    def _record_failure(self, inc: Incoming, sha: str | None, pm: ParsedMail, exc: Exception, row_id: int | None = None) -> Outcome:
        err = clip("".join(traceback.format_exception_only(type(exc), exc)).strip(), 2000)
        log.error("邮件《%s》处理出错：%s", clip(pm.subject, 200), err)
        try:
            return self._write_failure(inc, sha, pm, exc, err, row_id)
        except Exception as e2:
            # Recording what went wrong must not fail on the data that made
            # processing fail: keep the raw bytes and a bare quarantine row.
            log.error("记录处理错误时又出错：%s；已按原始邮件隔离", clip(str(e2), 500))
            sha = sha or sha256(inc.raw)
            return self._quarantine_unparsed(inc, sha, Reason("processing_failed", {"attempts": 1, "error": err}))

    def _write_failure(self, inc: Incoming, sha: str | None, pm: ParsedMail, exc: Exception, err: str,
                       row_id: int | None) -> Outcome:
        with self.rt.store.session() as s, s.begin():
            # The failed attempt's changes to the running directory (a 立项)
            # were rolled back in the store: rebuild it from what is committed.
            self.rt.refresh_projects(s)
            row = s.get(Message, row_id) if row_id else None
            if row is None:
                sha = sha or sha256(inc.raw)
                self.rt.raw.put_many(s, [(sha, inc.raw)])
                row = self._new_row(inc, sha, pm)
                row.dedupe_key = None  # a clean re-run may claim it
                records_of(s).new_message(row)
                row.attempts = 0
            row.attempts += 1
            row.error = err + "\n" + "".join(traceback.format_tb(exc.__traceback__))[-4000:]
            row.status = "failed"
            self._decided(row, Decision("processing_failed", {"attempts": row.attempts, "error": err}))
            if row.attempts >= self.cfg.limits.max_processing_attempts:
                row.status = "quarantined"
                self._quarantine(s, row, inc, Reason("processing_failed", {"attempts": row.attempts, "error": err}))
            if sha is not None:
                self._unmark(s, [sha])
            s.flush()
            out = Outcome(row, row.status, row.subject, row.from_addr, None, row.reason)
        return out.settle()

    def _quarantine(self, s, row: Message, inc: Incoming, reason: Reason, detail: str = "") -> None:
        head = inc.raw[:40000].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
        s.add(Quarantine(message=row.id, account=inc.account, folder=inc.folder, uid=inc.uid, sha256=row.sha256,
                         headers=clip(head.decode("utf-8", "replace").replace("\x00", ""), 20000),
                         reason=clip(reason.text() + detail, 10000), code=reason.code, params=reason.params,
                         created_at=self.rt.clock(), updated_at=self.rt.clock()))

    def _new_row(self, inc: Incoming, sha: str, pm: ParsedMail) -> Message:
        return fresh(
            Message,
            account=inc.account, folder=inc.folder, uidvalidity=inc.uidvalidity, uid=inc.uid,
            message_id=(pm.message_id or "")[:998] or None, sha256=sha,
            dedupe_key=f"{pm.message_id or ''}|{sha}", size=inc.size or len(inc.raw),
            from_addr=pm.from_addr[:320], from_name=pm.from_name[:500],
            to_addrs=[a for _, a in pm.to], cc_addrs=[a for _, a in pm.cc],
            subject=pm.subject, subject_norm=pm.subject_norm, date=pm.date, received_at=self.rt.clock(),
            in_reply_to=(pm.in_reply_to or "")[:998] or None, references=pm.references[-50:],
            body=pm.body, text=pm.text, defects=list(pm.defects), status="new", attempts=0,
            post_action_pending=inc.uid is not None and self._has_post_action(inc.account),
        )

    def _has_post_action(self, account: str) -> bool:
        for a in self.cfg.accounts:
            if a.name == account:
                return a.after != "keep"
        return False

    def _handle(self, s, inc: Incoming, sha: str, pm: ParsedMail, force: bool = False, seen: "_Seen | None" = None) -> Outcome:
        rec = records_of(s)
        now = self.rt.clock()
        seen = seen or _Seen.load(s, [(inc, sha, pm)])
        if inc.uid is not None and (inc.account, inc.folder, inc.uidvalidity, inc.uid) in seen.uids:
            # Already recorded (e.g. the sync position was lost): nothing to do.
            old = s.scalars(select(Message).where(Message.account == inc.account, Message.folder == inc.folder,
                                                  Message.uidvalidity == inc.uidvalidity, Message.uid == inc.uid)).first()
            return Outcome(old, "seen", old.subject, old.from_addr, old.rule,
                           self.rt.messages.text("outcome", "already_seen"))
        row = self._new_row(inc, sha, pm)
        first = None if force else seen.keys.get(row.dedupe_key)
        if first is not None:
            row.dedupe_key = None
            row.duplicate_of = first if isinstance(first, int) else first.id
            row.post_action_pending = False
            rec.new_message(row)
            return self._done(s, row, "duplicate", Decision("duplicate", {"first": row.duplicate_of}))
        if pm.message_id:
            other = next((ref for sha2, ref in seen.mids.get(row.message_id, []) if sha2 != sha), None)
            if other is not None:
                ref = other if isinstance(other, int) else other.id
                row.defects = [*row.defects, f"Message-ID 与 #{ref} 相同但内容不同，已作为新邮件处理"]
            seen.mids.setdefault(row.message_id, []).append((sha, row))
        if inc.uid is not None:
            seen.uids.add((inc.account, inc.folder, inc.uidvalidity, inc.uid))
        seen.keys[row.dedupe_key] = row
        rec.new_message(row)
        counts = seen.reply_counts

        # Malformed beyond use: quarantine with the reason; raw bytes are kept.
        if inc.too_large:
            return self._too_large(s, row, inc, pm, now, counts)
        if pm.refusal is not None:
            row.status = "quarantined"
            row.reason = pm.refusal.text()
            self._quarantine(s, row, inc, pm.refusal)
            return self._outcome(row)
        if not pm.from_addr:
            row.status = "quarantined"
            self._decided(row, Decision("no_sender"))
            self._quarantine(s, row, inc, Reason("no_from"), "；解析问题：" + ("；".join(pm.defects[:20]) or "无"))
            return self._outcome(row)

        why = machine_reason(pm, self.rt.ids, self.cfg.own_addresses)
        if why:
            return self._done(s, row, "machine", Decision("machine", {"why": why}))
        sender = self.rt.directory.by_email(pm.from_addr)
        if sender is None:
            return self._done(s, row, "untrusted", Decision("stranger", {"address": pm.from_addr}))
        verdict = self._trust(inc, pm)
        if not verdict.trusted:
            return self._done(s, row, "untrusted", Decision("not_authenticated", {"verdict": verdict.text}))

        ctx = Context(cfg=self.cfg, mail=pm, message=row, sender=sender, directory=self.rt.directory, repo=rec,
                      now=now, raw=inc.raw, rules=self.rt.rules, messages=self.rt.messages)
        guard_internal(ctx)  # an internal document addressed outside: told at once, whatever the mail is
        ticket = rec.ticket_for_thread(find_ticket_token(pm.subject), [pm.in_reply_to or "", *pm.references])
        if pm.unreadable is not None and (ticket is not None and ticket.kind in REPLY_HANDLERS):
            row.rule = f"reply:{ticket.kind}"
            rec.link(pm.message_id, ticket)
            return self._unreadable(s, row, pm, sender, now, counts, ticket=ticket, ctx=ctx)
        if ticket is not None and ticket.kind in REPLY_HANDLERS:
            row.rule = f"reply:{ticket.kind}"
            rec.link(pm.message_id, ticket)
            if not any(hook(ctx, ticket) for hook in REPLY_HOOKS):
                REPLY_HANDLERS[ticket.kind](ctx, ticket)
                if not ctx.outgoing and ctx.decision is not None and ctx.decision.code in _NOTED:
                    hint_after_note(ctx, ticket)  # a near-miss keyword is answered, not dropped
            self.rt.sla.apply_events(rec, now, staff_reply_ticket=ticket)
            row.status = "processed"
            self._decided(row, ctx.decision or Decision("reply_recorded", {"number": ticket.number}), ctx.also)
        else:
            try:
                match = self.rt.rules.classify(pm.subject_norm, pm.body, sender, self.rt.directory, pm.recipients,
                                               (pm.attached.subject, pm.attached.body) if pm.attached else None)
            except AmbiguousProject as e:
                row.status = "ignored"
                self._decided(row, Decision("ambiguous_project", {"name": e.name, "candidates": list(e.candidates)}),
                              ctx.also)
                self._queue(s, ctx.outgoing, row, now, counts)  # the confidentiality notice, if any
                return self._outcome(row, ctx.outgoing)
            if match is None:
                ours = pm.in_reply_to if self.rt.ids.is_ours(pm.in_reply_to) else None
                sent = s.scalar(select(Outbox.subject).where(Outbox.message_id == ours)) if ours else None
                if sent is None:
                    if ctx.outgoing:  # the confidentiality notice
                        row.status = "ignored"
                        self._decided(row, Decision("no_rule"), ctx.also)
                        self._queue(s, ctx.outgoing, row, now, counts)
                        return self._outcome(row, ctx.outgoing)
                    return self._done(s, row, "ignored", Decision("no_rule"))
                # A reply to our mail that no record takes (the monthly or weekly mail): say so.
                reply_does_nothing(ctx, sent)
                row.status = "processed"
                self._decided(row, ctx.decision, ctx.also)
                self._queue(s, ctx.outgoing, row, now, counts)
                return self._outcome(row, ctx.outgoing)
            row.rule = match.rule.name
            if pm.unreadable is not None:
                return self._unreadable(s, row, pm, sender, now, counts, rule_label=match.rule.description, ctx=ctx)
            ctx.match = match
            ACTIONS[match.rule.action](ctx)
            self.rt.sla.apply_events(rec, now)
            row.status = "processed"
            self._decided(row, ctx.decision or Decision("processed"), ctx.also, match.why)
        self._queue(s, ctx.outgoing, row, now, counts)
        return self._outcome(row, ctx.outgoing)

    def _too_large(self, s, row: Message, inc: Incoming, pm: ParsedMail, now, counts: dict) -> Outcome:
        limit = next((a.max_size for a in self.cfg.accounts if a.name == inc.account), self.cfg.limits.max_mail_size)
        row.status = "quarantined"
        self._decided(row, Decision("too_large", {"size": inc.size, "limit": limit}))
        self._quarantine(s, row, inc, Reason("too_large", {"size": inc.size, "limit": limit}))
        outgoing: list[Outgoing] = []
        if (machine_reason(pm, self.rt.ids, self.cfg.own_addresses) is None
                and self.rt.directory.by_email(pm.from_addr) is not None
                and trust.decide(inc.raw, pm.from_addr, self.cfg).trusted):
            outgoing.append(Outgoing("too_large", to=[pm.from_addr], kind="reply", in_reply_to=pm.message_id,
                                     references=pm.references, variables={"subject": pm.subject, "size": inc.size,
                                                                          "limit": limit, "system": self.cfg.system}))
        self._queue(s, outgoing, row, now, counts)
        return self._outcome(row, outgoing)

    def _trust(self, inc: Incoming, pm: ParsedMail) -> "trust.Verdict":
        """Sender trust. A mail unwrapped from a journal report is judged on
        the journal envelope (the journal agent's mail, as our server
        handed it over), and the envelope must name the original's sender."""
        env = getattr(pm, "journal", None)
        if env is None:
            return trust.decide(inc.raw, pm.from_addr, self.cfg)
        if env.sender and env.sender != pm.from_addr:
            return trust.Verdict(False, "journal_sender_mismatch", {"sender": env.sender, "from_addr": pm.from_addr})
        return trust.decide(inc.raw, env.from_addr, self.cfg)

    def _unreadable(self, s, row: Message, pm: ParsedMail, sender, now, counts: dict, *, ticket=None,
                    rule_label: str = "", ctx: Context | None = None) -> Outcome:
        """A mail for a rule or a record whose body cannot be read: tell the
        sender so and how to resend; no record is made or changed (it is not
        a 退回 against anyone). ``ctx``: what the mail's handling already
        queued (the confidentiality notice) goes out too."""
        why = pm.unreadable.text()
        out = Outgoing("unreadable", to=[pm.from_addr], kind="reply", in_reply_to=pm.message_id,
                       references=pm.references, ticket_token=ticket.number if ticket is not None else None,
                       variables={"subject": pm.subject, "why": why, "code": pm.unreadable.code, "rule_label": rule_label,
                                  "sender_name": sender.name, "system": self.cfg.system})
        row.status = "processed"
        self._decided(row, Decision("unreadable", {"why": why, **pm.unreadable.params}), ctx.also if ctx else ())
        outgoing = [*(ctx.outgoing if ctx else []), out]
        self._queue(s, outgoing, row, now, counts)
        return self._outcome(row, outgoing)

    def _done(self, s, row: Message, status: str, decision: Decision) -> Outcome:
        row.status = status
        self._decided(row, decision)
        return self._outcome(row)

    def _decided(self, row: Message, decision: Decision, also=(), why=()) -> None:
        """Store the outcome as data on the row, and in Chinese (``reason``)."""
        params = dict(decision.params)
        if also:
            params["_also"] = [a.as_dict() for a in also]
        if why:
            params["_why"] = [w.as_dict() for w in why]
        row.outcome_code = decision.code
        row.outcome_params = params
        row.reason = self.rt.messages.outcome(decision.code, params)

    def _outcome(self, row: Message, outgoing: list[Outgoing] | None = None) -> Outcome:
        out = Outcome(row, row.status, row.subject, row.from_addr, row.rule, row.reason)
        for o in outgoing or []:
            out.outgoing.append((o.to, o.cc, getattr(o, "_subject", o.template)))
        return out

    def queue_outgoing(self, s, outgoing: list[Outgoing], *, cause: Message | None = None,
                       now: datetime | None = None) -> list[str]:
        """Render and queue mails outside a mail's handling, in the caller's
        transaction. Returns their Message-IDs. (Timed jobs use a
        ``MailQueue`` directly.)"""
        return self.queue.put(s, outgoing, cause=cause, now=now or self.rt.clock())

    def _queue(self, s, outgoing: list[Outgoing], row: Message | None, now: datetime, counts: dict) -> list[str]:
        """Render each Outgoing and write its outbox row (same transaction).
        ``counts`` caches this transaction's ReplyCount rows."""
        return self.queue.put(s, outgoing, cause=row, now=now, counts=counts)
