"""``run.py report improvements``: 产品改进申请单 per project (art. 21, 22):
valid and invalid requests, net R&D days, and whether the project is over
the limit (R&D cost deducted from the sales bonus)."""
from __future__ import annotations

from decimal import Decimal

from . import report


def _limit(rt) -> Decimal:
    from ..workflows.improvement import ImprovementSettings, rd_limit
    from ..workflows.settings import for_name
    return rd_limit(for_name("improvement", rt.cfg, ImprovementSettings, rt.rules.by_name.get("improvement")))


@report("improvements")
def _improvements(rt, args):
    from sqlalchemy import select

    from ..store.models import Ticket
    from ..workflows.didyoumean import UNCONFIRMED
    from ..workflows.improvement import ACCEPTED, INVALID, REJECTED, UNREGISTERED, fmt_days, request_days
    limit = _limit(rt)
    per: dict[str, dict] = {}
    with rt.store.reader() as s:
        for t in s.scalars(select(Ticket).where(Ticket.kind == "improvement").order_by(Ticket.id)):
            if (args.presales and t.owner != args.presales) or t.state == UNCONFIRMED:
                continue  # (a project name still being asked about: counted once answered)
            label = t.project if t.state != UNREGISTERED else f"{t.project}（未立项）"
            e = per.setdefault(label, {"valid": [], "invalid": 0, "rejected": 0, "unregistered": 0,
                                       "days": Decimal(0), "notified": ""})
            if t.state == ACCEPTED:
                e["valid"].append(t.number)
                e["days"] += request_days(t)
            elif t.state == INVALID:
                e["invalid"] += 1
            elif t.state == REJECTED:
                e["rejected"] += 1
            else:
                e["unregistered"] += 1
            notice = (t.data or {}).get("over_limit_notice")
            if notice:
                e["notified"] = t.number
    return (["项目", "有效申请", "无效申请", "退回", "未立项", "研发用时（天）", "上限（天）", "超过上限", "已通知销售",
             "有效申请单"],
            [[p, len(e["valid"]), e["invalid"], e["rejected"], e["unregistered"], fmt_days(e["days"]), fmt_days(limit),
              "是" if e["days"] > limit else "", e["notified"], "、".join(e["valid"])]
             for p, e in sorted(per.items())])
