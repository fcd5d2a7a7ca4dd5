"""Scheduled report mails (monthly to the managers, weekly to each engineer)
and the xlsx / sla report commands.

Mails go end to end: the tracking rows come from 客户沟通 report mails through
a real Dovecot mailbox (``Flow``), the reports are queued by
``send_scheduled_reports`` with an injected clock (no sleeps) and delivered
to a real aiosmtpd server. The clock is in the past (the outbox sends rows
whose time has come), two months back for the monthly data, so the tests
never collide with the periods the real clock would send."""
from __future__ import annotations

from email.utils import getaddresses
import io
import itertools
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from sqlalchemy import select

from conventions.helpers import LI, QIAN, SUN, SYSTEM, WANG, ZHANG, ZHAO, ZHOU, Flow, report_body
from processor.config import load_config
from processor.outbox import Deliverer
from processor.pipeline import Runtime
from processor.reports.scheduled import send_scheduled_reports
from processor.store.models import Breach, Clock, Outbox, Reminder, Setting, Survey, Ticket
from support import run, write_config

TZ = ZoneInfo("Asia/Shanghai")
MANAGERS = sorted([QIAN, SUN, ZHAO])  # 技术支持部经理, 技术总监, 售前经理 (the default monthly_roles)


def _months_back(n: int) -> tuple[int, int]:
    today = datetime.now(TZ).date()
    y, m = today.year, today.month - n
    while m < 1:
        y, m = y - 1, m + 12
    return y, m


Y, M = _months_back(2)  # the month reported on
MONTH = f"{Y:04d}-{M:02d}"
NY, NM = (Y + (M == 12), M % 12 + 1)  # the month of sending
SEND_AT = datetime(NY, NM, 1, 9, 30, tzinfo=TZ)  # default schedule: the 1st, 09:00
BEFORE = datetime(NY, NM, 1, 8, 59, tzinfo=TZ)
LATER = datetime(NY, NM, 20, 18, 0, tzinfo=TZ)


def in_month(day: int, hh: int = 10, mm: int = 0) -> datetime:
    return datetime(Y, M, day, hh, mm, tzinfo=TZ)


def last_day(y: int, m: int) -> int:
    return (date(y + (m == 12), m % 12 + 1, 1) - timedelta(days=1)).day


def past_monday(weeks_back: int = 3) -> date:
    d = datetime.now(TZ).date() - timedelta(weeks=weeks_back)
    return d - timedelta(days=d.weekday())


# -- helpers -------------------------------------------------------------------


def runtime(cfg, when: datetime) -> Runtime:
    return Runtime(load_config(cfg), clock=lambda: when)


def send_reports(cfg, when: datetime) -> int:
    rt = runtime(cfg, when)
    try:
        return send_scheduled_reports(rt)
    finally:
        rt.store.engine.dispose()


def deliver(flow: Flow) -> list:
    """Deliver the outbox; return the captured mails it sent."""
    rt = Runtime(load_config(flow.cfg))
    try:
        Deliverer(rt.cfg, rt.store).deliver_due()
    finally:
        rt.store.engine.dispose()
    new = flow.smtp.messages[flow.seen:]
    flow.seen = len(flow.smtp.messages)
    return new


def to_of(c) -> list[str]:
    return sorted(a.strip().lower() for _n, a in getaddresses([c.header("To") or ""]) if a.strip())


def cell(v) -> str:
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M")
    return "" if v is None else str(v)


def sheet_rows(ws) -> tuple[list[str], list[list[str]]]:
    rows = [[cell(v) for v in r] for r in ws.iter_rows(values_only=True)]
    return rows[0], rows[1:]


def add_rows(cfg, *objs_fn) -> None:
    """Write rows straight into the store (for tables whose workflows are
    exercised elsewhere: SLA breaches, reminders, surveys, work orders)."""
    rt = runtime(cfg, SEND_AT)
    try:
        with rt.store.session() as s, s.begin():
            for fn in objs_fn:
                fn(s)
    finally:
        rt.store.engine.dispose()


def workorder(s, number: str, state: str, raiser: str, rd_owner: str = "", summary: str = "核心交换机VRRP主备频繁切换",
              project: str = "华夏银行") -> Ticket:
    t = Ticket(token=number.replace("-", ""), kind="workorder", number=number, project=project, owner=raiser,
               state=state, opened_at=in_month(5).astimezone(timezone.utc),
               data={"raiser": raiser, "rd_owner": rd_owner, "summary": summary})
    s.add(t)
    s.flush()
    return t


