"""A record's 时间要求 restated in its thread (art. 33, 42).

The deadline a submission states (``时间要求：…``, read by
``processor.deadlines``) is a clock on the record (``sla.py``). The
project's 责任销售 may change it later by writing a new ``时间要求：`` line in
any reply in the record's thread (e.g. with 驳回, or on its own): the
record's deadline becomes that one and its deadline clock starts again for
the new time, owned by whoever owes the work. A line from anyone else, or one
that names no date, changes nothing.
"""
from __future__ import annotations

from .. import deadlines
from ..store.models import Ticket
from .base import Context
from .routing import find_project
from .thread import update_data

FIELD = "deadline"  # the field name the rules give 时间要求


def restate(ctx: Context, ticket: Ticket, *, owner: str) -> bool:
    """Apply a 时间要求 the project's sales wrote in this reply; True if the
    record's deadline changed."""
    rule = ctx.match.rule if ctx.match is not None else None
    if rule is None or not any(f.name == FIELD for f in rule.fields) or ctx.sender is None:
        return False
    text = rule.extractor.extract(ctx.mail.body).get(FIELD, "").strip()
    if not text:
        return False
    project, _ = find_project(ctx, ticket.project)
    if project is None or ctx.sender.name != project.sales:
        return False
    due = deadlines.parse(text, ctx.now, ctx.cfg.system.timezone, deadlines.day_end(ctx.cfg))
    data = ticket.data or {}
    if due is None or due.isoformat() == data.get("deadline_at"):
        return False
    update_data(ticket, deadline=text, deadline_at=due.isoformat(), deadline_owner=owner)
    ctx.repo.deadline_changed(ticket)
    ctx.audit(ticket.kind, ticket.number, "deadline_restated", deadline=text, owner=owner,
              before=data.get("deadline", ""))
    ctx.did("deadline_restated", number=ticket.number, deadline=text)
    return True
