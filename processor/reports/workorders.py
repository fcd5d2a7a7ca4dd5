"""``run.py report workorders [--open] [--format table|csv|json]``: the
故障处理工作单 (art. 43-47), one row per order."""
from __future__ import annotations

from datetime import datetime

from . import _lifecycles, _local, report

KIND = "workorder"


@report("workorders")
def _workorders(rt, args):
    """Every work order (--open: not 已关闭 / 已转定制), with its raiser, state,
    研发负责人, when it was opened and last changed, and its attachments."""
    from sqlalchemy import func, select

    from ..store.models import Attachment, Ticket
    lc = _lifecycles(rt).get(KIND)
    final = lc.final if lc is not None else ()

    start, end = None, None
    if getattr(args, "month", None):
        from . import _month_range
        start, end = _month_range(rt, args.month)
    with rt.store.reader() as s:
        q = select(Ticket).where(Ticket.kind == KIND)
        if getattr(args, "open", False):
            q = q.where(Ticket.state.not_in(final))
        if start is not None:
            q = q.where(Ticket.opened_at >= start, Ticket.opened_at < end)
        tickets = list(s.scalars(q.order_by(Ticket.id)))
        counts = {tid: (n, over) for tid, n, over in s.execute(
            select(Attachment.ticket_id, func.count(), func.count().filter(Attachment.sha256.is_(None)))
            .where(Attachment.ticket_id.in_([t.id for t in tickets]))
            .group_by(Attachment.ticket_id))} if tickets else {}
    rows = []
    for t in tickets:
        data = t.data or {}
        if getattr(args, "presales", None) and data.get("raiser") != args.presales:
            continue
        changed = data.get("changed_at")
        try:
            changed_at = datetime.fromisoformat(changed) if changed else t.opened_at
        except ValueError:
            changed_at = t.opened_at
        n, over = counts.get(t.id, (0, 0))
        rows.append([t.number, t.project, data.get("summary", ""), data.get("raiser", ""),
                     lc.name(t.state) if lc else t.state, data.get("rd_owner", ""), _local(rt, t.opened_at),
                     _local(rt, changed_at), f"{n}（{over}个超限未保存）" if over else n])
    return (["编号", "项目", "简述", "故障提出人", "状态", "研发负责人", "开单时间", "最后变更", "附件数"], rows)
