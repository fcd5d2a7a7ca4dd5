"""``run.py report bugs``: every internal bug feedback (art. 8) with its
number, product, summary, sender, date and whether the system had to send it
on to testers or presales missing from To/Cc."""
from __future__ import annotations

from . import report


@report("bugs")
def _bugs(rt, args):
    from datetime import datetime

    from sqlalchemy import select

    from ..store.models import Ticket
    from . import _local, _month_range, _state_name
    start, end = _month_range(rt, args.month)
    rows = []
    with rt.store.reader() as s:
        for t in s.scalars(select(Ticket).where(Ticket.kind == "bug").order_by(Ticket.id)):
            d = t.data or {}
            when = datetime.fromisoformat(d["date"]) if d.get("date") else t.opened_at
            if start is not None and not (start <= when < end):
                continue
            if args.presales and t.owner != args.presales:
                continue
            added = [*d.get("forwarded_to", []), *d.get("forwarded_cc", [])]
            rows.append([t.number, d.get("product", ""), d.get("summary", ""), d.get("sender", ""), _local(rt, when),
                         _state_name(rt, t.kind, t.state), d.get("type", ""),
                         ("是" if d.get("routing_repaired") else "否") if t.state == "recorded" else "",
                         "、".join(added)])
    return (["编号", "产品", "简述", "发件人", "日期", "状态", "问题类型", "补发", "补发给"], rows)
