"""Scheduled report mails: the monthly report to the managers and each
engineer's weekly list of open items.

``send_scheduled_reports(rt, queue) -> int`` is the whole job (the daemon
runs it as one timed job; ``run.py once`` calls it before its final outbox
flush). It returns how many mails it queued.

**Monthly** (``[reports] monthly_*``): on ``monthly_day`` at
``monthly_time`` (system time zone; default the 1st, 09:00) everyone with a
role in ``monthly_roles`` gets ONE mail (all of them in To) about the past
calendar month:

- attachment ``项目跟踪表-YYYY-MM.xlsx``: one sheet per engineer (role 售前,
  sheet = the person's name, an empty sheet when they recorded nothing), the
  columns of ``report tracking``; then the sheets 投诉统计, 超时记录,
  服务时效, 未立项提醒, 回访满意度 and 未关闭工作单;
- in the body: tracking rows per engineer, complaints and penalties of the
  month (as ``report complaints --month``), SLA breaches per person (Breach
  rows whose ``breached_at`` is in the month), 未立项 reminders (Reminder
  rows of kind ``lixiang`` created in the month), satisfaction (surveys
  answered in the month: count, average and lowest score per engineer), and
  the 故障处理工作单 not yet closed (state other than 已关闭 / 已转定制) at
  the time of sending. An empty section says 无.

**Weekly** (``[reports] weekly_*``): on ``weekly_weekday`` (1 = Monday) at
``weekly_time`` every person with a role in ``weekly_roles`` (default 售前)
gets their own open items: 遗留问题跟进单 they own that are not closed, and
故障处理工作单 not closed that they raised (故障提出人), are the R&D owner
of (研发负责人) or own; surveys of their work still waiting for an answer
are listed for information. Nobody gets an empty list: an engineer with no
open follow-up or work order gets no mail that week.

**Exactly once.** Each period has a key in the ``settings`` table:
``report.monthly.YYYY-MM`` (the month reported on, e.g. ``2026-10`` for the
mail of 1 November) and ``report.weekly.<name>.YYYY-Www`` (ISO week of
sending). The key is inserted in the SAME transaction as the outbox row, its
value the outbox Message-ID (``""`` for a week with nothing open: decided,
nothing to send). A period is *due* when ``rt.clock()`` (system time zone)
is at or after its scheduled time in the current month / ISO week and its
key is absent; so a second run, a restart or a replay sends nothing, and two
workers racing for the same key cannot both commit (primary key).

**After an outage** only the current period is considered: a daemon that
was down over the 1st sends, once it is back, the report of the month that
just ended, never a backlog of older months (and likewise one weekly mail,
for the current week). A month skipped that way can still be produced on
demand: ``run.py report tracking --month YYYY-MM --format xlsx --out FILE``.

**A new installation** does not mail at once: the first run records its time
(``report.since``) and a period whose scheduled time is before it is not
sent. Installed on 21 November, the first monthly mail is the one of
1 December (about November), not one about October, a month the system has
not seen; likewise the first weekly mail is the next week's.
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import statistics
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..outbox import Outgoing
from ..queueing import MailQueue
from ..store.models import Breach, Reminder, Setting, Survey, Ticket
from ..records import records_of
from . import REPORTS, _lifecycles, _local, _month_range
from .xlsx import MIME, tracking_sheets, workbook_bytes

if TYPE_CHECKING:
    from ..pipeline import Runtime

log = logging.getLogger(__name__)

MONTHLY_TEMPLATE = "report_monthly"
WEEKLY_TEMPLATE = "report_weekly"
ENGINEER_ROLE = "售前"
CLOCK_NAMES = {"response": "首次响应", "update": "进展更新", "resolution": "解决", "approval": "审批",
               "review": "审核", "confirm": "确认"}


# -- periods ---------------------------------------------------------------------


def _hm(s: str) -> time:
    h, m = s.split(":")
    return time(int(h), int(m))


@dataclass(frozen=True)
class Period:
    key: str  # the settings key (without a person for the weekly one)
    label: str  # for people, e.g. 2026年10月 / 2026年第47周
    scheduled: datetime  # local
    due: bool


def monthly_period(rt: "Runtime", now: datetime) -> tuple[Period, str]:
    """(period, "YYYY-MM" of the month reported on) for the current month."""
    rc = rt.cfg.reports
    local = now.astimezone(rt.tz)
    at = _hm(rc.monthly_time)
    scheduled = datetime(local.year, local.month, rc.monthly_day, at.hour, at.minute, tzinfo=rt.tz)
    prev = (local.replace(day=1) - timedelta(days=1))
    month = f"{prev.year:04d}-{prev.month:02d}"
    return Period(f"report.monthly.{month}", f"{prev.year}年{prev.month}月", scheduled, local >= scheduled), month


def weekly_period(rt: "Runtime", now: datetime) -> Period:
    rc = rt.cfg.reports
    local = now.astimezone(rt.tz)
    iso = local.isocalendar()
    monday = local.date() - timedelta(days=local.weekday())
    day = monday + timedelta(days=rc.weekly_weekday - 1)
    at = _hm(rc.weekly_time)
    scheduled = datetime(day.year, day.month, day.day, at.hour, at.minute, tzinfo=rt.tz)
    return Period(f"{iso.year:04d}-W{iso.week:02d}", f"{iso.year}年第{iso.week}周", scheduled, local >= scheduled)


def weekly_key(person: str, week: str) -> str:
    key = f"report.weekly.{person}.{week}"
    if len(key) > 100:  # settings.key is 100 characters
        key = f"report.weekly.{hashlib.sha256(person.encode()).hexdigest()[:16]}.{week}"
    return key


SINCE_KEY = "report.since"


def _since(rt: "Runtime", now: datetime) -> datetime:
    """When this store first ran the job (the earliest clock seen): periods
    scheduled before it are never sent."""
    with rt.store.reader() as s:
        row = s.get(Setting, SINCE_KEY)
        since = datetime.fromisoformat(row.value) if row is not None else None
    if since is not None and since <= now:
        return since
    try:
        with rt.store.session() as s, s.begin():
            row = s.get(Setting, SINCE_KEY)
            if row is None:
                s.add(Setting(key=SINCE_KEY, value=now.isoformat()))
            elif datetime.fromisoformat(row.value) > now:
                row.value = now.isoformat()  # a clock set back (tests inject one): the earliest counts
    except IntegrityError:  # another worker recorded it first
        pass
    return now if since is None else min(since, now)


def _taken(rt: "Runtime", pattern: str) -> set[str]:
    """The period keys already recorded that match the LIKE ``pattern``."""
    with rt.store.reader() as s:
        return set(s.scalars(select(Setting.key).where(Setting.key.like(pattern))))


def _people(rt: "Runtime", roles) -> list:
    seen, out = set(), []
    for role in roles:
        for p in rt.directory.with_role(role):
            if p.name not in seen:
                seen.add(p.name)
                out.append(p)
    return out


def _claim_and_queue(rt: "Runtime", queue: MailQueue, key: str, outgoing: Outgoing | None, now: datetime,
                     audit: dict) -> int:
    """One transaction: insert the period's key, queue the mail, record its
    Message-ID in the key. Returns 1 if a mail was queued."""
    try:
        with rt.store.session() as s, s.begin():
            if s.get(Setting, key) is not None:
                return 0  # another run took it since we looked
            row = Setting(key=key, value="")
            s.add(row)
            s.flush()  # a racing worker's insert conflicts here (or at commit)
            mid = ""
            if outgoing is not None:
                mid = queue.put(s, [outgoing], now=now)[0]
                row.value = mid
            records_of(s).audit("report", key, "report_sent" if outgoing is not None else "report_nothing_to_send",
                          message=None, actor="system", at=now, outbox=mid, **audit)
    except IntegrityError:
        log.info("定期报表 %s：已由另一个进程发出", key)
        return 0
    return 1 if outgoing is not None else 0


# -- monthly ----------------------------------------------------------------------


def _args(month: str | None, presales: str | None = None, open_: bool = False) -> argparse.Namespace:
    return argparse.Namespace(month=month, presales=presales, open=open_, format="table", out=None)


def _state_names(rt: "Runtime", kind: str) -> dict:
    return _lifecycles(rt).names(kind)


def _final(rt: "Runtime", kind: str) -> tuple[str, ...]:
    lc = _lifecycles(rt).get(kind)
    return lc.final if lc is not None else ()


def _clock_name(rt: "Runtime", kind: str, clock: str) -> str:
    """A clock's Chinese name; a step clock is named by its state (from the lifecycle)."""
    if clock.startswith("step:"):
        return f"“{_lifecycles(rt).state_name(kind, clock[5:])}”环节"
    return CLOCK_NAMES.get(clock, clock)


