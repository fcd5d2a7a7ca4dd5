"""回访: the satisfaction follow-up after a record closes (domain.md,
"After closure: a satisfaction follow-up (回访); dissatisfied customers can
reopen").

1. **Scheduling.** When a 遗留问题跟进单 (``followup.close_followup``) or a
   故障处理工作单 (``workorder._closed``) closes, the workflow calls
   ``schedule(ctx, ticket, engineer)``: a ``Survey`` row, status
   ``scheduled``, due ``delay_hours`` later, addressed to the configured
   party. A record closed again (after a reopen) gets a new survey only if
   none is pending for it (``scheduled`` or ``sent`` and not answered).
2. **Sending** is a timed job (``processor/surveys.py``, ``send_due``): due
   rows are claimed ``scheduled -> sent`` in the same transaction as their
   outbox row, so each survey is mailed exactly once, across restarts and
   replays. A survey whose record was reopened before it went out is
   ``cancelled`` instead.
3. **The answer** is a reply in the record's thread whose first line is
   ``满意度：N`` (N = 1..5; full-width digits, ``5分``, ``满意度: 五`` and the
   synonyms of ``[workflows.commands.keywords]`` are accepted). The reply hook
   below records the score for any record kind with a sent survey and thanks
   the sender; a score at or below ``threshold`` reopens the record and
   notifies the 售前经理 and the record's owner/engineer with the comment
   (the rest of the reply). Only the surveyed party's score counts: anyone
   else is told so politely and nothing is recorded. An invalid score gets a
   reply asking for 1..5.

Settings (``[workflows.survey]`` in the config file; all optional)::

    [workflows.survey]
    enabled = true          # false: no new surveys are scheduled
    delay_hours = 24        # after closing; 0 = with the next run of the job
    party = "sales"         # who is asked: "sales" (the project's 责任销售),
                            # "raiser" (the record's 故障提出人; for a 跟进单
                            # the engineer who reported the problem), or any
                            # key of the record's data holding a person's name.
                            # Per record kind: party = { followup = "sales", workorder = "raiser" }
    threshold = 2           # a score at or below this reopens the record
    reopen = true           # false: low scores only notify, nothing reopens
    interval_seconds = 60   # how often the daemon looks for due surveys

Invalid values fall back to the default (``check`` lists them: ``problems(cfg)``).
"""
from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError
from sqlalchemy import select

from ..config import Config
from ..lifecycles import OWNER, SYSTEM, Lifecycles
from ..store.models import Survey, Ticket
from . import states
from .base import Context, fmt_dt, reply_hook
from .commands import parse
from .effects import Step, effect
from .routing import emails
from .settings import Flag, Settings, for_name, show
from .thread import handled_before, update_data

log = logging.getLogger(__name__)

PARTIES = {"sales": "责任销售", "raiser": "故障提出人", "reporter": "汇报人", "owner": "负责人"}
PENDING = ("scheduled", "sent")
SCORE_MIN, SCORE_MAX = 1, 5
_CN_DIGITS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5}
_SCORE = re.compile(r"^\s*(\d+|[一二两三四五])(?![\d.])\s*分?")
_LEAD = re.compile(r"^[\s,，。.;；:：、!！\-]+")


# -- settings -----------------------------------------------------------------


_PARTY = ("\"sales\"、\"raiser\" 等，或按记录类型分别设置的表，"
          "例如 { followup = \"sales\", workorder = \"raiser\" }")


def _party(v):
    ok = (isinstance(v, str) and v) or (isinstance(v, dict) and all(isinstance(x, str) and x for x in v.values()))
    if not ok:
        raise PydanticCustomError("cn", "必须是 {want}，现为 {value}", {"want": _PARTY, "value": show(v)})
    return v


class SurveySettings(Settings):
    """``[workflows.survey]`` in the config (the module docstring explains each key)."""
    enabled: Flag = True
    delay_hours: float = Field(24, ge=0, description="≥ 0 的小时数")
    party: Annotated[Any, AfterValidator(_party)] = "sales"
    threshold: int = Field(2, ge=0, le=SCORE_MAX, description=f"0 到 {SCORE_MAX} 的整数")
    reopen: Flag = True
    interval_seconds: float = Field(60, ge=1, description="≥ 1 的秒数")


def settings(cfg: Config) -> SurveySettings:
    """[workflows.survey] over the defaults, validated once per config; an
    invalid value is replaced by the default (``problems`` lists it)."""
    return for_name("survey", cfg, SurveySettings)


