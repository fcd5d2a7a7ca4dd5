"""Convention 4: 技术支持立项单 ``立项-<项目>`` (art. 9-11).

The 责任销售 files the 立项单 by mail. The rule (``rules/lixiang.toml``)
reads 项目名称, 客户, 第一售前, 第二售前 and 支持内容要求; the action
``record_lixiang`` decides what becomes of it. Every outcome is a numbered
``project`` record (``LX<year>-<n>``), like the report convention:

* sender is not a 销售 -> ``not_allowed`` (未受理), told why;
* the project was filed by another 销售 (``only_owner_updates``) -> ``not_allowed``;
* problems in the body (missing fields, a 第一售前/第二售前 who is not a 售前
  in the directory, the same person twice, vague 支持内容要求) -> ``rejected``,
  told each problem plus a fill-in body; answering with the corrected body
  resubmits;
* the directory FILE defines the project -> ``directory``: archived and
  numbered, nothing else changes, the sales is told which fields differ;
* otherwise ``accepted``: a ``ProjectRecord`` is created (or updated: same
  ``project_key``), the running directory learns it at once
  (``Directory.upsert_project``) so the mails after it in the same batch see
  it, the 第一/第二售前 get a notice (CC the sales) and the sales a 回执 with
  the record number.

PRECEDENCE. directory.toml is the admins' word and always wins: a project
the file defines (by name or alias) is used as the file says, whatever 立项
mails say about it. Such a 立项单 is still archived under its own number (it
is the sales' evidence that they filed it, art. 10), but it creates no
ProjectRecord and notifies no presales; the sales is told that the directory
entry is in force and which fields differ, and that an admin must edit
directory.toml to change them. A project known only from 立项 mails is
defined by the latest accepted 立项单 for it (same normalised name).

未立项 reminders (art. 11). A report on a project that is in neither the file
nor the store is recorded as 未立项 by ``report.py``, which then calls
``remind_unregistered``: the 销售 among the report's To/Cc get a reminder to
file the 立项单 (CC the engineer). Each reminder is kept as a ``Reminder``
row (kind ``lixiang``) with the outgoing mail's Message-ID (the queue fills
it in: ``Outgoing.stamp``), counted per
normalised project name. When a project's count reaches
``reminders_before_stop`` (default 3), the engineers who reported on it and
the 售前经理 are told once that support may stop and the delay is on sales
(a ``Reminder`` row of kind ``lixiang_stop`` marks that it was sent).
"""
from __future__ import annotations

from dataclasses import replace

from pydantic import Field

from ..directory import AmbiguousProject, Person, Project, project_key
from ..mail.subject import fold
from ..reasons import Decision, Problem
from ..rules.engine import ACTION_KINDS, Match, Rule
from ..store.models import ProjectRecord, Reminder, Ticket
from .base import Context, action, fmt_dt, mail_date, on_reply
from .routing import emails, recipients
from .settings import Flag, Roles, Settings, Words, settings_for, typed
from .thread import add_note, already_recorded, answer, enter_thread, open_submission, update_data

KIND = "project"
RULE = "lixiang"
ACCEPTED, REJECTED, NOT_ALLOWED, DIRECTORY = "accepted", "rejected", "not_allowed", "directory"
F_PROJECT, F_CUSTOMER, F_P1, F_P2, F_CONTENT = "project", "customer", "presales1", "presales2", "content"
REMINDER, STOP = "lixiang", "lixiang_stop"


@settings_for("record_lixiang")
class LixiangSettings(Settings):
    # Art. 11: after this many reminders about a project with no 立项, the
    # engineer(s) and the 售前经理 are told (once) that support may stop.
    reminders_before_stop: int = Field(3, ge=1, description="≥ 1 的整数（次）")
    # Send the reminder to the salespeople among the report's To/Cc.
    remind_sales: Flag = True
    # Cc the engineer who sent the report on the reminder.
    reminder_cc_engineer: Flag = True
    # Roles Cc'd on the "support may stop" notice.
    stop_notice_roles: Roles = ("售前经理",)
    # A 第二售前 written as one of these counts as not given.
    none_words: Words = ("无", "暂无", "没有", "待定", "未定", "-", "/")
    # Only the project's salesperson may update a project created by a 立项单.
    only_owner_updates: Flag = True


# Directory fields compared when the file wins, with their Chinese labels.
COMPARED = (("sales", "责任销售"), ("customer", "客户"), ("presales1", "第一售前"), ("presales2", "第二售前"))


ACTION_KINDS["record_lixiang"] = (KIND,)


