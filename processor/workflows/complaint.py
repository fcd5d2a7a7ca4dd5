"""Convention 2: 投诉邮件 ``投诉-<项目>沟通问题`` (art. 13, 14).

The action ``record_complaint`` counts a complaint against an engineer: the
body field 被投诉人 if given, else the project's 第一售前 (art. 6). Only the
project's 责任销售 may complain (or any 销售 with ``allow_other_sales``);
other mails are recorded as not counted and the sender is told why.

Complaints should go To 技术支持部经理, CC 技术总监 (``route_to`` /
``route_cc`` roles); whoever is missing gets the complaint sent on.

Penalties are data (``[[settings.penalties]]``): every ``every``-th counted
complaint against one engineer inside a counting ``window`` (month, quarter,
year or never) fires an escalation. A ``Penalty`` row with a unique key per
engineer/rule/window/ordinal makes each threshold fire exactly once. The
complainant answering 撤回 in the complaint's thread withdraws it: counts are
recomputed, penalties that no longer hold are revoked, penalties whose basis
changed are restated, and each correction is mailed to the same people.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Literal

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from ..directory import Person, Project
from ..reasons import Problem
from ..rules.engine import ACTION_KINDS
from ..store.models import Penalty, Ticket
from . import didyoumean as dym
from . import states
from .base import Context, action, fmt_dt, local, mail_date, on_reply
from .commands import first_line, starts_with_any
from .effects import Step, effect
from .routing import addressed, emails, find_project
from .settings import Flag, Roles, Settings, Text, Words, settings_for, typed
from .states import open_record
from .thread import add_note, already_recorded, answer, bind_rule, handled_before, relink, update_data

KIND = "complaint"
COUNTED, WITHDRAWN, NOT_COUNTED, UNREGISTERED, REJECTED = "counted", "withdrawn", "not_counted", "unregistered", "rejected"
F_TARGET, F_DETAIL = "target", "detail"
# What reconcile() did to a penalty -> its [outcome] code in templates/messages.toml.
PENALTY_EVENTS = {"fired": "penalty_fired", "rebased": "penalty_rebased", "revoked": "penalty_revoked"}


class PenaltyRule(Settings):
    """Art. 14: every ``every`` complaints against one engineer in a
    ``window``, ``penalty`` applies."""
    name: Text = Field(description="简短的标识，例如 \"monthly\"")
    every: int = Field(ge=1, description="≥ 1 的整数（每 N 次投诉）")
    window: Literal["month", "quarter", "year", "never"] = Field(
        "month", description="month、quarter、year、never 之一")
    penalty: Text = Field(description="非空的处罚文字，例如 \"当月绩效工资扣发1级\"")


def _distinct_names(rules: tuple[PenaltyRule, ...]) -> tuple[PenaltyRule, ...]:
    seen = set()
    for r in rules:
        if r.name in seen:
            raise PydanticCustomError("cn", "名称 “{name}” 用了两次，每条规则的 name 必须不同", {"name": r.name})
        seen.add(r.name)
    return rules


@settings_for("record_complaint")
class ComplaintSettings(Settings):
    # Whether complaints from other sales (not the project's 责任销售) count.
    allow_other_sales: Flag = False
    # The complainant withdraws by replying with a first line starting with one of these.
    withdraw_words: Words = ("撤回",)
    # Art. 13: To 技术支持部经理, Cc 技术总监; whoever is missing gets it forwarded.
    route_to: Roles = ("技术支持部经理",)
    route_cc: Roles = ("技术总监",)
    # Art. 14 does not say whether counts reset: by default every 2nd in a
    # calendar month docks that month's pay, every 4th (never reset) lowers it.
    penalties: Annotated[tuple[PenaltyRule, ...], AfterValidator(_distinct_names), Field(
        strict=False, description="表的数组（[[settings.penalties]]），每个表写 name、every、window、penalty")] = (
        PenaltyRule(name="monthly", every=2, window="month", penalty="当月绩效工资扣发1级"),
        PenaltyRule(name="permanent", every=4, window="never", penalty="绩效工资永久降1级"),
    )


ACTION_KINDS["record_complaint"] = (KIND,)


def penalty_rules(ctx: Context) -> tuple[PenaltyRule, ...]:
    return _settings(ctx).penalties


def _settings(ctx: Context) -> ComplaintSettings:
    """The complaint rule's settings (also in a reply whose rule is no longer loaded)."""
    return typed(ctx, ComplaintSettings, "complaint")


