"""Who sees what, decided on the server for every page.

A person in the directory with one of ``[web] roles_see_all`` sees every
record. Anyone else (a 售前, a 销售, ...) sees the records they are a party
to: the record's owner, a party its lifecycle declares (故障提出人,
研发负责人 ...), a person named in its data (reporter, sales ...), the
project's 责任销售 / 第一售前 / 第二售前, or the sender of the mail that
opened it. Customer details and attachments come only with the record, so
nobody else ever sees them.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..directory import AmbiguousProject, Person

# Data keys that name people on the shipped record kinds.
_PEOPLE_KEYS = ("reporter", "sender", "sales", "presales1", "presales2", "raiser", "rd_owner", "engineer", "owner",
                "target", "approver")


@dataclass(frozen=True)
class Viewer:
    person: Person
    see_all: bool

    @property
    def name(self) -> str:
        return self.person.name


def viewer_for(rt, email: str) -> Viewer | None:
    """The logged-in person, or None when the address left the directory."""
    p = rt.directory.by_email(email)
    if p is None:
        return None
    return Viewer(p, any(p.has(r) for r in rt.cfg.web.roles_see_all))


def parties(rt, ticket, opener_addr: str = "") -> set[str]:
    """The names of the people a record concerns."""
    data = ticket.data or {}
    names = {ticket.owner}
    lc = rt.rules.lifecycles.get(ticket.kind)
    keys = [*(lc.parties if lc else ()), *_PEOPLE_KEYS]
    for k in keys:
        v = data.get(k)
        if isinstance(v, str):
            names.add(v)
    if ticket.project:
        try:
            prj = rt.directory.project(ticket.project)
        except AmbiguousProject:
            prj = None
        if prj is not None:
            names |= {prj.sales, prj.presales1, prj.presales2}
    if opener_addr:
        p = rt.directory.by_email(opener_addr)
        if p is not None:
            names.add(p.name)
    return {n for n in names if n}


def can_see(rt, viewer: Viewer, ticket, opener_addr: str = "") -> bool:
    return viewer.see_all or viewer.name in parties(rt, ticket, opener_addr)


def can_see_person(viewer: Viewer, name: str) -> bool:
    """Per-person figures (complaints, SLA, a 项目跟踪表): the person's own, or all for see-all roles."""
    return viewer.see_all or viewer.name == name
