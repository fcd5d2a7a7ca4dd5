"""Convention 2, 投诉邮件 投诉-<项目>沟通问题: counting, routing, penalties,
withdrawal, end to end through real Dovecot and SMTP servers."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from conventions.helpers import LI, QIAN, SUN, SYSTEM, WANG, ZHANG, ZHOU, Flow, one, shape


@pytest.fixture
def flow(tmp_path, imap_server, smtp_server, capsys, db_url):
    """Each test runs on SQLite and on PostgreSQL (the penalty key and JSON columns)."""
    return Flow(tmp_path, imap_server, smtp_server, capsys, db_url=db_url)


def nov(day: int) -> datetime:
    return datetime(2026, 11, day, 2, 0, tzinfo=timezone.utc)


def complain(flow, *, sender=LI, project="华夏银行", body="技术支持与客户沟通后既没有汇报邮件也没有电话说明。", to=(QIAN,),
             cc=(SUN,), date=None, message_id=None):
    kw = {"date": date} if date else {}
    if message_id:
        kw["message_id"] = message_id
    return flow.send(sender=sender, to=to, cc=cc, subject=f"投诉-{project}项目沟通问题", body=body, **kw)


def penalties(flow) -> list[tuple]:
    return flow.db('select engineer, rule, "window", ordinal, state, complaints from penalties order by id')


def test_complaint_counted_against_first_presales(flow):
    # Correct routing (To 技术支持部经理, CC 技术总监), tracking address in BCC.
    sent = complain(flow, date=nov(3))
    assert shape(sent) == [((LI,), ()), ((ZHANG,), ())]
    ack = one(sent, to=LI)
    assert ack.subject == "回执：投诉已登记 TS2026-0001（华夏银行） [#TS2026-0001]"
    assert "被投诉人：张三（项目第一售前" in ack.text
    assert "2026年11月有效投诉：1 次（每 2 次：当月绩效工资扣发1级）" in ack.text
    assert "累计有效投诉：1 次（每 4 次：绩效工资永久降1级）" in ack.text
    assert "第一行写“撤回”" in ack.text and "系统已把投诉转给" not in ack.text
    notice = one(sent, to=ZHANG)
    assert notice.subject == "投诉通知：华夏银行项目沟通问题 [#TS2026-0001]"
    assert "李四（华夏银行项目责任销售）就华夏银行项目的沟通问题投诉了您" in notice.text
    assert "2026年11月有效投诉：1 次" in notice.text and "已达到" not in notice.text
    t = flow.ticket("TS2026-0001")
    assert (t["kind"], t["state"], t["owner"], t["project"]) == ("complaint", "counted", "张三", "华夏银行")
    assert flow.report("complaints") == [{"售前": "张三", "有效投诉": "1", "已撤回": "0", "未计入": "0",
                                          "投诉记录": "TS2026-0001", "已触发的处罚": ""}]
    assert penalties(flow) == []


def test_complained_about_named_in_the_body(flow):
    sent = complain(flow, body="被投诉人：王五\n投诉原因：11月5日王五到现场处理后没有任何汇报。")
    assert shape(sent) == [((LI,), ()), ((WANG,), ())]
    assert "投诉原因：11月5日王五到现场处理后没有任何汇报。" in one(sent, to=WANG).text
    assert "被投诉人：王五\n" in one(sent, to=LI).text
    assert flow.ticket("TS2026-0001")["owner"] == "王五"


def test_unknown_complained_about_is_not_counted(flow):
    sent = complain(flow, body="被投诉人：赵本山")
    assert shape(sent) == [((LI,), ())]
    assert sent[0].subject == "投诉未计入：投诉-华夏银行项目沟通问题 [#TS2026-0001]"
    assert "“被投诉人”写的是“赵本山”，通讯录中没有这位售前（本项目的售前：张三、王五）" in sent[0].text
    assert flow.ticket("TS2026-0001")["state"] == "rejected"
    assert flow.report("complaints") == [{"售前": "（未计入）", "有效投诉": "0", "已撤回": "0", "未计入": "1",
                                          "投诉记录": "", "已触发的处罚": ""}]


def test_missing_manager_and_director_get_it_sent_on(flow):
    sent = complain(flow, to=(SYSTEM,), cc=())
    assert shape(sent) == [((LI,), ()), ((QIAN,), (SUN,)), ((ZHANG,), ())]
    fwd = one(sent, to=QIAN)
    assert fwd.subject == "转发投诉：投诉-华夏银行沟通问题 [#TS2026-0001]"
    assert fwd.reply_to == LI and fwd.attachments == ["original.eml"]
    assert "技术支持与客户沟通后既没有汇报邮件也没有电话说明" in fwd.text
    assert "钱经理、孙总监不在收件人或抄送中，系统已把投诉转给他们" in one(sent, to=LI).text


def test_only_missing_director_gets_it_sent_on(flow):
    sent = complain(flow, to=(QIAN,), cc=())
    assert shape(sent) == [((LI,), ()), ((SUN,), ()), ((ZHANG,), ())]
    assert "孙总监不在收件人或抄送中，系统已把投诉转给孙总监" in one(sent, to=LI).text


def test_other_sales_is_not_counted_by_default(flow):
    sent = complain(flow, sender=ZHOU)
    assert shape(sent) == [((ZHOU,), ())]
    assert sent[0].subject == "投诉未计入：投诉-华夏银行项目沟通问题 [#TS2026-0001]"
    assert "华夏银行项目的责任销售是李四，不是您" in sent[0].text
    assert flow.ticket("TS2026-0001")["state"] == "not_counted"
    assert penalties(flow) == []


def test_other_sales_counted_when_config_allows(tmp_path, imap_server, smtp_server, capsys):
    f = Flow(tmp_path, imap_server, smtp_server, capsys, extra="[workflows.complaint]\nallow_other_sales = true\n")
    sent = complain(f, sender=ZHOU)
    assert shape(sent) == [((ZHANG,), ()), ((ZHOU,), ())]
    assert "周七就华夏银行项目的沟通问题投诉了您" in one(sent, to=ZHANG).text
    assert f.ticket("TS2026-0001")["state"] == "counted"


def test_presales_cannot_complain(flow):
    sent = complain(flow, sender=WANG)
    assert shape(sent) == [((WANG,), ())]
    assert "投诉邮件由项目的责任销售发送；通讯录中您不是销售" in sent[0].text
    assert flow.ticket("TS2026-0001")["state"] == "not_counted"


def test_unknown_project(flow):
    sent = complain(flow, project="南方航空")  # no near match: 未立项
    assert shape(sent) == [((LI,), ())]
    assert sent[0].subject == "项目不存在，投诉邮件未记录：投诉-南方航空项目沟通问题 [#TS2026-0001]"
    assert "您是不是指" not in sent[0].text
    assert flow.ticket("TS2026-0001")["state"] == "unregistered"


def test_mistyped_project_is_asked_about_and_counted_on_yes(flow):
    sent = complain(flow, project="华厦银行", date=nov(9))
    assert shape(sent) == [((LI,), ())]  # only the question: nobody is told of a complaint yet
    q = sent[0]
    assert q.subject == "您是不是指“华夏银行”？投诉邮件暂未记录：投诉-华厦银行项目沟通问题 [#TS2026-0001]"
    assert "项目“华厦银行”在项目通讯录中找不到。您是不是指“华夏银行”？" in q.text
    assert "提醒责任销售立项" not in q.text and "不会提醒销售立项" not in q.text
    assert flow.ticket("TS2026-0001")["state"] == "unconfirmed"
    # Only the complainant can answer it: 张三's 是 is kept as a note.
    assert flow.reply_to(q, sender=ZHANG, body="是") == []
    assert flow.ticket("TS2026-0001")["state"] == "unconfirmed"
    sent = flow.reply_to(q, sender=LI, body="是")
    # Counted against 华夏银行's 第一售前, routed as any complaint, dated by the complaint, not the reply.
    assert ((QIAN,), (SUN,)) in shape(sent)
    t = flow.ticket("TS2026-0002")
    assert (t["state"], t["project"], t["owner"]) == ("counted", "华夏银行", "张三")
    assert t["data"]["date"].startswith("2026-11-09")
    assert flow.ticket("TS2026-0001")["data"]["resubmitted_as"] == "TS2026-0002"


def test_mistyped_project_answered_no_is_unregistered(flow):
    q = complain(flow, project="华厦银行")[0]
    sent = flow.reply_to(q, sender=LI, body="不是")
    assert shape(sent) == [((LI,), ())]
    assert sent[0].subject.startswith("项目不存在，投诉邮件未记录")
    assert flow.ticket("TS2026-0002")["state"] == "unregistered"


def test_every_second_complaint_in_a_month_and_every_fourth_overall(flow):
    complain(flow, date=nov(2))
    sent = complain(flow, date=nov(9))
    assert shape(sent) == [((LI,), ()), ((QIAN,), (SUN,)), ((ZHANG,), ())]
    esc = one(sent, to=QIAN)
    assert esc.subject == "投诉处罚：张三 2026年11月第 2 次投诉，当月绩效工资扣发1级 [#TS2026-0002]"
    assert "1. TS2026-0001  2026-11-02  华夏银行  投诉人：李四" in esc.text
    assert "2. TS2026-0002  2026-11-09  华夏银行  投诉人：李四" in esc.text
    assert "已达到 2 次：当月绩效工资扣发1级" in one(sent, to=ZHANG).text

    sent = complain(flow, date=nov(16))
    assert shape(sent) == [((LI,), ()), ((ZHANG,), ())]  # the 3rd: no threshold

    sent = complain(flow, date=nov(23))
    assert shape(sent) == [((LI,), ()), ((QIAN,), (SUN,)), ((QIAN,), (SUN,)), ((ZHANG,), ())]
    subjects = sorted(s.subject for s in sent if QIAN in s.to)
    assert subjects == ["投诉处罚：张三 2026年11月第 4 次投诉，当月绩效工资扣发1级 [#TS2026-0004]",
                        "投诉处罚：张三 累计第 4 次投诉，绩效工资永久降1级 [#TS2026-0004]"]
    # Each threshold lists the complaints since the previous one, numbered on.
    monthly = next(s for s in sent if QIAN in s.to and "当月" in s.subject)
    assert "第 1 至第 2 次投诉已列在此前的处罚通知中" in monthly.text
    assert "3. TS2026-0003  2026-11-16" in monthly.text and "4. TS2026-0004  2026-11-23" in monthly.text
    assert "1. TS2026-0001" not in monthly.text
    permanent = next(s for s in sent if QIAN in s.to and "累计" in s.subject)
    assert "1. TS2026-0001" in permanent.text and "4. TS2026-0004" in permanent.text
    notice = one(sent, to=ZHANG)
    assert "已达到 4 次：当月绩效工资扣发1级" in notice.text and "已达到 4 次：绩效工资永久降1级" in notice.text
    assert [p[:5] for p in penalties(flow)] == [("张三", "monthly", "2026-11", 1, "active"),
                                                 ("张三", "monthly", "2026-11", 2, "active"),
                                                 ("张三", "permanent", "all", 1, "active")]
    rows = flow.report("complaints")
    assert rows == [{"售前": "张三", "有效投诉": "4", "已撤回": "0", "未计入": "0",
                     "投诉记录": "TS2026-0001、TS2026-0002、TS2026-0003、TS2026-0004",
                     "已触发的处罚": "2026-11第2次：当月绩效工资扣发1级；2026-11第4次：当月绩效工资扣发1级；累计第4次：绩效工资永久降1级"}]


def test_thresholds_fire_once_when_mails_are_replayed(flow):
    first = flow.mail(sender=LI, sender_name="李四", to=(QIAN,), cc=(SUN,), subject="投诉-华夏银行沟通问题",
                      body="没有汇报", date=nov(2), message_id="<c1@client.example>")
    second = flow.mail(sender=LI, sender_name="李四", to=(QIAN,), cc=(SUN,), subject="投诉-华夏银行沟通问题",
                       body="又没有汇报", date=nov(4), message_id="<c2@client.example>")
    sent = flow.deliver(first, second)
    assert sum(1 for s in sent if s.subject.startswith("投诉处罚")) == 1
    # The same two mails again, as identical copies and as journal copies (other bytes).
    assert flow.deliver(first, second) == []
    assert flow.deliver(b"X-Journal: 1\r\n" + first, b"X-Journal: 1\r\n" + second) == []
    # And through `replay` of saved .eml files.
    (flow.tmp / "c1.eml").write_bytes(first)
    (flow.tmp / "c2.eml").write_bytes(b"X-Journal: 2\r\n" + second)
    from support import run
    assert run(flow.cfg, "replay", str(flow.tmp / "c1.eml"), str(flow.tmp / "c2.eml")) == 0
    assert flow.deliver() == []
    assert len(flow.smtp.messages) == 5
    assert [p[:5] for p in penalties(flow)] == [("张三", "monthly", "2026-11", 1, "active")]
    assert flow.report("complaints")[0]["有效投诉"] == "2"


def test_monthly_window_resets_the_permanent_one_does_not(flow):
    complain(flow, date=datetime(2026, 9, 30, 15, 0, tzinfo=timezone.utc))  # 2026-09-30 23:00 Beijing
    sent = complain(flow, date=datetime(2026, 9, 30, 17, 0, tzinfo=timezone.utc))  # 2026-10-01 01:00 Beijing
    assert shape(sent) == [((LI,), ()), ((ZHANG,), ())]  # different months: no penalty
    assert "2026年10月有效投诉：1 次" in one(sent, to=ZHANG).text
    complain(flow, date=datetime(2026, 10, 20, tzinfo=timezone.utc))
    sent = complain(flow, date=nov(1))
    # 4 overall (never reset), but only 1 in November and the October pair was its 2nd.
    escalations = sorted(s.subject for s in sent if QIAN in s.to)
    assert escalations == ["投诉处罚：张三 累计第 4 次投诉，绩效工资永久降1级 [#TS2026-0004]"]
    assert [p[:4] for p in penalties(flow)] == [("张三", "monthly", "2026-10", 1), ("张三", "permanent", "all", 1)]
    assert flow.report("complaints", "--month", "2026-10") == [
        {"售前": "张三", "有效投诉": "2", "已撤回": "0", "未计入": "0", "投诉记录": "TS2026-0002、TS2026-0003",
         "已触发的处罚": "2026-10第2次：当月绩效工资扣发1级"}]
    assert flow.report("complaints", "--month", "2026-11")[0]["已触发的处罚"] == "累计第4次：绩效工资永久降1级"


def test_windows_and_thresholds_come_from_config(tmp_path, imap_server, smtp_server, capsys):
    extra = """
