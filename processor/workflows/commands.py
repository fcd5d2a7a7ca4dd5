"""Commands by reply: staff act on a record by answering in its thread.

The first non-empty line of the reply, after quoted history is stripped,
carries the keyword, e.g. ``同意``, ``驳回：原因``, ``指派：王工``,
``满意度：4``. Keywords and their synonyms are configurable in the config
file::

    [workflows.commands.keywords]
    "同意" = ["同意", "批准", "可以"]

A record kind's lifecycle (its rule file's ``[lifecycle.<kind>]``) declares
the transitions; the ``StateMachine`` checks the command against the current state and the
sender's permission and answers with the standard replies:

- not allowed: no change, a reply saying who may do it (``command_denied``);
- not possible in this state: a reply naming the state and what is possible
  from it (``command_wrong_state``);
- accepted: the workflow's own confirmation to the people involved.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Callable

from ..directory import Person
from ..lifecycles import OWNER, SYSTEM, Lifecycle, Transition
from ..mail.subject import fold
from ..store.models import Ticket
from . import states
from .base import Context

# Canonical keyword -> synonyms (the canonical word itself is always accepted).
DEFAULT_KEYWORDS: dict[str, tuple[str, ...]] = {
    "同意": ("同意", "批准", "准予", "可以提交"),
    "驳回": ("驳回", "退回", "不同意", "拒绝"),
    "指派": ("指派", "分配", "转交"),
    "申请关闭": ("申请关闭", "请求关闭", "已修复"),
    "确认关闭": ("确认关闭", "同意关闭", "确认解决"),
    "重新打开": ("重新打开", "重开", "未解决"),
    "转定制": ("转定制", "转定制开发"),
    "撤回": ("撤回", "撤销"),
    "已解决": ("已解决", "问题已解决"),
    "满意度": ("满意度", "满意程度", "评分"),
    "研发用时": ("研发用时", "研发时间", "净研发时间"),
    "通过": ("通过", "审核通过", "审批通过", "已通过"),
    "确认": ("确认", "已确认", "确认无误", "可以发给客户"),
}

_SEP = re.compile(r"^\s*[:：]?\s*")


@dataclass(frozen=True)
class Command:
    keyword: str  # canonical
    arg: str  # the rest of the line after the keyword and an optional colon
    line: str  # the whole first line


def keywords(ctx: Context) -> dict[str, tuple[str, ...]]:
    """Defaults overlaid by ``[workflows.commands.keywords]`` in the config."""
    table = dict(DEFAULT_KEYWORDS)
    for k, syn in ctx.cfg.workflows.get("commands", {}).get("keywords", {}).items():
        table[k] = tuple([k, *syn]) if isinstance(syn, list) else (k,)
    return table


def first_line(body: str) -> str:
    """The first non-empty line that is not quoted (``>``): a reply with
    nothing typed above the quote carries no command."""
    for line in (body or "").splitlines():
        line = fold(line).strip()
        if line and not line.startswith(">"):
            return line
    return ""


def starts_with_any(text: str, words) -> str | None:
    """The word ``text`` starts with (ignoring leading punctuation), or None."""
    core = re.sub(r"^[\s\W_]+", "", fold(text))
    for w in words:
        if w and core.startswith(fold(w)):
            return w
    return None


def parse(ctx: Context, allowed: tuple[str, ...] | None = None) -> Command | None:
    """The command in the first non-empty line of the reply, or None.

    The longest matching synonym wins (申请关闭 before 关闭-like prefixes)."""
    line = first_line(ctx.mail.body)
    if not line:
        return None
    core = re.sub(r"^[\s\W_]+", "", line)
    best: tuple[int, str, str] | None = None
    for canon, syns in keywords(ctx).items():
        if allowed is not None and canon not in allowed:
            continue
        for syn in {canon, *syns}:
            s = fold(syn)
            if s and core.startswith(s) and (best is None or len(s) > best[0]):
                best = (len(s), canon, s)
    if best is None:
        return None
    arg = _SEP.sub("", core[best[0]:], count=1).strip()
    return Command(best[1], arg, line)


_ARG_SEP = re.compile(r"^[\s,，.。;；、:：!！]+")


def raw_arg(ctx: Context, arg: str) -> str:
    """A command's argument as the sender wrote it (``parse`` folds it to
    half-width: "，" would become ","), without a leading separator
    ("同意，…", "驳回，原因")."""
    want = _ARG_SEP.sub("", arg)
    if not want:
        return ""
    raw = next((ln.strip() for ln in (ctx.mail.body or "").splitlines() if ln.strip()), "")
    for k in range(len(raw)):
        tail = _ARG_SEP.sub("", raw[k:])
        if _ARG_SEP.sub("", fold(tail)) == want:
            return tail.strip()
    return want


def rest_of_reply(ctx: Context) -> str:
    """The reply's text after the command line, up to a signature separator."""
    out: list[str] = []
    started = False
    for ln in (ctx.mail.body or "").splitlines():
        if not started:
            started = bool(ln.strip())
            continue
        if ln.strip() in ("--", "-- ", "——", "-----"):
            break
        out.append(ln.rstrip())
    return "\n".join(out).strip()


