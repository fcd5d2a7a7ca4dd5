"""Scheduled report mails (monthly to the managers, weekly to each engineer)
and the xlsx / sla report commands.

Mails go end to end: the tracking rows come from 客户沟通 report mails through
a real Dovecot mailbox (``Flow``), the reports are queued by
``send_scheduled_reports`` with an injected clock (no sleeps) and delivered
to a real aiosmtpd server. The clock is in the past (the outbox sends rows
whose time has come), two months back for the monthly data, so the tests
never collide with the periods the real clock would send."""
from __future__ import annotations

import email
import email.policy
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
from processor.store.models import Breach, Clock, Outbox, OutboxContent, Reminder, Setting, Survey, Ticket, TrackingRow
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


TITLE, PERIOD, HEADER = 1, 2, 3  # the rows above every sheet's table


def sheet_rows(ws) -> tuple[list[str], list[list[str]]]:
    """(headers, data rows) of a sheet's (first) table: the rows under the
    header row up to the bold 合计 row or the first empty row."""
    headers = [cell(c.value) for c in ws[HEADER] if c.value is not None]
    rows = []
    for r in ws.iter_rows(min_row=HEADER + 1, max_col=len(headers)):
        if r[0].font.b or all(c.value is None for c in r):
            break
        rows.append([cell(c.value) for c in r])
    return headers, rows


def totals_row(ws) -> list[str]:
    """The bold 合计 row under a sheet's first table."""
    for r in ws.iter_rows(min_row=HEADER + 1):
        if r[0].font.b:
            return [cell(c.value) for c in r]
    raise AssertionError(f"no totals row in {ws.title}")


def visible_columns(ws) -> list[str]:
    from openpyxl.utils import get_column_letter
    return [cell(c.value) for i, c in enumerate(ws[HEADER], start=1)
            if c.value is not None and not ws.column_dimensions[get_column_letter(i)].hidden]


def without_owner(rows: list[dict]) -> list[dict]:
    """Tracking rows as a per-engineer sheet shows them: no 第一售前 (the
    sheet's name), the Message-ID in its hidden 邮件Message-ID column."""
    return [{("邮件Message-ID" if k == "邮件" else k): v for k, v in r.items() if k != "第一售前"} for r in rows]


def assert_print_setup(ws, period: str) -> None:
    assert int(ws.page_setup.paperSize) == 9 and ws.page_setup.orientation == "landscape"  # 9: A4
    assert ws.sheet_properties.pageSetUpPr.fitToPage and ws.page_setup.fitToWidth == 1 and not ws.page_setup.fitToHeight
    assert ws.print_title_rows == f"$1:$3"
    assert ws.oddFooter.left.text == period and "&P" in ws.oddFooter.center.text and "&N" in ws.oddFooter.center.text
    assert ws.freeze_panes == "A4" and ws.auto_filter.ref.startswith("A3:")


def assert_no_visible_message_ids(wb) -> None:
    import re
    from openpyxl.utils import get_column_letter
    mid = re.compile(r"<[^<>\s]+@[^<>\s]+>")
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for c in row:
                if isinstance(c.value, str) and mid.search(c.value):
                    assert ws.column_dimensions[get_column_letter(c.column)].hidden, (ws.title, c.coordinate, c.value)


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