def lixiang_rule(ctx: Context) -> Rule | None:
    return ctx.rules.by_name.get(RULE) if ctx.rules is not None else None


def settings(ctx: Context) -> LixiangSettings:
    """The matched 立项 rule's settings; under another rule (the 未立项 path
    runs under the report rule) the lixiang rule's, overlaid by ``[workflows.lixiang]``."""
    return typed(ctx, LixiangSettings, RULE)


def _template(ctx: Context, role: str, default: str) -> str:
    rule = lixiang_rule(ctx)
    return rule.templates.get(role, default) if rule is not None else default


def unregistered_key(name: str) -> str:
    """The key reminders are counted under: the directory's project_key, with
    the traditional 項目 suffix dropped as well."""
    n = (name or "").strip()
    if n.endswith("項目") and len(n) > 2:
        n = n[:-2]
    return project_key(n)


def clean_name(name: str) -> str:
    """A project name as stored: trimmed, without a trailing 项目."""
    n = " ".join(fold(name or "").split()).strip("“”\"'《》 ")
    for suffix in ("项目", "項目"):
        if n.endswith(suffix) and len(n) > len(suffix):
            n = n[: -len(suffix)].strip()
    return n


# ---------------------------------------------------------------------------
# 未立项 reminders (called by report.py for a report on an unknown project)
# ---------------------------------------------------------------------------


def remind_unregistered(ctx: Context, name: str, record: Ticket) -> None:
    """Remind the sales named in the report's recipients to file the 立项单;
    at the threshold tell the engineers and the 售前经理 that support may stop.
    What it did is added to the message's outcome (``ctx.did``)."""
    st = settings(ctx)
    if not st.remind_sales or not (name or "").strip() or ctx.sender is None:
        return
    try:
        ctx.directory.project(name)
    except AmbiguousProject:
        ctx.did("lixiang_reminder_skipped_ambiguous")
        return
    key = unregistered_key(name)
    if not key:
        return
    engineer = ctx.sender
    sales = [p for p in (ctx.directory.by_email(a) for a in sorted(recipients(ctx)))
             if p is not None and "销售" in p.roles and p.name != engineer.name]
    sales = list({p.name: p for p in sales}.values())
    if not sales:
        ctx.did("lixiang_reminder_no_sales")
        return
    ordinal = len(_reminders(ctx, REMINDER, key)) + 1
    threshold = st.reminders_before_stop
    cc = [engineer.email] if st.reminder_cc_engineer else []
    to = emails(sales)
    out = ctx.send(_template(ctx, "reminder", "lixiang_reminder"), to=to, cc=[e for e in cc if e not in to],
                   reply_to=[engineer.email], ticket=record, kind="notice", record=record, project_name=name,
                   engineer=engineer, sales_names="、".join(p.name for p in sales), ordinal=ordinal,
                   threshold=threshold, fill_in=_blank_form(ctx, name))
    rem = Reminder(kind=REMINDER, project=name, project_key=key, ordinal=ordinal, to_addrs=to, engineer=engineer.name,
                   message=ctx.message.id, created_at=ctx.now)
    ctx.repo.add(rem)
    out.stamp.append(rem)  # gets the reminder mail's Message-ID when it is queued
    ctx.audit("reminder", key, "lixiang_reminder", project=name, ordinal=ordinal, to=to, report=record.number)
    update_data(record, lixiang_reminder=ordinal)
    ctx.did("lixiang_reminder_sent", ordinal=ordinal, names=[p.name for p in sales])

    stopped = _reminders(ctx, STOP, key)
    if ordinal >= threshold and not stopped:
        _stop_notice(ctx, st, name, key, record, ordinal, threshold)


def _reminders(ctx: Context, kind: str, key: str) -> list[Reminder]:
    """The project's reminders of ``kind``: its reminders and its stop notice
    are read in one query."""
    return ctx.repo.rows(Reminder, load_by=("project_key",), kind=kind, project_key=key)


