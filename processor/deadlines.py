"""A sales' time requirement (``时间要求：…``, art. 33, 42) as a point in time.

``parse("12月5日前", now, tz)`` -> that day at the end of the working day
(``end``, default 18:00) in the system zone; the year is the next
occurrence (a date already past this year is next year's). Recognised:
``2026-12-05``, ``2026/12/5``, ``2026年12月5日``, ``12月5日``, ``12-05``,
``12/5``, each optionally with a time ``18:00`` / ``18点`` / ``下午3点`` and
words such as 前 / 之前 / 以前 around them. Anything else: None (the record
keeps the text and runs no deadline clock). Pure: no I/O.
"""
from __future__ import annotations

import re
from datetime import datetime, time
from zoneinfo import ZoneInfo

from .mail.subject import fold

_DATE = re.compile(r"(?:(?P<y>\d{4})\s*[-/.年]\s*)?(?P<m>\d{1,2})\s*[-/.月]\s*(?P<d>\d{1,2})\s*[日号]?")
_TIME = re.compile(r"(?P<pm>下午|晚上)?\s*(?P<h>\d{1,2})\s*(?:[:：]\s*(?P<mi>\d{2})|[点時时])")


def day_end(cfg) -> time:
    """A deadline without a time: the end of the working day ([sla.hours] end)."""
    h, m = (int(x) for x in cfg.sla.hours.end.split(":"))
    return time(h, m)


def parse(text: str, now: datetime, tz: str, end: time = time(18, 0)) -> datetime | None:
    t = fold(text or "")
    m = _DATE.search(t)
    if m is None:
        return None
    month, day = int(m["m"]), int(m["d"])
    zone = ZoneInfo(tz)
    local_now = now.astimezone(zone)
    year = int(m["y"]) if m["y"] else local_now.year
    at = end
    tm = _TIME.search(t, m.end())
    if tm is not None:
        h = int(tm["h"]) + (12 if tm["pm"] and int(tm["h"]) < 12 else 0)
        mi = int(tm["mi"] or 0)
        if h < 24 and mi < 60:
            at = time(h, mi)
    try:
        when = datetime(year, month, day, at.hour, at.minute, tzinfo=zone)
    except ValueError:
        return None
    if not m["y"] and when < local_now and (local_now - when).days > 180:
        when = when.replace(year=year + 1)  # "1月5日" written in December: next year
    return when
