"""Convention 6: 故障处理工作单 ``故障处理-<项目>-<简述>`` (art. 43-47).

Submission (``rules/workorder.toml``, action ``record_workorder``): the
project's 第一售前 or 第二售前 mails the order with the fields 环境, 操作过程,
现象 and 日志 (log files may be attached instead, art. 44), and either
``尝试次数`` of at least ``min_attempts`` (3) or a mark that it is an obvious
serious bug (``严重程度：严重`` / ``是否严重：是``, or the word 严重 in the
subject or the body's first line; ``不严重`` does not count). A faulty
submission is not recorded: the sender is told each problem, with a body to
fill in; a plain reply to that rejection is a new submission. Attachments
are kept as ``Attachment`` rows, their bytes content-addressed in
``raw_mails``; a file over ``limits.max_attachment_size`` is recorded by name
and size only, and the receipt says so.

Everything after that is a reply in the order's thread, a keyword on the
first line (``processor.workflows.commands``)::

The states, who may take each step and who is told are the order's
lifecycle, declared in ``[lifecycle.workorder]`` of ``rules/workorder.toml``
(待审批 -> 同意 by the 售前经理 -> 待研发审核 -> 指派 by the 研发经理 ->
已指派 -> 申请关闭 by the 研发负责人 -> 确认关闭 by the 故障提出人 -> 已关闭;
驳回 with a 原因, 重新打开, 转定制; a 驳回 order is resubmitted with a
corrected body). Each step's ``effect`` names the function below registered
under that name (``@effect``), which ``states.change`` runs; its ``notify``
says who is told (``effects.told``).

``指派`` must name a person with one of ``assignee_roles`` (研发, 研发经理).
Art. 47 ("征求故障提出人的意见") is modelled as a two-step conversion: the
研发负责人 writes 转定制 (with the reason), the order waits in
待确认转定制, and only the raiser's 同意 makes it 已转定制.

Refusals (wrong person, wrong state, missing 原因/姓名) are the standard
replies of ``StateMachine``. Each accepted step is audited with the mail that
caused it and notifies the next actor, CC the 售前经理 (and the actor, so they
see it took effect). A reply without a keyword is recorded in the thread and
not answered; attachments in any reply are kept on the order as well.
"""
from __future__ import annotations

import re

from pydantic import Field

from ..directory import Person, Project
from ..lifecycles import Transition
from ..mail.subject import fold, remove_ticket_token
from ..reasons import Problem
from ..rules.engine import ACTION_KINDS
from ..store.models import Ticket
from . import attachments, survey
from . import states
from .base import Context, action, fmt_dt, on_reply
from .commands import Command, StateMachine, first_line, parse, raw_arg, rest_of_reply
from .effects import Step, effect, told
from .routing import emails, find_project, with_roles
from .settings import Flag, Roles, Settings, SomeRoles, Words, settings_for
from .states import open_record
from .thread import add_note, already_recorded, enter_thread, relink, update_data

KIND = "workorder"

PENDING_APPROVAL = "pending_approval"
RD_REVIEW = "rd_review"
REJECTED = "rejected"
ASSIGNED = "assigned"
CLOSE_REQUESTED = "close_requested"
CLOSED = "closed"
CUSTOM_PENDING = "custom_pending"
CUSTOM = "custom"

# Field names the action reads; the rule maps labels and synonyms onto them.
F_ENV, F_STEPS, F_SYMPTOM, F_LOGS = "environment", "steps", "symptom", "logs"
F_ATTEMPTS, F_SEVERITY = "attempts", "severity"
FIELDS = (F_ENV, F_STEPS, F_SYMPTOM, F_LOGS, F_ATTEMPTS, F_SEVERITY)

_SEE_ATTACHMENT = re.compile(r"^[（(]?\s*(?:详?见|请?见|参见|见)?\s*附件")
_NEGATION = "不非无没未"
# A reply or forward prefix before the 故障处理 of the subject.
_REPLY_PREFIX = re.compile(r"(?i)(?:^|[\s\]】:：])(?:回复|答复|回覆|回復|答覆|转发|轉發|转寄|轉寄|re|fwd|fw|aw|wg|sv)\s*[:：]")


# ---------------------------------------------------------------------------
# settings
# ---------------------------------------------------------------------------