[[workflows.complaint.penalties]]
name = "quarterly"
every = 3
window = "quarter"
penalty = "当季绩效工资扣发1级"
"""
    f = Flow(tmp_path, imap_server, smtp_server, capsys, extra=extra)
    complain(f, date=datetime(2026, 10, 5, tzinfo=timezone.utc))
    complain(f, date=datetime(2026, 11, 5, tzinfo=timezone.utc))
    sent = complain(f, date=datetime(2026, 12, 5, tzinfo=timezone.utc))
    assert [s.subject for s in sent if QIAN in s.to] == ["投诉处罚：张三 2026年第4季度第 3 次投诉，当季绩效工资扣发1级 [#TS2026-0003]"]
    assert [p[:4] for p in penalties(f)] == [("张三", "quarterly", "2026-Q4", 1)]


def test_withdrawal_revokes_the_penalty_and_tells_everyone(flow):
    complain(flow, date=nov(2))
    sent = complain(flow, date=nov(9))
    ack2 = one(sent, to=LI)
    assert len([s for s in sent if QIAN in s.to]) == 1

    # Someone else cannot withdraw it.
    denied = flow.reply_to(ack2, sender=QIAN, body="撤回")
    assert shape(denied) == [((QIAN,), ())]
    assert "只能由投诉人李四本人撤回" in denied[0].text
    assert flow.ticket("TS2026-0002")["state"] == "counted"
    # A plain answer in the thread is only recorded.
    assert flow.reply_to(ack2, sender=LI, body="补充：客户是信息科王经理。") == []

    sent = flow.reply_to(ack2, sender=LI, body="撤回\n张三已经补发了汇报，误会。")
    assert shape(sent) == [((LI,), ()), ((QIAN,), (SUN,)), ((ZHANG,), (QIAN, SUN))]
    corr = one(sent, to=QIAN)
    assert corr.subject == "投诉处罚更正：张三 2026年11月“当月绩效工资扣发1级”撤销 [#TS2026-0002]"
    assert "投诉 TS2026-0002（华夏银行）已由投诉人撤回" in corr.text and "请不要执行" in corr.text
    note = one(sent, to=ZHANG)
    assert note.subject == "投诉已撤回：华夏银行项目沟通问题（TS2026-0002） [#TS2026-0002]"
    assert "2026年11月：1 次" in note.text and "2026年11月的“当月绩效工资扣发1级”已撤销" in note.text
    ack = one(sent, to=LI)
    assert "您的投诉 TS2026-0002（华夏银行）已撤回" in ack.text and "2026年11月：1 次" in ack.text
    assert flow.ticket("TS2026-0002")["state"] == "withdrawn"
    assert [p[:5] for p in penalties(flow)] == [("张三", "monthly", "2026-11", 1, "revoked")]
    assert flow.report("complaints") == [{"售前": "张三", "有效投诉": "1", "已撤回": "1", "未计入": "0",
                                          "投诉记录": "TS2026-0001", "已触发的处罚": ""}]
    # Withdrawing again: nothing more.
    assert flow.reply_to(ack2, sender=LI, body="撤回") == []

    # A new complaint brings the count back to 2: the threshold fires again, once.
    sent = complain(flow, date=nov(20))
    esc = [s for s in sent if QIAN in s.to]
    assert len(esc) == 1 and "1. TS2026-0001" in esc[0].text and "2. TS2026-0003" in esc[0].text
    assert [p[:5] for p in penalties(flow)] == [("张三", "monthly", "2026-11", 1, "active")]


def test_withdrawal_that_leaves_the_penalty_standing_restates_its_basis(flow):
    first = one(complain(flow, date=nov(2)), to=LI)
    complain(flow, date=nov(9))
    complain(flow, date=nov(16))
    sent = flow.reply_to(first, sender=LI, body="撤回")
    assert shape(sent) == [((LI,), ()), ((QIAN,), (SUN,)), ((ZHANG,), (QIAN, SUN))]
    corr = one(sent, to=QIAN)
    assert corr.subject == "投诉处罚更正：张三 2026年11月“当月绩效工资扣发1级”依据变更 [#TS2026-0001]"
    assert "仍然有效" in corr.text
    assert "1. TS2026-0002  2026-11-09" in corr.text and "2. TS2026-0003  2026-11-16" in corr.text
    assert [p[4:] for p in penalties(flow)] == [("active", ["TS2026-0002", "TS2026-0003"])]


def test_answers_in_the_complaint_thread_send_nothing(flow):
    sent = complain(flow)
    notice = one(sent, to=ZHANG)
    assert flow.reply_to(notice, sender=ZHANG, body="钱经理，我当天电话汇报过李四，请核实。", cc=(QIAN,)) == []
    assert flow.ticket("TS2026-0001")["state"] == "counted"
    assert flow.ticket("TS2026-0001")["data"]["thread"][0]["from"] == "张三"


def test_withdrawing_a_complaint_that_never_counted(flow):
    ack = complain(flow, sender=ZHOU)[0]
    sent = flow.reply_to(ack, sender=ZHOU, body="撤回")
    assert shape(sent) == [((ZHOU,), ())]
    assert "这封投诉原本就没有计入次数" in sent[0].text
    assert flow.ticket("TS2026-0001")["state"] == "withdrawn"
    assert penalties(flow) == []


def test_withdrawing_an_early_complaint_restates_one_penalty_and_revokes_the_last(flow):
    first = one(complain(flow, date=nov(2)), to=LI)
    for day in (9, 16, 23):
        complain(flow, date=nov(day))
    sent = flow.reply_to(first, sender=LI, body="撤回")
    subjects = sorted(s.subject for s in sent if QIAN in s.to)
    # Monthly: 3 left, so the 1st penalty stands on TS-2 and TS-3 and the 2nd is
    # revoked; overall: 3 left, the permanent one is revoked.
    assert subjects == ["投诉处罚更正：张三 2026年11月“当月绩效工资扣发1级”依据变更 [#TS2026-0001]",
                        "投诉处罚更正：张三 2026年11月“当月绩效工资扣发1级”撤销 [#TS2026-0001]",
                        "投诉处罚更正：张三 累计“绩效工资永久降1级”撤销 [#TS2026-0001]"]
    assert [(p[3], p[4], p[5]) for p in penalties(flow)] == [
        (1, "active", ["TS2026-0002", "TS2026-0003"]), (2, "revoked", ["TS2026-0003", "TS2026-0004"]),
        (1, "revoked", ["TS2026-0001", "TS2026-0002", "TS2026-0003", "TS2026-0004"])]
    # The next complaint brings both back, each on the complaints since the threshold before.
    sent = complain(flow, date=nov(27))
    assert sorted(s.subject for s in sent if QIAN in s.to) == [
        "投诉处罚：张三 2026年11月第 4 次投诉，当月绩效工资扣发1级 [#TS2026-0005]",
        "投诉处罚：张三 累计第 4 次投诉，绩效工资永久降1级 [#TS2026-0005]"]
    assert [(p[3], p[4], p[5]) for p in penalties(flow)] == [
        (1, "active", ["TS2026-0002", "TS2026-0003"]), (2, "active", ["TS2026-0004", "TS2026-0005"]),
        (1, "active", ["TS2026-0002", "TS2026-0003", "TS2026-0004", "TS2026-0005"])]
