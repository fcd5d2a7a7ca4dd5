"""Convention 5: 产品改进申请单 ``产品改进-<项目>-<简述>`` (art. 19-22).

The action ``record_improvement`` decides what becomes of a request:

* project unknown (or ambiguous) -> ``unregistered`` (未立项), told the closest names;
* the sender may not send the project's next request (art. 21) -> ``invalid``
  (无效): the 1st and 2nd valid request of a project come from the project's
  第一售前 or 第二售前 (``engineer_quota``, ``engineer_parties``), the 3rd and
  later only from the 售前经理 (``manager_roles``); the sender is told why
  and who may send it. Invalid requests are counted apart and never count
  towards the project's requests;
* required fields missing -> ``rejected``, told each problem plus a fill-in body;
* otherwise ``accepted``: a 回执 to the sender with the number (GJSQ2026-0001)
  and the ordinal, and the request To the 研发经理, CC 售前经理 and 责任销售.

R&D reports its net time by answering in the request's thread with a first
line ``研发用时：N天`` (2 / 2.5 / 半天 / 3天 / 1.5 天). Each entry is kept in
``ticket.data["rd_entries"]`` and audited; the request's and the project's
totals are recomputed from all entries. When a project's total first exceeds
``rd_days_limit`` (default 7, strictly greater: art. 22 "超过一周"), the
责任销售 and the 售前经理 are told once per project that the R&D cost will be
deducted from the sales bonus. The notice is recorded on the ticket whose
entry crossed the limit; a later entry, a replay or a second copy of the same
mail never sends it again.
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Literal

from pydantic import Field

from ..directory import Project
from ..mail.subject import fold
from ..reasons import Decision, Problem
from ..rules.engine import ACTION_KINDS, Match
from ..store.models import Ticket
from . import commands
from .base import Context, action, fmt_dt, mail_date, on_reply
from . import didyoumean as dym
from .routing import emails, find_project, with_roles
from .settings import Flag, Roles, Settings, settings_for
from .states import open_record
from .thread import add_note, already_recorded, answer, enter_thread, relink, update_data

KIND = "improvement"
ACCEPTED, INVALID, REJECTED, UNREGISTERED = "accepted", "invalid", "rejected", "unregistered"
F_PROJECT, F_PRODUCT, F_VERSION, F_REQUIREMENT, F_REASON, F_EXPECTED = (
    "project", "product", "version", "requirement", "reason", "expected")
RD_KEYWORD = "研发用时"
PARTIES = {"第一售前": "presales1", "第二售前": "presales2"}

@settings_for("record_improvement")
class ImprovementSettings(Settings):
    # Art. 21: how many requests of a project the project's presales may send.
    engineer_quota: int = Field(2, ge=0, description="≥ 0 的整数（份，第二十一条：2）")
    # Who counts as the project's presales for those.
    engineer_parties: Annotated[tuple[Literal["第一售前", "第二售前"], ...], Field(
        strict=False, description="列表，可写 第一售前 和/或 第二售前")] = ("第一售前", "第二售前")
    # Roles that may send the requests after the quota (and, with
    # manager_may_send_early, the first ones too).
    manager_roles: Roles = ("售前经理",)
    manager_may_send_early: Flag = True
    # The accepted request goes To these roles, Cc these roles plus the 责任销售.
    notice_to_roles: Roles = ("研发经理",)
    notice_cc_roles: Roles = ("售前经理",)
    # Who may report R&D time (研发用时) in a request's conversation.
    rd_roles: Roles = ("研发", "研发经理")
    # Art. 22: a project total strictly greater than this many days triggers
    # the notice (once per project) To the 责任销售, Cc over_limit_cc_roles.
    rd_days_limit: float = Field(7, ge=0, description="≥ 0 的天数（第二十二条：一周 = 7）")
    over_limit_cc_roles: Roles = ("售前经理",)


ACTION_KINDS["record_improvement"] = (KIND,)


# ---------------------------------------------------------------------------
# settings and small helpers
# ---------------------------------------------------------------------------


def rd_limit(settings: ImprovementSettings) -> Decimal:
    return Decimal(str(settings.rd_days_limit))


def fmt_days(d) -> str:
    """2.5 -> "2.5", 3.0 -> "3"."""
    return format(Decimal(str(d)).normalize(), "f")


def names(ps) -> str:
    return "、".join(p.name for p in ps if p is not None)


_DAYS = re.compile(r"^(?P<n>\d+(?:\.\d{1,2})?)\s*(?:天|日|d|days?)?$", re.IGNORECASE)
_HALF = re.compile(r"^(?:半\s*(?:天|日)|半)$")
_NOTE = re.compile(r"\s*[(（][^()（）]*[)）]$")


def parse_days(arg: str) -> Decimal | None:
    """The number of days in a 研发用时 value, or None if not understood.

    Accepted: ``2``, ``2.5``, ``3天``, ``1.5 天``, ``半天`` (0.5), ``2日``; a
    trailing remark in brackets and trailing punctuation are ignored."""
    s = fold(arg or "").strip()
    s = _NOTE.sub("", s).strip().rstrip("。.，,;；!！").strip()
    if _HALF.match(s):
        return Decimal("0.5")
    m = _DAYS.match(s)
    if not m:
        return None
    try:
        d = Decimal(m.group("n"))
    except InvalidOperation:
        return None
    return d if d > 0 else None


def _valid(ctx: Context, project: str) -> list[Ticket]:
    ts = ctx.repo.tickets(KIND, project=project, states=(ACCEPTED,))
    return sorted(ts, key=lambda t: ((t.data or {}).get("ordinal") or 0, t.id))


def request_days(t: Ticket) -> Decimal:
    return sum((Decimal(str(e.get("days", 0))) for e in (t.data or {}).get("rd_entries", [])), Decimal(0))


def project_days(ctx: Context, project: str) -> Decimal:
    return sum((request_days(t) for t in _valid(ctx, project)), Decimal(0))


def _over_limit_ticket(ctx: Context, project: str) -> Ticket | None:
    """The request on which the project's over-limit notice was sent, if any."""
    for t in ctx.repo.tickets(KIND, project=project):
        if (t.data or {}).get("over_limit_notice"):
            return t
    return None


