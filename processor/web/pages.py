"""What each page shows: plain data for the templates in ``templates/web/``.

Record kinds, states and clock names come from the declared lifecycles
(``rt.rules.lifecycles``) and ``processor.sla``; the SLA, complaint, 未立项
and 项目跟踪表 figures come from the report functions of ``processor.reports``,
so the web view shows what ``run.py report ...`` prints. Every function takes
the viewer and returns only what that viewer may see (``access``).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace

from sqlalchemy import func, or_, select

from ..reports import REPORTS
from ..sla import CLOCK_NAMES
from ..statuses import CLOCK, MESSAGE, OUTBOX, name as status_name
from ..store.models import Attachment, Audit, Clock, Message, Outbox, OutboxContent, Quarantine, Reminder, ThreadLink, Ticket
from . import access
from .access import Viewer

MAX_ROWS = 500  # rows a list shows at most
MAX_TEXT = 20000  # characters of one mail shown


def report_args(month: str | None = None, presales: str | None = None, open_: bool = False):
    return SimpleNamespace(month=month, presales=presales, open=open_, format="table", wide=False, out=None)


def local(rt, dt, fmt="%Y-%m-%d %H:%M") -> str:
    return dt.astimezone(rt.tz).strftime(fmt) if dt is not None else ""


def this_month(rt, now: datetime) -> str:
    return now.astimezone(rt.tz).strftime("%Y-%m")


def _visible(rt, viewer: Viewer, rows) -> list[Ticket]:
    """(Ticket, opener address) rows -> the tickets the viewer may see."""
    return [t for t, addr in rows if access.can_see(rt, viewer, t, addr or "")]


def _ticket_query():
    return select(Ticket, Message.from_addr).outerjoin(Message, Message.id == Ticket.opened_by_message)


def clock_name(rt, ticket_kind: str, clock_name_: str) -> str:
    if clock_name_ in CLOCK_NAMES:
        return CLOCK_NAMES[clock_name_]
    if clock_name_.startswith("step:"):
        return f"“{rt.rules.lifecycles.state_name(ticket_kind, clock_name_[5:])}”环节"
    return clock_name_


def owner_text(rt, owner: str) -> str:
    """A clock's owner: a person's name, or a role with the people who hold it (研发经理：郑经理)."""
    from ..directory import ROLES
    if owner in ROLES:
        names = [p.name for p in rt.directory.with_role(owner)]
        return f"{owner}：{'、'.join(names)}" if names else owner
    return owner


@dataclass
class ClockRow:
    number: str
    kind: str
    clock: str
    owner: str
    due: str
    overdue: bool
    elapsed_pct: int


def _clock_rows(rt, s, viewer: Viewer, now: datetime, ticket_ids=None) -> list[ClockRow]:
    """Running clocks past ``prebreach_fraction`` of their target, or overdue, most urgent first."""
    q = select(Clock, Ticket, Message.from_addr).join(Ticket, Ticket.id == Clock.ticket_id).outerjoin(
        Message, Message.id == Ticket.opened_by_message).where(Clock.status == "running")
    if ticket_ids is not None:
        q = q.where(Clock.ticket_id.in_(ticket_ids))
    out = []
    frac = rt.cfg.sla.prebreach_fraction
    for c, t, addr in s.execute(q.order_by(Clock.due_at).limit(5 * MAX_ROWS)).all():
        if not access.can_see(rt, viewer, t, addr or ""):
            continue
        el = rt.sla.elapsed(c, now)
        overdue = c.breached_at is not None or el >= c.target_minutes
        if ticket_ids is None and not overdue and el < frac * c.target_minutes:
            continue
        out.append(ClockRow(t.number, rt.rules.lifecycles.label(t.kind), clock_name(rt, t.kind, c.name), owner_text(rt, c.owner),
                            local(rt, c.due_at), overdue, int(100 * el / c.target_minutes) if c.target_minutes else 0))
    out.sort(key=lambda r: (not r.overdue, -r.elapsed_pct))
    return out[:MAX_ROWS]


def dashboard(rt, viewer: Viewer, now: datetime) -> dict:
    from .. import heartbeat
    lcs = rt.rules.lifecycles
    with rt.store.reader() as s:
        rt.refresh_projects(s)
        open_states = {(lc.kind, st) for lc in lcs for st in lc.open_states}
        kinds = sorted({k for k, _ in open_states})
        rows = s.execute(_ticket_query().where(Ticket.kind.in_(kinds), Ticket.closed_at.is_(None))).all()
        counts: dict[tuple[str, str], int] = {}
        for t in _visible(rt, viewer, rows):
            if (t.kind, t.state) in open_states:
                counts[(t.kind, t.state)] = counts.get((t.kind, t.state), 0) + 1
        by_kind = []
        for lc in lcs:
            states = [(st, lc.name(st), counts.get((lc.kind, st), 0)) for st in lc.open_states]
            total = sum(n for _, _, n in states)
            if total:
                by_kind.append({"kind": lc.kind, "label": lc.label, "states": states, "total": total})
        clocks = _clock_rows(rt, s, viewer, now)
        quarantine = s.scalar(select(func.count()).select_from(Quarantine).where(Quarantine.status == "open"))
        beats = heartbeat.read(s)
        mine = set(s.scalars(select(Reminder.project_key).where(Reminder.engineer == viewer.name)))
    month = this_month(rt, now)
    headers, crow = REPORTS["complaints"](rt, report_args(month))
    complaints = [r for r in crow if access.can_see_person(viewer, r[0])]
    ph, prow = REPORTS["projects"](rt, report_args())
    from ..directory import project_key
    from ..workflows.lixiang import unregistered_key
    unregistered = [r for r in prow if r[1] == "未立项" and (viewer.see_all or
                    {project_key(r[0]), unregistered_key(r[0])} & mine)]
    last_ok = max((b["ok_at"] for b in beats.values() if b["ok_at"]), default=None)
    return {"by_kind": by_kind, "clocks": clocks, "complaint_headers": headers, "complaints": complaints,
            "month": month, "unregistered": unregistered, "quarantine": quarantine if viewer.see_all else None,
            "intake_age": _age(now - last_ok) if last_ok else "从未成功收取",
            "intake": [{"account": a, "connected": b["connected"], "ok_at": local(rt, b["ok_at"]), "error": b["error"]}
                       for a, b in sorted(beats.items())]}


def _age(d: timedelta) -> str:
    secs = max(0, int(d.total_seconds()))
    if secs < 60:
        return f"{secs} 秒前"
    if secs < 3600:
        return f"{secs // 60} 分钟前"
    if secs < 86400:
        return f"{secs // 3600} 小时 {secs % 3600 // 60} 分钟前"
    return f"{secs // 86400} 天前"


def _labels(rt) -> dict[str, str]:
    """Field name -> the label staff write (from the rules), plus the lifecycles' party names."""
    out: dict[str, str] = {}
    for rule in rt.rules.rules:
        for f in rule.fields:
            out.setdefault(f.name, f.label)
    for lc in rt.rules.lifecycles:
        for k, v in lc.parties.items():
            out.setdefault(k, v)
    return out


