"""第二售前支持记录 ``支持记录-<项目>-<姓名>`` (art. 6, 16).

The 第二售前 handles the emergency handed to them, then mails the support
date and content to the 第一售前, CC the 售前经理. The rule
(``rules/support_record.toml``) reads 支持日期, 支持内容 (and optionally
支持方式, 沟通人, 处理结果, 遗留的问题描述); the action
``record_support_record`` decides. Every outcome is a numbered
``support_record`` record:

* project unknown -> ``unregistered``, told the closest names (no 立项 reminder:
  that belongs to the report convention);
* the sender is not the project's 第二售前 -> ``not_allowed``, told why and
  who may; nothing goes into the tracking table;
* problems in the body (missing fields, a date that cannot be read or lies
  ahead of the mail, vague content) -> ``rejected`` with a fill-in body;
  answering with the corrected body resubmits;
* otherwise ``accepted``: one row in the 项目跟踪表 of the 第一售前, its
  沟通方式 column marked ``tracking_mark`` (默认「第二售前支持记录」, followed by
  the 支持方式 if given); a notice to the 第一售前 (CC 售前经理); a 回执 with the
  record number to the sender. If no 售前经理 was in To/CC, the mail is
  forwarded to them (From the system, Reply-To the sender, the original
  attached) and the 回执 says so.
"""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from pydantic import Field

from ..mail.subject import fold
from ..reasons import Decision, Problem
from ..records import Row
from ..rules.engine import ACTION_KINDS, Match, Rule
from ..store.models import Ticket, TrackingRow
from .base import Context, action, local, mail_date, on_reply, tz
from . import didyoumean as dym
from .routing import addressed, emails, find_project
from .settings import Flag, Settings, SomeRoles, Text, settings_for
from .thread import add_note, already_recorded, answer, enter_thread, open_submission

KIND = "support_record"
RULE = "support_record"
ACCEPTED, REJECTED, NOT_ALLOWED, UNREGISTERED = "accepted", "rejected", "not_allowed", "unregistered"
F_DATE, F_CONTENT, F_METHOD, F_CONTACT, F_RESULT, F_REMAINING = (
    "date", "content", "method", "contact", "result", "remaining")
RESULT_OPEN = "问题遗留"


@settings_for("record_support_record")
class SupportRecordSettings(Settings):
    # Who must be Cc'd (art. 6: 邮件时抄送售前经理); missing ones get the mail forwarded.
    cc_roles: SomeRoles = ("售前经理",)
    forward_missing_cc: Flag = True
    # What the 沟通方式 column of the 项目跟踪表 says for these rows.
    tracking_mark: Text = "第二售前支持记录"
    # A 支持日期 more than this many days after the mail's date is refused.
    max_days_ahead: int = Field(1, ge=0, description="≥ 0 的整数（天）")


ACTION_KINDS["record_support_record"] = (KIND,)

_YMD = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})")
_MD = re.compile(r"(\d{1,2})\s*[-/.月]\s*(\d{1,2})")
_RELATIVE = {"前天": -2, "昨天": -1, "昨日": -1, "今天": 0, "今日": 0, "当天": 0}


def parse_date(text: str, today: date) -> date | None:
    """支持日期 as staff write it: 2026-11-05, 2026/11/5, 2026年11月5日,
    11月5日 (the year of the mail, or the year before if that lies ahead),
    今天/昨天/前天. The first date in the text counts."""
    t = fold(text)
    m = _YMD.search(t)
    try:
        if m:
            return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        m = _MD.search(t)
        if m:
            d = date(today.year, int(m.group(1)), int(m.group(2)))
            return d if d <= today + timedelta(days=1) else date(today.year - 1, d.month, d.day)
    except ValueError:
        return None
    for word, delta in _RELATIVE.items():
        if word in t:
            return today + timedelta(days=delta)
    return None


@action("record_support_record")
def record_support_record(ctx: Context) -> None:
    process_support_record(ctx)