def window_key(window: str, when: datetime) -> str:
    if window == "month":
        return when.strftime("%Y-%m")
    if window == "quarter":
        return f"{when.year}-Q{(when.month - 1) // 3 + 1}"
    if window == "year":
        return str(when.year)
    return "all"


def window_label(window: str, key: str) -> str:
    if window == "month":
        y, m = key.split("-")
        return f"{y}年{int(m)}月"
    if window == "quarter":
        y, q = key.split("-Q")
        return f"{y}年第{q}季度"
    if window == "year":
        return f"{key}年"
    return "累计"


def _date(ctx: Context, t: Ticket) -> datetime:
    return local(ctx, datetime.fromisoformat((t.data or {}).get("date") or t.opened_at.isoformat()))


# ---------------------------------------------------------------------------
# the action
# ---------------------------------------------------------------------------


@action("record_complaint")
def record_complaint(ctx: Context, previous: Ticket | None = None) -> None:
    """``previous``: the 待确认项目 complaint a reply 是 confirmed."""
    m = ctx.match
    if already_recorded(ctx, KIND):
        return
    name = m.captures.get("project", "")
    project, candidates = find_project(ctx, name)
    suggested = dym.near_match(project, candidates, previous)
    if suggested:
        t = _record(ctx, dym.UNCONFIRMED, project=name, target="", **dym.ask_data(ctx, suggested))
        dym.ask(ctx, t, kind_label="投诉邮件", name=name, suggested=suggested, problems=[], reminds_sales=False)
        return
    if project is None:
        _unregistered(ctx, name, candidates, previous)
        return
    sender = ctx.sender
    allow_other = ctx.settings.allow_other_sales
    roles = m.rule.validate_sender_roles or ("销售",)
    is_sales = sender is not None and bool(sender.roles & set(roles))
    if not is_sales or (sender.name != project.sales and not allow_other):
        why = "not_sales" if not is_sales else "not_project_sales"
        t = _record(ctx, NOT_COUNTED, project=project.name, target="", reason=why, previous=previous)
        answer(ctx, "not_counted", "complaint_not_counted", ticket=t, record=t, project=project, why=why,
               roles="/".join(roles))
        ctx.decide("complaint_not_sales" if not is_sales else "complaint_not_project_sales", number=t.number)
        return
    target, problem = _target(ctx, project)
    if target is None:
        text = ctx.messages.problem(problem)
        t = _record(ctx, REJECTED, project=project.name, target="", problems=[text], previous=previous)
        answer(ctx, "not_counted", "complaint_not_counted", ticket=t, record=t, project=project,
               why="bad_target", problem=text, roles="/".join(roles))
        ctx.decide("complaint_bad_target", [problem], number=t.number)
        return
    _counted(ctx, project, target, previous)


def _unregistered(ctx: Context, name: str, candidates: list[str], previous: Ticket | None) -> None:
    t = _record(ctx, UNREGISTERED, project=name, target="", candidates=candidates, previous=previous)
    answer(ctx, "unknown_project", "unknown_project", ticket=t, record=t, kind_label="投诉邮件",
           project_name=name, candidates=candidates, problems=[], fill_in=[])
    ctx.decide("complaint_unregistered", number=t.number, project=name)


