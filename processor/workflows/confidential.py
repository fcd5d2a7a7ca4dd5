"""The confidentiality guard on incoming mail (art. 31, 39: 《测试预案》 and
《实施预案》 are internal documents, 不对外发布).

Every mail from a known sender that reaches the tracking mailbox is looked
at, whatever convention it belongs to (or none): when it carries an
internal document (``processor.confidential``: by attachment name, by
subject, or one an admin marked internal) and is also addressed (To/Cc) to
anyone outside the organisation's domains, the sender and the
``notify_roles`` (售前经理) are told at once, naming the outside addresses,
and the event is recorded (audit ``confidential`` / ``internal_outside``),
which the monthly report lists. The mail itself is then handled as usual.
"""
from __future__ import annotations

from .. import confidential
from .base import Context
from .routing import emails
from .thread import handled_before

TEMPLATE = "confidential_outside"


def files_of(ctx: Context, pol: confidential.Policy) -> list[str]:
    """The internal documents the mail carries: its own files, and those of
    a message it forwards as an attachment."""
    names = [a.filename or "" for a in ctx.mail.attachments if a.content_type != "message/rfc822" and a.filename]
    found = pol.internal_files(ctx.mail.subject or "", names)
    for a in ctx.mail.attachments:
        if a.content_type == "message/rfc822" and a.data:
            subject, inner = confidential.embedded(a.data)
            found += [f"{a.filename or '转发的邮件'}：{n}" for n in pol.internal_files(subject, inner)]
    return found


def guard(ctx: Context) -> bool:
    """Tell the sender and the 售前经理 when an internal document goes
    outside; True if it did."""
    if ctx.sender is None or not ctx.mail.attachments:
        return False  # nothing carried: the common case costs nothing
    pol = confidential.policy(ctx.cfg, ctx.directory)
    if not pol.enabled:
        return False
    files = files_of(ctx, pol)
    if not files:
        return False
    outside = pol.outside(ctx.mail.recipients)
    if not outside or handled_before(ctx):
        return False
    managers = [p for r in pol.notify_roles for p in ctx.directory.with_role(r) if p != ctx.sender]
    ctx.repo.audit("confidential", "", "internal_outside", message=ctx.message, actor=ctx.sender.name, at=ctx.now,
                   sender=ctx.sender.name, outside=outside, files=files, subject=(ctx.mail.subject or "")[:300])
    ctx.send(TEMPLATE, to=[ctx.mail.from_addr], cc=[e for e in emails(managers) if e != ctx.mail.from_addr],
             outside=outside, files=files, managers="、".join(p.name for p in managers))
    ctx.did("internal_outside", outside=outside, files=files)
    return True
