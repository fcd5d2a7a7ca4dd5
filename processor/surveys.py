"""The 回访 timed job: mail the satisfaction requests that are due.

``send_due(rt)`` runs in ONE transaction: it selects scheduled surveys with
``due_at <= rt.clock()``, claims each one by changing its status
``scheduled -> sent`` (a conditional UPDATE: of two runs racing for a row only
one changes it), queues the request (``processor/queueing.py``) and
records the outbox Message-ID on the survey. The claim and the outbox row are
committed together, so a survey is mailed exactly once, however often the job
runs, the daemon restarts or mail is replayed. A survey whose record was
reopened before it went out is cancelled instead.

The daemon registers ``job(...)`` (every ``[workflows.survey] interval_seconds``,
default 60 s); ``run.py once`` calls ``send_due`` before its final outbox flush.
The workflow side (scheduling and answers) is ``processor/workflows/survey.py``.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable

from sqlalchemy import select, update

from .outbox import Outgoing
from .queueing import MailQueue
from .store.models import Survey, Ticket
from .records import records_of
from .workflows import survey as wf

if TYPE_CHECKING:
    from .pipeline import Runtime

log = logging.getLogger(__name__)

BATCH = 200
interval = wf.interval


def send_due(rt: "Runtime", queue: MailQueue | None = None, *, limit: int = BATCH) -> int:
    """Queue every due survey's mail; returns how many were queued."""
    queue = queue or MailQueue(rt)
    now = rt.clock()
    queued = 0
    due = select(Survey.id).where(Survey.status == "scheduled", Survey.due_at <= now)
    with rt.store.reader() as s:  # no write lock (SQLite) when nothing is due
        if s.scalars(due.limit(1)).first() is None:
            return 0
    with rt.store.session() as s, s.begin():
        ids = list(s.scalars(due.order_by(Survey.due_at, Survey.id).limit(limit)))
        if not ids:
            return 0
        rt.refresh_projects(s)
        for sid in ids:
            try:
                with s.begin_nested():
                    queued += _send_one(rt, queue, s, sid, now)
            except Exception:
                # e.g. a broken template: this survey stays scheduled (retried
                # next run), the others go out.
                log.exception("回访 %s 未能放入发件箱，保留待下次再发", sid)
    if queued:
        log.info("回访：已发出 %d 封满意度调查", queued)
    return queued


def _send_one(rt: "Runtime", queue: MailQueue, s, sid: int, now) -> int:
    claimed = s.execute(update(Survey).where(Survey.id == sid, Survey.status == "scheduled")
                        .values(status="sent", sent_at=now).execution_options(synchronize_session=False)).rowcount
    if claimed != 1:
        return 0  # another run took it
    sv = s.get(Survey, sid)
    s.refresh(sv)
    ticket = s.get(Ticket, sv.ticket_id)
    repo = records_of(s)
    if ticket is None or not wf.still_closed(rt.rules.lifecycles, ticket):
        sv.status = "cancelled"
        sv.sent_at = None
        repo.audit("survey", sv.id, "survey_cancelled", message=None, actor="system", at=now,
                   ticket=ticket.number if ticket else "", reason="record reopened before the survey was due",
                   state=ticket.state if ticket else "")
        return 0
    st = wf.settings(rt.cfg)
    person = rt.directory.by_email(sv.to_addr)
    opened_mid = ticket.opened_by.message_id if ticket.opened_by is not None else None
    out = Outgoing(
        template="survey_request", to=[sv.to_addr], kind="notice", ticket_token=ticket.token,
        references=[opened_mid] if opened_mid else [],
        variables={"system": rt.cfg.system, "now": now, "ticket": ticket, "survey": sv,
                   "kind_name": wf.kind_name(rt.rules.lifecycles, ticket.kind), "to_name": person.name if person else sv.to_addr,
                   "engineer": sv.engineer, "summary": wf.summary(ticket),
                   "closed": ticket.closed_at.astimezone(rt.tz).strftime("%Y-%m-%d %H:%M") if ticket.closed_at else "",
                   # The record introduced: the surveyed person may not have seen any mail about it.
                   **wf.introduction(rt.rules.lifecycles, ticket, st, rt.tz),
                   "threshold": st["threshold"], "reopen": st["reopen"] and wf.reopens(rt.rules.lifecycles, ticket)})
    mids = queue.put(s, [out], now=now)
    sv.outbox_message_id = mids[0]
    s.flush()
    repo.link(mids[0], ticket)  # answers route back to the record (the token does too)
    repo.audit("survey", sv.id, "survey_sent", message=None, actor="system", at=now, ticket=ticket.number,
               to=sv.to_addr, engineer=sv.engineer, outbox=mids[0])
    return 1


def job(rt: "Runtime", queue: MailQueue) -> Callable[[], None]:
    """The daemon's timed job (returns None: keep the regular interval)."""
    def run() -> None:
        send_due(rt, queue)
    return run
