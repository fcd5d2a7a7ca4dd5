"""Tables. One schema for SQLite and PostgreSQL; changes go through Alembic."""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on both backends (SQLite stores naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None:
            if value.tzinfo is None:
                value = value.replace(tzinfo=timezone.utc)
            value = value.astimezone(timezone.utc)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value

    def bind_processor(self, dialect):
        # On SQLite, a datetime goes straight to the text SQLAlchemy's SQLite
        # DATETIME stores (the same format, so that stored values and
        # comparisons are unchanged): process_bind_param's two replace()
        # calls and the dialect's format through a dict cost about 5 µs a
        # value, and every row written has one or more.
        general = super().bind_processor(dialect)
        if dialect.name != "sqlite":
            return general
        utc = timezone.utc

        def process(value):
            if not isinstance(value, datetime):
                return general(value) if general is not None else value
            if value.tzinfo is not None and value.tzinfo is not utc:
                value = value.astimezone(utc)
            return _SQLITE_DATETIME % (value.year, value.month, value.day, value.hour, value.minute,
                                       value.second, value.microsecond)
        return process


_SQLITE_DATETIME = "%04d-%02d-%02d %02d:%02d:%02d.%06d"


# Last-resort bound for unbounded text columns (characters). Values are
# bounded earlier (parse, workflows); this only keeps the store from failing.
TEXT_CAP = 2_000_000
_UNSAFE = re.compile("[\x00\ud800-\udfff]")


def store_safe(value: str, limit: int | None = None) -> str:
    """Text PostgreSQL accepts: no NUL, no lone surrogate (from undecodable
    bytes), at most ``limit`` characters (cut visibly with …)."""
    if _UNSAFE.search(value) is not None:
        value = _UNSAFE.sub(lambda m: "" if m.group(0) == "\x00" else "\ufffd", value)
    limit = limit or TEXT_CAP
    if len(value) > limit:
        value = value[: max(limit - 1, 0)] + "…"
    return value


def _json_safe(value):
    if isinstance(value, str):
        return store_safe(value)
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {store_safe(str(k)): _json_safe(v) for k, v in value.items()}
    return value


class SafeString(TypeDecorator):
    """A String/Text column whose values are made store-safe on the way in
    (see ``store_safe``), with the column's own length as the bound. Applied to
    every string column by ``_harden`` below; queries bind through it too, so a
    lookup matches what was stored."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value, dialect):
        # Not called for bound values (bind_processor below replaces it), but
        # SQLAlchemy renders literal values (literal_binds) through it.
        if isinstance(value, str):
            return store_safe(value, getattr(self.impl, "length", None))
        return value

    def bind_processor(self, dialect):
        # process_bind_param, without two calls per value on the common path
        # (a short string with nothing to fix): this runs for every string
        # of every row written.
        inner = self.impl_instance.bind_processor(dialect)
        cap = getattr(self.impl, "length", None) or TEXT_CAP
        unsafe = _UNSAFE.search

        def process(value):
            if isinstance(value, str) and (len(value) > cap or unsafe(value) is not None):
                value = store_safe(value, cap)
            return inner(value) if inner is not None else value
        return process


class SafeText(SafeString):
    impl = Text
    cache_ok = True


class Dumped:
    """A JSON value already encoded (by SafeJSON's check), for
    ``json_serializer`` to pass on instead of encoding it again."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text


def json_serializer(value) -> str:
    """The engines' JSON encoder (``create_engine(json_serializer=...)``):
    json.dumps, as SQLAlchemy's default, except for a value SafeJSON has
    encoded already."""
    return value.text if type(value) is Dumped else json.dumps(value)


# json.dumps(value, ensure_ascii=False), without making an encoder per call.
_dumps = json.JSONEncoder(ensure_ascii=False).encode
try:  # the C encoder json.dumps makes for each call, made once
    from json.encoder import c_make_encoder, encode_basestring

    def _default(o):
        raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")

    _markers: dict = {}  # (the circular-reference check's; left with entries by a failed call)
    _c_encode = c_make_encoder(_markers, _default, encode_basestring, None, ": ", ", ", False, False, True)

    def _dumps(value, _plain=_dumps):
        if isinstance(value, str):
            return _plain(value)
        try:
            return "".join(_c_encode(value, 0))
        except BaseException:
            _markers.clear()
            raise
except ImportError:  # pragma: no cover - a Python without the C accelerator
    pass


class SafeJSON(TypeDecorator):
    """JSON whose strings hold no NUL / lone surrogate (PostgreSQL's json
    accepts ``\\u0000`` but cannot read it back as text)."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return value
        try:  # the common case, checked in one pass of the C encoder
            # Text as it is, not as \\u escapes: Chinese is stored in 3 bytes a
            # character, not 6 (a queued mail's draft is half the size), and a
            # search with LIKE finds Chinese words in it.
            dumped = _dumps(value)
        except (TypeError, ValueError):
            return _json_safe(value)
        # json.dumps writes NUL as \\u0000 and leaves a lone surrogate as it is
        # (ensure_ascii=False): _UNSAFE finds the latter.
        if len(dumped) < TEXT_CAP and "\\u0000" not in dumped and _UNSAFE.search(dumped) is None:
            # Encoded once: the engine's encoder passes the text on (an engine
            # made without it encodes the value itself).
            return Dumped(dumped) if getattr(dialect, "_json_serializer", None) is json_serializer else value
        return _json_safe(value)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict: JSON, list: JSON}


class Message(Base):
    """Every mail seen, whatever became of it."""

    __tablename__ = "messages"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Where it came from: an IMAP account/folder/uid, or "replay".
    account: Mapped[str] = mapped_column(String(100))
    folder: Mapped[str] = mapped_column(String(200))
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    uid: Mapped[int | None] = mapped_column(BigInteger)
    message_id: Mapped[str | None] = mapped_column(String(998))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    # message_id + sha256; NULL for rows that record a duplicate sighting.
    dedupe_key: Mapped[str | None] = mapped_column(String(1100), unique=True)
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    size: Mapped[int] = mapped_column(Integer, default=0)
    from_addr: Mapped[str] = mapped_column(String(320), default="", index=True)
    from_name: Mapped[str] = mapped_column(String(500), default="")
    to_addrs: Mapped[list] = mapped_column(default=list)
    cc_addrs: Mapped[list] = mapped_column(default=list)
    subject: Mapped[str] = mapped_column(Text, default="")
    subject_norm: Mapped[str] = mapped_column(Text, default="")
    date: Mapped[datetime | None]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    references: Mapped[list] = mapped_column(default=list)
    body: Mapped[str] = mapped_column(Text, default="")  # quoted history stripped
    text: Mapped[str] = mapped_column(Text, default="")  # full text
    # new | processed | ignored | machine | untrusted | duplicate | failed | quarantined
    status: Mapped[str] = mapped_column(String(20), index=True)
    rule: Mapped[str | None] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text, default="")  # why, rendered in Chinese (templates/messages.toml)
    # What became of the mail, as data: a code of templates/messages.toml and its parameters
    # (with "_also": further outcomes, "_why": why the rule matched, "_problems": what was wrong).
    outcome_code: Mapped[str] = mapped_column(String(60), default="", server_default="")
    outcome_params: Mapped[dict | None] = mapped_column(JSON, default=None)
    defects: Mapped[list] = mapped_column(default=list)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    # After-commit server action (move/flag) still to do.
    post_action_pending: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        UniqueConstraint("account", "folder", "uidvalidity", "uid", name="uq_messages_mailbox_uid"),
        Index("ix_messages_message_id", "message_id"),
        Index("ix_messages_post_action", "post_action_pending"),
    )


class RawMail(Base):
    """Every message's exact bytes, content-addressed."""

    __tablename__ = "raw_mails"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Setting(Base):
    """Small pieces of state shared by every worker (e.g. the HMAC secret)."""

    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class SyncState(Base):
    __tablename__ = "sync_state"
    account: Mapped[str] = mapped_column(String(100), primary_key=True)
    folder: Mapped[str] = mapped_column(String(200), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Outbox(Base):
    """Outgoing mail, written in the same transaction as the change that caused it."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[str] = mapped_column(String(998), unique=True)  # idempotency key
    caused_by: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), index=True)
    template: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(50), default="reply")  # reply | notice | escalation
    mail_from: Mapped[str] = mapped_column(String(320))
    rcpt: Mapped[list] = mapped_column(default=list)  # envelope recipients
    to_addrs: Mapped[list] = mapped_column(default=list)
    cc_addrs: Mapped[list] = mapped_column(default=list)
    subject: Mapped[str] = mapped_column(Text)
    # The mail itself (its bytes or its draft) is in OutboxContent.
    # pending | claimed (by a sender, under a lease) | sending (in flight, PostgreSQL)
    # | sent (every recipient accepted or refused for good) | failed | suppressed
    status: Mapped[str] = mapped_column(String(20), default="pending")
    # Per recipient, once known: {address: {"state": "sent" | "deferred" | "failed",
    # "code": SMTP reply code, "reply": the server's words, "at": ISO time}}.
    # Recipients of a 'sent' row that are not listed were accepted.
    rcpt_state: Mapped[dict] = mapped_column(default=dict, server_default="{}")
    # The sender holding the row ('claimed' or 'sending') and until when.
    claimed_by: Mapped[str] = mapped_column(String(200), default="", server_default="")
    lease_until: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    # Set when a send may have happened before a crash (sending -> re-sent).
    uncertain: Mapped[bool] = mapped_column(Boolean, default=False)
    cause: Mapped["Message | None"] = relationship(foreign_keys=[caused_by])
    # The mail it carries, by the shared id (no foreign key: see OutboxContent).
    # Joined where it is read (``outerjoin(Outbox.content)``), never loaded lazily.
    content: Mapped["OutboxContent | None"] = relationship(
        primaryjoin="Outbox.id == foreign(OutboxContent.id)", viewonly=True, uselist=False, lazy="raise")

    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)


class OutboxContent(Base):
    """What a queued mail is: its bytes when built as it was queued (a mail
    with files, or any mail while the sender is behind), else what the
    sender builds them from (outbox.Draft, JSON); one of the two. Written
    once, beside its outbox row and never changed, so that the row's own
    changes (claimed, in flight, sent) do not rewrite the mail: SQLite
    rewrites a whole row for a change to any column, and a claim and a
    result rewrote each 10 kB reply twice (about 45 ms per 500 replies, and
    as much again copied back from the write-ahead log)."""

    __tablename__ = "outbox_content"
    # The outbox row's id. No foreign key: SQLite's batch migrations rebuild
    # a table by dropping it, which would take (or be refused for) the rows
    # that refer to it; the two rows are written together and neither is
    # ever deleted.
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    draft: Mapped[dict | None]


class ReplyCount(Base):
    """Automatic replies per recipient per day (the rate limit)."""

    __tablename__ = "reply_counts"
    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD, system timezone
    count: Mapped[int] = mapped_column(Integer, default=0)


class Quarantine(Base):
    __tablename__ = "quarantine"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), index=True)
    account: Mapped[str] = mapped_column(String(100), default="")
    folder: Mapped[str] = mapped_column(String(200), default="")
    uid: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))  # raw bytes in the raw store
    headers: Mapped[str] = mapped_column(Text, default="")
    reason: Mapped[str] = mapped_column(Text)  # Chinese, for people
    code: Mapped[str] = mapped_column(String(50), default="", server_default="")  # the reason as data
    params: Mapped[dict | None] = mapped_column(JSON, default=None)
    # open | retried | released
    status: Mapped[str] = mapped_column(String(20), default="open")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    cause: Mapped["Message | None"] = relationship(foreign_keys=[message])


class InFlight(Base):
    """A mail a process has started on and not finished: written and committed
    before processing, deleted in the processing transaction. A marker found at
    the next start means the process died on it (killed for memory, ...)."""

    __tablename__ = "in_flight"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)  # the raw mail
    solo: Mapped[bool] = mapped_column(Boolean, default=False)  # processed alone (not in a batch)
    deaths: Mapped[int] = mapped_column(Integer, default=0)  # deaths while processed alone
    owner: Mapped[str] = mapped_column(String(200), default="")  # host:pid
    started_at: Mapped[datetime] = mapped_column(default=utcnow)


class Audit(Base):
    """Every state change, with the mail that caused it."""

    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    message: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), index=True)
    entity: Mapped[str] = mapped_column(String(50))
    entity_id: Mapped[str] = mapped_column(String(100), default="")
    action: Mapped[str] = mapped_column(String(100))
    actor: Mapped[str] = mapped_column(String(320), default="")
    detail: Mapped[dict] = mapped_column(default=dict)
    cause: Mapped["Message | None"] = relationship(foreign_keys=[message])

    __table_args__ = (Index("ix_audit_entity", "entity", "entity_id"),)


class Ticket(Base):
    """A tracked record that mail threads attach to (reports, complaints, follow-ups...)."""

    __tablename__ = "tickets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token: Mapped[str] = mapped_column(String(40), unique=True)  # appears in subjects as [#TOKEN]
    kind: Mapped[str] = mapped_column(String(50), index=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)  # human record number
    project: Mapped[str] = mapped_column(String(200), default="", index=True)
    owner: Mapped[str] = mapped_column(String(100), default="")  # person name
    state: Mapped[str] = mapped_column(String(30), index=True)
    opened_by_message: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    due_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    data: Mapped[dict] = mapped_column(default=dict)
    opened_by: Mapped["Message | None"] = relationship(foreign_keys=[opened_by_message])

    __table_args__ = (Index("ix_tickets_place", "kind", "project", "state"),)


class ThreadLink(Base):
    """Message-IDs that belong to a ticket's thread (ours and theirs)."""

    __tablename__ = "thread_links"
    message_id: Mapped[str] = mapped_column(String(998), primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)


# --- conventions (issue 3) ---


class TrackingRow(Base):
    """One line of a 项目跟踪表 (art. 16): the table of the project's 第一售前
    (``owner``), whoever reported."""

    __tablename__ = "tracking_rows"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(100), index=True)  # 第一售前: whose table this row is in
    project: Mapped[str] = mapped_column(String(200), index=True)
    reporter: Mapped[str] = mapped_column(String(100))  # the engineer who did the work (name in the subject)
    sender: Mapped[str] = mapped_column(String(100), default="")  # who sent the report mail
    comm_date: Mapped[datetime]  # when the report was sent (its Date header, never later than receipt)
    contact: Mapped[str] = mapped_column(Text, default="")  # 沟通人
    method: Mapped[str] = mapped_column(Text, default="")  # 沟通方式
    result: Mapped[str] = mapped_column(String(20))  # 成功 | 问题遗留
    issue: Mapped[str] = mapped_column(Text, default="")  # 沟通的具体问题
    remaining: Mapped[str] = mapped_column(Text, default="")  # 遗留的问题描述
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)  # the report record (number)
    message: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    source_message_id: Mapped[str | None] = mapped_column(String(998), unique=True)  # the report mail's Message-ID
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ticket: Mapped["Ticket"] = relationship(foreign_keys=[ticket_id])


class Penalty(Base):
    """A complaint threshold crossed (art. 14). One row per engineer, rule,
    counting window and ordinal (the 1st, 2nd... time the threshold is reached
    in that window), so a threshold fires exactly once, however often mails
    are replayed. A withdrawal that drops the count below it revokes it."""

    __tablename__ = "penalties"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    engineer: Mapped[str] = mapped_column(String(100), index=True)
    rule: Mapped[str] = mapped_column(String(50))  # the penalty rule's name in the settings, e.g. "monthly"
    window: Mapped[str] = mapped_column(String(20))  # "2026-11", "2026-Q4", "2026" or "all"
    ordinal: Mapped[int] = mapped_column(Integer)
    threshold: Mapped[int] = mapped_column(Integer)  # complaints needed: ordinal * every
    penalty: Mapped[str] = mapped_column(Text)  # e.g. 当月绩效工资扣发1级
    state: Mapped[str] = mapped_column(String(20), default="active")  # active | revoked
    complaints: Mapped[list] = mapped_column(default=list, info={"ours": True})  # complaint numbers it rests on
    fired_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    message: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))

    __table_args__ = (UniqueConstraint("engineer", "rule", "window", "ordinal", name="uq_penalties_key"),)


