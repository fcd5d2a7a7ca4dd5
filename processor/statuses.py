"""The Chinese name of every status a person reads, declared once per kind of
status: a received mail's (``messages.status`` and the outcome of a run), a
queued mail's (``outbox.status``), a quarantine entry's
(``quarantine.status``) and a clock's (``sla_clocks.status``). Record states are not here: they come with their
lifecycle (``processor.lifecycles``)."""
from __future__ import annotations

#: A received mail (``report messages``, ``once -v``, ``replay``, ``quarantine retry``).
MESSAGE = {
    "new": "待处理",
    "processed": "已处理",
    "ignored": "未匹配规则",
    "machine": "自动邮件",
    "untrusted": "发件人不可信",
    "duplicate": "重复邮件",
    "seen": "已处理过",
    "failed": "处理出错",
    "quarantined": "已隔离",
}

#: A queued mail (``report outbox``; see ``outbox.status_label`` for the per-recipient detail).
OUTBOX = {
    "pending": "待发送",
    "claimed": "待发送（已领取）",
    "sending": "发送中",
    "sent": "已发送",
    "failed": "发送失败",
    "suppressed": "未发送（已达上限）",
}

#: A quarantine entry (``quarantine list`` / ``show``).
QUARANTINE = {
    "open": "待处理",
    "retried": "已重试",
    "released": "已放行",
}

#: A service-level clock (``sla_clocks.status``; the web view's record page).
CLOCK = {
    "running": "计时中",
    "paused": "暂停",
    "stopped": "已停止",
}


def name(table: dict[str, str], status: str | None) -> str:
    """The Chinese name of ``status`` in ``table``; an unknown code is shown as it is."""
    return table.get(status or "", status or "")
