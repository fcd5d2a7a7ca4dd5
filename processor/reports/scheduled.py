"""Scheduled report mails: the monthly report to the managers and each
engineer's weekly list of open items.

``send_scheduled_reports(rt, queue) -> int`` is the whole job (the daemon
runs it as one timed job; ``run.py once`` calls it before its final outbox
flush). It returns how many mails it queued.

**Monthly** (``[reports] monthly_*``): on ``monthly_day`` at
``monthly_time`` (system time zone; default the 1st, 09:00) everyone with a
role in ``monthly_roles`` gets ONE mail (all of them in To) about the past
calendar month:

- attachment ``项目跟踪表-YYYY-MM.xlsx``: first 汇总 (per engineer: 沟通汇报,
  问题遗留, open follow-ups and how many are overdue, counted complaints and
  penalties, SLA breaches, surveys and average score, 扣分 when ``[sla]
  points`` is on; a 合计 row; the last six months; bar charts of both), then
  one sheet per engineer (role 售前, sheet = the person's name, an empty
  sheet when they recorded nothing), the columns of ``report tracking``
  without 第一售前; then 投诉统计, 超时记录, 服务时效, 未立项提醒, 回访满意度,
  未关闭工作单 and 未关闭跟进单. Every sheet has a title and the period;
- attachment ``月度报表-YYYY-MM.pdf``: the same pack as a PDF (``pdf``), when
  it can be made (else logged, and the mail goes with the xlsx);
- in the body, a short summary: the figures, the three most overdue open
  items (follow-ups and work orders, by their due time or their running
  clocks'), tracking rows per engineer, complaints and penalties of the
  month (as ``report complaints --month``), SLA breaches per person (Breach
  rows whose ``breached_at`` is in the month), 未立项 projects (Reminder rows
  of kind ``lixiang`` created in the month), satisfaction (surveys answered
  in the month), and the open follow-ups and work orders at the time of
  sending, most urgent first. An empty section says 无. It asks nobody to
  run a command, and says that replies to it are not processed.

**Weekly** (``[reports] weekly_*``): on ``weekly_weekday`` (1 = Monday) at
``weekly_time`` every person with a role in ``weekly_roles`` (default 售前)
gets their own open items, most urgent first with their due times: 遗留问题跟进单
they own that are not closed, and 故障处理工作单 not closed that they raised
(故障提出人), are the R&D owner of (研发负责人) or own; surveys of their work still waiting for an answer
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
from datetime import datetime, time, timedelta, timezone
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ..outbox import Outgoing
from ..queueing import MailQueue
from ..store.models import Audit, Breach, Clock, Reminder, Setting, Survey, Ticket, TrackingRow
from ..records import records_of
from . import REPORTS, _lifecycles, _local, _month_range, month_period_text
from .xlsx import MIME, Chart, Sheet, sum_totals, tracking_sheets, workbook_bytes

if TYPE_CHECKING:
    from ..pipeline import Runtime

log = logging.getLogger(__name__)

MONTHLY_TEMPLATE = "report_monthly"
WEEKLY_TEMPLATE = "report_weekly"
ENGINEER_ROLE = "售前"
CLOCK_NAMES = {"response": "首次响应", "update": "进展更新", "resolution": "解决", "deadline": "时间要求", "approval": "审批",
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


def open_followups(rt: "Runtime", s, owner: str | None = None) -> list[Ticket]:
    q = select(Ticket).where(Ticket.kind == "followup", Ticket.state.not_in(_final(rt, "followup")),
                             Ticket.closed_at.is_(None))
    if owner is not None:
        q = q.where(Ticket.owner == owner)
    return list(s.scalars(q.order_by(Ticket.opened_at, Ticket.id)))


def due_times(s, tickets: list[Ticket]) -> dict[int, datetime]:
    """When each record is due: the earlier of its own due time and its
    running clocks' (a work order's step clock, a follow-up's resolution)."""
    out = {t.id: t.due_at for t in tickets if t.due_at is not None}
    if tickets:
        for tid, due in s.execute(select(Clock.ticket_id, func.min(Clock.due_at))
                                  .where(Clock.ticket_id.in_([t.id for t in tickets]), Clock.status == "running",
                                         Clock.due_at.is_not(None)).group_by(Clock.ticket_id)):
            out[tid] = min(due, out.get(tid, due))
    return out