def _safe_project(ctx: Context, name: str) -> Project | None:
    project, _ = find_project(ctx, name)
    return project


# ---------------------------------------------------------------------------
# the action
# ---------------------------------------------------------------------------


@action("record_improvement")
def record_improvement(ctx: Context) -> None:
    process_request(ctx)


def process_request(ctx: Context, previous: Ticket | None = None) -> None:
    m = ctx.match
    if already_recorded(ctx, KIND):
        return
    name = m.captures.get("project", "")
    project, candidates = find_project(ctx, name)
    suggested = dym.near_match(project, candidates, previous)
    if suggested:
        t = _record(ctx, dym.UNCONFIRMED, project=name, previous=previous, **dym.ask_data(ctx, suggested))
        dym.ask(ctx, t, kind_label=ctx.lifecycles.label(KIND), name=name, suggested=suggested, problems=ctx.texts(m.problems),
                reminds_sales=False)
        return
    if project is None:
        _unregistered(ctx, name, candidates, previous)
        return

    # Art. 21: who may send the project's next request.
    valid = _valid(ctx, project.name)
    ordinal = len(valid) + 1
    allowed, sender_role = _may_send(ctx, project, ordinal)
    if not allowed:
        _invalid(ctx, project, ordinal, previous)
        return

    problems = list(m.problems)
    body_project = m.values.get(F_PROJECT, "")
    if body_project:
        other, _ = find_project(ctx, body_project)
        if other is not None and other.name != project.name:
            problems.append(Problem("improvement_project_mismatch", F_PROJECT, {
                "project": project.name, "label": m.rule.label(F_PROJECT), "value": body_project, "other": other.name}))
    if problems:
        texts = ctx.texts(problems)
        t = _record(ctx, REJECTED, project=project.name, previous=previous, problems=texts)
        answer(ctx, "rejected", "improvement_rejected", ticket=t, record=t, project=project, problems=texts,
               fill_in=_fill_in(m, project), labels=_labels(m))
        ctx.decide("rejected", problems, number=t.number, count=len(problems))
        return
    _accepted(ctx, project, ordinal, sender_role, previous)


