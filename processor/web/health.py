"""``/healthz``: is the service working? JSON, 200 when healthy, 503 when not.

Healthy means: the store answers, and every IMAP account's last poll reached
its server (the daemon's heartbeat, ``processor/heartbeat.py``) and succeeded
within ``[web] stall_minutes``. The outbox backlog, its oldest unsent mail
and the quarantine count are reported for operators (they do not fail the
check: a backlog is the alert job's business, see ``processor/alerts.py``).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, text

from .. import heartbeat
from ..store.models import Outbox, Quarantine

UNSENT = ("pending", "claimed", "sending")


def health(rt, now: datetime) -> tuple[bool, dict]:
    out: dict = {"store": False, "imap": {}, "outbox_backlog": None, "outbox_oldest_unsent_seconds": None,
                 "quarantine_open": None, "last_poll_age_seconds": None}
    try:
        with rt.store.reader() as s:
            s.execute(text("SELECT 1"))
            out["store"] = True
            backlog, oldest = s.execute(select(func.count(), func.min(Outbox.created_at))
                                        .where(Outbox.status.in_(UNSENT))).one()
            out["outbox_backlog"] = backlog
            if oldest is not None:
                if oldest.tzinfo is None:
                    from datetime import timezone
                    oldest = oldest.replace(tzinfo=timezone.utc)
                out["outbox_oldest_unsent_seconds"] = int((now - oldest).total_seconds())
            out["quarantine_open"] = s.scalar(select(func.count()).select_from(Quarantine)
                                              .where(Quarantine.status == "open"))
            beats = heartbeat.read(s)
    except Exception as e:  # the store is down or unreachable
        out["store_error"] = type(e).__name__
        return False, out
    stall = rt.cfg.web.stall_minutes * 60
    ok = True
    ages = []
    for acct in rt.cfg.accounts:
        b = beats.get(acct.name)
        age = int((now - b["ok_at"]).total_seconds()) if b and b["ok_at"] else None
        fresh = age is not None and age <= stall
        connected = bool(b and b["connected"]) and fresh
        out["imap"][acct.name] = {"connected": connected, "last_poll_age_seconds": age,
                                  "error": (b or {}).get("error", "") if not connected else ""}
        ok = ok and connected
        if age is not None:
            ages.append(age)
    out["last_poll_age_seconds"] = max(ages) if ages else None
    out["ok"] = ok
    return ok, out