def _stop_notice(ctx: Context, st: LixiangSettings, name: str, key: str, record: Ticket, count: int, threshold: int) -> None:
    reminders = sorted(_reminders(ctx, REMINDER, key), key=lambda r: (r.ordinal, r.id))
    engineers = [p for p in (ctx.directory.by_name(n) for n in dict.fromkeys(r.engineer for r in reminders)) if p]
    if ctx.sender is not None and ctx.sender.name not in {p.name for p in engineers}:
        engineers.append(ctx.sender)
    to = emails(engineers)
    managers = [p for r in st.stop_notice_roles for p in ctx.directory.with_role(r)]
    cc = [e for e in emails(managers) if e not in to]
    rows = [{"ordinal": r.ordinal, "date": fmt_dt(ctx, r.created_at), "to": "、".join(
        (ctx.directory.by_email(a).name if ctx.directory.by_email(a) else a) for a in (r.to_addrs or [])),
        "engineer": r.engineer} for r in reminders]
    out = ctx.send(_template(ctx, "stop", "lixiang_stop"), to=to, cc=cc, ticket=record, kind="notice",
                   record=record, project_name=name, count=count, threshold=threshold, reminders=rows,
                   sales_names="、".join(dict.fromkeys(x["to"] for x in rows)))
    rem = Reminder(kind=STOP, project=name, project_key=key, ordinal=count, to_addrs=to + cc,
                   engineer=ctx.sender.name if ctx.sender else "", message=ctx.message.id, created_at=ctx.now)
    ctx.repo.add(rem)
    out.stamp.append(rem)
    ctx.audit("reminder", key, "lixiang_stop_notice", project=name, count=count, to=to, cc=cc)
    ctx.did("lixiang_stop_notice_sent", threshold=threshold)


def _blank_form(ctx: Context, name: str) -> list[tuple[str, str]]:
    rule = lixiang_rule(ctx)
    labels = {f.name: f.label for f in rule.fields} if rule is not None else {}
    return [(labels.get(F_PROJECT, "项目名称"), clean_name(name)), (labels.get(F_CUSTOMER, "客户"), ""),
            (labels.get(F_P1, "第一售前"), ""), (labels.get(F_P2, "第二售前"), ""),
            (labels.get(F_CONTENT, "支持内容要求"), "")]


def reminder_count(ctx: Context, name: str) -> int:
    return len(_reminders(ctx, REMINDER, unregistered_key(name)))


# ---------------------------------------------------------------------------
# the 立项单
# ---------------------------------------------------------------------------


@action("record_lixiang")
def record_lixiang(ctx: Context) -> None:
    process_lixiang(ctx)


def process_lixiang(ctx: Context, previous: Ticket | None = None) -> None:
    m = ctx.match
    rule = m.rule
    if already_recorded(ctx, KIND):
        return
    st = settings(ctx)
    sender = ctx.sender
    roles = rule.validate_sender_roles or ("销售",)
    v = {k: val.strip() for k, val in m.values.items()}
    subject_name = clean_name(m.captures.get("project", ""))
    if sender is not None and subject_name.endswith(f"-{sender.name}"):
        subject_name = clean_name(subject_name[: -len(sender.name) - 1])  # 立项-XX项目-销售名字
    name = clean_name(v.get(F_PROJECT, "")) or subject_name
    if sender is None or not sender.roles & set(roles):
        _not_allowed(ctx, name, previous, reason="role", roles="/".join(roles))
        return
    # The engine's advice on vague text is about reports; a 立项单 says what support is needed.
    problems = [replace(p, code="too_vague_request") if p.code == "too_vague" else p for p in m.problems]
    bad: set[str] = set()
    if not name:
        problems.append(Problem("lixiang_project_missing", F_PROJECT, {"label": rule.label(F_PROJECT)}))
        bad.add(F_PROJECT)
    elif subject_name and project_key(subject_name) != project_key(name) and not _same_project(ctx, subject_name, name):
        problems.append(Problem("lixiang_project_mismatch", F_PROJECT,
                                {"project": subject_name, "label": rule.label(F_PROJECT), "value": name}))
    p1 = _presales(ctx, rule, F_P1, v.get(F_P1, ""), problems, bad)
    p2_text = v.get(F_P2, "")
    if fold(p2_text) in {fold(w) for w in st.none_words}:
        p2_text = ""
    p2 = _presales(ctx, rule, F_P2, p2_text, problems, bad) if p2_text else None
    if p1 is not None and p2 is not None and p1.name == p2.name:
        problems.append(Problem("presales_same", F_P2,
                                {"label": rule.label(F_P2), "other_label": rule.label(F_P1), "name": p1.name}))
        bad.add(F_P2)
    current: Project | None = None
    if name:
        try:
            current = ctx.directory.project(name)
        except AmbiguousProject as e:
            problems.append(Problem("lixiang_ambiguous_project", F_PROJECT, {"name": name, "candidates": list(e.candidates)}))
            bad.add(F_PROJECT)
    record = _record_for(ctx, name) if name else None
    if (record is not None and record.sales and record.sales != sender.name
            and (current is None or current.source != "directory") and st.only_owner_updates):
        _not_allowed(ctx, name, previous, reason="other_sales", filed_by=record.sales, record_number=record.number)
        return
    if problems:
        _rejected(ctx, name, problems, bad, previous)
        return
    values = {"name": name, "customer": v.get(F_CUSTOMER, ""), "sales": sender.name, "presales1": p1.name,
              "presales2": p2.name if p2 else "", "content": v.get(F_CONTENT, "")}
    if current is not None and current.source == "directory":
        _directory_wins(ctx, current, values, previous)
        return
    _accepted(ctx, values, record, previous)


