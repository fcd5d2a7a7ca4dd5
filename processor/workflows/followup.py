"""遗留问题跟进单 (art. 17-19).

A report whose 沟通结果 is 问题遗留 opens a follow-up ticket owned by the
project's 第一售前, due after ``followup_due_hours`` (the report rule's
settings). It is closed by a later accepted report on the same project with
the result 成功 that refers to it (``referred_followups``: sent in its thread
or in the thread of the report that opened it, or citing its number in the
subject, the body or the 跟进单编号 field; never by project alone), or by its
owner answering in its thread (or in the report's thread) with a first line
starting with one of ``close_words`` (默认「已解决」).
Closing mails the 责任销售 that the problem is solved, as art. 18 requires.
The states and steps are its lifecycle, ``[lifecycle.followup]`` in
``rules/customer_report.toml``.
"""
from __future__ import annotations

import re
from datetime import timedelta

from pydantic import Field

from ..directory import AmbiguousProject, Person, Project
from ..mail.subject import fold
from ..store.models import Ticket
from . import states
from .base import Context, fmt_dt, on_reply
from .commands import first_line, starts_with_any
from .effects import Step, effect, told
from .routing import emails
from .settings import Settings, SomeWords, typed
from .states import open_record
from .survey import schedule as schedule_survey
from .thread import add_note, bind_rule, handled_before, update_data

KIND = "followup"


class FollowupSettings(Settings):
    """The follow-up's keys of the report rule's settings (``ReportSettings``)."""
    # Hours until a follow-up is due.
    followup_due_hours: int = Field(72, ge=1, description="≥ 1 的整数（小时）")
    # Its owner closes it by replying with a first line starting with one of these.
    close_words: SomeWords = ("已解决",)


def _settings(ctx: Context) -> FollowupSettings:
    """The report rule's settings (also in a reply whose rule is no longer loaded)."""
    return typed(ctx, FollowupSettings, "customer_report")


def open_followup(ctx: Context, *, report: Ticket, project: Project, owner: Person | None, remaining: str) -> Ticket:
    hours = _settings(ctx).followup_due_hours
    t = open_record(ctx, KIND, project=project.name, owner=project.presales1, state=ctx.lifecycles[KIND].initial[0],
                    due_at=ctx.now + timedelta(hours=hours),
                    data={"rule": ctx.match.rule.name if ctx.match else "", "report": report.number,
                          "remaining": remaining, "sales": project.sales,
                          "reporter": (report.data or {}).get("reporter", "")})
    update_data(report, followup=t.number)
    ctx.audit("ticket", t.number, "followup_opened", project=project.name, owner=project.presales1,
              report=report.number, due_at=t.due_at.isoformat())
    return t


def cited_numbers(ctx: Context, *texts: str) -> list[str]:
    """Follow-up numbers (``GJ2026-0001``) written in ``texts``, in order, once
    each; full-width digits and dashes are folded, case is ignored."""
    prefix = ctx.lifecycles[KIND].prefix
    pattern = re.compile(rf"(?<![A-Z0-9]){re.escape(prefix)}\s*(\d{{4}})\s*-\s*(\d{{1,8}})(?!\d)")
    out: list[str] = []
    for text in texts:
        for year, seq in pattern.findall(fold(text or "").upper()):
            number = f"{prefix}{year}-{int(seq):04d}"
            if number not in out:
                out.append(number)
    return out


def thread_followup(ticket: Ticket | None) -> str:
    """The follow-up a record's thread stands for: the follow-up itself, or the
    one the record (a 问题遗留 report) opened; "" for none."""
    if ticket is None:
        return ""
    if ticket.kind == KIND:
        return ticket.number
    return str((ticket.data or {}).get("followup") or "")


def referred_followups(ctx: Context, project: str, *, thread: Ticket | None, texts: tuple[str, ...],
                       listed: int) -> tuple[list[Ticket], list[Ticket], int]:
    """(the project's open follow-ups a report refers to, the newest ``listed``
    of the others, how many others there are).

    A report refers to a follow-up by its thread (``thread``: the record whose
    conversation the report answered) or by citing its number in ``texts``
    (subject, body, the 跟进单编号 field). Never by project alone. Only the
    follow-ups referred to and the newest few are read, however many are open."""
    wanted = cited_numbers(ctx, *texts)
    if thread_followup(thread):
        wanted.append(thread_followup(thread))
    states_ = ctx.lifecycles[KIND].open_states
    referred = {}
    for number in wanted:
        ft = ctx.repo.ticket_by_token(number)
        if ft is not None and ft.kind == KIND and ft.project == project and ft.state in states_:
            referred[ft.id] = ft
    newest, total = ctx.repo.newest(KIND, project, states_, listed + len(referred))
    others = [ft for ft in newest if ft.id not in referred]
    return [referred[i] for i in sorted(referred)], others[-listed:] if listed else [], total - len(referred)


