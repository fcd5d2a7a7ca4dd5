"""``run.py report sla [--month YYYY-MM] [--presales NAME] [--format ...]``:
response and resolution times per person, from the SLA clocks.

A clock counts in the month (system time zone) it stopped in; only stopped
``response`` (首次响应) and ``resolution`` (解决) clocks count. Its time is
measured as the clock itself measures it (working hours on a working-hours
clock, less any paused time), shown in hours with one decimal. Per person (the clock's owner): how many, the median (一半的…在…内) and the 90th
percentile (九成的…在…内) (nearest rank: the smallest time that at least 90 % of the clocks
stayed within), and the breaches (超时, ``sla_breaches``) recorded against
the person in the month: of response, of resolution, and of any clock
(including update and workflow step clocks).
"""
from __future__ import annotations

import math
import statistics

from sqlalchemy import select

from . import _month_range, report

# In words a manager reads: the median is "half were within", the 90th
# percentile "nine in ten were within".
HEADERS = ["人员", "首次响应次数", "一半的响应在(小时)内", "九成的响应在(小时)内", "解决次数", "一半的解决在(小时)内",
           "九成的解决在(小时)内", "响应超时", "解决超时", "超时合计"]


def p90(values: list[float]) -> float:
    """Nearest-rank 90th percentile."""
    v = sorted(values)
    return v[max(0, math.ceil(0.9 * len(v)) - 1)]


def _hours(x: float | None) -> str:
    return "" if x is None else f"{x:.1f}"


def sla_stats(rt, month: str | None = None, presales: str | None = None) -> dict[str, dict]:
    """{person: {"response": [hours], "resolution": [hours], "breaches": {clock: n}}}."""
    from ..store.models import Breach, Clock

    start, end = _month_range(rt, month)
    per: dict[str, dict] = {}

    def entry(who: str) -> dict:
        return per.setdefault(who or "（未指定）", {"response": [], "resolution": [], "breaches": {}})

    with rt.store.reader() as s:
        q = select(Clock).where(Clock.name.in_(("response", "resolution")), Clock.status == "stopped",
                                Clock.stopped_at.is_not(None))
        if start is not None:
            q = q.where(Clock.stopped_at >= start, Clock.stopped_at < end)
        if presales:
            q = q.where(Clock.owner == presales)
        for c in s.scalars(q.order_by(Clock.id)):
            entry(c.owner)[c.name].append(rt.sla.elapsed(c, c.stopped_at) / 60)
        q = select(Breach)
        if start is not None:
            q = q.where(Breach.breached_at >= start, Breach.breached_at < end)
        if presales:
            q = q.where(Breach.person == presales)
        for b in s.scalars(q.order_by(Breach.id)):
            br = entry(b.person)["breaches"]
            br[b.clock] = br.get(b.clock, 0) + 1
    return per


@report("sla")
def _sla(rt, args):
    rows = []
    for who, e in sorted(sla_stats(rt, args.month, args.presales).items()):
        resp, res, br = e["response"], e["resolution"], e["breaches"]
        rows.append([who, len(resp), _hours(statistics.median(resp) if resp else None), _hours(p90(resp) if resp else None),
                     len(res), _hours(statistics.median(res) if res else None), _hours(p90(res) if res else None),
                     br.get("response", 0), br.get("resolution", 0), sum(br.values())])
    return HEADERS, rows
