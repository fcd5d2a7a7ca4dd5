"""What a workflow action sees and does.

An action is a small named function ``action(ctx)`` registered with
``@action("name")``; a rule refers to it by name (``do.action``). Replies in
a ticket's thread go to the handler registered for the ticket's kind with
``@on_reply("kind")``. Actions change state through ``ctx.repo`` (the batch's
record service, ``processor.records``) and queue
mail through ``ctx.reply`` / ``ctx.send``; they never do I/O themselves.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable
from zoneinfo import ZoneInfo

from ..config import Config
from ..directory import Directory, Person
from ..lifecycles import Lifecycles
from ..mail.parse import ParsedMail
from ..messages import Messages
from ..messages import default as default_messages
from ..mail.subject import remove_ticket_token
from ..outbox import Outgoing
from ..reasons import Decision
from ..rules.engine import Match, RuleSet
from ..store.models import Message, Ticket
from ..records import Records
from .settings import Settings, for_rule

ACTIONS: dict[str, Callable[["Context"], None]] = {}
REPLY_HANDLERS: dict[str, Callable[["Context", Ticket], None]] = {}
# Hooks tried before the kind's reply handler (e.g. a 满意度 answer to a
# 回访 of any record kind); the first that returns True has handled the mail.
REPLY_HOOKS: list[Callable[["Context", Ticket], bool]] = []


def action(name: str):
    def deco(fn):
        ACTIONS[name] = fn
        return fn
    return deco


def reply_hook(fn):
    REPLY_HOOKS.append(fn)
    return fn


def on_reply(kind: str):
    def deco(fn):
        REPLY_HANDLERS[kind] = fn
        return fn
    return deco


@dataclass
class Context:
    cfg: Config
    mail: ParsedMail
    message: Message
    sender: Person | None
    directory: Directory
    repo: Records  # the batch's record service: the workflows' only way to the store
    now: datetime
    raw: bytes = b""
    match: Match | None = None
    # When the mail being processed was written, when that is not this mail's
    # Date: a report confirmed by a reply is dated by the report.
    written: datetime | None = None
    # The loaded rules, so a reply handler can bind the rule its ticket came from.
    rules: RuleSet | None = None
    outgoing: list[Outgoing] = field(default_factory=list)
    # What the action decided, as data (a code of templates/messages.toml and
    # its parameters), and what else it did; stored on the message row.
    decision: Decision | None = None
    also: list[Decision] = field(default_factory=list)
    # The wording of problems and outcomes (templates/messages.toml).
    messages: Messages = field(default_factory=default_messages)

    def decide(self, code: str, problems=(), **params) -> None:
        """Record what became of the mail: an [outcome] code, its parameters
        and the problems found (stored with it)."""
        if problems:
            params["_problems"] = [p.as_dict() for p in problems]
        self.decision = Decision(code, params)

    def did(self, code: str, **params) -> None:
        """Record something else the action did, shown after the outcome."""
        self.also.append(Decision(code, params))

    def texts(self, problems) -> list[str]:
        """The Chinese sentence of each problem (for replies and records)."""
        return self.messages.problems(problems)

    @property
    def settings(self) -> Settings | None:
        """The matched rule's typed settings (its action's model: the rule's
        [settings] overlaid by the config's [workflows.<rule>]), validated
        once per rule; None without a rule."""
        m = self.match
        hit = self.__dict__.get("_settings")
        if hit is not None and hit[0] is m:
            return hit[1]
        st = for_rule(m.rule, self.cfg) if m is not None else None
        self.__dict__["_settings"] = (m, st)  # per mail: ctx.match may be bound later (a reply handler)
        return st

    @property
    def lifecycles(self) -> Lifecycles:
        """The record kinds' lifecycles, declared in the loaded rules."""
        return self.rules.lifecycles if self.rules is not None else Lifecycles()

    def template(self, role: str, default: str) -> str:
        if self.match:
            return self.match.rule.templates.get(role, default)
        return default

    def _thread(self) -> tuple[str | None, list[str]]:
        refs = list(self.mail.references)
        if self.mail.message_id and self.mail.message_id not in refs:
            refs.append(self.mail.message_id)
        return self.mail.message_id, refs

    def base_vars(self) -> dict:
        return {
            "sender": self.sender,
            "sender_name": self.sender.name if self.sender else (self.mail.from_name or self.mail.from_addr),
            "subject": self.mail.subject,
            # The subject without reply/forward prefixes and ticket token.
            "topic": remove_ticket_token(self.mail.subject_norm).strip() or self.mail.subject,
            "mail_date": self.mail.date,
            "now": self.now,
            "system": self.cfg.system,
        }

    def reply(self, template: str, *, ticket: Ticket | None = None, cc: list[str] | None = None, **variables) -> Outgoing:
        """Answer the sender, in the thread of their mail."""
        irt, refs = self._thread()
        out = Outgoing(template=template, to=[self.mail.from_addr], cc=list(cc or []),
                       variables={**self.base_vars(), **variables, "ticket": ticket}, kind="reply",
                       in_reply_to=irt, references=refs, ticket_token=ticket.token if ticket else None, ticket=ticket)
        self.outgoing.append(out)
        return out

    def send(self, template: str, *, to: list[str], cc: list[str] | None = None, reply_to: list[str] | None = None,
             ticket: Ticket | None = None, kind: str = "notice", attach_original: bool = False, **variables) -> Outgoing:
        """A notice, escalation or forward, From the system (never as the sender)."""
        irt, refs = self._thread()
        out = Outgoing(template=template, to=list(to), cc=list(cc or []), reply_to=list(reply_to or []),
                       variables={**self.base_vars(), **variables, "ticket": ticket}, kind=kind,
                       in_reply_to=irt, references=refs, ticket_token=ticket.token if ticket else None, ticket=ticket)
        if attach_original and self.raw and len(self.raw) <= self.cfg.limits.max_forward_total:
            out.attachments.append(("original.eml", "message/rfc822", self.raw))
        self.outgoing.append(out)
        return out

    def audit(self, entity: str, entity_id, action_name: str, **detail) -> None:
        self.repo.audit(entity, str(entity_id), action_name, message=self.message,
                        actor=self.sender.name if self.sender else self.mail.from_addr, at=self.now, **detail)


# -- times, in the configured zone ----------------------------------------------


def tz(ctx: Context) -> ZoneInfo:
    return ZoneInfo(ctx.cfg.system.timezone)


def local(ctx: Context, dt: datetime | None) -> datetime | None:
    return dt.astimezone(tz(ctx)) if dt is not None else None


def fmt_dt(ctx: Context, dt: datetime | None, with_time: bool = True) -> str:
    if dt is None:
        return ""
    return local(ctx, dt).strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")


def mail_date(ctx: Context) -> datetime:
    """When the mail was written: its Date header, but never later than its
    arrival (a wrong clock on the sender's side must not move a record into
    the future). When the fields were read from a message forwarded as an
    attachment, that message's Date (settled against its own arrival like
    any Date, and never later than the forward)."""
    if ctx.written is not None:
        return ctx.written
    d = ctx.mail.date
    inner = ctx.mail.attached
    m = ctx.match
    if (inner is not None and inner.date is not None and m is not None
            and any(w.code == "fields_from_attached_message" for w in m.why)):
        d = inner.date if d is None or inner.date <= d else d
    if d is None or d > ctx.now + timedelta(minutes=10):
        return ctx.now
    return d
