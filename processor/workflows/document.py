"""Document review 文档审核 ``文档审核-<项目>-<文档名>`` (art. 25-28, 31, 39).

Submission (``rules/document.toml``, action ``record_document``): a person
with one of ``author_roles`` (售前) mails the document, attached, with the
subject convention of the rule. The project must be in the directory and
have a 责任销售 there. A faulty submission is not recorded: the sender is
told each problem. A recorded one opens a 文档审核单 (round 1) in 待审核,
held by the 责任销售, who gets a review request with the document attached.

Everything after that is a reply in the record's thread (to the system's
mails or to the engineer's original mail):

- the 责任销售 writes ``通过`` or ``驳回：意见`` on the first line;
- the engineer replies with a new version attached: the next round (also
  before the sales answered the current one); a new mail with the same
  subject from the author while the review is open is the same.

The states, who may take each step and who is told are the record's
lifecycle, ``[lifecycle.document]`` of ``rules/document.toml``; the steps'
effects are the functions below (``@effect``). Every round is kept in the
record's data (``rounds``: number, who, when, the files with their
content hashes, the decision and the comments) and its files as
``Attachment`` rows; the record's owner is whoever holds the document now.
"""
from __future__ import annotations

import re
from datetime import datetime

from .. import confidential, deadlines
from ..directory import Person, Project
from ..mail.subject import fold, remove_ticket_token
from ..reasons import Problem
from ..rules.engine import ACTION_KINDS
from ..store.models import Attachment, Ticket
from . import attachments, states
from .base import Context, action, fmt_dt, on_reply
from .commands import Command, StateMachine, bare_arg, parse, raw_arg, rest_of_reply
from .deadline import restate as restate_deadline
from .effects import Step, effect, told
from .routing import emails, find_project
from .settings import Flag, Roles, Settings, SomeRoles, settings_for
from .states import open_record
from .thread import add_note, already_recorded, enter_thread, relink, update_data

KIND = "document"
# 项目实施进场准备单 / 项目实施与进度计划表 (art. 38, 41): the same flow with
# 确认 for 通过; an unconfirmed draft must not reach a customer.
CONFIRM = "confirmation"
# The wording that differs: the sales' act and the keyword that accepts.
WORDS = {KIND: {"verb": "审核", "yes": "通过"}, CONFIRM: {"verb": "确认", "yes": "确认"}}

IN_REVIEW = "in_review"
RETURNED = "returned"
APPROVED = "approved"

F_TYPE, F_DEADLINE, F_NOTE = "doc_type", "deadline", "note"


@settings_for("record_confirmation")
@settings_for("record_document")
class DocumentSettings(Settings):
    # Who may submit a document for review (art. 28: the 售前 writes it).
    author_roles: SomeRoles = ("售前",)
    # Copied on the review request and the decisions.
    notify_cc_roles: Roles = ()
    # The current version is attached to the review request.
    forward_attachments: Flag = True
    # Told, with the sales, when an unconfirmed 进场准备单/进度计划表 is
    # addressed to a customer (outside the organisation's domains).
    outside_notify_roles: Roles = ("售前经理",)


ACTION_KINDS["record_document"] = (KIND,)
ACTION_KINDS["record_confirmation"] = (CONFIRM,)


# ---------------------------------------------------------------------------
# submission
# ---------------------------------------------------------------------------


@action("record_document")
def record_document(ctx: Context) -> None:
    _record(ctx, KIND)


@action("record_confirmation")
def record_confirmation(ctx: Context) -> None:
    _record(ctx, CONFIRM)


def _record(ctx: Context, kind: str) -> None:
    if already_recorded(ctx, kind):
        return
    caps = ctx.match.captures
    project_name = caps.get("project", "")
    doc = "-".join(x.strip() for x in (caps.get("doc") or "", caps.get("summary") or "") if x and x.strip())
    project, candidates = find_project(ctx, project_name)
    if project is None:
        _reject(ctx, [Problem("document_project_unknown_near", "", {"project": project_name,
                                                                     "candidates": list(candidates)})
                      if candidates else Problem("document_project_unknown", "", {"project": project_name})], None, kind)
        return
    sender = ctx.sender
    roles = ctx.settings.author_roles
    if sender is None or not sender.roles & set(roles):
        who = sender.name if sender else ctx.mail.from_addr
        _reject(ctx, [Problem("document_not_author", "", {"who": who, "roles": list(roles)})], project, kind)
        return
    existing = _open_review(ctx, kind, project, doc)
    if existing is not None and (existing.data or {}).get("author") == sender.name:
        relink(ctx, existing)
        _next_round(ctx, existing)
        return
    problems = []
    reviewer = ctx.directory.by_name(project.sales or "")
    if reviewer is None:
        problems.append(Problem("document_no_reviewer", "", {"project": project.name}))
    if not _incoming_files(ctx):
        problems.append(Problem("document_no_attachment", "", {"doc": doc}))
    if problems:
        _reject(ctx, problems, project, kind)
        return
    _open(ctx, kind, project, doc, reviewer)


