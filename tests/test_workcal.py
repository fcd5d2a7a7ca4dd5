"""The working calendar for SLA clocks (processor/workcal.py).

Expected dates are written out by hand from the official 2026 schedule and
checked against chinesecalendar first, so a wrong package release (or a wrong
expectation) shows up as such rather than as a calendar bug.
"""
from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest

from processor.config import ConfigError
from processor.workcal import Overrides, WorkCalendar, YearSchedule, coverage_warnings, load_holidays

ROOT = Path(__file__).resolve().parent.parent
SH = ZoneInfo("Asia/Shanghai")
UTC = timezone.utc


def sh(y, m, d, hh=0, mm=0, ss=0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, tzinfo=SH)


def days(a: date, b: date):
    d = a
    while d <= b:
        yield d
        d += timedelta(days=1)


@pytest.fixture
def cal() -> WorkCalendar:
    return WorkCalendar()


def write(tmp_path, text: str) -> Path:
    p = tmp_path / "holidays.toml"
    p.write_text(text, encoding="utf-8")
    return p


# --------------------------------------------------------------------------
# 2026 schedule, written by hand and verified against chinesecalendar
# --------------------------------------------------------------------------

# 春节 2026: off Sun 15 Feb – Mon 23 Feb (9 days); 调休 Saturdays 14 and 28 Feb.
SPRING_OFF = set(days(date(2026, 2, 15), date(2026, 2, 23)))
SPRING_WORK = {date(2026, 2, 14), date(2026, 2, 28)}
FEB_2026_WORKING = [date(2026, 2, d) for d in (2, 3, 4, 5, 6, 9, 10, 11, 12, 13, 14, 24, 25, 26, 27, 28)]

# 中秋节 Fri 25 – Sun 27 Sep, 国庆节 Thu 1 – Wed 7 Oct; 调休 Sun 20 Sep and Sat 10 Oct.
AUTUMN_OFF = set(days(date(2026, 9, 25), date(2026, 9, 27))) | set(days(date(2026, 10, 1), date(2026, 10, 7)))
AUTUMN_WORK = {date(2026, 9, 20), date(2026, 10, 10)}
SEP14_OCT16_WORKING = (
    [date(2026, 9, d) for d in (14, 15, 16, 17, 18, 20, 21, 22, 23, 24, 28, 29, 30)]
    + [date(2026, 10, d) for d in (8, 9, 10, 12, 13, 14, 15, 16)]
)


def test_hand_written_2026_schedule_matches_chinesecalendar():
    for d in SPRING_OFF | AUTUMN_OFF:
        assert chinese_calendar.is_holiday(d), d
    for d in SPRING_WORK | AUTUMN_WORK:
        assert d.weekday() >= 5 and chinese_calendar.is_workday(d), d
    assert [d for d in days(date(2026, 2, 1), date(2026, 2, 28)) if chinese_calendar.is_workday(d)] == FEB_2026_WORKING
    assert [d for d in days(date(2026, 9, 14), date(2026, 10, 16))
            if chinese_calendar.is_workday(d)] == SEP14_OCT16_WORKING
    # 248 working days in 2026 (261 weekdays - 19 weekday holidays + 6 调休 days).
    assert sum(chinese_calendar.is_workday(d) for d in days(date(2026, 1, 1), date(2026, 12, 31))) == 248


def test_spring_festival_2026_working_days(cal):
    assert [d for d in days(date(2026, 2, 1), date(2026, 2, 28)) if cal.is_working_day(d)] == FEB_2026_WORKING
    assert not cal.is_working_day(date(2026, 2, 16))       # Monday in the block
    assert not cal.is_working_day(date(2026, 2, 23))       # last day of the block, a Monday
    assert cal.is_working_day(date(2026, 2, 14))           # 调休 Saturday
    assert cal.is_working_day(date(2026, 2, 28))           # 调休 Saturday


def test_national_day_2026_working_days(cal):
    assert [d for d in days(date(2026, 9, 14), date(2026, 10, 16)) if cal.is_working_day(d)] == SEP14_OCT16_WORKING
    assert cal.is_working_day(date(2026, 9, 20))           # 调休 Sunday
    assert cal.is_working_day(date(2026, 10, 10))          # 调休 Saturday
    assert not cal.is_working_day(date(2026, 10, 11))      # ordinary Sunday