def _presales(ctx: Context, rule: Rule, field: str, text: str, problems: list[Problem], bad: set[str]) -> Person | None:
    """The person a 第一/第二售前 field names: a 售前 in the directory, by name as written."""
    if not text:
        return None  # a missing 第一售前 is already a `required` problem
    who = text.strip().rstrip("。.，,；;").strip()
    label = rule.label(field)
    person = ctx.directory.by_name(who)
    known = [p.name for p in ctx.directory.with_role("售前")]
    if person is None:
        problems.append(Problem("presales_unknown", field, {"label": label, "value": who, "known": known}))
    elif "售前" not in person.roles:
        problems.append(Problem("presales_not_presales", field, {"label": label, "name": person.name, "known": known}))
    else:
        return person
    bad.add(field)
    return None


def _same_project(ctx: Context, a: str, b: str) -> bool:
    """Do two spellings name one known project (e.g. a name and its alias)?"""
    try:
        pa, pb = ctx.directory.project(a), ctx.directory.project(b)
    except AmbiguousProject:
        return False
    return pa is not None and pb is not None and pa.name == pb.name


def _record_for(ctx: Context, name: str) -> ProjectRecord | None:
    return next(iter(ctx.repo.rows(ProjectRecord, key=project_key(name))), None)


def _ticket(ctx: Context, state: str, *, project: str, owner: str, previous: Ticket | None, **data) -> Ticket:
    return open_submission(ctx, KIND, state, project=project, owner=owner, previous=previous, audit_as="lixiang", **data)


def _labels(rule: Rule) -> dict[str, str]:
    return {f.name: f.label for f in rule.fields}


def _not_allowed(ctx: Context, name: str, previous: Ticket | None, *, reason: str, **extra) -> None:
    t = _ticket(ctx, NOT_ALLOWED, project=name, owner="", previous=previous, reason=reason, **extra)
    answer(ctx, "not_allowed", "lixiang_not_allowed", ticket=t, record=t, reason=reason, project_name=name, **extra)
    if reason == "role":
        ctx.decide("lixiang_not_allowed_role", number=t.number, roles=extra.get("roles", "").split("/"))
    else:
        ctx.decide("lixiang_not_allowed_other_sales", number=t.number, filed_by=extra.get("filed_by", ""),
                   record_number=extra.get("record_number", ""))


def _rejected(ctx: Context, name: str, problems: list[Problem], bad: set[str], previous: Ticket | None) -> None:
    texts = ctx.texts(problems)
    t = _ticket(ctx, REJECTED, project=name, owner="", previous=previous, problems=texts)
    answer(ctx, "rejected", "lixiang_rejected", ticket=t, record=t, project_name=name, problems=texts,
           fill_in=_fill_in(ctx.match, name, problems, bad))
    ctx.decide("rejected", problems, number=t.number, count=len(problems))


def _fill_in(m: Match, name: str, problems: list[Problem], bad: set[str]) -> list[tuple[str, str]]:
    out = []
    for f in m.rule.fields:
        val = (m.values.get(f.name) or "").strip()
        if f.name == F_PROJECT:
            out.append((f.label, name if F_PROJECT not in bad else ""))
            continue
        if f.name in bad or any(p.field == f.name for p in problems):
            val = ""
        out.append((f.label, val))
    return out


def _directory_wins(ctx: Context, current: Project, values: dict, previous: Ticket | None) -> None:
    """The file defines the project: archive the 立项单, change nothing, say what differs."""
    diffs = []
    for attr, label in COMPARED:
        filed, ours = getattr(current, attr) or "", values[attr] or ""
        if fold(filed) != fold(ours):
            diffs.append({"label": label, "directory": filed or "（空）", "lixiang": ours or "（空）"})
    t = _ticket(ctx, DIRECTORY, project=current.name, owner=current.presales1, previous=previous,
                lixiang={k: val for k, val in values.items()}, differences=[d["label"] for d in diffs])
    answer(ctx, "directory", "lixiang_directory", ticket=t, record=t, project=current, values=values,
           differences=diffs, directory_file=ctx.directory.source)
    ctx.decide("lixiang_directory_wins", number=t.number, project=current.name)
    if diffs:
        ctx.did("lixiang_differences", labels=[d["label"] for d in diffs])


