"""Who a mail went to and who it should reach: the incoming mail's
recipients, whether a person was addressed, people's addresses, and the
project a mail names (with the closest names when it is unknown)."""
from __future__ import annotations

from ..directory import AmbiguousProject, Person, Project
from .base import Context


def recipients(ctx: Context) -> set[str]:
    """To + CC of the incoming mail, without the system's own addresses."""
    own = ctx.cfg.own_addresses
    return {a.lower() for a in ctx.mail.recipients if a and a.lower() not in own}


def addressed(ctx: Context, person: Person | None) -> bool:
    """Is one of the person's addresses in To/CC (or are they the sender)?"""
    if person is None:
        return False
    rcpt = recipients(ctx) | {(ctx.mail.from_addr or "").lower()}
    return any(e in rcpt for e in person.emails)


def had_attached(ctx: Context, person: Person | None) -> bool:
    """Was the person the sender or a To/CC recipient of the message this
    mail forwards as an attachment (so they already had it)?"""
    inner = ctx.mail.attached
    if person is None or inner is None:
        return False
    rcpt = {a.lower() for a in inner.recipients} | {(inner.from_addr or "").lower()}
    return any(e in rcpt for e in person.emails)


def with_roles(ctx: Context, roles) -> list[Person]:
    """The directory's people with any of ``roles``, each once, in role order."""
    out: list[Person] = []
    for r in roles:
        for p in ctx.directory.with_role(r):
            if p not in out:
                out.append(p)
    return out


def emails(people) -> list[str]:
    out: list[str] = []
    for p in people:
        if p is not None and p.email not in out:
            out.append(p.email)
    return out


def find_project(ctx: Context, name: str) -> tuple[Project | None, list[str]]:
    """(project, candidates): the project, or None with the closest known
    names (ambiguous names give the projects they match)."""
    try:
        p = ctx.directory.project(name)  # 繁体 folded by project_key
    except AmbiguousProject as e:
        return None, list(e.candidates)
    if p is None:
        return None, ctx.directory.closest_projects(name, 3)
    return p, []