def problems(cfg: Config) -> list[tuple[str, str]]:
    """(key, reason) for each invalid setting, in Chinese, for ``check``."""
    return SurveySettings.problems(cfg.workflows.get("survey", {}) or {})


def interval(cfg: Config) -> float:
    return float(settings(cfg).interval_seconds)


def party_for(st: SurveySettings, kind: str) -> str:
    p = st.party
    if isinstance(p, dict):
        return p.get(kind) or p.get("default") or SurveySettings.model_fields["party"].default
    return p


def kind_name(lifecycles: Lifecycles, kind: str) -> str:
    """The record kind's Chinese name, from its lifecycle."""
    return lifecycles.label(kind)


# -- scheduling ---------------------------------------------------------------


def _resolve_party(ctx: Context, ticket: Ticket, party: str):
    """The person the survey goes to, or None."""
    data = ticket.data or {}
    d = ctx.directory
    if party == "sales":
        name = ""
        try:
            project = d.project(ticket.project) if ticket.project else None
        except Exception:  # AmbiguousProject: fall back to what the record holds
            project = None
        if project is not None:
            name = project.sales
        return d.by_name(name or data.get("sales", ""))
    if party == "owner":
        return d.by_name(ticket.owner)
    keys = [party] + (["reporter"] if party == "raiser" else [])
    for k in keys:
        v = data.get(k)
        if isinstance(v, str) and v:
            p = d.by_name(v) or d.by_email(v)
            if p is not None:
                return p
    return None


def pending(s, ticket: Ticket) -> Survey | None:
    return s.scalars(select(Survey).where(Survey.ticket_id == ticket.id, Survey.status.in_(PENDING))
                     .order_by(Survey.id.desc()).limit(1)).first()


def schedule(ctx: Context, ticket: Ticket, engineer: str) -> Survey | None:
    """Plan the 回访 for a record that has just closed (call it from the
    close path, in the same transaction). ``engineer`` is the person whose
    work is rated. Returns the new Survey, or None (disabled, one already
    pending, or nobody to ask)."""
    st = settings(ctx.cfg)
    if not st.enabled:
        return None
    existing = max((r for r in ctx.repo.rows(Survey, ticket_id=ticket.id) if r.status in PENDING),
                   key=lambda r: r.id, default=None)
    if existing is not None:
        ctx.audit("survey", existing.id, "survey_not_rescheduled", ticket=ticket.number, status=existing.status)
        return None
    party = party_for(st, ticket.kind)
    person = _resolve_party(ctx, ticket, party)
    if person is None:
        ctx.audit("ticket", ticket.number, "survey_skipped", reason=f"no {party} to ask")
        log.info("%s 不发回访：找不到%s", ticket.number, party)
        return None
    sv = Survey(id=ctx.repo.take_id(Survey), ticket_id=ticket.id, to_addr=person.email,
                engineer=engineer or ticket.owner or "", status="scheduled",
                due_at=ctx.now + timedelta(hours=st.delay_hours), created_at=ctx.now)
    ctx.repo.add(sv)
    ctx.audit("survey", sv.id, "survey_scheduled", ticket=ticket.number, to=person.email, party=party,
              engineer=sv.engineer, due_at=sv.due_at.isoformat())
    return sv


def still_closed(lifecycles: Lifecycles, ticket: Ticket) -> bool:
    """Is the record still in a final state of its lifecycle (kinds without
    a loaded lifecycle: is closed_at set)?"""
    lc = lifecycles.get(ticket.kind)
    if lc is not None:
        return lc.is_final(ticket.state)
    return ticket.closed_at is not None


def reopens(lifecycles: Lifecycles, ticket: Ticket) -> bool:
    """Does a low score put this record back to work (its lifecycle declares
    a reopen step from its state)?"""
    lc = lifecycles.get(ticket.kind)
    return lc is not None and lc.reopen_transition(ticket.state) is not None


def summary(ticket: Ticket) -> str:
    """One line saying what the record was about."""
    data = ticket.data or {}
    for k in ("remaining", "title", "summary", "symptom", "symptoms", "problem", "subject", "description"):
        v = data.get(k)
        if isinstance(v, str) and v.strip():
            return v.strip().splitlines()[0][:200]
    return ""