_cycles = itertools.count(1000)  # clock cycles of our own (unique per record and clock name)


def breach(s, ticket: Ticket, person: str, clock: str, when: datetime, profile: str = "workorder") -> None:
    c = Clock(ticket_id=ticket.id, name=clock, cycle=next(_cycles), profile=profile, target_minutes=60,
              owner=person, status="stopped", started_at=when - timedelta(hours=3), stopped_at=when)
    s.add(c)
    s.flush()
    s.add(Breach(clock_id=c.id, ticket_id=ticket.id, person=person, clock=clock, profile=profile,
                 due_at=when - timedelta(hours=2), breached_at=when - timedelta(hours=2)))


# -- fixtures --------------------------------------------------------------------


@pytest.fixture
def flow(tmp_path, imap_server, smtp_server, capsys, db_url):
    """Monthly mails only. Runs on SQLite and on PostgreSQL (the period keys
    are the exactly-once guard)."""
    return Flow(tmp_path, imap_server, smtp_server, capsys, db_url=db_url,
                extra="[reports]\nweekly_enabled = false\n")


@pytest.fixture
def weekly_flow(tmp_path, imap_server, smtp_server, capsys, db_url):
    """Weekly mails only."""
    return Flow(tmp_path, imap_server, smtp_server, capsys, db_url=db_url,
                extra="[reports]\nmonthly_enabled = false\n")


def send_tracking_reports(flow: Flow) -> None:
    """Tracking rows of the month for 张三 and 王五, one just outside it on
    each side (system time zone), and two complaints about 张三."""
    last = last_day(Y, M)
    flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行项目-张三", date=in_month(3),
              body=report_body(contact="王经理（信息科）", method="远程桌面"))
    flow.send(sender=WANG, to=(ZHOU,), cc=(SYSTEM,), subject="客户沟通-东方电网-王五", date=in_month(10, 14, 20),
              body=report_body(project="东方电网", contact="刘工（调度中心）", method="现场",
                               issue="更换调度中心核心交换机的电源模块并核对告警"))
    flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行-张三", date=in_month(last, 23, 30),
              body=report_body(result="问题遗留", issue="核对华夏银行分行防火墙的NAT策略",
                               remaining="分行出口NAT策略与总部不一致，需要研发确认"))
    # Outside the month in the system time zone (UTC would put them inside / outside the other way).
    py, pm = (Y - (M == 1), (M - 2) % 12 + 1)
    flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行-张三",
              date=datetime(py, pm, last_day(py, pm), 23, 30, tzinfo=TZ),
              body=report_body(issue="上月末调整华夏银行VPN网关的证书"))
    flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行-张三",
              date=datetime(NY, NM, 1, 0, 30, tzinfo=TZ), body=report_body(issue="下月初巡检华夏银行核心交换机"))
    for day in (12, 19):
        flow.send(sender=LI, to=(QIAN,), cc=(SUN, SYSTEM), subject="投诉-华夏银行项目沟通问题", date=in_month(day),
                  body="技术支持与客户沟通后既没有汇报邮件也没有电话说明。")


# -- monthly ---------------------------------------------------------------------