def _fields(rt, ticket: Ticket) -> list[tuple[str, str]]:
    """The record's fields as staff wrote them: the data keys that have a label in the rules
    (or are a party of the lifecycle); internal keys (times, rule names) are left out."""
    labels = _labels(rt)
    data = ticket.data or {}
    out: list[tuple[str, str]] = []
    values = data.get("values") if isinstance(data.get("values"), dict) else {}
    for k, v in [*data.items(), *values.items()]:
        if k not in labels or v in (None, "", [], {}) or isinstance(v, (dict, list)):
            continue
        item = (labels[k], str(v)[:2000])
        if item not in out:
            out.append(item)
    return out


def record(rt, viewer: Viewer, number: str, now: datetime) -> dict | None:
    """The record page, or None when it does not exist or the viewer may not see it (the same answer)."""
    lcs = rt.rules.lifecycles
    with rt.store.reader() as s:
        rt.refresh_projects(s)
        row = s.execute(_ticket_query().where(Ticket.number == number[:40])).first()
        if row is None or not access.can_see(rt, viewer, row[0], row[1] or ""):
            return None
        t = row[0]
        clocks = []
        for c in s.scalars(select(Clock).where(Clock.ticket_id == t.id).order_by(Clock.id)):
            clocks.append({"name": clock_name(rt, t.kind, c.name), "owner": owner_text(rt, c.owner),
                           "status": status_name(CLOCK, c.status),
                           "started": local(rt, c.started_at), "due": local(rt, c.due_at),
                           "stopped": local(rt, c.stopped_at), "breached": local(rt, c.breached_at),
                           "elapsed_h": f"{rt.sla.elapsed(c, now) / 60:.1f}", "target_h": f"{c.target_minutes / 60:.1f}"})
        hist = []
        for a, subj, code, params in s.execute(
                select(Audit, Message.subject, Message.outcome_code, Message.outcome_params)
                .outerjoin(Message, Message.id == Audit.message)
                .where(Audit.entity_id == t.number).order_by(Audit.at, Audit.id).limit(MAX_ROWS)):
            line = {"at": local(rt, a.at, "%Y-%m-%d %H:%M:%S"), "action": _action(rt, t.kind, a, code, params),
                    "actor": a.actor, "mail": subj or "", "message": a.message}
            if hist and a.message is not None and all(hist[-1][k] == line[k] for k in ("action", "message", "actor")):
                continue  # several audit rows of one mail told by that mail's one outcome
            hist.append(line)
        # Mails in: the opener and every mail linked to the thread; out: the outbox rows linked to it.
        links = list(s.scalars(select(ThreadLink.message_id).where(ThreadLink.ticket_id == t.id)))
        conds = [Message.id == t.opened_by_message] if t.opened_by_message else []
        if links:
            conds.append(Message.message_id.in_(links))
        ins = list(s.scalars(select(Message).where(or_(*conds), Message.duplicate_of.is_(None))
                             .order_by(Message.received_at, Message.id).limit(MAX_ROWS))) if conds else []
        outs = list(s.execute(select(Outbox, OutboxContent).outerjoin(Outbox.content)
                              .where(Outbox.message_id.in_(links)).order_by(Outbox.id).limit(MAX_ROWS))) \
            if links else []
        files = list(s.scalars(select(Attachment).where(Attachment.ticket_id == t.id).order_by(Attachment.id)))
    mails = [{"dir": "收到", "at": local(rt, m.received_at), "from": f"{m.from_name} <{m.from_addr}>".strip(),
              "to": ", ".join([*(m.to_addrs or []), *(m.cc_addrs or [])]), "subject": m.subject,
              "status": status_name(MESSAGE, m.status), "text": (m.body or m.text or "")[:MAX_TEXT], "id": m.id,
              "sort": m.received_at} for m in ins]
    mails += [{"dir": "发出", "at": local(rt, o.created_at), "from": o.mail_from,
               "to": ", ".join([*(o.to_addrs or []), *(o.cc_addrs or [])]), "subject": o.subject,
               "status": status_name(OUTBOX, o.status), "text": _outbox_text(c)[:MAX_TEXT], "id": None,
               "sort": o.created_at} for o, c in outs]
    mails.sort(key=lambda m: m["sort"])
    return {"t": t, "label": lcs.label(t.kind), "state": lcs.state_name(t.kind, t.state),
            "final": lcs.is_final(t.kind, t.state), "fields": _fields(rt, t), "clocks": clocks, "history": hist,
            "mails": mails, "files": [{"id": f.id, "name": f.filename, "size": f.size, "kept": bool(f.sha256)}
                                      for f in files],
            "opened": local(rt, t.opened_at), "due": local(rt, t.due_at), "closed": local(rt, t.closed_at)}