@settings_for("record_workorder")
class WorkorderSettings(Settings):
    # Art. 44: "三次均无法解决的问题或者明显严重bug": fewer attempts are
    # refused unless the order is marked serious.
    min_attempts: int = Field(3, ge=0, description="≥ 0 的整数（次）")
    # Serious: the 严重程度 field starts with one of serious_values, or the
    # subject or first line contains one of serious_words (not after 不/非/无/没).
    serious_values: Words = ("严重", "非常严重", "特别严重", "致命", "是", "高", "一级", "1级")
    serious_words: Words = ("严重",)
    # With at least one attachment the 日志 field may be left out.
    attachments_count_as_logs: Flag = True
    # Who approves, reviews, may be named 研发负责人, and is copied on every step.
    approver_roles: SomeRoles = ("售前经理",)
    rd_manager_roles: SomeRoles = ("研发经理",)
    assignee_roles: SomeRoles = ("研发", "研发经理")
    notify_cc_roles: Roles = ("售前经理",)
    # Kept log files are attached to the notices for the managers and the R&D owner.
    forward_attachments: Flag = True
    # Copy the 责任销售 when an order becomes custom development (art. 47).
    custom_cc_sales: Flag = True


ACTION_KINDS["record_workorder"] = (KIND,)


# ---------------------------------------------------------------------------
# the state machine
# ---------------------------------------------------------------------------


def machine(ctx: Context, ticket: Ticket | None = None) -> StateMachine:
    """The order's keyword transitions, from its lifecycle (rules/workorder.toml);
    the roles come from the rule's settings and the party names carry the
    people's names (for the refusal replies)."""
    return StateMachine.of(ctx, KIND, ticket)


def _applicable(sm: StateMachine, ticket: Ticket, cmd: Command, person: Person | None) -> Transition | None:
    """The transition ``sm.handle`` would apply (state, permission and
    argument all fine), so a command can be checked further before it is."""
    for t in sm.transitions:
        if t.command == cmd.keyword and ticket.state in t.sources and sm.may(t, ticket, person):
            return t if (not t.needs or cmd.arg) else None
    return None


# ---------------------------------------------------------------------------
# submission
# ---------------------------------------------------------------------------


@action("record_workorder")
def record_workorder(ctx: Context) -> None:
    m = ctx.match
    if already_recorded(ctx, KIND):
        return
    project_name = m.captures.get("project", "")
    summary = m.captures.get("summary", "")
    # Someone replying to or forwarding the mail of an open order (e.g. the
    # 研发经理 forwarding it to an engineer): part of that order's thread.
    if _REPLY_PREFIX.search(fold(ctx.mail.subject or "").split("故障", 1)[0]):
        existing = _open_order(ctx, project_name, summary)
        if existing is not None:
            relink(ctx, existing)
            add_note(ctx, existing, "forward")
            ctx.decide("workorder_forward_noted", number=existing.number)
            return

    project, candidates = find_project(ctx, project_name)
    if project is None:
        problem = (Problem("workorder_project_unknown_near", "", {"project": project_name, "candidates": list(candidates)})
                   if candidates else Problem("workorder_project_unknown", "", {"project": project_name}))
        _reject(ctx, [problem], project=None, fill=True, new_mail=True)
        return
    sender = ctx.sender
    if sender is None or sender.name not in (project.presales1, project.presales2):
        allowed = [f"{r}{n}" for r, n in (("第一售前", project.presales1), ("第二售前", project.presales2)) if n]
        who = sender.name if sender else ctx.mail.from_addr
        _reject(ctx, [Problem("workorder_not_responsible", "", {"who": who, "project": project.name, "allowed": allowed})],
                project=project, fill=False)
        return

    values = dict(m.values)
    serious = _serious(ctx, values)
    problems = _problems(ctx, values, summary, len(attachments.incoming(ctx)), serious)
    if problems:
        _reject(ctx, problems, project=project, fill=True, serious=serious)
        return
    _open(ctx, project, summary, values, serious)


def _open_order(ctx: Context, project_name: str, summary: str) -> Ticket | None:
    key = (_key(project_name), _key(summary))
    project, _ = find_project(ctx, project_name)
    lc = ctx.lifecycles[KIND]
    for t in reversed(ctx.repo.tickets(KIND, states=lc.open_states)):  # open ones only, not the history
        same_project = (project is not None and t.project == project.name) or _key(t.project) == key[0]
        if same_project and _key((t.data or {}).get("summary", "")) == key[1]:
            return t
    return None