def introduction(lifecycles: Lifecycles, ticket: Ticket, st: SurveySettings, tz) -> dict:
    """What the 回访 says about the record to someone who may not have seen
    it: ``party_role`` (why they are asked: 责任销售, 故障提出人…),
    ``opened`` (date) and ``opened_by`` (who raised or reported it)."""
    party = party_for(st, ticket.kind)
    lc = lifecycles.get(ticket.kind)
    role = PARTIES.get(party) or (lc.party_name(party) if lc is not None else party)
    data = ticket.data or {}
    by = next((data[k] for k in ("raiser", "reporter", "sender") if isinstance(data.get(k), str) and data.get(k)), "")
    return {"party_role": role, "opened_by": by[:100],
            "opened": ticket.opened_at.astimezone(tz).strftime("%Y-%m-%d") if ticket.opened_at else ""}


# -- the answer -----------------------------------------------------------------


def parse_score(arg: str) -> tuple[int | None, str]:
    """(score, rest of the line) from what follows 满意度; score None if
    there is no number or it is out of 1..5."""
    m = _SCORE.match(arg or "")
    if not m:
        return None, arg or ""
    tok = m.group(1)
    n = _CN_DIGITS.get(tok) if tok in _CN_DIGITS else int(tok)
    rest = _LEAD.sub("", arg[m.end():]).strip()
    if n is None or not SCORE_MIN <= n <= SCORE_MAX:
        return None, rest
    return n, rest


def _comment(ctx: Context, rest: str) -> str:
    """The comment: the rest of the first line and every line after it."""
    lines = [ln.rstrip() for ln in (ctx.mail.body or "").splitlines()]
    while lines and not lines[0].strip():
        lines.pop(0)
    tail = [ln.strip() for ln in lines[1:] if ln.strip()]
    return "\n".join([x for x in [rest] if x] + tail).strip()


def _is_party(ctx: Context, sv: Survey) -> bool:
    if ctx.sender is None:
        return (ctx.mail.from_addr or "").lower() == sv.to_addr.lower()
    return sv.to_addr.lower() in {e.lower() for e in ctx.sender.emails}


@reply_hook
def survey_answer(ctx: Context, ticket: Ticket) -> bool:
    """满意度：N in the thread of a record with a sent survey."""
    cmd = parse(ctx, allowed=("满意度",))
    if cmd is None:
        return False
    sv = max((r for r in ctx.repo.rows(Survey, ticket_id=ticket.id) if r.status in ("sent", "answered")),
             key=lambda r: r.id, default=None)
    if sv is None:
        return False  # no 回访 went out for this record: the kind's own handler sees the mail
    if handled_before(ctx):
        ctx.decide("same_message_in_thread", number=ticket.number)
        return True
    who = ctx.sender.name if ctx.sender else ctx.mail.from_addr
    party = ctx.directory.by_email(sv.to_addr)
    party_name = party.name if party else sv.to_addr
    common = dict(ticket=ticket, kind_name=kind_name(ctx.lifecycles, ticket.kind), survey=sv, engineer=sv.engineer,
                  party_name=party_name)
    if not _is_party(ctx, sv):
        ctx.reply("survey_not_party", **common)
        ctx.audit("survey", sv.id, "survey_refused", ticket=ticket.number, reason="not_party", line=cmd.line[:200])
        ctx.decide("survey_not_party", number=ticket.number, who=who, party=party_name)
        return True
    if sv.status == "answered":
        ctx.reply("survey_already", answered=fmt_dt(ctx, sv.answered_at), score=sv.score,
                  managers="、".join(p.name for r in _notified_roles(ctx, ticket) for p in ctx.directory.with_role(r)),
                  **common)
        ctx.audit("survey", sv.id, "survey_refused", ticket=ticket.number, reason="already_answered",
                  line=cmd.line[:200])
        ctx.decide("survey_already_answered", number=ticket.number, score=sv.score)
        return True
    score, rest = parse_score(cmd.arg)
    if score is None:
        ctx.reply("survey_invalid", given=cmd.arg or "（空）", **common)
        ctx.audit("survey", sv.id, "survey_refused", ticket=ticket.number, reason="invalid_score", line=cmd.line[:200])
        ctx.decide("survey_invalid_score", number=ticket.number, value=cmd.arg)
        return True

    comment = _comment(ctx, rest)
    sv.score = score
    sv.answered_at = ctx.now
    sv.answer_message = ctx.message.id
    sv.status = "answered"
    update_data(ticket, satisfaction=score)
    ctx.audit("survey", sv.id, "survey_answered", ticket=ticket.number, score=score, engineer=sv.engineer,
              comment=comment[:2000])
    st = settings(ctx.cfg)
    low = score <= st.threshold
    reopened = ""
    if low and st.reopen:
        reopened = _reopen(ctx, ticket, sv, score)
    if low:
        _notify_low(ctx, ticket, sv, score, comment, reopened, party_name)
    ctx.reply("survey_thanks", score=score, comment=comment, low=low, reopened=reopened, **common)
    ctx.decide("survey_recorded", number=ticket.number, score=score, engineer=sv.engineer)
    if reopened:
        ctx.did("reopened", state=reopened)
    if low:
        ctx.did("manager_notified")
    return True


