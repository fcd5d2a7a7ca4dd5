"""回访 (satisfaction follow-up) after a 遗留问题跟进单 closes, end to end
through a real Dovecot mailbox and a real SMTP server. Time is moved with
the config (``delay_hours = 0``) or with a Runtime whose clock is in the
future -- never with sleeps."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, text

from conventions.helpers import LI, SYSTEM, WANG, ZHANG, ZHAO, ZHOU, Flow, one, report_body, shape
from support import ROOT, write_config
from processor.config import load_config
from processor.daemon import Daemon
from processor.pipeline import Runtime
from processor.surveys import send_due

NOW_DELAY = "[workflows.survey]\ndelay_hours = 0\n"


def make_flow(tmp_path, imap_server, smtp_server, capsys, *, extra: str = "", db_url: str | None = None) -> Flow:
    """A Flow whose rules are only the report convention (the 跟进单 comes from
    it), so rule files of conventions being built elsewhere do not matter here."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "customer_report.toml").write_text((ROOT / "rules" / "customer_report.toml").read_text(encoding="utf-8"),
                                                encoding="utf-8")
    flow = Flow(tmp_path, imap_server, smtp_server, capsys, extra=extra, db_url=db_url)
    flow.cfg = write_config(tmp_path, imap=imap_server, smtp=smtp_server, extra=extra, db_url=db_url, rules_dir=rules)
    return flow


def open_followup(flow: Flow, *, sender=ZHANG, sales=LI, project="华夏银行", remaining="客户要求V3.2补丁，需研发确认"):
    """A report with 问题遗留: the receipt in whose thread the owner can close the follow-up."""
    name = {ZHANG: "张三", WANG: "王五"}[sender]
    sent = flow.send(sender=sender, to=(sales,), cc=(SYSTEM,), subject=f"客户沟通-{project}-{name}",
                     body=report_body(result="问题遗留", project=project, remaining=remaining))
    return one(sent, to=sender)


def close(flow: Flow, thread, *, owner=ZHANG, text="已解决。\n安装V3.2补丁后告警消除。"):
    return flow.reply_to(thread, sender=owner, body=text)


def surveys(flow: Flow) -> list[tuple]:
    return flow.db("select s.id, t.number, s.to_addr, s.engineer, s.status, s.score, s.outbox_message_id, "
                   "s.sent_at, s.answered_at, s.answer_message from surveys s join tickets t on t.id = s.ticket_id "
                   "order by s.id")


def db_exec(flow: Flow, sql: str) -> None:
    eng = create_engine(flow.db_url)
    try:
        with eng.begin() as c:
            c.execute(text(sql))
    finally:
        eng.dispose()


def future_runtime(flow: Flow, hours: float) -> Runtime:
    return Runtime(load_config(flow.cfg), clock=lambda: datetime.now(timezone.utc) + timedelta(hours=hours))


@pytest.fixture
def flow(tmp_path, imap_server, smtp_server, capsys):
    return make_flow(tmp_path, imap_server, smtp_server, capsys, extra=NOW_DELAY)


@pytest.fixture
def closed(flow):
    """华夏银行's follow-up GJ2026-0001 closed by its owner 张三; returns the survey mail."""
    ack = open_followup(flow)
    sent = close(flow, ack)
    assert shape(sent) == [((LI,), ()), ((LI,), (ZHANG,))]
    return one(sent, to=LI, subject="回访")


# -- sending --------------------------------------------------------------------


@pytest.fixture
def flow_db(tmp_path, imap_server, smtp_server, capsys, db_url):
    return make_flow(tmp_path, imap_server, smtp_server, capsys, extra=NOW_DELAY, db_url=db_url)