def test_working_minutes_over_2026_is_248_days(cal):
    assert cal.working_minutes(sh(2026, 1, 1), sh(2027, 1, 1)) == 248 * 540 == 133920


# --------------------------------------------------------------------------
# add(): working hours
# --------------------------------------------------------------------------

def test_friday_1700_plus_2_hours_is_monday_1000(cal):
    assert cal.add(sh(2026, 3, 6, 17), hours=2) == sh(2026, 3, 9, 10)


def test_last_hour_of_the_day_ends_at_1800_same_day(cal):
    assert cal.add(sh(2026, 3, 6, 17), hours=1) == sh(2026, 3, 6, 18)


def test_add_within_one_day_and_over_several_days(cal):
    assert cal.add(sh(2026, 3, 4, 9), hours=9) == sh(2026, 3, 4, 18)
    assert cal.add(sh(2026, 3, 4, 10), hours=9) == sh(2026, 3, 5, 10)
    assert cal.add(sh(2026, 3, 4, 10, 15), hours=1.5) == sh(2026, 3, 4, 11, 45)
    assert cal.add(sh(2026, 3, 2, 9), hours=45) == sh(2026, 3, 6, 18)   # one full week
    assert cal.add(sh(2026, 3, 2, 9), hours=46) == sh(2026, 3, 9, 10)
    assert cal.add(sh(2026, 3, 4, 10), minutes=30) == sh(2026, 3, 4, 10, 30)
    assert cal.add(sh(2026, 3, 4, 10), hours=1, minutes=30) == sh(2026, 3, 4, 11, 30)


def test_add_outside_hours_starts_at_next_opening(cal):
    assert cal.add(sh(2026, 3, 4, 7), hours=1) == sh(2026, 3, 4, 10)      # before opening
    assert cal.add(sh(2026, 3, 4, 20), hours=1) == sh(2026, 3, 5, 10)     # after closing
    assert cal.add(sh(2026, 3, 7, 10), hours=2) == sh(2026, 3, 9, 11)     # Saturday


def test_add_zero_returns_t_in_calendar_zone(cal):
    t = datetime(2026, 3, 7, 2, tzinfo=UTC)   # a Saturday, out of service
    r = cal.add(t)
    assert r == t and r.tzinfo == SH and r.hour == 10


def test_crossing_the_spring_festival_block(cal):
    # Friday before: next working day is the 调休 Saturday.
    assert cal.add(sh(2026, 2, 13, 17), hours=2) == sh(2026, 2, 14, 10)
    # From the 调休 Saturday across the nine days off.
    assert cal.add(sh(2026, 2, 14, 17), hours=2) == sh(2026, 2, 24, 10)
    assert cal.add(sh(2026, 2, 15, 10), hours=1) == sh(2026, 2, 24, 10)
    assert cal.working_minutes(sh(2026, 2, 14, 9), sh(2026, 2, 24, 18)) == 2 * 540


def test_crossing_national_day_block(cal):
    assert cal.add(sh(2026, 9, 30, 17), hours=2) == sh(2026, 10, 8, 10)
    assert cal.add(sh(2026, 9, 24, 17), hours=2) == sh(2026, 9, 28, 10)   # over 中秋节
    assert cal.add(sh(2026, 10, 9, 17), hours=2) == sh(2026, 10, 10, 10)  # 调休 Saturday
    assert cal.add(sh(2026, 9, 18, 17), hours=2) == sh(2026, 9, 20, 10)   # 调休 Sunday


def test_tiaoxiu_saturday_counts_as_working_day(cal):
    assert cal.in_service(sh(2026, 2, 28, 10))
    assert cal.working_minutes(sh(2026, 2, 28), sh(2026, 3, 1)) == 540
    assert cal.working_minutes(sh(2026, 2, 21), sh(2026, 2, 22)) == 0    # Saturday inside the block
    assert cal.working_minutes(sh(2026, 3, 7), sh(2026, 3, 8)) == 0      # ordinary Saturday


# --------------------------------------------------------------------------
# add(): working days
# --------------------------------------------------------------------------

def test_add_days_same_clock_time_on_nth_working_day(cal):
    assert cal.add(sh(2026, 3, 4, 10, 30), days=1) == sh(2026, 3, 5, 10, 30)
    assert cal.add(sh(2026, 3, 6, 15), days=1) == sh(2026, 3, 9, 15)
    assert cal.add(sh(2026, 2, 13, 10), days=1) == sh(2026, 2, 14, 10)   # 调休 Saturday
    assert cal.add(sh(2026, 2, 13, 10), days=2) == sh(2026, 2, 24, 10)
    assert cal.add(sh(2026, 9, 30, 11), days=3) == sh(2026, 10, 10, 11)
    assert cal.add(sh(2026, 3, 4, 10), days=0) == sh(2026, 3, 4, 10)


