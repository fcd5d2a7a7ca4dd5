"""Clocks and escalation end to end, with an injectable clock (no sleeps):
a 问题遗留 report opens a follow-up whose first-response clock runs on the
Chinese working calendar; nobody answers; the owner is reminded, then the
售前经理 gets the breach, then the 技术支持部经理 the second step, each once."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from processor.config import load_config
from processor.daemon import run_once
from processor.pipeline import Runtime
from processor.store.models import Breach, Clock, ClockNotice, Ticket
from support import make_mail, write_config

CST = timezone(timedelta(hours=8))
TUE_10 = datetime(2026, 11, 24, 10, 0, tzinfo=CST)  # a normal working Tuesday

REPORT = """沟通结果：问题遗留
项目名称：华夏银行
沟通人：王经理（信息科技部）
沟通方式：电话
沟通的具体问题：核心交换机升级后远程控制客户端无法连接管理服务器
遗留的问题描述：需要研发确认 5.2 版本的端口变更
"""


class Clock_:
    def __init__(self, t):
        self.t = t

    def __call__(self):
        return self.t


@pytest.fixture
def sla_env(tmp_path, imap_server, smtp_server):
    # The clock crosses month and week starts: keep the scheduled report mails out of it.
    cfg = write_config(tmp_path, imap=imap_server, smtp=smtp_server,
                       extra="[reports]\nmonthly_enabled = false\nweekly_enabled = false\n")
    clock = Clock_(TUE_10)
    state = {"rt": Runtime(load_config(cfg), clock=clock)}

    def once():
        before = len(smtp_server.messages)
        _, stats = run_once(state["rt"], sender_process=False)
        return smtp_server.messages[before:before + stats.sent]

    def restart():
        state["rt"].store.dispose()
        state["rt"] = Runtime(load_config(cfg), clock=clock)

    return cfg, imap_server, smtp_server, clock, once, restart, state


def open_followup(imap, once):
    imap.append(make_mail(subject="客户沟通-华夏银行-张三", body=REPORT, to=("lisi@company.example",),
                          cc=("tracking@company.example",)))
    sent = once()
    ack = next(m for m in sent if m.rcpt_tos == ["zhangsan@company.example"] and "回执" in m.subject)
    return ack


def rows(state, model, *where):
    with state["rt"].store.reader() as s:
        return list(s.scalars(select(model).where(*where)))


def test_prebreach_breach_and_second_step_each_exactly_once(sla_env):
    cfg, imap, smtp, clock, once, restart, state = sla_env
    open_followup(imap, once)
    (ft,) = rows(state, Ticket, Ticket.kind == "followup")
    clocks = {c.name: c for c in rows(state, Clock, Clock.ticket_id == ft.id)}
    assert clocks["response"].target_minutes == 540 and clocks["resolution"].target_minutes == 2700
    assert clocks["response"].owner == "张三"

    clock.t = TUE_10 + timedelta(hours=7)  # 17:00: 420 of 540 working minutes (78 %)
    assert once() == []

    clock.t = TUE_10 + timedelta(hours=7, minutes=40)  # 460 minutes: 85 %
    (reminder,) = once()
    assert reminder.rcpt_tos == ["zhangsan@company.example"]
    assert reminder.subject.startswith(f"即将超时提醒：{ft.number}") and f"[#{ft.number}]" in reminder.subject
    assert "首次响应" in reminder.text and "个工作小时" in reminder.text
    assert once() == []
    restart()
    assert once() == []

    # Overnight the clock stands still; Wednesday 10:30 it is 30 minutes over.
    clock.t = datetime(2026, 11, 25, 10, 30, tzinfo=CST)
    (esc,) = once()
    assert esc.rcpt_tos == ["zhaoliu@company.example", "zhangsan@company.example"]
    assert esc.header("To") == "赵六 <zhaoliu@company.example>" and esc.header("Cc") == "张三 <zhangsan@company.example>"
    assert esc.subject.startswith(f"超时上报（第1级）：{ft.number} 的“首次响应”已超时")
    assert "售前经理" in esc.text and "已记入 张三 的超时记录" in esc.text
    assert "当前状态：处理中" in esc.text  # the follow-up's state, named by its lifecycle (not "open")
    (breach,) = rows(state, Breach)
    assert (breach.person, breach.clock) == ("张三", "response")
    restart()
    assert once() == []

    # The next step comes repeat_after_hours (4) working hours after the target (Wed 10:00).
    clock.t = datetime(2026, 11, 25, 13, 45, tzinfo=CST)
    assert once() == []
    clock.t = datetime(2026, 11, 25, 14, 15, tzinfo=CST)
    (esc2,) = once()
    assert esc2.rcpt_tos == ["qian@company.example", "zhangsan@company.example"]
    assert esc2.subject.startswith(f"超时上报（第2级）：{ft.number}") and "此前已上报：售前经理，记录仍未处理" in esc2.text
    assert once() == []
    notices = sorted((n.kind, n.step, n.cancelled) for n in rows(state, ClockNotice))
    assert notices == [("breach", 1, False), ("escalation", 2, False), ("prebreach", 0, False)]


def test_a_staff_reply_stops_the_clock_and_cancels_what_was_pending(sla_env):
    cfg, imap, smtp, clock, once, restart, state = sla_env
    ack = open_followup(imap, once)
    clock.t = TUE_10 + timedelta(hours=7, minutes=40)
    (reminder,) = once()
    # The owner answers the reminder (a progress note, not 已解决).
    imap.append(make_mail(subject="回复：" + reminder.subject, body="已联系研发，明天上午给客户答复。",
                          in_reply_to=reminder.header("Message-ID")))
    assert once() == []  # recorded on the thread, nothing sent
    (ft,) = rows(state, Ticket, Ticket.kind == "followup")
    response = next(c for c in rows(state, Clock, Clock.ticket_id == ft.id) if c.name == "response")
    assert response.status == "stopped"
    clock.t = datetime(2026, 11, 26, 15, 0, tzinfo=CST)  # long past the response target
    assert once() == []
    assert rows(state, Breach) == []


def test_holidays_stop_the_working_clock(sla_env):
    """Opened the afternoon before National Day 2026 (1-7 Oct off): the
    1-working-day clock has 4 hours on 30 Sep and runs out on Thu 8 Oct."""
    cfg, imap, smtp, clock, once, restart, state = sla_env
    clock.t = datetime(2026, 9, 30, 14, 0, tzinfo=CST)
    open_followup(imap, once)
    (ft,) = rows(state, Ticket, Ticket.kind == "followup")
    response = next(c for c in rows(state, Clock, Clock.ticket_id == ft.id) if c.name == "response")
    assert response.due_at.astimezone(CST) == datetime(2026, 10, 8, 14, 0, tzinfo=CST)
    clock.t = datetime(2026, 10, 7, 20, 0, tzinfo=CST)  # a week later, all holiday
    assert once() == []
    clock.t = datetime(2026, 10, 8, 13, 0, tzinfo=CST)  # 480 of 540 minutes
    (reminder,) = once()
    assert reminder.subject.startswith("即将超时提醒")


def test_catching_up_after_an_outage_sends_a_digest_not_a_storm(sla_env):
    cfg, imap, smtp, clock, once, restart, state = sla_env
    for i in range(4):
        imap.append(make_mail(subject="客户沟通-华夏银行-张三", body=REPORT.replace("5.2", f"5.{i}"),
                              to=("lisi@company.example",), cc=("tracking@company.example",)))
    once()
    assert len(rows(state, Ticket, Ticket.kind == "followup")) == 4
    clock.t = TUE_10 + timedelta(hours=7, minutes=40)  # all four at 85 % at once
    (digest,) = once()
    assert digest.rcpt_tos == ["zhangsan@company.example"]
    assert digest.subject == "时限提醒汇总：4 项记录需要处理"
    assert digest.text.count("即将超时") == 4
    # Days later (daemon down meanwhile): each clock sends only its current step.
    clock.t = datetime(2026, 11, 27, 17, 0, tzinfo=CST)
    sent = once()
    # Four clocks past the last step: one digest to the top of the chain.
    assert len(sent) == 1 and sent[0].rcpt_tos == ["sun@company.example"]
    assert sent[0].subject == "时限提醒汇总：4 项记录需要处理" and sent[0].text.count("已超时") == 4
    assert once() == []
    clock.t = datetime(2026, 11, 27, 17, 50, tzinfo=CST)  # still overdue: the top already has it
    assert once() == []
    # By 3 Dec the 5-working-day resolution clocks have run out too: that is news.
    clock.t = datetime(2026, 12, 3, 17, 0, tzinfo=CST)
    (late,) = once()
    assert late.rcpt_tos == ["sun@company.example"] and late.text.count("“解决”已超时") == 4
    assert once() == []


WORKORDER = """环境：S5720 核心交换机 V200R019C10SPC500，双机 VRRP
操作过程：升级 V200R019 补丁后重启备机
现象：VRRP 主备每 5 分钟切换一次，业务丢包
日志：2026-11-20 10:01:02 ERROR vrrp: state MASTER -> BACKUP
尝试次数：3
"""


def test_work_order_step_clocks_follow_the_state(sla_env):
    """待审批 gives the 售前经理 4 working hours; approving stops that clock and
    starts the 研发经理's 1-working-day review clock."""
    cfg, imap, smtp, clock, once, restart, state = sla_env
    imap.append(make_mail(subject="故障处理-华夏银行-VRRP主备频繁切换", body=WORKORDER,
                          to=("zhaoliu@company.example",), cc=("tracking@company.example",)))
    once()
    (wo,) = rows(state, Ticket, Ticket.kind == "workorder")
    (approval,) = rows(state, Clock, Clock.ticket_id == wo.id)
    assert (approval.name, approval.owner, approval.target_minutes) == ("step:pending_approval", "售前经理", 240)

    clock.t = TUE_10 + timedelta(hours=3, minutes=20)  # 200 of 240 minutes
    (reminder,) = once()
    assert reminder.rcpt_tos == ["zhaoliu@company.example"] and reminder.subject.startswith(f"即将超时提醒：{wo.number}")
    assert "“pending_approval”环节" not in reminder.text  # states are shown in Chinese

    approve_to = next(m for m in smtp.messages if m.rcpt_tos[0] == "zhaoliu@company.example" and "[#" in m.subject
                      and "即将超时" not in m.subject)
    imap.append(make_mail(sender="zhaoliu@company.example", sender_name="赵六", subject="回复：" + approve_to.subject,
                          body="同意", in_reply_to=approve_to.header("Message-ID")))
    once()
    clocks = {c.name: c for c in rows(state, Clock, Clock.ticket_id == wo.id)}
    assert clocks["step:pending_approval"].status == "stopped"
    assert clocks["step:rd_review"].status == "running" and clocks["step:rd_review"].owner == "研发经理"
    clock.t = TUE_10 + timedelta(hours=5)  # past the old 4 h: nothing, that clock stopped
    assert [m for m in once() if "超时" in m.subject] == []