def test_monthly_report_mail_with_tracking_workbook(flow):
    send_tracking_reports(flow)
    expected = flow.tracking("--month", MONTH)
    assert sorted((r["第一售前"], r["沟通的具体问题"]) for r in expected) == [
        ("张三", "核对华夏银行分行防火墙的NAT策略"), ("张三", "解决vista下远程控制网络参数设置"),
        ("王五", "更换调度中心核心交换机的电源模块并核对告警")]

    def data(s):
        wo = workorder(s, "GD2026-0901", "assigned", "王五", "冯工")
        workorder(s, "GD2026-0902", "closed", "赵六", "陈工", summary="已解决的问题")
        workorder(s, "GD2026-0903", "custom", "张三", "冯工", summary="已转定制的问题")
        breach(s, wo, "王五", "response", in_month(6))
        breach(s, wo, "王五", "resolution", in_month(7), profile="fault_level1")
        breach(s, wo, "张三", "response", datetime(NY, NM, 1, 3, 0, tzinfo=TZ))  # breached next month: not counted
        s.add(Reminder(kind="lixiang", project="新华保险", project_key="新华保险", ordinal=2, engineer="张三",
                       to_addrs=[LI], created_at=in_month(8)))
        s.add(Reminder(kind="lixiang", project="旧项目", project_key="旧项目", ordinal=1, engineer="王五",
                       to_addrs=[LI], created_at=datetime(NY, NM, 2, tzinfo=TZ)))  # next month
        for score, day in ((5, 9), (3, 11)):
            s.add(Survey(ticket_id=wo.id, to_addr=LI, engineer="张三", status="answered", score=score,
                         sent_at=in_month(day - 1), answered_at=in_month(day)))
        s.add(Survey(ticket_id=wo.id, to_addr=LI, engineer="王五", status="sent", sent_at=in_month(20)))
    add_rows(flow.cfg, data)

    # Before the scheduled time: nothing.
    assert send_reports(flow.cfg, BEFORE) == 0
    assert flow.db("select key from settings where key = :k", k=f"report.monthly.{MONTH}") == []
    assert deliver(flow) == []

    assert send_reports(flow.cfg, SEND_AT) == 1
    (mail,) = deliver(flow)
    assert to_of(mail) == MANAGERS and sorted(mail.rcpt_tos) == MANAGERS
    assert mail.subject == f"月度报表：{Y}年{M}月技术支持工作汇总"
    text = mail.text
    assert f"{Y}年{M}月（{MONTH}-01 至 {MONTH}-{last_day(Y, M):02d}）" in text
    assert "张三：2 条（成功 1，问题遗留 1）" in text and "王五：1 条（成功 1，问题遗留 0）" in text
    assert "赵六：0 条" in text
    assert "张三：有效投诉 2 次（TS2026-0001、TS2026-0002）" in text and "当月绩效工资扣发1级" in text
    sla = text.split("三、超时")[1].split("四、")[0]
    assert "王五：2 次（解决 1、首次响应 1）" in sla and "张三" not in sla
    lixiang = text.split("四、未立项提醒")[1].split("五、")[0]
    assert "新华保险  售前：张三  第 2 次提醒" in lixiang and "旧项目" not in lixiang
    sat = text.split("五、回访满意度")[1].split("六、")[0]
    assert "张三：2 份，平均 4.00 分，最低 3 分" in sat and "王五" not in sat
    wos = text.split("六、未关闭的故障处理工作单")[1]
    assert "GD2026-0901" in wos and "状态：已指派" in wos and "故障提出人：王五  研发负责人：冯工" in wos
    assert "GD2026-0902" not in wos and "GD2026-0903" not in wos

    # The attachment: one sheet per engineer with the rows of `report tracking --month`.
    atts = mail.attachments
    assert [a.get_filename() for a in atts] == [f"项目跟踪表-{MONTH}.xlsx"]
    assert atts[0].get_content_type() == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    wb = openpyxl.load_workbook(io.BytesIO(atts[0].get_content()))
    assert wb.sheetnames[:3] == ["张三", "王五", "赵六"]
    assert {"投诉统计", "超时记录", "未立项提醒", "回访满意度", "未关闭工作单"} <= set(wb.sheetnames[3:])
    for name in ("张三", "王五", "赵六"):
        ws = wb[name]
        headers, rows = sheet_rows(ws)
        assert headers == list(expected[0].keys())
        assert [dict(zip(headers, r)) for r in rows] == [r for r in expected if r["第一售前"] == name]
        assert all(c.font.b for c in ws[1])
        assert ws.column_dimensions["H"].width >= 16  # 沟通的具体问题: Chinese text is double width
    date_cell = wb["张三"]["B2"]
    assert isinstance(date_cell.value, datetime) and date_cell.value == in_month(3).replace(tzinfo=None)
    _h, wo_rows = sheet_rows(wb["未关闭工作单"])
    assert [r[0] for r in wo_rows] == ["GD2026-0901"]
    # 超时记录: the service level by its Chinese name, times in the system time zone.
    b_headers, b_rows = sheet_rows(wb["超时记录"])
    assert b_headers == ["人员", "记录号", "项目", "时钟", "服务级别", "到期时间", "超时时间"]
    assert [(r[0], r[3], r[4], r[6]) for r in b_rows] == [
        ("王五", "首次响应", "故障处理工作单", cell(in_month(6) - timedelta(hours=2))),
        ("王五", "解决", "一级故障", cell(in_month(7) - timedelta(hours=2)))]

    # Exactly once: the period key holds the outbox Message-ID, and a later run in the month sends nothing.
    (mid,) = flow.db("select value from settings where key = :k", k=f"report.monthly.{MONTH}")[0]
    assert mid == mail.message_id
    assert send_reports(flow.cfg, LATER) == 0
    assert send_reports(flow.cfg, SEND_AT) == 0
    assert deliver(flow) == []
    assert flow.db("select count(*) from outbox where template = 'report_monthly' and subject = :s",
                   s=mail.subject) == [(1,)]