def _key(s: str) -> str:
    s = re.sub(r"[\s\W_]+", "", fold(s or "")).lower()
    return s[:-2] if s.endswith("项目") else s


def _serious(ctx: Context, values: dict) -> str:
    """Why the order counts as an obvious serious bug (art. 44), or ""."""
    sev = fold(values.get(F_SEVERITY, ""))
    core = re.sub(r"^[\s\W_]+", "", sev)
    if core and any(core.startswith(fold(w)) for w in ctx.settings.serious_values):
        return f"“{ctx.match.rule.label(F_SEVERITY)}”为“{values.get(F_SEVERITY, '').strip()}”"
    words = ctx.settings.serious_words
    if _mentions(remove_ticket_token(ctx.mail.subject or ""), words):
        return "标题注明“严重”"
    line = first_line(ctx.mail.body)
    if line and not ctx.match.rule.extractor.extract(line) and _mentions(line, words):
        return "正文第一行注明“严重”"
    return ""


def _mentions(text: str, words) -> bool:
    text = fold(text)
    return any(re.search(f"(?<![{_NEGATION}]){re.escape(fold(w))}", text) for w in words if w)


_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "兩": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7,
              "八": 8, "九": 9}


def parse_attempts(value: str) -> int | None:
    """``3``, ``3次``, ``三次``, ``已尝试十二次`` -> the number; None if there is none."""
    v = fold(value or "")
    m = re.search(r"\d+", v)
    if m:
        return int(m.group())
    m = re.search(r"[零〇一二两兩三四五六七八九十]+", v)
    if not m:
        return None
    s = m.group()
    if "十" in s:
        tens, _, ones = s.partition("十")
        return (_CN_DIGITS.get(tens[-1:], 1) if tens else 1) * 10 + (_CN_DIGITS.get(ones[:1], 0) if ones else 0)
    n = 0
    for ch in s:
        n = n * 10 + _CN_DIGITS[ch]
    return n


def _problems(ctx: Context, values: dict, summary: str | None, n_files: int, serious: str) -> list[Problem]:
    """Everything art. 44 finds wrong with the order, as data (worded in templates/messages.toml).
    ``summary`` None: not checked (a resubmission keeps its subject)."""
    rule = ctx.match.rule
    problems: list[Problem] = []
    if summary is not None and not summary.strip():
        problems.append(Problem("workorder_no_summary"))
    problems += [p for p in rule.validate(values, ctx.sender)]
    logs, lab = values.get(F_LOGS, ""), rule.label(F_LOGS)
    by_file = ctx.settings.attachments_count_as_logs and n_files > 0
    if not logs and not by_file:
        problems.append(Problem("workorder_logs_missing", F_LOGS, {"label": lab}))
    elif logs and n_files == 0 and _SEE_ATTACHMENT.match(fold(logs)):
        problems.append(Problem("workorder_logs_no_attachment", F_LOGS, {"label": lab, "value": logs}))
    if not serious:
        need = ctx.settings.min_attempts
        alab, slab = rule.label(F_ATTEMPTS), rule.label(F_SEVERITY)
        raw = values.get(F_ATTEMPTS, "")
        n = parse_attempts(raw) if raw else None
        if not raw:
            problems.append(Problem("workorder_attempts_missing", F_ATTEMPTS,
                                    {"label": alab, "need": need, "severity_label": slab}))
        elif n is None:
            problems.append(Problem("workorder_attempts_bad", F_ATTEMPTS, {"label": alab, "need": need, "value": raw}))
        elif n < need:
            problems.append(Problem("workorder_attempts_too_few", F_ATTEMPTS,
                                    {"label": alab, "count": n, "need": need, "severity_label": slab}))
    return problems


def _fill_in(ctx: Context, values: dict, serious: str = "") -> list[tuple[str, str]]:
    rule = ctx.match.rule
    out = []
    for name in FIELDS:
        v = values.get(name, "")
        if name == F_SEVERITY and not v:
            v = "严重" if serious else ""
        out.append((rule.label(name), v))
    return out


def _core_subject(ctx: Context) -> str:
    """The subject without prefixes, token and our (未提交…) suffix."""
    s = remove_ticket_token(ctx.mail.subject_norm or "").strip()
    return re.sub(r"\s*\(未提交[^)]*\)\s*$", "", s) or ctx.mail.subject


