"""Service-level clocks on records, and escalation when a clock runs out.

Clocks follow record events, which ``workflows.states`` appends to the
batch's record service (``Records.events``) as it opens records and changes
their state, and which the pipeline hands to ``apply_events``; no workflow
needs SLA code of its own. What each event does is the record
kind's lifecycle (``[lifecycle.<kind>.clocks]`` in its rule file, see
``processor.lifecycles``); the durations are the config's profiles:

- a record is opened in a state that is not final: the lifecycle's ``start``
  clocks that the profile defines start, and a step clock if its state has one;
- staff reply in the record's thread: the ``stop_on_reply`` clocks stop (the
  first response), the ``restart_on_reply`` ones start again;
- the record changes state: the old state's step clock stops and the new
  one's starts (owned by whoever may move the record on, from the lifecycle's
  ``who``); a final state stops every clock; a pause state (lifecycle or
  profile ``pause_states``) pauses them and leaving it resumes them;
  reopening starts a new cycle.

A timed job (``check``) looks at running clocks. At ``prebreach_fraction`` of
the target (default 80 %) the owner gets a reminder; at the target an
escalation goes to the next role up the chain with the owner CC'd and the
breach is recorded (超时) against the owner; a clock still running escalates
one step further every ``repeat_after_hours``, counted on the clock's own
calendar from the target (so the steps do not depend on when the job ran). Each notice is a row with a
unique (clock, kind, step), written in the same transaction as its mail, so it
fires once across restarts, replays and workers. After an outage the job
catches up without a storm: a clock far past its target sends only its
current step (the skipped ones are recorded as such), and a person with more
than ``digest_threshold`` notices at once gets one digest mail.
"""
from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import lru_cache

from sqlalchemy import select

from .config import PROFILE_LABELS, Config, HoursConfig, SlaProfile
from .lifecycles import OWNER, SYSTEM, Lifecycles
from .outbox import Outgoing
from .records import Records
from .store.models import Breach, Clock, ClockNotice, Points, Ticket
from .workcal import WorkCalendar, coverage_warnings, load_holidays
from .workflows.commands import DEFAULT_KEYWORDS

log = logging.getLogger(__name__)

CLOCK_NAMES = {"response": "首次响应", "update": "进展更新", "resolution": "解决", "deadline": "时间要求"}
# A record whose data holds ``deadline_at`` (the sales' 时间要求, processor/deadlines.py)
# gets this clock: plain hours up to that moment, owned by ``deadline_owner``;
# only the record's end stops it. Its breach is a late document.
DEADLINE = "deadline"

# The default profiles, from the service documents (see config.example.toml
# for the same with their sources). Used when the config defines none.
DEFAULT_PROFILES = [
    SlaProfile(name="fault_7x24", clock="24x7", response="2h", resolution="48h", source="000 line 86"),
    SlaProfile(name="fault_level1", clock="24x7", resolution="3h", source="004 line 59: 一级 remote restore 3 h"),
    SlaProfile(name="fault_level2", clock="24x7", resolution="7d", source="004 line 59: 二级 7 days"),
    SlaProfile(name="fault_level2_nms", clock="24x7", resolution="1d", source="004 line 59: 二级, network management down"),
    SlaProfile(name="fault_level3", clock="24x7", resolution="10d", source="004 line 59: 三级 10 days"),
    SlaProfile(name="fault_level4", clock="24x7", resolution="10d", source="004 line 59: 四级 10 days"),
    SlaProfile(name="consultation", clock="work", response="1d", source="004 line 59: consultation 1 working day"),
    SlaProfile(name="followup", clock="work", response="1d", resolution="5d", source="regulation art. 17-18"),
    # Steps are keyed by the record's state: 待审批 (售前经理 approval), 待研发审核
    # (研发经理 review), 申请关闭 (the raiser's confirmation).
    SlaProfile(name="workorder", clock="work", steps={"pending_approval": "4h", "rd_review": "1d", "close_requested": "1d"},
               source="regulation art. 44-46"),
    # 待审核 (the 责任销售 reviews), 驳回待重写 (the engineer rewrites). The
    # regulation gives no durations (art. 28): a choice, in working days.
    SlaProfile(name="document", clock="work", steps={"in_review": "2d", "returned": "3d"},
               source="regulation art. 28 (no duration given: default choice)"),
    # 待填写技术部分: the 责任售前 fills in the technical part (art. 36; no duration given).
    SlaProfile(name="implementation", clock="work", steps={"tech_missing": "2d"},
               source="regulation art. 36 (no duration given: default choice)"),
]
DEFAULT_KINDS = {"followup": "followup", "workorder": "workorder", "document": "document",
                 "implementation": "implementation", "confirmation": "document"}