def test_monthly_report_not_before_the_scheduled_time_and_empty_sections(flow):
    assert send_reports(flow.cfg, BEFORE.replace(day=1, hour=8)) == 0
    assert deliver(flow) == []
    assert send_reports(flow.cfg, SEND_AT) == 1
    (mail,) = deliver(flow)
    assert to_of(mail) == MANAGERS
    text = mail.text
    for section in ("二、投诉与处罚", "三、超时", "四、未立项提醒", "五、回访满意度", "六、未关闭的故障处理工作单"):
        body = text.split(section)[1].split("\n\n")[0]
        assert body.strip().endswith("无"), (section, body)
    wb = openpyxl.load_workbook(io.BytesIO(mail.attachments[0].get_content()))
    assert wb.sheetnames[:3] == ["张三", "王五", "赵六"]
    assert [sheet_rows(wb[n])[1] for n in ("张三", "王五", "赵六")] == [[], [], []]


# -- weekly ----------------------------------------------------------------------


def test_weekly_mail_to_each_engineer_with_open_items_only(weekly_flow):
    flow = weekly_flow
    # 张三: an open follow-up (问题遗留); 王五: an assigned work order he raised;
    # 赵六 (售前经理 and 售前): only a closed work order -> no mail.
    flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行-张三",
              body=report_body(result="问题遗留", issue="核对华夏银行分行防火墙的NAT策略",
                               remaining="分行出口NAT策略与总部不一致，需要研发确认"))
    (followup,) = flow.db("select number from tickets where kind = 'followup'")[0]

    def data(s):
        workorder(s, "GD2026-0911", "assigned", "王五", "冯工", summary="调度系统接口超时")
        workorder(s, "GD2026-0912", "closed", "赵六", "陈工")
    add_rows(flow.cfg, data)

    monday = past_monday()

    assert send_reports(flow.cfg, datetime.combine(monday, time(8, 59), TZ)) == 0
    assert deliver(flow) == []
    assert send_reports(flow.cfg, datetime.combine(monday, time(9, 0), TZ)) == 2
    sent = deliver(flow)
    assert sorted(tuple(to_of(c)) for c in sent) == [(WANG,), (ZHANG,)]
    week = monday.isocalendar()
    zhang = next(c for c in sent if to_of(c) == [ZHANG])
    assert zhang.subject == f"每周待办：张三有 1 项未关闭（{week.year}年第{week.week}周）"
    assert followup in zhang.text and "分行出口NAT策略与总部不一致" in zhang.text
    assert "GD2026-0911" not in zhang.text
    wang = next(c for c in sent if to_of(c) == [WANG])
    assert "GD2026-0911" in wang.text and "调度系统接口超时" in wang.text and "您是：故障提出人" in wang.text
    assert followup not in wang.text and "GD2026-0912" not in wang.text

    keys = dict(flow.db("select key, value from settings where key like 'report.weekly.%'"))
    wk = f"{week.year:04d}-W{week.week:02d}"
    assert set(keys) == {f"report.weekly.{n}.{wk}" for n in ("张三", "王五", "赵六")}
    assert keys[f"report.weekly.张三.{wk}"] == zhang.message_id and keys[f"report.weekly.赵六.{wk}"] == ""

    # Once per week: later the same week nothing, the next week again.
    assert send_reports(flow.cfg, datetime.combine(monday + timedelta(days=4), time(17, 0), TZ)) == 0
    assert deliver(flow) == []
    assert send_reports(flow.cfg, datetime.combine(monday + timedelta(days=7), time(9, 5), TZ)) == 2
    assert sorted(tuple(to_of(c)) for c in deliver(flow)) == [(WANG,), (ZHANG,)]


