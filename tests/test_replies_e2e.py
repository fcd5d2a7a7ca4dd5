"""Replies that read right to the people who get them (issue 11), end to end
through a real Dovecot mailbox and a real aiosmtpd server: whom a mail
greets and names, how its recipients show, which thread it joins, what it
attaches and how its HTML part is laid out. Time is moved with an injected
clock, never with sleeps."""
from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import select

from conventions.helpers import LI, SYSTEM, ZHANG, ZHAO, Flow, one, report_body, shape
from processor.config import load_config
from processor.daemon import run_once
from processor.outbox import Deliverer
from processor.pipeline import Runtime
from processor.reports.scheduled import send_scheduled_reports
from processor.store.models import Breach, Ticket
from support import make_mail, run, write_config
from test_sla_e2e import CST, TUE_10, WORKORDER, Clock_
from workflows4.test_survey import NOW_DELAY, close, make_flow, open_followup

QIAN_ = "qian@company.example"
SUN_ = "sun@company.example"


def sla_runtime(tmp_path, imap_server, smtp_server):
    cfg = write_config(tmp_path, imap=imap_server, smtp=smtp_server,
                       extra="[reports]\nmonthly_enabled = false\nweekly_enabled = false\n")
    clock = Clock_(TUE_10)
    rt = Runtime(load_config(cfg), clock=clock)

    def once():
        before = len(smtp_server.messages)
        _, stats = run_once(rt, sender_process=False)
        return smtp_server.messages[before:before + stats.sent]

    return cfg, rt, clock, once


def names(c, header: str) -> list[tuple[str, str]]:
    return [(a.display_name, a.addr_spec) for a in c.message[header].addresses]


def open_workorder(imap_server, once):
    opening = make_mail(subject="故障处理-华夏银行-VRRP主备频繁切换", body=WORKORDER,
                        to=("zhaoliu@company.example",), cc=("tracking@company.example",))
    imap_server.append(opening)
    sent = once()
    opening_id = next(line.split(b": ", 1)[1].decode() for line in opening.split(b"\r\n")
                      if line.startswith(b"Message-ID: "))
    return sent, opening_id


def test_sla_reminder_and_escalations_address_people_and_thread_with_the_record(tmp_path, imap_server, smtp_server,
                                                                                 capsys):
    """The 待审批 step clock belongs to the role 售前经理, held by 赵六 alone:
    the reminder greets 赵六, the breach is booked against 赵六 in the mail
    and in `report sla`, clock names are quoted once, hours say which hours,
    and each mail threads with the work order's opening mail."""
    cfg, rt, clock, once = sla_runtime(tmp_path, imap_server, smtp_server)
    try:
        sent, opening_id = open_workorder(imap_server, once)
        approve = next(m for m in sent if m.rcpt_tos == ["zhaoliu@company.example"])
        with rt.store.reader() as s:
            (wo,) = s.scalars(select(Ticket).where(Ticket.kind == "workorder"))

        clock.t = TUE_10 + timedelta(hours=3, minutes=20)  # 200 of 240 working minutes
        (reminder,) = once()
        assert names(reminder, "To") == [("赵六", "zhaoliu@company.example")]
        assert reminder.text.startswith("赵六，您好：") and "售前经理，您好" not in reminder.text
        assert "的“待审批”环节时限快到了" in reminder.text and "““" not in reminder.text and "””" not in reminder.text
        assert "时限：4 个工作小时，已用 3.3 个工作小时" in reminder.text and "4.0" not in reminder.text
        # Threaded: an answer to the opening mail's thread, below our last mail about it.
        assert reminder.header("In-Reply-To") == approve.header("Message-ID")
        assert reminder.header("References").split() == [opening_id, approve.header("Message-ID")]

        clock.t = TUE_10 + timedelta(hours=4, minutes=30)
        (esc,) = once()
        assert names(esc, "To") == [("钱经理", QIAN_)] and names(esc, "Cc") == [("赵六", "zhaoliu@company.example")]
        assert esc.subject.startswith(f"超时上报（第1级）：{wo.number} 的“待审批”环节已超时")
        assert esc.text.startswith("钱经理，您好：")
        assert "按规定上报技术支持部经理（超时上报共 2 级，这是第 1 级），抄送负责人 赵六" in esc.text
        assert "此次超时已记入 赵六 的超时记录" in esc.text and "售前经理 的超时记录" not in esc.text
        assert "已超时：0.5 个工作小时" in esc.text
        assert esc.header("References").split()[0] == opening_id
        assert esc.header("In-Reply-To") == reminder.header("Message-ID")
        with rt.store.reader() as s:
            assert [b.person for b in s.scalars(select(Breach))] == ["赵六"]
        capsys.readouterr()
        assert run(cfg, "report", "sla", "--format", "json") == 0
        assert [r["人员"] for r in json.loads(capsys.readouterr().out)] == ["赵六"]

        # Days later (nobody acted, the daemon was down): the top of a chain of
        # two levels, told what went before, never "第12级".
        clock.t = datetime(2026, 11, 27, 17, 0, tzinfo=CST)
        (top,) = once()
        assert names(top, "To") == [("孙总监", SUN_)]
        assert top.subject.startswith(f"超时上报（第2级）：{wo.number}")
        assert "超时上报共 2 级，这是第 2 级" in top.text and "此前已上报：技术支持部经理，记录仍未处理" in top.text
        assert "第12级" not in top.text + top.subject and "个工作小时" in top.text
    finally:
        rt.store.dispose()


