"""Convention 1: 汇报邮件 ``客户沟通-<项目>-<技服人员名字>`` (art. 12, 15, 16).

The rule (``rules/customer_report.toml``) recognises the subject, reads the
body fields and lists what the regulation finds wrong with them. The action
``record_report`` decides what becomes of the mail:

* sender lacks the rule's ``validate.sender_roles`` -> ``not_counted``, told why;
* project unknown (or ambiguous) -> ``unregistered`` (未立项), told the closest names;
* problems in the body -> ``rejected``, told each problem plus a fill-in body;
* otherwise ``accepted``: one row in the 项目跟踪表 of the project's 第一售前,
  a 回执 with the record number, the report forwarded to the 责任销售 if they
  were not addressed, the 第一售前 and 售前经理 told when someone else reported,
  a 遗留问题跟进单 opened for 问题遗留; 成功 closes the open ones it refers
  to (by thread, number or the 跟进单编号 field, see
  ``followup.referred_followups``) and lists the others in the 回执.

Every outcome is a numbered ``report`` record, so rejections can be counted.
"""
from __future__ import annotations

from pydantic import Field

from ..directory import Person, Project
from ..mail.hanzi import to_simplified
from ..mail.subject import fold, remove_ticket_token
from ..reasons import Decision, Problem
from ..records import Row
from ..rules.engine import ACTION_KINDS, Match, Rule
from ..store.models import TrackingRow, Ticket
from . import didyoumean as dym
from . import followup as fu
from .base import Context, action, fmt_dt, mail_date, on_reply, reply_hook
from .routing import addressed, emails, find_project, had_attached
from .settings import Flag, SomeRoles, Text, settings_for
from .thread import add_note, already_recorded, answer, enter_thread, open_submission, handled_before

KIND = "report"
ACCEPTED, REJECTED, UNREGISTERED, NOT_COUNTED = "accepted", "rejected", "unregistered", "not_counted"
# The subject's project is unknown but one real project is a near match: the
# sender is asked 「您是不是指“…”？」 and confirms with one reply.
from .didyoumean import UNCONFIRMED  # noqa: E402 (shared by every convention)
# Field names the action reads; the rule maps labels and synonyms onto them.
F_RESULT, F_PROJECT, F_ISSUE, F_REMAINING = "result", "project", "issue", "remaining"
F_CONTACT, F_METHOD, F_FOLLOWUP = "contact", "method", "followup"


@settings_for("record_report")
class ReportSettings(fu.FollowupSettings):
    # Forward the report to a 责任销售 who is in neither To nor Cc.
    forward_to_sales: Flag = True
    # When another presales reports, notify the first presales (art. 6, 16),
    # Cc handover_cc_roles.
    notify_first_presales: Flag = True
    handover_cc_roles: SomeRoles = ("售前经理",)
    # The two 沟通结果 values (art. 15): result_open opens a follow-up,
    # result_success closes the follow-ups the report refers to.
    result_success: Text = "成功"
    result_open: Text = "问题遗留"
    # Other spellings, replaced by the standard one before validation.
    result_synonyms: dict[str, str] = Field(
        {}, description="表：写法 = \"标准写法\"，例如 { \"問題遺留\" = \"问题遗留\" }")
    # How many of the project's other open follow-ups a 回执 lists (the newest;
    # the rest are counted): a project with a long backlog still gets a short receipt.
    list_open_followups: int = Field(5, ge=0, description="≥ 0 的整数")
ACTION_KINDS["record_report"] = (KIND, fu.KIND)


@action("record_report")
def record_report(ctx: Context) -> None:
    process_report(ctx)


def process_report(ctx: Context, previous: Ticket | None = None, thread: Ticket | None = None) -> None:
    """``previous``: the rejected report this one corrects; ``thread``: the
    record in whose conversation the report was sent (it refers to its follow-up)."""
    m = ctx.match
    rule = m.rule
    if already_recorded(ctx, KIND):
        return
    sender = ctx.sender
    if rule.validate_sender_roles and (sender is None or not sender.roles & set(rule.validate_sender_roles)):
        _not_counted(ctx, previous)
        return
    subject_project = m.captures.get("project", "")
    project, candidates = find_project(ctx, subject_project)
    # Spellings the rule maps to the standard value (e.g. 繁体 問題遺留) are
    # validated and recorded as that value.
    canon = _canonical_result(ctx, m.values.get(F_RESULT, ""))
    if m.values.get(F_RESULT) and canon != m.values[F_RESULT]:
        m.values = {**m.values, F_RESULT: canon}
        m.problems = rule.validate(m.values, sender)
    problems = list(m.problems)
    if project is None:
        suggested = dym.near_match(project, candidates, previous)
        if suggested:
            _did_you_mean(ctx, subject_project, suggested, problems)
        else:
            _unregistered(ctx, subject_project, candidates, problems, previous)
        return
    body_project = m.values.get(F_PROJECT, "")
    if body_project:
        other, _ = find_project(ctx, body_project)
        if other is not None and other.name != project.name:
            problems.append(Problem("report_project_mismatch", F_PROJECT, {
                "project": project.name, "label": rule.label(F_PROJECT), "value": body_project, "other": other.name}))
    if problems:
        _rejected(ctx, project, problems, previous)
        return
    _accepted(ctx, project, previous, thread)