def open_workorders(rt: "Runtime", s) -> list[Ticket]:
    return list(s.scalars(select(Ticket).where(Ticket.kind == "workorder", Ticket.state.not_in(_final(rt, "workorder")),
                                               Ticket.closed_at.is_(None)).order_by(Ticket.id)))


def monthly_content(rt: "Runtime", month: str, now: datetime) -> tuple[dict, list]:
    """(template variables, xlsx sheets) of the monthly report on ``month``."""
    start, end = _month_range(rt, month)
    engineers = [p.name for p in rt.directory.with_role(ENGINEER_ROLE)]

    # 项目跟踪表: the same rows as `report tracking --month`.
    t_headers, t_rows = REPORTS["tracking"](rt, _args(month))
    sheets = tracking_sheets(rt, t_headers, t_rows, engineers=engineers)
    i_result = t_headers.index("沟通结果")
    tracking = []
    for title, _h, rows in sheets:
        tracking.append({"name": title, "rows": len(rows), "ok": sum(1 for r in rows if r[i_result] == "成功"),
                         "open": sum(1 for r in rows if r[i_result] != "成功")})
    extra: list = []

    # 投诉 and penalties: as `report complaints --month`.
    c_headers, c_rows = REPORTS["complaints"](rt, _args(month))
    complaints = [{"name": r[0], "counted": r[1], "withdrawn": r[2], "other": r[3], "numbers": r[4], "penalties": r[5]}
                  for r in c_rows]
    extra.append(("投诉统计", c_headers, c_rows))

    state_names = _state_names(rt, "workorder")
    with rt.store.reader() as s:
        # 超时: Breach rows of the month.
        breaches = s.execute(select(Breach, Ticket.number, Ticket.project, Ticket.kind).join(Ticket, Breach.ticket_id == Ticket.id,
                                                                                 isouter=True)
                             .where(Breach.breached_at >= start, Breach.breached_at < end)
                             .order_by(Breach.person, Breach.breached_at, Breach.id)).all()
        # 未立项 reminders of the month.
        reminders = list(s.scalars(select(Reminder).where(Reminder.kind == "lixiang", Reminder.created_at >= start,
                                                          Reminder.created_at < end)
                                   .order_by(Reminder.created_at, Reminder.id)))
        # Satisfaction: surveys answered in the month.
        surveys = list(s.scalars(select(Survey).where(Survey.status == "answered", Survey.score.is_not(None),
                                                      Survey.answered_at >= start, Survey.answered_at < end)
                                 .order_by(Survey.engineer, Survey.answered_at)))
        # Work orders not closed, at the time of sending.
        workorders = open_workorders(rt, s)

    per_breach: dict[str, dict[str, int]] = {}
    b_rows = []
    for b, number, project, kind in breaches:
        who = b.person or "（未指定）"
        per_breach.setdefault(who, {})
        name = _clock_name(rt, kind or "", b.clock)
        per_breach[who][name] = per_breach[who].get(name, 0) + 1
        b_rows.append([who, number or "", project or "", name, rt.sla.profile_label(b.profile),
                       _local(rt, b.due_at), _local(rt, b.breached_at)])
    sla_breaches = [{"name": who, "count": sum(c.values()),
                     "detail": "、".join(f"{k} {n}" for k, n in sorted(c.items()))}
                    for who, c in sorted(per_breach.items())]
    extra.append(("超时记录", ["人员", "记录号", "项目", "时钟", "服务级别", "到期时间", "超时时间"], b_rows))
    if "sla" in REPORTS:
        s_headers, s_rows = REPORTS["sla"](rt, _args(month))
        extra.append(("服务时效", s_headers, s_rows))

    r_rows = [[_local(rt, r.created_at), r.project, r.engineer, r.ordinal, "、".join(r.to_addrs or [])] for r in reminders]
    lixiang = [{"date": row[0], "project": r.project, "engineer": r.engineer, "ordinal": r.ordinal}
               for row, r in zip(r_rows, reminders)]
    extra.append(("未立项提醒", ["提醒时间", "项目", "售前", "第几次提醒", "收件人"], r_rows))

    per_score: dict[str, list[int]] = {}
    for sv in surveys:
        per_score.setdefault(sv.engineer or "（未指定）", []).append(sv.score)
    satisfaction = [{"name": who, "count": len(sc), "average": f"{statistics.mean(sc):.2f}", "lowest": min(sc)}
                    for who, sc in sorted(per_score.items())]
    extra.append(("回访满意度", ["售前", "回访数", "平均分", "最低分"],
                  [[e["name"], e["count"], e["average"], e["lowest"]] for e in satisfaction]))

    w_rows, wos = [], []
    for t in workorders:
        d = t.data or {}
        item = {"number": t.number, "project": t.project, "summary": d.get("summary", ""),
                "raiser": d.get("raiser", "") or t.owner, "rd_owner": d.get("rd_owner", ""),
                "state": state_names.get(t.state, t.state), "opened": _local(rt, t.opened_at)}
        wos.append(item)
        w_rows.append([item["number"], item["project"], item["summary"], item["raiser"], item["rd_owner"], item["state"],
                       item["opened"]])
    extra.append(("未关闭工作单", ["编号", "项目", "简述", "故障提出人", "研发负责人", "状态", "提交时间"], w_rows))

    y, m = (int(x) for x in month.split("-"))
    last = (date(y + (m == 12), m % 12 + 1, 1) - timedelta(days=1))
    variables = {
        "system": rt.cfg.system, "month": month, "month_label": f"{y}年{m}月",
        "first_day": f"{y:04d}-{m:02d}-01", "last_day": last.isoformat(),
        "now": now.astimezone(rt.tz).strftime("%Y-%m-%d %H:%M"),
        "filename": f"项目跟踪表-{month}.xlsx", "engineer_sheets": [t for t, _h, _r in sheets],
        "extra_sheets": [t for t, _h, _r in extra],
        "tracking": tracking, "tracking_total": len(t_rows), "complaints": complaints,
        "sla_breaches": sla_breaches, "lixiang": lixiang, "satisfaction": satisfaction, "workorders": wos,
    }
    return variables, sheets + extra


