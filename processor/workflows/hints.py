"""Replies that do nothing are answered, never dropped in silence.

- ``near_commands``: a reply in a record's thread that was only noted, whose
  first line looks like one of the record's reply commands without being one
  (``已经解决了`` for ``已解决``, ``好的，同意`` for ``同意``), gets a short
  answer quoting the exact keyword (``command_hint``). The commands are the
  record's lifecycle transitions possible from its state (``StateMachine``),
  with their configured synonyms: no list of its own.
- ``reply_does_nothing``: a reply to one of our mails that belongs to no
  record and matches no rule (the monthly or weekly mail, a digest) is told
  that replies there do nothing and where to answer instead.

Both only add a reply; they change no record.
"""
from __future__ import annotations

import re

from ..mail.subject import fold
from ..store.models import Ticket
from .base import Context
from .commands import StateMachine, first_line, keywords

# A first line longer than this is prose, not a mistyped keyword.
MAX_LINE = 16


def _core(text: str) -> str:
    return re.sub(r"[\s\W_]+", "", fold(text or ""))


def _in_order(word: str, text: str) -> bool:
    """Every character of ``word`` appears in ``text`` in order (已解决 in 已经解决了)."""
    it = iter(text)
    return all(ch in it for ch in word)


def near_commands(ctx: Context, ticket: Ticket) -> list[dict]:
    """The commands possible on ``ticket`` now that the reply's first line
    resembles without being one: ``[{"text": "已解决", "who": "负责人（张三）"}]``."""
    lc = ctx.lifecycles.get(ticket.kind)
    line = first_line(ctx.mail.body)
    core = _core(line)
    if lc is None or not core or len(core) > MAX_LINE:
        return []
    try:
        sm = StateMachine.of(ctx, ticket.kind, ticket)
    except (KeyError, ValueError):
        return []
    words = keywords(ctx)
    out: dict[str, dict] = {}
    for t in sm.possible(ticket.state):
        syns = [_core(w) for w in {t.command, *words.get(t.command, ())}]
        if any(s and _in_order(s, core) for s in syns):
            text = f"{t.command}：{t.needs}" if t.needs else t.command
            out.setdefault(text, {"text": text, "who": sm.who(t)})
    return list(out.values())


def hint_after_note(ctx: Context, ticket: Ticket) -> bool:
    """Called once a reply was only noted in ``ticket``'s thread (nothing
    sent): answer it if it looks like a command. True if answered."""
    hints = near_commands(ctx, ticket)
    linked = (ticket.data or {}).get("followup")
    if not hints and linked:
        # A report's receipt invites 已解决 for the follow-up it opened.
        ft = ctx.repo.ticket_by_token(linked)
        if ft is not None:
            hints, ticket = near_commands(ctx, ft), ft
    if not hints:
        return False
    lc = ctx.lifecycles.get(ticket.kind)
    ctx.reply("command_hint", ticket=ticket, line=first_line(ctx.mail.body)[:60], hints=hints,
              state=lc.name(ticket.state) if lc is not None else ticket.state)
    ctx.did("command_hint", keywords=[h["text"] for h in hints])
    return True


def reply_does_nothing(ctx: Context, original_subject: str) -> None:
    """Answer a reply to one of our mails that no record or rule takes
    (``original_subject``: the subject of the mail we sent)."""
    ctx.reply("reply_does_nothing", original=original_subject[:200])
    ctx.decide("reply_does_nothing", original=original_subject[:200])
