"""``report projects`` and ``report reminders`` (立项, art. 9-11).

``projects``: every project the system knows, with where it comes from
(通讯录 = directory.toml, 立项 = a 立项单 mail; the file wins for a project it
defines), plus the projects that exist only as 未立项 reports, each with the
number of 立项 reminders sent to sales and whether the "support may stop"
notice went out. ``reminders``: each reminder kept as evidence, with the
Message-ID and delivery state of the mail.
"""
from __future__ import annotations

from . import _local, _month_range, report

_REMINDER_KINDS = {"lixiang": "立项提醒（发给销售）", "lixiang_stop": "可停止支持通知"}


def _reminder_stats(s):
    from sqlalchemy import select

    from ..store.models import Reminder
    stats: dict[str, dict] = {}
    for r in s.scalars(select(Reminder).order_by(Reminder.id)):
        e = stats.setdefault(r.project_key, {"count": 0, "stop": False, "name": r.project, "last": None})
        if r.kind == "lixiang":
            e["count"] += 1
            e["name"] = r.project
            e["last"] = r.created_at
        elif r.kind == "lixiang_stop":
            e["stop"] = True
    return stats


@report("projects")
def _projects(rt, args):
    """Projects with their source; 未立项 projects with their reminder counts."""
    from sqlalchemy import select

    from ..directory import project_key
    from ..store.models import ProjectRecord
    from ..workflows.lixiang import unregistered_key

    with rt.store.reader() as s:
        recs = list(s.scalars(select(ProjectRecord).order_by(ProjectRecord.id)))
        stats = _reminder_stats(s)
    file_keys: dict[str, str] = {}
    for p in rt.file_directory.projects:
        for n in (p.name, *p.aliases):
            file_keys[project_key(n)] = p.name
    used: set[str] = set()

    def reminders(*names):
        keys = {k for n in names for k in (project_key(n), unregistered_key(n))}
        used.update(keys)
        hits = [stats[k] for k in keys if k in stats]
        return sum(h["count"] for h in hits), any(h["stop"] for h in hits)

    def wanted(p1, p2):
        return not args.presales or args.presales in (p1, p2)

    rows = []
    for p in rt.file_directory.projects:
        n, stop = reminders(p.name, *p.aliases)
        if wanted(p.presales1, p.presales2):
            rows.append([p.name, "通讯录", p.sales, p.presales1, p.presales2, p.customer, p.status, "", n,
                         "是" if stop else ""])
    for r in recs:
        n, stop = reminders(r.name, *(r.aliases or []))
        shadowed = r.key in file_keys
        if wanted(r.presales1, r.presales2):
            rows.append([r.name, f"立项（通讯录的“{file_keys[r.key]}”优先，未生效）" if shadowed else "立项", r.sales,
                         r.presales1, r.presales2, r.customer, r.status, r.number, n, "是" if stop else ""])
    if not args.presales:
        for key, e in stats.items():
            if key in used or key in file_keys:
                continue
            rows.append([e["name"], "未立项", "", "", "", "", "", "", e["count"], "是" if e["stop"] else ""])
    return (["项目", "来源", "责任销售", "第一售前", "第二售前", "客户", "状态", "立项单号", "未立项提醒次数",
             "已通知可停止支持"], rows)


@report("reminders")
def _reminders(rt, args):
    """Every 立项 reminder and "support may stop" notice, as evidence."""
    from sqlalchemy import select

    from ..store.models import Outbox, Reminder
    start, end = _month_range(rt, args.month)
    with rt.store.reader() as s:
        q = select(Reminder, Outbox.status).outerjoin(Outbox, Outbox.message_id == Reminder.outbox_message_id)
        if start is not None:
            q = q.where(Reminder.created_at >= start, Reminder.created_at < end)
        if args.presales:
            q = q.where(Reminder.engineer == args.presales)
        rows = s.execute(q.order_by(Reminder.id)).all()
    return (["时间", "类型", "项目", "第几次", "收件人", "技服人员", "邮件Message-ID", "发送状态"],
            [[_local(rt, r.created_at), _REMINDER_KINDS.get(r.kind, r.kind), r.project, r.ordinal,
              ",".join(r.to_addrs or []), r.engineer, r.outbox_message_id, status or ""] for r, status in rows])
