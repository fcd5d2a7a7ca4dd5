"""The daemon tells the admins once when intake stalls or the outbox backlog
keeps growing, and once when it recovers (osTicket does this on fetch
failure).

- **stall**: an IMAP account had no successful poll for ``[web]
  stall_minutes`` (the heartbeat, ``processor/heartbeat.py``; an account
  never polled counts from the daemon's start);
- **backlog**: the number of unsent outbox rows rose and has not come down
  below where it started rising for ``[web] backlog_minutes``.

Whether an alert is out is a ``settings`` row (``alert:stall``,
``alert:backlog``: when the problem began), written in the transaction that
queues the alert mail, so several workers and restarts mail once. The mail
(template ``health_alert``) goes to ``[web] alert_to`` through the outbox;
with nobody configured the alert is only logged.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from . import heartbeat
from .outbox import Outgoing
from .store.models import Outbox, Setting

log = logging.getLogger(__name__)

UNSENT = ("pending", "claimed", "sending")
TEMPLATE = "health_alert"


class Alerts:
    def __init__(self, rt, queue, started: datetime):
        self.rt, self.queue, self.started = rt, queue, started
        self._rising_since: datetime | None = None  # when the backlog began to rise
        self._rising_from = 0  # the backlog then
        self._last = 0

    def interval(self) -> float:
        w = self.rt.cfg.web
        return max(1.0, min(60.0, min(w.stall_minutes, w.backlog_minutes) * 60 / 3))

    def check(self) -> None:
        rt, now = self.rt, self.rt.clock()
        w = rt.cfg.web
        with rt.store.reader() as s:
            beats = heartbeat.read(s)
            # The alerts' own mails do not count: they wait for the same server.
            backlog = s.scalar(select(func.count()).select_from(Outbox).where(
                Outbox.status.in_(UNSENT), Outbox.template != TEMPLATE))
        stall = timedelta(minutes=w.stall_minutes)
        lines, since = [], None
        for acct in rt.cfg.accounts:
            b = beats.get(acct.name) or {}
            last = b.get("ok_at") or self.started
            if now - last > stall:
                why = f"（{b['error']}）" if b.get("error") else ""
                lines.append(f"邮箱 {acct.name}：{int((now - last).total_seconds() // 60)} 分钟没有成功收取邮件{why}")
                since = min(since or last, last)
        self._settle("stall", lines, since, now)
        # The backlog: rising since when, from what?
        if backlog == 0 or (self._rising_since is not None and backlog < self._rising_from):
            self._rising_since = None
        elif backlog > self._last and self._rising_since is None:
            self._rising_since, self._rising_from = now, self._last
        self._last = backlog
        growing = self._rising_since is not None and now - self._rising_since >= timedelta(minutes=w.backlog_minutes)
        blines = [f"发件箱中有 {backlog} 封邮件待发，{w.backlog_minutes:g} 分钟来没有减少"] if growing else []
        self._settle("backlog", blines, self._rising_since, now, keep=self._rising_since is not None and not growing)

    def _settle(self, problem: str, lines: list[str], since: datetime | None, now: datetime, keep: bool = False) -> None:
        """Mail once when ``lines`` (the problem) appears, once when it is gone (``keep``: not gone yet)."""
        key = f"alert:{problem}"
        with self.rt.store.reader() as s:
            row = s.get(Setting, key)
            out = json.loads(row.value) if row is not None else None
        if bool(lines) == (out is not None) or (not lines and keep):
            return
        rt, w = self.rt, self.rt.cfg.web
        recovered = not lines
        began = datetime.fromisoformat(out["since"]) if recovered else (since or now)
        log.warning("%s：%s", "已恢复" if recovered else "告警", "；".join(lines) or problem)
        try:
            with rt.store.session() as s, s.begin():
                if recovered:
                    got = s.get(Setting, key)
                    if got is None:
                        return  # another worker told them
                    s.delete(got)
                else:
                    s.add(Setting(key=key, value=json.dumps({"since": began.isoformat()})))
                    s.flush()
                if w.alert_to:
                    self.queue.put(s, [Outgoing(template=TEMPLATE, to=list(w.alert_to), kind="escalation", variables={
                        "system": rt.cfg.system, "now": now.astimezone(rt.tz), "problem": problem,
                        "recovered": recovered, "since": began.astimezone(rt.tz).strftime("%Y-%m-%d %H:%M"),
                        "lines": lines, "url": w.url})], now=now)
        except IntegrityError:
            pass  # another worker raised it first