def _may_send(ctx: Context, project: Project, ordinal: int) -> tuple[bool, str]:
    """(allowed, the sender's capacity) for the project's ``ordinal``-th valid request."""
    sender = ctx.sender
    if sender is None:
        return False, ""
    is_manager = bool(sender.roles & set(ctx.settings.manager_roles))
    party = ""
    for label in ctx.settings.engineer_parties:
        attr = PARTIES.get(label)
        if attr and getattr(project, attr) == sender.name:
            party = label
            break
    if ordinal <= ctx.settings.engineer_quota:
        if party:
            return True, party
        if is_manager and ctx.settings.manager_may_send_early:
            return True, "售前经理"
        return False, ""
    return (True, "售前经理") if is_manager else (False, "")


def _unregistered(ctx: Context, name: str, candidates: list[str], previous: Ticket | None) -> None:
    m = ctx.match
    texts = ctx.texts(m.problems)
    t = _record(ctx, UNREGISTERED, project=name, previous=previous, candidates=candidates, problems=texts)
    answer(ctx, "unknown_project", "unknown_project", ticket=t, record=t, kind_label=ctx.lifecycles.label(KIND),
           project_name=name, candidates=candidates, problems=texts, fill_in=_fill_in(m, None))
    ctx.decide("unregistered", m.problems, number=t.number, project=name, candidates=list(candidates))


def _record(ctx: Context, state: str, *, project: str, previous: Ticket | None, **data) -> Ticket:
    m = ctx.match
    t = open_record(ctx, KIND, project=project, owner=ctx.sender.name if ctx.sender else "", state=state,
                    data={"rule": m.rule.name, "captures": dict(m.captures),
                          "summary": m.captures.get("summary", "") or "",
                          "sender": ctx.sender.name if ctx.sender else ctx.mail.from_addr,
                          "sender_email": ctx.mail.from_addr, "date": mail_date(ctx).isoformat(),
                          "values": dict(m.values), "message_id": ctx.mail.message_id or "",
                          "resubmits": previous.number if previous else "", **data})
    relink(ctx, t)
    if previous is not None:
        update_data(previous, resubmitted_as=t.number)
    simple = {k: v for k, v in data.items() if isinstance(v, (str, int, list))}
    ctx.audit("ticket", t.number, f"improvement_{state}", project=project, **simple)
    return t


def _invalid(ctx: Context, project: Project, ordinal: int, previous: Ticket | None) -> None:
    quota = ctx.settings.engineer_quota
    managers = with_roles(ctx, ctx.settings.manager_roles)
    engineer_names = "、".join(dict.fromkeys(getattr(project, PARTIES[p]) for p in ctx.settings.engineer_parties
                                             if PARTIES.get(p) and getattr(project, PARTIES[p])))
    why = "needs_manager" if ordinal > quota else "not_engineer"
    t = _record(ctx, INVALID, project=project.name, previous=previous, ordinal_requested=ordinal, reason=why)
    answer(ctx, "invalid", "improvement_invalid", ticket=t, record=t, project=project, ordinal=ordinal,
           quota=quota, why=why, managers=names(managers), manager_roles="/".join(ctx.settings.manager_roles),
           engineers=engineer_names, parties="或".join(ctx.settings.engineer_parties),
           manager_early=ctx.settings.manager_may_send_early,
           valid_count=ordinal - 1)
    ctx.decide("improvement_invalid", number=t.number, ordinal=ordinal, project=project.name)


def _accepted(ctx: Context, project: Project, ordinal: int, sender_role: str, previous: Ticket | None) -> None:
    m = ctx.match
    t = _record(ctx, ACCEPTED, project=project.name, previous=previous, ordinal=ordinal, sender_role=sender_role,
                sales=project.sales, rd_entries=[], rd_days=0)
    sales = ctx.directory.by_name(project.sales)
    to_people = [p for p in with_roles(ctx, ctx.settings.notice_to_roles) if p != ctx.sender]
    cc_people = [p for p in [*with_roles(ctx, ctx.settings.notice_cc_roles), sales]
                 if p is not None and p != ctx.sender and p not in to_people]
    if not to_people:
        to_people, cc_people = cc_people[:1], cc_people[1:]
    common = dict(record=t, project=project, ordinal=ordinal, sender_role=sender_role, values=m.values,
                  labels=_labels(m), summary=m.captures.get("summary", "") or "", date=fmt_dt(ctx, mail_date(ctx)),
                  quota=quota_info(ctx), rd_roles="或".join(ctx.settings.rd_roles),
                  limit=fmt_days(rd_limit(ctx.settings)), project_days=fmt_days(project_days(ctx, project.name)))
    if to_people:
        ctx.send(ctx.template("notice", "improvement_notice"), to=emails(to_people), cc=emails(cc_people),
                 reply_to=[ctx.mail.from_addr, ctx.cfg.system.address], ticket=t, kind="notice",
                 attach_original=True, body=ctx.mail.body, original_subject=ctx.mail.subject,
                 original_from=ctx.mail.from_addr, **common)
    update_data(t, notified=[p.name for p in to_people + cc_people])
    answer(ctx, "ack", "improvement_ack", ticket=t, notified_to=names(to_people), notified_cc=names(cc_people),
           **common)
    ctx.decide("improvement_accepted", number=t.number, ordinal=ordinal, project=project.name, role=sender_role,
               names=[p.name for p in to_people])


