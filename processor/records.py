"""The record service: how workflows reach the store, one instance per batch.

A batch of mails is processed in one transaction. The service makes that
transaction cheap:

- **Ids up front.** New messages and records get their primary keys from the
  service (``IdBlock``: the table's sequence on PostgreSQL, the table's
  maximum under the write lock SQLite's ``BEGIN IMMEDIATE`` holds), so nothing
  is flushed to learn an id, and every row of the batch is written at the end
  in bulk by one flush.
- **Preloaded, then in memory.** ``prime`` loads in a few queries what the
  batch's mails can refer to: thread links for their Message-IDs and
  References, records named by ``[#token]`` in their subjects, earlier copies
  of the same Message-IDs. Records opened in the batch are indexed as they are
  made. Lookups by project load once per batch, then merge with what the
  batch changed in memory (the in-memory state always wins).
- **Counters, not rescans.** Counts over history (complaints per engineer per
  window) are ``Counter`` rows updated in the same transaction.

Every query the service runs is run without autoflush: what the batch wrote
is in memory and the service merges it itself.
"""
from __future__ import annotations

import functools
import os
from datetime import datetime
from typing import Callable, Iterable

from sqlalchemy import bindparam, event, func, select, text
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session, make_transient_to_detached

from .store.models import Audit, Base, Clock, Counter, Message, RawMail, Setting, ThreadLink, Ticket, utcnow
from .store.bulk import insert_values, python_default
from .store.raw import RawStore

# ``newest``: with at most this many records in the states asked about (all
# projects together), they are all read in one query.
WHOLE = 500
# ``newest`` above WHOLE: one project's newest records in the states asked
# about, an index range. Built once: building a statement costs more than
# running this one.
_NEWEST = (select(Ticket).where(Ticket.kind == bindparam("kind"), Ticket.project == bindparam("project"),
                                Ticket.state.in_(bindparam("states", expanding=True)))
           .order_by(Ticket.id.desc()).limit(bindparam("limit")))


_SPARE_IDS: dict[tuple[int, str, str], list[int]] = {}
_CHUNKS: dict[tuple[int, str, str], int] = {}


class IdBlock:
    """Primary keys for one table, handed out without a flush."""

    def __init__(self, s: Session, table: str, chunk: int = 32):
        self.s, self.table, self.chunk = s, table, chunk
        bind = s.get_bind()
        self.pg = bind.dialect.name == "postgresql"
        # PostgreSQL: ids drawn from the sequence are never handed out again,
        # so those a batch did not use are kept for the next one (per database
        # and table, in this process: a forked child must not share them).
        self._key = (os.getpid(), str(bind.url), table)
        self._free: list[int] = _SPARE_IDS.setdefault(self._key, []) if self.pg else []
        # How many a round trip fetches: doubled each time, and remembered
        # from batch to batch (a busy table asks less often; the ids a
        # batch leaves are the next one's, unused ids are only gaps).
        self.chunk = _CHUNKS.get(self._key, chunk)
        self._next: int | None = None  # SQLite: the next id (the table's max + 1)

    def reserve(self, n: int) -> None:
        """Fetch ``n`` ids in one round trip (PostgreSQL; a no-op on SQLite)."""
        if self.pg and n > len(self._free):
            need = max(n - len(self._free), self.chunk)
            self.chunk = _CHUNKS[self._key] = min(self.chunk * 2, 1024)
            with self.s.no_autoflush:
                rows = self.s.execute(text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) "
                                           "FROM generate_series(1, :n)"), {"t": self.table, "n": need})
                self._free.extend(r[0] for r in rows)

    def take(self) -> int:
        if self.pg:
            if not self._free:
                self.reserve(1)
            return self._free.pop(0)
        if self._next is None:
            with self.s.no_autoflush:
                self._next = (self.s.scalar(text(f"SELECT max(id) FROM {self.table}")) or 0) + 1
        n, self._next = self._next, self._next + 1
        return n