def _reject(ctx: Context, problems: list[Problem], *, project: Project | None, fill: bool, serious: str = "",
            new_mail: bool = False) -> None:
    """Not recorded: tell the sender each problem, with a body to fill in."""
    files = attachments.incoming(ctx)
    texts = ctx.texts(problems)
    ctx.audit(KIND, "", "workorder_rejected", project=project.name if project else ctx.match.captures.get("project", ""),
              problems=texts, subject=ctx.mail.subject)
    ctx.reply(ctx.template("rejected", "workorder_rejected"), ticket=None, record=None, core=_core_subject(ctx),
              project=project.name if project else "", problems=texts, new_mail=new_mail,
              fill_in=_fill_in(ctx, ctx.match.values, serious) if fill else [],
              files=[attachments.describe(ctx, f.filename or f"附件{i}", len(f.data), None) for i, f in enumerate(files, 1)],
              min_attempts=ctx.settings.min_attempts)
    ctx.decide("workorder_rejected", problems, count=len(problems))


def _open(ctx: Context, project: Project, summary: str, values: dict, serious: str) -> None:
    sender = ctx.sender
    role = "第一售前" if sender.name == project.presales1 else "第二售前"
    attempts = parse_attempts(values.get(F_ATTEMPTS, "")) if values.get(F_ATTEMPTS) else None
    t = open_record(ctx, KIND, project=project.name, owner=sender.name, state=PENDING_APPROVAL,
                    data={"rule": ctx.match.rule.name, "captures": dict(ctx.match.captures),
                          "summary": summary, "raiser": sender.name, "raiser_role": role, "rd_owner": "",
                          "values": values, "attempts": attempts, "serious": serious,
                          "message_id": ctx.mail.message_id or "", "changed_at": ctx.now.isoformat(),
                          "history": [_step(ctx, "提交", "", "", PENDING_APPROVAL)]})
    relink(ctx, t)
    ctx.audit(KIND, t.number, "workorder_submitted", project=project.name, raiser=sender.name, summary=summary,
              attempts=attempts, serious=serious, state=PENDING_APPROVAL)
    kept = attachments.keep(ctx, t)
    common = _vars(ctx, t, kept=kept)
    approvers = with_roles(ctx, ctx.settings.approver_roles)
    ctx.reply(ctx.template("ack", "workorder_ack"), ticket=t, **common)
    if approvers:
        ctx.send(ctx.template("approve", "workorder_approve"), to=emails(approvers),
                 cc=_cc(ctx, t, approvers, actor=False), ticket=t, resubmitted=False, **common)
        _attach(ctx, t)
    ctx.decide("workorder_submitted", number=t.number, project=project.name, raiser=sender.name,
               approvers=list(ctx.settings.approver_roles))
    if kept:
        ctx.did("attachments_kept", count=len(kept))


def _attach(ctx: Context, ticket: Ticket) -> None:
    """Put the order's kept files on the notice just queued (``forward_attachments``)."""
    if ctx.settings.forward_attachments:
        attachments.forward(ctx, ticket)


# ---------------------------------------------------------------------------
# people and template variables
# ---------------------------------------------------------------------------


def _person(ctx: Context, name: str) -> list[Person]:
    p = ctx.directory.by_name(name or "")
    return [p] if p is not None else []


def _cc(ctx: Context, ticket: Ticket, to: list[Person], extra: list[Person] = (), actor: bool = True) -> list[str]:
    """The 售前经理 (notify_cc_roles), the person who acted (so they see it
    took effect), and ``extra``; never someone already in To."""
    people = [*with_roles(ctx, ctx.settings.notify_cc_roles), *(extra or []),
              *([ctx.sender] if actor and ctx.sender is not None else [])]
    skip = set(emails(to))
    return [e for e in emails(people) if e not in skip]


def _step(ctx: Context, command: str, arg: str, old: str, new: str) -> dict:
    return {"at": ctx.now.isoformat(), "by": ctx.sender.name if ctx.sender else ctx.mail.from_addr,
            "command": command, "arg": arg, "from": old, "to": new, "message": ctx.message.id}


