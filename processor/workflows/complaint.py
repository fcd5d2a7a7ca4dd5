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

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from ..directory import Person, Project
from ..reasons import Problem
from ..rules.engine import ACTION_KINDS, SETTINGS_CHECKS
from ..store.models import Penalty, Ticket
from . import states
from .base import Context, action, fmt_dt, local, mail_date, on_reply
from .commands import first_line, starts_with_any
from .routing import addressed, emails, find_project
from .settings import as_bool, as_words, unknown_settings
from .states import open_record
from .thread import add_note, already_recorded, answer, bind_rule, handled_before, relink, update_data

KIND = "complaint"
COUNTED, WITHDRAWN, NOT_COUNTED, UNREGISTERED, REJECTED = "counted", "withdrawn", "not_counted", "unregistered", "rejected"
F_TARGET, F_DETAIL = "target", "detail"
# What reconcile() did to a penalty -> its [outcome] code in templates/messages.toml.
PENALTY_EVENTS = {"fired": "penalty_fired", "rebased": "penalty_rebased", "revoked": "penalty_revoked"}
WINDOWS = ("month", "quarter", "year", "never")
DEFAULT_PENALTIES = (
    {"name": "monthly", "every": 2, "window": "month", "penalty": "当月绩效工资扣发1级"},
    {"name": "permanent", "every": 4, "window": "never", "penalty": "绩效工资永久降1级"},
)
DEFAULT_WITHDRAW_WORDS = ("撤回",)


@dataclass(frozen=True)
class PenaltyRule:
    name: str
    every: int
    window: str
    penalty: str


def check_settings(settings: dict) -> list[tuple[str, str]]:
    """Problems in the complaint rule's settings, as (key, reason)."""
    probs = []
    known = {"allow_other_sales", "withdraw_words", "route_to", "route_cc", "penalties"}
    probs += unknown_settings(settings, known)
    pens = settings.get("penalties", DEFAULT_PENALTIES)
    if not isinstance(pens, (list, tuple)):
        return probs + [("penalties", "must be an array of tables ([[settings.penalties]])")]
    names = set()
    for i, p in enumerate(pens):
        key = f"penalties[{i}]"
        if not isinstance(p, dict):
            probs.append((key, "must be a table with name, every, window, penalty"))
            continue
        for k in p:
            if k not in ("name", "every", "window", "penalty"):
                probs.append((f"{key}.{k}", "unknown key (misspelt?)"))
        if not isinstance(p.get("name"), str) or not p.get("name"):
            probs.append((f"{key}.name", "required: a short identifier, e.g. \"monthly\""))
        elif p["name"] in names:
            probs.append((f"{key}.name", f"penalty name {p['name']!r} is used twice"))
        else:
            names.add(p["name"])
        if not isinstance(p.get("every"), int) or isinstance(p.get("every"), bool) or p.get("every", 0) < 1:
            probs.append((f"{key}.every", "required: a whole number ≥ 1 (every N complaints)"))
        if p.get("window", "month") not in WINDOWS:
            probs.append((f"{key}.window", f"must be one of {', '.join(WINDOWS)}"))
        if not isinstance(p.get("penalty"), str) or not p.get("penalty"):
            probs.append((f"{key}.penalty", "required: the penalty text, e.g. 当月绩效工资扣发1级"))
    for k in ("allow_other_sales",):
        if k in settings and not isinstance(settings[k], bool):
            probs.append((k, "must be true or false"))
    for k in ("withdraw_words", "route_to", "route_cc"):
        v = settings.get(k, [])
        if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
            probs.append((k, "must be a list of non-empty strings"))
    return probs


SETTINGS_CHECKS["record_complaint"] = check_settings
ACTION_KINDS["record_complaint"] = (KIND,)