def _ranked_newest(kind: str, states: tuple[str, ...], limit: int):
    """Every project's newest ``limit`` records of ``kind`` in ``states``."""
    rank = func.row_number().over(partition_by=Ticket.project, order_by=Ticket.id.desc()).label("rank")
    ranked = select(Ticket.id, rank).where(Ticket.kind == kind, Ticket.state.in_(states)).subquery()
    return select(Ticket).join(ranked, Ticket.id == ranked.c.id).where(ranked.c.rank <= limit).order_by(Ticket.id)


def _last(items: list, keep: int | None) -> list:
    return items[-keep:] if keep else list(items)


class Records:
    """One batch's view of the records, messages, threads and counters."""

    def __init__(self, s: Session):
        self.s = s
        # ("opened", ticket, None, state) / ("state", ticket, old, new), in order:
        # the clocks (processor.sla) turn them into clock changes.
        self.events: list[tuple] = []
        self.message_ids = IdBlock(s, "messages")
        self.ticket_ids = IdBlock(s, "tickets")
        self._by_token: dict[str, Ticket | None] = {}
        self._by_id: dict[int, Ticket] = {}
        self._new: set[int] = set()  # ids of the records opened in this batch
        # Each record's state when this batch first saw it (None: opened in it).
        self._initial: dict[int, str | None] = {}
        self._tallies: dict[tuple, tuple[dict[str, int], set[int]]] = {}
        self._newest: dict[tuple, tuple[int, list[Ticket]]] = {}  # (kind, states), project -> (limit, rows)
        self._read_all: dict[tuple, int] = {}  # (kind, states) -> the limit of the read of every project's
        self._new_messages: dict[int, Message] = {}  # this batch's message rows, by id
        # This batch's new message and record rows not written yet (new_message,
        # new_ticket): written by the service, in bulk (_write_new_rows).
        self._unwritten: dict[type, list] = {Message: [], Ticket: []}
        self._listening = False
        self._openers: dict[int, tuple | None] = {}  # (kind, states) loaded for every project at once
        # Every record this batch has seen, by (kind, project): what a
        # question about a project merges with what it loaded.
        self._by_place: dict[tuple[str, str], dict[int, Ticket]] = {}
        self._by_kind: dict[str, dict[int, Ticket]] = {}
        self._by_opener: dict[int, list[Ticket]] = {}
        self._links: dict[str, ThreadLink | None] = {}
        self._by_mid: dict[str, list[dict]] = {}  # Message-ID -> [{id, sha256, from_addr, body, status}]
        self._mid_rows: dict[str, list[Message]] = {}  # Message-ID -> this batch's rows
        self._lists: dict[tuple, list[Ticket]] = {}
        self._seq: dict[str, Setting] = {}
        self._seq_years: set[str] = set()
        self._counters: dict[tuple, Counter | None] = {}
        self._clocks: dict[int, list[Clock]] = {}
        self._cycles: dict[tuple[int, str], int] = {}
        self._rows: dict[tuple, list] = {}
        self._rows_of: dict[type, list[tuple[tuple, list]]] = {}  # model -> (its questions, their rows)
        self._ids: dict[str, IdBlock] = {}
        self._bulk: dict = {}  # table -> [Row]

    # -- preloading ---------------------------------------------------------------
    def prime(self, message_ids: Iterable[str], references: Iterable[str], tokens: Iterable[str]) -> None:
        """Load what the batch's mails can refer to: one query per table."""
        with self.s.no_autoflush:
            mids = [m for m in dict.fromkeys(message_ids) if m]
            refs = list(dict.fromkeys(r for r in (*mids, *references) if r and r not in self._links))
            for i in range(0, len(refs), 500):
                part = refs[i:i + 500]
                found = {link.message_id: link for link in self.s.scalars(
                    select(ThreadLink).where(ThreadLink.message_id.in_(part)))}
                for r in part:
                    self._links[r] = found.get(r)
            # Only the links looked up now can name a record not loaded yet.
            want = {link.ticket_id for r in refs if (link := self._links[r]) is not None
                    and link.ticket_id not in self._by_id}
            toks = [t for t in dict.fromkeys(tokens) if t and t not in self._by_token]
            if want or toks:
                q = select(Ticket).where((Ticket.id.in_(want)) | (Ticket.token.in_(toks)))
                for t in self.s.scalars(q):
                    self._index(t)
                for t in toks:
                    self._by_token.setdefault(t, None)
            mids = [m for m in mids if m not in self._by_mid]
            if mids:
                for rid, mid, sha, frm, body, status in self.s.execute(
                        select(Message.id, Message.message_id, Message.sha256, Message.from_addr, Message.body,
                               Message.status).where(Message.message_id.in_(mids))):
                    self._by_mid.setdefault(mid, []).append(
                        {"id": rid, "sha256": sha, "from_addr": frm, "body": body, "status": status})
                for m in mids:
                    self._by_mid.setdefault(m, [])

    def _index(self, t: Ticket) -> None:
        if t.id not in self._by_id:
            self._initial.setdefault(t.id, t.state)
            self._by_id[t.id] = t
            self._by_token[t.token] = t
            self._by_place.setdefault((t.kind, t.project), {})[t.id] = t
            self._by_kind.setdefault(t.kind, {})[t.id] = t

    # -- messages -----------------------------------------------------------------
    def new_message(self, row: Message) -> Message:
        """Give a new message row its id and remember it by Message-ID. The
        row is written by the service, in bulk, before anything that refers
        to it (``_write_new_rows``), not by the ORM's flush: a mail's row is
        the widest of the batch, and the flush's work per object for it cost
        more than the statement."""
        row.id = self.message_ids.take()
        self._listen()
        self._unwritten[Message].append(row)
        self._new_messages[row.id] = row
        if row.message_id:
            self._mid_rows.setdefault(row.message_id, []).append(row)
        return row

    def openers(self, ids: Iterable[int | None]) -> dict[int, tuple]:
        """Message row id -> (Message-ID, received_at, subject_norm), for
        the mails that opened records: this batch's own rows at hand (not
        written yet), the others in one query, each remembered for the batch."""
        ids = {i for i in ids if i is not None}
        want = set()
        for i in ids - set(self._openers):
            m = self._new_messages.get(i)
            if m is not None:
                self._openers[i] = (m.message_id, m.received_at, m.subject_norm)
            else:
                want.add(i)
        if want:
            with self.s.no_autoflush:
                for rid, mid, at, subj in self.s.execute(
                        select(Message.id, Message.message_id, Message.received_at, Message.subject_norm)
                        .where(Message.id.in_(want))):
                    self._openers[rid] = (mid, at, subj)
            for i in want:
                self._openers.setdefault(i, None)
        return {i: o for i in ids if (o := self._openers.get(i)) is not None}

    def stored_copies(self, message_id: str) -> list[dict]:
        """Messages stored before this batch with ``message_id`` (loaded by
        ``prime``): {id, sha256, from_addr, body, status} each."""
        if message_id not in self._by_mid:
            self.prime([message_id], [], [])
        return self._by_mid[message_id]

    def same_mail(self, row: Message, *, processed_only: bool = False) -> list[int]:
        """Ids of other messages that are ``row``'s mail seen again: the same
        Message-ID, sender and body (a CC and a journal copy, a replay)."""
        mid = row.message_id
        if not mid:
            return []
        want = _norm(row.body)
        out = []
        for r in self.stored_copies(mid):
            if r["id"] != row.id and r["from_addr"] == row.from_addr and _norm(r["body"]) == want \
                    and (not processed_only or r["status"] == "processed"):
                out.append(r["id"])
        for r in self._mid_rows.get(mid, []):
            if r is not row and r.from_addr == row.from_addr and _norm(r.body) == want \
                    and (not processed_only or r.status == "processed"):
                out.append(r.id)
        return out

    # -- records ------------------------------------------------------------------
    def new_ticket(self, kind: str, *, prefix: str, project: str = "", owner: str = "", state: str,
                   message: Message | None, now: datetime, due_at: datetime | None = None,
                   data: dict | None = None) -> Ticket:
        """A numbered record; ``prefix`` is its kind's (from its lifecycle).
        Its row is written by the service, in bulk, as a message row is
        (``new_message``): the ORM's flush of the mix's 1,661 new records
        was about 5 % of the processing process's CPU."""
        number = self._next_number(prefix, now.strftime("%Y"))
        t = fresh(Ticket, id=self.ticket_ids.take(), token=number, number=number, kind=kind, project=project,
                  owner=owner, state=state, opened_by_message=message.id if message is not None else None,
                  opened_at=now, due_at=due_at, data=data or {})
        self._listen()
        self._unwritten[Ticket].append(t)
        self._initial[t.id] = None
        self._index(t)
        self._new.add(t.id)
        self._clocks[t.id] = []
        if message is not None:
            self._by_opener.setdefault(message.id, []).append(t)
        return t

    def _next_number(self, prefix: str, year: str) -> str:
        # A counter row per prefix and year: no scan of the tickets table per record.
        key = f"seq.{prefix}{year}"
        seq = self._seq.get(key)
        if seq is None:
            with self.s.no_autoflush:
                if year not in self._seq_years:  # every kind's counter of the year in one query
                    self._seq_years.add(year)
                    for row in self.s.scalars(select(Setting).where(Setting.key.like(f"seq.%{year}"))):
                        self._seq.setdefault(row.key, row)
                seq = self._seq.get(key)
                if seq is None:  # the first of its kind this year
                    n = self.s.scalar(select(func.count()).select_from(Ticket)
                                      .where(Ticket.number.like(f"{prefix}{year}-%"))) or 0
                    seq = Setting(key=key, value=str(n))
                    self.s.add(seq)
            self._seq[key] = seq
        seq.value = str(int(seq.value) + 1)
        return f"{prefix}{year}-{int(seq.value):04d}"

    def state_changed(self, ticket: Ticket, old: str, new: str) -> None:
        """``states.change`` took a transition: the record joins the batch's
        indexes (its new state answers later questions), and a real change
        is an event for the clocks."""
        self._initial.setdefault(ticket.id, old)
        self._index(ticket)
        if old != new:
            self.events.append(("state", ticket, old, new))

    def deadline_changed(self, ticket: Ticket) -> None:
        """The record's 时间要求 changed (``data.deadline_at``): an event for its deadline clock."""
        self._index(ticket)
        self.events.append(("deadline", ticket, None, None))

    def ticket(self, ticket_id: int) -> Ticket | None:
        t = self._by_id.get(ticket_id)
        if t is None:
            with self.s.no_autoflush:
                t = self.s.get(Ticket, ticket_id)
            if t is not None:
                self._index(t)
        return t

    def ticket_by_token(self, token: str) -> Ticket | None:
        if not token:
            return None
        if token not in self._by_token:
            with self.s.no_autoflush:
                t = self.s.scalars(select(Ticket).where(Ticket.token == token)).first()
            if t is None:
                self._by_token[token] = None
            else:
                self._index(t)
        return self._by_token[token]

    def ticket_for_thread(self, token: str | None, message_ids: list[str]) -> Ticket | None:
        """Our subject token first, then In-Reply-To / References (in that order)."""
        if token:
            t = self.ticket_by_token(token)
            if t is not None:
                return t
        ids = [m for m in message_ids if m]
        missing = [m for m in ids if m not in self._links]
        if missing:
            self.prime([], missing, [])
        for m in ids:
            link = self._links.get(m)
            if link is not None:
                return self.ticket(link.ticket_id)
        return None

    def opened_by(self, message_ids: list[int], kind: str) -> Ticket | None:
        """A record of ``kind`` opened by one of these messages."""
        for mid in message_ids:
            for t in self._by_opener.get(mid, []):
                if t.kind == kind:
                    return t
        old = [m for m in message_ids if m not in self._by_opener]
        if not old:
            return None
        with self.s.no_autoflush:
            t = self.s.scalars(select(Ticket).where(Ticket.kind == kind, Ticket.opened_by_message.in_(old))
                               .order_by(Ticket.id).limit(1)).first()
        if t is not None:
            self._index(t)
        return t

    def tickets(self, kind: str | None = None, project: str | None = None,
                states: tuple[str, ...] | None = None) -> list[Ticket]:
        """Records of ``kind`` (in ``project``, in ``states``), as this batch
        left them, in id order. Loaded once per batch per question; a
        question with states (open records) is loaded for every project at once."""
        key = (kind, project, tuple(sorted(states)) if states else None)
        if states and project is not None and key not in self._lists:
            # Records in given states (open ones) of every project in one
            # query; each project's share picked out once.
            every = self._lists.get((kind, None, key[2]))
            if every is None:
                self.tickets(kind, None, states)
                every = self._lists[(kind, None, key[2])]
            self._lists[key] = [t for t in every if t.project == project]
        base = self._lists.get(key)
        if base is None:
            q = select(Ticket)
            if kind:
                q = q.where(Ticket.kind == kind)
            if project is not None:
                q = q.where(Ticket.project == project)
            if states:
                q = q.where(Ticket.state.in_(states))
            with self.s.no_autoflush:
                base = list(self.s.scalars(q))
            for t in base:
                self._index(t)
            self._lists[key] = base
        # Records this batch changed may have entered (or left) the states:
        # every changed record passed through ``_index`` (opened, loaded, or
        # changed through ``states.change``).
        if kind is not None and project is not None:
            seen = self._by_place.get((kind, project), {}).values()
        elif kind is not None:
            seen = self._by_kind.get(kind, {}).values()
        else:
            seen = [t for t in self._by_id.values() if project is None or t.project == project]
        out = {t.id: t for t in (*base, *seen) if not states or t.state in states}
        return [out[i] for i in sorted(out)]

    def newest(self, kind: str, project: str, states: tuple[str, ...], n: int) -> tuple[list[Ticket], int]:
        """The newest ``n`` records of ``kind`` in ``project`` in ``states``
        (in id order), and how many there are in all, as this batch left
        them. One count for every project at once, and one query for the
        newest few of each project asked about: the cost does not grow with
        how many there are."""
        key = (kind, tuple(sorted(states)))
        if key not in self._tallies:
            seen = set(self._by_kind.get(kind, {}))
            q = (select(Ticket.project, func.count()).where(Ticket.kind == kind, Ticket.state.in_(states))
                 .group_by(Ticket.project))
            if seen:
                q = q.where(Ticket.id.not_in(seen))
            with self.s.no_autoflush:
                self._tallies[key] = ({p: c for p, c in self.s.execute(q)}, seen)
        have = self._newest.get((key, project))
        if have is None and key in self._read_all:
            have = (self._read_all[key], [])  # read with all the others: it has none
        if have is None:
            # Every project's at once, one query per batch rather than one
            # per project the batch asks about: all of them when they are few
            # (WHOLE in all), else each project's newest few (a window
            # function), whose cost grows with the number of projects, not
            # with how many records are in the states.
            whole = sum(self._tallies[key][0].values()) <= WHOLE
            limit = WHOLE if whole else n + 2
            q = (select(Ticket).where(Ticket.kind == kind, Ticket.state.in_(states)).order_by(Ticket.id) if whole
                 else _ranked_newest(kind, states, limit))
            with self.s.no_autoflush:
                rows = list(self.s.scalars(q))
            by_project: dict[str, list[Ticket]] = {}
            for t in rows:
                self._index(t)
                by_project.setdefault(t.project, []).append(t)
            for p, ts in by_project.items():
                self._newest[(key, p)] = (limit, ts)
            self._read_all[key] = limit
            have = self._newest.get((key, project), (limit, []))
        # This project's newest few (two spare, for those this batch moved out
        # of the states; read again with more if it moved more): an index
        # range, however many records the project has.
        while have is None or (len(have[1]) >= have[0] and sum(t.state in states for t in have[1]) < n):
            limit = n + 2 if have is None else have[0] + n + 2
            with self.s.no_autoflush:
                rows = list(self.s.scalars(_NEWEST, {"kind": kind, "project": project, "states": list(states),
                                                     "limit": limit}))
            for t in rows:
                self._index(t)
            have = self._newest[(key, project)] = (limit, rows)
        counted, excluded = self._tallies[key]
        total = counted.get(project, 0)
        mine = self._by_place.get((kind, project), {}).values()
        for t in mine:  # what this batch changed, on top of the count
            before = t.id not in excluded and self._initial.get(t.id) in states
            total += (t.state in states) - before
        out = {t.id: t for t in (*have[1], *mine) if t.state in states}
        return [out[i] for i in sorted(out)[-n:]] if n else [], total

    # -- threads ------------------------------------------------------------------
    def link(self, message_id: str | None, ticket: Ticket, *, fresh: bool = False) -> None:
        """Put a Message-ID into a record's thread (if it is in none yet).
        ``fresh``: an ID we just generated (nothing to look up)."""
        if not message_id:
            return
        if not fresh and message_id not in self._links:
            self.prime([], [message_id], [])
        if fresh or self._links.get(message_id) is None:
            link = Row(message_id=message_id, ticket_id=ticket.id)
            self.insert(ThreadLink, link)
            self._links[message_id] = link

    def relink(self, message_id: str | None, ticket: Ticket) -> None:
        """Make ``message_id`` belong to ``ticket``, whatever thread it was in."""
        if not message_id:
            return
        if message_id not in self._links:
            self.prime([], [message_id], [])
        link = self._links.get(message_id)
        if link is None:
            self.link(message_id, ticket, fresh=True)
        else:
            link.ticket_id = ticket.id

    # -- counters -----------------------------------------------------------------
    def counter(self, name: str, subject: str, window: str,
                build: Callable[[], list[list]] | None = None, keep: int | None = None) -> Counter:
        """The counter row (created on first use; ``build`` gives its items
        when the store held such records before counters existed). ``keep``:
        how many of the last items it holds (all if None); ``count`` counts
        them all."""
        key = (name, subject, window)
        c = self._counters.get(key)
        if c is None:
            # Every counter of this name and window in one query.
            c = next((r for r in self.rows(Counter, name=name, window=window) if r.subject == subject), None)
            if c is None:
                items = build() if build is not None else []
                c = Counter(name=name, subject=subject, window=window, count=len(items), items=_last(items, keep))
                self.add(c)
            self._counters[key] = c
        return c

    @staticmethod
    def count_in(c: Counter, item: list, keep: int | None = None) -> None:
        """Count ``item`` ([..., id]): appended, the oldest beyond ``keep`` dropped."""
        items = [list(x) for x in (c.items or [])]  # a new list: the JSON column sees the change
        if any(x[-1] == item[-1] for x in items):
            return  # counted already
        c.items, c.count = _last(items + [list(item)], keep), (c.count or 0) + 1

    @staticmethod
    def count_set(c: Counter, items: list[list], keep: int | None = None) -> None:
        """Set the counter to ``items`` (rebuilt from the records)."""
        c.items, c.count = _last([list(x) for x in items], keep), len(items)

    # -- other rows -----------------------------------------------------------------
    def rows(self, model, load_by: tuple[str, ...] | None = None, **equal) -> list:
        """Rows of ``model`` whose columns equal ``equal``, as this batch left
        them (loaded once per batch per question; rows added with ``add``
        join the answer). ``load_by``: the columns of ``equal`` to load by,
        when the rows sharing them are few and asked about one by one (the
        penalties of a month): one query for them all, the rest of ``equal``
        checked here."""
        by = {k: equal[k] for k in load_by} if load_by is not None else equal
        key = (model, tuple(sorted(by.items())))
        base = self._rows.get(key)
        if base is None:
            with self.s.no_autoflush:
                if any(v is None for v in by.values()):  # IS NULL: not a bound value
                    query, params = select(model).where(*(getattr(model, k) == v for k, v in by.items())), {}
                else:
                    query, params = _rows_query(model, tuple(k for k, _v in key[1])), by
                base = list(self.s.scalars(query, params))
            self._rows[key] = base
            self._rows_of.setdefault(model, []).append((key[1], base))
        return [r for r in base if all(getattr(r, k) == v for k, v in equal.items())]

    def take_id(self, model) -> int:
        """A primary key for a new row of ``model`` (no flush needed)."""
        table = model.__tablename__
        block = self._ids.get(table)
        if block is None:
            block = self._ids[table] = IdBlock(self.s, table)
        return block.take()

    def keep_raw(self, blobs: list[tuple[str, bytes]]) -> None:
        """Keep bytes content-addressed (attachments), with the batch."""
        if blobs:
            RawStore(None).put_many(self.s, blobs)

    def raw(self, sha: str) -> bytes | None:
        with self.s.no_autoflush:
            row = self.s.get(RawMail, sha)
        return bytes(row.data) if row is not None else None

    def add(self, obj) -> None:
        """A new row (written with the batch). It gets its id now: rows with
        ids are written in bulk, without asking the database for each id."""
        if getattr(obj, "id", 0) is None:
            obj.id = self.take_id(type(obj))
        self.s.add(obj)
        for model in type(obj).__mro__:
            for eq, base in self._rows_of.get(model, ()):
                if all(getattr(obj, k) == v for k, v in eq):
                    base.append(obj)

    # -- clocks -------------------------------------------------------------------
    def clocks(self, ticket: Ticket) -> list[Clock]:
        """The record's running and paused clocks, as this batch left them."""
        cs = self._clocks.get(ticket.id)
        if cs is None and ticket.id in self._new:
            cs = self._clocks[ticket.id] = []  # opened in this batch: it has only the clocks added since
        if cs is None:
            with self.s.no_autoflush:
                cs = list(self.s.scalars(select(Clock).where(Clock.ticket_id == ticket.id,
                                                             Clock.status.in_(("running", "paused")))))
            self._clocks[ticket.id] = cs
        return [c for c in cs if c.status in ("running", "paused")]

    def next_cycle(self, ticket: Ticket, name: str) -> int:
        key = (ticket.id, name)
        n = self._cycles.get(key)
        if n is None:
            if ticket.id in self._new:
                n = 0
            else:
                with self.s.no_autoflush:
                    n = self.s.scalar(select(func.max(Clock.cycle)).where(Clock.ticket_id == ticket.id,
                                                                          Clock.name == name)) or 0
        self._cycles[key] = n + 1
        return n + 1

    def add_clock(self, clock: Clock) -> None:
        self.add(clock)
        self._clocks.setdefault(clock.ticket_id, []).append(clock)

    # -- audit --------------------------------------------------------------------
    def audit(self, entity: str, entity_id: str, action: str, *, message: Message | None, actor: str = "",
              at: datetime | None = None, **detail) -> None:
        self.insert(Audit, Row(entity=entity, entity_id=str(entity_id), action=action, actor=actor, detail=detail,
                                message=message.id if message is not None else None, at=at or utcnow()))

    # -- rows written in bulk -------------------------------------------------------
    def insert(self, model, row: "Row") -> None:
        """A row nobody reads or changes in this transaction (an audit line, a
        queued mail, a thread link): kept as plain values and written with
        the batch by one statement per table (``write``), without the ORM's
        work per object. The service's own indexes see it at once."""
        self._listen()
        self._bulk.setdefault(model.__table__, []).append(row)

    def _listen(self) -> None:
        if not self._listening:
            # Written before the commit, and before any query that would
            # autoflush (so a reader in the same transaction sees them, as it
            # would see ORM rows). The service's own queries do not autoflush.
            # New message and record rows also before any flush: the ORM's rows refer to them.
            event.listen(self.s, "before_commit", lambda _s: self.write())
            event.listen(self.s, "do_orm_execute", self._before_query)
            event.listen(self.s, "before_flush", lambda _s, _ctx, _i: self._write_new_rows())
            self._listening = True

    def _before_query(self, state) -> None:
        if state.is_select and self.s.autoflush:
            self.write()

    def _write_new_rows(self) -> None:
        """Write the new message rows, then the new record rows (which refer
        to them), and make them the session's own (persistent, as if
        loaded): a later change to one is an UPDATE, and a query in the same
        transaction returns the same object."""
        for model, rows in self._unwritten.items():  # (messages first)
            if not rows:
                continue
            self._unwritten[model] = []
            cols = _columns(model)
            for r in rows:  # what the flush would fill in: the columns' defaults
                d = vars(r)
                for attr, _col, default in cols:
                    if attr not in d and default is not None:
                        setattr(r, attr, default())
            # A new object's values are in its __dict__ (an attribute never
            # set reads as None, as getattr gives it).
            attrs = [attr for attr, _col, _d in cols]
            insert_values(self.s.connection(), model.__table__, tuple(col for _a, col, _d in cols),
                          [list(map(vars(r).get, attrs)) for r in rows])
            for r in rows:
                make_transient_to_detached(r)
                self.s.add(r)

    def write(self) -> None:
        """Write the new message and record rows, then the rows kept by
        ``insert`` (after the ORM's own rows, which they refer to). Called
        before the commit; call it to read them back in the same transaction."""
        self._write_new_rows()
        if not any(self._bulk.values()):
            return
        self.s.flush()
        conn = self.s.connection()
        for table in Base.metadata.sorted_tables:
            rows = self._bulk.get(table)
            if rows:
                keys = tuple({k: None for r in rows for k in vars(r)})
                insert_values(conn, table, keys, [list(map(vars(r).get, keys)) for r in rows])
                rows.clear()


