"""Intake heartbeats: the smallest shared record of IMAP poll state.

The daemon (and ``once``) writes, per IMAP account, one ``settings`` row
``heartbeat:<account>`` holding JSON: when a poll last succeeded, when one
was last tried, whether that try reached the server, and the error if not.
Another process (``run.py web``: ``/healthz``, ``/metrics``, the dashboard)
reads it from the store, so it works across processes and hosts, on SQLite
and PostgreSQL, without a new table.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone

from sqlalchemy import select

from .store.models import Setting

PREFIX = "heartbeat:"


def beat(store, account: str, *, ok: bool, error: str = "", now: datetime | None = None) -> None:
    """Record one poll of ``account``: ``ok`` when it reached the server."""
    now = now or datetime.now(timezone.utc)
    key = PREFIX + account
    with store.session() as s, s.begin():
        row = s.get(Setting, key)
        old = _load(row.value) if row is not None else {}
        value = {"at": now.isoformat(), "connected": ok, "error": "" if ok else error[:500],
                 "ok_at": now.isoformat() if ok else old.get("ok_at", "")}
        if row is None:
            s.add(Setting(key=key, value=json.dumps(value)))
        else:
            row.value = json.dumps(value)


def _load(text: str) -> dict:
    try:
        v = json.loads(text)
        return v if isinstance(v, dict) else {}
    except ValueError:
        return {}


def read(s) -> dict[str, dict]:
    """{account: {"at", "ok_at" (datetimes or None), "connected", "error"}}."""
    out = {}
    for row in s.scalars(select(Setting).where(Setting.key.like(PREFIX + "%"))):
        v = _load(row.value)
        out[row.key[len(PREFIX):]] = {
            "at": _dt(v.get("at")), "ok_at": _dt(v.get("ok_at")),
            "connected": bool(v.get("connected")), "error": str(v.get("error") or "")}
    return out


def _dt(v) -> datetime | None:
    try:
        return datetime.fromisoformat(v) if v else None
    except (TypeError, ValueError):
        return None