def _reopen(ctx: Context, ticket: Ticket, sv: Survey, score: int) -> str:
    """Put the record back to work through its lifecycle's reopen step;
    returns the new state's Chinese name ("" if this kind is not reopened
    by a score)."""
    lc = ctx.lifecycles.get(ticket.kind)
    tr = lc.reopen_transition(ticket.state) if lc is not None else None
    if tr is None:
        return ""
    if ticket.due_at is not None and ticket.opened_at is not None and ticket.due_at > ticket.opened_at:
        ticket.due_at = ctx.now + (ticket.due_at - ticket.opened_at)  # the same time to solve it again
    states.change(ctx, ticket, tr, arg=str(score), extra={"survey": sv, "score": score}, score=score, survey=sv.id)
    return lc.name(tr.target)


@effect("survey_reopen")
def _reopened(ctx: Context, ticket: Ticket, step: Step) -> None:
    """A low 回访 score put the record back to work (``extra``: the survey
    and the score): recorded on the record and audited."""
    sv, score = step.extra.get("survey"), step.extra.get("score")
    reopens = list((ticket.data or {}).get("reopened_by_survey", []))
    reopens.append({"at": ctx.now.isoformat(), "score": score, "survey": sv.id if sv else None,
                    "by": ctx.sender.name if ctx.sender else ctx.mail.from_addr})
    update_data(ticket, reopened_by_survey=reopens)
    if sv is not None:
        ctx.audit("survey", sv.id, "survey_reopened", ticket=ticket.number, score=score, engineer=sv.engineer)


def _notified_roles(ctx: Context, ticket: Ticket) -> tuple[str, ...]:
    """The roles (not the parties) that the lifecycle's 回访 reopen step of
    this kind notifies; the 售前经理 for a kind without one."""
    lc = ctx.lifecycles.get(ticket.kind)
    tr = lc.reopen_step() if lc is not None else None
    if tr is None:
        return ("售前经理",)
    return tuple(r for r in lc.resolve(tr.notify, ctx.settings or None)
                 if r not in lc.parties and r not in (OWNER, SYSTEM))


def _notify_low(ctx: Context, ticket: Ticket, sv: Survey, score: int, comment: str, reopened: str,
                party_name: str) -> None:
    """A low score: the owner/engineer in To, the roles the kind's reopen
    step notifies (its lifecycle; the 售前经理) in CC."""
    d = ctx.directory
    workers = [d.by_name(ticket.owner), d.by_name(sv.engineer)]
    managers = [p for r in _notified_roles(ctx, ticket) for p in d.with_role(r)]
    to = emails(workers) or emails(managers)
    # Every party of the record (the raiser, the reporter, the R&D owner…)
    # hears that it was reopened; the surveyed person gets the thanks instead.
    lc = ctx.lifecycles.get(ticket.kind)
    data = ticket.data or {}
    parties = [d.by_name(data[k]) for k in (lc.parties if lc is not None else ()) if isinstance(data.get(k), str)]
    cc = [e for e in dict.fromkeys(emails(managers) + (emails(parties) if reopened else []))
          if e not in to and e.lower() != sv.to_addr.lower()]
    if not to:
        return
    ctx.send("survey_low", to=to, cc=cc, ticket=ticket, kind="notice", kind_name=kind_name(ctx.lifecycles, ticket.kind),
             survey=sv, score=score, comment=comment, reopened=reopened, party_name=party_name,
             engineer=sv.engineer, owner_name=ticket.owner, summary=summary(ticket),
             threshold=settings(ctx.cfg).threshold, sent=fmt_dt(ctx, sv.sent_at))
    ctx.audit("survey", sv.id, "survey_low_notified", ticket=ticket.number, to=to, cc=cc)