# -- exactly once without mail: outage, storms, config ---------------------------------


@pytest.fixture
def store_cfg(tmp_path, db_url):
    return write_config(tmp_path, db_url=db_url)


def _outbox(cfg) -> list[tuple[str, str]]:
    rt = runtime(cfg, SEND_AT)
    try:
        with rt.store.reader() as s:
            return [(o.template, o.subject) for o in s.scalars(select(Outbox).order_by(Outbox.id))]
    finally:
        rt.store.engine.dispose()


def _settings(cfg, prefix: str) -> dict[str, str]:
    rt = runtime(cfg, SEND_AT)
    try:
        with rt.store.reader() as s:
            return {r.key: r.value for r in s.scalars(select(Setting).where(Setting.key.like(prefix + "%")))}
    finally:
        rt.store.engine.dispose()


def test_after_a_long_outage_only_the_latest_period_is_sent(store_cfg):
    # First run months ago, before that month's schedule (nothing due yet) ...
    assert send_reports(store_cfg, datetime(Y - 1, M, 1, 8, 0, tzinfo=TZ)) == 0
    assert _outbox(store_cfg) == []
    # ... then down for a year: at the next run only the month that just ended is reported.
    late = datetime(NY, NM, 17, 11, 0, tzinfo=TZ)
    assert send_reports(store_cfg, late) == 1
    assert _outbox(store_cfg) == [("report_monthly", f"月度报表：{Y}年{M}月技术支持工作汇总")]
    assert list(_settings(store_cfg, "report.monthly.")) == [f"report.monthly.{MONTH}"]
    assert send_reports(store_cfg, late + timedelta(days=3)) == 0
    # The next month's report is due on its own 1st.
    nxt = datetime(NY + (NM == 12), NM % 12 + 1, 1, 9, 0, tzinfo=TZ)
    assert send_reports(store_cfg, nxt - timedelta(minutes=1)) == 0
    assert send_reports(store_cfg, nxt) == 1
    assert sorted(_settings(store_cfg, "report.monthly.")) == sorted([f"report.monthly.{MONTH}",
                                                                       f"report.monthly.{NY:04d}-{NM:02d}"])


def test_a_new_installation_does_not_mail_at_once(store_cfg):
    # First run on the 17th: the report of the 1st (before the system ran) is not sent ...
    assert send_reports(store_cfg, datetime(NY, NM, 17, 11, 0, tzinfo=TZ)) == 0
    assert send_reports(store_cfg, datetime(NY, NM, 28, 11, 0, tzinfo=TZ)) == 0
    assert _outbox(store_cfg) == [] and _settings(store_cfg, "report.monthly.") == {}
    # ... the next month's is.
    nxt = datetime(NY + (NM == 12), NM % 12 + 1, 1, 9, 0, tzinfo=TZ)
    assert send_reports(store_cfg, nxt) == 1
    assert list(_settings(store_cfg, "report.monthly.")) == [f"report.monthly.{NY:04d}-{NM:02d}"]


def test_configured_day_time_roles_and_switches(tmp_path, db_url):
    cfg = write_config(tmp_path, db_url=db_url, extra="""
[reports]
monthly_day = 5
monthly_time = "17:30"
monthly_roles = ["总经理", "技术总监"]
weekly_enabled = false
""")
    assert send_reports(cfg, datetime(NY, NM, 5, 17, 29, tzinfo=TZ)) == 0
    assert send_reports(cfg, datetime(NY, NM, 5, 17, 30, tzinfo=TZ)) == 1
    rt = runtime(cfg, SEND_AT)
    try:
        with rt.store.reader() as s:
            (row,) = s.scalars(select(Outbox))
            assert row.to_addrs == [SUN] and row.kind == "notice"
    finally:
        rt.store.engine.dispose()


# -- on-demand xlsx and the sla report ---------------------------------------------------