def test_closing_mails_the_survey_to_the_sales_exactly_once(flow_db):
    flow = flow_db
    ack = open_followup(flow)
    sent = close(flow, ack)
    assert shape(sent) == [((LI,), ()), ((LI,), (ZHANG,))]
    done = one(sent, to=LI, subject="遗留问题已解决")
    sv = one(sent, to=LI, subject="回访")
    assert sv.subject == "回访：华夏银行遗留问题跟进单 GJ2026-0001 已关闭，请为服务打分 [#GJ2026-0001]"
    assert sv.token == "GJ2026-0001" and sv.cc == [] and sv.rcpt == [LI]
    assert "李四，您好" in sv.text and "负责工程师：张三" in sv.text
    assert "问题：客户要求V3.2补丁，需研发确认" in sv.text
    assert "满意度：N" in sv.text and "评分为 2 分及以下时，遗留问题跟进单会重新打开" in sv.text
    assert done.message_id != sv.message_id

    rows = surveys(flow)
    assert len(rows) == 1
    _id, number, to_addr, engineer, status, score, outbox_mid, sent_at, answered_at, answer = rows[0]
    assert (number, to_addr, engineer, status, score) == ("GJ2026-0001", LI, "张三", "sent", None)
    assert outbox_mid == sv.message_id and sent_at is not None and answered_at is None and answer is None
    # The survey's Message-ID belongs to the follow-up's thread.
    assert flow.db("select t.number from thread_links l join tickets t on t.id = l.ticket_id "
                   "where l.message_id = :m", m=sv.message_id) == [("GJ2026-0001",)]

    # Another pass, and the job run again directly: nothing more goes out.
    assert flow.deliver() == []
    assert send_due(future_runtime(flow, 48)) == 0
    assert flow.deliver() == []
    assert [r[4] for r in surveys(flow)] == ["sent"]
    assert flow.db("select count(*) from outbox where template = 'survey_request'") == [(1,)]


def test_survey_waits_for_the_delay_and_the_daemon_job_sends_it(tmp_path, imap_server, smtp_server, capsys):
    flow = make_flow(tmp_path, imap_server, smtp_server, capsys)  # default delay: 24 hours
    ack = open_followup(flow)
    sent = close(flow, ack)
    assert shape(sent) == [((LI,), (ZHANG,))]  # only the 已解决 notice
    rows = surveys(flow)
    assert [(r[1], r[4]) for r in rows] == [("GJ2026-0001", "scheduled")]
    assert flow.deliver() == []

    # 23 hours later: not due yet.
    assert send_due(future_runtime(flow, 23)) == 0
    assert flow.deliver() == []
    # 25 hours later, through the daemon's registered job.
    rt = future_runtime(flow, 25)
    d = Daemon(rt, use_idle=False)
    d.start()
    job = d.scheduler.jobs["surveys"]
    assert job.every == 60
    assert job.fn() is None
    job.fn()  # a second run claims nothing
    out = flow.db("select to_addrs, cc_addrs, subject, status, template from outbox where template = 'survey_request'")
    assert out == [([LI], [], "回访：华夏银行遗留问题跟进单 GJ2026-0001 已关闭，请为服务打分 [#GJ2026-0001]", "pending",
                     "survey_request")]
    # The outbox row was written at the job's (future) time and the sender
    # runs on the wall clock: let that time pass for the row, then flush.
    db_exec(flow, "update outbox set next_attempt_at = '2000-01-01 00:00:00.000000' where template = 'survey_request'")
    sent = flow.deliver()
    assert shape(sent) == [((LI,), ())]
    assert sent[0].token == "GJ2026-0001" and "请为服务打分" in sent[0].subject
    assert [r[4] for r in surveys(flow)] == ["sent"]


def test_reclosed_while_pending_gets_no_second_survey_and_a_reopened_record_none(tmp_path, imap_server, smtp_server,
                                                                                   capsys):
    flow = make_flow(tmp_path, imap_server, smtp_server, capsys)  # 24 hours
    ack = open_followup(flow)
    close(flow, ack)
    # Reopened by hand (e.g. an admin) and closed again while the survey is still scheduled.
    db_exec(flow, "update tickets set state = 'open', closed_at = null where number = 'GJ2026-0001'")
    sent = close(flow, ack)
    assert shape(sent) == [((LI,), (ZHANG,))]
    assert [r[4] for r in surveys(flow)] == ["scheduled"]
    # Reopened again and still open when the survey falls due: it is cancelled, nothing is mailed.
    db_exec(flow, "update tickets set state = 'open', closed_at = null where number = 'GJ2026-0001'")
    assert send_due(future_runtime(flow, 25)) == 0
    assert flow.deliver() == []
    assert [r[4] for r in surveys(flow)] == ["cancelled"]
    # Closed once more: a new survey (nothing is pending now).
    close(flow, ack)
    assert [r[4] for r in surveys(flow)] == ["cancelled", "scheduled"]


def test_satisfaction_keyword_without_a_sent_survey_is_only_noted(flow):
    ack = open_followup(flow)
    assert flow.reply_to(ack, sender=LI, body="满意度：5") == []
    assert surveys(flow) == []
    assert flow.ticket("GJ2026-0001")["state"] == "open"