def _action(rt, kind: str, a: Audit, code: str | None = None, params: dict | None = None) -> str:
    """An audit line in words: a state change names both states (their declared Chinese names);
    another change is told by the outcome of the mail that caused it (templates/messages.toml)."""
    d = a.detail or {}
    if a.action.startswith("state:") and "->" in a.action:
        old, new = a.action[6:].split("->", 1)
        names = rt.rules.lifecycles
        cmd = f"（{d['command']}）" if d.get("command") else ""
        return f"{names.state_name(kind, old)} → {names.state_name(kind, new)}{cmd}"
    if code:
        try:
            return rt.messages.outcome(code, params)
        except Exception:  # a wording an admin broke: the code still says what happened
            pass
    extra = d.get("command") or d.get("state") or ""
    return a.action + (f"（{extra}）" if extra else "")


def _outbox_text(c: OutboxContent | None) -> str:
    """The plain-text part of a queued mail: its draft's, or its bytes'."""
    from email import policy
    from email.parser import BytesParser
    if c is None:
        return ""
    if c.draft is not None:
        return str(c.draft.get("text", ""))
    try:
        msg = BytesParser(policy=policy.default).parsebytes(c.raw or b"")
        part = msg.get_body(preferencelist=("plain",))
        return part.get_content().replace("\r\n", "\n") if part is not None else ""
    except Exception:
        return ""