# ---------------------------------------------------------------------------
# outcomes
# ---------------------------------------------------------------------------


def _record(ctx: Context, state: str, *, project: str, owner: str, previous: Ticket | None, **data) -> Ticket:
    return open_submission(ctx, KIND, state, project=project, owner=owner, previous=previous, audit_as="report", **data)


def _not_counted(ctx: Context, previous: Ticket | None) -> None:
    rule = ctx.match.rule
    roles = "/".join(rule.validate_sender_roles)
    t = _record(ctx, NOT_COUNTED, project=ctx.match.captures.get("project", ""), owner="", previous=previous,
                reason="sender_role")
    answer(ctx, "not_counted", "report_not_counted", ticket=t, record=t, roles=roles)
    ctx.decide("report_not_counted", number=t.number, roles=list(rule.validate_sender_roles))


def _unregistered(ctx: Context, name: str, candidates: list[str], problems: list[Problem], previous: Ticket | None) -> None:
    texts = ctx.texts(problems)
    t = _record(ctx, UNREGISTERED, project=name, owner="", previous=previous, candidates=candidates, problems=texts)
    answer(ctx, "unknown_project", "unknown_project", ticket=t, record=t, kind_label="汇报邮件",
           project_name=name, candidates=candidates, problems=texts,
           fill_in=_fill_in(ctx.match, None, problems))
    ctx.decide("unregistered", problems, number=t.number, project=name, candidates=list(candidates))
    # Art. 11: remind the sales among the recipients to file the 立项单 (lixiang.py).
    from .lixiang import remind_unregistered
    remind_unregistered(ctx, name, t)


def _did_you_mean(ctx: Context, name: str, suggested: str, problems: list[Problem]) -> None:
    """A mistyped project: ask whether the near match was meant; no 未立项
    reminder to the sales (a typo is not a missing 立项单)."""
    texts = ctx.texts(problems)
    t = _record(ctx, UNCONFIRMED, project=name, owner="", previous=None, problems=texts,
                **dym.ask_data(ctx, suggested))
    dym.ask(ctx, t, kind_label="汇报邮件", name=name, suggested=suggested, problems=texts, reminds_sales=True)


def _confirm_project(ctx: Context, ticket: Ticket, rule: Rule) -> bool:
    """是 records the report under the suggested project, 不是 records it as
    未立项 (the sales is then reminded)."""
    return dym.confirm(ctx, ticket, rule, on_yes=lambda: process_report(ctx, previous=ticket),
                       on_no=lambda name: _unregistered(ctx, name, [], list(ctx.match.problems), ticket))


def _rejected(ctx: Context, project: Project, problems: list[Problem], previous: Ticket | None) -> None:
    texts = ctx.texts(problems)
    t = _record(ctx, REJECTED, project=project.name, owner=project.presales1, previous=previous, problems=texts)
    answer(ctx, "rejected", "report_rejected", ticket=t, record=t, project=project, problems=texts,
           fill_in=_fill_in(ctx.match, project, problems))
    ctx.decide("rejected", problems, number=t.number, count=len(problems))