def _open_review(ctx: Context, kind: str, project: Project, doc: str) -> Ticket | None:
    lc = ctx.lifecycles[kind]
    for t in reversed(ctx.repo.tickets(kind, project=project.name, states=lc.open_states)):
        if _key((t.data or {}).get("doc", "")) == _key(doc):
            return t
    return None


def _key(s: str) -> str:
    return re.sub(r"[\s\W_]+", "", fold(s or "")).lower()


def _reject(ctx: Context, problems: list[Problem], project: Project | None, kind: str) -> None:
    texts = ctx.texts(problems)
    ctx.audit(kind, "", "document_rejected", project=project.name if project else ctx.match.captures.get("project", ""),
              problems=texts, subject=ctx.mail.subject)
    ctx.reply(ctx.template("rejected", "document_rejected"), ticket=None, problems=texts,
              core=remove_ticket_token(ctx.mail.subject_norm or "").strip() or ctx.mail.subject,
              project=project.name if project else "", kind_label=ctx.lifecycles.label(kind))
    ctx.decide("document_rejected", problems, count=len(problems))


def _open(ctx: Context, kind: str, project: Project, doc: str, reviewer: Person) -> None:
    values = ctx.match.values
    due = deadlines.parse(values.get(F_DEADLINE, ""), ctx.now, ctx.cfg.system.timezone, deadlines.day_end(ctx.cfg))
    t = open_record(ctx, kind, project=project.name, owner=reviewer.name, state=IN_REVIEW, due_at=due,
                    data={"rule": ctx.match.rule.name, "captures": dict(ctx.match.captures), "doc": doc,
                          # the sales' 时间要求: a deadline clock owned by the author (sla.py)
                          "deadline_at": due.isoformat() if due else "", "deadline_owner": ctx.sender.name,
                          "doc_type": values.get(F_TYPE, "") or _guess_type(doc), "deadline": values.get(F_DEADLINE, ""),
                          "author": ctx.sender.name, "reviewer": reviewer.name, "rounds": [],
                          "message_id": ctx.mail.message_id or ""})
    relink(ctx, t)
    ctx.audit(kind, t.number, "document_submitted", project=project.name, author=ctx.sender.name, doc=doc,
              reviewer=reviewer.name, state=IN_REVIEW)
    _add_round(ctx, t)
    _ask_review(ctx, t, resubmitted=False)
    flag_outside(ctx, t)
    ctx.decide("document_submitted", number=t.number, project=project.name, doc=doc, reviewer=reviewer.name)


def _guess_type(doc: str) -> str:
    for word in ("测试预案", "实施预案", "进场准备单", "进度计划表"):
        if word in doc:
            return word
    return "技术文档"


def _ask_review(ctx: Context, t: Ticket, *, resubmitted: bool) -> None:
    """The receipt to the author and the review request, with the current
    version attached, to the 责任销售."""
    data = t.data or {}
    ctx.reply(ctx.template("ack", "document_ack"), ticket=t, **_vars(ctx, t, resubmitted=resubmitted))
    reviewer = _person(ctx, data.get("reviewer", ""))
    if reviewer:
        ctx.send(ctx.template("review", "document_review"), to=emails(reviewer), cc=_cc(ctx, reviewer), ticket=t,
                 **_vars(ctx, t, resubmitted=resubmitted))
        _attach_current(ctx, t)