def test_approval_reminders_go_to_the_configured_approver_role(tmp_path, imap_server, smtp_server):
    """With [workflows.workorder] approver_roles = 技术支持部经理, the 待审批
    step clock belongs to that role (the lifecycle's `who` of 同意): the
    reminder goes to 钱经理, the escalation above him to the 技术总监, and
    the 售前经理 gets neither."""
    cfg = write_config(tmp_path, imap=imap_server, smtp=smtp_server, extra="""
[reports]
monthly_enabled = false
weekly_enabled = false
[workflows.workorder]
approver_roles = ["技术支持部经理"]
""")
    clock = Clock_(TUE_10)
    rt = Runtime(load_config(cfg), clock=clock)

    def once():
        before = len(smtp_server.messages)
        run_once(rt, sender_process=False)
        return smtp_server.messages[before:]

    imap_server.append(make_mail(subject="故障处理-华夏银行-VRRP主备频繁切换", body=WORKORDER,
                                 to=("qian@company.example",), cc=("tracking@company.example",)))
    sent = once()
    # The receipt to the sender and the approval request to 钱经理, in whichever
    # order the sender's connections delivered them.
    assert sorted(m.rcpt_tos[0] for m in sent) == ["qian@company.example", "zhangsan@company.example"]
    with rt.store.reader() as s:
        (wo,) = s.scalars(select(Ticket).where(Ticket.kind == "workorder"))
        (approval,) = s.scalars(select(Clock).where(Clock.ticket_id == wo.id))
    assert (approval.name, approval.owner) == ("step:pending_approval", "技术支持部经理")

    clock.t = TUE_10 + timedelta(hours=3, minutes=20)  # 200 of 240 minutes
    (reminder,) = once()
    assert reminder.rcpt_tos == ["qian@company.example"]
    assert reminder.subject.startswith(f"即将超时提醒：{wo.number}") and "“待审批”环节" in reminder.text

    clock.t = TUE_10 + timedelta(hours=4, minutes=30)  # past the 4 working hours
    (esc,) = once()
    assert esc.rcpt_tos == ["sun@company.example", "qian@company.example"]
    assert "当前状态：待审批" in esc.text
    with rt.store.reader() as s:
        (breach,) = s.scalars(select(Breach))
    assert (breach.person, breach.clock) == ("钱经理", "step:pending_approval")
    assert not [m for m in smtp_server.messages if "超时" in m.subject and "zhaoliu@company.example" in m.rcpt_tos]
    rt.store.dispose()


