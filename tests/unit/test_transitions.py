"""Every lifecycle's transitions through the code that takes them
(``commands.StateMachine`` for keyword replies, ``workflows.states`` for
the rest), in process on a SQLite store: each transition allowed, and
refused for the wrong state, the wrong person and a missing argument. No
mail server: the replies are the queued ``Outgoing`` objects."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from processor.config import load_config
from processor.lifecycles import SYSTEM, LifecycleError
from processor.mail.parse import parse_mail
from processor.pipeline import Runtime
from processor.rules.engine import Match, load_rules
from processor.store.models import Audit, Message
from processor.records import records_of
from processor.workflows import ACTIONS, states
from processor.workflows.base import Context
from processor.workflows.commands import DEFAULT_KEYWORDS, StateMachine, parse
from processor.workflows.effects import told
from processor.workflows.routing import emails
from support import ROOT, make_mail, write_config

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc)
PARTY = "王五"  # holds every party of the test records (raiser, rd_owner, complainant, owner ...)
STRANGER = "李四"  # 销售: none of the roles or parties below


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    rt = Runtime(load_config(write_config(tmp_path_factory.mktemp("unit"))))
    yield rt
    rt.store.dispose()


@pytest.fixture
def session(rt):
    with rt.store.session() as s, s.begin():
        yield s
        s.rollback()


def ctx_for(rt, s, kind: str, *, sender: str, body: str) -> Context:
    person = rt.directory.by_name(sender)
    pm = parse_mail(make_mail(sender=person.email, sender_name=person.name, subject="回复：记录", body=body))
    msg = Message(account="unit", folder="INBOX", sha256="0" * 64, status="processing", from_addr=person.email)
    s.add(msg)
    s.flush()
    ctx = Context(cfg=rt.cfg, mail=pm, message=msg, sender=person, directory=rt.directory, repo=records_of(s), now=NOW,
                  rules=rt.rules)
    lc = rt.rules.lifecycles[kind]
    ctx.match = Match(rt.rules.by_name[lc.rule], {}, "unit", {}, [])  # the declaring rule's settings
    return ctx


def record(ctx: Context, kind: str, state: str):
    lc = ctx.lifecycles[kind]
    return states.open_record(ctx, kind, state=state, project="华夏银行", owner=PARTY,
                              data={party: PARTY for party in lc.parties})


def allowed_person(rt, who: tuple[str, ...]) -> str:
    for w in who:
        holders = rt.directory.with_role(w)
        if holders:
            return holders[0].name
        return PARTY  # a party of the record (or its owner)
    raise AssertionError(who)


def _is_event(t) -> bool:
    """Not a reply keyword: the system decides (回访 score, 成功 report) or a
    mail without a keyword does it (重新提交)."""
    return tuple(t.who) == (SYSTEM,) or t.command not in DEFAULT_KEYWORDS


SHIPPED = load_rules(ROOT / "rules", set(ACTIONS)).lifecycles
KEYWORD = [pytest.param(lc.kind, t, id=f"{lc.kind}-{t.command}-{'|'.join(t.sources)}->{t.target}")
           for lc in SHIPPED for t in lc.transitions if not _is_event(t)]
EVENTS = [pytest.param(lc.kind, t, id=f"{lc.kind}-{t.command}-{'|'.join(t.sources)}->{t.target}")
          for lc in SHIPPED for t in lc.transitions if _is_event(t)]


def test_there_are_keyword_and_event_transitions():
    kinds = {p.values[0] for p in KEYWORD}
    assert kinds == {"workorder", "followup", "complaint", "document", "confirmation"}
    assert {p.values[1].command for p in EVENTS} >= {"满意度", "成功", "重新提交"}


def _apply(rt, s, kind, t, state, sender, arg):
    body = f"{t.command}：{arg}" if arg else t.command
    ctx = ctx_for(rt, s, kind, sender=sender, body=body)
    ticket = record(ctx, kind, state)
    sm = StateMachine.of(ctx, kind, ticket)
    cmd = parse(ctx, sm.commands())
    assert cmd is not None and cmd.keyword == t.command
    seen = []
    changed = sm.handle(ctx, ticket, cmd, lambda c, tk, tr, cm, old: seen.append((tr.target, old)))
    return ctx, ticket, changed, seen


@pytest.mark.parametrize("kind,t", KEYWORD)
def test_a_keyword_transition_is_taken_by_who_may_from_its_states(rt, session, kind, t):
    lc = rt.rules.lifecycles[kind]
    resolved = lc.resolve(t.who, {**lc.settings, **rt.cfg.workflows.get(lc.rule, {})})
    for state in t.sources:
        ctx, ticket, changed, seen = _apply(rt, session, kind, t, state, allowed_person(rt, resolved),
                                            "冯工" if t.needs else "")
        assert changed and ticket.state == t.target and seen == [(t.target, state)]
        # The machine refuses nothing; the transition's named effect ran: a work
        # order's notice goes to exactly the people its `notify` names.
        assert not [o.template for o in ctx.outgoing if o.template.startswith("command_")]
        if kind == "workorder":
            (notice,) = ctx.outgoing
            assert notice.template.startswith("workorder_") and notice.to
            assert notice.to == emails(told(ctx, ticket, t.notify))
        step = ticket.data["history"][-1]
        assert (step["command"], step["from"], step["to"]) == (t.command, state, t.target)
        assert ticket.data["changed_at"] == NOW.isoformat()
        assert (ticket.closed_at is not None) == lc.is_final(t.target)
        audit = session.scalars(select(Audit).where(Audit.entity == kind, Audit.entity_id == ticket.number)).all()
        assert f"state:{state}->{t.target}" in [a.action for a in audit]


@pytest.mark.parametrize("kind,t", KEYWORD)
def test_a_keyword_transition_is_refused_in_other_states(rt, session, kind, t):
    lc = rt.rules.lifecycles[kind]
    resolved = lc.resolve(t.who, {**lc.settings, **rt.cfg.workflows.get(lc.rule, {})})
    others = [s for s in lc.states if lc.find(t.command, s) is None]
    for state in others:
        ctx, ticket, changed, _ = _apply(rt, session, kind, t, state, allowed_person(rt, resolved),
                                         "冯工" if t.needs else "")
        assert not changed and ticket.state == state and "history" not in ticket.data
        (reply,) = ctx.outgoing
        assert reply.template == "command_wrong_state" and reply.variables["state"] == lc.name(state)


@pytest.mark.parametrize("kind,t", KEYWORD)
def test_a_keyword_transition_is_refused_to_others_and_without_its_argument(rt, session, kind, t):
    lc = rt.rules.lifecycles[kind]
    state = t.sources[0]
    ctx, ticket, changed, _ = _apply(rt, session, kind, t, state, STRANGER, "冯工" if t.needs else "")
    assert not changed and ticket.state == state
    (reply,) = ctx.outgoing
    assert reply.template == "command_denied" and reply.variables["state"] == lc.name(state)
    if t.needs:
        resolved = lc.resolve(t.who, {**lc.settings, **rt.cfg.workflows.get(lc.rule, {})})
        ctx, ticket, changed, _ = _apply(rt, session, kind, t, state, allowed_person(rt, resolved), "")
        assert not changed and [o.template for o in ctx.outgoing] == ["command_needs_arg"]
        assert ctx.outgoing[0].variables["what"] == t.needs


@pytest.mark.parametrize("kind,t", EVENTS)
def test_an_event_transition_goes_through_the_lifecycle(rt, session, kind, t):
    lc = rt.rules.lifecycles[kind]
    for state in lc.states:
        ctx = ctx_for(rt, session, kind, sender=PARTY, body="")
        ticket = record(ctx, kind, state)
        if state in t.sources:
            states.apply(ctx, ticket, t.command, t.target, arg="x")
            assert ticket.state == t.target and ticket.data["history"][-1]["command"] == t.command
            assert ticket.data["changed_at"] == NOW.isoformat()
            assert (ticket.closed_at is None) == (not lc.is_final(t.target))
        elif lc.find(t.command, state, t.target) is None:
            with pytest.raises(LifecycleError):
                states.apply(ctx, ticket, t.command, t.target)
            assert ticket.state == state


def test_records_are_numbered_with_their_prefix_and_complete_when_opened_final(rt, session):
    ctx = ctx_for(rt, session, "report", sender=PARTY, body="")
    t = states.open_record(ctx, "report", state="accepted")
    assert t.number.startswith("HB2026-") and t.closed_at == NOW
    f = states.open_record(ctx, "followup", state="open")
    assert f.number.startswith("GJ2026-") and f.closed_at is None
    with pytest.raises(LifecycleError):
        states.open_record(ctx, "report", state="open")
