"""A record's mail thread: the helpers every convention uses to open a
record once per mail, to answer in the sender's thread, and to handle
replies in a record's thread (the same mail seen twice, the rule the record
came from, notes, data updates)."""
from __future__ import annotations

from ..mail.subject import remove_ticket_token
from ..reasons import Decision
from ..rules.engine import Match
from ..store.models import Ticket
from .base import Context, mail_date
from .commands import first_line
from .states import open_record


def clean_subject(ctx: Context) -> str:
    """The incoming subject without our [#...] tokens (a reply to a reply
    must not carry an old record's token next to the new one)."""
    return remove_ticket_token(ctx.mail.subject or "").strip()


def answer(ctx: Context, role: str, default: str, *, ticket: Ticket, cc: list[str] | None = None, **variables):
    """Reply to the sender with the rule's template for ``role``."""
    return ctx.reply(ctx.template(role, default), ticket=ticket, cc=cc, subject=clean_subject(ctx), **variables)


def same_mail_ids(ctx: Context, *, processed_only: bool = False) -> list[int]:
    """Ids of other mails that are this very mail seen again (a CC and a
    journal copy, a replay): the same Message-ID, the same sender and the same
    body. A reused Message-ID on another sender's or another body's mail is a
    different mail."""
    return ctx.repo.same_mail(ctx.message, processed_only=processed_only)


def ticket_for_message_id(ctx: Context, kind: str) -> Ticket | None:
    """A ticket of ``kind`` already opened by this same mail (see same_mail_ids)."""
    ids = same_mail_ids(ctx)
    return ctx.repo.opened_by(ids, kind) if ids else None


def enter_thread(ctx: Context, ticket: Ticket, rule: str) -> bool:
    """Start of a reply handler. False (and the mail recorded) when there is
    nothing for the handler to do: this Message-ID was handled in the thread
    already, or the record's rule is not loaded (then the answer is kept as a
    note). True when ``ctx.match`` is bound to the rule and the handler goes on."""
    if handled_before(ctx):
        ctx.decide("same_message_in_thread", number=ticket.number)
        return False
    if not bind_rule(ctx, ticket, rule):
        add_note(ctx, ticket)
        ctx.decide("noted_in_thread", number=ticket.number)
        return False
    return True


def already_recorded(ctx: Context, kind: str) -> bool:
    """The same mail (same Message-ID, other bytes: a CC and a journal copy)
    already opened a record of ``kind``: put this copy into that record's
    thread and change nothing. Every record-opening action starts with it."""
    seen = ticket_for_message_id(ctx, kind)
    if seen is None:
        return False
    relink(ctx, seen)
    ctx.decide("same_message_recorded", number=seen.number)
    return True


def handled_before(ctx: Context) -> bool:
    """Was this same mail already processed (a journal copy or a second
    delivery of the same answer, with other bytes)? Reply handlers then change
    nothing and send nothing."""
    return bool(same_mail_ids(ctx, processed_only=True))


def relink(ctx: Context, ticket: Ticket) -> None:
    """Make the incoming mail's Message-ID belong to ``ticket`` (the pipeline
    may already have linked it to the thread it answered)."""
    ctx.repo.relink(ctx.mail.message_id, ticket)


def bind_rule(ctx: Context, ticket: Ticket, default_rule: str) -> bool:
    """For a reply handler: make ctx.settings / ctx.template use the rule the
    ticket came from. False if that rule is no longer loaded."""
    if ctx.match is not None:
        return True
    if ctx.rules is None:
        return False
    rule = ctx.rules.by_name.get((ticket.data or {}).get("rule") or default_rule)
    if rule is None:
        return False
    ctx.match = Match(rule, dict((ticket.data or {}).get("captures", {})),
                      [Decision("reply_in_thread", {"number": ticket.number})], {}, [])
    return True


def update_data(ticket: Ticket, **changes) -> None:
    """JSON columns are not mutation-tracked: assign a new dict."""
    ticket.data = {**(ticket.data or {}), **changes}


def add_note(ctx: Context, ticket: Ticket, kind: str = "reply") -> None:
    """Record a mail in a ticket's thread (no mail is sent)."""
    notes = list((ticket.data or {}).get("thread", []))
    notes.append({"at": ctx.now.isoformat(), "from": ctx.sender.name if ctx.sender else ctx.mail.from_addr,
                  "message": ctx.message.id, "kind": kind, "first_line": first_line(ctx.mail.body)[:200]})
    update_data(ticket, thread=notes)
    ctx.audit("ticket", ticket.number, f"thread_{kind}", from_addr=ctx.mail.from_addr, subject=ctx.mail.subject)


def open_submission(ctx: Context, kind: str, state: str, *, project: str, owner: str, previous: Ticket | None,
                    audit_as: str, **data) -> Ticket:
    """The record a submitted mail opens (a report, a 立项单, a 支持记录):
    the rule, captures, sender, date and field values of the mail, linked to
    its thread; a resubmission points back at ``previous``; audited as
    ``<audit_as>_<state>``."""
    m = ctx.match
    t = open_record(ctx, kind, project=project, owner=owner, state=state,
                    data={"rule": m.rule.name, "captures": dict(m.captures),
                          "sender": ctx.sender.name if ctx.sender else ctx.mail.from_addr,
                          "date": mail_date(ctx).isoformat(), "values": dict(m.values),
                          "message_id": ctx.mail.message_id or "",
                          "resubmits": previous.number if previous else "", **data})
    relink(ctx, t)
    if previous is not None:
        update_data(previous, resubmitted_as=t.number)
    simple = {k: v for k, v in data.items() if isinstance(v, (str, int, list))}
    ctx.audit("ticket", t.number, f"{audit_as}_{state}", project=project, owner=owner, **simple)
    return t