def penalty_rules(ctx: Context) -> list[PenaltyRule]:
    s = ctx.settings
    if check_settings({"penalties": s.get("penalties", DEFAULT_PENALTIES)}):
        pens = DEFAULT_PENALTIES  # `check` reports the mistake; keep counting with the regulation's numbers
    else:
        pens = s.get("penalties", DEFAULT_PENALTIES)
    return [PenaltyRule(p["name"], p["every"], p.get("window", "month"), p["penalty"]) for p in pens]


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
def record_complaint(ctx: Context) -> None:
    m = ctx.match
    if already_recorded(ctx, KIND):
        return
    name = m.captures.get("project", "")
    project, candidates = find_project(ctx, name)
    if project is None:
        t = _record(ctx, UNREGISTERED, project=name, target="", candidates=candidates)
        answer(ctx, "unknown_project", "unknown_project", ticket=t, record=t, kind_label="投诉邮件",
               project_name=name, candidates=candidates, problems=[], fill_in=[])
        ctx.decide("complaint_unregistered", number=t.number, project=name)
        return
    sender = ctx.sender
    allow_other = as_bool(ctx.settings, "allow_other_sales", False)
    roles = m.rule.validate_sender_roles or ("销售",)
    is_sales = sender is not None and bool(sender.roles & set(roles))
    if not is_sales or (sender.name != project.sales and not allow_other):
        why = "not_sales" if not is_sales else "not_project_sales"
        t = _record(ctx, NOT_COUNTED, project=project.name, target="", reason=why)
        answer(ctx, "not_counted", "complaint_not_counted", ticket=t, record=t, project=project, why=why,
               roles="/".join(roles))
        ctx.decide("complaint_not_sales" if not is_sales else "complaint_not_project_sales", number=t.number)
        return
    target, problem = _target(ctx, project)
    if target is None:
        text = ctx.messages.problem(problem)
        t = _record(ctx, REJECTED, project=project.name, target="", problems=[text])
        answer(ctx, "not_counted", "complaint_not_counted", ticket=t, record=t, project=project,
               why="bad_target", problem=text, roles="/".join(roles))
        ctx.decide("complaint_bad_target", [problem], number=t.number)
        return
    _counted(ctx, project, target)


def _record(ctx: Context, state: str, *, project: str, target: str, **data) -> Ticket:
    m = ctx.match
    t = open_record(ctx, KIND, project=project, owner=target, state=state,
                    data={"rule": m.rule.name, "captures": dict(m.captures),
                          "complainant": ctx.sender.name if ctx.sender else ctx.mail.from_addr,
                          "complainant_email": ctx.mail.from_addr, "date": mail_date(ctx).isoformat(),
                          "detail": m.values.get(F_DETAIL, ""), "message_id": ctx.mail.message_id or "",
                          **data})
    relink(ctx, t)
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


def _counted(ctx: Context, project: Project, target: Person) -> None:
    m = ctx.match
    t = _record(ctx, COUNTED, project=project.name, target=target.name, sales=project.sales)
    ctx.repo.s.flush()

    # Routing (art. 13): To 技术支持部经理, CC 技术总监; send it on to whoever was missed.
    to_roles = as_words(ctx.settings, "route_to", ("技术支持部经理",))
    cc_roles = as_words(ctx.settings, "route_cc", ("技术总监",))
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
           withdraw_words=as_words(ctx.settings, "withdraw_words", DEFAULT_WITHDRAW_WORDS))
    ctx.decide("complaint_counted", number=t.number, target=target.name)
    for _, p, _ in fired:
        ctx.did("penalty_fired", penalty=p.penalty, ordinal=p.ordinal)
    if missed:
        ctx.did("sent_on_to", names=[p.name for p in missed])


# ---------------------------------------------------------------------------
# counting and penalties
# ---------------------------------------------------------------------------


def _active(ctx: Context, engineer: str, rule: PenaltyRule, key: str) -> list[Ticket]:
    ts = ctx.repo.tickets(KIND, states=(COUNTED,))
    ts = [t for t in ts if t.owner == engineer and window_key(rule.window, _date(ctx, t)) == key]
    return sorted(ts, key=lambda t: (_date(ctx, t), t.id))


def _counts(ctx: Context, engineer: str, when: datetime) -> list[dict]:
    out = []
    for r in penalty_rules(ctx):
        key = window_key(r.window, when)
        out.append({"rule": r.name, "window": window_label(r.window, key), "count": len(_active(ctx, engineer, r, key)),
                    "every": r.every, "penalty": r.penalty})
    return out