def _accepted(ctx: Context, values: dict, record: ProjectRecord | None, previous: Ticket | None) -> None:
    created = record is None
    before = {} if created else {"customer": record.customer, "sales": record.sales, "presales1": record.presales1,
                                 "presales2": record.presales2, "content": record.content, "number": record.number}
    name = values["name"] if created else record.name
    t = _ticket(ctx, ACCEPTED, project=name, owner=values["presales1"], previous=previous,
                change="created" if created else "updated", lixiang=dict(values), before=before)
    if created:
        record = ProjectRecord(name=name, key=project_key(name), aliases=[], customer=values["customer"],
                               sales=values["sales"], presales1=values["presales1"], presales2=values["presales2"],
                               status="active", content=values["content"], number=t.number, message=ctx.message.id,
                               created_at=ctx.now, updated_at=ctx.now)
        ctx.repo.add(record)
    else:
        record.customer, record.sales = values["customer"], values["sales"]
        record.presales1, record.presales2 = values["presales1"], values["presales2"]
        record.content, record.number, record.status = values["content"], t.number, "active"
        record.message, record.updated_at = ctx.message.id, ctx.now
    # In place: the mails after this one in the same batch see the project. The
    # directory is the batch's own copy (``Runtime.refresh_projects``), rebuilt
    # from the store after a rollback.
    project = ctx.directory.upsert_project(Project(record.name, tuple(record.aliases or ()), record.sales,
                                                   record.presales1, record.presales2, "active", record.customer,
                                                   source="立项"))
    ctx.audit("project", record.name, "project_created" if created else "project_updated", number=t.number,
              sales=record.sales, presales1=record.presales1, presales2=record.presales2)
    changes = [] if created else [
        {"label": label, "before": before.get(attr) or "（空）", "after": values[attr] or "（空）"}
        for attr, label in (*COMPARED, ("content", "支持内容要求")) if (before.get(attr) or "") != (values[attr] or "")]

    sales = ctx.sender
    p1 = ctx.directory.by_name(record.presales1)
    p2 = ctx.directory.by_name(record.presales2) if record.presales2 else None
    # Presales dropped by an update are told too.
    dropped = [p for p in (ctx.directory.by_name(before.get("presales1", "")), ctx.directory.by_name(before.get("presales2", "")))
               if p is not None and p.name not in (record.presales1, record.presales2)]
    common = dict(record=t, project=project, values=values, labels=_labels(ctx.match.rule), created=created,
                  changes=changes, previous_number=before.get("number", ""), sales=sales, presales1=p1, presales2=p2,
                  dropped=[p.name for p in dropped], date=fmt_dt(ctx, mail_date(ctx)))
    to = emails([p1, p2])
    ctx.send(ctx.template("notice", "lixiang_notice"), to=to,
             cc=[e for e in emails([sales, *dropped]) if e not in to], reply_to=[sales.email], ticket=t,
             kind="notice", **common)
    answer(ctx, "ack", "lixiang_ack", ticket=t, reminders=reminder_count(ctx, record.name), **common)
    ctx.decide("lixiang_created" if created else "lixiang_updated", number=t.number, project=record.name,
               presales1=record.presales1)
    if record.presales2:
        ctx.did("second_presales", name=record.presales2)


# ---------------------------------------------------------------------------
# replies in a 立项单's thread
# ---------------------------------------------------------------------------


@on_reply(KIND)
def lixiang_reply(ctx: Context, ticket: Ticket) -> None:
    """A corrected 立项单 sent as an answer (to a rejection, or to update the
    project); anything else is logged in the thread."""
    if not enter_thread(ctx, ticket, RULE):
        return
    rule = ctx.match.rule
    values = rule.extractor.extract(ctx.mail.body)
    roles = set(rule.validate_sender_roles or ("销售",))
    is_sales = ctx.sender is not None and bool(ctx.sender.roles & roles)
    if is_sales and values.get(F_P1) and values.get(F_CONTENT):
        ctx.match = Match(rule, dict((ticket.data or {}).get("captures", {})),
                          [Decision("resubmission", {"number": ticket.number})], values, rule.validate(values, ctx.sender))
        process_lixiang(ctx, previous=ticket)
        return
    add_note(ctx, ticket)
    ctx.decide("not_a_new_record", number=ticket.number)