def _accepted(ctx: Context, project: Project, previous: Ticket | None, thread: Ticket | None = None) -> None:
    m = ctx.match
    v = m.values
    sender = ctx.sender
    engineer, mismatch = _engineer(ctx, m.captures.get("engineer", ""))
    owner = ctx.directory.by_name(project.presales1)
    sales = ctx.directory.by_name(project.sales)
    result = _canonical_result(ctx, v.get(F_RESULT, ""))
    is_open = result == ctx.settings.result_open
    is_ok = result == ctx.settings.result_success
    when = mail_date(ctx)
    role = ("第一售前" if engineer.name == project.presales1 else
            "第二售前" if engineer.name == project.presales2 else "非本项目售前")
    t = _record(ctx, ACCEPTED, project=project.name, owner=project.presales1, previous=previous,
                reporter=engineer.name, reporter_role=role, result=result, mismatch=mismatch or {})
    ctx.repo.insert(TrackingRow, Row(owner=project.presales1, project=project.name, reporter=engineer.name,
                               sender=sender.name, comm_date=when, contact=v.get(F_CONTACT, ""),
                               method=v.get(F_METHOD, ""), result=result, issue=v.get(F_ISSUE, ""),
                               remaining=v.get(F_REMAINING, "") if is_open else "",
                               ticket_id=t.id, message=ctx.message.id, source_message_id=ctx.mail.message_id or None,
                               created_at=ctx.now))
    ctx.audit("tracking", t.number, "tracking_row_added", owner=project.presales1, project=project.name,
              reporter=engineer.name, result=result)

    # 问题遗留 opens a follow-up; 成功 closes the open ones it refers to (never
    # a follow-up by project alone); the others stay open and are listed in the 回执.
    opened, closed, still_open, left_open = None, [], [], 0
    if is_open:
        opened = fu.open_followup(ctx, report=t, project=project, owner=owner, remaining=v.get(F_REMAINING, ""))
    elif is_ok:
        closed, still_open, left_open = fu.referred_followups(
            ctx, project.name, thread=thread, texts=(ctx.mail.subject, ctx.mail.body, v.get(F_FOLLOWUP, "")),
            listed=ctx.settings.list_open_followups)
        for ft in closed:
            fu.close_followup(ctx, ft, how="report", closing_report=t, resolution=v.get(F_ISSUE, ""))

    common = dict(record=t, project=project, engineer=engineer, values=v, result=result, labels=_labels(m.rule),
                  date=fmt_dt(ctx, when), owner_name=project.presales1, reporter_role=role, is_open=is_open,
                  followup_due=fmt_dt(ctx, opened.due_at) if opened else "",
                  close_words=ctx.settings.close_words, extras=m.extras)

    # The 责任销售 must get the report (art. 12): forward it if they were not addressed.
    forwarded = False
    had_it = had_attached(ctx, sales) or (  # the mail a confirmation of 「您是不是指」 refers to
        sales is not None and previous is not None and previous.state == UNCONFIRMED
        and any(e in (previous.data or {}).get("recipients", []) for e in sales.emails))
    if sales is not None and not addressed(ctx, sales) and not had_it and ctx.settings.forward_to_sales:
        ctx.send(ctx.template("forward", "report_forward"), to=[sales.email], reply_to=[ctx.mail.from_addr],
                 ticket=t, kind="forward", attach_original=True, sales=sales, body=ctx.mail.body,
                 original_subject=ctx.mail.subject, original_from=ctx.mail.from_addr, **common)
        forwarded = True

    # Someone other than the 第一售前 reported: tell the 第一售前, CC 售前经理 (art. 6, 16).
    handover = False
    if (engineer.name != project.presales1 and owner is not None and owner.name != sender.name
            and ctx.settings.notify_first_presales):
        managers = [p for r in ctx.settings.handover_cc_roles
                    for p in ctx.directory.with_role(r) if p.name not in (owner.name, sender.name)]
        ctx.send(ctx.template("handover", "report_handover"), to=[owner.email],
                 cc=[e for e in emails(managers) if e != owner.email], reply_to=[ctx.mail.from_addr],
                 ticket=opened or t, followup=opened, **common)
        handover = True

    named = ctx.directory.by_name(engineer.name)
    cc = [named.email] if mismatch and mismatch.get("kind") == "other" and named is not None else []
    answer(ctx, "ack", "report_ack", ticket=t, cc=cc, mismatch=mismatch, forwarded_to=sales if forwarded else None,
           handover=handover, followup=opened, closed_followups=closed, open_followups=still_open,
           more_open=left_open - len(still_open), **common)
    ctx.decide("report_accepted", number=t.number, owner=project.presales1)
    if opened:
        ctx.did("followup_opened", number=opened.number)
    if closed:
        ctx.did("followups_closed", numbers=[f.number for f in closed])
    if left_open:
        ctx.did("followups_left_open", count=left_open, numbers=[f.number for f in still_open])
    if forwarded:
        ctx.did("forwarded_to_sales")
    if handover:
        ctx.did("first_presales_notified", name=project.presales1)


def _canonical_result(ctx: Context, value: str) -> str:
    """沟通结果 as the tracking table writes it: 繁体 folded to 简体 (OpenCC),
    other spellings mapped by ``settings.result_synonyms``."""
    v = to_simplified(fold(value))
    return ctx.settings.result_synonyms.get(v, v)


def _engineer(ctx: Context, name: str) -> tuple[Person, dict | None]:
    """Who the report is recorded against, and what was odd about the subject's name."""
    sender = ctx.sender
    name = name.strip()
    if not name:
        return sender, {"kind": "missing", "name": "", "recorded": sender.name}
    person = ctx.directory.by_name(name)
    roles = set(ctx.match.rule.validate_sender_roles or ("售前",))
    if person is None or not person.roles & roles:
        return sender, {"kind": "unknown", "name": name, "recorded": sender.name}
    if person.name != sender.name:
        return person, {"kind": "other", "name": person.name, "recorded": person.name, "sender": sender.name}
    return sender, None


