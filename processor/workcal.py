"""The working calendar that SLA clocks run on.

A :class:`WorkCalendar` knows which days are working days and which hours of
those days are working hours, and answers three questions:

* ``working_minutes(a, b)``: how many working minutes lie between two instants;
* ``add(t, hours=..., days=...)``: what time it is N working hours (or N
  working days) after ``t``;
* ``in_service(t)``: whether ``t`` falls inside working hours.

Which days are working days
---------------------------
Decided per date, first match wins:

1. ``[overrides]`` of the admin file (``holidays.toml``): single-day,
   company-specific corrections for any year (``holidays`` = day off,
   ``workdays`` = working day).
2. ``[years.YYYY]`` of the admin file, when present for that year: it is the
   complete schedule of that year and *replaces* the chinesecalendar data for
   it. Listed ``holidays`` are days off, listed ``workdays`` are make-up working
   days (调休, a Saturday or Sunday); every other day follows Monday–Friday.
3. The chinesecalendar package (Chinese public holidays and 调休).
4. **Fallback for a year with no data** (neither chinesecalendar nor a
   ``[years.YYYY]`` table): Monday–Friday are working days, Saturday and Sunday
   are not, and no public holiday or 调休 is known. ``missing_years`` and
   ``coverage_warnings`` report such years so that ``check`` and the daemon's
   start-up can warn about them.

The 7×24 calendar (``WorkCalendar.always(tz)``) ignores all of this: every
minute of every day counts.

Time arithmetic
---------------
All inputs must be time-zone-aware datetimes (naive ones raise ``ValueError``);
they may be in any zone (UTC is fine). They are converted to wall-clock time in
the calendar's zone and all arithmetic is done on that wall clock, so it is
DST-free: a working day is always ``end - start`` long and "the same clock time
on another day" means the same wall-clock reading. Results are tz-aware
datetimes in the calendar's zone (a wall-clock time that does not exist because
of a DST jump is moved forward past the jump). Working hours are the half-open
interval ``[start, end)`` minus the half-open lunch break ``[lunch_start,
lunch_end)``: 09:00 is in service, 18:00 is not.
"""
from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import chinese_calendar

from .config import ConfigError, not_utf8_reason, toml_error_reason, unknown_key_reason

__all__ = [
    "Overrides", "YearSchedule", "WorkCalendar", "load_holidays", "coverage_warnings",
    "package_years",
]

_ONE_DAY = timedelta(days=1)
_MINUTE_US = 60_000_000
# add() gives up when this many consecutive days are all days off (the admin
# file would have to declare years of holidays for this to happen).
_MAX_IDLE_DAYS = 3 * 366
# A single "a..b" range may not be longer than this (catches a mistyped year).
_MAX_RANGE_DAYS = 366
_WEEKDAYS_CN = ("星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日")


# --------------------------------------------------------------------------
# The admin file
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class YearSchedule:
    """One ``[years.YYYY]`` table: that year's complete holiday schedule."""

    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()


@dataclass(frozen=True)
class Overrides:
    """What the admin file (``holidays.toml``) adds to chinesecalendar.

    ``years`` maps a year to its complete schedule (replacing chinesecalendar
    for that year); ``holidays``/``workdays`` are single-day corrections for
    any year and win over everything else. ``source`` is the file it was read
    from (used in warnings). ``Overrides()`` is "no admin file".
    """

    years: Mapping[int, YearSchedule] = field(default_factory=dict)
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()
    source: str = ""


def _q(s: str) -> str:
    return json.dumps(s if len(s) <= 60 else s[:57] + "...", ensure_ascii=False)


_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_YEAR_RE = re.compile(r"\d{4}")


def _parse_date(s: str) -> tuple[date | None, str]:
    s = s.strip()
    if not _DATE_RE.fullmatch(s):
        return None, f"日期格式应为 YYYY-MM-DD，现为 {_q(s)}"
    try:
        return date.fromisoformat(s), ""
    except ValueError:
        return None, f"没有这一天（月份或日期超出范围），现为 {_q(s)}"