def _record(ctx: Context, state: str, *, project: str, target: str, previous: Ticket | None = None,
            **data) -> Ticket:
    m = ctx.match
    t = open_record(ctx, KIND, project=project, owner=target, state=state,
                    data={"rule": m.rule.name, "captures": dict(m.captures),
                          "complainant": ctx.sender.name if ctx.sender else ctx.mail.from_addr,
                          "complainant_email": ctx.mail.from_addr, "date": mail_date(ctx).isoformat(),
                          "detail": m.values.get(F_DETAIL, ""), "message_id": ctx.mail.message_id or "",
                          **({"resubmits": previous.number} if previous is not None else {}), **data})
    relink(ctx, t)
    if previous is not None:
        update_data(previous, resubmitted_as=t.number)
    ctx.audit("ticket", t.number, f"complaint_{state}", project=project, target=target,
              **{k: v for k, v in data.items() if isinstance(v, (str, int, list))})
    return t


def _target(ctx: Context, project: Project) -> tuple[Person | None, Problem | None]:
    label = ctx.match.rule.label(F_TARGET)
    name = ctx.match.values.get(F_TARGET, "").strip()
    if not name:
        p = ctx.directory.by_name(project.presales1)
        return (p, None) if p else (None, Problem("complaint_presales1_missing", F_TARGET,
                                                  {"project": project.name, "name": project.presales1}))
    p = ctx.directory.by_name(name.split()[0].strip("，,。;；"))
    if p is None or not p.has("售前"):
        known = [x for x in (project.presales1, project.presales2) if x]
        return None, Problem("complaint_target_unknown", F_TARGET, {"label": label, "name": name, "known": known})
    return p, None


def _counted(ctx: Context, project: Project, target: Person, previous: Ticket | None = None) -> None:
    m = ctx.match
    t = _record(ctx, COUNTED, project=project.name, target=target.name, sales=project.sales, previous=previous)
    _count(ctx, t)

    # Routing (art. 13): To 技术支持部经理, CC 技术总监; send it on to whoever was missed.
    to_roles = ctx.settings.route_to
    cc_roles = ctx.settings.route_cc
    missing_to = [p for r in to_roles for p in ctx.directory.with_role(r) if not addressed(ctx, p)]
    missing_cc = [p for r in cc_roles for p in ctx.directory.with_role(r) if not addressed(ctx, p) and p not in missing_to]
    if missing_to or missing_cc:
        ctx.send(ctx.template("forward", "complaint_forward"), to=emails(missing_to or missing_cc),
                 cc=emails(missing_cc) if missing_to else [], reply_to=[ctx.mail.from_addr], ticket=t, kind="forward",
                 attach_original=True, record=t, project=project, target=target, body=ctx.mail.body,
                 original_subject=ctx.mail.subject, original_from=ctx.mail.from_addr,
                 date=fmt_dt(ctx, mail_date(ctx)))

    events = reconcile(ctx, target.name, _date(ctx, t))
    counts = _counts(ctx, target.name, _date(ctx, t))
    fired = [e for e in events if e[0] == "fired"]
    _announce(ctx, events, trigger=t)

    ctx.send(ctx.template("notice", "complaint_notice"), to=[target.email], ticket=t, record=t, project=project,
             target=target, complainant=ctx.sender, detail=m.values.get(F_DETAIL, ""), counts=counts,
             fired=[p for _, p, _ in fired], date=fmt_dt(ctx, mail_date(ctx)))
    missed = missing_to + missing_cc
    answer(ctx, "ack", "complaint_ack", ticket=t, record=t, project=project, target=target,
           counts=counts, forwarded_to=missed, by_field=bool(m.values.get(F_TARGET)),
           withdraw_words=ctx.settings.withdraw_words)
    ctx.decide("complaint_counted", number=t.number, target=target.name)
    for _, p, _ in fired:
        ctx.did("penalty_fired", penalty=p.penalty, ordinal=p.ordinal)
    if missed:
        ctx.did("sent_on_to", names=[p.name for p in missed])


# ---------------------------------------------------------------------------
# counting and penalties
# ---------------------------------------------------------------------------