def _send_monthly(rt: "Runtime", queue: MailQueue, now: datetime, since: datetime) -> int:
    period, month = monthly_period(rt, now)
    if not period.due or period.scheduled < since or period.key in _taken(rt, period.key):
        return 0
    managers = _people(rt, rt.cfg.reports.monthly_roles)
    if not managers:
        log.warning("%s 月报没有发出：通讯录里没有人担任 reports.monthly_roles 中的角色（%s）",
                    month, "、".join(rt.cfg.reports.monthly_roles))
        return 0
    variables, sheets = monthly_content(rt, month, now)
    variables["recipients"] = [p.name for p in managers]
    out = Outgoing(MONTHLY_TEMPLATE, to=[p.email for p in managers], kind="notice", variables=variables,
                   attachments=[(variables["filename"], MIME, workbook_bytes(sheets))])
    n = _claim_and_queue(rt, queue, period.key, out, now, {"month": month, "to": out.to})
    if n:
        log.info("%s 月报已放入发件箱，收件人：%s", month, "、".join(out.to))
    return n


# -- weekly -----------------------------------------------------------------------


def open_items(rt: "Runtime", s, name: str, now: datetime) -> dict:
    """The open items of one engineer (for the weekly mail)."""
    state_names = _state_names(rt, "workorder")
    followups = []
    for t in s.scalars(select(Ticket).where(Ticket.kind == "followup", Ticket.owner == name,
                                            Ticket.state.not_in(_final(rt, "followup")), Ticket.closed_at.is_(None))
                       .order_by(Ticket.opened_at, Ticket.id)):
        d = t.data or {}
        followups.append({"number": t.number, "project": t.project, "summary": d.get("remaining", ""),
                          "opened": _local(rt, t.opened_at), "due": _local(rt, t.due_at),
                          "overdue": t.due_at is not None and t.due_at < now})
    workorders = []
    for t in open_workorders(rt, s):
        d = t.data or {}
        roles = []
        if (d.get("raiser") or t.owner) == name:
            roles.append("故障提出人")
        if d.get("rd_owner") == name:
            roles.append("研发负责人")
        if t.owner == name and not roles:
            roles.append("负责人")
        if not roles:
            continue
        workorders.append({"number": t.number, "project": t.project, "summary": d.get("summary", ""),
                           "state": state_names.get(t.state, t.state), "as": "、".join(roles),
                           "opened": _local(rt, t.opened_at)})
    surveys = []
    for sv, number, project in s.execute(select(Survey, Ticket.number, Ticket.project)
                                         .join(Ticket, Survey.ticket_id == Ticket.id)
                                         .where(Survey.engineer == name, Survey.status == "sent")
                                         .order_by(Survey.sent_at, Survey.id)):
        surveys.append({"number": number, "project": project, "sent": _local(rt, sv.sent_at), "to": sv.to_addr})
    return {"followups": followups, "workorders": workorders, "surveys": surveys}