def bare_arg(arg: str) -> str:
    """An argument without a leading separator."""
    return _ARG_SEP.sub("", arg)


# -- state machines -----------------------------------------------------------


@dataclass
class StateMachine:
    """A record's lifecycle as keyword commands: the declared transitions
    whose command is a keyword (not an event such as 重新提交) and that a
    person may take (not ``system``), with ``who`` resolved against the
    rule's settings."""
    lifecycle: Lifecycle
    transitions: list[Transition]
    party_names: dict[str, str] = field(default_factory=dict)  # party key -> Chinese, e.g. raiser -> 故障提出人

    @classmethod
    def of(cls, ctx: Context, kind: str, ticket: Ticket | None = None) -> "StateMachine":
        lc = ctx.lifecycles[kind]
        words = keywords(ctx)
        settings = ctx.settings
        trs = [replace(t, who=lc.resolve(t.who, settings)) for t in lc.transitions
               if t.command in words and tuple(t.who) != (SYSTEM,)]
        data = (ticket.data or {}) if ticket is not None else {}
        parties = {k: f"{v}（{data[k]}）" if data.get(k) else v for k, v in lc.parties.items()}
        # A role is named with the people who hold it: 售前经理（赵六）, so a
        # refusal tells the sender whom to ask.
        for t in trs:
            for a in t.who:
                if a in parties or a == SYSTEM:
                    continue
                if a == OWNER:
                    if ticket is not None and ticket.owner:
                        parties[a] = f"{lc.party_name(a)}（{ticket.owner}）"
                    continue
                holders = [p.name for p in ctx.directory.with_role(a)]
                if 0 < len(holders) <= 3:
                    parties[a] = f"{lc.party_name(a)}（{'、'.join(holders)}）"
        return cls(lc, trs, parties)

    @property
    def kind(self) -> str:
        return self.lifecycle.kind

    def commands(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t.command for t in self.transitions))

    def possible(self, state: str) -> list[Transition]:
        return [t for t in self.transitions if state in t.sources]

    def who(self, t: Transition) -> str:
        return "、".join(self.party_names.get(a, self.lifecycle.party_name(a)) for a in t.who)

    def may(self, t: Transition, ticket: Ticket, person: Person | None) -> bool:
        if person is None:
            return False
        for a in t.who:
            if a in person.roles:
                return True
            if a == OWNER and ticket.owner == person.name:
                return True
            if (ticket.data or {}).get(a) == person.name:
                return True
        return False

    def handle(self, ctx: Context, ticket: Ticket, cmd: Command,
               on_transition: Callable[[Context, Ticket, Transition, Command, str], None] | None = None, *,
               extra: dict | None = None) -> bool:
        """Apply ``cmd`` to ``ticket``. Returns True if the state changed.

        Refusals are answered here. The state changes through
        ``states.change``, which runs the transition's named effect (the
        workflow's own work and its confirmations; ``extra`` is handed to
        it); ``on_transition(ctx, ticket, t, cmd, old)``, if given, runs
        after that."""
        name = self.lifecycle.name
        candidates = [t for t in self.transitions if t.command == cmd.keyword]
        if not candidates:
            return False
        here = [t for t in candidates if ticket.state in t.sources]
        if not here:
            nxt = self.possible(ticket.state)
            ctx.reply("command_wrong_state", ticket=ticket, command=cmd.keyword, state=name(ticket.state),
                      possible=[(t.command, self.who(t)) for t in nxt])
            ctx.audit(self.kind, ticket.number, "command_refused", command=cmd.keyword, reason="wrong_state",
                      state=ticket.state)
            ctx.decide("wrong_state", command=cmd.keyword, state=name(ticket.state))
            return False
        t = next((t for t in here if self.may(t, ticket, ctx.sender)), None)
        if t is None:
            t0 = here[0]
            ctx.reply("command_denied", ticket=ticket, command=cmd.keyword, who=self.who(t0),
                      state=name(ticket.state))
            ctx.audit(self.kind, ticket.number, "command_refused", command=cmd.keyword, reason="not_allowed")
            ctx.decide("not_permitted", who=ctx.sender.name if ctx.sender else ctx.mail.from_addr, command=cmd.keyword)
            return False
        if t.needs and not cmd.arg:
            ctx.reply("command_needs_arg", ticket=ticket, command=cmd.keyword, what=t.needs)
            ctx.audit(self.kind, ticket.number, "command_refused", command=cmd.keyword, reason="missing_arg")
            ctx.decide("missing_argument", command=cmd.keyword, needs=t.needs)
            return False
        declared = self.lifecycle.find(t.command, ticket.state, t.target)
        old = states.change(ctx, ticket, declared, arg=cmd.arg, extra=extra)
        ctx.decide("state_changed", number=ticket.number, before=name(old), after=name(t.target), command=cmd.keyword)
        if on_transition is not None:
            on_transition(ctx, ticket, t, cmd, old)
        return True