def _parse_entry(v) -> tuple[list[date], str]:
    """One array element: a date string, a "a..b" range, or a TOML date literal."""
    if isinstance(v, datetime):
        return [], f"只能写日期，不能带时间，现为 {v.isoformat()}"
    if isinstance(v, date):
        return [v], ""
    if not isinstance(v, str):
        return [], '必须是带引号的日期，例如 "2027-01-01"，或日期范围，例如 "2027-02-05..2027-02-11"'
    if ".." not in v:
        d, reason = _parse_date(v)
        return ([d] if d else []), reason
    parts = v.split("..")
    if len(parts) != 2:
        return [], f'日期范围应写成 "开始日期..结束日期"，例如 "2027-02-05..2027-02-11"，现为 {_q(v)}'
    a, ra = _parse_date(parts[0])
    if a is None:
        return [], f"日期范围 {_q(v)} 的开始日期：{ra}"
    b, rb = _parse_date(parts[1])
    if b is None:
        return [], f"日期范围 {_q(v)} 的结束日期：{rb}"
    if b < a:
        return [], f"日期范围的结束日期早于开始日期，现为 {_q(v)}"
    if (b - a).days + 1 > _MAX_RANGE_DAYS:
        return [], f"日期范围超过 {_MAX_RANGE_DAYS} 天，请检查年份是否写错，现为 {_q(v)}"
    return [a + timedelta(days=i) for i in range((b - a).days + 1)], ""


def _parse_days(file: str, prefix: str, table: dict, probs: list, year: int | None):
    """``holidays`` and ``workdays`` of one table, as {date: key of its entry}."""
    for k in table:
        if k not in ("holidays", "workdays"):
            probs.append((file, f"{prefix}.{k}", unknown_key_reason(k, ("holidays", "workdays"))))
    out: dict[str, dict[date, str]] = {"holidays": {}, "workdays": {}}
    for name in ("holidays", "workdays"):
        raw = table.get(name, [])
        key = f"{prefix}.{name}"
        if not isinstance(raw, list):
            probs.append((file, key, '必须是数组，例如 ["2027-01-01", "2027-02-05..2027-02-11"]'))
            continue
        for i, v in enumerate(raw):
            ekey = f"{key}[{i}]"
            days, reason = _parse_entry(v)
            if reason:
                probs.append((file, ekey, reason))
                continue
            if year is not None:
                stray = [d for d in days if d.year != year]
                if stray:
                    probs.append((file, ekey, f"{stray[0].isoformat()} 不在 {year} 年内："
                                  f"[years.{year}] 只能写 {year} 年的日期（其他年份的单日更正写在 [overrides] 中）"))
                    continue
                if name == "workdays":
                    weekday = [d for d in days if d.weekday() < 5]
                    if weekday:
                        d = weekday[0]
                        probs.append((file, ekey, f"{d.isoformat()} 是{_WEEKDAYS_CN[d.weekday()]}，本来就是工作日："
                                      "workdays 只需列出调休上班的周六、周日"))
                        continue
            for d in days:
                out[name].setdefault(d, ekey)
    hol, work = out["holidays"], out["workdays"]
    for d in sorted(hol.keys() & work.keys()):
        probs.append((file, work[d], f"{d.isoformat()} 同时出现在 holidays（{hol[d]}）和 workdays 中："
                      "一天只能是其中一种，请删掉一处"))
    return hol, work


def load_holidays(path: str | Path, *, missing_ok: bool = False) -> Overrides:
    """Read the admin file ``holidays.toml`` (format: see the shipped file).

    Every mistake is collected and raised together as a
    :class:`processor.config.ConfigError` of (file, key, reason) triples, e.g.
    ``holidays.toml: years.2027.holidays[3]: 日期格式应为 YYYY-MM-DD，现为 "2027-2-30"``.
    With ``missing_ok``, a missing file is the same as an empty one.
    """
    path = Path(path)
    file = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if missing_ok:
            return Overrides(source=file)
        raise ConfigError([(file, "", "找不到节假日文件（路径由配置文件中的 sla.holidays 指定）")])
    except IsADirectoryError:
        raise ConfigError([(file, "", "这是一个文件夹，不是节假日文件（应为 holidays.toml）")])
    except UnicodeDecodeError as e:
        raise ConfigError([(file, "", not_utf8_reason(e))])
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([(file, "", toml_error_reason(e))])

    probs: list[tuple[str, str, str]] = []
    for k in data:
        if k not in ("years", "overrides"):
            probs.append((file, k, unknown_key_reason(k, ("years", "overrides"))))

    years: dict[int, YearSchedule] = {}
    raw_years = data.get("years", {})
    if not isinstance(raw_years, dict):
        probs.append((file, "years", "必须是表：每一年写成 [years.2027]，下面写 holidays = [...] 和 workdays = [...]"))
        raw_years = {}
    for k, table in raw_years.items():
        prefix = f"years.{k}"
        if not _YEAR_RE.fullmatch(k):
            probs.append((file, prefix, f"年份必须写成四位数字，例如 [years.2027]，现为 {_q(k)}"))
            continue
        if not isinstance(table, dict):
            probs.append((file, prefix, f"必须是表：[years.{k}] 下面写 holidays = [...] 和 workdays = [...]"))
            continue
        year = int(k)
        if not table.get("holidays"):
            probs.append((file, f"{prefix}.holidays", f"缺少 holidays 或为空：请列出 {year} 年所有放假的日子"
                          f"（含放假期间的周末）；如果 {year} 年的安排还没有公布，请把整个 [years.{year}] 注释掉"))
        hol, work = _parse_days(file, prefix, table, probs, year)
        years[year] = YearSchedule(frozenset(hol), frozenset(work))

    raw_over = data.get("overrides", {})
    if not isinstance(raw_over, dict):
        probs.append((file, "overrides", "必须是表：[overrides] 下面写 holidays = [...] 和 workdays = [...]"))
        raw_over = {}
    hol, work = _parse_days(file, "overrides", raw_over, probs, None)

    if probs:
        raise ConfigError(probs)
    return Overrides(years=years, holidays=frozenset(hol), workdays=frozenset(work), source=file)


