"""项目实施工作单 ``项目实施工作单-<项目>[-<简述>]`` (art. 35-36).

Submission (``rules/implementation.toml``, action ``record_implementation``):
the project's 责任销售 mails the order with the sales part filled in
(``validate.required``); anyone else, or a missing field, and it is not
recorded: the sender is told each problem. A recorded order waits in
待填写技术部分, held by the project's 第一售前 (责任售前).

Routing (art. 35: To 责任售前, CC 销售负责人 and 售前负责人): the system sends
the request for the technical part To the 责任售前 and CC the ``cc_roles``
holders; the receipt tells the sales whom the mail had missed.

The 责任售前 replies in the order's thread with the technical part
(``tech_required``). All there: the declared step 填写技术部分 to 已填写完整,
everyone told. Some missing: recorded, and the reply names what is still
missing. Anyone else's technical fields are refused. Other replies are notes.
"""
from __future__ import annotations

from .. import deadlines
from ..directory import Person, Project
from ..reasons import Problem
from ..rules.engine import ACTION_KINDS
from ..store.models import Ticket
from . import states
from .base import Context, action, fmt_dt, on_reply
from .deadline import restate as restate_deadline
from .effects import Step, effect, told
from .routing import addressed, emails, find_project
from .settings import Roles, Settings, Words, settings_for
from .states import open_record
from .thread import add_note, already_recorded, enter_thread, relink, update_data

KIND = "implementation"
TECH_MISSING, COMPLETE = "tech_missing", "complete"
SALES_FIELDS = ("customer", "content", "site", "planned", "contact", "deadline")
TECH_FIELDS = ("plan", "environment", "version", "engineers")


@settings_for("record_implementation")
class ImplementationSettings(Settings):
    # Copied on the order (art. 35: 销售负责人, 售前负责人).
    cc_roles: Roles = ("销售负责人", "售前经理")
    # The technical part the 责任售前 must fill in.
    tech_required: Words = ("plan", "environment", "version")


ACTION_KINDS["record_implementation"] = (KIND,)


@action("record_implementation")
def record_implementation(ctx: Context) -> None:
    if already_recorded(ctx, KIND):
        return
    caps = ctx.match.captures
    project, candidates = find_project(ctx, caps.get("project", ""))
    values = dict(ctx.match.values)
    problems = list(ctx.match.rule.validate(values, ctx.sender))
    if project is None:
        problems.insert(0, Problem("document_project_unknown_near", "", {"project": caps.get("project", ""),
                                                                        "candidates": list(candidates)})
                        if candidates else Problem("document_project_unknown", "", {"project": caps.get("project", "")}))
    else:
        engineer = ctx.directory.by_name(project.presales1 or "")
        if ctx.sender is not None and "销售" in ctx.sender.roles and ctx.sender.name != project.sales:
            problems.append(Problem("implementation_not_sales", "", {"who": ctx.sender.name, "project": project.name,
                                                                     "sales": project.sales or "（未登记）"}))
        if engineer is None:
            problems.append(Problem("implementation_no_engineer", "", {"project": project.name}))
    if problems:
        texts = ctx.texts(problems)
        ctx.audit(KIND, "", "implementation_rejected", problems=texts, subject=ctx.mail.subject)
        ctx.reply(ctx.template("rejected", "implementation_rejected"), ticket=None, problems=texts,
                  fill_in=_fill_in(ctx, values, SALES_FIELDS))
        ctx.decide("implementation_rejected", problems, count=len(problems))
        return
    _open(ctx, project, engineer, values)


def _open(ctx: Context, project: Project, engineer: Person, values: dict) -> None:
    due = deadlines.parse(values.get("deadline", ""), ctx.now, ctx.cfg.system.timezone, deadlines.day_end(ctx.cfg))
    t = open_record(ctx, KIND, project=project.name, owner=engineer.name, state=TECH_MISSING, due_at=due,
                    data={"rule": ctx.match.rule.name, "captures": dict(ctx.match.captures),
                          # the sales' 时间要求: a deadline clock owned by the engineer (sla.py)
                          "deadline_at": due.isoformat() if due else "", "deadline_owner": engineer.name,
                          "summary": ctx.match.captures.get("summary", "") or "", "sales": ctx.sender.name,
                          "engineer": engineer.name, "values": {k: values.get(k, "") for k in SALES_FIELDS},
                          "tech": {}, "message_id": ctx.mail.message_id or ""})
    relink(ctx, t)
    heads = _heads(ctx)
    missed = [p for p in [engineer, *heads] if not addressed(ctx, p)]
    update_data(t, missed=[p.name for p in missed])
    ctx.audit(KIND, t.number, "implementation_recorded", project=project.name, sales=ctx.sender.name,
              engineer=engineer.name, missed=[p.name for p in missed])
    ctx.reply(ctx.template("ack", "implementation_ack"), ticket=t, **_vars(ctx, t, missed=[p.name for p in missed]))
    ctx.send(ctx.template("request", "implementation_request"), to=emails([engineer]),
             cc=[e for e in emails(heads) if e not in engineer.emails], ticket=t, **_vars(ctx, t))
    ctx.decide("implementation_recorded", number=t.number, project=project.name, engineer=engineer.name)