def test_add_days_from_a_day_off_counts_from_the_next_working_day(cal):
    assert cal.add(sh(2026, 3, 7, 10), days=1) == sh(2026, 3, 9, 10)     # Saturday -> Monday
    assert cal.add(sh(2026, 2, 18, 10), days=1) == sh(2026, 2, 24, 10)   # inside 春节


def test_add_days_clamps_into_working_hours(cal):
    assert cal.add(sh(2026, 3, 4, 7, 30), days=1) == sh(2026, 3, 5, 9)
    assert cal.add(sh(2026, 3, 4, 20), days=1) == sh(2026, 3, 5, 18)
    assert cal.add(sh(2026, 3, 4, 18), days=1) == sh(2026, 3, 5, 18)
    # Clamped times have the same working minutes as a full working day.
    assert cal.working_minutes(sh(2026, 3, 4, 20), cal.add(sh(2026, 3, 4, 20), days=1)) == 540
    assert cal.working_minutes(sh(2026, 3, 4, 7, 30), cal.add(sh(2026, 3, 4, 7, 30), days=1)) == 540


def test_add_days_then_hours(cal):
    assert cal.add(sh(2026, 3, 6, 17), days=1, hours=2) == sh(2026, 3, 10, 10)
    assert cal.add(sh(2026, 3, 4, 20), days=1, hours=1) == sh(2026, 3, 6, 10)


# --------------------------------------------------------------------------
# Lunch break
# --------------------------------------------------------------------------

@pytest.fixture
def lunch_cal() -> WorkCalendar:
    return WorkCalendar(lunch=(time(12), time(13)))


def test_lunch_break(lunch_cal):
    c = lunch_cal
    assert c.working_minutes(sh(2026, 3, 4, 9), sh(2026, 3, 4, 18)) == 480
    assert c.working_minutes(sh(2026, 3, 4, 11, 30), sh(2026, 3, 4, 13, 30)) == 60
    assert c.add(sh(2026, 3, 4, 11, 30), hours=1) == sh(2026, 3, 4, 13, 30)
    assert c.add(sh(2026, 3, 4, 11), hours=1) == sh(2026, 3, 4, 12)
    assert c.add(sh(2026, 3, 4, 12, 30), hours=1) == sh(2026, 3, 4, 14)
    assert c.add(sh(2026, 3, 6, 17), hours=2) == sh(2026, 3, 9, 10)
    assert c.add(sh(2026, 3, 4, 12, 30), days=1) == sh(2026, 3, 5, 12)
    assert c.working_minutes(sh(2026, 3, 4, 12, 30), sh(2026, 3, 5, 12)) == 480
    assert c.in_service(sh(2026, 3, 4, 11, 59))
    assert not c.in_service(sh(2026, 3, 4, 12))
    assert not c.in_service(sh(2026, 3, 4, 12, 59))
    assert c.in_service(sh(2026, 3, 4, 13))


def test_custom_hours():
    c = WorkCalendar("Asia/Shanghai", start=time(8, 30), end=time(17, 30))
    assert c.add(sh(2026, 3, 6, 17), hours=1) == sh(2026, 3, 9, 9)
    assert c.working_minutes(sh(2026, 3, 4), sh(2026, 3, 5)) == 540
    assert c.in_service(sh(2026, 3, 4, 8, 30)) and not c.in_service(sh(2026, 3, 4, 17, 30))


# --------------------------------------------------------------------------
# in_service
# --------------------------------------------------------------------------

def test_in_service_boundaries(cal):
    assert cal.in_service(sh(2026, 3, 4, 9))
    assert not cal.in_service(sh(2026, 3, 4, 8, 59, 59))
    assert cal.in_service(sh(2026, 3, 4, 17, 59, 59))
    assert not cal.in_service(sh(2026, 3, 4, 18))
    assert not cal.in_service(sh(2026, 3, 4, 0))
    assert not cal.in_service(sh(2026, 3, 7, 10))        # Saturday
    assert not cal.in_service(sh(2026, 2, 17, 10))       # 春节
    assert cal.in_service(sh(2026, 2, 14, 9))            # 调休 Saturday
    assert cal.in_service(sh(2026, 9, 20, 17, 59))       # 调休 Sunday
    assert not cal.in_service(sh(2026, 10, 1, 10))       # 国庆节


