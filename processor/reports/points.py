"""``run.py report points [--month YYYY-MM] [--format ...]``: the telecom
contract's penalty points per person, when ``[sla] points = true``.

- overdue fault: -5 per breached clock of a fault record (recorded by the SLA
  check in the ``points`` table, once per record);
- verified complaint: -2 per complaint counted against the person;
- late document: -1 per 支持记录 (the 第二售前's record to the 第一售前, art. 16)
  mailed more than ``[sla] document_days`` working days after the support
  date, against its sender; and -1 per document (文档审核单, 实施文档确认单,
  项目实施工作单) whose sales' 时间要求 ran out before it was done (its
  ``deadline`` clock breached, sla.py), against the engineer who owed it.
"""
from __future__ import annotations

import sys
from datetime import date, datetime, timedelta

from sqlalchemy import select

from ..sla import DEADLINE
from ..store.models import Breach, Points, Ticket
from . import _month_range, report


@report("points")
def _points(rt, args):
    if not rt.cfg.sla.points:
        print("扣分制度未启用（配置 [sla] points = true 后开始记录）。", file=sys.stderr)
        return HEADERS, []
    start, end = _month_range(rt, getattr(args, "month", None))
    per: dict[str, list[int]] = {}
    with rt.store.reader() as s:
        q = select(Points)
        if start is not None:
            q = q.where(Points.at >= start, Points.at < end)
        for p in s.scalars(q):
            if p.reason == "overdue_fault":
                per.setdefault(p.person, [0, 0, 0])[0] += 1
        q = select(Ticket).where(Ticket.kind == "complaint", Ticket.state == "counted")
        if start is not None:
            q = q.where(Ticket.opened_at >= start, Ticket.opened_at < end)
        for t in s.scalars(q):
            per.setdefault(t.owner, [0, 0, 0])[1] += 1
        q = select(Ticket).where(Ticket.kind == "support_record", Ticket.state == "accepted")
        if start is not None:
            q = q.where(Ticket.opened_at >= start, Ticket.opened_at < end)
        cal = rt.sla.calendar(None, "work")
        for t in s.scalars(q):
            d = t.data or {}
            try:
                support = date.fromisoformat(d["support_date"])
                mailed = datetime.fromisoformat(d["date"]).astimezone(rt.tz).date()
            except (KeyError, ValueError):
                continue
            days = sum(cal.is_working_day(support + timedelta(days=i)) for i in range(1, (mailed - support).days + 1))
            if days > rt.cfg.sla.document_days:
                per.setdefault(d.get("reporter") or t.owner, [0, 0, 0])[2] += 1
        q = select(Breach).where(Breach.clock == DEADLINE)
        if start is not None:
            q = q.where(Breach.breached_at >= start, Breach.breached_at < end)
        for b in s.scalars(q):
            per.setdefault(b.person or "（未指定）", [0, 0, 0])[2] += 1
    rows = [[who, f, c, late, -5 * f - 2 * c - late] for who, (f, c, late) in per.items()]
    rows.sort(key=lambda r: (r[4], r[0]))
    return HEADERS, rows


HEADERS = ["人员", "超时故障(-5)", "有效投诉(-2)", "迟交记录(-1)", "合计"]
