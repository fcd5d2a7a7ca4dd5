"""Queueing outgoing mail: ``Outgoing`` (plain data) -> ``Outbox`` rows.

``MailQueue.put`` renders each mail's template, gives it one of our
Message-IDs, keeps what the sender builds it from (or, for a mail with
files, builds the MIME message), applies the per-recipient daily limit
on automatic replies and writes the Outbox row and the thread link, all in the
caller's transaction. The pipeline queues what a mail's workflow produced;
timed jobs (回访, SLA reminders, scheduled reports) hold a ``MailQueue`` of
their own and queue through it, with no pipeline involved.
"""
from __future__ import annotations

from datetime import datetime, timezone
from html import escape

from sqlalchemy import func, select

from . import confidential
from .mail.subject import remove_ticket_token
from .outbox import Outgoing, compose, draft_of
from .store.models import Message, Outbox, OutboxContent, ReplyCount, ThreadLink, Ticket
from .records import Row, records_of


Opener = tuple  # (Message-ID, received_at, subject_norm) of the mail that opened a record


def openers_of(s, ids: set[int]) -> dict[int, Opener]:
    """Message row id -> (Message-ID, received_at, subject_norm), through the
    batch's record service (at most one query, none for what it knows)."""
    return records_of(s).openers(ids)


def record_threads(s, tickets: list[Ticket], openers: dict[int, Opener] | None = None
                   ) -> dict[int, tuple[str | None, list[str]]]:
    """Ticket id -> (In-Reply-To, References) that put a mail about it into
    its thread: the mail that opened the record first, the last mail we sent
    about it (already stored) last, answered. A timed job's mail (回访, SLA
    reminder) has no incoming mail to answer, yet must thread with the record
    in every client. Two queries for all the tickets (one when ``openers``,
    from :func:`openers_of`, is given)."""
    tickets = [t for t in tickets if t.id is not None]
    if not tickets:
        return {}
    if openers is None:
        openers = openers_of(s, {t.opened_by_message for t in tickets})
    last = (select(ThreadLink.ticket_id, func.max(Outbox.id).label("last"))
            .join(Outbox, Outbox.message_id == ThreadLink.message_id)
            .where(ThreadLink.ticket_id.in_({t.id for t in tickets})).group_by(ThreadLink.ticket_id).subquery())
    lasts = dict(s.execute(select(last.c.ticket_id, Outbox.message_id).join(Outbox, Outbox.id == last.c.last)).all())
    out = {}
    for t in tickets:
        opener = openers.get(t.opened_by_message)
        root = (opener[0] if opener else None) or (t.data or {}).get("message_id") or None
        refs = [m for m in dict.fromkeys((root, lasts.get(t.id))) if m]
        out[t.id] = ((refs[-1] if refs else None), refs)
    return out