# --------------------------------------------------------------------------
# working_minutes
# --------------------------------------------------------------------------

def test_working_minutes_basic_and_symmetric_cases(cal):
    a, b = sh(2026, 3, 4, 10), sh(2026, 3, 4, 11, 30)
    assert cal.working_minutes(a, b) == 90
    assert cal.working_minutes(b, a) == 0
    assert cal.working_minutes(a, a) == 0
    assert isinstance(cal.working_minutes(a, b), int)
    assert cal.working_minutes(sh(2026, 3, 4, 10), sh(2026, 3, 4, 10, 0, 30)) == 0.5
    assert cal.working_minutes(sh(2026, 3, 6, 17), sh(2026, 3, 9, 10)) == 120
    assert cal.working_minutes(sh(2026, 3, 6, 20), sh(2026, 3, 9, 8)) == 0
    assert cal.working_minutes(sh(2026, 3, 2), sh(2026, 3, 9)) == 5 * 540


def test_working_minutes_is_additive_and_inverse_of_add(cal):
    points = [sh(2026, 2, 10, 8), sh(2026, 2, 13, 16, 20), sh(2026, 2, 21, 12), sh(2026, 3, 2, 9, 59),
              sh(2026, 9, 30, 17, 45), sh(2026, 10, 10, 23)]
    for a in points:
        for b in points:
            for c in points:
                if a <= b <= c:
                    assert cal.working_minutes(a, c) == cal.working_minutes(a, b) + cal.working_minutes(b, c)
    for t in points:
        for h in (0.25, 1, 2, 8, 9, 10, 40, 100):
            assert cal.working_minutes(t, cal.add(t, hours=h)) == h * 60, (t, h)


def test_working_minutes_is_efficient_over_long_spans(cal, monkeypatch):
    calls = 0
    real = cal.is_working_day

    def counting(d):
        nonlocal calls
        calls += 1
        return real(d)

    monkeypatch.setattr(cal, "is_working_day", counting)
    cal.working_minutes(sh(2016, 1, 1, 10), sh(2026, 1, 1, 10))
    assert calls <= 3654  # one look-up per day, not per minute


# --------------------------------------------------------------------------
# Time zones
# --------------------------------------------------------------------------

def test_inputs_in_utc(cal):
    t = datetime(2026, 3, 6, 9, tzinfo=UTC)                      # Friday 17:00 in Shanghai
    r = cal.add(t, hours=2)
    assert r == datetime(2026, 3, 9, 2, tzinfo=UTC) == sh(2026, 3, 9, 10)
    assert r.tzinfo == SH and (r.hour, r.minute) == (10, 0)
    assert cal.in_service(datetime(2026, 3, 4, 1, tzinfo=UTC))   # 09:00 Shanghai
    assert not cal.in_service(datetime(2026, 3, 4, 10, tzinfo=UTC))  # 18:00 Shanghai
    assert cal.working_minutes(datetime(2026, 3, 4, 0, tzinfo=UTC), datetime(2026, 3, 4, 12, tzinfo=UTC)) == 540
    # 20:00 UTC on Friday 13 Feb is 04:00 on the 调休 Saturday in Shanghai.
    late = datetime(2026, 2, 13, 20, tzinfo=UTC)
    assert not cal.in_service(late)
    assert cal.add(late, hours=1) == sh(2026, 2, 14, 10)
    assert cal.add(late, days=1) == sh(2026, 2, 24, 9)


def test_mixed_zones_and_other_offsets(cal):
    tokyo = ZoneInfo("Asia/Tokyo")
    assert cal.working_minutes(datetime(2026, 3, 4, 11, tzinfo=tokyo), datetime(2026, 3, 4, 3, tzinfo=UTC)) == 60
    assert cal.add(datetime(2026, 3, 4, 11, tzinfo=tokyo), hours=1) == sh(2026, 3, 4, 11)


