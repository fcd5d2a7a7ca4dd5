"""遗留问题跟进单 (art. 17-19), and helpers the two mail conventions share.

A report whose 沟通结果 is 问题遗留 opens a follow-up ticket owned by the
project's 第一售前, due after ``followup_due_hours`` (the report rule's
settings). It is closed by a later accepted report on the same project with
the result 成功, or by its owner answering in its thread (or in the report's
thread) with a first line starting with one of ``close_words`` (默认「已解决」).
Closing mails the 责任销售 that the problem is solved, as art. 18 requires.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from ..directory import AmbiguousProject, Person, Project
from ..mail.subject import fold, remove_ticket_token
from ..rules.engine import Match
from ..store.models import Message, ThreadLink, Ticket
from . import states
from .base import Context, on_reply
from .commands import first_line  # noqa: F401  (used here and by the modules that import followup)
from .states import open_record

KIND = "followup"
DEFAULT_CLOSE_WORDS = ("已解决",)
DEFAULT_DUE_HOURS = 72

# ---------------------------------------------------------------------------
# shared helpers (used by report.py and complaint.py too)
# ---------------------------------------------------------------------------


def tz(ctx: Context) -> ZoneInfo:
    return ZoneInfo(ctx.cfg.system.timezone)


def local(ctx: Context, dt: datetime | None) -> datetime | None:
    return dt.astimezone(tz(ctx)) if dt is not None else None


def fmt_dt(ctx: Context, dt: datetime | None, with_time: bool = True) -> str:
    if dt is None:
        return ""
    return local(ctx, dt).strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")


def mail_date(ctx: Context) -> datetime:
    """When the mail was written: its Date header, but never later than its
    arrival (a wrong clock on the sender's side must not move a record into
    the future)."""
    d = ctx.mail.date
    if d is None or d > ctx.now + timedelta(minutes=10):
        return ctx.now
    return d




def starts_with_any(text: str, words) -> str | None:
    """The word ``text`` starts with (ignoring leading punctuation), or None."""
    core = re.sub(r"^[\s\W_]+", "", fold(text))
    for w in words:
        if w and core.startswith(fold(w)):
            return w
    return None


def clean_subject(ctx: Context) -> str:
    """The incoming subject without our [#...] tokens (a reply to a reply
    must not carry an old record's token next to the new one)."""
    return remove_ticket_token(ctx.mail.subject or "").strip()


def answer(ctx: Context, role: str, default: str, *, ticket: Ticket, cc: list[str] | None = None, **variables):
    """Reply to the sender with the rule's template for ``role``."""
    return ctx.reply(ctx.template(role, default), ticket=ticket, cc=cc, subject=clean_subject(ctx), **variables)


def recipients(ctx: Context) -> set[str]:
    """To + CC of the incoming mail, without the system's own addresses."""
    own = ctx.cfg.own_addresses
    return {a.lower() for a in ctx.mail.recipients if a and a.lower() not in own}


def addressed(ctx: Context, person: Person | None) -> bool:
    """Is one of the person's addresses in To/CC (or are they the sender)?"""
    if person is None:
        return False
    rcpt = recipients(ctx) | {(ctx.mail.from_addr or "").lower()}
    return any(e in rcpt for e in person.emails)


def emails(people) -> list[str]:
    out: list[str] = []
    for p in people:
        if p is not None and p.email not in out:
            out.append(p.email)
    return out


def find_project(ctx: Context, name: str) -> tuple[Project | None, list[str]]:
    """(project, candidates): the project, or None with the closest known
    names (ambiguous names give the projects they match)."""
    try:
        p = ctx.directory.project(name)
        if p is None and name.strip().endswith("項目"):  # 繁体 "项目"
            p = ctx.directory.project(name.strip()[:-2])
    except AmbiguousProject as e:
        return None, list(e.candidates)
    if p is None:
        return None, ctx.directory.closest_projects(name, 3)
    return p, []


def ticket_for_message_id(ctx: Context, kind: str) -> Ticket | None:
    """A ticket of ``kind`` already opened by a mail with this Message-ID
    (the same mail seen twice: CC + journal copy, or a replay)."""
    mid = ctx.mail.message_id
    if not mid:
        return None
    q = (select(Ticket).join(Message, Ticket.opened_by_message == Message.id)
         .where(Ticket.kind == kind, Message.message_id == mid, Message.id != ctx.message.id).limit(1))
    return ctx.repo.s.scalars(q).first()


def unknown_settings(settings: dict, known) -> list[tuple[str, str]]:
    """(key, reason) for each [settings] key the workflow does not know, for `check`."""
    from ..config import unknown_key_reason

    return [(k, unknown_key_reason(k, known)) for k in settings if k not in known]


def enter_thread(ctx: Context, ticket: Ticket, rule: str) -> bool:
    """Start of a reply handler. False (and the mail recorded) when there is
    nothing for the handler to do: this Message-ID was handled in the thread
    already, or the record's rule is not loaded (then the answer is kept as a
    note). True when ``ctx.match`` is bound to the rule and the handler goes on."""
    if handled_before(ctx):
        ctx.outcome = f"同一封邮件（Message-ID 相同）已在 {ticket.number} 的会话中处理过，未重复处理"
        return False
    if not bind_rule(ctx, ticket, rule):
        add_note(ctx, ticket)
        ctx.outcome = f"已记录在 {ticket.number} 的会话中"
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
    ctx.outcome = f"已登记为 {seen.number}（同一 Message-ID 的邮件），未做更改"
    return True


def handled_before(ctx: Context) -> bool:
    """Was a mail with this Message-ID already processed (a journal copy or a
    second delivery of the same answer, with other bytes)? Reply handlers
    then change nothing and send nothing."""
    mid = ctx.mail.message_id
    if not mid:
        return False
    q = select(Message.id).where(Message.message_id == mid, Message.id != ctx.message.id,
                                 Message.status == "processed").limit(1)
    return ctx.repo.s.scalars(q).first() is not None


def relink(ctx: Context, ticket: Ticket) -> None:
    """Make the incoming mail's Message-ID belong to ``ticket`` (the pipeline
    may already have linked it to the thread it answered)."""
    mid = ctx.mail.message_id
    if not mid:
        return
    ctx.repo.s.flush()
    link = ctx.repo.s.get(ThreadLink, mid)
    if link is None:
        ctx.repo.link(mid, ticket)
    else:
        link.ticket_id = ticket.id


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
    ctx.match = Match(rule, dict((ticket.data or {}).get("captures", {})), f"reply in the thread of {ticket.number}", {}, [])
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


def as_int(settings: dict, key: str, default: int) -> int:
    v = settings.get(key, default)
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else default


def as_bool(settings: dict, key: str, default: bool) -> bool:
    v = settings.get(key, default)
    return v if isinstance(v, bool) else default


def as_str(settings: dict, key: str, default: str) -> str:
    v = settings.get(key, default)
    return v if isinstance(v, str) and v else default


def as_words(settings: dict, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    v = settings.get(key, default)
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) and x for x in v):
        return default
    return tuple(v)