# Counted complaints are kept in counter rows, one per engineer and counting
# window (``complaint`` / 张三 / 2026-11): the count, and the last few
# complaints counted (as many as the window's largest ``every``), in the order
# they were counted. A new complaint reads and writes only that short row, and
# a threshold it reaches reads only its own penalty row: the cost of a
# complaint does not grow with the history. A withdrawal (rare) rebuilds the
# engineer's window from the records. A store that held complaints before
# counters existed gets every counter of a window type built from its records
# once (the ``*`` / ``built:<window>`` row marks it).


def _item(ctx: Context, t: Ticket) -> list:
    return [_date(ctx, t).astimezone(timezone.utc).isoformat(), t.id, t.number]


def _keep(ctx: Context, window: str) -> int:
    """How many of the last counted complaints a window's counter keeps."""
    return max((r.every for r in penalty_rules(ctx) if r.window == window), default=1)


def _counter(ctx: Context, engineer: str, window: str, key: str):
    ctx.repo.counter(KIND, "*", f"built:{window}", build=lambda: _backfill(ctx, window))
    return ctx.repo.counter(KIND, engineer, key, keep=_keep(ctx, window))


def _counted_in(ctx: Context, window: str, engineer: str | None = None, key: str | None = None) -> dict:
    """(engineer, window key) -> items of the counted complaints, in counting order."""
    groups: dict[tuple[str, str], list] = {}
    for t in ctx.repo.tickets(KIND, states=(COUNTED,)):
        if engineer is not None and t.owner != engineer:
            continue
        k = window_key(window, _date(ctx, t))
        if key is None or k == key:
            groups.setdefault((t.owner, k), []).append(_item(ctx, t))
    return groups


def _backfill(ctx: Context, window: str) -> list:
    for (engineer, key), items in _counted_in(ctx, window).items():
        ctx.repo.counter(KIND, engineer, key, build=lambda items=items: items, keep=_keep(ctx, window))
    return []


def _count(ctx: Context, t: Ticket) -> None:
    """A complaint now counts: into every window's counter of its engineer."""
    for r in penalty_rules(ctx):
        c = _counter(ctx, t.owner, r.window, window_key(r.window, _date(ctx, t)))
        ctx.repo.count_in(c, _item(ctx, t), keep=_keep(ctx, r.window))


def _recount(ctx: Context, engineer: str, window: str, key: str) -> list[str]:
    """The engineer's counted complaints in the window, rebuilt from the
    records (after a withdrawal); the counter is set to match."""
    items = _counted_in(ctx, window, engineer, key).get((engineer, key), [])
    ctx.repo.count_set(_counter(ctx, engineer, window, key), items, keep=_keep(ctx, window))
    return [item[-1] for item in items]


def _counts(ctx: Context, engineer: str, when: datetime) -> list[dict]:
    out = []
    for r in penalty_rules(ctx):
        key = window_key(r.window, when)
        out.append({"rule": r.name, "window": window_label(r.window, key),
                    "count": _counter(ctx, engineer, r.window, key).count, "every": r.every, "penalty": r.penalty})
    return out


def _penalties(ctx: Context, r: PenaltyRule, engineer: str, key: str, **more) -> list[Penalty]:
    """The engineer's penalties of rule ``r`` in window ``key`` (``more``:
    ordinal=n for one of them), read by what identifies them: a window's
    penalties grow with its complaints, and reading them all for each
    question made a complaint after 20,000 earlier ones cost 3.5 times as
    much as after 1,000 (every penalty of the window loaded and scanned)."""
    return ctx.repo.rows(Penalty, engineer=engineer, rule=r.name, window=key, **more)