def test_dst_zone_uses_wall_clock():
    berlin = ZoneInfo("Europe/Berlin")   # DST starts Sunday 2026-03-29 02:00
    c = WorkCalendar(berlin)
    assert c.add(datetime(2026, 3, 27, 17, tzinfo=berlin), hours=2) == datetime(2026, 3, 30, 10, tzinfo=berlin)
    assert c.add(datetime(2026, 3, 27, 15, tzinfo=berlin), days=1) == datetime(2026, 3, 30, 15, tzinfo=berlin)
    a = c.always(berlin)
    # 7×24 arithmetic is on the wall clock too: 01:00 + 2 h = 03:00 (one real hour later).
    assert a.add(datetime(2026, 3, 29, 1, tzinfo=berlin), hours=2) == datetime(2026, 3, 29, 3, tzinfo=berlin)
    assert a.working_minutes(datetime(2026, 3, 29, 1, tzinfo=berlin), datetime(2026, 3, 29, 3, tzinfo=berlin)) == 120
    # A wall-clock time inside the gap moves forward past it.
    r = a.add(datetime(2026, 3, 29, 1, 30, tzinfo=berlin), hours=1)
    assert r == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 02:30 does not exist: 03:30 CEST


def test_naive_datetimes_are_rejected(cal):
    naive = datetime(2026, 3, 4, 10)
    with pytest.raises(ValueError, match="aware"):
        cal.working_minutes(naive, sh(2026, 3, 5))
    with pytest.raises(ValueError, match="aware"):
        cal.working_minutes(sh(2026, 3, 3), naive)
    with pytest.raises(ValueError, match="aware"):
        cal.add(naive, hours=1)
    with pytest.raises(ValueError, match="aware"):
        cal.in_service(naive)
    with pytest.raises(ValueError, match="aware"):
        WorkCalendar.always().in_service(naive)
    with pytest.raises(ValueError, match="aware"):
        coverage_warnings(cal, naive)


def test_bad_arguments(cal):
    with pytest.raises(ValueError):
        cal.add(sh(2026, 3, 4, 10), hours=-1)
    with pytest.raises(ValueError):
        cal.add(sh(2026, 3, 4, 10), days=-1)
    with pytest.raises(ValueError):
        cal.add(sh(2026, 3, 4, 10), days=1.5)
    with pytest.raises(ValueError, match="结束时间（09:00）必须晚于开始时间（18:00）"):
        WorkCalendar(start=time(18), end=time(9))
    with pytest.raises(ValueError, match="午休时间"):
        WorkCalendar(lunch=(time(13), time(12)))
    with pytest.raises(ValueError, match="午休时间"):
        WorkCalendar(lunch=(time(8), time(10)))
    with pytest.raises(ValueError, match="未知的时区"):
        WorkCalendar("Asia/Beijing")


# --------------------------------------------------------------------------
# 7×24
# --------------------------------------------------------------------------

def test_always_mode():
    a = WorkCalendar.always("Asia/Shanghai")
    assert a.is_always
    assert a.add(sh(2026, 3, 6, 17), hours=2) == sh(2026, 3, 6, 19)
    assert a.add(sh(2026, 2, 16, 23), hours=2) == sh(2026, 2, 17, 1)
    assert a.add(sh(2026, 2, 13, 20, 15), days=3) == sh(2026, 2, 16, 20, 15)
    assert a.in_service(sh(2026, 2, 17, 3))
    assert a.in_service(sh(2026, 3, 7, 23, 59))
    assert a.working_minutes(sh(2026, 3, 7), sh(2026, 3, 8)) == 1440
    assert a.working_minutes(sh(2026, 1, 1), sh(2027, 1, 1)) == 365 * 1440
    assert a.working_minutes(sh(2026, 3, 8), sh(2026, 3, 7)) == 0
    assert a.working_minutes(datetime(2026, 3, 7, tzinfo=UTC), sh(2026, 3, 7, 9)) == 60
    assert a.missing_years([2026, 2027, 2099]) == []
    assert coverage_warnings(a, sh(2026, 6, 1)) == []
    assert repr(a) == "WorkCalendar.always('Asia/Shanghai')"


# --------------------------------------------------------------------------
# Year end 2026 -> 2027: no data, then an admin file
# --------------------------------------------------------------------------

def test_2027_without_data_falls_back_to_monday_to_friday(cal):
    assert cal.missing_years([2026, 2027]) == [2027]
    assert cal.missing_years([2027, 2025, 2027, 2028]) == [2027, 2028]
    assert cal.missing_years([2003]) == [2003]
    # 2026-12-31 is a Thursday; 2027-01-01 (Friday) counts as a working day.
    assert cal.add(sh(2026, 12, 31, 17), hours=2) == sh(2027, 1, 1, 10)
    assert cal.is_working_day(date(2027, 1, 1))
    assert not cal.is_working_day(date(2027, 1, 2))
    assert cal.working_minutes(sh(2027, 1, 1), sh(2028, 1, 1)) == 261 * 540   # weekdays of 2027