# --------------------------------------------------------------------------
# chinesecalendar coverage
# --------------------------------------------------------------------------

@lru_cache(maxsize=None)
def _package_covers(year: int) -> bool:
    try:
        chinese_calendar.is_workday(date(year, 6, 1))
    except NotImplementedError:
        return False
    return True


@lru_cache(maxsize=1)
def package_years() -> tuple[int, int] | None:
    """The (first, last) year the installed chinesecalendar has data for."""
    covered = [y for y in range(1990, 2201) if _package_covers(y)]
    return (covered[0], covered[-1]) if covered else None


@lru_cache(maxsize=4096)
def _package_workday(d: date) -> bool | None:
    """chinesecalendar's answer, or None when it has no data for that year
    (remembered: the package checks its arguments on every call, and a
    deadline asks about the same few days for every mail of a batch)."""
    try:
        return chinese_calendar.is_workday(d)
    except NotImplementedError:
        return None


# --------------------------------------------------------------------------
# The calendar
# --------------------------------------------------------------------------

def _zone(tz) -> ZoneInfo:
    if isinstance(tz, ZoneInfo):
        return tz
    try:
        return ZoneInfo(str(tz))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"未知的时区 {_q(str(tz))}（应为 IANA 时区名称，例如 \"Asia/Shanghai\"）") from None


def _hm(t: time) -> str:
    return t.strftime("%H:%M:%S") if t.second or t.microsecond else t.strftime("%H:%M")