def open_followup(s, number: str, owner: str, due: datetime, remaining: str, project: str = "东方电网") -> Ticket:
    t = Ticket(token=number.replace("-", ""), kind="followup", number=number, project=project, owner=owner,
               state="open", opened_at=(due - timedelta(days=3)).astimezone(timezone.utc),
               due_at=due.astimezone(timezone.utc), data={"remaining": remaining})
    s.add(t)
    s.flush()
    return t


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
        # The open work order is overdue by its running step clock (due on the 25th).
        s.add(Clock(ticket_id=wo.id, name="step:assigned", cycle=next(_cycles), profile="workorder", target_minutes=60,
                    owner="王五", status="running", started_at=in_month(24), due_at=in_month(25)))
        # Open follow-ups: two overdue (the 20th, the 22nd), one due after sending.
        open_followup(s, "GJ2026-0901", "王五", in_month(20), "等待运营商回复专线故障原因")
        open_followup(s, "GJ2026-0902", "张三", in_month(22), "等待研发确认补丁", project="华夏银行")
        open_followup(s, "GJ2026-0903", "张三", SEND_AT + timedelta(days=3), "下周复测", project="华夏银行")
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
    # Never a command to run, never an invitation to reply (in the text or the HTML part).
    html = mail.html
    for body in (text, html):
        assert "run.py" not in body and "直接回复本邮件" not in body and "回复本邮件不会被处理" in body

    # The figures, against the store.
    start, end = (datetime(Y, M, 1, tzinfo=TZ), datetime(NY, NM, 1, tzinfo=TZ))
    (n_followups,) = flow.db("select count(*) from tickets where kind = 'followup' and closed_at is null")[0]
    overdue = [n for (n, due) in flow.db("select number, due_at from tickets where kind = 'followup' "
                                         "and closed_at is null and due_at is not null")
               if (due if isinstance(due, datetime) else datetime.fromisoformat(due)).replace(tzinfo=timezone.utc)
               < SEND_AT]
    assert sorted(overdue) == ["GJ2026-0901", "GJ2026-0902"] and n_followups == 4  # 3 made here + 张三's 问题遗留
    (n_breaches,) = flow.db("select count(*) from sla_breaches where breached_at >= :a and breached_at < :b",
                            a=start.astimezone(timezone.utc).replace(tzinfo=None),
                            b=end.astimezone(timezone.utc).replace(tzinfo=None))[0]
    overview = text.split("一、本月概况")[1].split("二、")[0]
    assert f"沟通汇报 {len(expected)} 条，其中问题遗留 1 条" in overview
    assert f"有效投诉 2 次，服务超时 {n_breaches} 次" in overview and n_breaches == 2
    assert "回访 2 份，平均 4.00 分" in overview and "未立项项目 1 个" in overview
    assert f"未关闭的遗留问题跟进单 {n_followups} 张（已逾期 2 张），未关闭的故障处理工作单 1 张（已逾期 1 张）" in overview
    # The three most overdue items, by name, the most overdue first.
    worst = [line.strip() for line in text.split("二、逾期最久的事项")[1].split("三、")[0].strip().splitlines()]
    assert [line.split()[2] for line in worst] == ["GJ2026-0901", "GJ2026-0902", "GD2026-0901"]
    assert worst[0].startswith("1. 遗留问题跟进单 GJ2026-0901  东方电网  等待运营商回复专线故障原因  负责人：王五  已逾期 ")
    assert "故障处理工作单 GD2026-0901" in worst[2]
    assert "张三：2 条（成功 1，问题遗留 1）" in text and "王五：1 条（成功 1，问题遗留 0）" in text
    assert "赵六：0 条" in text
    assert "张三：有效投诉 2 次（TS2026-0001、TS2026-0002）" in text and "当月绩效工资扣发1级" in text
    sla = text.split("五、服务超时")[1].split("六、")[0]
    assert "王五：2 次（解决 1、首次响应 1）" in sla and "张三" not in sla
    lixiang = text.split("六、未立项项目")[1].split("七、")[0]
    assert "新华保险  售前：张三  本月提醒销售 1 次（累计第 2 次）" in lixiang and "旧项目" not in lixiang
    sat = text.split("七、回访满意度")[1].split("八、")[0]
    assert "张三：2 份，平均 4.00 分，最低 3 分" in sat and "王五" not in sat
    fus = text.split("八、未关闭的遗留问题跟进单")[1].split("九、")[0]
    assert [line.split()[0] for line in fus.strip().splitlines()[1:]][:3] == ["GJ2026-0901", "GJ2026-0902", "GJ2026-0903"]
    wos = text.split("九、未关闭的故障处理工作单")[1]
    assert "GD2026-0901" in wos and "状态：已指派" in wos and "故障提出人：王五  研发负责人：冯工" in wos
    assert "GD2026-0902" not in wos and "GD2026-0903" not in wos

    # The attachments: the workbook and the PDF.
    atts = mail.attachments
    assert [a.get_filename() for a in atts] == [f"项目跟踪表-{MONTH}.xlsx", f"月度报表-{MONTH}.pdf"]
    assert atts[0].get_content_type() == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert atts[1].get_content_type() == "application/pdf" and atts[1].get_content().startswith(b"%PDF")
    wb = openpyxl.load_workbook(io.BytesIO(atts[0].get_content()))
    assert wb.sheetnames[:4] == ["汇总", "张三", "王五", "赵六"]
    assert {"投诉统计", "超时记录", "未立项提醒", "回访满意度", "未关闭工作单", "未关闭跟进单"} <= set(wb.sheetnames[4:])
    period = f"统计期间：{Y}年{M}月（{MONTH}-01 至 {MONTH}-{last_day(Y, M):02d}）"
    for ws in wb.worksheets:  # a title and the period on every sheet, printable
        assert ws["A1"].value and ws["A1"].font.b and ws["A2"].value == period, ws.title
        assert_print_setup(ws, period)
    assert_no_visible_message_ids(wb)

    # 汇总: one row per engineer, the totals, the charts.
    summary = wb["汇总"]
    assert summary["A1"].value == f"工单系统 {Y}年{M}月技术支持月度汇总"
    headers, rows = sheet_rows(summary)
    assert headers == ["售前", "沟通汇报", "问题遗留", "未关闭跟进单", "其中已逾期", "有效投诉", "处罚", "服务超时",
                       "回访数", "平均满意度(5分制)"]
    got = {r[0]: r for r in rows}
    assert set(got) == {"张三", "王五", "赵六"}
    assert got["张三"][1:6] == ["2", "1", "3", "1", "2"] and "当月绩效工资扣发1级" in got["张三"][6]
    assert got["张三"][7:9] == ["0", "2"] and float(got["张三"][9]) == 4.0
    assert got["王五"][1:] == ["1", "0", "1", "1", "0", "", "2", "0", ""]
    assert got["赵六"][1:6] == ["0", "0", "0", "0", "0"]
    assert totals_row(summary)[:6] == ["合计", "3", "1", str(n_followups), "2", "2"]
    assert totals_row(summary)[7:9] == ["2", "2"] and float(totals_row(summary)[9]) == 4.0
    assert len(summary._charts) == 2

    # One sheet per engineer with the rows of `report tracking --month`, without the 第一售前 column.
    for name in ("张三", "王五", "赵六"):
        ws = wb[name]
        assert ws["A1"].value == f"项目跟踪表 — {name}"
        headers, rows = sheet_rows(ws)
        assert "第一售前" not in headers and "邮件Message-ID" in headers and "邮件Message-ID" not in visible_columns(ws)
        assert [dict(zip(headers, r)) for r in rows] == without_owner([r for r in expected if r["第一售前"] == name])
        assert all(c.font.b for c in ws[HEADER] if c.value)
        assert ws.column_dimensions["G"].width >= 16  # 沟通的具体问题: Chinese text is double width
    assert totals_row(wb["张三"])[0] == "共 2 条（问题遗留 1 条）" and totals_row(wb["赵六"])[0] == "共 0 条"
    date_cell = wb["张三"]["A4"]
    assert isinstance(date_cell.value, datetime) and date_cell.value == in_month(3).replace(tzinfo=None)
    _h, wo_rows = sheet_rows(wb["未关闭工作单"])
    assert [r[0] for r in wo_rows] == ["GD2026-0901"]
    _h, fu_rows = sheet_rows(wb["未关闭跟进单"])
    assert [r[0] for r in fu_rows][:3] == ["GJ2026-0901", "GJ2026-0902", "GJ2026-0903"]
    # 超时记录: kinds and service levels by their Chinese names, times in the system time zone.
    b_headers, b_rows = sheet_rows(wb["超时记录"])
    assert b_headers == ["人员", "记录号", "类型", "项目", "时限", "服务级别", "到期时间", "超时时间"]
    assert [(r[0], r[2], r[4], r[5], r[7]) for r in b_rows] == [
        ("王五", "故障处理工作单", "首次响应", "故障处理工作单", cell(in_month(6) - timedelta(hours=2))),
        ("王五", "故障处理工作单", "解决", "一级故障", cell(in_month(7) - timedelta(hours=2)))]
    assert sheet_rows(wb["服务时效"])[0][2:4] == ["一半的响应在(小时)内", "九成的响应在(小时)内"]
    # No internal key anywhere: record kinds, states and service levels as the declared lifecycles and
    # profiles name them.
    rt = runtime(flow.cfg, SEND_AT)
    try:
        keys = {lc.kind for lc in rt.rules.lifecycles} | {st for lc in rt.rules.lifecycles for st in lc.states}
        keys |= set(rt.sla.profiles)
    finally:
        rt.store.engine.dispose()
    assert {"followup", "workorder", "assigned", "fault_level1"} <= keys
    raw = [(ws.title, c.coordinate, c.value) for ws in wb.worksheets for r in ws.iter_rows() for c in r if c.value in keys]
    assert raw == []

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
    for section in ("二、逾期最久的事项", "四、投诉与处罚", "五、服务超时", "六、未立项项目", "七、回访满意度",
                    "八、未关闭的遗留问题跟进单", "九、未关闭的故障处理工作单"):
        body = text.split(section)[1].split("\n\n")[0]
        assert body.strip().endswith("无"), (section, body)
    assert "沟通汇报 0 条，其中问题遗留 0 条" in text
    wb = openpyxl.load_workbook(io.BytesIO(mail.attachments[0].get_content()))
    assert wb.sheetnames[:4] == ["汇总", "张三", "王五", "赵六"]
    assert [sheet_rows(wb[n])[1] for n in ("张三", "王五", "赵六")] == [[], [], []]
    assert totals_row(wb["汇总"])[:6] == ["合计", "0", "0", "0", "0", "0"]


