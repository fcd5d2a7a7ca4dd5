"""The daemon's outbox-backlog alert (processor/alerts.py): mailed once to
[web] alert_to when the backlog has grown for backlog_minutes, once again when
it comes down; the store decides "once". (The intake-stall alert runs against
a real Dovecot in test_web_health.py.)"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select, update

from support import write_config

ADMIN = "admin@company.example"


def test_backlog_alert_once_and_recovery_once(tmp_path):
    from processor.alerts import Alerts
    from processor.config import load_config
    from processor.outbox import Outgoing
    from processor.pipeline import Runtime
    from processor.queueing import MailQueue
    from processor.store.models import Outbox

    cfg = load_config(write_config(tmp_path, extra=f'\n[web]\nalert_to = ["{ADMIN}"]\nbacklog_minutes = 10\n'))
    now = [datetime(2026, 11, 5, 2, 0, tzinfo=timezone.utc)]
    rt = Runtime(cfg, clock=lambda: now[0])
    queue = MailQueue(rt)
    alerts = Alerts(rt, queue, now[0])

    def queue_mail():  # a mail the (unreachable) SMTP server never takes
        with rt.store.session() as s, s.begin():
            queue.put(s, [Outgoing(template="web_login_code", to=["zhangsan@company.example"], kind="notice", variables={
                "system": cfg.system, "now": now[0], "name": "张三", "login_code": "123456", "minutes": "10",
                "expires": "2026-11-05 10:10", "url": "http://127.0.0.1:8080"})], now=now[0])

    def alert_mails():
        with rt.store.reader() as s:
            return [(o.subject, o.to_addrs) for o in s.scalars(select(Outbox).where(Outbox.template == "health_alert")
                                                                 .order_by(Outbox.id))]

    try:
        queue_mail()
        alerts.check()  # rising from 0
        now[0] += timedelta(minutes=5)
        queue_mail()
        alerts.check()  # 5 minutes: not yet
        assert alert_mails() == []
        now[0] += timedelta(minutes=6)
        alerts.check()
        alerts.check()
        got = alert_mails()
        assert got == [("告警：工单系统发件箱持续积压", [ADMIN])]
        now[0] += timedelta(minutes=30)
        alerts.check()
        assert len(alert_mails()) == 1  # still growing: told once
        # The server takes the mails: the backlog is gone, the admin is told once.
        with rt.store.session() as s, s.begin():
            s.execute(update(Outbox).where(Outbox.template == "web_login_code").values(status="sent"))
        alerts.check()
        alerts.check()
        assert alert_mails() == [("告警：工单系统发件箱持续积压", [ADMIN]), ("已恢复：工单系统发件箱积压已消除", [ADMIN])]
        # A second daemon (another worker, a restart) does not repeat either.
        other = Alerts(rt, queue, now[0])
        other.check()
        assert len(alert_mails()) == 2
    finally:
        rt.store.dispose()
