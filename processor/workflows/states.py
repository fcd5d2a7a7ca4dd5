"""Opening records and changing their state, always through their lifecycle.

The record kind's lifecycle (``processor.lifecycles``, declared in its rule
file) gives the number prefix, the states and the declared transitions. Here
is the one place that

- numbers a new record and marks it complete (``closed_at``) when it is
  opened in a final state;
- changes a record's state: only along a declared transition, with
  ``closed_at`` set on entering a final state (cleared on leaving it), a
  step in the record's ``history``, ``changed_at`` updated and an audit row,
  and then runs the transition's named ``effect`` (``workflows.effects``:
  registered by the workflow module that owns it).

Both append what happened to the batch's record events (``ctx.repo.events``:
("opened", ticket, None, state), ("state", ticket, old, new)), which the
pipeline hands to the service-level clocks.

Who may take a transition and the standard refusals are the caller's
(``commands.StateMachine`` for keyword replies); this module enforces only
that the transition exists.
"""
from __future__ import annotations

from ..lifecycles import Lifecycle, LifecycleError, Transition
from ..store.models import Ticket
from . import effects
from .base import Context


def lifecycle(ctx: Context, kind: str) -> Lifecycle:
    return ctx.lifecycles[kind]


def open_record(ctx: Context, kind: str, *, state: str, project: str = "", owner: str = "", due_at=None,
                data: dict | None = None) -> Ticket:
    """A new record of ``kind`` in ``state``, numbered with its prefix."""
    lc = lifecycle(ctx, kind)
    if state not in lc.states:
        raise LifecycleError(f"{kind}: {state!r} is not a declared state")
    t = ctx.repo.new_ticket(kind, prefix=lc.prefix, project=project, owner=owner, state=state, message=ctx.message,
                            now=ctx.now, due_at=due_at, data=data)
    if lc.is_final(state):
        t.closed_at = ctx.now  # a record complete when made
    ctx.repo.events.append(("opened", t, None, state))
    return t


def change(ctx: Context, ticket: Ticket, tr: Transition, *, arg: str = "", extra: dict | None = None,
           **detail) -> str:
    """Take the declared transition ``tr`` and run its effect (``extra``:
    what the caller hands the effect beyond the argument); returns the old
    state. ``detail`` goes to the audit row."""
    lc = lifecycle(ctx, ticket.kind)
    old = ticket.state
    if old not in tr.sources or tr.target not in lc.states or tr not in lc.transitions:
        raise LifecycleError(f"{ticket.kind}: {tr.command} from {old!r} to {tr.target!r} is not declared")
    ticket.state = tr.target
    if lc.is_final(tr.target):
        if not lc.is_final(old) or ticket.closed_at is None:
            ticket.closed_at = ctx.now
    else:
        ticket.closed_at = None
    by = ctx.sender.name if ctx.sender else ctx.mail.from_addr
    step = {"at": ctx.now.isoformat(), "by": by, "command": tr.command, "arg": arg, "from": old, "to": tr.target,
            "message": ctx.message.id}
    data = ticket.data or {}
    ticket.data = {**data, "history": [*data.get("history", []), step], "changed_at": ctx.now.isoformat()}
    ctx.audit(lc.kind, ticket.number, f"state:{old}->{tr.target}", command=tr.command, arg=arg, **detail)
    ctx.repo.state_changed(ticket, old, tr.target)
    effects.run(ctx, ticket, effects.Step(tr, old, arg, dict(extra or {})))
    return old


def apply(ctx: Context, ticket: Ticket, command: str, target: str | None = None, *, arg: str = "",
          extra: dict | None = None, **detail) -> Transition:
    """Take the transition declared for ``command`` from the record's state
    (to ``target``); LifecycleError if there is none."""
    tr = lifecycle(ctx, ticket.kind).find(command, ticket.state, target)
    if tr is None:
        raise LifecycleError(f"{ticket.kind}: no transition {command!r} from {ticket.state!r}"
                             + (f" to {target!r}" if target else ""))
    change(ctx, ticket, tr, arg=arg, extra=extra, **detail)
    return tr