def quota_info(ctx: Context) -> dict:
    return {"count": ctx.settings.engineer_quota, "managers": names(with_roles(ctx, ctx.settings.manager_roles))}


def _labels(m: Match) -> dict[str, str]:
    return {f.name: f.label for f in m.rule.fields}


def _fill_in(m: Match, project: Project | None) -> list[tuple[str, str]]:
    """The body to send again: every field's label, with what was usable kept."""
    out = []
    for f in m.rule.fields:
        v = m.values.get(f.name, "")
        if f.name == F_PROJECT and not v:
            v = project.name if project else m.captures.get("project", "")
        out.append((f.label, v))
    return out


# ---------------------------------------------------------------------------
# replies in a request's thread: 研发用时, resubmissions
# ---------------------------------------------------------------------------


@on_reply(KIND)
def improvement_reply(ctx: Context, ticket: Ticket) -> None:
    if not enter_thread(ctx, ticket, "improvement"):
        return
    # 是 / 不是 in answer to 「您是不是指…」.
    if dym.confirm(ctx, ticket, ctx.match.rule, on_yes=lambda: process_request(ctx, previous=ticket),
                   on_no=lambda name: _unregistered(ctx, name, [], ticket)):
        return
    cmd = commands.parse(ctx, allowed=(RD_KEYWORD,))
    if cmd is not None:
        rd_time(ctx, ticket, cmd)
        return
    rule = ctx.match.rule
    values = rule.extractor.extract(ctx.mail.body)
    # A corrected or re-sent request in answer to a rejection / 无效 / 未立项
    # reply (e.g. the 售前经理 sending the 3rd request in the thread of the
    # engineer's invalid one).
    if ticket.state != ACCEPTED and values.get(F_REQUIREMENT):
        caps = dict((ticket.data or {}).get("captures", {}))
        if ticket.state == UNREGISTERED and values.get(F_PROJECT):
            caps["project"] = values[F_PROJECT]
        ctx.match = Match(rule, caps, [Decision("resubmission", {"number": ticket.number})], values,
                          rule.validate(values, ctx.sender))
        process_request(ctx, previous=ticket)
        return
    add_note(ctx, ticket)
    ctx.decide("noted_in_thread", number=ticket.number)


