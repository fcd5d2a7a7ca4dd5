"""Named effects: what a lifecycle transition does besides changing the state.

A transition of a record kind's lifecycle names its effect (``effect =
"approve"``) and who is told (``notify``). The workflow module that owns the
effect registers a small function under that name::

    @effect("approve", kind="workorder")
    def approved(ctx, ticket, step): ...

``states.change`` runs it through ``run`` right after the state changed; a
kind of ``"*"`` registers an effect any record kind may name
(``survey_reopen``). ``check`` refuses a lifecycle that names an effect
nobody registered (the names are kept in ``rules.engine.EFFECT_NAMES``).

``told`` resolves ``notify`` (and ``who``) entries to people: the one place
where roles, parties of the record, ``owner`` and ``settings.<key>`` become
persons.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..directory import Person
from ..lifecycles import OWNER, SYSTEM, LifecycleError, Transition
from ..rules.engine import EFFECT_NAMES
from ..store.models import Ticket
from .base import Context

ANY = "*"


@dataclass(frozen=True)
class Step:
    """The transition just taken, for its effect."""
    transition: Transition
    old: str  # the state the record left
    arg: str = ""  # the command's argument, as the sender wrote it
    extra: dict = field(default_factory=dict)  # what the caller knows beyond the mail (a survey, a report ...)


Effect = Callable[[Context, Ticket, Step], None]
EFFECTS: dict[tuple[str, str], Effect] = {}


def effect(name: str, kind: str = ANY):
    """Register ``fn(ctx, ticket, step)`` as the effect ``name`` of records of
    ``kind`` (``"*"``: of any kind that names it)."""
    def deco(fn: Effect) -> Effect:
        key = (kind, name)
        if key in EFFECTS and EFFECTS[key] is not fn:
            raise ValueError(f"effect {name!r} of {kind!r} is registered twice")
        EFFECTS[key] = fn
        EFFECT_NAMES.add(key)
        return fn
    return deco


def lookup(kind: str, name: str) -> Effect | None:
    return EFFECTS.get((kind, name)) or EFFECTS.get((ANY, name))


def run(ctx: Context, ticket: Ticket, step: Step) -> None:
    """Run the effect the transition names (none: nothing to do)."""
    name = step.transition.effect
    if not name:
        return
    fn = lookup(ticket.kind, name)
    if fn is None:  # `check` refuses such a lifecycle: a bug, not a user's mistake
        raise LifecycleError(f"{ticket.kind}: effect {name!r} of {step.transition.command!r} is not registered")
    fn(ctx, ticket, step)


def told(ctx: Context, ticket: Ticket, entries) -> list[Person]:
    """The people ``entries`` (a transition's ``notify`` or ``who``) stand for
    on this record, in order, each once: everyone holding a role (also the
    roles a ``settings.<key>`` lists), the person a party of the record names
    (its data holds the name), the record's owner for ``owner``; ``system`` is
    nobody."""
    lc = ctx.lifecycles[ticket.kind]
    data = ticket.data or {}
    out: list[Person] = []
    for w in lc.resolve(entries, lc.settings_in(ctx.cfg.workflows)):
        if w == SYSTEM:
            continue
        if w == OWNER or w in lc.parties:
            p = ctx.directory.by_name((ticket.owner if w == OWNER else data.get(w)) or "")
            found = [p] if p is not None else []
        else:
            found = list(ctx.directory.with_role(w))
        out += [p for p in found if p not in out]
    return out