def test_2027_admin_override_changes_the_answer(tmp_path):
    p = write(tmp_path, '[overrides]\nholidays = ["2027-01-01"]\n')
    c = WorkCalendar(overrides=load_holidays(p))
    assert c.add(sh(2026, 12, 31, 17), hours=2) == sh(2027, 1, 4, 10)
    assert not c.in_service(sh(2027, 1, 1, 10))
    # A single-day override does not make the year covered.
    assert c.missing_years([2026, 2027]) == [2027]


def test_2027_year_table_covers_the_year(tmp_path):
    p = write(tmp_path, '[years.2027]\nholidays = ["2027-01-01", "2027-02-08..2027-02-10"]\n'
                        'workdays = ["2027-02-06"]\n')
    ov = load_holidays(p)
    assert ov.years[2027] == YearSchedule(
        frozenset({date(2027, 1, 1), date(2027, 2, 8), date(2027, 2, 9), date(2027, 2, 10)}),
        frozenset({date(2027, 2, 6)}))
    c = WorkCalendar(overrides=ov)
    assert c.missing_years([2026, 2027]) == []
    assert c.add(sh(2026, 12, 31, 17), hours=2) == sh(2027, 1, 4, 10)
    assert c.add(sh(2027, 2, 5, 17), hours=2) == sh(2027, 2, 6, 10)      # listed Saturday
    assert c.add(sh(2027, 2, 6, 17), hours=2) == sh(2027, 2, 11, 10)
    assert coverage_warnings(c, sh(2026, 6, 1)) == []


def test_overrides_win_over_chinesecalendar(tmp_path):
    p = write(tmp_path, '[overrides]\nholidays = ["2026-12-31"]\nworkdays = ["2026-10-07"]\n')
    c = WorkCalendar(overrides=load_holidays(p))
    assert c.in_service(sh(2026, 10, 7, 10))
    assert not c.in_service(sh(2026, 12, 31, 10))
    assert c.add(sh(2026, 12, 30, 17), hours=2) == sh(2027, 1, 1, 10)


def test_year_table_replaces_chinesecalendar_for_that_year():
    c = WorkCalendar(overrides=Overrides(years={2026: YearSchedule(frozenset({date(2026, 1, 1)}))}))
    assert not c.is_working_day(date(2026, 1, 1))
    assert c.is_working_day(date(2026, 1, 2))        # package: holiday; table: ordinary Friday
    assert not c.is_working_day(date(2026, 2, 14))   # package: 调休; table: ordinary Saturday


# --------------------------------------------------------------------------
# coverage_warnings
# --------------------------------------------------------------------------

def test_coverage_warnings(cal):
    lines = coverage_warnings(cal, sh(2026, 6, 1))
    assert len(lines) == 1
    assert lines[0].startswith("警告：2027 年（明年）没有法定节假日和调休数据")
    assert "周一至周五" in lines[0] and "[years.2027]" in lines[0] and "holidays.toml" in lines[0]
    assert "2004–2026" in lines[0]
    lines = coverage_warnings(cal, sh(2027, 3, 1))
    assert [re.match(r"警告：(\d{4}) 年（(..)）", x).groups() for x in lines] == [("2027", "今年"), ("2028", "明年")]
    assert coverage_warnings(cal, sh(2024, 6, 1)) == []
    # "This year" is taken in the calendar's zone: 17:00 UTC on 31 Dec 2026 is already 2027 in Shanghai.
    assert len(coverage_warnings(cal, datetime(2026, 12, 31, 17, tzinfo=UTC))) == 2
    assert len(coverage_warnings(cal, datetime(2026, 12, 31, 15, tzinfo=UTC))) == 1


def test_coverage_warnings_name_the_admin_file(tmp_path):
    p = write(tmp_path, "")
    lines = coverage_warnings(WorkCalendar(overrides=load_holidays(p)), sh(2026, 6, 1))
    assert f"{p} 中也没有 [years.2027]" in lines[0]


# --------------------------------------------------------------------------
# load_holidays
# --------------------------------------------------------------------------

