"""「您是不是指“…”？」 for every convention that names a project.

A mail whose project nobody has, when exactly one real project is a near
match (``Directory.closest_projects``: a typo, not a shared character), is
recorded in the state ``unconfirmed`` (待确认项目, declared in each kind's
lifecycle in its rule file) and its sender is asked; no 未立项 handling
happens yet. One reply settles it: 是 processes the mail as if it had named
the suggested project, dated by the original mail; 不是 gives the usual
未立项 handling. The workflow supplies what 是 and 不是 do.
"""
from __future__ import annotations

from datetime import datetime
from typing import Callable

from ..mail.subject import fold
from ..reasons import Decision
from ..rules.engine import Match, Rule
from ..store.models import Ticket
from .base import Context, mail_date
from .commands import first_line
from .routing import recipients
from .thread import answer

UNCONFIRMED = "unconfirmed"
YES_WORDS = ("是", "是的", "对", "对的", "确认", "没错", "正确", "yes")
NO_WORDS = ("不是", "否", "不对", "no")


def near_match(project, candidates: list[str], previous: Ticket | None = None) -> str | None:
    """The one project to ask about, or None: the name is unknown, exactly
    one real near match exists, and this is not already an answer."""
    return candidates[0] if project is None and len(candidates) == 1 and previous is None else None


def ask_data(ctx: Context, suggested: str) -> dict:
    """What the 待确认项目 record keeps so that one reply can settle it."""
    return {"suggested": suggested, "recipients": sorted(recipients(ctx)),
            "written": mail_date(ctx).isoformat(), "values": dict(ctx.match.values) if ctx.match else {}}


def ask(ctx: Context, t: Ticket, *, kind_label: str, name: str, suggested: str, problems: list[str],
        reminds_sales: bool) -> None:
    """Ask the sender whether ``suggested`` was meant (``t`` is the record)."""
    answer(ctx, "did_you_mean", "did_you_mean", ticket=t, record=t, kind_label=kind_label,
           project_name=name, suggested=suggested, yes_word=YES_WORDS[0], no_word=NO_WORDS[0], problems=problems,
           reminds_sales=reminds_sales)
    ctx.decide("project_did_you_mean", number=t.number, project=name, suggested=suggested)


def confirm(ctx: Context, ticket: Ticket, rule: Rule, *, on_yes: Callable[[], None],
            on_no: Callable[[str], None], sender_key: str = "sender") -> bool:
    """The one-reply answer to 「您是不是指…」 in ``ticket``'s thread: binds
    ``ctx.match`` to the original mail (its project replaced on 是) and its
    date, then runs ``on_yes()`` or ``on_no(name)``. False if the reply is
    neither word, or not from the sender asked."""
    data = ticket.data or {}
    if ticket.state != UNCONFIRMED or ctx.sender is None or ctx.sender.name != data.get(sender_key):
        return False
    word = fold(first_line(ctx.mail.body)).strip(" 。.!！,，").lower()
    if word not in YES_WORDS and word not in NO_WORDS:
        return False
    yes = word in YES_WORDS
    captures = dict(data.get("captures", {}))
    values = dict(data.get("values", {}))
    name = captures.get("project", "")
    suggested = data.get("suggested", name)
    if yes:
        captures["project"] = suggested
        values = {k: (suggested if v == name else v) for k, v in values.items()}
    ctx.match = Match(rule, captures, [Decision("project_confirmation", {"number": ticket.number, "answer": word})],
                      values, rule.validate(values, ctx.sender))
    try:
        ctx.written = datetime.fromisoformat(data["written"])
    except (KeyError, TypeError, ValueError):
        pass
    if yes:
        on_yes()
    else:
        on_no(name)
    return True