# -- weekly ----------------------------------------------------------------------


def test_weekly_mail_to_each_engineer_with_open_items_only(weekly_flow):
    flow = weekly_flow
    # 张三: an open follow-up (问题遗留); 王五: an assigned work order he raised;
    # 赵六 (售前经理 and 售前): only a closed work order -> no mail.
    flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行-张三",
              body=report_body(result="问题遗留", issue="核对华夏银行分行防火墙的NAT策略",
                               remaining="分行出口NAT策略与总部不一致，需要研发确认"))
    (followup,) = flow.db("select number from tickets where kind = 'followup'")[0]

    monday = past_monday()

    def data(s):
        workorder(s, "GD2026-0911", "assigned", "王五", "冯工", summary="调度系统接口超时")
        workorder(s, "GD2026-0912", "closed", "赵六", "陈工")
        # Overdue two days before the weekly mail: the most urgent of 张三's items.
        open_followup(s, "GJ2026-0911", "张三", datetime.combine(monday - timedelta(days=2), time(10, 0), TZ), "补交测试报告")
    add_rows(flow.cfg, data)

    assert send_reports(flow.cfg, datetime.combine(monday, time(8, 59), TZ)) == 0
    assert deliver(flow) == []
    assert send_reports(flow.cfg, datetime.combine(monday, time(9, 0), TZ)) == 2
    sent = deliver(flow)
    assert sorted(tuple(to_of(c)) for c in sent) == [(WANG,), (ZHANG,)]
    week = monday.isocalendar()
    zhang = next(c for c in sent if to_of(c) == [ZHANG])
    assert zhang.subject == f"每周待办：张三有 2 项未关闭（{week.year}年第{week.week}周）"
    assert followup in zhang.text and "分行出口NAT策略与总部不一致" in zhang.text
    # Most urgent first, each with its due time.
    items = [line.strip() for line in zhang.text.splitlines() if line.strip()[:3] in ("1. ", "2. ")]
    assert [line.split()[2] for line in items] == ["GJ2026-0911", followup]
    assert (f"到期：{(monday - timedelta(days=2)).isoformat()} 10:00（已逾期 1 天 23 小时）" in zhang.text)
    # Its due time: the earlier of the record's and its running clocks' (the 1-working-day response clock).
    dues = flow.db("select due_at from tickets where number = :n union all select c.due_at from sla_clocks c "
                   "join tickets t on t.id = c.ticket_id where t.number = :n and c.status = 'running'", n=followup)
    due = min((d if isinstance(d, datetime) else datetime.fromisoformat(d)).replace(tzinfo=timezone.utc)
              for (d,) in dues if d is not None)
    assert f"到期：{due.astimezone(TZ).strftime('%Y-%m-%d %H:%M')}" in zhang.text.split(followup)[1].split("\n\n")[0]
    assert "直接回复本邮件" not in (zhang.html or "")
    assert "GD2026-0911" not in zhang.text
    wang = next(c for c in sent if to_of(c) == [WANG])
    assert "GD2026-0911" in wang.text and "调度系统接口超时" in wang.text and "您是：故障提出人" in wang.text
    assert "到期：未设到期时间" in wang.text
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
        ws = wb[name]
        headers, rows = sheet_rows(ws)
        assert [dict(zip(headers, r)) for r in rows] == without_owner([r for r in everything if r["第一售前"] == name])
        assert ws["A1"].value == f"项目跟踪表 — {name}" and ws["A2"].value.startswith("全部记录，截至 ")
        assert_print_setup(ws, ws["A2"].value)
    assert sum(len(sheet_rows(wb[n])[1]) for n in wb.sheetnames) == len(everything) == 5
    # The Message-IDs the rows came from are kept, in a hidden column.
    assert any(r["邮件"] for r in everything)
    assert_no_visible_message_ids(wb)

    # --month and --presales narrow it like the table.
    assert run(flow.cfg, "report", "tracking", "--month", MONTH, "--presales", "张三", "--format", "xlsx",
               "--out", str(out)) == 0
    wb = openpyxl.load_workbook(out)
    assert wb.sheetnames == ["张三"]
    headers, rows = sheet_rows(wb["张三"])
    assert [dict(zip(headers, r)) for r in rows] == without_owner(flow.tracking("--month", MONTH, "--presales", "张三"))
    assert wb["张三"]["A2"].value == f"统计期间：{Y}年{M}月（{MONTH}-01 至 {MONTH}-{last_day(Y, M):02d}），售前：张三"

    # Any other report: one sheet with the table, its numbers added up.
    assert run(flow.cfg, "report", "complaints", "--format", "xlsx", "--out", str(out)) == 0
    wb = openpyxl.load_workbook(out)
    assert wb.sheetnames == ["投诉统计"]
    headers, rows = sheet_rows(wb["投诉统计"])
    assert [dict(zip(headers, r)) for r in rows] == flow.report("complaints")
    assert totals_row(wb["投诉统计"])[:4] == ["合计", "2", "0", "0"]

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
    assert rows == [{"人员": "王五", "首次响应次数": "6", "一半的响应在(小时)内": "3.5", "九成的响应在(小时)内": "12.0",
                     "解决次数": "1", "一半的解决在(小时)内": "30.0", "九成的解决在(小时)内": "30.0",
                     "响应超时": "1", "解决超时": "0", "超时合计": "1"}]
    assert run(cfg, "report", "sla", "--format", "json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["人员"], r["首次响应次数"], r["一半的响应在(小时)内"]) for r in rows] == [("张三", "1", "0.3"), ("王五", "6", "3.5")]
    assert run(cfg, "report", "sla", "--month", MONTH, "--wide") == 0
    assert "九成的响应在(小时)内" in capsys.readouterr().out


# -- the PDF pack ------------------------------------------------------------------


ENGINEERS = ("张三", "王五", "赵六")
PROJECTS = {"张三": ("华夏银行", "恒通证券"), "王五": ("东方电网",), "赵六": ("恒通证券",)}


def demo_month(s) -> None:
    """A month of work as the demo's people do it: 36 customer reports (every
    fifth with a 问题遗留), two complaints, three open work orders (one overdue),
    two open follow-ups (one overdue), SLA breaches, answered surveys and
    未立项 reminders."""
    for i in range(36):
        who = ENGINEERS[i % 3]
        project = PROJECTS[who][i % len(PROJECTS[who])]
        when = in_month(1 + i % 28, 9 + i % 8, 15)
        left = i % 5 == 4
        t = Ticket(token=f"DEMOHB{i:04d}", kind="report", number=f"HB2026-{i + 1:04d}", project=project, owner=who,
                   state="recorded", opened_at=when.astimezone(timezone.utc), data={"reporter": who})
        s.add(t)
        s.flush()
        s.add(TrackingRow(owner=who, project=project, reporter=who, sender=who, comm_date=when.astimezone(timezone.utc),
                          contact="王经理（信息科）", method=("电话", "远程桌面", "现场")[i % 3],
                          result="问题遗留" if left else "成功",
                          issue=f"第{i + 1}次：核对{project}核心交换机的配置，升级防火墙固件并复核VPN网关的证书和告警阈值",
                          remaining="等待运营商回复专线故障原因，需要研发确认补丁" if left else "",
                          ticket_id=t.id, source_message_id=f"<demo-{i}@client.example>"))
    for k, day in enumerate((12, 19)):
        s.add(Ticket(token=f"DEMOTS{k}", kind="complaint", number=f"TS2026-{k + 1:04d}", project="华夏银行", owner="张三",
                     state="counted", opened_at=in_month(day).astimezone(timezone.utc),
                     data={"date": in_month(day).astimezone(timezone.utc).isoformat()}))
    wo = workorder(s, "GD2026-0931", "assigned", "王五", "冯工")
    s.add(Clock(ticket_id=wo.id, name="step:assigned", cycle=next(_cycles), profile="workorder", target_minutes=60,
                owner="王五", status="running", started_at=in_month(24), due_at=in_month(25)))
    workorder(s, "GD2026-0932", "pending_approval", "张三", summary="审计日志重启后丢失")
    workorder(s, "GD2026-0933", "rd_review", "赵六", "冯工", summary="证券行情接口偶发超时", project="恒通证券")
    for day, who in ((6, "王五"), (9, "王五"), (15, "张三"), (21, "冯工")):
        breach(s, wo, who, "response", in_month(day))
    for k, (score, who) in enumerate(((5, "张三"), (4, "张三"), (3, "王五"), (5, "赵六"), (4, "赵六"))):
        s.add(Survey(ticket_id=wo.id, to_addr=LI, engineer=who, status="answered", score=score,
                     sent_at=in_month(5 + k), answered_at=in_month(6 + k)))
    open_followup(s, "GJ2026-0931", "王五", in_month(27), "等待运营商回复专线故障原因")
    open_followup(s, "GJ2026-0932", "张三", SEND_AT + timedelta(days=2), "等待研发确认补丁", project="华夏银行")
    for k, project in enumerate(("新华保险", "南方航空")):
        s.add(Reminder(kind="lixiang", project=project, project_key=project, ordinal=1, engineer="张三",
                       to_addrs=[LI], created_at=in_month(8 + k)))


def test_monthly_pdf_pack_renders_to_a4_landscape_pages(store_cfg, tmp_path):
    import shutil
    import struct
    import subprocess

    from processor.reports.pdf import pack_pdf
    from processor.reports.scheduled import monthly_content

    assert shutil.which("pdftoppm"), "apt-get install poppler-utils"
    add_rows(store_cfg, demo_month)
    rt = runtime(store_cfg, SEND_AT)
    try:
        variables, sheets = monthly_content(rt, MONTH, SEND_AT)
        pdf = pack_pdf(rt, variables, sheets)
    finally:
        rt.store.engine.dispose()
    path = tmp_path / "月度报表.pdf"
    path.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "30", "-png", str(path), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) == 6, [p.name for p in pages]  # 汇总 and charts; 张三, 王五, 赵六; the detail tables
    for p in pages:  # A4 landscape: wider than high, about 297:210
        w, h = struct.unpack(">II", p.read_bytes()[16:24])
        assert 1.38 < w / h < 1.45, (p.name, w, h)

    def text(page: int) -> str:
        return subprocess.run(["pdftotext", "-layout", "-f", str(page), "-l", str(page), str(path), "-"],
                              check=True, capture_output=True, text=True).stdout

    first = text(1)
    period = f"统计期间：{Y}年{M}月（{MONTH}-01 至 {MONTH}-{last_day(Y, M):02d}）"
    assert f"工单系统 {Y}年{M}月技术支持月度报表" in first and period in first
    assert f"第 1 页，共 {len(pages)} 页" in first
    assert "合计" in first and "张三" in first
    # The charts are images; Chinese is set in an embedded CJK font, not boxes.
    images = subprocess.run(["pdfimages", "-list", str(path)], check=True, capture_output=True, text=True).stdout
    charts = [line.split() for line in images.strip().splitlines()[2:]]
    assert [(c[0], c[2]) for c in charts if c[2] == "image"] == [("1", "image"), ("1", "image")]  # both on page 1
    fonts = subprocess.run(["pdffonts", str(path)], check=True, capture_output=True, text=True).stdout
    assert "WenQuanYi" in fonts or "Noto" in fonts, fonts
    everything = "".join(text(n) for n in range(1, len(pages) + 1))
    assert f"第 {len(pages)} 页，共 {len(pages)} 页" in everything
    assert "GD2026-0931" in everything and "GJ2026-0931" in everything and "项目跟踪表 — 张三" in everything
    assert "@client.example" not in everything  # no Message-IDs