def _labels(rule: Rule) -> dict[str, str]:
    return {f.name: f.label for f in rule.fields}


def _fill_in(m: Match, project: Project | None, problems: list[Problem]) -> list[tuple[str, str]]:
    """The body to send again: every field's label, with what was usable kept."""
    rule = m.rule
    out = []
    vague_fields = set(rule.specific.fields) if rule.specific else set()
    for f in rule.fields:
        v = m.values.get(f.name, "")
        allowed = rule.allowed.get(f.name)
        bad = not v or (allowed and fold(v) not in allowed) or (
            f.name in vague_fields and any(p.field == f.name and p.code in ("too_vague", "too_short") for p in problems))
        if f.name == F_FOLLOWUP and not v:
            continue  # optional: only a 成功 report that closes a follow-up needs it
        if f.name == F_PROJECT and (bad or not v):
            v, bad = (project.name if project else m.captures.get("project", "")), False
        if bad:
            v = "/".join(allowed) if allowed else ""
        out.append((f.label, v))
    return out


# ---------------------------------------------------------------------------
# replies in a report's thread
# ---------------------------------------------------------------------------


def _new_report_in_thread(ctx: Context, ticket: Ticket, rule: Rule, values: dict[str, str]) -> bool:
    """A report subject on a reply in ``ticket``'s thread: a new report, which
    refers to the follow-up of that thread. False if the subject is not one."""
    hit = rule.check(remove_ticket_token(ctx.mail.subject_norm).strip(), ctx.sender, [])
    if hit is None:
        return False
    ctx.match = Match(rule, hit[0], [*hit[1], Decision("new_report_in_thread", {"number": ticket.number})],
                      values, rule.validate(values, ctx.sender))
    process_report(ctx, thread=ticket)
    return True


@reply_hook
def report_in_followup_thread(ctx: Context, ticket: Ticket) -> bool:
    """A presales' new report sent in a follow-up's thread (a reply to its
    handover, reminder or notice, or its [#token] in the subject): recorded as
    a report that refers to that follow-up. Anything else is left to the
    follow-up's own reply handler."""
    if ticket.kind != fu.KIND or ctx.rules is None or ctx.match is not None:
        return False
    rule = ctx.rules.by_name.get((ticket.data or {}).get("rule") or "customer_report")
    if rule is None or rule.action != "record_report":
        return False
    sender = ctx.sender
    if sender is None or (rule.validate_sender_roles and not sender.roles & set(rule.validate_sender_roles)):
        return False
    values = rule.extractor.extract(ctx.mail.body)
    if not (values.get(F_RESULT) and len(values) >= 2) or handled_before(ctx):
        return False
    return _new_report_in_thread(ctx, ticket, rule, values)


@on_reply(KIND)
def report_reply(ctx: Context, ticket: Ticket) -> None:
    """Sales answering, the engineer resending a corrected report, a new report
    written as a reply, or the 第一售前 saying 已解决."""
    if not enter_thread(ctx, ticket, "customer_report"):
        return
    rule = ctx.match.rule
    values = rule.extractor.extract(ctx.mail.body)
    is_engineer = ctx.sender is not None and (not rule.validate_sender_roles
                                              or ctx.sender.roles & set(rule.validate_sender_roles))
    has_fields = bool(values.get(F_RESULT)) and len(values) >= 2

    # 是 / 不是 in answer to 「您是不是指…」.
    if ticket.state == UNCONFIRMED and _confirm_project(ctx, ticket, rule):
        return

    # A corrected report in answer to a rejection (same sender, body filled in).
    if (ticket.state in (REJECTED, UNREGISTERED, UNCONFIRMED) and is_engineer and has_fields
            and ctx.sender.name == (ticket.data or {}).get("sender")):
        ctx.match = Match(rule, dict((ticket.data or {}).get("captures", {})),
                          [Decision("resubmission", {"number": ticket.number})], values, rule.validate(values, ctx.sender))
        process_report(ctx, previous=ticket)
        return

    # A new report sent as a reply to an earlier one (new customer contact, art. 18).
    if is_engineer and has_fields and _new_report_in_thread(ctx, ticket, rule, values):
        return

    # The 第一售前 saying 已解决 in the report's thread closes its follow-up.
    fnum = (ticket.data or {}).get("followup")
    if fnum:
        ft = ctx.repo.ticket_by_token(fnum)
        if ft is not None and fu.try_close_by_reply(ctx, ft):
            return

    add_note(ctx, ticket)
    ctx.decide("not_a_new_record", number=ticket.number)