class Counter(Base):
    """A count over history kept up to date in the transaction that changes
    it, so nothing rescans history to count: e.g. the counted complaints
    against one engineer in one window (``complaint`` / 张三 / 2026-11).
    ``items`` lists what is counted, in order ([sort key..., number])."""

    __tablename__ = "counters"
    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    subject: Mapped[str] = mapped_column(String(200), primary_key=True)
    window: Mapped[str] = mapped_column(String(20), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    # Only values the program made (ISO times, ids, record numbers): not run
    # through the store-safe JSON type, whose walk would cost per item.
    items: Mapped[list] = mapped_column(default=list, info={"ours": True})


# --- the rest of the regulation (issue 4) ---


class ProjectRecord(Base):
    """A project defined by a 立项 mail (技术支持立项单). The directory file
    wins over it for a project the file also defines."""

    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)  # directory.project_key(name)
    aliases: Mapped[list] = mapped_column(default=list)
    customer: Mapped[str] = mapped_column(String(300), default="")
    sales: Mapped[str] = mapped_column(String(100), default="")
    presales1: Mapped[str] = mapped_column(String(100), default="")
    presales2: Mapped[str] = mapped_column(String(100), default="")
    status: Mapped[str] = mapped_column(String(20), default="active")
    content: Mapped[str] = mapped_column(Text, default="")  # 支持内容要求
    number: Mapped[str] = mapped_column(String(40), default="")  # the 立项单's record number
    message: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Reminder(Base):
    """A reminder mail kept as evidence (e.g. 未立项: art. 11)."""

    __tablename__ = "reminders"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(30), default="lixiang", index=True)
    project: Mapped[str] = mapped_column(String(200), default="")  # as written in the mail
    project_key: Mapped[str] = mapped_column(String(200), default="", index=True)
    ordinal: Mapped[int] = mapped_column(Integer, default=1)
    to_addrs: Mapped[list] = mapped_column(default=list)
    engineer: Mapped[str] = mapped_column(String(100), default="")
    outbox_message_id: Mapped[str] = mapped_column(String(998), default="")
    message: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Attachment(Base):
    """A file kept from a mail for a record (e.g. logs on a 故障处理工作单).
    The bytes live content-addressed in raw_mails."""

    __tablename__ = "attachments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    message: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    filename: Mapped[str] = mapped_column(String(500), default="")
    content_type: Mapped[str] = mapped_column(String(200), default="application/octet-stream")
    size: Mapped[int] = mapped_column(Integer, default=0)
    sha256: Mapped[str | None] = mapped_column(String(64))  # None when over the size limit (not kept)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Survey(Base):
    """回访: a satisfaction request some time after a record closes."""

    __tablename__ = "surveys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    to_addr: Mapped[str] = mapped_column(String(320), default="")
    engineer: Mapped[str] = mapped_column(String(100), default="")  # whose work is rated
    # scheduled | sent | answered | cancelled
    status: Mapped[str] = mapped_column(String(20), default="scheduled", index=True)
    due_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    outbox_message_id: Mapped[str] = mapped_column(String(998), default="")
    score: Mapped[int | None] = mapped_column(Integer)
    answered_at: Mapped[datetime | None]
    answer_message: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- clocks and service levels (issue 5) ---