class WorkCalendar:
    """Working days and hours in one time zone (see the module docstring).

    ``start``/``end`` are the daily working hours, ``lunch`` an optional
    ``(start, end)`` break inside them, ``overrides`` what ``load_holidays``
    read from the admin file. Use :meth:`always` for a 7×24 calendar.
    """

    def __init__(self, tz: str | ZoneInfo = "Asia/Shanghai", start: time = time(9), end: time = time(18),
                 lunch: tuple[time, time] | None = None, overrides: Overrides | None = None):
        self.tz = _zone(tz)
        self.start = start.replace(tzinfo=None)
        self.end = end.replace(tzinfo=None)
        self.lunch = (lunch[0].replace(tzinfo=None), lunch[1].replace(tzinfo=None)) if lunch else None
        self.overrides = overrides if overrides is not None else Overrides()
        self._always = False
        if not self.start < self.end:
            raise ValueError(f"工作时间的结束时间（{_hm(self.end)}）必须晚于开始时间（{_hm(self.start)}）")
        if self.lunch and not (self.start < self.lunch[0] < self.lunch[1] < self.end):
            raise ValueError(f"午休时间（{_hm(self.lunch[0])}–{_hm(self.lunch[1])}）必须在工作时间"
                             f"（{_hm(self.start)}–{_hm(self.end)}）之内，且结束时间晚于开始时间")
        # Working periods of a working day, as offsets from midnight.
        if self.lunch:
            spans = [(self.start, self.lunch[0]), (self.lunch[1], self.end)]
        else:
            spans = [(self.start, self.end)]
        self._spans = [(self._off(a), self._off(b)) for a, b in spans]
        self._day_length = sum((b - a for a, b in self._spans), timedelta(0))

    @classmethod
    def always(cls, tz: str | ZoneInfo = "Asia/Shanghai") -> WorkCalendar:
        """A 7×24 calendar: every minute of every day is working time."""
        cal = cls(tz)
        cal._always = True
        cal.start, cal.end, cal.lunch = time(0), time(23, 59, 59, 999999), None
        cal._spans = [(timedelta(0), _ONE_DAY)]
        cal._day_length = _ONE_DAY
        return cal

    @property
    def is_always(self) -> bool:
        return self._always

    def __repr__(self) -> str:
        if self._always:
            return f"WorkCalendar.always({self.tz.key!r})"
        lunch = f", lunch={_hm(self.lunch[0])}-{_hm(self.lunch[1])}" if self.lunch else ""
        return f"WorkCalendar({self.tz.key!r}, {_hm(self.start)}-{_hm(self.end)}{lunch})"

    # -- days ---------------------------------------------------------------

    def is_working_day(self, d: date) -> bool:
        """Whether ``d`` is a working day (precedence: see the module docstring)."""
        if isinstance(d, datetime):
            d = d.date()
        if self._always:
            return True
        ov = self.overrides
        if d in ov.holidays:
            return False
        if d in ov.workdays:
            return True
        sched = ov.years.get(d.year)
        if sched is not None:
            if d in sched.holidays:
                return False
            if d in sched.workdays:
                return True
            return d.weekday() < 5
        answer = _package_workday(d)
        if answer is None:  # no data for this year: Monday–Friday
            return d.weekday() < 5
        return answer

    def covers(self, year: int) -> bool:
        """Whether holiday data exists for ``year`` (chinesecalendar or the admin file)."""
        return self._always or year in self.overrides.years or _package_covers(year)

    def missing_years(self, years: Iterable[int]) -> list[int]:
        """The given years that have no holiday data (sorted, without duplicates).

        In those years the calendar falls back to Monday–Friday. Always empty
        for a 7×24 calendar.
        """
        return sorted({y for y in years if not self.covers(y)})

    # -- conversions ----------------------------------------------------------

    @staticmethod
    def _off(t: time) -> timedelta:
        return timedelta(hours=t.hour, minutes=t.minute, seconds=t.second, microseconds=t.microsecond)

    def _local(self, t: datetime, name: str = "t") -> datetime:
        """``t`` as naive wall-clock time in the calendar's zone."""
        if not isinstance(t, datetime):
            raise TypeError(f"{name} must be a datetime, got {type(t).__name__}")
        if t.tzinfo is None or t.utcoffset() is None:
            raise ValueError(f"{name} must be time-zone-aware, got naive {t.isoformat()}")
        return t.astimezone(self.tz).replace(tzinfo=None)

    def _aware(self, wall: datetime) -> datetime:
        """A wall-clock time back to an aware datetime (gaps move forward)."""
        aware = wall.replace(tzinfo=self.tz)
        return aware.astimezone(timezone.utc).astimezone(self.tz)

    def _periods(self, d: date) -> list[tuple[datetime, datetime]]:
        """The working periods of day ``d`` (empty on a day off), as wall-clock times."""
        if not self.is_working_day(d):
            return []
        midnight = datetime(d.year, d.month, d.day)
        return [(midnight + a, midnight + b) for a, b in self._spans]

    # -- the three questions --------------------------------------------------

    def in_service(self, t: datetime) -> bool:
        """Whether ``t`` lies in working hours of a working day (start in, end out)."""
        lt = self._local(t)
        if self._always:
            return True
        return any(a <= lt < b for a, b in self._periods(lt.date()))

    def working_minutes(self, a: datetime, b: datetime) -> int | float:
        """Working minutes between ``a`` and ``b``; 0 when ``b <= a``.

        An int when the result is a whole number of minutes, else a float.
        Iterates by day, so spans of years are cheap.
        """
        la, lb = self._local(a, "a"), self._local(b, "b")
        if b <= a or lb <= la:
            return 0
        if self._always:
            total = lb - la
        else:
            total = timedelta(0)
            first, last = la.date(), lb.date()
            d = first
            while d <= last:
                if first < d < last:
                    if self.is_working_day(d):
                        total += self._day_length
                else:
                    for s, e in self._periods(d):
                        s, e = max(s, la), min(e, lb)
                        if e > s:
                            total += e - s
                d += _ONE_DAY
        us = total // timedelta(microseconds=1)
        return us // _MINUTE_US if us % _MINUTE_US == 0 else us / _MINUTE_US

    def add(self, t: datetime, hours: float = 0, days: int = 0, *, minutes: float = 0) -> datetime:
        """What time it is ``days`` working days and then ``hours`` (+ ``minutes``) working hours after ``t``.

        Working hours: the earliest instant ``r >= t`` with
        ``working_minutes(t, r) == 60 * hours``. So a deadline that uses up a
        day's last working hour is that day's end (Friday 17:00 + 1 h = Friday
        18:00), and Friday 17:00 + 2 h = 10:00 on the next working day. Time
        outside working hours does not count: Saturday 10:00 + 2 h = 11:00 on
        the next working day. ``hours=0`` returns ``t`` (in the calendar's zone).

        Working days: "N working days after t" is the same wall-clock time as
        ``t`` on the Nth working day *after t's date* (t's own date never
        counts, even if it is a working day), clamped into working hours: a
        time before ``start`` becomes ``start``, after ``end`` becomes ``end``,
        inside the lunch break becomes the lunch break's start. (Each of these
        is the earliest instant with the same working minutes since ``t`` as the
        unclamped time would have.) ``days=0`` leaves ``t`` as it is.

        In 7×24 mode both are plain wall-clock arithmetic in the calendar's zone.
        Negative amounts raise ``ValueError``.
        """
        lt = self._local(t)
        if isinstance(days, bool) or not isinstance(days, int):
            raise ValueError(f"days must be a whole number, got {days!r}")
        if days < 0 or hours < 0 or minutes < 0:
            raise ValueError("add() only goes forward: hours, minutes and days must not be negative")
        if days:
            lt = self._add_days(lt, days)
        remaining = timedelta(hours=hours, minutes=minutes)
        if remaining:
            lt = self._add_working_time(lt, remaining)
        return self._aware(lt)

    def _add_days(self, lt: datetime, days: int) -> datetime:
        if self._always:
            return lt + timedelta(days=days)
        d = lt.date()
        idle = 0
        while days:
            d += _ONE_DAY
            if self.is_working_day(d):
                days -= 1
                idle = 0
            else:
                idle = self._idle(idle, lt)
        clock = lt.time()
        if clock < self.start:
            clock = self.start
        elif clock > self.end:
            clock = self.end
        elif self.lunch and self.lunch[0] < clock < self.lunch[1]:
            clock = self.lunch[0]
        return datetime.combine(d, clock)

    def _add_working_time(self, lt: datetime, remaining: timedelta) -> datetime:
        if self._always:
            return lt + remaining
        d = lt.date()
        idle = 0
        while True:
            periods = self._periods(d)
            if periods:
                idle = 0
                for s, e in periods:
                    s = max(s, lt)
                    if e <= s:
                        continue
                    if remaining <= e - s:
                        return s + remaining
                    remaining -= e - s
            else:
                idle = self._idle(idle, lt)
            d += _ONE_DAY

    @staticmethod
    def _idle(idle: int, lt: datetime) -> int:
        idle += 1
        if idle > _MAX_IDLE_DAYS:
            raise ValueError(f"no working day within {_MAX_IDLE_DAYS} days after {lt.date().isoformat()}: "
                             "check the holidays in holidays.toml")
        return idle