def attachment(rt, viewer: Viewer, att_id: int) -> tuple[str, str, bytes] | None:
    """(filename, type, bytes) of a kept attachment of a record the viewer may see, else None."""
    with rt.store.reader() as s:
        rt.refresh_projects(s)
        a = s.get(Attachment, att_id)
        if a is None or not a.sha256:
            return None
        row = s.execute(_ticket_query().where(Ticket.id == a.ticket_id)).first()
        if row is None or not access.can_see(rt, viewer, row[0], row[1] or ""):
            return None
        name, ctype, sha = a.filename, a.content_type, a.sha256
    data = rt.raw.get(sha) if rt.raw.has(sha) else None
    return (name, ctype, data) if data is not None else None


def listing(rt, viewer: Viewer, kind: str, state: str) -> list[dict]:
    """The visible records of one kind in one state (the dashboard's counts link here)."""
    with rt.store.reader() as s:
        rt.refresh_projects(s)
        found = s.execute(_ticket_query().where(Ticket.kind == kind[:50], Ticket.state == state[:30])
                          .order_by(Ticket.id.desc()).limit(5 * MAX_ROWS)).all()
        return _rows(rt, _visible(rt, viewer, found)[:MAX_ROWS])


def _rows(rt, tickets) -> list[dict]:
    lcs = rt.rules.lifecycles
    return [{"number": t.number, "label": lcs.label(t.kind), "project": t.project, "owner": t.owner,
             "state": lcs.state_name(t.kind, t.state), "opened": local(rt, t.opened_at),
             "subject": (t.opened_by.subject if t.opened_by_message else "")} for t in tickets]


def search(rt, viewer: Viewer, q: str) -> list[dict]:
    """Records by number, project, person (owner, parties) or words in the subject or fields."""
    q = " ".join((q or "").split())[:100]
    if not q:
        return []
    like = f"%{q}%"
    with rt.store.reader() as s:
        rt.refresh_projects(s)
        from sqlalchemy import String, cast
        found = s.execute(_ticket_query().where(or_(
            Ticket.number.ilike(like), Ticket.project.ilike(like), Ticket.owner.ilike(like),
            Message.subject.ilike(like), cast(Ticket.data, String).ilike(like),
            Ticket.id.in_(select(ThreadLink.ticket_id).join(Message, Message.message_id == ThreadLink.message_id)
                          .where(or_(Message.subject.ilike(like), Message.body.ilike(like)))),
        )).order_by(Ticket.id.desc()).limit(5 * MAX_ROWS)).all()
        # JSON is stored with \\u escapes on some backends: match the words in Python too.
        if len(found) < MAX_ROWS:
            seen = {t.id for t, _ in found}
            for t, addr in s.execute(_ticket_query().order_by(Ticket.id.desc()).limit(5000)).all():
                if t.id not in seen and any(isinstance(v, str) and q in v for v in _flat(t.data)):
                    found.append((t, addr))
        return _rows(rt, _visible(rt, viewer, found)[:MAX_ROWS])


def _flat(v):
    if isinstance(v, dict):
        for x in v.values():
            yield from _flat(x)
    elif isinstance(v, list):
        for x in v:
            yield from _flat(x)
    else:
        yield v


def person_report(rt, viewer: Viewer, kind: str, month: str | None, presales: str | None):
    """(headers, rows) of ``report <kind>`` (tracking, sla, complaints) limited to what the viewer may see:
    a person who is not in a see-all role sees their own rows only."""
    if not viewer.see_all:
        presales = viewer.name
    headers, rows = REPORTS[kind](rt, report_args(month, presales or None))
    return headers, [r for r in rows if access.can_see_person(viewer, str(r[0]))]


def engineers(rt) -> list[str]:
    return [p.name for p in rt.directory.with_role("售前")]