def problems(tmp_path, text: str) -> list[tuple[str, str, str]]:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_holidays(p)
    assert all(f == str(p) for f, _, _ in e.value.problems)
    return [(k, r) for _, k, r in e.value.problems]


def test_bad_date_format(tmp_path):
    text = '[years.2027]\nholidays = ["2027-01-01", "2027-01-02", "2027-01-03", "2027-2-30"]\n'
    assert problems(tmp_path, text) == [("years.2027.holidays[3]", '日期格式应为 YYYY-MM-DD，现为 "2027-2-30"')]
    p = tmp_path / "holidays.toml"
    with pytest.raises(ConfigError) as e:
        load_holidays(p)
    assert str(e.value) == f'{p}: years.2027.holidays[3]: 日期格式应为 YYYY-MM-DD，现为 "2027-2-30"'


@pytest.mark.parametrize("text, key, reason", [
    ('[overrides]\nholidays = ["2027-02-30"]\n', "overrides.holidays[0]",
     '没有这一天（月份或日期超出范围），现为 "2027-02-30"'),
    ('[years.2027]\nholidays = ["2027-02-11..2027-02-05"]\n', "years.2027.holidays[0]",
     '日期范围的结束日期早于开始日期，现为 "2027-02-11..2027-02-05"'),
    ('[years.2027]\nholidays = ["2027-02-05..2027-2-11"]\n', "years.2027.holidays[0]",
     '日期范围 "2027-02-05..2027-2-11" 的结束日期：日期格式应为 YYYY-MM-DD，现为 "2027-2-11"'),
    ('[years.2027]\nholidays = ["2027-MM-DD..2027-MM-DD"]\n', "years.2027.holidays[0]",
     '日期范围 "2027-MM-DD..2027-MM-DD" 的开始日期：日期格式应为 YYYY-MM-DD，现为 "2027-MM-DD"'),
    ('[overrides]\nholidays = ["2027-01-01..2027-01-05..2027-01-09"]\n', "overrides.holidays[0]",
     '日期范围应写成 "开始日期..结束日期"，例如 "2027-02-05..2027-02-11"，现为 "2027-01-01..2027-01-05..2027-01-09"'),
    ('[overrides]\nholidays = ["2026-01-01..2028-01-01"]\n', "overrides.holidays[0]",
     '日期范围超过 366 天，请检查年份是否写错，现为 "2026-01-01..2028-01-01"'),
    ('[years.2027]\nholidays = ["2027-02-05..2027-02-11"]\nworkdays = ["2027-02-07"]\n', "years.2027.workdays[0]",
     "2027-02-07 同时出现在 holidays（years.2027.holidays[0]）和 workdays 中：一天只能是其中一种，请删掉一处"),
    ('[overrides]\nholidays = ["2026-12-31"]\nworkdays = ["2026-12-31"]\n', "overrides.workdays[0]",
     "2026-12-31 同时出现在 holidays（overrides.holidays[0]）和 workdays 中：一天只能是其中一种，请删掉一处"),
    ('[years.2027]\nholidays = ["2027-01-01"]\nworkdays = ["2027-02-10"]\n', "years.2027.workdays[0]",
     "2027-02-10 是星期三，本来就是工作日：workdays 只需列出调休上班的周六、周日"),
    ('[years.2027]\nholidays = ["2026-12-31..2027-01-01"]\n', "years.2027.holidays[0]",
     "2026-12-31 不在 2027 年内：[years.2027] 只能写 2027 年的日期（其他年份的单日更正写在 [overrides] 中）"),
    ('[years.2027]\nworkdays = ["2027-02-06"]\n', "years.2027.holidays",
     "缺少 holidays 或为空：请列出 2027 年所有放假的日子（含放假期间的周末）；"
     "如果 2027 年的安排还没有公布，请把整个 [years.2027] 注释掉"),
    ('[years.27]\nholidays = ["2027-01-01"]\n', "years.27", '年份必须写成四位数字，例如 [years.2027]，现为 "27"'),
    ('years = 2027\n', "years", "必须是表：每一年写成 [years.2027]，下面写 holidays = [...] 和 workdays = [...]"),
    ('[years]\n2027 = ["2027-01-01"]\n', "years.2027",
     "必须是表：[years.2027] 下面写 holidays = [...] 和 workdays = [...]"),
    ('[overrides]\nholidays = "2026-12-31"\n', "overrides.holidays",
     '必须是数组，例如 ["2027-01-01", "2027-02-05..2027-02-11"]'),
    ('[overrides]\nholidays = [20261231]\n', "overrides.holidays[0]",
     '必须是带引号的日期，例如 "2027-01-01"，或日期范围，例如 "2027-02-05..2027-02-11"'),
    ('[overrides]\nholidays = [2026-12-31T10:00:00]\n', "overrides.holidays[0]",
     "只能写日期，不能带时间，现为 2026-12-31T10:00:00"),
    ('[overrides]\nholiday = ["2026-12-31"]\n', "overrides.holiday", "未知的键（拼写错误？）：是不是 holidays？"),
    ('[override]\nholidays = ["2026-12-31"]\n', "override", "未知的键（拼写错误？）：是不是 overrides？"),
])
def test_load_errors(tmp_path, text, key, reason):
    assert problems(tmp_path, text) == [(key, reason)]


