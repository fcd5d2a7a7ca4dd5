"""Dates a mail's clock gets wrong (issue 11): ``-0000`` zones and clocks
reset years into the past."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from processor.mail.parse import parse_mail, settle_date
from support import make_mail


def _mail(date_header: str, extra: bytes = b"") -> bytes:
    raw = make_mail(body="你好")
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = [ln for ln in head.split(b"\r\n") if not ln.startswith(b"Date:")]
    return extra + b"\r\n".join(lines + [b"Date: " + date_header.encode()]) + b"\r\n\r\n" + body


def test_minus_zero_zone_is_utc_not_china_time():
    pm = parse_mail(_mail("Mon, 30 Nov 2026 01:30:00 -0000"))
    assert pm.date == datetime(2026, 11, 30, 1, 30, tzinfo=timezone.utc)
    assert any("-0000" in d for d in pm.defects)
    # A zone that is given is used as given; none at all is still read as China time.
    assert parse_mail(_mail("Mon, 30 Nov 2026 01:30:00 +0000")).date == datetime(2026, 11, 30, 1, 30, tzinfo=timezone.utc)
    assert parse_mail(_mail("Mon, 30 Nov 2026 09:30:00")).date == datetime(2026, 11, 30, 1, 30, tzinfo=timezone.utc)


def test_a_date_years_before_arrival_is_replaced_by_the_arrival_and_noted():
    pm = parse_mail(_mail("Sat, 01 Jan 2000 08:00:00 +0800"))
    arrived = datetime(2026, 11, 30, 2, 0, tzinfo=timezone.utc)
    settle_date(pm, arrived)
    assert pm.date == arrived
    assert any("2000-01-01 08:00" in d and "2026-11-30 10:00" in d and "已按到达时间记录" in d for d in pm.defects)
    # Written in the configured zone.
    from zoneinfo import ZoneInfo
    pm = parse_mail(_mail("Sat, 01 Jan 2000 08:00:00 +0800"))
    settle_date(pm, arrived, ZoneInfo("Asia/Urumqi"))
    assert any("2000-01-01 06:00" in d and "2026-11-30 08:00" in d for d in pm.defects)


def test_a_date_months_before_arrival_is_kept():
    # Written offline, or an old mail moved into the mailbox: believed.
    pm = parse_mail(_mail("Mon, 30 Mar 2026 09:00:00 +0800"))
    settle_date(pm, datetime(2026, 12, 2, 2, 0, tzinfo=timezone.utc))
    assert pm.date == datetime(2026, 3, 30, 1, 0, tzinfo=timezone.utc)


def test_the_top_received_header_is_the_arrival_of_an_archived_mail():
    # Imported years later (replay): our server's Received line says when it arrived.
    received = b"Received: from pc1.company.example by mail.company.example with ESMTPSA; Tue, 3 Mar 2020 10:00:00 +0800\r\n"
    pm = parse_mail(_mail("Sat, 01 Jan 2000 08:00:00 +0800", received))
    settle_date(pm, datetime.now(timezone.utc))
    assert pm.date == datetime(2020, 3, 3, 2, 0, tzinfo=timezone.utc)
    pm = parse_mail(_mail("Mon, 02 Mar 2020 10:00:00 +0800", received))
    settle_date(pm, datetime.now(timezone.utc))
    assert pm.date == datetime(2020, 3, 2, 2, 0, tzinfo=timezone.utc)  # a day before: kept