def rd_time(ctx: Context, ticket: Ticket, cmd: commands.Command) -> None:
    """``研发用时：N天`` in a request's thread."""
    rd_roles = ctx.settings.rd_roles
    who = ctx.sender.name if ctx.sender else ctx.mail.from_addr
    if ctx.sender is None or not ctx.sender.roles & set(rd_roles):
        add_note(ctx, ticket, "rd_denied")
        allowed = [{"role": r, "names": names(ctx.directory.with_role(r))} for r in rd_roles]
        ctx.reply(ctx.template("rd_denied", "improvement_rd_denied"), ticket=ticket, record=ticket,
                  allowed=allowed, command=RD_KEYWORD, arg=cmd.arg)
        ctx.audit(KIND, ticket.number, "command_refused", command=RD_KEYWORD, reason="not_allowed", arg=cmd.arg)
        ctx.decide("rd_time_refused", number=ticket.number, who=who, roles=list(rd_roles))
        return
    if ticket.state != ACCEPTED:
        add_note(ctx, ticket, "rd_not_valid")
        ctx.reply(ctx.template("rd_not_valid", "improvement_rd_not_valid"), ticket=ticket, record=ticket,
                  state=ctx.lifecycles.state_name(KIND, ticket.state), arg=cmd.arg)
        ctx.audit(KIND, ticket.number, "command_refused", command=RD_KEYWORD, reason="wrong_state",
                  state=ticket.state, arg=cmd.arg)
        ctx.decide("rd_time_wrong_state", number=ticket.number, state=ctx.lifecycles.state_name(KIND, ticket.state))
        return
    days = parse_days(cmd.arg)
    if days is None:
        add_note(ctx, ticket, "rd_bad_value")
        ctx.reply(ctx.template("rd_bad_value", "improvement_rd_bad_value"), ticket=ticket, record=ticket,
                  arg=cmd.arg, line=cmd.line)
        ctx.audit(KIND, ticket.number, "command_refused", command=RD_KEYWORD, reason="bad_value", arg=cmd.arg)
        ctx.decide("rd_time_bad_value", number=ticket.number, value=cmd.arg)
        return

    project = ticket.project
    entries = list((ticket.data or {}).get("rd_entries", []))
    entries.append({"days": float(days), "by": who, "at": ctx.now.isoformat(), "message": ctx.message.id,
                    "message_id": ctx.mail.message_id or "", "text": cmd.line[:200]})
    update_data(ticket, rd_entries=entries)
    req_total = request_days(ticket)
    update_data(ticket, rd_days=float(req_total))
    proj_total = project_days(ctx, project)
    limit = rd_limit(ctx.settings)
    ctx.audit(KIND, ticket.number, "rd_time_recorded", days=float(days), request_total=float(req_total),
              project=project, project_total=float(proj_total), by=who)

    notice = None
    if proj_total > limit and _over_limit_ticket(ctx, project) is None:
        notice = _over_limit(ctx, ticket, proj_total, limit)
    requests = [{"number": t.number, "summary": (t.data or {}).get("summary", ""), "days": fmt_days(request_days(t))}
                for t in _valid(ctx, project)]
    ctx.reply(ctx.template("rd_ack", "improvement_rd_ack"), ticket=ticket, record=ticket, days=fmt_days(days),
              request_total=fmt_days(req_total), project_total=fmt_days(proj_total), limit=fmt_days(limit),
              over=proj_total > limit, notice=notice, requests=requests)
    ctx.decide("rd_time_recorded", number=ticket.number, days=fmt_days(days), request_total=fmt_days(req_total),
               project=project, project_total=fmt_days(proj_total))
    if notice:
        ctx.did("rd_time_over_limit", limit=fmt_days(limit), told=notice["to"])


def _over_limit(ctx: Context, ticket: Ticket, total: Decimal, limit: Decimal) -> dict:
    """Art. 22: tell the 责任销售, CC the 售前经理, once per project."""
    project = _safe_project(ctx, ticket.project)
    sales = ctx.directory.by_name(project.sales if project else (ticket.data or {}).get("sales", ""))
    cc_people = [p for p in with_roles(ctx, ctx.settings.over_limit_cc_roles) if p != sales]
    to_people = [sales] if sales is not None else cc_people[:1]
    if sales is None:
        cc_people = cc_people[1:]
    requests = [{"number": t.number, "summary": (t.data or {}).get("summary", ""),
                 "sender": (t.data or {}).get("sender", ""), "days": fmt_days(request_days(t)),
                 "entries": [{"days": fmt_days(e.get("days", 0)), "by": e.get("by", ""),
                              "at": fmt_dt(ctx, _parse_dt(e.get("at")), False)}
                             for e in (t.data or {}).get("rd_entries", [])]}
                for t in _valid(ctx, ticket.project)]
    info = {"at": ctx.now.isoformat(), "total": float(total), "limit": float(limit), "message": ctx.message.id,
            "to": names(to_people), "cc": names(cc_people)}
    update_data(ticket, over_limit_notice=info)
    ctx.audit(KIND, ticket.number, "rd_over_limit", project=ticket.project, project_total=float(total),
              limit=float(limit), to=info["to"], cc=info["cc"])
    if to_people:
        ctx.send(ctx.template("over_limit", "improvement_over_limit"), to=emails(to_people), cc=emails(cc_people),
                 ticket=ticket, kind="notice", record=ticket, project_name=ticket.project,
                 sales_name=sales.name if sales else "", total=fmt_days(total), limit=fmt_days(limit),
                 requests=requests)
    return info


def _parse_dt(s):
    from datetime import datetime
    try:
        return datetime.fromisoformat(s) if s else None
    except ValueError:
        return None