def test_fault_level_in_the_mail_picks_the_profile(sla_env):
    """故障级别：一级 → remote restore within 3 hours, around the clock, on top
    of the work order's approval step."""
    cfg, imap, smtp, clock, once, restart, state = sla_env
    imap.append(make_mail(subject="故障处理-华夏银行-核心业务中断", body=WORKORDER + "故障级别：一级\n",
                          to=("zhaoliu@company.example",), cc=("tracking@company.example",)))
    once()
    (wo,) = rows(state, Ticket, Ticket.kind == "workorder")
    clocks = {c.name: c for c in rows(state, Clock, Clock.ticket_id == wo.id)}
    assert clocks["resolution"].profile == "fault_level1" and clocks["resolution"].mode == "24x7"
    assert clocks["resolution"].target_minutes == 180
    assert "step:pending_approval" in clocks
    clock.t = TUE_10 + timedelta(hours=2, minutes=30)  # 150 of 180 minutes
    sent = once()
    assert [m.rcpt_tos for m in sent if m.subject == f"即将超时提醒：{wo.number}（“解决”时限还剩不多） [#{wo.number}]"] \
        == [["zhangsan@company.example"]]


def test_points_scheme_records_minus_five_per_overdue_fault(tmp_path, imap_server, smtp_server, capsys):
    from support import run

    cfg = write_config(tmp_path, imap=imap_server, smtp=smtp_server,
                       extra="[reports]\nmonthly_enabled = false\nweekly_enabled = false\n[sla]\npoints = true\n")
    clock = Clock_(TUE_10)
    rt = Runtime(load_config(cfg), clock=clock)
    imap_server.append(make_mail(subject="故障处理-华夏银行-核心业务中断", body=WORKORDER + "故障级别：一级\n",
                                 to=("zhaoliu@company.example",), cc=("tracking@company.example",)))
    run_once(rt, sender_process=False)
    clock.t = TUE_10 + timedelta(hours=3, minutes=10)  # past the 3-hour restore target
    run_once(rt, sender_process=False)
    run_once(rt, sender_process=False)
    # The 售前经理's approval step runs out too (4 h): still one -5 for the record,
    # and the check goes on working.
    clock.t = TUE_10 + timedelta(hours=4, minutes=30)
    _, stats = run_once(rt, sender_process=False)
    assert stats.sent >= 1
    capsys.readouterr()
    assert run(cfg, "report", "points", "--format", "json") == 0
    import json
    rows_ = json.loads(capsys.readouterr().out)
    # 张三 owns the fault; 赵六, the only 售前经理, let the approval step run out.
    assert sorted(rows_, key=lambda r: r["人员"]) == [
        {"人员": "张三", "超时故障(-5)": "1", "有效投诉(-2)": "0", "迟交记录(-1)": "0", "合计": "-5"},
        {"人员": "赵六", "超时故障(-5)": "1", "有效投诉(-2)": "0", "迟交记录(-1)": "0", "合计": "-5"}]