def overdue_words(due: datetime | None, now: datetime) -> str:
    """「已逾期 3 天 4 小时」 / 「还剩 5 小时」 / ""."""
    if due is None:
        return ""
    minutes = int(abs((now - due).total_seconds()) // 60)
    d, h = divmod(minutes // 60, 24)
    span = (f"{d} 天" if d else "") + (f" {h} 小时" if h and d else f"{h} 小时" if h else "") or f"{minutes % 60} 分钟"
    return f"已逾期 {span.strip()}" if due < now else f"还剩 {span.strip()}"


def _item(rt: "Runtime", t: Ticket, due: datetime | None, now: datetime) -> dict:
    d = t.data or {}
    return {"number": t.number, "kind": _lifecycles(rt).label(t.kind), "project": t.project, "owner": t.owner,
            "summary": d.get("remaining") or d.get("summary", ""),
            "state": _lifecycles(rt).state_name(t.kind, t.state), "opened": _local(rt, t.opened_at),
            "due": _local(rt, due), "due_at": due, "overdue": due is not None and due < now,
            "overdue_text": overdue_words(due, now)}


def by_urgency(items: list[dict]) -> list[dict]:
    """Most urgent first: the earliest due time (the most overdue) first,
    items without a due time last, in the order they were opened."""
    return sorted(items, key=lambda i: (i["due_at"] is None, i["due_at"] or datetime.max.replace(tzinfo=timezone.utc),
                                        i["opened"]))


def _months_before(month: str, n: int) -> list[str]:
    y, m = (int(x) for x in month.split("-"))
    out = []
    for _ in range(n):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
    return out[::-1]


TREND_MONTHS = 6


def _trend(rt: "Runtime", month: str) -> list[list]:
    """Per month (the last six up to ``month``): tracking rows, SLA breaches,
    counted complaints."""
    rows = []
    with rt.store.reader() as s:
        for mo in _months_before(month, TREND_MONTHS):
            start, end = _month_range(rt, mo)
            reports = s.scalar(select(func.count()).select_from(TrackingRow)
                               .where(TrackingRow.comm_date >= start, TrackingRow.comm_date < end))
            breaches = s.scalar(select(func.count()).select_from(Breach)
                                .where(Breach.breached_at >= start, Breach.breached_at < end))
            rows.append([f"{int(mo[:4])}年{int(mo[5:])}月", reports, breaches, 0])
    for row, mo in zip(rows, _months_before(month, TREND_MONTHS)):
        row[3] = sum(r[1] for r in REPORTS["complaints"](rt, _args(mo))[1])
    return rows


SUMMARY_HEADERS = ["售前", "沟通汇报", "问题遗留", "未关闭跟进单", "其中已逾期", "有效投诉", "处罚", "服务超时",
                   "回访数", "平均满意度(5分制)"]
TREND_HEADERS = ["月份", "沟通汇报", "服务超时", "有效投诉"]


def monthly_content(rt: "Runtime", month: str, now: datetime) -> tuple[dict, list]:
    """(template variables, xlsx sheets) of the monthly report on ``month``:
    a 汇总 sheet first, then one 项目跟踪表 sheet per engineer, then the
    detail sheets."""
    start, end = _month_range(rt, month)
    engineers = [p.name for p in rt.directory.with_role(ENGINEER_ROLE)]
    month_label, first_day, last_day, period = month_period_text(month)

    # 项目跟踪表: the same rows as `report tracking --month`.
    t_headers, t_rows = REPORTS["tracking"](rt, _args(month))
    sheets = tracking_sheets(rt, t_headers, t_rows, engineers=engineers)
    i_result = t_headers.index("沟通结果")
    tracking = []
    per_tracking: dict[str, tuple[int, int]] = {}
    for r in t_rows:
        n, left = per_tracking.get(r[0], (0, 0))
        per_tracking[r[0]] = (n + 1, left + (r[i_result] != "成功"))
    for sh in sheets:
        n, left = per_tracking.get(sh.title, (0, 0))
        tracking.append({"name": sh.title, "rows": n, "ok": n - left, "open": left})
    extra: list[Sheet] = []

    # 投诉 and penalties: as `report complaints --month`.
    c_headers, c_rows = REPORTS["complaints"](rt, _args(month))
    complaints = [{"name": r[0], "counted": r[1], "withdrawn": r[2], "other": r[3], "numbers": r[4], "penalties": r[5]}
                  for r in c_rows]
    extra.append(Sheet("投诉统计", c_headers, c_rows, heading="投诉与处罚", totals=sum_totals(c_headers, c_rows)))

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
        # Internal documents (测试预案/实施预案) addressed outside (workflows/confidential.py).
        leaks = list(s.scalars(select(Audit).where(Audit.entity == "confidential", Audit.action == "internal_outside",
                                                   Audit.at >= start, Audit.at < end).order_by(Audit.at, Audit.id)))
        # Work orders and follow-ups not closed, at the time of sending.
        workorders = open_workorders(rt, s)
        followups = open_followups(rt, s)
        due = due_times(s, workorders + followups)

    per_breach: dict[str, dict[str, int]] = {}
    b_rows = []
    for b, number, project, kind in breaches:
        who = b.person or "（未指定）"
        per_breach.setdefault(who, {})
        name = _clock_name(rt, kind or "", b.clock)
        per_breach[who][name] = per_breach[who].get(name, 0) + 1
        b_rows.append([who, number or "", _lifecycles(rt).label(kind) if kind else "", project or "", name,
                       rt.sla.profile_label(b.profile), _local(rt, b.due_at), _local(rt, b.breached_at)])
    sla_breaches = [{"name": who, "count": sum(c.values()),
                     "detail": "、".join(f"{k} {n}" for k, n in sorted(c.items()))}
                    for who, c in sorted(per_breach.items())]
    b_headers = ["人员", "记录号", "类型", "项目", "时限", "服务级别", "到期时间", "超时时间"]
    extra.append(Sheet("超时记录", b_headers, b_rows, heading="服务超时记录",
                       totals=[f"共 {len(b_rows)} 次"] + [""] * (len(b_headers) - 1)))
    if "sla" in REPORTS:
        s_headers, s_rows = REPORTS["sla"](rt, _args(month))
        extra.append(Sheet("服务时效", s_headers, s_rows, heading="响应与解决用时"))

    r_rows = [[_local(rt, r.created_at), r.project, r.engineer, r.ordinal, "、".join(r.to_addrs or [])] for r in reminders]
    lixiang = [{"date": row[0], "project": r.project, "engineer": r.engineer, "ordinal": r.ordinal}
               for row, r in zip(r_rows, reminders)]
    unregistered: dict[str, dict] = {}
    for r in reminders:
        e = unregistered.setdefault(r.project, {"project": r.project, "engineer": r.engineer, "count": 0, "last": 0})
        e["count"] += 1
        e["last"] = max(e["last"], r.ordinal or 0)
    r_headers = ["提醒时间", "项目", "售前", "第几次提醒", "收件人"]
    extra.append(Sheet("未立项提醒", r_headers, r_rows, heading="未立项项目的提醒",
                       totals=[f"共 {len(r_rows)} 次，{len(unregistered)} 个项目"] + [""] * (len(r_headers) - 1)))

    per_score: dict[str, list[int]] = {}
    for sv in surveys:
        per_score.setdefault(sv.engineer or "（未指定）", []).append(sv.score)
    satisfaction = [{"name": who, "count": len(sc), "average": f"{statistics.mean(sc):.2f}", "lowest": min(sc)}
                    for who, sc in sorted(per_score.items())]
    all_scores = [x for sc in per_score.values() for x in sc]
    extra.append(Sheet("回访满意度", ["售前", "回访数", "平均分", "最低分"],
                       [[e["name"], e["count"], e["average"], e["lowest"]] for e in satisfaction], heading="回访满意度",
                       totals=["合计", len(all_scores), f"{statistics.mean(all_scores):.2f}" if all_scores else "",
                               min(all_scores) if all_scores else ""]))

    wos = [_item(rt, t, due.get(t.id), now) | {"raiser": (t.data or {}).get("raiser", "") or t.owner,
                                                "rd_owner": (t.data or {}).get("rd_owner", "")} for t in workorders]
    w_headers = ["编号", "项目", "简述", "故障提出人", "研发负责人", "状态", "提交时间", "到期时间"]
    extra.append(Sheet("未关闭工作单", w_headers,
                       [[w["number"], w["project"], w["summary"], w["raiser"], w["rd_owner"], w["state"], w["opened"],
                         w["due"]] for w in wos], heading=f"未关闭的故障处理工作单（截至 {_local(rt, now)}）",
                       totals=[f"共 {len(wos)} 张"] + [""] * (len(w_headers) - 1)))
    fus = [_item(rt, t, due.get(t.id), now) for t in followups]
    f_headers = ["编号", "项目", "负责人", "遗留问题", "状态", "开单时间", "到期时间", "逾期"]
    extra.append(Sheet("未关闭跟进单", f_headers,
                       [[f["number"], f["project"], f["owner"], f["summary"], f["state"], f["opened"], f["due"],
                         f["overdue_text"] if f["overdue"] else ""] for f in fus],
                       heading=f"未关闭的遗留问题跟进单（截至 {_local(rt, now)}）",
                       totals=[f"共 {len(fus)} 张，已逾期 {sum(f['overdue'] for f in fus)} 张"] + [""] * (len(f_headers) - 1)))
    most_overdue = by_urgency([i for i in fus + wos if i["overdue"]])[:3]
    confidential = [{"date": _local(rt, a.at), "sender": (a.detail or {}).get("sender", a.actor),
                     "outside": "、".join((a.detail or {}).get("outside", [])),
                     "files": "、".join((a.detail or {}).get("files", [])), "subject": (a.detail or {}).get("subject", "")}
                    for a in leaks]
    k_headers = ["时间", "发件人", "公司以外的收件人", "内部文档", "邮件主题"]
    extra.append(Sheet("内部文档外发", k_headers,
                       [[c["date"], c["sender"], c["outside"], c["files"], c["subject"]] for c in confidential],
                       heading="内部文档（测试预案、实施预案）外发记录",
                       totals=[f"共 {len(confidential)} 次"] + [""] * (len(k_headers) - 1)))

    # 汇总: one row per engineer (the 售前 first, then anyone else with a figure).
    points = {}
    if rt.cfg.sla.points and "points" in REPORTS:
        points = {r[0]: r[4] for r in REPORTS["points"](rt, _args(month))[1]}
    per_complaint = {c["name"]: c for c in complaints}
    names = list(engineers)
    for who in [*per_tracking, *per_complaint, *per_breach, *per_score, *(f["owner"] for f in fus), *points]:
        if who and who not in names:
            names.append(who)
    headers = SUMMARY_HEADERS + (["扣分"] if rt.cfg.sla.points else [])
    summary = []
    for who in names:
        n, left = per_tracking.get(who, (0, 0))
        mine = [f for f in fus if f["owner"] == who]
        c = per_complaint.get(who, {})
        sc = per_score.get(who, [])
        row = [who, n, left, len(mine), sum(f["overdue"] for f in mine), c.get("counted", 0), c.get("penalties", ""),
               sum(per_breach.get(who, {}).values()), len(sc), f"{statistics.mean(sc):.2f}" if sc else ""]
        if rt.cfg.sla.points:
            row.append(points.get(who, 0))
        summary.append(row)
    totals = ["合计", *(sum(r[i] for r in summary) for i in range(1, 6)),
              f"{sum(1 for r in summary if r[6])} 人触发" if any(r[6] for r in summary) else "",
              sum(r[7] for r in summary), sum(r[8] for r in summary),
              f"{statistics.mean(all_scores):.2f}" if all_scores else ""]
    if rt.cfg.sla.points:
        totals.append(sum(r[10] for r in summary))
    trend = _trend(rt, month)
    first = Sheet("汇总", headers, summary, heading=f"{rt.cfg.system.name} {month_label}技术支持月度汇总", totals=totals,
                  below=[(f"近{TREND_MONTHS}个月", TREND_HEADERS, trend, None)],
                  # Under the tables (3 title rows, the engineers, 合计, a gap, the six months), one above the other.
                  charts=[Chart("各售前本月情况", ["沟通汇报", "服务超时", "有效投诉"], anchor=f"A{len(summary) + 16}"),
                          Chart(f"近{TREND_MONTHS}个月趋势", ["沟通汇报", "服务超时", "有效投诉"], table=1,
                                anchor=f"A{len(summary) + 31}")])

    figures = {"reports": totals[1], "left": totals[2], "followups": len(fus),
               "followups_overdue": sum(f["overdue"] for f in fus), "workorders": len(wos),
               "workorders_overdue": sum(w["overdue"] for w in wos), "complaints": totals[5],
               "breaches": len(b_rows), "surveys": len(all_scores),
               "satisfaction": f"{statistics.mean(all_scores):.2f}" if all_scores else "",
               "unregistered": len(unregistered)}
    variables = {
        "system": rt.cfg.system, "month": month, "month_label": month_label,
        "first_day": first_day, "last_day": last_day, "period": period,
        "now": now.astimezone(rt.tz).strftime("%Y-%m-%d %H:%M"),
        "filename": f"项目跟踪表-{month}.xlsx", "pdf_filename": f"月度报表-{month}.pdf",
        "engineer_sheets": [sh.title for sh in sheets], "extra_sheets": [sh.title for sh in extra],
        "figures": figures, "most_overdue": most_overdue,
        "tracking": tracking, "tracking_total": len(t_rows), "complaints": complaints,
        "sla_breaches": sla_breaches, "lixiang": lixiang, "unregistered": list(unregistered.values()),
        "satisfaction": satisfaction, "workorders": wos, "followups": fus, "confidential": confidential,
        "summary": {"headers": headers, "rows": summary, "totals": totals},
        "trend": {"headers": TREND_HEADERS, "rows": trend},
    }
    return variables, [first] + sheets + extra


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
    attachments = [(variables["filename"], MIME, workbook_bytes(sheets, period=variables["period"]))]
    pdf = monthly_pdf(rt, variables, sheets)
    if pdf is not None:
        attachments.append((variables["pdf_filename"], "application/pdf", pdf))
    variables["attached"] = [name for name, _t, _d in attachments]
    out = Outgoing(MONTHLY_TEMPLATE, to=[p.email for p in managers], kind="notice", variables=variables,
                   attachments=attachments)
    n = _claim_and_queue(rt, queue, period.key, out, now, {"month": month, "to": out.to})
    if n:
        log.info("%s 月报已放入发件箱，收件人：%s", month, "、".join(out.to))
    return n


def monthly_pdf(rt: "Runtime", variables: dict, sheets: list) -> bytes | None:
    """The PDF of the monthly pack, or None (logged) when it cannot be made."""
    try:
        from .pdf import pack_pdf
        return pack_pdf(rt, variables, sheets)
    except Exception as e:  # a missing font or Pango library: said in one line, no traceback
        log.warning("%s 月报的 PDF 未能生成（%s: %s），只发送 xlsx；请安装 WeasyPrint 所需的 Pango 库和中文字体",
                    variables.get("month"), type(e).__name__, e)
        log.debug("PDF 生成失败的详情", exc_info=True)
        return None


# -- weekly -----------------------------------------------------------------------


def open_items(rt: "Runtime", s, name: str, now: datetime) -> dict:
    """The open items of one engineer (for the weekly mail): ``items``, the
    follow-ups they own and the work orders they raised, are the R&D owner
    of or own, most urgent first (the most overdue first, then by due time,
    those without one last); and the surveys still waiting for an answer."""
    followups = open_followups(rt, s, owner=name)
    mine = []
    for t in open_workorders(rt, s):
        d = t.data or {}
        roles = []
        if (d.get("raiser") or t.owner) == name:
            roles.append("故障提出人")
        if d.get("rd_owner") == name:
            roles.append("研发负责人")
        if t.owner == name and not roles:
            roles.append("负责人")
        if roles:
            mine.append((t, "、".join(roles)))
    due = due_times(s, followups + [t for t, _r in mine])
    fus = [_item(rt, t, due.get(t.id), now) | {"as": "负责人"} for t in followups]
    wos = [_item(rt, t, due.get(t.id), now) | {"as": roles} for t, roles in mine]
    surveys = []
    for sv, number, project in s.execute(select(Survey, Ticket.number, Ticket.project)
                                         .join(Ticket, Survey.ticket_id == Ticket.id)
                                         .where(Survey.engineer == name, Survey.status == "sent")
                                         .order_by(Survey.sent_at, Survey.id)):
        surveys.append({"number": number, "project": project, "sent": _local(rt, sv.sent_at), "to": sv.to_addr})
    return {"items": by_urgency(fus + wos), "followups": fus, "workorders": wos, "surveys": surveys}


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