def close_followup(ctx: Context, ft: Ticket, *, how: str, closing_report: Ticket | None = None,
                   resolution: str = "") -> None:
    """Close (its owner's 已解决, or a 成功 report): the lifecycle's step,
    whose effect (``_closed``) mails the 责任销售."""
    states.apply(ctx, ft, "已解决" if how == "reply" else "成功", arg=resolution[:200],
                 extra={"how": how, "closing_report": closing_report, "resolution": resolution})


@effect("close", KIND)
def _closed(ctx: Context, ft: Ticket, step: Step) -> None:
    """Closed: plan the 回访 and mail the 责任销售 (art. 18), CC the owner and
    the reporter."""
    how = step.extra.get("how") or ("reply" if step.transition.command == "已解决" else "report")
    closing_report = step.extra.get("closing_report")
    resolution = step.extra.get("resolution", step.arg)
    closer = ctx.sender.name if ctx.sender else ctx.mail.from_addr
    update_data(ft, closed_how=how, closed_by=closer, closing_report=closing_report.number if closing_report else "",
                resolution=resolution)
    ctx.audit("ticket", ft.number, "followup_closed", how=how, closing_report=ft.data.get("closing_report"))
    schedule_survey(ctx, ft, engineer=ft.owner)
    project = ctx.directory.project(ft.project) if _safe_project(ctx, ft.project) else None
    if project is not None and project.sales and project.sales != (ft.data or {}).get("sales"):
        update_data(ft, sales=project.sales)  # the project's 责任销售 now, should it have changed
    # Who is told is the step's `notify` (the 责任销售 first: To; the others CC).
    people = told(ctx, ft, step.transition.notify)
    sales = ctx.directory.by_name((ft.data or {}).get("sales", ""))
    if sales is None or sales not in people:
        return
    owner = ctx.directory.by_name(ft.owner)
    report = ctx.repo.ticket_by_token((ft.data or {}).get("report", "")) if (ft.data or {}).get("report") else None
    ctx.send(ctx.template("followup_done", "followup_done"), to=[sales.email],
             cc=[e for e in emails(people) if e != sales.email],
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
    words = _settings(ctx).close_words
    line = first_line(ctx.mail.body)
    if not starts_with_any(line, words):
        return False
    owner = ctx.directory.by_name(ft.owner)
    if ctx.lifecycles[KIND].is_final(ft.state):
        add_note(ctx, ft, "close_again")
        ctx.decide("followup_already_closed", number=ft.number)
        return True
    if ctx.sender is None or owner is None or ctx.sender.name != owner.name:
        add_note(ctx, ft, "close_denied")
        ctx.reply(ctx.template("followup_not_owner", "followup_not_owner"), ticket=ft, followup=ft,
                  owner_name=ft.owner, remaining=(ft.data or {}).get("remaining", ""))
        who = ctx.sender.name if ctx.sender else ctx.mail.from_addr
        ctx.decide("followup_close_refused", number=ft.number, who=who)
        return True
    body_lines = [ln.strip() for ln in (ctx.mail.body or "").splitlines() if ln.strip()]
    if body_lines and re.sub(r"[\s\W_]+", "", fold(body_lines[0])) in {fold(w) for w in words}:
        body_lines = body_lines[1:]  # the first line is only the close word
    resolution = "\n".join(body_lines) or line
    close_followup(ctx, ft, how="reply", resolution=resolution)
    ctx.decide("followup_closed", number=ft.number)
    return True


@on_reply(KIND)
def followup_reply(ctx: Context, ticket: Ticket) -> None:
    if handled_before(ctx):
        ctx.decide("same_message_in_thread", number=ticket.number)
        return
    bind_rule(ctx, ticket, "customer_report")
    if try_close_by_reply(ctx, ticket):
        return
    add_note(ctx, ticket)
    ctx.decide("noted_in_thread", number=ticket.number)