# Keyed by a rule's field name: the work order's `severity` field (label
# 严重程度, synonym 故障级别). A value matches when it starts with the key.
DEFAULT_FIELD_PROFILES = {"severity": {"一级": "fault_level1", "二级": "fault_level2", "三级": "fault_level3",
                                    "四级": "fault_level4"}}
DEFAULT_CHAINS = {
    "followup": ["售前", "售前经理", "技术支持部经理", "技术总监"],
    "workorder": ["售前", "售前经理", "技术支持部经理", "技术总监"],
    # A document waits on the sales or on the engineer: either way the
    # 售前经理 is the first one up.
    "document": ["售前经理", "技术支持部经理", "技术总监"],
    "implementation": ["售前", "售前经理", "技术支持部经理", "技术总监"],
    "confirmation": ["售前经理", "技术支持部经理", "技术总监"],
    "*": ["售前", "售前经理", "技术支持部经理", "技术总监"],
}
def _hours(minutes: float) -> str:
    """Minutes as hours the way people write them: 9, 44.5 (never 9.0)."""
    h = round(minutes / 60, 1)
    return str(int(h)) if h == int(h) else str(h)


def _hm(s: str) -> time:
    h, m = s.split(":")
    return time(int(h), int(m))


@dataclass
class _Notice:
    clock: Clock
    ticket: Ticket
    kind: str  # prebreach | breach | escalation
    step: int
    to: list[str]
    cc: list[str]
    role: str  # the role escalated to ("" for a reminder)
    elapsed: float
    target: float
    names: list[str]  # the To recipients' names, for the greeting
    person: str  # whom the breach is booked against (as `report sla` shows it)
    level: int = 0  # the role's level above the owner in the chain (1 = the first one up)
    levels: int = 0  # how many levels the chain has above the owner
    earlier: tuple[str, ...] = ()  # roles this clock was escalated to before (mails that went out)


