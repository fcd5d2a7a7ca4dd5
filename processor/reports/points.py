"""``run.py report points [--month YYYY-MM] [--format ...]``: the telecom
contract's penalty points per person, when ``[sla] points = true``.

- overdue fault: -5 per breached clock of a fault record (recorded by the SLA
  check in the ``points`` table, once per record);
- verified complaint: -2 per complaint counted against the person;
- late or missing document: -1 each -- not counted: no record type in the
  processor tracks documents yet.
"""
from __future__ import annotations

import sys

from sqlalchemy import select

from ..store.models import Points, Ticket
from . import _month_range, report


@report("points")
def _points(rt, args):
    if not rt.cfg.sla.points:
        print("扣分制度未启用（配置 [sla] points = true 后开始记录）。", file=sys.stderr)
        return ["人员", "超时故障(-5)", "有效投诉(-2)", "合计"], []
    start, end = _month_range(rt, getattr(args, "month", None))
    per: dict[str, list[int]] = {}
    with rt.store.reader() as s:
        q = select(Points)
        if start is not None:
            q = q.where(Points.at >= start, Points.at < end)
        for p in s.scalars(q):
            if p.reason == "overdue_fault":
                per.setdefault(p.person, [0, 0])[0] += 1
        q = select(Ticket).where(Ticket.kind == "complaint", Ticket.state == "counted")
        if start is not None:
            q = q.where(Ticket.opened_at >= start, Ticket.opened_at < end)
        for t in s.scalars(q):
            per.setdefault(t.owner, [0, 0])[1] += 1
    rows = [[who, f, c, -5 * f - 2 * c] for who, (f, c) in sorted(per.items(), key=lambda kv: -5 * kv[1][0] - 2 * kv[1][1])]
    return ["人员", "超时故障(-5)", "有效投诉(-2)", "合计"], rows