def test_report_tracking_xlsx_matches_the_table(flow, tmp_path):
    send_tracking_reports(flow)
    out = tmp_path / "跟踪表.xlsx"
    flow.capsys.readouterr()
    assert run(flow.cfg, "report", "tracking", "--format", "xlsx", "--out", str(out)) == 0
    assert "已写入" in flow.capsys.readouterr().out
    everything = flow.tracking()
    wb = openpyxl.load_workbook(out)
    assert wb.sheetnames == ["张三", "王五", "赵六"]
    for name in wb.sheetnames:
        headers, rows = sheet_rows(wb[name])
        assert [dict(zip(headers, r)) for r in rows] == [r for r in everything if r["第一售前"] == name]
    assert sum(len(sheet_rows(wb[n])[1]) for n in wb.sheetnames) == len(everything) == 5

    # --month and --presales narrow it like the table.
    assert run(flow.cfg, "report", "tracking", "--month", MONTH, "--presales", "张三", "--format", "xlsx",
               "--out", str(out)) == 0
    wb = openpyxl.load_workbook(out)
    assert wb.sheetnames == ["张三"]
    headers, rows = sheet_rows(wb["张三"])
    assert [dict(zip(headers, r)) for r in rows] == flow.tracking("--month", MONTH, "--presales", "张三")

    # Any other report: one sheet with the table.
    assert run(flow.cfg, "report", "complaints", "--format", "xlsx", "--out", str(out)) == 0
    wb = openpyxl.load_workbook(out)
    assert wb.sheetnames == ["投诉统计"]
    headers, rows = sheet_rows(wb["投诉统计"])
    assert [dict(zip(headers, r)) for r in rows] == flow.report("complaints")

    # xlsx needs a file.
    flow.capsys.readouterr()
    assert run(flow.cfg, "report", "tracking", "--format", "xlsx") == 2
    assert "--format xlsx 需要用 --out 指定要写入的文件" in flow.capsys.readouterr().err


def test_report_sla(tmp_path, db_url, capsys):
    import json

    cfg = write_config(tmp_path, db_url=db_url)

    def data(s):
        t = workorder(s, "GD2026-0921", "assigned", "王五", "冯工")

        def clock(owner, name, start, hours, paused=0.0, status="stopped"):
            s.add(Clock(ticket_id=t.id, name=name, cycle=next(_cycles), profile="fault_7x24", mode="24x7", target_minutes=120,
                        owner=owner, status=status, started_at=start,
                        stopped_at=start + timedelta(hours=hours) if status == "stopped" else None,
                        paused_minutes=paused))
        # 王五: responses of 1, 2, 3, 4 h and 10 h (10.5 h minus 30 min paused); resolution 30 h.
        for i, h in enumerate((1, 2, 3, 4)):
            clock("王五", "response", in_month(3 + i), h)
        clock("王五", "response", in_month(8), 10.5, paused=30)
        clock("王五", "resolution", in_month(9), 30)
        clock("王五", "update", in_month(9), 5)  # not a response/resolution clock
        clock("王五", "response", in_month(10), 1, status="running")  # not stopped
        clock("张三", "response", datetime(NY, NM, 1, 0, 30, tzinfo=TZ), 0.3)  # stops in the next month
        s.flush()
        b = Clock(ticket_id=t.id, name="response", cycle=next(_cycles), profile="fault_7x24", mode="24x7", target_minutes=120, owner="王五",
                  status="stopped", started_at=in_month(8), stopped_at=in_month(8, 22))
        s.add(b)
        s.flush()
        s.add(Breach(clock_id=b.id, ticket_id=t.id, person="王五", clock="response", profile="fault_7x24",
                     breached_at=in_month(8, 12)))
    add_rows(cfg, data)

    capsys.readouterr()
    assert run(cfg, "report", "sla", "--month", MONTH, "--format", "json") == 0
    rows = json.loads(capsys.readouterr().out)
    # The breach clock (12 h) is a stopped response clock too: 1, 2, 3, 4, 10, 12 h.
    assert rows == [{"人员": "王五", "首次响应次数": "6", "响应中位数(小时)": "3.5", "响应P90(小时)": "12.0",
                     "解决次数": "1", "解决中位数(小时)": "30.0", "解决P90(小时)": "30.0",
                     "响应超时": "1", "解决超时": "0", "超时合计": "1"}]
    assert run(cfg, "report", "sla", "--format", "json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["人员"], r["首次响应次数"], r["响应中位数(小时)"]) for r in rows] == [("张三", "1", "0.3"), ("王五", "6", "3.5")]
    assert run(cfg, "report", "sla", "--month", MONTH) == 0
    assert "响应P90(小时)" in capsys.readouterr().out