class Clock(Base):
    """One service-level clock on a record: first response, update,
    resolution, or a workflow step (approval, review, confirmation)."""

    __tablename__ = "sla_clocks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    name: Mapped[str] = mapped_column(String(30))  # response | update | resolution | approval | review | confirm
    cycle: Mapped[int] = mapped_column(Integer, default=1)  # a reopened record starts a new cycle
    profile: Mapped[str] = mapped_column(String(50))
    mode: Mapped[str] = mapped_column(String(10), default="work")  # work | 24x7
    target_minutes: Mapped[int] = mapped_column(Integer)
    owner: Mapped[str] = mapped_column(String(100), default="")  # responsible person (name)
    # running | paused | stopped
    status: Mapped[str] = mapped_column(String(20), default="running", index=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    paused_since: Mapped[datetime | None]
    paused_minutes: Mapped[float] = mapped_column(default=0.0)  # clock minutes spent paused
    stopped_at: Mapped[datetime | None]
    due_at: Mapped[datetime | None]  # when the target is reached if nothing pauses it
    breached_at: Mapped[datetime | None]
    level: Mapped[int] = mapped_column(Integer, default=0)  # escalation steps taken
    next_escalation_at: Mapped[datetime | None]

    __table_args__ = (UniqueConstraint("ticket_id", "name", "cycle", name="uq_sla_clock"),)


class ClockNotice(Base):
    """A pre-breach reminder or an escalation, recorded once per clock and step."""

    __tablename__ = "sla_notices"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    clock_id: Mapped[int] = mapped_column(ForeignKey("sla_clocks.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # prebreach | breach | escalation
    step: Mapped[int] = mapped_column(Integer, default=0)
    recipients: Mapped[list] = mapped_column(default=list)
    outbox_message_id: Mapped[str] = mapped_column(String(998), default="")  # "" until mailed (digests share one)
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("clock_id", "kind", "step", name="uq_sla_notice"),)


class Breach(Base):
    """超时: a clock that ran out, recorded against the responsible person."""

    __tablename__ = "sla_breaches"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    clock_id: Mapped[int] = mapped_column(ForeignKey("sla_clocks.id"), unique=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    person: Mapped[str] = mapped_column(String(100), default="", index=True)
    clock: Mapped[str] = mapped_column(String(30))
    profile: Mapped[str] = mapped_column(String(50))
    due_at: Mapped[datetime | None]
    breached_at: Mapped[datetime] = mapped_column(default=utcnow)


class Points(Base):
    """Penalty points (the telecom contract's scheme, when turned on)."""

    __tablename__ = "points"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person: Mapped[str] = mapped_column(String(100), index=True)
    points: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(50))  # overdue_fault | complaint | late_document | ...
    ref: Mapped[str] = mapped_column(String(100), default="")  # record number
    at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("person", "reason", "ref", name="uq_points"),)


def _harden(metadata) -> None:
    """Every string and JSON column of every table goes through the store-safe
    types (a column added later is covered without anyone remembering)."""
    for table in metadata.tables.values():
        for col in table.columns:
            t = col.type
            if isinstance(t, (SafeString, SafeJSON)) or col.info.get("ours"):
                continue
            if isinstance(t, Text):
                col.type = SafeText()
            elif isinstance(t, String):
                col.type = SafeString(t.length)
            elif isinstance(t, JSON):
                col.type = SafeJSON()


_harden(Base.metadata)


def _order_by_foreign_keys() -> None:
    """Give every foreign key without a relationship a many-to-one one
    (``<column>_row``), used only for the write order: the ORM orders a
    flush's inserts by relationships, not by foreign keys. The batch's record
    service hands out ids before a row is written and flushes every row of
    the batch at once, so a clock or a thread link would otherwise be written
    before the record it refers to."""
    for mapper in list(Base.registry.mappers):
        covered = {c for r in mapper.relationships for c in r.local_columns}
        for fk in mapper.local_table.foreign_keys:
            col = fk.parent
            target = next((m for m in Base.registry.mappers if m.local_table is fk.column.table), None)
            if col in covered or target is None or target is mapper:
                continue
            mapper.add_property(f"{col.name}_row", relationship(target.class_, foreign_keys=[col], cascade="",
                                                                lazy="raise"))


_order_by_foreign_keys()
