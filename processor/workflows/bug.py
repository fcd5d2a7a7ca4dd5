"""Convention 7: internal bug feedback ``BUG反馈-<产品>-<简述>`` (art. 8).

The action ``record_bug``:

* required fields missing (产品, 版本, 问题描述; 重现步骤 for a 缺陷) ->
  ``rejected``: the sender is told each problem and gets a fill-in body; the
  mail is not sent on. Replying with the completed body resubmits it;
* otherwise ``recorded`` with a number (BUG2026-0001). The mail must go To
  the 测试组 and CC 全体售前 (``route_to`` / ``route_cc`` roles): the To/Cc of
  the mail are checked, ignoring the system's own addresses; everyone with
  those roles who is missing gets it sent on (From the system, Reply-To the
  sender, original attached: To the missing testers, CC the missing
  presales), and the sender's 回执 names who was added.
"""
from __future__ import annotations

from pydantic import Field

from ..reasons import Decision
from ..rules.engine import ACTION_KINDS, Match
from ..store.models import Ticket
from .base import Context, action, fmt_dt, mail_date, on_reply
from .routing import addressed, emails
from .settings import Roles, Settings, settings_for
from .states import open_record
from .thread import add_note, already_recorded, answer, enter_thread, relink, update_data

KIND = "bug"
RECORDED, REJECTED = "recorded", "rejected"
F_PRODUCT, F_VERSION, F_TYPE, F_DESCRIPTION, F_STEPS = "product", "version", "type", "description", "steps"


@settings_for("record_bug")
class BugSettings(Settings):
    # Art. 8: To the test group, Cc all presales; whoever is missing gets it sent on.
    route_to: Roles = ("测试组",)
    route_cc: Roles = ("售前",)
    # 问题类型 when the body does not say.
    default_type: str = Field("缺陷", description="字符串，例如 \"缺陷\"")


ACTION_KINDS["record_bug"] = (KIND,)


@action("record_bug")
def record_bug(ctx: Context) -> None:
    process_bug(ctx)


def process_bug(ctx: Context, previous: Ticket | None = None) -> None:
    m = ctx.match
    rule = m.rule
    if already_recorded(ctx, KIND):
        return
    # The subject names the product; the body's 问题类型 defaults to 缺陷.
    values = dict(m.values)
    if not values.get(F_PRODUCT) and m.captures.get("product"):
        values[F_PRODUCT] = m.captures["product"]
    default_type = ctx.settings.default_type
    if not values.get(F_TYPE) and default_type:
        values[F_TYPE] = default_type
    if values != m.values:
        m.values = values
        m.problems = rule.validate(values, ctx.sender)
    if m.problems:
        texts = ctx.texts(m.problems)
        t = _record(ctx, REJECTED, previous=previous, problems=texts)
        answer(ctx, "rejected", "bug_rejected", ticket=t, record=t, problems=texts,
               fill_in=_fill_in(m), product=values.get(F_PRODUCT, ""), summary=m.captures.get("summary", "") or "")
        ctx.decide("rejected", m.problems, number=t.number, count=len(m.problems))
        return
    _recorded(ctx, previous)


def _record(ctx: Context, state: str, *, previous: Ticket | None, **data) -> Ticket:
    m = ctx.match
    v = m.values
    t = open_record(ctx, KIND, project=v.get("project", ""), owner=ctx.sender.name if ctx.sender else "",
                    state=state,
                    data={"rule": m.rule.name, "captures": dict(m.captures),
                          "product": v.get(F_PRODUCT, "") or m.captures.get("product", ""),
                          "summary": m.captures.get("summary", "") or "", "version": v.get(F_VERSION, ""),
                          "type": v.get(F_TYPE, ""),
                          "sender": ctx.sender.name if ctx.sender else ctx.mail.from_addr,
                          "sender_email": ctx.mail.from_addr, "date": mail_date(ctx).isoformat(),
                          "values": dict(v), "message_id": ctx.mail.message_id or "",
                          "resubmits": previous.number if previous else "", **data})
    relink(ctx, t)
    if previous is not None:
        update_data(previous, resubmitted_as=t.number)
    simple = {k: val for k, val in data.items() if isinstance(val, (str, int, list, bool))}
    ctx.audit("ticket", t.number, f"bug_{state}", product=t.data["product"], **simple)
    return t


def _recorded(ctx: Context, previous: Ticket | None) -> None:
    m = ctx.match
    to_roles = ctx.settings.route_to
    cc_roles = ctx.settings.route_cc
    missing_to, missing_cc = [], []
    for r in to_roles:
        for p in ctx.directory.with_role(r):
            if not addressed(ctx, p) and p not in missing_to:
                missing_to.append(p)
    for r in cc_roles:
        for p in ctx.directory.with_role(r):
            if not addressed(ctx, p) and p not in missing_to and p not in missing_cc:
                missing_cc.append(p)
    added = missing_to + missing_cc
    t = _record(ctx, RECORDED, previous=previous, routing_repaired=bool(added),
                forwarded_to=[p.name for p in missing_to], forwarded_cc=[p.name for p in missing_cc])
    labels = {f.name: f.label for f in m.rule.fields}
    common = dict(record=t, values=m.values, labels=labels, product=t.data["product"], summary=t.data["summary"],
                  date=fmt_dt(ctx, mail_date(ctx)))
    if added:
        ctx.send(ctx.template("forward", "bug_forward"), to=emails(missing_to or missing_cc),
                 cc=emails(missing_cc) if missing_to else [], reply_to=[ctx.mail.from_addr], ticket=t, kind="forward",
                 attach_original=True, body=ctx.mail.body, original_subject=ctx.mail.subject,
                 original_from=ctx.mail.from_addr, to_roles="、".join(to_roles), cc_roles="、".join(cc_roles),
                 **common)
    answer(ctx, "ack", "bug_ack", ticket=t, added_to=[p.name for p in missing_to],
           added_cc=[p.name for p in missing_cc], to_roles="、".join(to_roles), cc_roles="、".join(cc_roles),
           **common)
    ctx.decide("bug_recorded", number=t.number, product=t.data["product"])
    if added:
        ctx.did("sent_on_to", names=[p.name for p in added])
    else:
        ctx.did("routing_complete")


def _fill_in(m: Match) -> list[tuple[str, str]]:
    out = []
    for f in m.rule.fields:
        v = m.values.get(f.name, "")
        allowed = m.rule.allowed.get(f.name)
        if allowed and v and v not in allowed:
            v = "/".join(allowed)
        out.append((f.label, v))
    return out


@on_reply(KIND)
def bug_reply(ctx: Context, ticket: Ticket) -> None:
    """Testers and presales discussing a bug are logged in its thread; the
    sender answering a rejection with the completed body resubmits it."""
    if not enter_thread(ctx, ticket, "bug"):
        return
    rule = ctx.match.rule
    values = rule.extractor.extract(ctx.mail.body)
    data = ticket.data or {}
    if (ticket.state == REJECTED and ctx.sender is not None and ctx.sender.name == data.get("sender")
            and values.get(F_DESCRIPTION)):
        ctx.match = Match(rule, dict(data.get("captures", {})), [Decision("resubmission", {"number": ticket.number})], values,
                          rule.validate(values, ctx.sender))
        process_bug(ctx, previous=ticket)
        return
    add_note(ctx, ticket)
    ctx.decide("noted_in_thread", number=ticket.number)
