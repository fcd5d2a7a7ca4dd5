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


# --- a Date with no zone at all ----------------------------------------------

_HOPS = (b"Received: from mail.company.example by mx.company.example with ESMTPS; Mon, 30 Nov 2026 02:31:10 +0000\r\n"
         b"Received: from [10.1.2.3] by smtp.partner.example with ESMTPSA; Sun, 29 Nov 2026 21:30:40 -0500\r\n")


def test_a_zoneless_date_takes_the_zone_of_the_first_received_hop():
    # Written in New York (21:30 local), the first hop says -0500: the Date is 02:30 UTC, not 13:30 UTC.
    pm = parse_mail(_mail("Sun, 29 Nov 2026 21:30:00", _HOPS))
    settle_date(pm, datetime(2026, 11, 30, 2, 32, tzinfo=timezone.utc))
    assert pm.date == datetime(2026, 11, 30, 2, 30, tzinfo=timezone.utc)
    assert any("没有写时区" in d and "UTC-05:00" in d and "Received" in d for d in pm.defects)


def test_a_zoneless_date_without_received_headers_uses_the_arrival_offset():
    # China time written without a zone, arriving 4 minutes later: +08:00, noted.
    pm = parse_mail(_mail("Mon, 30 Nov 2026 10:30:00"))
    settle_date(pm, datetime(2026, 11, 30, 2, 34, tzinfo=timezone.utc))
    assert pm.date == datetime(2026, 11, 30, 2, 30, tzinfo=timezone.utc)
    assert any("UTC+08:00" in d and "到达时间（2026-11-30 10:34）" in d for d in pm.defects)


def test_a_zoneless_date_off_any_whole_hour_is_replaced_by_the_arrival_and_noted():
    pm = parse_mail(_mail("Mon, 30 Nov 2026 07:05:00"))
    arrived = datetime(2026, 11, 30, 2, 34, tzinfo=timezone.utc)
    settle_date(pm, arrived)
    assert pm.date == arrived
    assert any("2026-11-30 07:05" in d and "推断不出整点时区" in d and "已按到达时间 2026-11-30 10:34 记录" in d
               for d in pm.defects)
    # More than 14 hours ahead is no zone either.
    pm = parse_mail(_mail("Tue, 01 Dec 2026 18:34:00"))
    settle_date(pm, arrived)
    assert pm.date == arrived


def test_a_zoned_date_is_not_second_guessed():
    pm = parse_mail(_mail("Mon, 30 Nov 2026 07:05:00 +0800"))
    settle_date(pm, datetime(2026, 11, 30, 2, 34, tzinfo=timezone.utc))
    assert pm.date == datetime(2026, 11, 29, 23, 5, tzinfo=timezone.utc)
    assert not any("时区" in d for d in pm.defects)