class MailQueue:
    def __init__(self, rt, *, suppress: str = ""):
        """``rt``: the loaded runtime (``pipeline.Runtime``: config, renderer,
        Message-ID maker, clock, zone), not imported here so that the pipeline
        can hold a queue. ``suppress``: a reason to record every mail queued
        here as not to be sent (a backfill with ``replay --no-send``)."""
        self.rt = rt
        self.suppress = suppress
        # Build each mail's bytes as it is queued, not only those with files:
        # set by the pipeline for a batch while the sender is behind.
        self.build_now = False

    def _names(self, out: Outgoing) -> dict[str, str]:
        """The display names of the mail's recipients, from the directory."""
        d = getattr(self.rt, "directory", None)
        found = {a.lower(): d.by_email(a) for a in [*out.to, *out.cc]} if d is not None else {}
        return {a: p.name for a, p in found.items() if p is not None}

    @staticmethod
    def _withhold_internal(rec, pol, out: Outgoing, cause: Message | None, now: datetime) -> dict:
        """The system never sends an internal document (测试预案/实施预案,
        art. 31, 39) outside the organisation: not as a file, not inside a
        forwarded original. Such attachments are taken off a mail that has
        an outside recipient, and the audit says so; returns what the mail
        must say about it ({} when nothing was taken off)."""
        outside = pol.outside([*out.to, *out.cc])
        if not outside:
            return {}
        held = confidential.withheld(pol, out.attachments)
        if not held:
            return {}
        out.attachments = [a for a in out.attachments if a[0] not in held]
        rec.audit("confidential", "", "internal_withheld", message=cause, actor="system", at=now,
                  template=out.template, outside=outside, files=held)
        return {"files": held, "outside": outside}

    def put(self, s, outgoing: list[Outgoing], *, cause: Message | None = None, now: datetime | None = None,
            counts: dict | None = None) -> list[str]:
        """Render each Outgoing and write its outbox row (same transaction).
        Returns their Message-IDs, in order; each Outgoing gets its own in
        ``message_id`` and every row in its ``stamp`` gets it in
        ``outbox_message_id``. ``counts`` caches the transaction's ReplyCount
        rows (a batch passes one dict for all its mails)."""
        rt, cfg = self.rt, self.rt.cfg
        now = now or rt.clock()
        counts = {} if counts is None else counts
        day = now.astimezone(rt.tz).strftime("%Y-%m-%d")
        limit = cfg.limits.replies_per_recipient_per_day
        ids = []
        rec = records_of(s)
        # A timed job's mails (no incoming mail behind them) join their records' threads.
        timed = [(out, out.ticket if out.ticket is not None else rec.ticket_by_token(out.ticket_token))
                 for out in outgoing if out.in_reply_to is None and out.ticket_token and cause is None]
        for out, t in timed:
            if t is not None and out.ticket is None:
                out.ticket = t
        # Outlook's Thread-Index and Thread-Topic come from the mail that opened
        # the record: known at hand when it is the mail being answered, else one
        # query for the whole set (shared with the timed mails' threads).
        about = [out for out in outgoing if isinstance(out.ticket, Ticket)]
        known = {cause.id: (cause.message_id, cause.received_at, cause.subject_norm)} if cause is not None else {}
        openers = {**openers_of(s, {out.ticket.opened_by_message for out in about} - set(known)), **known}
        threads = record_threads(s, [t for _o, t in timed if t is not None], openers)
        for out, t in timed:
            if t is not None and t.id in threads:
                irt, refs = threads[t.id]
                out.in_reply_to, out.references = irt, list(dict.fromkeys([*refs, *out.references]))
        for out in about:
            opener = openers.get(out.ticket.opened_by_message)
            if opener is not None and opener[0]:
                out.thread_root = (opener[0], opener[1])
                out.thread_topic = out.thread_topic or remove_ticket_token(opener[2] or "").strip() or None
        d = getattr(rt, "directory", None)
        pol = confidential.policy(cfg, d) if d is not None and any(o.attachments for o in outgoing) else None
        for out in outgoing:
            withheld = self._withhold_internal(rec, pol, out, cause, now) if pol is not None and out.attachments else {}
            # A mail with files is built now, and every mail while the sender
            # is behind; any other is kept as its draft, which the sender lays
            # out and builds (outbox.Draft).
            built = bool(out.attachments or withheld or self.build_now)
            rendered = rt.renderer.render(out.template, out.variables, lay_out=built)
            if withheld:  # the mail says what it does not carry, and why
                _add_notice(rendered, rt.messages.text("notice", "internal_withheld", withheld))
            mid = rt.ids.new()
            d = draft_of(out, rendered, mid, now, self._names(out), *rt.renderer.record(out.variables))
            subject = d.subject
            raw, draft = (compose(cfg, d, rendered.html, out.attachments), None) if built else (None, vars(d))
            status, error = "pending", ""
            if self.suppress:
                status, error = "suppressed", self.suppress
            elif out.kind == "reply":
                for addr in out.to:
                    rc = counts.get((addr, day))
                    if rc is None:  # today's counts of every recipient, in one query per batch
                        rc = next((r for r in rec.rows(ReplyCount, day=day) if r.address == addr), None)
                    if rc is None:
                        rc = ReplyCount(address=addr, day=day, count=0)
                        rec.add(rc)
                    counts[(addr, day)] = rc
                    if rc.count >= limit:
                        status, error = "suppressed", f"已达发送上限：今天已向 {addr} 自动回复 {limit} 封（limits.replies_per_recipient_per_day），本封不发"
                    else:
                        rc.count += 1
            rcpt = list(dict.fromkeys(a.lower() for a in [*out.to, *out.cc]))
            out._subject = subject
            # Written in bulk with the batch (nothing reads it back before the commit).
            oid = rec.take_id(Outbox)
            rec.insert(OutboxContent, Row(id=oid, raw=raw, draft=draft))
            rec.insert(Outbox, Row(
                id=oid, message_id=mid, caused_by=cause.id if cause is not None else None, template=out.template,
                kind=out.kind, mail_from=cfg.system.address, rcpt=rcpt, to_addrs=out.to, cc_addrs=out.cc,
                subject=subject, status=status, last_error=error, rcpt_state={}, claimed_by="",
                attempts=0, uncertain=False, lease_until=None, sent_at=None,
                # Due at once, whatever the domain clock says (tests inject one).
                created_at=now, next_attempt_at=min(now, datetime.now(timezone.utc))))
            if out.ticket_token:
                t = out.ticket if out.ticket is not None else rec.ticket_by_token(out.ticket_token)
                if t is not None:
                    rec.link(mid, t, fresh=True)
            out.message_id = mid
            for row in out.stamp:
                row.outbox_message_id = mid
            ids.append(mid)
        return ids


def _add_notice(rendered, line: str) -> None:
    """Add a line the system has to say to a rendered mail: the text part's
    end, and the HTML part's end (escaped, before ``</body>``)."""
    rendered.text = rendered.text.rstrip("\n") + "\n\n" + line + "\n"
    para = f'<p style="margin: 12px 0; color: #8a4b00;">{escape(line)}</p>'
    at = rendered.html.rfind("</body>")
    rendered.html = rendered.html[:at] + para + rendered.html[at:] if at >= 0 else rendered.html + para
