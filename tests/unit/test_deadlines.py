"""processor/deadlines.py: a sales' 时间要求 as a moment in the system zone."""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

import pytest

from processor.deadlines import parse

CST = timezone(timedelta(hours=8))
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=CST)


@pytest.mark.parametrize("text,want", [
    ("12月5日前", datetime(2026, 12, 5, 18, 0, tzinfo=CST)),
    ("请于2026年12月5日之前完成", datetime(2026, 12, 5, 18, 0, tzinfo=CST)),
    ("2026-12-05 09:30", datetime(2026, 12, 5, 9, 30, tzinfo=CST)),
    ("１２月５日下午3点前", datetime(2026, 12, 5, 15, 0, tzinfo=CST)),  # full-width digits
    ("11/25 12:00", datetime(2026, 11, 25, 12, 0, tzinfo=CST)),
    ("1月8日", datetime(2027, 1, 8, 18, 0, tzinfo=CST)),  # written in November: next January
])
def test_dates_people_write(text, want):
    got = parse(text, NOW, "Asia/Shanghai")
    assert got == want and got.utcoffset() == timedelta(hours=8)


@pytest.mark.parametrize("text", ["", "尽快", "下周", "13月40日"])
def test_no_date_no_deadline(text):
    assert parse(text, NOW, "Asia/Shanghai") is None


def test_the_end_of_the_working_day_is_configurable():
    assert parse("12月5日", NOW, "Asia/Shanghai", time(17, 30)).time() == time(17, 30)