def _heads(ctx: Context) -> list[Person]:
    out: list[Person] = []
    for r in ctx.settings.cc_roles:
        out += [p for p in ctx.directory.with_role(r) if p not in out]
    return out


@on_reply(KIND)
def implementation_reply(ctx: Context, ticket: Ticket) -> None:
    if not enter_thread(ctx, ticket, "implementation"):
        return
    restate_deadline(ctx, ticket, owner=(ticket.data or {}).get("engineer", ticket.owner))
    values = ctx.match.rule.extractor.extract(ctx.mail.body)
    given = {k: values[k] for k in TECH_FIELDS if values.get(k)}
    if not given or ticket.state != TECH_MISSING:
        add_note(ctx, ticket)
        ctx.decide("implementation_noted", number=ticket.number)
        return
    data = ticket.data or {}
    if ctx.sender is None or ctx.sender.name != data.get("engineer"):
        _tech_reply(ctx, ticket, [Problem("implementation_not_engineer", "", {
            "who": ctx.sender.name if ctx.sender else ctx.mail.from_addr, "engineer": data.get("engineer", "")})])
        ctx.decide("implementation_tech_refused", number=ticket.number)
        return
    tech = {**(data.get("tech") or {}), **given}
    update_data(ticket, tech=tech)
    missing = _missing(ctx, tech)
    if missing:
        _tech_reply(ctx, ticket, missing)
        ctx.decide("implementation_tech_incomplete", number=ticket.number, count=len(missing))
        return
    states.apply(ctx, ticket, "填写技术部分", COMPLETE)
    ctx.decide("implementation_complete", number=ticket.number)


def _missing(ctx: Context, tech: dict) -> list[Problem]:
    rule = ctx.match.rule
    return [Problem("missing_field", k, {"label": rule.label(k)}) for k in ctx.settings.tech_required if not tech.get(k)]


def _tech_reply(ctx: Context, t: Ticket, problems: list[Problem]) -> None:
    texts = ctx.texts(problems)
    ctx.audit(KIND, t.number, "implementation_tech_refused", problems=texts)
    ctx.reply(ctx.template("tech_missing", "implementation_tech_missing"), ticket=t, problems=texts,
              **_vars(ctx, t))


@effect("complete", KIND)
def _completed(ctx: Context, t: Ticket, step: Step) -> None:
    t.owner = (t.data or {}).get("sales", t.owner)
    to = told(ctx, t, ["sales"])
    cc = [p for p in told(ctx, t, step.transition.notify) if p not in to] + [ctx.sender]
    ctx.send(ctx.template("complete", "implementation_complete"), to=emails(to),
             cc=[e for e in emails(cc) if e not in emails(to)], ticket=t, **_vars(ctx, t))


def _fill_in(ctx: Context, values: dict, names) -> list[tuple[str, str]]:
    rule = ctx.match.rule
    return [(rule.label(k), values.get(k, "")) for k in names]


def _vars(ctx: Context, t: Ticket, **extra) -> dict:
    data = t.data or {}
    rule = ctx.match.rule
    tech = data.get("tech") or {}
    return {"record": t, "project": t.project, "summary": data.get("summary", ""), "sales": data.get("sales", ""),
            "engineer": data.get("engineer", ""), "state": ctx.lifecycles.state_name(KIND, t.state),
            "sales_part": [(rule.label(k), (data.get("values") or {}).get(k, "")) for k in SALES_FIELDS
                           if (data.get("values") or {}).get(k)],
            "tech_part": _fill_in(ctx, tech, TECH_FIELDS),
            "tech_missing": [rule.label(k) for k in ctx.settings.tech_required if not tech.get(k)],
            "opened": fmt_dt(ctx, t.opened_at), **extra}