def reconcile(ctx: Context, engineer: str, when: datetime,
              withdrawn: str | None = None) -> list[tuple[str, Penalty, PenaltyRule]]:
    """Bring the engineer's penalties in line with the counted complaints in
    the windows containing ``when``. Returns (event, penalty, rule) with event
    in fired | revoked | rebased."""
    events = []
    for r in penalty_rules(ctx):
        key = window_key(r.window, when)
        active = _active(ctx, engineer, r, key)
        due = len(active) // r.every
        rows = {p.ordinal: p for p in ctx.repo.s.scalars(select(Penalty).where(
            Penalty.engineer == engineer, Penalty.rule == r.name, Penalty.window == key))}
        for ordinal in range(1, due + 1):
            basis = [t.number for t in active[: ordinal * r.every]]
            p = rows.get(ordinal)
            if p is None:
                p = Penalty(engineer=engineer, rule=r.name, window=key, ordinal=ordinal, threshold=ordinal * r.every,
                            penalty=r.penalty, state="active", complaints=basis, fired_at=ctx.now, message=ctx.message.id)
                ctx.repo.s.add(p)
                ctx.repo.s.flush()
                events.append(("fired", p, r))
            elif p.state != "active":
                p.state, p.complaints, p.fired_at, p.revoked_at, p.message = "active", basis, ctx.now, None, ctx.message.id
                events.append(("fired", p, r))
            elif withdrawn and withdrawn in (p.complaints or []):
                p.complaints = basis
                events.append(("rebased", p, r))
        for ordinal, p in rows.items():
            if ordinal > due and p.state == "active":
                p.state, p.revoked_at = "revoked", ctx.now
                events.append(("revoked", p, r))
    for ev, p, r in events:
        ctx.audit("penalty", f"{p.engineer}/{p.rule}/{p.window}/{p.ordinal}", f"penalty_{ev}", penalty=p.penalty,
                  complaints=list(p.complaints or []))
    return events


def _announce(ctx: Context, events, *, trigger: Ticket, withdrawn: Ticket | None = None) -> None:
    """Penalty escalations and corrections: To 技术支持部经理, CC 技术总监."""
    to = emails(p for r in as_words(ctx.settings, "route_to", ("技术支持部经理",)) for p in ctx.directory.with_role(r))
    cc = emails(p for r in as_words(ctx.settings, "route_cc", ("技术总监",)) for p in ctx.directory.with_role(r))
    cc = [e for e in cc if e not in to]
    if not to:
        to, cc = cc, []
    if not to:
        return
    for ev, p, r in events:
        listed = [_describe(ctx, n) for n in (p.complaints or [])]
        tpl = "penalty" if ev == "fired" else "penalty_corrected"
        ctx.send(ctx.template(tpl, f"complaint_{tpl}"), to=to, cc=cc, ticket=trigger, kind="escalation",
                 event=ev, engineer=p.engineer, penalty=p.penalty, ordinal=p.ordinal, threshold=p.threshold,
                 every=r.every, window=window_label(r.window, p.window), complaints=listed, withdrawn=withdrawn)


def _describe(ctx: Context, number: str) -> dict:
    t = ctx.repo.ticket_by_token(number)
    if t is None:
        return {"number": number, "date": "", "project": "", "complainant": ""}
    return {"number": t.number, "date": fmt_dt(ctx, _date(ctx, t), False), "project": t.project,
            "complainant": (t.data or {}).get("complainant", "")}


# ---------------------------------------------------------------------------
# replies in a complaint's thread: 撤回
# ---------------------------------------------------------------------------


@on_reply(KIND)
def complaint_reply(ctx: Context, ticket: Ticket) -> None:
    if handled_before(ctx):
        ctx.decide("same_message_in_thread", number=ticket.number)
        return
    bind_rule(ctx, ticket, "complaint")
    words = as_words(ctx.settings, "withdraw_words", DEFAULT_WITHDRAW_WORDS)
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
    update_data(ticket, withdrawn_at=ctx.now.isoformat(), withdrawn_state=was)
    ctx.audit("ticket", ticket.number, "complaint_withdrawn", previous_state=was)
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
    to = emails(p for r in as_words(ctx.settings, "route_to", ("技术支持部经理",)) for p in ctx.directory.with_role(r))
    cc = emails(p for r in as_words(ctx.settings, "route_cc", ("技术总监",)) for p in ctx.directory.with_role(r))
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