def flag_outside(ctx: Context, t: Ticket) -> None:
    """A 进场准备单/进度计划表 draft (a mail with files in its thread, not
    from the sales) addressed to a customer before the sales confirmed it
    (art. 38, 41: 经销售确认后发送给客户): the sales and the 售前经理 are told,
    naming the outside addresses, and the audit records it."""
    data = t.data or {}
    if t.kind != CONFIRM or t.state == APPROVED or not _incoming_files(ctx):
        return
    if ctx.sender is not None and ctx.sender.name == data.get("reviewer"):
        return
    outside = confidential.policy(ctx.cfg, ctx.directory).outside(ctx.mail.recipients)
    if not outside:
        return
    to = _person(ctx, data.get("reviewer", ""))
    managers = [p for r in ctx.settings.outside_notify_roles for p in ctx.directory.with_role(r) if p not in to]
    ctx.audit(t.kind, t.number, "draft_outside", outside=outside, sender=ctx.sender.name if ctx.sender else "")
    ctx.send(ctx.template("outside", "document_outside"), to=emails(to) or emails(managers),
             cc=[e for e in emails([*managers, *([ctx.sender] if ctx.sender else [])]) if e not in emails(to)],
             ticket=t, **_vars(ctx, t, outside=outside))
    ctx.did("draft_outside", number=t.number, outside=outside)


# ---------------------------------------------------------------------------
# rounds and their files
# ---------------------------------------------------------------------------


def _incoming_files(ctx: Context) -> list:
    # Inline images of a signature are not a document version.
    return [a for a in ctx.mail.attachments if a.size and a.content_type != "message/rfc822"
            and not (a.content_type or "").startswith("image/")]


def _add_round(ctx: Context, t: Ticket) -> dict:
    """A new round with this mail's files (kept as Attachment rows, bytes
    content-addressed; over ``limits.max_attachment_size`` name and size only)."""
    files = attachments.store(ctx, t, _incoming_files(ctx))
    rounds = list((t.data or {}).get("rounds", []))
    rnd = {"n": len(rounds) + 1, "at": ctx.now.isoformat(), "by": ctx.sender.name if ctx.sender else ctx.mail.from_addr,
           "message": ctx.message.id, "files": files, "note": ctx.match.values.get(F_NOTE, "") if ctx.match else "",
           "decision": "", "comment": "", "decided_by": "", "decided_at": ""}
    update_data(t, rounds=[*rounds, rnd], version=rnd["n"])
    ctx.audit(t.kind, t.number, "document_round", round=rnd["n"], files=[f["name"] for f in files])
    return rnd


def _decide_round(ctx: Context, t: Ticket, decision: str, comment: str = "") -> None:
    rounds = [dict(r) for r in (t.data or {}).get("rounds", [])]
    if rounds:
        rounds[-1].update(decision=decision, comment=comment, decided_by=ctx.sender.name, decided_at=ctx.now.isoformat())
    update_data(t, rounds=rounds)


def _attach_current(ctx: Context, t: Ticket) -> None:
    """Put the current version's kept files on the notice just queued."""
    if not ctx.settings.forward_attachments or not ctx.outgoing:
        return
    rounds = (t.data or {}).get("rounds", [])
    if not rounds:
        return
    out = ctx.outgoing[-1]
    budget = ctx.cfg.limits.max_forward_total
    types = {a.sha256: a.content_type for a in ctx.repo.rows(Attachment, ticket_id=t.id)}
    for f in rounds[-1]["files"]:
        if f["sha256"] and f["size"] <= budget:
            data = ctx.repo.raw(f["sha256"])
            if data is not None:
                out.attachments.append((f["name"], types.get(f["sha256"], "application/octet-stream"), data))
                budget -= f["size"]


# ---------------------------------------------------------------------------
# replies in the record's thread
# ---------------------------------------------------------------------------


@on_reply(CONFIRM)
@on_reply(KIND)
def document_reply(ctx: Context, ticket: Ticket) -> None:
    if not enter_thread(ctx, ticket, ticket.kind):
        return
    flag_outside(ctx, ticket)
    restate_deadline(ctx, ticket, owner=(ticket.data or {}).get("author", ticket.owner))
    sm = StateMachine.of(ctx, ticket.kind, ticket)
    cmd = parse(ctx, sm.commands())
    if cmd is not None:
        sm.handle(ctx, ticket, Command(cmd.keyword, raw_arg(ctx, cmd.arg), cmd.line))
        return
    is_author = ctx.sender is not None and ctx.sender.name == (ticket.data or {}).get("author")
    if is_author and _incoming_files(ctx) and ticket.state in (RETURNED, IN_REVIEW):
        _next_round(ctx, ticket)
        return
    add_note(ctx, ticket)
    ctx.decide("document_noted", number=ticket.number)