class Row:
    """A row to write in bulk: its column values as attributes (so a pending
    thread link reads like a stored one: ``link.ticket_id``)."""

    def __init__(self, **values):
        self.__dict__.update(values)


def _norm(text: str | None) -> str:
    return " ".join((text or "").split())


@functools.cache
def _rows_query(model, keys: tuple[str, ...]):
    """SELECT the rows of ``model`` whose columns ``keys`` equal the bound
    values of the same names: built once (building the expression and its
    cache key cost more than running the query, for the batch's questions
    about penalties, counters and surveys)."""
    return select(model).where(*(getattr(model, k) == bindparam(k) for k in keys))


@functools.cache
def _columns(model) -> list[tuple[str, str, Callable | None]]:
    """(attribute, column, its Python-side default or None) of a row of ``model``."""
    out = []
    for prop in sa_inspect(model).column_attrs:
        col = prop.columns[0]
        out.append((prop.key, col.key, python_default(col)))
    return out


def fresh(model, **values):
    """A new ``model`` object with these column values, made without the
    ORM's constructor: it sets each value through the attribute's
    instrumentation, about 60 µs for a message row's 24 columns against 3 µs
    here. For the rows the service writes itself (``new_message``,
    ``new_ticket``), which it reads from the object's __dict__; a later
    change to one goes through the instrumentation as usual."""
    obj = model.__mapper__.class_manager.new_instance()
    obj.__dict__.update(values)
    return obj


def records_of(s: Session) -> Records:
    """The batch's record service for session ``s`` (made on first use)."""
    r = s.info.get("records")
    if r is None:
        r = s.info["records"] = Records(s)
    return r