# -- answers ----------------------------------------------------------------------


@pytest.mark.parametrize("body, comment", [
    ("满意度：5", ""),
    ("满意度：５分\n处理很及时，谢谢张工。", "处理很及时，谢谢张工。"),
    ("满意度: 5分 处理很及时", "处理很及时"),
    ("评分：五", ""),
])
def test_score_recorded_and_thanked(flow, closed, body, comment):
    sent = flow.reply_to(closed, sender=LI, body=body)
    assert shape(sent) == [((LI,), ())]
    thanks = sent[0]
    assert thanks.subject == "已收到您的评分：遗留问题跟进单 GJ2026-0001（5分） [#GJ2026-0001]"
    assert "已记录：满意度 5 分（负责工程师：张三）" in thanks.text
    assert "重新打开" not in thanks.text
    if comment:
        assert f"您的意见：\n{comment}" in thanks.text
    (_id, number, _to, engineer, status, score, _mid, _sent, answered_at, answer), = surveys(flow)
    assert (status, score, engineer) == ("answered", 5, "张三") and answered_at is not None
    assert flow.db("select subject from messages where id = :i", i=answer)[0][0].startswith("回复：回访：")
    assert flow.ticket("GJ2026-0001")["state"] == "closed"
    assert flow.ticket("GJ2026-0001")["data"]["satisfaction"] == 5
    audit = flow.db("select action, detail from audit where entity = 'survey' order by id")
    assert [a for a, _ in audit] == ["survey_scheduled", "survey_sent", "survey_answered"]
    assert audit[-1][1]["score"] == 5 and audit[-1][1]["comment"] == comment
    # The same answer again: refused, the score stays.
    sent = flow.reply_to(closed, sender=LI, body="满意度：3")
    assert shape(sent) == [((LI,), ())]
    assert "已于" in sent[0].text and "记录为 5 分" in sent[0].text
    assert [r[5] for r in surveys(flow)] == [5]


def test_low_score_reopens_and_notifies_manager_and_owner(flow, closed):
    sent = flow.reply_to(closed, sender=LI, body="满意度：1\n客户反馈补丁装完后告警又出现了，\n希望尽快处理。")
    assert shape(sent) == [((LI,), ()), ((ZHANG,), (ZHAO,))]
    low = one(sent, to=ZHANG)
    assert low.subject == "回访低分：华夏银行遗留问题跟进单 GJ2026-0001，满意度 1 分，已重新打开 [#GJ2026-0001]"
    assert "李四对华夏银行项目遗留问题跟进单 GJ2026-0001的回访评分为 1 分（不高于 2 分）" in low.text
    assert "客户反馈补丁装完后告警又出现了，\n希望尽快处理。" in low.text
    assert "当前状态：处理中" in low.text
    thanks = one(sent, to=LI)
    assert "已记录：满意度 1 分" in thanks.text and "已重新打开（状态：处理中）" in thanks.text
    t = flow.ticket("GJ2026-0001")
    assert (t["state"], t["closed_at"]) == ("open", None)
    assert t["data"]["reopened_by_survey"][0]["score"] == 1
    assert [r[4:6] for r in surveys(flow)] == [("answered", 1)]
    assert "survey_reopened" in [a for (a,) in flow.db("select action from audit where entity = 'survey'")]
    assert [r["编号"] for r in flow.report("tickets", "--open")] == ["GJ2026-0001"]

    # The owner solves it again (answering the low-score notice): closed, and a new survey goes out.
    sent = flow.reply_to(low, sender=ZHANG, body="已解决\n更换告警模块后已连续观察24小时无告警。")
    assert shape(sent) == [((LI,), ()), ((LI,), (ZHANG,))]
    assert flow.ticket("GJ2026-0001")["state"] == "closed"
    assert [r[4] for r in surveys(flow)] == ["answered", "sent"]
    second = one(sent, to=LI, subject="回访")
    sent = flow.reply_to(second, sender=LI, body="满意度：4")
    assert shape(sent) == [((LI,), ())]
    assert [r[5] for r in surveys(flow)] == [1, 4]