def _rest(ctx: Context) -> str:
    """The reply's text after the command line. The replies label this text
    themselves (处理结果：/原因：/意见：): a label the sender wrote in front of it
    is not repeated."""
    return _REST_LABEL.sub("", rest_of_reply(ctx), count=1).strip()


_REST_LABEL = re.compile(r"^(?:处理结果|处理情况|处理说明|处理过程|解决方法|解决方案|结果|原因|驳回原因|意见|说明|备注)"
                         r"[ \t]*[:：][ \t]*\n?")


def _vars(ctx: Context, t: Ticket, kept: list[dict] | None = None, **extra) -> dict:
    data = t.data or {}
    rule = ctx.match.rule
    files = [attachments.describe(ctx, a.filename, a.size, a.sha256 is not None) for a in attachments.of(ctx, t)]
    attempts = data.get("attempts")
    basis = (f"明显严重的bug（{data['serious']}）" if data.get("serious")
             else f"已尝试{attempts}次仍无法解决" if attempts is not None else "")
    return {"record": t, "project": t.project, "summary": data.get("summary", ""), "raiser": data.get("raiser", ""),
            "raiser_role": data.get("raiser_role", ""), "rd_owner": data.get("rd_owner", ""),
            "values": {k: (data.get("values") or {}).get(k, "") for k in FIELDS},
            "labels": {f.name: f.label for f in rule.fields}, "basis": basis, "files": files,
            "kept_files": [f for f in files if f["kept"]], "over_limit": [f for f in files if not f["kept"]],
            "forward_files": ctx.settings.forward_attachments,
            "new_files": kept if kept is not None else [], "state": ctx.lifecycles.state_name(KIND, t.state),
            "approvers": "、".join(p.name for p in with_roles(ctx, ctx.settings.approver_roles)),
            "rd_managers": "、".join(p.name for p in with_roles(ctx, ctx.settings.rd_manager_roles)),
            "opened": fmt_dt(ctx, t.opened_at), "actor": ctx.sender.name if ctx.sender else ctx.mail.from_addr,
            "rejection": data.get("rejection") or {}, "resolution": data.get("resolution", ""),
            "custom_reason": data.get("custom_reason", ""), "fill_in": _fill_in(ctx, data.get("values") or {},
                                                                                data.get("serious", "")),
            **extra}


# ---------------------------------------------------------------------------
# replies in the order's thread
# ---------------------------------------------------------------------------


@on_reply(KIND)
def workorder_reply(ctx: Context, ticket: Ticket) -> None:
    if not enter_thread(ctx, ticket, "workorder"):
        return
    sm = machine(ctx, ticket)
    cmd = parse(ctx, sm.commands())
    if cmd is not None:
        cmd = Command(cmd.keyword, raw_arg(ctx, cmd.arg), cmd.line)
    data = ticket.data or {}
    is_raiser = ctx.sender is not None and ctx.sender.name == data.get("raiser")

    if cmd is None:
        values = ctx.match.rule.extractor.extract(ctx.mail.body)
        if ticket.state == REJECTED and is_raiser and sum(1 for k in FIELDS if values.get(k)) >= 1:
            _resubmit(ctx, ticket, values)
            return
        kept = attachments.keep(ctx, ticket)
        add_note(ctx, ticket)
        ctx.decide("workorder_noted", number=ticket.number)
        if kept:
            ctx.did("attachments_kept", count=len(kept))
        return

    if cmd.keyword == "指派" and _applicable(sm, ticket, cmd, ctx.sender) is not None:
        person, problem = _assignee(ctx, cmd.arg)
        if person is None:
            text = ctx.messages.problem(problem)
            ctx.reply(ctx.template("bad_assignee", "workorder_bad_assignee"), ticket=ticket, problem=text,
                      candidates=[p.name for p in with_roles(ctx, ctx.settings.assignee_roles)],
                      **_vars(ctx, ticket))
            ctx.audit(KIND, ticket.number, "command_refused", command=cmd.keyword, reason="bad_assignee", arg=cmd.arg)
            ctx.decide("assign_refused", problem=text)
            return

    attachments.keep(ctx, ticket)
    sm.handle(ctx, ticket, cmd)