def test_points_for_complaints_and_late_support_records(tmp_path, imap_server, smtp_server, capsys):
    """-2 per counted complaint (against the 第一售前); -1 for a 支持记录 mailed
    four working days after the support (art. 16 wants it at once)."""
    import json

    from support import run

    cfg = write_config(tmp_path, imap=imap_server, smtp=smtp_server,
                       extra="[reports]\nmonthly_enabled = false\nweekly_enabled = false\n[sla]\npoints = true\n")
    mailed = datetime(2026, 11, 20, 16, 0, tzinfo=CST)  # Friday
    imap_server.append(make_mail(sender="wangwu@company.example", sender_name="王五", subject="支持记录-华夏银行-王五",
                                 body="支持日期：2026-11-16\n支持内容：远程协助客户恢复 VRRP 主备配置，业务恢复正常\n",
                                 to=("zhangsan@company.example",), cc=("zhaoliu@company.example", "tracking@company.example"),
                                 date=mailed))
    imap_server.append(make_mail(sender="wangwu@company.example", sender_name="王五", subject="支持记录-华夏银行-王五",
                                 body="支持日期：2026-11-19\n支持内容：现场检查核心交换机日志，确认无异常\n",
                                 to=("zhangsan@company.example",), cc=("zhaoliu@company.example", "tracking@company.example"),
                                 date=mailed))
    imap_server.append(make_mail(sender="lisi@company.example", sender_name="李四", subject="投诉-华夏银行项目沟通问题",
                                 body="张三与客户沟通后没有发汇报邮件。\n", to=("qian@company.example",),
                                 cc=("sun@company.example", "tracking@company.example")))
    assert run(cfg, "once") == 0
    capsys.readouterr()
    assert run(cfg, "report", "points", "--format", "json") == 0
    rows_ = json.loads(capsys.readouterr().out)
    assert rows_ == [
        {"人员": "张三", "超时故障(-5)": "0", "有效投诉(-2)": "1", "迟交记录(-1)": "0", "合计": "-2"},
        {"人员": "王五", "超时故障(-5)": "0", "有效投诉(-2)": "0", "迟交记录(-1)": "1", "合计": "-1"}]