def test_an_escalation_after_an_outage_says_it_is_the_first_notice(tmp_path, imap_server, smtp_server):
    cfg, rt, clock, once = sla_runtime(tmp_path, imap_server, smtp_server)
    try:
        open_workorder(imap_server, once)
        clock.t = datetime(2026, 11, 27, 17, 0, tzinfo=CST)  # nothing sent before: no reminder, no first step
        (top,) = once()
        assert top.rcpt_tos == [SUN_, "zhaoliu@company.example"]
        assert top.subject.startswith("超时上报（第2级）") and "超时上报共 2 级，这是第 2 级" in top.text
        assert "这是您第一次收到本记录的超时通知" in top.text and "此前已上报" not in top.text
    finally:
        rt.store.dispose()


def test_forward_names_recipients_attaches_the_original_inline_and_the_receipt_names_the_report(flow):
    """A report returned as vague, resent as an Outlook answer (答复: …) to
    the system only: the receipt names the report, not the answer's subject;
    the 责任销售 gets it forwarded under his name with the original inline."""
    rej = flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行-张三",
                    body=report_body(issue="解决了技术问题"))[0]
    sent = flow.reply_to(rej, sender=ZHANG, to=(SYSTEM,), prefix="答复: ",
                         body=report_body(issue="修复VPN网关证书过期导致的分支断线"))
    assert shape(sent) == [((LI,), ()), ((ZHANG,), ())]
    ack = one(sent, to=ZHANG)
    assert ack.names == {ZHANG: "张三"}
    assert "您的汇报（华夏银行项目，汇报人张三，" in ack.text and "已通过检查" in ack.text
    assert "《答复: 汇报邮件未通过检查" not in ack.text and "未通过检查" not in ack.text
    assert "（李四的回复会直接发给您）" in ack.text and "他的回复" not in ack.text
    fwd = one(sent, to=LI)
    assert fwd.names == {LI: "李四"}
    assert fwd.attachment_types == ["message/rfc822"]
    (captured,) = [m for m in flow.smtp.messages if m.message_id == fwd.message_id]
    (att,) = captured.attachments
    assert att.get_content_disposition() == "inline"
    enclosed = captured.data.split(b"Content-Type: message/rfc822", 1)[1]
    assert enclosed.isascii()  # the 8-bit original re-encoded: an enclosed mail stays 7bit
    assert captured.mail_options == ["BODY=8BITMIME"]  # (for the 8bit text parts; no SMTPUTF8)
    shown = att.get_content()  # the client shows the enclosed mail itself
    assert str(shown["Subject"]).startswith("答复: 汇报邮件未通过检查")
    assert "沟通的具体问题：修复VPN网关证书过期导致的分支断线" in shown.get_content()