def test_score_above_threshold_changes_nothing_but_reopen_can_be_turned_off(tmp_path, imap_server, smtp_server,
                                                                              capsys):
    flow = make_flow(tmp_path, imap_server, smtp_server, capsys,
                extra="[workflows.survey]\ndelay_hours = 0\nthreshold = 3\nreopen = false\n")
    ack = open_followup(flow)
    sv = one(close(flow, ack), to=LI, subject="回访")
    assert "重新打开" not in sv.text
    sent = flow.reply_to(sv, sender=LI, body="满意度：3 一般")
    # Low (<= 3): the manager and owner hear of it, the record stays closed.
    assert shape(sent) == [((LI,), ()), ((ZHANG,), (ZHAO,))]
    assert "已重新打开" not in one(sent, to=ZHANG).text and "一般" in one(sent, to=ZHANG).text
    assert flow.ticket("GJ2026-0001")["state"] == "closed"


@pytest.mark.parametrize("body, given", [("满意度：6", "6"), ("满意度：很好", "很好"), ("满意度：0分", "0分"),
                                         ("满意度：", "（空）")])
def test_invalid_score_asks_for_1_to_5(flow, closed, body, given):
    sent = flow.reply_to(closed, sender=LI, body=body)
    assert shape(sent) == [((LI,), ())]
    r = sent[0]
    assert r.subject == "评分未记录：满意度请填写 1～5 的整数（GJ2026-0001） [#GJ2026-0001]"
    assert f"满意度写的是“{given}”" in r.text and "N 为 1～5 的整数" in r.text
    assert [r[4:6] for r in surveys(flow)] == [("sent", None)]
    assert flow.ticket("GJ2026-0001")["state"] == "closed"
    # A valid answer afterwards is taken.
    sent = flow.reply_to(closed, sender=LI, body="满意度：4")
    assert "满意度 4 分" in sent[0].text
    assert [r[4:6] for r in surveys(flow)] == [("answered", 4)]


@pytest.mark.parametrize("who", [ZHANG, WANG, ZHOU])
def test_score_from_someone_else_is_refused_and_not_recorded(flow, closed, who):
    sent = flow.reply_to(closed, sender=who, body="满意度：1\n我觉得不满意")
    assert shape(sent) == [((who,), ())]
    r = sent[0]
    assert r.subject == "评分未记录：遗留问题跟进单 GJ2026-0001的回访由李四评价 [#GJ2026-0001]"
    assert "系统只记录李四的评分，所以您的评分没有记录" in r.text
    assert [r[4:6] for r in surveys(flow)] == [("sent", None)]
    assert flow.ticket("GJ2026-0001")["state"] == "closed"
    refused = flow.db("select detail from audit where action = 'survey_refused'")
    assert [d["reason"] for (d,) in refused] == ["not_party"]


def test_same_answer_delivered_twice_is_handled_once(flow, closed):
    raw = flow.mail(sender=LI, sender_name="李四", to=(SYSTEM,), subject="回复：" + closed.subject, body="满意度：2",
                    in_reply_to=closed.message_id, message_id="<answer-1@client.example>")
    sent = flow.deliver(raw, raw)
    assert shape(sent) == [((LI,), ()), ((ZHANG,), (ZHAO,))]
    assert [r[4:6] for r in surveys(flow)] == [("answered", 2)]


# -- report ---------------------------------------------------------------------


def test_satisfaction_report_per_engineer_and_month(flow):
    # 张三: 华夏银行 rated 1 (reopened), closed again and rated 4.
    ack = open_followup(flow)
    sv = one(close(flow, ack), to=LI, subject="回访")
    low = one(flow.reply_to(sv, sender=LI, body="满意度：1"), to=ZHANG)
    sv2 = one(close(flow, low), to=LI, subject="回访")
    flow.reply_to(sv2, sender=LI, body="满意度：4")
    # 王五: 东方电网 surveyed, not answered.
    ack2 = open_followup(flow, sender=WANG, sales=ZHOU, project="东方电网", remaining="主备切换后业务中断30秒")
    sv3 = one(close(flow, ack2, owner=WANG), to=ZHOU, subject="回访")
    assert "负责工程师：王五" in sv3.text

    month = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
    rows = flow.report("satisfaction")
    assert rows == [
        {"售前": "张三", "月份": month, "已发回访": "2", "已回复": "2", "平均分": "2.50", "最低分": "1",
         "低分重开": "1", "未回复": "0"},
        {"售前": "王五", "月份": month, "已发回访": "1", "已回复": "0", "平均分": "", "最低分": "",
         "低分重开": "0", "未回复": "1"},
    ]
    assert flow.report("satisfaction", "--month", month) == rows
    assert flow.report("satisfaction", "--month", "2000-01") == []
    assert [r["售前"] for r in flow.report("satisfaction", "--presales", "王五")] == ["王五"]
    table = flow.report_text("satisfaction")
    assert "平均分" in table.splitlines()[0] and "2.50" in table