# ---------------------------------------------------------------------------
# follow-up tickets
# ---------------------------------------------------------------------------


def open_followup(ctx: Context, *, report: Ticket, project: Project, owner: Person | None, remaining: str) -> Ticket:
    hours = as_int(ctx.settings, "followup_due_hours", DEFAULT_DUE_HOURS)
    t = open_record(ctx, KIND, project=project.name, owner=project.presales1, state=ctx.lifecycles[KIND].initial[0],
                    due_at=ctx.now + timedelta(hours=hours),
                    data={"rule": ctx.match.rule.name if ctx.match else "", "report": report.number,
                          "remaining": remaining, "sales": project.sales,
                          "reporter": (report.data or {}).get("reporter", "")})
    update_data(report, followup=t.number)
    ctx.audit("ticket", t.number, "followup_opened", project=project.name, owner=project.presales1,
              report=report.number, due_at=t.due_at.isoformat())
    return t


def open_followups(ctx: Context, project: str) -> list[Ticket]:
    return ctx.repo.tickets(KIND, project=project, states=ctx.lifecycles[KIND].open_states)


def close_followup(ctx: Context, ft: Ticket, *, how: str, closing_report: Ticket | None = None,
                   resolution: str = "") -> None:
    """Close (its owner's 已解决, or a 成功 report) and mail the 责任销售
    (art. 18), CC the owner and the reporter."""
    states.apply(ctx, ft, "已解决" if how == "reply" else "成功", arg=resolution[:200])
    closer = ctx.sender.name if ctx.sender else ctx.mail.from_addr
    update_data(ft, closed_how=how, closed_by=closer, closing_report=closing_report.number if closing_report else "",
                resolution=resolution)
    ctx.audit("ticket", ft.number, "followup_closed", how=how, closing_report=ft.data.get("closing_report"))
    from .survey import schedule as schedule_survey  # here: survey.py imports this module
    schedule_survey(ctx, ft, engineer=ft.owner)
    project = ctx.directory.project(ft.project) if _safe_project(ctx, ft.project) else None
    sales = ctx.directory.by_name(project.sales if project else (ft.data or {}).get("sales", ""))
    owner = ctx.directory.by_name(ft.owner)
    reporter = ctx.directory.by_name((ft.data or {}).get("reporter", ""))
    if sales is None:
        return
    report = ctx.repo.ticket_by_token((ft.data or {}).get("report", "")) if (ft.data or {}).get("report") else None
    ctx.send(ctx.template("followup_done", "followup_done"), to=[sales.email],
             cc=[e for e in emails([owner, reporter]) if e != sales.email],
             reply_to=emails([owner]), ticket=ft, kind="notice",
             followup=ft, sales=sales, owner_name=ft.owner, closer=closer, how=how,
             report_number=(ft.data or {}).get("report", ""),
             report_date=fmt_dt(ctx, report.opened_at, False) if report else "",
             remaining=(ft.data or {}).get("remaining", ""), resolution=resolution,
             closing_report=closing_report, opened=fmt_dt(ctx, ft.opened_at), closed=fmt_dt(ctx, ft.closed_at))


