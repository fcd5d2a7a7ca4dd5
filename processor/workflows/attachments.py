"""A record's attachments: the files its mails carried, kept on the record.

Each file is an ``Attachment`` row of the record, its bytes content-addressed
in ``raw_mails`` (so a file sent twice is stored once); a file over
``limits.max_attachment_size`` is recorded by name and size only, and the
receipt says so. Any convention whose records hold documents uses these
(the 故障处理工作单 keeps logs and screenshots).
"""
from __future__ import annotations

from ..outbox import safe_filename
from ..store.models import Attachment, Ticket
from ..store.raw import sha256
from .base import Context


def incoming(ctx: Context) -> list:
    """The mail's files (a file over the parse limits has no data but still has its size)."""
    return [a for a in ctx.mail.attachments if a.size]


def store(ctx: Context, ticket: Ticket, files) -> list[dict]:
    """Add ``files`` (the mail's, as ``incoming`` gives them) to the record,
    each as it is: [{name, size, sha256 (None: over the limit, not kept)}]."""
    limit = ctx.cfg.limits.max_attachment_size
    out, blobs = [], []
    for i, f in enumerate(files, 1):
        name = (f.filename or f"附件{i}")[:500]
        sha = sha256(f.data) if f.size <= limit and f.kept else None
        ctx.repo.add(Attachment(ticket_id=ticket.id, message=ctx.message.id, filename=name,
                                content_type=(f.content_type or "application/octet-stream")[:200], size=f.size,
                                sha256=sha, created_at=ctx.now))
        if sha is not None:
            blobs.append((sha, f.data))
        out.append({"name": name, "size": f.size, "sha256": sha})
    ctx.repo.keep_raw(blobs)
    return out


def keep(ctx: Context, ticket: Ticket) -> list[dict]:
    """Keep the mail's files on the record; returns what was added (described,
    see ``describe``). A file the record already holds (same name and content)
    is not added again."""
    files = incoming(ctx)
    if not files:
        return []
    limit = ctx.cfg.limits.max_attachment_size
    have = {(a.filename, a.sha256, a.size) for a in ctx.repo.rows(Attachment, ticket_id=ticket.id)}
    new = []
    for i, f in enumerate(files, 1):
        key = ((f.filename or f"附件{i}")[:500], sha256(f.data) if f.size <= limit and f.kept else None, f.size)
        if key not in have:
            have.add(key)
            new.append(f)
    out = []
    for f in store(ctx, ticket, new):
        ctx.audit(ticket.kind, ticket.number, "attachment_kept" if f["sha256"] else "attachment_over_limit",
                  filename=f["name"], size=f["size"], limit=limit)
        out.append(describe(ctx, f["name"], f["size"], f["sha256"] is not None))
    return out


def of(ctx: Context, ticket: Ticket) -> list[Attachment]:
    """The record's files, oldest first."""
    return sorted(ctx.repo.rows(Attachment, ticket_id=ticket.id), key=lambda a: a.id)


def describe(ctx: Context, name: str, size: int, kept: bool | None) -> dict:
    """A file as the templates show it: name, size in words, kept or not, and
    the limit. The name is the one the file is sent on under (one line, no
    path, bounded): a sender's name cannot add lines to the text of a mail."""
    return {"name": safe_filename(name), "size": human_size(size), "bytes": size, "kept": kept,
            "limit": human_size(ctx.cfg.limits.max_attachment_size)}


def human_size(n: int) -> str:
    if n < 1024:
        return f"{n} 字节"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / 1024 / 1024:.1f} MB"


def forward(ctx: Context, ticket: Ticket) -> None:
    """Put the record's kept files on the mail just queued, up to
    ``limits.max_forward_total`` bytes re-sent per mail."""
    if not ctx.outgoing:
        return
    out = ctx.outgoing[-1]
    budget = ctx.cfg.limits.max_forward_total
    for a in of(ctx, ticket):
        if a.sha256 and a.size <= budget:
            data = ctx.repo.raw(a.sha256)
            if data is not None:
                out.attachments.append((a.filename, a.content_type, data))
                budget -= a.size