def test_pause_states_stop_the_clock_while_the_record_waits(tmp_path, imap_server, smtp_server):
    """With custom_pending (待确认转定制) as a pause state, a 一级 fault's 3-hour
    clock stands still while the raiser decides, and runs on afterwards."""
    cfg = write_config(tmp_path, imap=imap_server, smtp=smtp_server, extra="""
[reports]
monthly_enabled = false
weekly_enabled = false
[sla]
[[sla.profiles]]
name = "fault_level1"
clock = "24x7"
resolution = "3h"
pause_states = ["custom_pending"]
[[sla.profiles]]
name = "workorder"
steps = { pending_approval = "4h" }
[sla.kinds]
workorder = "workorder"
[sla.field_profiles.severity]
"一级" = "fault_level1"
""")
    clock = Clock_(TUE_10)
    rt = Runtime(load_config(cfg), clock=clock)

    def step(sender, name, body, to_mail):
        imap_server.append(make_mail(sender=sender, sender_name=name, subject="回复：" + to_mail.subject, body=body,
                                     in_reply_to=to_mail.header("Message-ID")))
        before = len(smtp_server.messages)
        run_once(rt, sender_process=False)
        return smtp_server.messages[before:]

    def last_to(addr):
        return [m for m in smtp_server.messages if addr in m.rcpt_tos and "[#GD" in m.subject][-1]

    imap_server.append(make_mail(subject="故障处理-华夏银行-核心业务中断", body=WORKORDER + "故障级别：一级\n",
                                 to=("zhaoliu@company.example",), cc=("tracking@company.example",)))
    run_once(rt, sender_process=False)
    step("zhaoliu@company.example", "赵六", "同意", last_to("zhaoliu@company.example"))
    step("zheng@company.example", "郑经理", "指派：冯工", last_to("zheng@company.example"))
    clock.t = TUE_10 + timedelta(hours=1)
    step("feng@company.example", "冯工", "转定制\n需要定制开发新的 VRRP 检测方式", last_to("feng@company.example"))
    with rt.store.reader() as s:
        (c,) = s.scalars(select(Clock).where(Clock.name == "resolution"))
        assert c.status == "paused"
    clock.t = TUE_10 + timedelta(hours=6)  # five paused hours: no reminder, no breach
    run_once(rt, sender_process=False)
    assert not [m for m in smtp_server.messages if "超时" in m.subject]
    # The raiser declines the conversion: back to 已指派, the clock runs on from 1 h used.
    step("zhangsan@company.example", "张三", "驳回：还是请研发先修复", last_to("zhangsan@company.example"))
    clock.t = TUE_10 + timedelta(hours=7, minutes=30)  # 1 h + 1.5 h = 150 of 180 minutes
    run_once(rt, sender_process=False)
    assert [m.subject[:6] for m in smtp_server.messages if "超时" in m.subject] == ["即将超时提醒"]