def test_html_part_lays_the_mail_out_for_outlook(flow):
    sent = flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行-张三",
                     body=report_body(result="问题遗留", remaining="客户要求V3.2补丁，需研发确认"))
    ack = one(sent, to=ZHANG)
    html = ack.html
    assert "pre-wrap" not in html and "class=" not in html and "flex" not in html and "grid" not in html
    assert "<style" not in html
    # The record number prominent, the fields in a table, the action set apart.
    import re
    assert re.search(r'<th align="left" style="[^"]*font-size: 24px;[^"]*">HB2026-0001</th>', html)
    assert "工单系统 · 汇报</td>" in html  # the record's kind, as its lifecycle names it
    assert re.search(r'>沟通方式</td>\n<td width="430" valign="top" style="[^"]*">电话</td>', html)
    assert "<div" not in html and "mso-fareast-font-family" in html
    box = html.split(">需要您做的</th>")[-1].split("</table>")[0]
    assert 'bgcolor="#f0a020"' in html and "第一行写“已解决”" in box
    assert "直接回复本邮件即可，回复会记入 HB2026-0001 的记录" in html
    # The text part stays complete on its own.
    for line in ("沟通方式：电话", "遗留的问题描述：客户要求V3.2补丁，需研发确认", "第一行写“已解决”"):
        assert line in ack.text


def test_a_near_miss_keyword_gets_the_exact_keyword_and_changes_nothing(tmp_path, imap_server, smtp_server, capsys):
    flow = make_flow(tmp_path, imap_server, smtp_server, capsys, extra=NOW_DELAY)
    ack = open_followup(flow)
    sent = flow.reply_to(ack, sender=ZHANG, body="已经解决了\n客户确认补丁安装后告警消除。")
    assert shape(sent) == [((ZHANG,), ())]
    hint = sent[0]
    assert hint.subject == "未执行：GJ2026-0001 的回复中没有关键词“已解决” [#GJ2026-0001]"
    assert "您在记录 GJ2026-0001 的邮件会话中回复了“已经解决了”" in hint.text
    assert "“已解决”（由负责人（张三）操作）" in hint.text and "记录仍为“处理中”" in hint.text
    assert flow.ticket("GJ2026-0001")["state"] == "open"
    assert ("processed", "reply:report") == flow.messages()[-1][1:3]
    # Prose is not a near miss: noted, nothing sent.
    assert flow.reply_to(ack, sender=ZHANG, body="已联系研发，明天上午给客户答复。") == []
    # The keyword itself closes it.
    sent = close(flow, hint, text="已解决\n客户确认补丁安装后告警消除。")
    assert flow.ticket("GJ2026-0001")["state"] == "closed"


def test_survey_introduces_the_record_threads_with_it_and_a_reopen_tells_every_party(tmp_path, imap_server,
                                                                                    smtp_server, capsys):
    flow = make_flow(tmp_path, imap_server, smtp_server, capsys, extra=NOW_DELAY)
    ack = open_followup(flow)
    (opening_id,) = [r[0] for r in flow.db("select message_id from messages order by id limit 1")]
    sent = close(flow, ack)
    survey = one(sent, to=LI, subject="回访")
    assert survey.names == {LI: "李四"}
    assert survey.text.startswith("李四，您好：\n\n您是华夏银行项目的责任销售。该项目的遗留问题跟进单 GJ2026-0001于 ")
    assert "由张三开立，由张三负责处理，已于 " in survey.text and "记录号：GJ2026-0001" in survey.text
    assert "问题：客户要求V3.2补丁，需研发确认" in survey.text
    assert survey.references.split()[0] == opening_id and survey.in_reply_to

    sent = flow.reply_to(survey, sender=LI, body="满意度：1\n告警又出现了")
    low = one(sent, to=ZHANG)
    assert low.names == {ZHANG: "张三", ZHAO: "赵六"}
    assert "遗留问题跟进单 GJ2026-0001 已重新打开，当前状态：处理中" in low.text
    assert "已重新打开（状态：处理中）" in one(sent, to=LI).text