def _safe_project(ctx: Context, name: str) -> bool:
    try:
        return ctx.directory.project(name) is not None
    except AmbiguousProject:
        return False


def try_close_by_reply(ctx: Context, ft: Ticket) -> bool:
    """A reply whose first line is a close word: close if from the owner,
    else explain who can. Returns True if the mail was such a reply."""
    words = as_words(ctx.settings, "close_words", DEFAULT_CLOSE_WORDS)
    line = first_line(ctx.mail.body)
    if not starts_with_any(line, words):
        return False
    owner = ctx.directory.by_name(ft.owner)
    if ctx.lifecycles[KIND].is_final(ft.state):
        add_note(ctx, ft, "close_again")
        ctx.outcome = f"{ft.number} is already closed"
        return True
    if ctx.sender is None or owner is None or ctx.sender.name != owner.name:
        add_note(ctx, ft, "close_denied")
        ctx.reply(ctx.template("followup_not_owner", "followup_not_owner"), ticket=ft, followup=ft,
                  owner_name=ft.owner, remaining=(ft.data or {}).get("remaining", ""))
        who = ctx.sender.name if ctx.sender else ctx.mail.from_addr
        ctx.outcome = f"close of {ft.number} refused: {who} is not its owner"
        return True
    body_lines = [ln.strip() for ln in (ctx.mail.body or "").splitlines() if ln.strip()]
    if body_lines and re.sub(r"[\s\W_]+", "", fold(body_lines[0])) in {fold(w) for w in words}:
        body_lines = body_lines[1:]  # the first line is only the close word
    resolution = "\n".join(body_lines) or line
    close_followup(ctx, ft, how="reply", resolution=resolution)
    ctx.outcome = f"{ft.number} closed by its owner"
    return True


@on_reply(KIND)
def followup_reply(ctx: Context, ticket: Ticket) -> None:
    if handled_before(ctx):
        ctx.outcome = f"same Message-ID already handled in the thread of {ticket.number}; nothing changed"
        return
    bind_rule(ctx, ticket, "customer_report")
    if try_close_by_reply(ctx, ticket):
        return
    add_note(ctx, ticket)
    ctx.outcome = f"recorded in the thread of {ticket.number}"