def reconcile(ctx: Context, engineer: str, when: datetime,
              withdrawn: str | None = None) -> list[tuple[str, Penalty, PenaltyRule]]:
    """Bring the engineer's penalties in line with the counted complaints in
    the windows containing ``when``. Returns (event, penalty, rule) with event
    in fired | revoked | rebased.

    Penalty ``n`` of a rule rests on the ``every`` complaints counted after
    the ``n-1``-th threshold up to the ``n``-th. A new complaint can only
    reach the next threshold (or bring back the one a withdrawal revoked):
    only that penalty row is read. A withdrawal reads them all, revokes those
    no longer reached, and restates those whose complaints changed."""
    events = []
    for r in penalty_rules(ctx):
        key = window_key(r.window, when)
        if withdrawn is None:
            c = _counter(ctx, engineer, r.window, key)
            due = c.count // r.every
            if not due or c.count % r.every:
                continue  # this complaint reached no threshold
            tail = [item[-1] for item in (c.items or [])]
            rows = {p.ordinal: p for p in _penalties(ctx, r, engineer, key, ordinal=due)}
            bases = {due: tail[-r.every:]}
        else:
            numbers = _recount(ctx, engineer, r.window, key)
            due = len(numbers) // r.every
            rows = {p.ordinal: p for p in _penalties(ctx, r, engineer, key)}
            bases = {n: numbers[(n - 1) * r.every: n * r.every] for n in range(1, due + 1)}
        for ordinal, basis in bases.items():
            p = rows.get(ordinal)
            if p is None:
                p = Penalty(engineer=engineer, rule=r.name, window=key, ordinal=ordinal, threshold=ordinal * r.every,
                            penalty=r.penalty, state="active", complaints=basis, fired_at=ctx.now, message=ctx.message.id)
                ctx.repo.add(p)
                events.append(("fired", p, r))
            elif p.state != "active":
                p.state, p.complaints, p.fired_at, p.revoked_at, p.message = "active", basis, ctx.now, None, ctx.message.id
                events.append(("fired", p, r))
            elif withdrawn and list(p.complaints or []) != basis:
                # Still reached; told about only if it rested on the withdrawn one.
                if withdrawn in (p.complaints or []):
                    events.append(("rebased", p, r))
                p.complaints = basis
        for ordinal, p in rows.items():
            if ordinal > due and p.state == "active":
                p.state, p.revoked_at = "revoked", ctx.now
                events.append(("revoked", p, r))
    for ev, p, r in events:
        ctx.audit("penalty", f"{p.engineer}/{p.rule}/{p.window}/{p.ordinal}", f"penalty_{ev}", penalty=p.penalty,
                  threshold=p.threshold, complaints=list(p.complaints or [])[-r.every:])
    return events


def _announce(ctx: Context, events, *, trigger: Ticket, withdrawn: Ticket | None = None) -> None:
    """Penalty escalations and corrections: To 技术支持部经理, CC 技术总监."""
    to = emails(p for r in _settings(ctx).route_to for p in ctx.directory.with_role(r))
    cc = emails(p for r in _settings(ctx).route_cc for p in ctx.directory.with_role(r))
    cc = [e for e in cc if e not in to]
    if not to:
        to, cc = cc, []
    if not to:
        return
    # The complaints that reached each threshold since the previous one (rows
    # written before counters kept the whole prefix: its tail), every record
    # listed read in one query.
    ctx.repo.prime([], [], [n for _ev, p, r in events for n in list(p.complaints or [])[-r.every:]])
    for ev, p, r in events:
        basis = list(p.complaints or [])[-r.every:]
        earlier = max(p.threshold - len(basis), 0)
        listed = [_describe(ctx, n) for n in basis]
        tpl = "penalty" if ev == "fired" else "penalty_corrected"
        ctx.send(ctx.template(tpl, f"complaint_{tpl}"), to=to, cc=cc, ticket=trigger, kind="escalation",
                 event=ev, engineer=p.engineer, penalty=p.penalty, ordinal=p.ordinal, threshold=p.threshold,
                 every=r.every, window=window_label(r.window, p.window), complaints=listed, earlier=earlier,
                 withdrawn=withdrawn)


def _describe(ctx: Context, number: str) -> dict:
    t = ctx.repo.ticket_by_token(number)
    if t is None:
        return {"number": number, "date": "", "project": "", "complainant": ""}
    return {"number": t.number, "date": fmt_dt(ctx, _date(ctx, t), False), "project": t.project,
            "complainant": (t.data or {}).get("complainant", "")}