def process_support_record(ctx: Context, previous: Ticket | None = None) -> None:
    m = ctx.match
    if already_recorded(ctx, KIND):
        return
    name = m.captures.get("project", "")
    project, candidates = find_project(ctx, name)
    suggested = dym.near_match(project, candidates, previous)
    if suggested:
        texts = ctx.texts(m.problems)
        t = _ticket(ctx, dym.UNCONFIRMED, project=name, owner="", previous=None, **dym.ask_data(ctx, suggested))
        dym.ask(ctx, t, kind_label="支持记录", name=name, suggested=suggested, problems=texts, reminds_sales=False)
        return
    if project is None:
        _unregistered(ctx, name, candidates, previous)
        return
    sender = ctx.sender
    if not project.presales2 or sender is None or sender.name != project.presales2:
        reason = ("no_presales2" if not project.presales2 else
                  "presales1" if sender is not None and sender.name == project.presales1 else "not_presales2")
        t = _ticket(ctx, NOT_ALLOWED, project=project.name, owner=project.presales1, previous=previous, reason=reason)
        answer(ctx, "not_allowed", "support_record_not_allowed", ticket=t, record=t, project=project, reason=reason)
        ctx.decide("support_not_allowed", number=t.number, who=sender.name if sender else ctx.mail.from_addr,
                   project=project.name)
        return
    today = local(ctx, mail_date(ctx)).date()
    problems = list(m.problems)
    bad: set[str] = set()
    day = None
    raw_date = (m.values.get(F_DATE) or "").strip()
    if raw_date:
        day = parse_date(raw_date, today)
        ahead = ctx.settings.max_days_ahead
        if day is None:
            problems.append(Problem("support_date_unreadable", F_DATE,
                                    {"label": m.rule.label(F_DATE), "value": raw_date, "today": f"{today:%Y-%m-%d}"}))
            bad.add(F_DATE)
        elif day > today + timedelta(days=ahead):
            problems.append(Problem("support_date_ahead", F_DATE, {"label": m.rule.label(F_DATE), "date": f"{day:%Y-%m-%d}",
                                                                   "today": f"{today:%Y-%m-%d}"}))
            bad.add(F_DATE)
    if problems:
        texts = ctx.texts(problems)
        t = _ticket(ctx, REJECTED, project=project.name, owner=project.presales1, previous=previous, problems=texts)
        answer(ctx, "rejected", "support_record_rejected", ticket=t, record=t, project=project, problems=texts,
               fill_in=_fill_in(m, problems, bad))
        ctx.decide("rejected", problems, number=t.number, count=len(problems))
        return
    _accepted(ctx, project, day, previous)


def _unregistered(ctx: Context, name: str, candidates: list[str], previous: Ticket | None) -> None:
    m = ctx.match
    t = _ticket(ctx, UNREGISTERED, project=name, owner="", previous=previous, candidates=candidates)
    answer(ctx, "unknown_project", "unknown_project", ticket=t, record=t, kind_label="支持记录",
           project_name=name, candidates=candidates, problems=ctx.texts(m.problems), fill_in=[])
    ctx.decide("support_unregistered", number=t.number, project=name, candidates=list(candidates))


def _ticket(ctx: Context, state: str, *, project: str, owner: str, previous: Ticket | None, **data) -> Ticket:
    return open_submission(ctx, KIND, state, project=project, owner=owner, previous=previous, audit_as="support_record", **data)


def _fill_in(m: Match, problems: list[Problem], bad: set[str]) -> list[tuple[str, str]]:
    out = []
    for f in m.rule.fields:
        v = (m.values.get(f.name) or "").strip()
        allowed = m.rule.allowed.get(f.name)
        if f.name in bad or any(p.field == f.name for p in problems) or (allowed and v and fold(v) not in allowed):
            v = "/".join(allowed) if allowed else ""
        out.append((f.label, v))
    return out


def _labels(rule: Rule) -> dict[str, str]:
    return {f.name: f.label for f in rule.fields}