# -- any record kind: a 故障处理工作单 ------------------------------------------------------

ZHENG = "zheng@company.example"  # 郑经理 研发经理
FENG = "feng@company.example"  # 冯工 研发


def test_low_score_on_a_workorder_puts_it_back_to_assigned(tmp_path, imap_server, smtp_server, capsys):
    flow = make_flow(tmp_path, imap_server, smtp_server, capsys, extra=NOW_DELAY)
    (tmp_path / "rules" / "workorder.toml").write_text((ROOT / "rules" / "workorder.toml").read_text(encoding="utf-8"),
                                                       encoding="utf-8")

    def answer(sent, sender, body):
        return flow.reply_to(sent, sender=sender, body=body, to=(SYSTEM,))

    body = ("环境：S5720 核心交换机 V200R019C10SPC500，双机 VRRP\n操作过程：升级 V200R019 补丁后重启备机\n"
            "现象：VRRP 主备每 5 分钟切换一次，业务丢包\n日志：10:01:02 ERROR vrrp: state MASTER -> BACKUP\n尝试次数：3\n")
    sent = flow.send(sender=ZHANG, to=(ZHAO,), cc=(SYSTEM,), subject="故障处理-华夏银行-核心交换机VRRP主备频繁切换", body=body)
    approve = one(sent, to=ZHAO)
    number = approve.token
    review = one(answer(approve, ZHAO, "同意"), to=ZHENG)
    assigned = answer(review, ZHENG, "指派：冯工")[0]
    close_req = one(answer(assigned, FENG, "申请关闭\n已升级补丁并验证。"), to=ZHANG)
    sent = [m for m in answer(close_req, ZHANG, "确认关闭") if "回访" in m.subject]
    assert flow.ticket(number)["state"] == "closed"
    if not sent:
        # Until the lead wires schedule() into workorder._closed, plan the survey as it would.
        if not surveys(flow):
            db_exec(flow, "insert into surveys (ticket_id, to_addr, engineer, status, due_at, outbox_message_id, "
                          f"created_at) select id, '{LI}', '冯工', 'scheduled', '2000-01-01 00:00:00.000000', '', "
                          f"'2000-01-01 00:00:00.000000' from tickets where number = '{number}'")
        db_exec(flow, "update surveys set due_at = '2000-01-01 00:00:00.000000' where status = 'scheduled'")
        sent = flow.deliver()
    assert shape(sent) == [((LI,), ())]
    sv = sent[0]
    assert sv.token == number and f"故障处理工作单 {number} 已关闭" in sv.subject

    sent = answer(sv, LI, "满意度：2\n切换问题又出现了两次")
    low = one(sent, to=FENG)  # the 研发负责人 (the order's owner), CC the 售前经理
    assert ZHAO in low.cc and "当前状态：已指派" in low.text and "切换问题又出现了两次" in low.text
    # Every party hears of the reopen: the raiser 张三 too, by name.
    assert ZHANG in low.cc and low.names[ZHANG] == "张三" and f"故障处理工作单 {number} 已重新打开" in low.text
    assert "已记录：满意度 2 分" in one(sent, to=LI).text and len(sent) == 2
    t = flow.ticket(number)
    assert (t["state"], t["closed_at"]) == ("assigned", None)
    # The reopen went through the lifecycle: a step in the history, 最后变更 fresh.
    closing, step = t["data"]["history"][-2:]
    assert (closing["command"], step["command"], step["from"], step["to"], step["by"]) == (
        "确认关闭", "满意度", "closed", "assigned", "李四")
    assert t["data"]["changed_at"] == step["at"] > closing["at"]
    (row,) = [r for r in flow.report("workorders") if r["编号"] == number]
    shown = datetime.fromisoformat(step["at"]).astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M")
    assert (row["状态"], row["最后变更"]) == ("已指派", shown)
    assert [r["编号"] for r in flow.report("workorders", "--open")] == [number]
    # Back in the work order's own state machine: the 研发负责人 can ask to close again.
    sent = answer(assigned, FENG, "申请关闭\n已更换主控板。")
    assert flow.ticket(number)["state"] == "close_requested"