# ---------------------------------------------------------------------------
# replies in a complaint's thread: 撤回
# ---------------------------------------------------------------------------


@effect("withdraw", KIND)
def _withdrawn(ctx: Context, ticket: Ticket, step: Step) -> None:
    """The complainant withdrew it: recorded with the state it had (the
    counts are corrected by ``complaint_reply``)."""
    update_data(ticket, withdrawn_at=ctx.now.isoformat(), withdrawn_state=step.old)
    ctx.audit("ticket", ticket.number, "complaint_withdrawn", previous_state=step.old)


@on_reply(KIND)
def complaint_reply(ctx: Context, ticket: Ticket) -> None:
    if handled_before(ctx):
        ctx.decide("same_message_in_thread", number=ticket.number)
        return
    bind_rule(ctx, ticket, "complaint")
    # 是 / 不是 in answer to 「您是不是指…」.
    if ctx.match is not None and dym.confirm(ctx, ticket, ctx.match.rule, sender_key="complainant",
                   on_yes=lambda: record_complaint(ctx, previous=ticket),
                   on_no=lambda name: _unregistered(ctx, name, [], ticket)):
        return
    words = _settings(ctx).withdraw_words
    if not starts_with_any(first_line(ctx.mail.body), words):
        add_note(ctx, ticket)
        ctx.decide("noted_in_thread", number=ticket.number)
        return
    data = ticket.data or {}
    if ctx.sender is None or ctx.sender.name != data.get("complainant"):
        add_note(ctx, ticket, "withdraw_denied")
        ctx.reply(ctx.template("withdraw_denied", "complaint_withdraw_denied"), ticket=ticket, record=ticket,
                  complainant=data.get("complainant", ""))
        ctx.decide("withdraw_refused", number=ticket.number, complainant=data.get("complainant", ""))
        return
    if ticket.state == WITHDRAWN:
        add_note(ctx, ticket, "withdraw_again")
        ctx.decide("already_withdrawn", number=ticket.number)
        return
    was = ticket.state
    states.apply(ctx, ticket, "撤回", WITHDRAWN)
    if was != COUNTED:  # it never counted: nothing to correct
        ctx.reply(ctx.template("withdrawn_ack", "complaint_withdrawn_ack"), ticket=ticket, record=ticket, counted=False,
                  counts=[], target=None, events=[])
        ctx.decide("withdrawn_not_counted", number=ticket.number)
        return
    when = _date(ctx, ticket)
    events = reconcile(ctx, ticket.owner, when, withdrawn=ticket.number)
    counts = _counts(ctx, ticket.owner, when)
    _announce(ctx, events, trigger=ticket, withdrawn=ticket)
    target = ctx.directory.by_name(ticket.owner)
    summary = [{"event": ev, "penalty": p.penalty, "window": window_label(r.window, p.window), "ordinal": p.ordinal}
               for ev, p, r in events]
    to = emails(p for r in _settings(ctx).route_to for p in ctx.directory.with_role(r))
    cc = emails(p for r in _settings(ctx).route_cc for p in ctx.directory.with_role(r))
    if target is not None:
        ctx.send(ctx.template("withdrawn", "complaint_withdrawn"), to=[target.email],
                 cc=[e for e in to + cc if e != target.email], ticket=ticket, record=ticket, target=target,
                 counts=counts, events=summary, complainant=data.get("complainant", ""),
                 date=fmt_dt(ctx, when, False))
    ctx.reply(ctx.template("withdrawn_ack", "complaint_withdrawn_ack"), ticket=ticket, record=ticket, counted=True,
              counts=counts, target=target, events=summary)
    ctx.decide("withdrawn", number=ticket.number, owner=ticket.owner)
    for ev, p, _ in events:
        ctx.did(PENALTY_EVENTS[ev], penalty=p.penalty, ordinal=p.ordinal)