def test_profile_labels_are_chinese_by_default_or_as_configured(tmp_path, imap_server, smtp_server):
    """What people read for a profile: its `label`, the built-in Chinese name of
    a shipped profile, else its name (also for one no longer configured)."""
    cfg = write_config(tmp_path, imap=imap_server, smtp=smtp_server, extra="""
[sla]
[[sla.profiles]]
name = "fault_level1"
clock = "24x7"
resolution = "3h"
[[sla.profiles]]
name = "vip"
label = "重点客户"
resolution = "1d"
[[sla.profiles]]
name = "plain"
resolution = "2d"
""")
    rt = Runtime(load_config(cfg))
    try:
        assert [rt.sla.profile_label(n) for n in ("fault_level1", "vip", "plain", "followup", "gone")] == [
            "一级故障", "重点客户", "plain", "遗留问题跟进", "gone"]
    finally:
        rt.store.dispose()


def test_a_plain_reply_does_not_stop_the_approval_clock_and_the_mails_say_what_does(sla_env):
    """The 售前经理 answers the approval request without a command: the 待审批
    step clock runs on (only a step out of 待审批 stops it), the reminder and
    the escalation say so, naming the commands and who may send them, and
    never claim that a reply stops it. 同意 then stops it."""
    cfg, imap, smtp, clock, once, restart, state = sla_env
    imap.append(make_mail(subject="故障处理-华夏银行-VRRP主备频繁切换", body=WORKORDER,
                          to=("zhaoliu@company.example",), cc=("tracking@company.example",)))
    once()
    (wo,) = rows(state, Ticket, Ticket.kind == "workorder")
    approve_to = next(m for m in smtp.messages if m.rcpt_tos[0] == "zhaoliu@company.example" and "[#" in m.subject)

    clock.t = TUE_10 + timedelta(hours=1)
    imap.append(make_mail(sender="zhaoliu@company.example", sender_name="赵六", subject="回复：" + approve_to.subject,
                          body="收到，我先看一下日志再决定。", in_reply_to=approve_to.header("Message-ID")))
    assert once() == []  # recorded in the thread, not answered
    (approval,) = rows(state, Clock, Clock.ticket_id == wo.id, Clock.name == "step:pending_approval")
    assert approval.status == "running"
    (wo,) = rows(state, Ticket, Ticket.kind == "workorder")
    assert wo.state == "pending_approval"

    says = "计时在记录离开“待审批”时停止：售前经理在本记录的邮件会话中回复“同意”或“驳回：原因”。只回复其他内容不会停止计时。"
    clock.t = TUE_10 + timedelta(hours=3, minutes=20)  # 200 of 240 minutes
    (reminder,) = once()
    assert reminder.rcpt_tos == ["zhaoliu@company.example"]
    assert says in reminder.text and "回复后，计时即停止" not in reminder.text

    clock.t = TUE_10 + timedelta(hours=4, minutes=30)  # past the 4 working hours: the plain reply stopped nothing
    (esc,) = once()
    assert esc.rcpt_tos == ["qian@company.example", "zhaoliu@company.example"]
    assert esc.subject.startswith(f"超时上报（第1级）：{wo.number}") and "待审批" in esc.subject
    assert says in esc.text
    assert "负责人在本记录的邮件会话中回复后，计时即停止" not in esc.text and "回复后，计时即停止" not in esc.text

    # 同意 is a step out of 待审批: that clock stops, the 研发经理's review clock starts.
    imap.append(make_mail(sender="zhaoliu@company.example", sender_name="赵六", subject="回复：" + approve_to.subject,
                          body="同意", in_reply_to=approve_to.header("Message-ID")))
    once()
    clocks = {c.name: c for c in rows(state, Clock, Clock.ticket_id == wo.id)}
    assert clocks["step:pending_approval"].status == "stopped"
    assert clocks["step:rd_review"].status == "running"
    clock.t = datetime(2026, 11, 25, 11, 0, tzinfo=CST)  # the 待审批 clock's second step would be due by now
    assert [m for m in once() if "超时" in m.subject] == []
    notices = sorted((n.kind, n.step) for n in rows(state, ClockNotice, ClockNotice.clock_id == approval.id))
    assert notices == [("breach", 1), ("prebreach", 0)]