def _thread_headers(flow, sent) -> tuple[bytes, str]:
    """(Thread-Index bytes, decoded Thread-Topic) of a mail the SMTP server got."""
    import base64
    from email.header import decode_header, make_header
    (c,) = [m for m in flow.smtp.messages if m.header("Message-ID") == sent.message_id]
    return (base64.b64decode(c.message["Thread-Index"]),
            str(make_header(decode_header(c.message["Thread-Topic"]))))


def test_every_mail_about_a_record_carries_outlooks_thread_index_and_topic(tmp_path, imap_server, smtp_server,
                                                                           capsys):
    import uuid
    from processor.outbox import _THREAD_NS
    flow = make_flow(tmp_path, imap_server, smtp_server, capsys, extra=NOW_DELAY)
    ack = open_followup(flow)
    (opening_id,) = [r[0] for r in flow.db("select message_id from messages order by id limit 1")]
    sent = close(flow, ack)
    survey = one(sent, to=LI, subject="回访")  # a timed job's mail: no incoming mail behind it
    closed = [m for m in sent if m is not survey]
    mails = [ack, *closed, survey]
    got = [_thread_headers(flow, m) for m in mails]
    # One conversation: the same 22-byte header (0x01, start time, GUID of the opening mail) ...
    heads = {idx[:22] for idx, _ in got}
    assert len(heads) == 1
    (head,) = heads
    assert head[0] == 1 and head[6:] == uuid.uuid5(_THREAD_NS, opening_id.strip("<>").lower()).bytes
    # ... each mail one response level below it, later mails sorting after earlier ones.
    assert all(len(idx) == 27 for idx, _ in got)
    assert got[0][0] <= got[-1][0]
    # Thread-Topic: the subject of the report that opened the thread, as Outlook's own reply would carry.
    assert {topic for _, topic in got} == {"客户沟通-华夏银行-张三"}


def test_replies_to_the_monthly_mail_are_answered_not_dropped(flow):
    first = Runtime(load_config(flow.cfg), clock=lambda: datetime(2026, 11, 30, 8, 0, tzinfo=CST))
    try:
        assert send_scheduled_reports(first) == 0  # the store's first run: periods before it are never sent
    finally:
        first.store.engine.dispose()
    when = datetime(2026, 12, 1, 9, 30, tzinfo=CST)
    rt = Runtime(load_config(flow.cfg), clock=lambda: when)
    try:
        assert send_scheduled_reports(rt) >= 1
        Deliverer(rt.cfg, rt.store).deliver_due()
    finally:
        rt.store.engine.dispose()
    monthly = [m for m in flow.smtp.messages[flow.seen:] if ZHAO in m.rcpt_tos][0]
    flow.seen = len(flow.smtp.messages)
    # Its HTML part never invites a reply.
    assert "直接回复本邮件即可" not in monthly.html and "回复本邮件不会被处理" in monthly.html
    sent = flow.deliver(make_mail(sender=ZHAO, sender_name="赵六", subject="回复：" + monthly.subject,
                                  body="张三本月的汇报偏少，请关注。", in_reply_to=monthly.header("Message-ID")))
    assert shape(sent) == [((ZHAO,), ())]
    assert sent[0].subject == f"回复未处理：系统邮件《{monthly.subject}》不接受回复"
    assert "回复不会被处理" in sent[0].text and "在该记录的邮件会话中回复" in sent[0].text