# --------------------------------------------------------------------------
# Start-up / check warnings
# --------------------------------------------------------------------------

def coverage_warnings(cal: WorkCalendar, now: datetime) -> list[str]:
    """Chinese warning lines for this year and next year when they have no holiday data.

    For ``check`` and the daemon's start-up. ``now`` must be tz-aware; "this
    year" is taken in the calendar's zone. Empty for a 7×24 calendar or when
    both years are covered.
    """
    year = cal._local(now, "now").year
    src = cal.overrides.source or "holidays.toml"
    rng = package_years()
    have = f"已安装的 chinesecalendar {getattr(chinese_calendar, '__version__', '')}".rstrip()
    have += f" 只包含 {rng[0]}–{rng[1]} 年的数据" if rng else " 没有任何年份的数据"
    lines = []
    for y in cal.missing_years([year, year + 1]):
        which = "今年" if y == year else "明年"
        lines.append(
            f"警告：{y} 年（{which}）没有法定节假日和调休数据（{have}，{src} 中也没有 [years.{y}]）。"
            f"在补上之前，SLA 计时把 {y} 年的周一至周五都当作工作日、周六周日都当作休息日，"
            f"不考虑法定节假日和调休，截止时间可能算错。"
            f"请在国务院公布 {y} 年放假安排后，把它写进 {src} 的 [years.{y}]（写法见该文件中的说明），"
            f"或者升级 chinesecalendar（pip install -U chinesecalendar）。"
        )
    return lines
