"""``/metrics`` in the Prometheus text format (prometheus_client).

Every figure is read from the store at scrape time, so it is the same
whichever process (``serve``, ``once``, another worker) did the work, and it
survives restarts: counters are totals over the store's history.

- ``ticket_mails_total{status}``: mails received, by status (processed,
  untrusted, machine, quarantined ...);
- ``ticket_replies_total{status}``: outgoing mails by outcome (sent,
  suppressed, failed, pending ...);
- ``ticket_reply_latency_seconds``: from a mail's arrival to the sending of
  the mail it caused (histogram);
- ``ticket_sla_breaches_total``: clocks that ran out;
- ``ticket_quarantine_size``: open quarantine entries;
- ``ticket_outbox_backlog``: mails waiting to be sent;
- ``ticket_imap_last_poll_age_seconds{account}``: since the last successful poll.
"""
from __future__ import annotations

from datetime import datetime, timezone

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from sqlalchemy import func, select

from .. import heartbeat
from ..store.models import Breach, Message, Outbox, Quarantine

BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)
LATENCY_SAMPLE = 20000  # the newest sent mails the latency histogram is built from


def _aware(dt):
    return dt.replace(tzinfo=timezone.utc) if dt is not None and dt.tzinfo is None else dt


class StoreCollector:
    def __init__(self, rt):
        self.rt = rt

    def collect(self):
        now = datetime.now(timezone.utc)
        with self.rt.store.reader() as s:
            mails = s.execute(select(Message.status, func.count()).group_by(Message.status)).all()
            outs = s.execute(select(Outbox.status, func.count()).group_by(Outbox.status)).all()
            lat = s.execute(select(Message.received_at, Outbox.sent_at).join(Message, Message.id == Outbox.caused_by)
                            .where(Outbox.status == "sent", Outbox.sent_at.is_not(None))
                            .order_by(Outbox.id.desc()).limit(LATENCY_SAMPLE)).all()
            breaches = s.scalar(select(func.count()).select_from(Breach))
            quarantine = s.scalar(select(func.count()).select_from(Quarantine).where(Quarantine.status == "open"))
            beats = heartbeat.read(s)
        m = CounterMetricFamily("ticket_mails", "Mails received, by status", labels=["status"])
        for st, n in mails:
            m.add_metric([st], n)
        yield m
        r = CounterMetricFamily("ticket_replies", "Outgoing mails, by status (sent, suppressed, failed, pending...)",
                                labels=["status"])
        for st, n in outs:
            r.add_metric([st], n)
        yield r
        values = [max(0.0, (_aware(b) - _aware(a)).total_seconds()) for a, b in lat if a is not None]
        buckets, acc = [], 0
        for le in BUCKETS:
            acc = sum(1 for v in values if v <= le)
            buckets.append((str(float(le)), acc))
        buckets.append(("+Inf", len(values)))
        h = HistogramMetricFamily("ticket_reply_latency_seconds",
                                  "From a mail's arrival to the sending of the mail it caused")
        h.add_metric([], buckets, sum(values))
        yield h
        yield CounterMetricFamily("ticket_sla_breaches", "Service-level clocks that ran out", value=breaches)
        yield GaugeMetricFamily("ticket_quarantine_size", "Open quarantine entries", value=quarantine)
        yield GaugeMetricFamily("ticket_outbox_backlog", "Outgoing mails not yet sent",
                                value=sum(n for st, n in outs if st in ("pending", "claimed", "sending")))
        g = GaugeMetricFamily("ticket_imap_last_poll_age_seconds", "Seconds since the last successful IMAP poll",
                              labels=["account"])
        for acct, b in sorted(beats.items()):
            if b["ok_at"] is not None:
                g.add_metric([acct], (now - b["ok_at"]).total_seconds())
        yield g


def render(rt) -> bytes:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StoreCollector(rt))
    return generate_latest(reg)