def _accepted(ctx: Context, project, day: date, previous: Ticket | None) -> None:
    m = ctx.match
    v = {k: (val or "").strip() for k, val in m.values.items()}
    sender = ctx.sender
    owner = ctx.directory.by_name(project.presales1)
    when = mail_date(ctx)
    if local(ctx, when).date() != day:
        when = datetime(day.year, day.month, day.day, tzinfo=tz(ctx))
    mark = ctx.settings.tracking_mark
    method = f"{mark}（{v[F_METHOD]}）" if v.get(F_METHOD) else mark
    result = fold(v.get(F_RESULT, ""))
    named = (m.captures.get("engineer") or "").strip()
    mismatch = named if named and named != sender.name else ""
    t = _ticket(ctx, ACCEPTED, project=project.name, owner=project.presales1, previous=previous,
                reporter=sender.name, support_date=day.isoformat(), mismatch=mismatch)
    ctx.repo.insert(TrackingRow, Row(owner=project.presales1, project=project.name, reporter=sender.name, sender=sender.name,
                               comm_date=when, contact=v.get(F_CONTACT, ""), method=method, result=result,
                               issue=v.get(F_CONTENT, ""), remaining=v.get(F_REMAINING, "") if result == RESULT_OPEN else "",
                               ticket_id=t.id, message=ctx.message.id,
                               source_message_id=ctx.mail.message_id or None, created_at=ctx.now))
    ctx.audit("tracking", t.number, "tracking_row_added", owner=project.presales1, project=project.name,
              reporter=sender.name, method=method)

    roles = ctx.settings.cc_roles
    managers = [p for r in roles for p in ctx.directory.with_role(r) if p.name != sender.name]
    managers = list({p.name: p for p in managers}.values())
    common = dict(record=t, project=project, values=v, labels=_labels(m.rule), support_date=f"{day:%Y-%m-%d}",
                  method=method, result=result, owner_name=project.presales1, engineer=sender, mismatch=mismatch)

    # Art. 6: the mail goes to the 第一售前 with the 售前经理 in CC; repair a missing CC.
    forwarded: list[str] = []
    if (managers and not any(addressed(ctx, p) for p in managers)
            and ctx.settings.forward_missing_cc):
        ctx.send(ctx.template("forward", "support_record_forward"), to=emails(managers),
                 reply_to=[ctx.mail.from_addr], ticket=t, kind="forward", attach_original=True,
                 body=ctx.mail.body, original_subject=ctx.mail.subject, original_from=ctx.mail.from_addr, **common)
        forwarded = [p.name for p in managers]

    if owner is not None:
        ctx.send(ctx.template("notice", "support_record_notice"), to=[owner.email],
                 cc=[e for e in emails(managers) if e != owner.email], reply_to=[ctx.mail.from_addr], ticket=t,
                 kind="notice", **common)
    answer(ctx, "ack", "support_record_ack", ticket=t, forwarded="、".join(forwarded), **common)
    ctx.decide("support_recorded", number=t.number, owner=project.presales1, mark=mark)
    if forwarded:
        ctx.did("forwarded_to", names=list(forwarded))


@on_reply(KIND)
def support_record_reply(ctx: Context, ticket: Ticket) -> None:
    """A corrected record in answer to a refusal; anything else is logged."""
    if not enter_thread(ctx, ticket, RULE):
        return
    rule = ctx.match.rule
    # 是 / 不是 in answer to 「您是不是指…」.
    if dym.confirm(ctx, ticket, rule, on_yes=lambda: process_support_record(ctx, previous=ticket),
                   on_no=lambda name: _unregistered(ctx, name, [], ticket)):
        return
    values = rule.extractor.extract(ctx.mail.body)
    if (ticket.state in (REJECTED, UNREGISTERED) and ctx.sender is not None
            and ctx.sender.name == (ticket.data or {}).get("sender") and values.get(F_CONTENT)):
        ctx.match = Match(rule, dict((ticket.data or {}).get("captures", {})),
                          [Decision("resubmission", {"number": ticket.number})], values, rule.validate(values, ctx.sender))
        process_support_record(ctx, previous=ticket)
        return
    add_note(ctx, ticket)
    ctx.decide("not_a_new_record", number=ticket.number)