def _send_weekly(rt: "Runtime", queue: MailQueue, now: datetime, since: datetime) -> int:
    period = weekly_period(rt, now)
    if not period.due or period.scheduled < since:
        return 0
    queued = 0
    taken = _taken(rt, f"report.weekly.%.{period.key}")
    for person in _people(rt, rt.cfg.reports.weekly_roles):
        key = weekly_key(person.name, period.key)
        if key in taken:
            continue
        try:
            with rt.store.reader() as s:
                items = open_items(rt, s, person.name, now)
            count = len(items["followups"]) + len(items["workorders"])
            out = None
            if count:
                out = Outgoing(WEEKLY_TEMPLATE, to=[person.email], kind="notice",
                               variables={"system": rt.cfg.system, "name": person.name, "week": period.key,
                                          "week_label": period.label, "count": count,
                                          "now": now.astimezone(rt.tz).strftime("%Y-%m-%d %H:%M"), **items})
            queued += _claim_and_queue(rt, queue, key, out, now, {"week": period.key, "person": person.name,
                                                                      "open": count})
        except Exception:
            # e.g. a broken template: this engineer's mail is retried next run, the others go out.
            log.exception("给 %s 的周报 %s 未能放入发件箱，下次再试", person.name, period.key)
    return queued


# -- the job ----------------------------------------------------------------------


def send_scheduled_reports(rt: "Runtime", queue: MailQueue | None = None) -> int:
    """Queue every scheduled report mail that is due now (``rt.clock()``);
    one transaction per mail. Returns how many mails were queued."""
    queue = queue or MailQueue(rt)
    rc = rt.cfg.reports
    if not (rc.monthly_enabled or rc.weekly_enabled):
        return 0
    now = rt.clock()
    since = _since(rt, now)
    queued = 0
    if rc.monthly_enabled:
        try:
            queued += _send_monthly(rt, queue, now, since)
        except Exception:
            log.exception("月报未能放入发件箱，下次再试")
    if rc.weekly_enabled:
        queued += _send_weekly(rt, queue, now, since)
    return queued