def test_all_errors_reported_at_once(tmp_path):
    text = ('[years.2027]\nholidays = ["2027-1-1", "2027-02-05..2027-02-11"]\nworkdays = ["2027-02-07", "x"]\n'
            '[overrides]\nholidays = ["2026-13-01"]\n')
    assert [k for k, _ in problems(tmp_path, text)] == [
        "years.2027.holidays[0]", "years.2027.workdays[1]", "years.2027.workdays[0]", "overrides.holidays[0]"]


def test_file_errors(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as e:
        load_holidays(missing)
    assert e.value.problems == [(str(missing), "", "找不到节假日文件（路径由配置文件中的 sla.holidays 指定）")]
    assert load_holidays(missing, missing_ok=True) == Overrides(source=str(missing))
    assert problems(tmp_path, '[overrides]\nholidays = ["2026-12-31"\n')[0][1].startswith("TOML 语法错误：")
    bad = tmp_path / "gbk.toml"
    bad.write_bytes("# 节假日\n".encode("gbk"))
    with pytest.raises(ConfigError) as e:
        load_holidays(bad)
    assert "UTF-8" in e.value.problems[0][2]


def test_load_accepts_ranges_duplicates_and_date_literals(tmp_path):
    p = write(tmp_path, '[overrides]\nholidays = ["2026-12-28..2026-12-31", 2026-12-30, "2026-12-31"]\n'
                        'workdays = [" 2026-10-07 "]\n')
    ov = load_holidays(p)
    assert ov.holidays == frozenset(days(date(2026, 12, 28), date(2026, 12, 31)))
    assert ov.workdays == frozenset({date(2026, 10, 7)})
    assert ov.years == {} and ov.source == str(p)


def test_empty_file_is_no_overrides(tmp_path):
    ov = load_holidays(write(tmp_path, ""))
    assert (ov.years, ov.holidays, ov.workdays) == ({}, frozenset(), frozenset())


# --------------------------------------------------------------------------
# The shipped holidays.toml
# --------------------------------------------------------------------------

SHIPPED = ROOT / "holidays.toml"


def _uncomment(block_header: str) -> str:
    """The commented-out block that starts with ``# [years.NNNN]``, uncommented."""
    lines = SHIPPED.read_text(encoding="utf-8").splitlines()
    start = lines.index(f"# {block_header}")
    out = []
    for line in lines[start:]:
        if not line.startswith("# ") or line == "#":
            break
        out.append(line[2:])
    return "\n".join(out) + "\n"


def test_shipped_file_is_valid_and_adds_nothing():
    ov = load_holidays(SHIPPED)
    assert (ov.years, ov.holidays, ov.workdays) == ({}, frozenset(), frozenset())


def test_shipped_2026_example_matches_chinesecalendar(tmp_path):
    c = WorkCalendar(overrides=load_holidays(write(tmp_path, _uncomment("[years.2026]"))))
    assert 2026 in c.overrides.years
    for d in days(date(2026, 1, 1), date(2026, 12, 31)):
        assert c.is_working_day(d) == chinese_calendar.is_workday(d), d


def test_shipped_2027_template_must_be_filled_in(tmp_path):
    text = _uncomment("[years.2027]")
    assert text.startswith("[years.2027]\nholidays = ")
    probs = problems(tmp_path, text)
    assert [k for k, _ in probs] == ["years.2027.holidays[0]", "years.2027.holidays[1]",
                                     "years.2027.workdays[0]", "years.2027.workdays[1]"]
    assert all("日期格式应为 YYYY-MM-DD" in r for _, r in probs)
