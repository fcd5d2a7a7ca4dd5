"""Queries the pipeline and the workflows share. Session-bound, no commits:
the caller owns the transaction."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .models import Audit, Message, Setting, SyncState, ThreadLink, Ticket


class Repo:
    def __init__(self, session: Session):
        self.s = session
        # What happened to records, in order, for the service-level clocks
        # (``Sla.apply_events``): ("opened", ticket, None, state) and
        # ("state", ticket, old, new), appended by ``workflows.states``.
        self.events: list[tuple] = []

    # sync state -----------------------------------------------------------
    def sync_state(self, account: str, folder: str) -> SyncState | None:
        return self.s.get(SyncState, (account, folder))

    # messages ---------------------------------------------------------------
    def message_by_uid(self, account: str, folder: str, uidvalidity: int, uid: int) -> Message | None:
        return self.s.scalars(select(Message).where(Message.account == account, Message.folder == folder,
                                                    Message.uidvalidity == uidvalidity, Message.uid == uid)).first()

    def message_by_dedupe(self, key: str) -> Message | None:
        return self.s.scalars(select(Message).where(Message.dedupe_key == key)).first()

    # tickets ----------------------------------------------------------------
    def new_ticket(self, kind: str, *, prefix: str, project: str = "", owner: str = "", state: str,
                   message: Message | None, now: datetime, due_at: datetime | None = None,
                   data: dict | None = None) -> Ticket:
        """A numbered record; ``prefix`` is its kind's (from its lifecycle)."""
        year = now.strftime("%Y")
        # A counter row per prefix and year (same transaction, which on SQLite
        # holds the write lock): no scan of the tickets table per new record.
        key = f"seq.{prefix}{year}"
        seq = self.s.get(Setting, key)
        if seq is None:
            n = self.s.scalar(select(func.count()).select_from(Ticket).where(Ticket.number.like(f"{prefix}{year}-%"))) or 0
            seq = Setting(key=key, value=str(n))
            self.s.add(seq)
        seq.value = str(int(seq.value) + 1)
        number = f"{prefix}{year}-{int(seq.value):04d}"
        t = Ticket(token=number, number=number, kind=kind, project=project, owner=owner, state=state,
                   opened_by=message, opened_at=now, due_at=due_at, data=data or {})
        self.s.add(t)
        self.s.flush()
        return t

    def link(self, message_id: str | None, ticket: Ticket, *, fresh: bool = False) -> None:
        """Put a Message-ID into a record's thread. ``fresh``: an ID we just
        generated, which cannot be linked yet (no lookup needed)."""
        if message_id and (fresh or self.s.get(ThreadLink, message_id) is None):
            self.s.add(ThreadLink(message_id=message_id, ticket_id=ticket.id))

    def ticket_by_token(self, token: str) -> Ticket | None:
        return self.s.scalars(select(Ticket).where(Ticket.token == token)).first()

    def ticket_for_thread(self, token: str | None, message_ids: list[str]) -> Ticket | None:
        """Our subject token first, then In-Reply-To / References."""
        if token:
            t = self.ticket_by_token(token)
            if t is not None:
                return t
        ids = [m for m in message_ids if m]
        if not ids:
            return None
        link = self.s.scalars(select(ThreadLink).where(ThreadLink.message_id.in_(ids))).first()
        return self.s.get(Ticket, link.ticket_id) if link else None

    def tickets(self, kind: str | None = None, project: str | None = None, states: tuple[str, ...] | None = None) -> list[Ticket]:
        q = select(Ticket)
        if kind:
            q = q.where(Ticket.kind == kind)
        if project is not None:
            q = q.where(Ticket.project == project)
        if states:
            q = q.where(Ticket.state.in_(states))
        return list(self.s.scalars(q.order_by(Ticket.id)))

    # audit ------------------------------------------------------------------
    def audit(self, entity: str, entity_id: str, action: str, *, message: Message | None, actor: str = "",
              at: datetime | None = None, **detail) -> None:
        a = Audit(entity=entity, entity_id=str(entity_id), action=action, actor=actor, detail=detail, cause=message)
        if at is not None:
            a.at = at
        self.s.add(a)