def _next_round(ctx: Context, t: Ticket) -> None:
    """The author's new version: the next round, back to 待审核."""
    if not _incoming_files(ctx):
        add_note(ctx, t)
        ctx.decide("document_noted", number=t.number)
        return
    old = t.state
    states.apply(ctx, t, "重新提交", IN_REVIEW)
    ctx.decide("document_resubmitted", number=t.number, round=(t.data or {}).get("version", 0),
               who=ctx.sender.name, before=ctx.lifecycles.state_name(t.kind, old))


def _comment(ctx: Context, step: Step) -> str:
    """The command's argument (without a leading separator) and the reply's
    text after the command line."""
    return "\n".join(x for x in (bare_arg(step.arg), rest_of_reply(ctx)) if x)


# ---------------------------------------------------------------------------
# the steps' effects (the lifecycle's `effect`; `notify` says who is told)
# ---------------------------------------------------------------------------


@effect("approve", CONFIRM)
@effect("approve", KIND)
def _approved(ctx: Context, t: Ticket, step: Step) -> None:
    _decided(ctx, t, step, "通过", "approved")


@effect("return", CONFIRM)
@effect("return", KIND)
def _returned(ctx: Context, t: Ticket, step: Step) -> None:
    _decided(ctx, t, step, "驳回", "returned")


def _decided(ctx: Context, t: Ticket, step: Step, decision: str, mail: str) -> None:
    """The sales decided the round: the document goes back to its author,
    and whoever the step's notify names is told."""
    _decide_round(ctx, t, decision, _comment(ctx, step))
    t.owner = (t.data or {}).get("author", t.owner)
    to = told(ctx, t, step.transition.notify)
    ctx.send(ctx.template(mail, f"document_{mail}"), to=emails(to), cc=_cc(ctx, to, actor=True), ticket=t,
             **_vars(ctx, t))


@effect("resubmit", CONFIRM)
@effect("resubmit", KIND)
def _resubmitted(ctx: Context, t: Ticket, step: Step) -> None:
    rounds = (t.data or {}).get("rounds", [])
    if rounds and not rounds[-1].get("decision"):  # superseded before the sales answered
        _decide_round(ctx, t, "已被新版本替代")
    _add_round(ctx, t)
    t.owner = (t.data or {}).get("reviewer", t.owner)
    _ask_review(ctx, t, resubmitted=True)


# ---------------------------------------------------------------------------
# people and template variables
# ---------------------------------------------------------------------------


def _person(ctx: Context, name: str) -> list[Person]:
    p = ctx.directory.by_name(name or "")
    return [p] if p is not None else []


def _cc(ctx: Context, to: list[Person], *, actor: bool = False) -> list[str]:
    people = [p for r in ctx.settings.notify_cc_roles for p in ctx.directory.with_role(r)]
    if actor and ctx.sender is not None:
        people.append(ctx.sender)
    skip = set(emails(to))
    return [e for e in emails(people) if e not in skip]


def _size(n: int) -> str:
    return f"{n} 字节" if n < 1024 else f"{n / 1024:.1f} KB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MB"


def _vars(ctx: Context, t: Ticket, **extra) -> dict:
    data = t.data or {}
    rounds = [{"n": r["n"], "at": fmt_dt(ctx, _dt(r["at"])), "by": r["by"],
               "files": "、".join(f["name"] for f in r["files"]) or "（无附件）", "decision": r.get("decision", ""),
               "comment": r.get("comment", ""), "decided_by": r.get("decided_by", ""),
               "note": r.get("note", "")} for r in data.get("rounds", [])]
    current = data.get("rounds", [])[-1]["files"] if data.get("rounds") else []
    files = [{"name": f["name"], "size": _size(f["size"]), "kept": f["sha256"] is not None} for f in current]
    last = rounds[-1] if rounds else {}
    return {"record": t, "project": t.project, "doc": data.get("doc", ""), "doc_type": data.get("doc_type", ""),
            "deadline": data.get("deadline", ""), "author": data.get("author", ""),
            "reviewer": data.get("reviewer", ""), "state": ctx.lifecycles.state_name(t.kind, t.state),
            "kind_label": ctx.lifecycles.label(t.kind), **WORDS.get(t.kind, WORDS[KIND]),
            "holder": t.owner or "", "version": data.get("version", len(rounds)), "rounds": rounds, "files": files,
            "comment": last.get("comment", "") if last.get("decision") == "驳回" else "",
            "actor": ctx.sender.name if ctx.sender else ctx.mail.from_addr, "opened": fmt_dt(ctx, t.opened_at),
            **extra}


def _dt(s: str) -> datetime:
    return datetime.fromisoformat(s)