def _assignee(ctx: Context, arg: str) -> tuple[Person | None, Problem | None]:
    name = re.split(r"[\s,，。;；、:：(（]+", arg.strip(), maxsplit=1)[0] if arg.strip() else ""
    person = ctx.directory.by_name(name)
    roles = ctx.settings.assignee_roles
    if person is None:
        return None, Problem("assignee_unknown", "", {"name": name})
    if not person.roles & set(roles):
        return None, Problem("assignee_wrong_role", "", {"name": person.name, "roles": sorted(person.roles),
                                                          "allowed": list(roles)})
    return person, None


# ---------------------------------------------------------------------------
# the steps' effects (the lifecycle's `effect`; `notify` says who is told)
# ---------------------------------------------------------------------------


def _detail(ctx: Context, step: Step) -> str:
    """The command's argument and the reply's text after the command line."""
    return "\n".join(x for x in (step.arg, _rest(ctx)) if x)


@effect("approve", KIND)
def _approved(ctx: Context, t: Ticket, step: Step) -> None:
    update_data(t, approved_by=ctx.sender.name, approved_at=ctx.now.isoformat())
    to = told(ctx, t, step.transition.notify)
    ctx.send(ctx.template("review", "workorder_review"), to=emails(to),
             cc=_cc(ctx, t, to, _person(ctx, (t.data or {}).get("raiser", ""))), ticket=t,
             **_vars(ctx, t, note=step.arg or _rest(ctx)))
    _attach(ctx, t)


@effect("reject", KIND)
def _rejected(ctx: Context, t: Ticket, step: Step) -> None:
    # The role the sender acted in: one of the step's `who` (approver_roles or
    # rd_manager_roles, as the rule and the config set them).
    lc = ctx.lifecycles[KIND]
    who = lc.resolve(step.transition.who, lc.settings_in(ctx.cfg.workflows))
    by_role = next((r for r in who if r in ctx.sender.roles), who[0] if who else "")
    data = t.data or {}
    update_data(t, rejection={"by": ctx.sender.name, "role": by_role, "reason": step.arg, "detail": _rest(ctx),
                                 "at": fmt_dt(ctx, ctx.now)},
                rejections=int(data.get("rejections", 0)) + 1)
    to = told(ctx, t, step.transition.notify)
    ctx.send(ctx.template("returned", "workorder_returned"), to=emails(to), cc=_cc(ctx, t, to), ticket=t,
             **_vars(ctx, t))


@effect("assign", KIND)
def _assigned(ctx: Context, t: Ticket, step: Step) -> None:
    assignee, problem = _assignee(ctx, step.arg)
    if assignee is None:  # checked before the step is taken (workorder_reply)
        raise ValueError(f"{t.number}: 指派 without a valid assignee: {problem}")
    previous = (t.data or {}).get("rd_owner", "")
    t.owner = assignee.name
    update_data(t, rd_owner=assignee.name, assigned_by=ctx.sender.name, assigned_at=ctx.now.isoformat())
    to = told(ctx, t, step.transition.notify)
    old_owner = [p for p in _person(ctx, previous) if p.name != assignee.name]
    ctx.send(ctx.template("assigned", "workorder_assigned"), to=emails(to), cc=_cc(ctx, t, to, old_owner), ticket=t,
             **_vars(ctx, t, note=step.arg.split(assignee.name, 1)[-1].lstrip(" ，,。;；") or _rest(ctx),
                     previous_owner=previous if previous != assignee.name else ""))
    _attach(ctx, t)


@effect("request_close", KIND)
def _close_requested(ctx: Context, t: Ticket, step: Step) -> None:
    update_data(t, resolution=_detail(ctx, step) or (t.data or {}).get("resolution", ""),
                close_requested_at=ctx.now.isoformat())
    to = told(ctx, t, step.transition.notify)
    ctx.send(ctx.template("close_request", "workorder_close_request"), to=emails(to), cc=_cc(ctx, t, to),
             ticket=t, **_vars(ctx, t))


@effect("close", KIND)
def _closed(ctx: Context, t: Ticket, step: Step) -> None:
    """The raiser confirmed the fault is solved (art. 46): plan the 回访
    satisfaction follow-up for the 研发负责人's work."""
    update_data(t, closed_by=ctx.sender.name)
    survey.schedule(ctx, t, engineer=(t.data or {}).get("rd_owner", ""))
    to = told(ctx, t, step.transition.notify)
    ctx.send(ctx.template("closed", "workorder_closed"), to=emails(to), cc=_cc(ctx, t, to), ticket=t,
             **_vars(ctx, t, closed=fmt_dt(ctx, t.closed_at)))