def test_summary_counts_points_when_enabled(tmp_path, db_url):
    from processor.reports.scheduled import monthly_content

    cfg = write_config(tmp_path, db_url=db_url, extra="[sla]\npoints = true\n")
    add_rows(cfg, demo_month)
    rt = runtime(cfg, SEND_AT)
    try:
        _v, sheets = monthly_content(rt, MONTH, SEND_AT)
    finally:
        rt.store.engine.dispose()
    summary = sheets[0]
    assert summary.title == "汇总" and summary.headers[-1] == "扣分"
    points = {r[0]: r[-1] for r in summary.rows}
    assert points["张三"] == -4 and points["王五"] == 0  # two counted complaints, -2 each
    assert summary.totals[-1] == sum(points.values())


def test_a_pdf_that_cannot_be_made_leaves_the_xlsx_and_one_line_in_the_log(tmp_path, db_url, caplog):
    import logging
    import shutil

    from support import ROOT

    # An admin's edit broke the PDF template: the mail still goes, with the xlsx.
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    (templates / "report_pack.html.j2").write_text("{{ no_such_figure.total }}", encoding="utf-8")
    cfg = write_config(tmp_path / "cfg", db_url=db_url, templates_dir=templates)
    add_rows(cfg, demo_month)
    assert send_reports(cfg, SEND_AT - timedelta(days=3)) == 0  # installed before the month ended
    with caplog.at_level(logging.DEBUG, logger="processor"):
        assert send_reports(cfg, SEND_AT) == 1
    rt = runtime(cfg, SEND_AT)
    try:
        with rt.store.reader() as s:
            raw = s.scalars(select(OutboxContent.raw).select_from(Outbox).join(Outbox.content)
                            .where(Outbox.template == "report_monthly")).one()
    finally:
        rt.store.engine.dispose()
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    kinds = [p.get_content_type() for p in msg.iter_attachments()]
    assert "application/pdf" not in kinds
    assert any("spreadsheetml" in k for k in kinds), kinds
    said = [r for r in caplog.records if r.levelno >= logging.WARNING and "PDF" in r.getMessage()]
    assert len(said) == 1 and "月报的 PDF 未能生成" in said[0].getMessage() and "no_such_figure" in said[0].getMessage()
    assert said[0].exc_info is None  # no traceback at warning level
