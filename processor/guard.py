"""Loops: never answer a machine. (Whether a sender is who From says is
decided in :mod:`processor.trust`.)

Each check is small and named, with a description, and returns *why* it
fired (or None), in the style of GNU Mailman's rules.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from .mail.parse import ParsedMail
from .outbox import LOOP_HEADER, MessageIds


@dataclass(frozen=True)
class Check:
    name: str
    description: str
    check: Callable[[ParsedMail], str | None]


def _auto_submitted(m: ParsedMail) -> str | None:
    v = (m.header("auto-submitted") or "").strip().lower()
    if v and not v.startswith("no"):
        return f"Auto-Submitted: {v}"
    return None


def _precedence(m: ParsedMail) -> str | None:
    v = (m.header("precedence") or "").strip().lower()
    if v in ("bulk", "junk", "list"):
        return f"Precedence: {v}"
    return None


def _list_mail(m: ParsedMail) -> str | None:
    for h in ("list-id", "list-unsubscribe"):
        if m.header(h) is not None:
            return f"带有 {h.title()} 头（邮件列表的邮件）"
    return None


_OOO_SUBJECT = re.compile(r"(自动回复|自動回覆|自动答复|out of (the )?office|automatic reply|autoreply|auto-reply|休假|不在办公室)", re.I)


def _out_of_office(m: ParsedMail) -> str | None:
    if m.header("x-ms-exchange-inbox-rules-loop") is not None:
        return "带有 X-MS-Exchange-Inbox-Rules-Loop 头（Exchange 收件箱规则自动发出）"
    if (m.header("x-auto-response-suppress") or "").strip() and (m.header("x-ms-exchange-generated-message-source") or m.header("x-ms-exchange-inbox-rules-loop")):
        return "Exchange 自动生成的邮件（带有 X-Auto-Response-Suppress 头）"
    if (m.header("x-autoreply") or m.header("x-autorespond")) is not None:
        return "带有 X-Autoreply 或 X-Autorespond 头（自动回复）"
    if _OOO_SUBJECT.search(m.subject or ""):
        return f"主题像是外出或自动回复：{m.subject}"
    return None


_DAEMON = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|noreply|no-reply|do-not-reply|donotreply|bounce[s]?)([+@.-]|$)", re.I)


def _bounce(m: ParsedMail) -> str | None:
    if m.content_type == "multipart/report":
        return "投递状态通知或已读回执（multipart/report）"
    rp = m.header("return-path")
    if rp is not None and rp.strip() in ("<>", ""):
        return "Return-Path 为空（退信）"
    if _DAEMON.match(m.from_addr or ""):
        return f"发件人 {m.from_addr} 是邮件系统的地址（退信或系统通知）"
    return None


ALL_MACHINE_CHECKS: tuple[Check, ...] = (
    Check("auto_submitted", "Auto-Submitted other than 'no' (RFC 3834)", _auto_submitted),
    Check("precedence", "Precedence: bulk, junk or list", _precedence),
    Check("list", "Mailing-list mail (List-Id / List-Unsubscribe)", _list_mail),
    Check("out_of_office", "Out-of-office and Exchange automatic replies", _out_of_office),
    Check("bounce", "Bounces, DSNs and mail-system senders", _bounce),
)


def machine_reason(m: ParsedMail, ids: MessageIds, own_addresses: set[str]) -> str | None:
    """Why this mail must never get an automatic answer, or None."""
    if m.header(LOOP_HEADER) is not None or ids.is_ours(m.message_id):
        return f"本系统自己发出的邮件（带有 {LOOP_HEADER} 头或本系统的 Message-ID）"
    if m.from_addr in own_addresses:
        return f"发件人是本系统自己的地址 {m.from_addr}"
    for c in ALL_MACHINE_CHECKS:
        why = c.check(m)
        if why:
            return why
    return None
