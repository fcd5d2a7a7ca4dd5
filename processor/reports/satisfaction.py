"""``run.py report satisfaction [--month YYYY-MM] [--presales NAME] [--format ...]``:
回访 results per engineer and month.

A survey counts in the month (system time zone) it was mailed. Per engineer
and month: surveys sent, answered, average and lowest score, how many low
scores reopened the record, and how many are still unanswered. Scheduled
(not yet mailed) and cancelled surveys are not counted.
"""
from __future__ import annotations

from sqlalchemy import select

from . import _month_range, report


@report("satisfaction")
def _satisfaction(rt, args):
    from ..store.models import Audit, Survey

    start, end = _month_range(rt, args.month)
    with rt.store.reader() as s:
        q = select(Survey).where(Survey.status.in_(("sent", "answered")), Survey.sent_at.is_not(None))
        if start is not None:
            q = q.where(Survey.sent_at >= start, Survey.sent_at < end)
        if args.presales:
            q = q.where(Survey.engineer == args.presales)
        surveys = list(s.scalars(q.order_by(Survey.sent_at, Survey.id)))
        reopened = set(s.scalars(select(Audit.entity_id).where(Audit.entity == "survey",
                                                               Audit.action == "survey_reopened")))
    per: dict[tuple[str, str], dict] = {}
    for sv in surveys:
        month = sv.sent_at.astimezone(rt.tz).strftime("%Y-%m")
        e = per.setdefault((sv.engineer, month), {"sent": 0, "scores": [], "reopened": 0, "open": 0})
        e["sent"] += 1
        if sv.status == "answered" and sv.score is not None:
            e["scores"].append(sv.score)
            e["reopened"] += str(sv.id) in reopened
        else:
            e["open"] += 1
    rows = []
    for (who, month), e in sorted(per.items()):
        sc = e["scores"]
        rows.append([who, month, e["sent"], len(sc), f"{sum(sc) / len(sc):.2f}" if sc else "",
                     min(sc) if sc else "", e["reopened"], e["open"]])
    return (["售前", "月份", "已发回访", "已回复", "平均分", "最低分", "低分重开", "未回复"], rows)