def test_replies_to_the_weekly_mail_are_answered_not_dropped(tmp_path, imap_server, smtp_server, capsys):
    flow = Flow(tmp_path, imap_server, smtp_server, capsys, extra="[reports]\nmonthly_enabled = false\n")
    ack = one(flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行-张三",
                        body=report_body(result="问题遗留", remaining="客户要求V3.2补丁，需研发确认")), to=ZHANG)
    assert "GJ2026-0001" in ack.text
    start = datetime.now(CST)
    first = Runtime(load_config(flow.cfg), clock=lambda: start)
    try:
        assert send_scheduled_reports(first) == 0  # the store's first run: weeks before it are never sent
    finally:
        first.store.engine.dispose()
    monday = (start + timedelta(days=7 - start.weekday())).replace(hour=9, minute=30, second=0, microsecond=0)
    rt = Runtime(load_config(flow.cfg), clock=lambda: monday)
    try:
        assert send_scheduled_reports(rt) == 1
        Deliverer(rt.cfg, rt.store).deliver_due()
    finally:
        rt.store.engine.dispose()
    (weekly,) = [m for m in flow.smtp.messages[flow.seen:] if ZHANG in m.rcpt_tos]
    flow.seen = len(flow.smtp.messages)
    assert weekly.subject.startswith("每周待办：张三有 1 项未关闭") and "GJ2026-0001" in weekly.text
    sent = flow.deliver(make_mail(sender=ZHANG, sender_name="张三", subject="答复: " + weekly.subject,
                                  body="GJ2026-0001 本周处理完。", in_reply_to=weekly.header("Message-ID")))
    assert shape(sent) == [((ZHANG,), ())]
    assert sent[0].subject == f"回复未处理：系统邮件《{weekly.subject}》不接受回复"
    assert "回复不会被处理" in sent[0].text and "在该记录的邮件会话中回复" in sent[0].text
    assert flow.ticket("GJ2026-0001")["state"] == "open"


def test_an_unreadable_reply_in_a_record_thread_is_answered_and_changes_nothing(tmp_path, imap_server,
                                                                               smtp_server, capsys):
    from email.header import Header
    flow = make_flow(tmp_path, imap_server, smtp_server, capsys)
    ack = open_followup(flow)
    before = flow.ticket("GJ2026-0001")
    # Outlook's reply in the thread, in a charset nobody knows, meant as 「已解决」.
    raw = ("From: =?utf-8?b?5byg5LiJ?= <" + ZHANG + ">\r\nTo: " + SYSTEM + "\r\n"
           "Subject: " + Header("答复: " + ack.subject, "utf-8").encode() + "\r\n"
           "Message-ID: <unreadable-reply-1@client.example>\r\nIn-Reply-To: " + ack.message_id + "\r\n"
           "References: " + ack.message_id + "\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=\"x-unknown-cjk\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n").encode()
    sent = flow.deliver(raw + bytes(range(0x80, 0x100)) * 3 + b"\r\n")
    assert shape(sent) == [((ZHANG,), ())]
    reply = sent[0]
    assert reply.subject.startswith("邮件无法读取，请重新发送：答复: ") and "[#" in reply.subject
    assert reply.in_reply_to == "<unreadable-reply-1@client.example>"
    assert "正文的字符编码（x-unknown-cjk）无法识别" in reply.text and "不算退回" in reply.text
    after = flow.ticket("GJ2026-0001")
    assert (after["state"], after["data"]) == (before["state"], before["data"]) == ("open", before["data"])
    [(status, rule, code)] = flow.db("select status, rule, outcome_code from messages order by id desc limit 1")
    assert (status, code) == ("processed", "unreadable") and rule.startswith("reply:")
    # A signature-only reply in the thread: the same answer, nothing changes.
    sent = flow.reply_to(ack, sender=ZHANG, body="\n-- \n张三\n华信科技有限公司 技术支持部\n")
    assert shape(sent) == [((ZHANG,), ())] and "正文里只有签名" in sent[0].text
    assert flow.ticket("GJ2026-0001")["state"] == "open"


# -- fixtures -------------------------------------------------------------------

import pytest  # noqa: E402


@pytest.fixture
def flow(tmp_path, imap_server, smtp_server, capsys):
    return Flow(tmp_path, imap_server, smtp_server, capsys, extra="[reports]\nweekly_enabled = false\n")