class Sla:
    def __init__(self, cfg: Config, lifecycles: Lifecycles | None = None):
        self.cfg = cfg
        # The record kinds' lifecycles: which states are final, which have a
        # step clock and who owns it, which clocks start, pause and stop.
        self.lifecycles = lifecycles if lifecycles is not None else Lifecycles()
        c = cfg.sla
        self.profiles = {p.name: p for p in (c.profiles or DEFAULT_PROFILES)}
        self.kinds = c.kinds or (DEFAULT_KINDS if not c.profiles else {})
        self.field_profiles = c.field_profiles or (DEFAULT_FIELD_PROFILES if not c.profiles else {})
        self.chains = {**DEFAULT_CHAINS, **c.chains}
        self.overrides = load_holidays(cfg.path(c.holidays), missing_ok=True)
        self.enabled = c.enabled
        # The reply keywords (a transition whose command is one is taken by replying).
        self.keywords = set(DEFAULT_KEYWORDS) | set(cfg.workflows.get("commands", {}).get("keywords", {}) or {})

    # -- calendars and targets ------------------------------------------------
    @lru_cache(maxsize=64)
    def _calendar(self, mode: str, start: str, end: str) -> WorkCalendar:
        if mode == "24x7":
            return WorkCalendar.always(self.cfg.system.timezone)
        return WorkCalendar(self.cfg.system.timezone, _hm(start), _hm(end), overrides=self.overrides)

    def calendar(self, profile: SlaProfile | None, mode: str | None = None) -> WorkCalendar:
        hours: HoursConfig = (profile.hours if profile and profile.hours else self.cfg.sla.hours)
        return self._calendar(mode or (profile.clock if profile else "work"), hours.start, hours.end)

    def warnings(self, now: datetime) -> list[str]:
        return coverage_warnings(self.calendar(None, "work"), now) + self.state_warnings()

    def state_warnings(self) -> list[str]:
        """Profile steps and pause states that no lifecycle lets run a clock
        (they would be ignored), in Chinese; none without lifecycles."""
        lcs = list(self.lifecycles)
        if not lcs:
            return []
        steps = {s for lc in lcs for s in lc.clocks.steps}
        active = {s for lc in lcs for s in lc.open_states}
        out = []
        for p in self.profiles.values():
            for st in p.steps:
                if st not in steps:
                    out.append(f"警告：时限方案 {p.name} 的 steps 中的状态 {st!r} 不是任何记录生命周期中的计时环节"
                               f"（[lifecycle.<记录类型>.clocks] steps），不会计时")
            for st in p.pause_states:
                if st not in active:
                    out.append(f"警告：时限方案 {p.name} 的 pause_states 中的状态 {st!r} 不是任何记录生命周期中"
                               f"未结束的状态，不会暂停计时")
        return out

    def minutes(self, profile: SlaProfile, duration: str) -> float:
        m = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([mhd])\s*$", duration)
        n, unit = float(m.group(1)), m.group(2)
        if unit == "m":
            return n
        if unit == "h":
            return n * 60
        cal = self.calendar(profile)
        return n * (1440 if cal.is_always else cal._day_length.total_seconds() / 60)

    def profiles_for(self, ticket: Ticket) -> list[SlaProfile]:
        """The record's profiles: one picked by a field of the mail (e.g. 故障级别),
        then its kind's (which may add step clocks). The first to define a
        clock wins."""
        data = ticket.data or {}
        values = data.get("values") if isinstance(data.get("values"), dict) else {}
        out: list[SlaProfile] = []
        for fld, mapping in self.field_profiles.items():
            v = str(data.get(fld) or values.get(fld) or "").strip()
            for key, prof in mapping.items():
                if v.startswith(key) and prof in self.profiles:
                    out.append(self.profiles[prof])
                    break
        name = data.get("sla_profile") or self.kinds.get(ticket.kind)
        if name in self.profiles and self.profiles[name] not in out:
            out.append(self.profiles[name])
        return out

    def profile_for(self, ticket: Ticket) -> SlaProfile | None:
        ps = self.profiles_for(ticket)
        return ps[0] if ps else None

    def _steps(self, ticket: Ticket) -> tuple[dict[str, tuple[SlaProfile, str]], set[str]]:
        """(state -> (profile, duration) of its step clock, states that pause
        the record clocks): the lifecycle says which states have a step clock
        and which pause; the profiles give the durations (and may add pause
        states)."""
        lc = self.lifecycles.get(ticket.kind)
        steps: dict[str, tuple[SlaProfile, str]] = {}
        pause: set[str] = set(lc.clocks.pause) if lc else set()
        for p in self.profiles_for(ticket):
            for state, d in p.steps.items():
                if lc is not None and state in lc.clocks.steps:
                    steps.setdefault(state, (p, d))
            pause |= set(p.pause_states)
        return steps, pause

    def _final(self, ticket: Ticket, state: str | None) -> bool:
        return self.lifecycles.is_final(ticket.kind, state or "")

    def state_name(self, kind: str, state: str) -> str:
        return self.lifecycles.state_name(kind, state)

    def profile_label(self, name: str | None) -> str:
        """What people read for a profile (a clock's or breach's ``profile``),
        also for one no longer configured."""
        p = self.profiles.get(name or "")
        return p.label if p is not None else PROFILE_LABELS.get(name or "", name or "")

    # -- clock arithmetic -----------------------------------------------------
    def _cal_of(self, clock: Clock) -> WorkCalendar:
        return self.calendar(self.profiles.get(clock.profile), clock.mode)

    def elapsed(self, clock: Clock, now: datetime) -> float:
        cal = self._cal_of(clock)
        end = clock.stopped_at or now
        paused = clock.paused_minutes
        if clock.paused_since is not None:
            paused += cal.working_minutes(clock.paused_since, end)
        return max(0.0, cal.working_minutes(clock.started_at, end) - paused)

    def _due(self, clock: Clock, now: datetime) -> datetime:
        cal = self._cal_of(clock)
        remaining = max(0.0, clock.target_minutes - self.elapsed(clock, now))
        return cal.add(now, minutes=remaining)

    # -- events -----------------------------------------------------------------
    def apply_events(self, s: Records, now: datetime, staff_reply_ticket: Ticket | None = None) -> None:
        """Turn the record changes the batch's record service saw since the
        last call (``s.events``: records opened, states changed) into clock
        changes, in memory (written with the batch)."""
        events, s.events[:] = list(s.events), []
        if not self.enabled:
            return
        for kind, ticket, old, new in events:
            if kind == "opened":
                self._opened(s, ticket, now, new)
            elif kind == "deadline":  # a new 时间要求: the clock runs again for it
                for c in self._running(s, ticket, DEADLINE):
                    self._stop(c, now)
                if not self._final(ticket, ticket.state):
                    self._deadline(s, ticket, now)
            else:
                self._state_changed(s, ticket, old, new, now)
        if staff_reply_ticket is not None:
            self._staff_reply(s, staff_reply_ticket, now)
            # The report's 回执 announces the follow-up it opened: an answer in
            # the report's thread is an answer about the follow-up too.
            linked = (staff_reply_ticket.data or {}).get("followup")
            if linked:
                ft = s.ticket_by_token(linked)
                if ft is not None:
                    self._staff_reply(s, ft, now)

    def _running(self, s: Records, ticket: Ticket, name: str | None = None) -> list[Clock]:
        return [c for c in s.clocks(ticket) if not name or c.name == name]

    def _start(self, s: Records, ticket: Ticket, profile: SlaProfile, name: str, duration: str, owner: str,
               now: datetime) -> None:
        cycle = s.next_cycle(ticket, name)
        c = Clock(ticket_id=ticket.id, name=name, cycle=cycle, profile=profile.name, mode=profile.clock,
                  target_minutes=int(round(self.minutes(profile, duration))), owner=owner, status="running",
                  started_at=now, paused_minutes=0.0)
        c.due_at = self.calendar(profile).add(now, minutes=c.target_minutes)
        s.add_clock(c)

    def _owner(self, ticket: Ticket, state: str | None = None) -> str:
        """A step clock's owner: who may take the record out of the state
        (its lifecycle's ``who``, roles from the rule's settings): a party's
        name from the record, or a role. Other clocks: the record's owner."""
        lc = self.lifecycles.get(ticket.kind)
        who = lc.step_owner(state, lc.settings_in(self.cfg.workflows)) if lc is not None and state else ""
        if who == "owner":
            return ticket.owner or ""
        if who:
            return (ticket.data or {}).get(who) or who
        return ticket.owner or ""

    def _opened(self, s, ticket: Ticket, now: datetime, state: str | None = None) -> None:
        """Start the record's clocks, as opened (or reopened) in ``state``
        (its current state by default)."""
        state = state or ticket.state
        lc = self.lifecycles.get(ticket.kind)
        if lc is None or lc.is_final(state):
            return
        for name in lc.clocks.start:
            for profile in self.profiles_for(ticket):
                d = getattr(profile, name)
                if d:
                    self._start(s, ticket, profile, name, d, self._owner(ticket), now)
                    break
        steps, _ = self._steps(ticket)
        if state in steps:
            p, d = steps[state]
            self._start(s, ticket, p, f"step:{state}", d, self._owner(ticket, state), now)
        self._deadline(s, ticket, now)

    def _deadline(self, s, ticket: Ticket, now: datetime) -> None:
        """The sales' time requirement as a clock (once per cycle)."""
        data = ticket.data or {}
        try:
            due = datetime.fromisoformat(data["deadline_at"])
        except (KeyError, TypeError, ValueError):
            return
        if self._running(s, ticket, DEADLINE):
            return
        c = Clock(ticket_id=ticket.id, name=DEADLINE, cycle=s.next_cycle(ticket, DEADLINE), profile=DEADLINE,
                  mode="24x7", target_minutes=max(1, int((due - now).total_seconds() // 60)),
                  owner=data.get("deadline_owner") or ticket.owner or "", status="running", started_at=now,
                  paused_minutes=0.0)
        c.due_at = due
        s.add_clock(c)

    def _stop(self, clock: Clock, now: datetime) -> None:
        if clock.paused_since is not None:
            clock.paused_minutes += self._cal_of(clock).working_minutes(clock.paused_since, now)
            clock.paused_since = None
        clock.status = "stopped"
        clock.stopped_at = now

    def _state_changed(self, s, ticket: Ticket, old: str, new: str, now: datetime) -> None:
        profile = self.profile_for(ticket)
        steps, pause = self._steps(ticket)
        for c in self._running(s, ticket, f"step:{old}"):
            self._stop(c, now)
        if self._final(ticket, new):
            for c in self._running(s, ticket):
                self._stop(c, now)
            return
        if profile is None:
            return
        if self._final(ticket, old):  # reopened: a new cycle
            self._opened(s, ticket, now, new)
            return
        if new in steps:
            p, d = steps[new]
            self._start(s, ticket, p, f"step:{new}", d, self._owner(ticket, new), now)
        if new in pause and old not in pause:
            for c in self._running(s, ticket):
                if c.status == "running" and not c.name.startswith("step:"):
                    c.status, c.paused_since = "paused", now
        elif old in pause and new not in pause:
            for c in self._running(s, ticket):
                if c.status == "paused":
                    c.paused_minutes += self._cal_of(c).working_minutes(c.paused_since, now)
                    c.paused_since, c.status = None, "running"
                    c.due_at = self._due(c, now)

    def _staff_reply(self, s, ticket: Ticket, now: datetime) -> None:
        lc = self.lifecycles.get(ticket.kind)
        if lc is None:
            return
        for name in lc.clocks.stop_on_reply:
            for c in self._running(s, ticket, name):
                self._stop(c, now)
        profile = self.profile_for(ticket)
        for name in lc.clocks.restart_on_reply:
            for c in self._running(s, ticket, name):
                self._stop(c, now)
                d = getattr(profile, name, None) if profile is not None else None
                if d:
                    self._start(s, ticket, profile, name, d, c.owner, now)

    # -- the timed check ----------------------------------------------------------
    def check(self, rt, queue) -> int:
        """Send what is due now; returns the number of notices recorded."""
        if not self.enabled:
            return 0
        now = rt.clock()
        frac = self.cfg.sla.prebreach_fraction
        repeat = self.cfg.sla.repeat_after_hours * 60
        with rt.store.session() as s, s.begin():
            clocks = list(s.scalars(select(Clock).where(Clock.status == "running")))
            if not clocks:
                return 0
            done: set[tuple[int, str, int]] = set()
            sent_steps: dict[int, list[int]] = {}  # clock -> escalation steps whose mail went out
            for n in s.scalars(select(ClockNotice).where(ClockNotice.clock_id.in_([c.id for c in clocks]))):
                done.add((n.clock_id, n.kind, n.step))
                if not n.cancelled and n.kind in ("breach", "escalation"):
                    sent_steps.setdefault(n.clock_id, []).append(n.step)
            notices: list[_Notice] = []
            pointed: set[tuple[str, str]] = set()
            near = [(c, el) for c in clocks if (el := self.elapsed(c, now)) >= frac * c.target_minutes]
            ids = list({c.ticket_id for c, _el in near})
            tickets = {t.id: t for i in range(0, len(ids), 500)
                       for t in s.scalars(select(Ticket).where(Ticket.id.in_(ids[i:i + 500])))}
            for c, el in near:
                ticket = tickets.get(c.ticket_id)
                if ticket is None:
                    continue  # a clock whose record is gone: nothing to remind about
                owners = self._owners(rt, c)
                owner = owners[0] if len(owners) == 1 else None
                # 超时 is recorded against a person: the role's holder when one person holds it.
                person = owners[0].name if len(owners) == 1 else c.owner
                if el < c.target_minutes:
                    if (c.id, "prebreach", 0) not in done and owners:
                        notices.append(_Notice(c, ticket, "prebreach", 0, [p.email for p in owners], [], "", el,
                                               c.target_minutes, [p.name for p in owners], person))
                    continue
                # At or past the target: the breach, then one step per `repeat` minutes.
                over = el - c.target_minutes
                step = 1 + int(math.floor(over / repeat)) if repeat > 0 else 1
                if (c.id, "prebreach", 0) not in done:
                    s.add(ClockNotice(clock_id=c.id, kind="prebreach", step=0, cancelled=True, created_at=now))
                if c.breached_at is None:
                    c.breached_at = now
                    s.add(Breach(clock_id=c.id, ticket_id=ticket.id, person=person, clock=c.name, profile=c.profile,
                                 due_at=c.due_at, breached_at=now))
                    # -5 once per overdue fault record and person, however many of its clocks run out.
                    if (self.cfg.sla.points and ticket.kind in ("workorder", "fault")
                            and (person, ticket.number) not in pointed
                            and s.scalar(select(Points.id).where(Points.person == person, Points.reason == "overdue_fault",
                                                                 Points.ref == ticket.number)) is None):
                        pointed.add((person, ticket.number))
                        s.add(Points(person=person, points=-5, reason="overdue_fault", ref=ticket.number, at=now))
                top = max((st for (cid, k, st) in done if cid == c.id and k in ("breach", "escalation")), default=0)
                if step <= top:
                    continue
                chain = self.chains.get(ticket.kind) or self.chains["*"]
                for skipped in range(top + 1, step):  # caught up after an outage: record, do not send
                    s.add(ClockNotice(clock_id=c.id, kind="breach" if skipped == 1 else "escalation", step=skipped,
                                      cancelled=True, created_at=now))
                role, people, level, levels = self._escalation_target(rt, chain, owner, step, c.owner)
                if not people or (top and self._escalation_target(rt, chain, owner, top, c.owner)[0] == role):
                    continue  # nobody above, or the top of the chain already has it
                earlier = tuple(r for r in dict.fromkeys(self._escalation_target(rt, chain, owner, st, c.owner)[0]
                                                         for st in sorted(sent_steps.get(c.id, ())) if st < step)
                                if r and r != role)
                cc = [p.email for p in owners if p.email not in [q.email for q in people]]
                notices.append(_Notice(c, ticket, "breach" if step == 1 else "escalation", step,
                                       [p.email for p in people], cc, role, el, c.target_minutes,
                                       [p.name for p in people], person, level, levels, earlier))
                c.level = step
                c.next_escalation_at = now + timedelta(minutes=repeat)
            self._send(rt, queue, s, notices, now)
            return len(notices)

    def _owners(self, rt, clock: Clock) -> list:
        """The people responsible: the named person, or everyone holding the
        role a step clock names (e.g. 售前经理)."""
        if not clock.owner:
            return []
        p = rt.directory.by_name(clock.owner)
        return [p] if p is not None else list(rt.directory.with_role(clock.owner))

    def _escalation_target(self, rt, chain: list[str], owner, step: int, owner_label: str = ""):
        """(role, its holders, its level above the owner, the levels above
        the owner): the role `step` levels above the owner's place in the
        chain (the last role of the chain once the steps go past it),
        skipping roles nobody holds."""
        pos = chain.index(owner_label) if owner_label in chain else -1
        if owner is not None and pos < 0:
            for i, r in enumerate(chain):
                if r in owner.roles:
                    pos = i
                    break
        want = min(pos + step, len(chain) - 1)
        for i in list(range(want, len(chain))) + list(range(want - 1, pos, -1)):
            people = [p for p in rt.directory.with_role(chain[i]) if owner is None or p.name != owner.name]
            if people:
                return chain[i], people, i - pos, len(chain) - 1 - pos
        return "", [], 0, 0

    def _send(self, rt, queue, s, notices: list[_Notice], now: datetime) -> None:
        by_person: dict[str, list[_Notice]] = {}
        for n in notices:
            by_person.setdefault(n.to[0], []).append(n)
        for addr, group in by_person.items():
            if len(group) > self.cfg.sla.digest_threshold:
                items = [self._vars(rt, n, now) for n in group]
                who = rt.directory.by_email(addr)
                out = Outgoing("sla_digest", to=[addr], kind="escalation", variables={
                    "system": self.cfg.system, "items": items, "now": now, "count": len(items),
                    "greeting": who.name if who is not None else ""})
                (mid,) = queue.put(s, [out], now=now)
                for n in group:
                    s.add(ClockNotice(clock_id=n.clock.id, kind=n.kind, step=n.step, recipients=[addr],
                                      outbox_message_id=mid, created_at=now))
                continue
            for n in group:
                tpl = "sla_prebreach" if n.kind == "prebreach" else "sla_escalation"
                out = Outgoing(tpl, to=n.to, cc=n.cc, kind="escalation" if n.kind != "prebreach" else "notice",
                               ticket_token=n.ticket.token, variables={"system": self.cfg.system, **self._vars(rt, n, now)})
                (mid,) = queue.put(s, [out], now=now)
                s.add(ClockNotice(clock_id=n.clock.id, kind=n.kind, step=n.step, recipients=n.to + n.cc,
                                  outbox_message_id=mid, created_at=now))

    def _vars(self, rt, n: _Notice, now: datetime) -> dict:
        c, t = n.clock, n.ticket
        # Quoted once: “首次响应”, “待审批”环节 (the templates add no quotes of their own).
        name = (f"“{CLOCK_NAMES[c.name]}”" if c.name in CLOCK_NAMES
                else f"“{self.state_name(t.kind, c.name[5:])}”环节" if c.name.startswith("step:") else f"“{c.name}”")
        tz = rt.tz
        return {
            "ticket": t, "number": t.number, "project": t.project, "state": self.state_name(t.kind, t.state), "owner": c.owner,
            "greeting": "、".join(n.names), "person": n.person,
            "clock": name, "kind": n.kind, "step": n.step, "role": n.role,
            "level": n.level, "levels": n.levels, "earlier": "、".join(n.earlier or []),
            # Hours as people write them (9, 44.5), and which hours: working or around the clock.
            "unit": "个工作小时" if c.mode == "work" else "个自然小时（全天计时）",
            "target_hours": _hours(c.target_minutes), "elapsed_hours": _hours(n.elapsed),
            "overdue_hours": _hours(max(0.0, n.elapsed - c.target_minutes)),
            "started": c.started_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
            "due": c.due_at.astimezone(tz).strftime("%Y-%m-%d %H:%M") if c.due_at else "",
            "working": c.mode == "work", "stop": self.stop_words(t, c.name),
        }

    def stop_words(self, ticket: Ticket, clock: str) -> dict:
        """What stops ``clock`` of ``ticket``, from its lifecycle
        (``Lifecycle.stop``), for the mails to say exactly that:

        - ``by``: ``reply`` (any staff reply in the record's thread),
          ``restart`` (a reply starts it again), ``leave`` (a step clock:
          only a step out of ``state``), ``final`` (only the record's end);
        - ``state``: the step's state, ``finals``: the final states (Chinese);
        - ``groups``: the reply commands that stop it, by who may send them:
          ``{"who": "售前经理", "commands": [{"text": "驳回：原因", "when": ""}]}``
          (``when``: the states a command to end the record is taken from);
        - ``events``: steps that are not reply commands (the system's, a
          corrected resubmission): ``{"text": "成功", "who": "系统"}``."""
        lc = self.lifecycles.get(ticket.kind)
        out = {"by": "final", "state": "", "finals": "", "groups": [], "events": []}
        if lc is None:
            return out
        stop = lc.stop(clock)
        settings = lc.settings_in(self.cfg.workflows)
        data = ticket.data or {}

        def person(w: str) -> str:
            if w == SYSTEM:
                return "系统"
            name = ticket.owner if w == OWNER else data.get(w) if w in lc.parties else ""
            return f"{lc.party_name(w)}（{name}）" if name else lc.party_name(w)

        groups: dict[str, list[dict]] = {}
        for t in stop.transitions:
            who = "或".join(person(w) for w in lc.resolve(t.who, settings))
            text = f"{t.command}：{t.needs}" if t.needs else t.command
            if tuple(t.who) == (SYSTEM,) or t.command not in self.keywords:
                out["events"].append({"text": text, "who": who})
                continue
            when = "" if stop.by == "leave" else "、".join(lc.name(x) for x in t.sources if not lc.is_final(x))
            groups.setdefault(who, []).append({"text": text, "when": when})
        out.update(by=stop.by, state=lc.name(stop.state) if stop.state else "",
                   finals="、".join(lc.name(x) for x in lc.final),
                   groups=[{"who": w, "commands": cs} for w, cs in groups.items()])
        return out