@effect("reopen", KIND)
def _reopened(ctx: Context, t: Ticket, step: Step) -> None:
    update_data(t, reopened=int((t.data or {}).get("reopened", 0)) + 1, reopen_reason=_detail(ctx, step))
    to = told(ctx, t, step.transition.notify)
    ctx.send(ctx.template("reopened", "workorder_reopened"), to=emails(to), cc=_cc(ctx, t, to), ticket=t,
             **_vars(ctx, t, reason=_detail(ctx, step)))


@effect("request_custom", KIND)
def _custom_requested(ctx: Context, t: Ticket, step: Step) -> None:
    update_data(t, custom_reason=_detail(ctx, step))
    to = told(ctx, t, step.transition.notify)
    ctx.send(ctx.template("custom_request", "workorder_custom_request"), to=emails(to), cc=_cc(ctx, t, to),
             ticket=t, **_vars(ctx, t))


@effect("custom", KIND)
def _custom(ctx: Context, t: Ticket, step: Step) -> None:
    update_data(t, custom_agreed_by=ctx.sender.name)
    to = told(ctx, t, step.transition.notify)
    sales = []
    if ctx.settings.custom_cc_sales:
        project = _project(ctx, t.project)
        sales = _person(ctx, project.sales) if project else []
    ctx.send(ctx.template("custom", "workorder_custom"), to=emails(to), cc=_cc(ctx, t, to, sales), ticket=t,
             **_vars(ctx, t))


@effect("decline_custom", KIND)
def _custom_declined(ctx: Context, t: Ticket, step: Step) -> None:
    to = told(ctx, t, step.transition.notify)
    ctx.send(ctx.template("custom_declined", "workorder_custom_declined"), to=emails(to), cc=_cc(ctx, t, to),
             ticket=t, **_vars(ctx, t, reason=_detail(ctx, step)))


@effect("resubmit", KIND)
def _resubmitted(ctx: Context, t: Ticket, step: Step) -> None:
    """The raiser's corrected body (``extra``: the merged values, attempts,
    seriousness and the files kept from this mail): back to 待审批."""
    data, x = t.data or {}, step.extra
    update_data(t, values=x.get("values", data.get("values", {})), attempts=x.get("attempts", data.get("attempts")),
                serious=x.get("serious", data.get("serious", "")),
                resubmissions=int(data.get("resubmissions", 0)) + 1)
    to = told(ctx, t, step.transition.notify)
    ctx.send(ctx.template("approve", "workorder_approve"), to=emails(to), cc=_cc(ctx, t, to), ticket=t,
             resubmitted=True, **_vars(ctx, t, kept=x.get("kept", [])))
    _attach(ctx, t)


def _project(ctx: Context, name: str) -> Project | None:
    p, _ = find_project(ctx, name)
    return p


def _resubmit(ctx: Context, ticket: Ticket, values: dict) -> None:
    """The raiser answers a 驳回 with a corrected body: back to 待审批."""
    data = ticket.data or {}
    merged = {**(data.get("values") or {}), **{k: v for k, v in values.items() if v}}
    kept = attachments.keep(ctx, ticket)
    n_files = len(attachments.of(ctx, ticket))
    serious = _serious(ctx, merged) or data.get("serious", "")
    problems = _problems(ctx, merged, None, n_files, serious)
    if problems:
        texts = ctx.texts(problems)
        ctx.audit(KIND, ticket.number, "resubmit_refused", problems=texts)
        ctx.reply(ctx.template("rejected", "workorder_rejected"), ticket=ticket, record=ticket, core=_core_subject(ctx),
                  project=ticket.project, problems=texts, new_mail=False, fill_in=_fill_in(ctx, merged, serious),
                  files=[], min_attempts=ctx.settings.min_attempts)
        ctx.decide("workorder_resubmit_refused", problems, number=ticket.number, count=len(problems))
        return
    attempts = parse_attempts(merged.get(F_ATTEMPTS, "")) if merged.get(F_ATTEMPTS) else None
    states.apply(ctx, ticket, "重新提交", PENDING_APPROVAL,
                 extra={"values": merged, "attempts": attempts, "serious": serious, "kept": kept})
    ctx.decide("workorder_resubmitted", number=ticket.number, who=ctx.sender.name)
