"""Convention 1, 汇报邮件 客户沟通-<项目>-<技服人员名字>, end to end through a
real Dovecot mailbox and a real SMTP server."""
from __future__ import annotations

import pytest

from conventions.helpers import (LI, QIAN, SYSTEM, WANG, ZHANG, ZHAO, Flow, one, report_body, shape)


@pytest.fixture
def flow(tmp_path, imap_server, smtp_server, capsys):
    return Flow(tmp_path, imap_server, smtp_server, capsys)


def test_accepted_report_goes_into_the_first_presales_tracking_table(flow):
    sent = flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行项目-张三",
                     body=report_body(contact="王经理（信息科）", method="远程桌面"), message_id="<rep-1@client.example>")

    # Only the receipt: the 责任销售 had the mail, the reporter is the 第一售前.
    assert shape(sent) == [((ZHANG,), ())]
    ack = sent[0]
    assert ack.subject == "回执：汇报邮件已记录 HB2026-0001（华夏银行） [#HB2026-0001]"
    assert "记入张三的《项目跟踪表》，记录号 HB2026-0001" in ack.text
    assert "沟通的具体问题：解决vista下远程控制网络参数设置" in ack.text
    assert "转发" not in ack.text and "跟进单" not in ack.text
    assert ack.in_reply_to == "<rep-1@client.example>"

    rows = flow.tracking()
    assert len(rows) == 1
    row = rows[0]
    assert {k: row[k] for k in ("第一售前", "项目", "汇报人", "沟通人", "沟通方式", "沟通结果", "沟通的具体问题",
                                "遗留的问题描述", "记录号", "邮件")} == {
        "第一售前": "张三", "项目": "华夏银行", "汇报人": "张三", "沟通人": "王经理（信息科）", "沟通方式": "远程桌面",
        "沟通结果": "成功", "沟通的具体问题": "解决vista下远程控制网络参数设置", "遗留的问题描述": "",
        "记录号": "HB2026-0001", "邮件": "<rep-1@client.example>"}
    assert flow.ticket("HB2026-0001")["state"] == "accepted"


def test_subject_variants_prefixes_dashes_and_project_suffix(flow):
    subjects = ["回复：RE: 客户沟通—华夏银行项目－张三", "答复: 客户沟通－华夏－张三", "转发: 客户沟通 - 华夏银行 - 张三",
                "客户沟通——华夏银行项目——张三", "FW: 客户沟通：华夏银行-张三"]
    raws = [flow.mail(sender=ZHANG, sender_name="张三", to=(LI,), cc=(SYSTEM,), subject=s,
                      body=report_body(issue=f"调整第{i}台防火墙的远程管理地址")) for i, s in enumerate(subjects)]
    sent = flow.deliver(*raws)
    assert shape(sent) == [((ZHANG,), ())] * 5
    assert all("回执：汇报邮件已记录" in s.subject for s in sent)
    rows = flow.tracking()
    assert [(r["项目"], r["汇报人"], r["沟通的具体问题"]) for r in rows] == [
        ("华夏银行", "张三", f"调整第{i}台防火墙的远程管理地址") for i in range(5)]


def test_reply_in_the_report_thread_is_recorded_not_counted(flow):
    flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行-张三", body=report_body(),
              message_id="<rep-2@client.example>")
    # Sales answers the report (reply-all keeps the tracking address in CC).
    sent = flow.send(sender=LI, to=(ZHANG,), cc=(SYSTEM,), subject="回复：客户沟通-华夏银行-张三",
                     body="收到，辛苦了。客户那边我再确认一下。\n李四", in_reply_to="<rep-2@client.example>")
    assert sent == []
    # Another answer, by the [#token] of our receipt only (no References).
    sent = flow.send(sender=LI, to=(SYSTEM,), cc=(), subject="RE: 回执：汇报邮件已记录 HB2026-0001（华夏银行） [#HB2026-0001]",
                     body="好的")
    assert sent == []
    assert len(flow.tracking()) == 1
    t = flow.ticket("HB2026-0001")
    assert [n["from"] for n in t["data"]["thread"]] == ["李四", "李四"]
    assert flow.report("reports") == [{"汇报人": "张三", "已记录": "1", "退回": "0", "未立项": "0", "未计入": "0", "待确认项目": "0", "合计": "1"}]
    assert [m[2] for m in flow.messages()] == ["customer_report", "reply:report", "reply:report"]


def test_name_in_subject_is_someone_else(flow):
    # 王五 sends a report naming 张三: recorded against 张三, the mismatch noted, 张三 copied.
    sent = flow.send(sender=WANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行-张三", body=report_body())
    assert shape(sent) == [((WANG,), (ZHANG,))]
    assert "标题中的技服人员是“张三”，而邮件由王五发出" in sent[0].text
    row = flow.tracking()[0]
    assert (row["第一售前"], row["汇报人"]) == ("张三", "张三")


def test_name_in_subject_unknown_or_missing(flow):
    sent = flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行-张3", body=report_body())
    assert shape(sent) == [((ZHANG,), ())]
    assert "标题中的名字“张3”不是通讯录中的售前，本次按发件人张三记录" in sent[0].text
    sent = flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行项目",
                     body=report_body(issue="更换核心交换机电源模块"))
    assert shape(sent) == [((ZHANG,), ())]
    assert "标题中缺少技服人员名字，本次按发件人张三记录" in sent[0].text
    assert [r["汇报人"] for r in flow.tracking()] == ["张三", "张三"]


def test_sales_not_addressed_gets_the_report_forwarded(flow):
    # The tracking address in BCC; the 责任销售 李四 is neither in To nor CC.
    sent = flow.send(sender=ZHANG, to=(ZHAO,), cc=(), subject="客户沟通-华夏银行-张三", body=report_body())
    assert shape(sent) == [((LI,), ()), ((ZHANG,), ())]
    fwd = one(sent, to=LI)
    assert fwd.subject == "转发汇报：客户沟通-华夏银行-张三 [#HB2026-0001]"
    assert fwd.reply_to == ZHANG
    assert "系统现将其转发给您" in fwd.text and "沟通的具体问题：解决vista下远程控制网络参数设置" in fwd.text
    assert fwd.attachments == ["original.eml"]
    ack = one(sent, to=ZHANG)
    assert "责任销售李四不在这封邮件的收件人或抄送中，系统已把汇报转发给李四" in ack.text
    assert len(flow.tracking()) == 1
    # Sales answering the forward lands in the report's thread: nothing is sent.
    assert flow.reply_to(fwd, sender=LI, body="收到", to=(ZHANG,), cc=(SYSTEM,)) == []
    assert len(flow.tracking()) == 1


def test_second_presales_report_notifies_first_presales_and_manager(flow):
    sent = flow.send(sender=WANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行-王五",
                     body=report_body(issue="协助客户恢复核心交换机配置", method="现场"))
    assert shape(sent) == [((WANG,), ()), ((ZHANG,), (ZHAO,))]
    note = one(sent, to=ZHANG)
    assert note.subject == "王五（第二售前）支持了华夏银行项目：已记入您的项目跟踪表 [#HB2026-0001]"
    assert "沟通的具体问题：协助客户恢复核心交换机配置" in note.text and "之后此项目的协调仍由您负责" in note.text
    assert note.reply_to == WANG
    ack = one(sent, to=WANG)
    assert "记入张三的《项目跟踪表》" in ack.text and "已把这次支持的日期和内容通知第一售前张三" in ack.text
    row = flow.tracking()[0]
    assert (row["第一售前"], row["汇报人"]) == ("张三", "王五")
    assert flow.tracking("--presales", "王五") == []


def test_remaining_problem_opens_a_followup_closed_by_a_later_success_report(flow):
    sent = flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行-张三",
                     body=report_body(result="问题遗留", remaining="客户要求V3.2补丁，需研发确认"))
    assert shape(sent) == [((ZHANG,), ())]
    ack = sent[0]
    assert "已开《遗留问题跟进单》GJ2026-0001，负责人：张三" in ack.text
    assert "回复本邮件，第一行写“已解决”" in ack.text
    fu = flow.ticket("GJ2026-0001")
    assert (fu["kind"], fu["state"], fu["owner"], fu["project"]) == ("followup", "open", "张三", "华夏银行")
    assert fu["due_at"] is not None and fu["closed_at"] is None
    assert [t["编号"] for t in flow.report("tickets", "--open")] == ["GJ2026-0001"]
    assert flow.tracking()[0]["遗留的问题描述"] == "客户要求V3.2补丁，需研发确认"

    # A later report on the project with result 成功 naming it closes it and tells the 责任销售 (art. 18).
    sent = flow.send(sender=WANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏项目-王五",
                     body=report_body(issue="安装V3.2补丁并验证告警恢复正常", followup="GJ2026-0001"))
    assert shape(sent) == [((LI,), (ZHANG,)), ((WANG,), ()), ((ZHANG,), (ZHAO,))]
    done = one(sent, to=LI)
    assert done.subject == "遗留问题已解决：华夏银行（跟进单 GJ2026-0001） [#GJ2026-0001]"
    assert "遗留的问题：客户要求V3.2补丁，需研发确认" in done.text
    assert "王五发送了新的汇报邮件 HB2026-0002，沟通结果为“成功”：安装V3.2补丁并验证告警恢复正常" in done.text
    assert done.reply_to == ZHANG
    assert "GJ2026-0001（客户要求V3.2补丁，需研发确认）已随本次“成功”的汇报关闭" in one(sent, to=WANG).text
    assert flow.ticket("GJ2026-0001")["state"] == "closed"
    assert flow.report("tickets", "--open") == []
    assert [r["沟通结果"] for r in flow.tracking()] == ["问题遗留", "成功"]


def two_followups(flow) -> dict:
    """Two open follow-ups on 华夏银行 about different problems: GJ2026-0001
    (张三's report HB2026-0001) and GJ2026-0002 (王五's report HB2026-0002,
    whose handover went to the owner 张三). Returns the mails to reuse."""
    a = flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行-张三",
                  body=report_body(result="问题遗留", remaining="客户要求V3.2补丁，需研发确认"),
                  message_id="<open-a@client.example>")
    b = flow.send(sender=WANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行-王五",
                  body=report_body(result="问题遗留", issue="检查日志服务器磁盘告警", remaining="日志服务器磁盘告警未消除"),
                  message_id="<open-b@client.example>")
    assert "GJ2026-0001" in one(a, to=ZHANG).text and "GJ2026-0002" in one(b, to=WANG).text
    handover = one(b, to=ZHANG)
    assert handover.token == "GJ2026-0002"
    assert [(t["编号"], t["状态"]) for t in flow.report("tickets", "--open")] == [
        ("GJ2026-0001", "处理中"), ("GJ2026-0002", "处理中")]
    return {"handover_b": handover}


def states(flow) -> tuple[str, str]:
    return flow.ticket("GJ2026-0001")["state"], flow.ticket("GJ2026-0002")["state"]


def test_success_report_that_names_no_followup_closes_none(flow):
    two_followups(flow)
    # 王五 solves something else on the project: nothing refers to either follow-up.
    sent = flow.send(sender=WANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行-王五",
                     body=report_body(issue="更换核心交换机的电源模块并核对告警"))
    assert shape(sent) == [((WANG,), ()), ((ZHANG,), (ZHAO,))]  # receipt, handover; nothing to the sales
    assert not [s for s in sent if "遗留问题已解决" in s.subject or "遗留问题已解决" in s.text]
    assert states(flow) == ("open", "open")
    ack = one(sent, to=WANG)
    assert "已随本次“成功”的汇报关闭" not in ack.text
    assert "本次汇报没有指明以下遗留问题跟进单，它们仍为“处理中”" in ack.text
    assert "  - GJ2026-0001（负责人：张三）：客户要求V3.2补丁，需研发确认" in ack.text
    assert "  - GJ2026-0002（负责人：张三）：日志服务器磁盘告警未消除" in ack.text
    assert "“跟进单编号：GJ2026-0001”" in ack.text
    assert [r["沟通结果"] for r in flow.tracking()] == ["问题遗留", "问题遗留", "成功"]
    assert flow.db("select count(*) from audit where action = 'followup_closed'") == [(0,)]


def test_a_long_backlog_of_open_followups_is_counted_not_listed(tmp_path, imap_server, smtp_server, capsys):
    flow = Flow(tmp_path, imap_server, smtp_server, capsys,
                extra="[workflows.customer_report]\nlist_open_followups = 1\n")
    two_followups(flow)
    sent = flow.send(sender=WANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行-王五",
                     body=report_body(issue="更换核心交换机的电源模块并核对告警"))
    ack = one(sent, to=WANG)
    assert "  - GJ2026-0002（负责人：张三）：日志服务器磁盘告警未消除" in ack.text  # the newest
    assert "GJ2026-0001（" not in ack.text
    assert "另有 1 张更早的跟进单仍为“处理中”，未逐一列出。" in ack.text
    assert "仍有 2 张跟进单未关闭（GJ2026-0002）" in flow.report_text("messages")


def test_success_report_in_the_followup_thread_closes_that_one_only(flow):
    handover = two_followups(flow)["handover_b"]
    # The owner 张三 answers GJ2026-0002's handover mail with a report (subject rewritten, same thread).
    sent = flow.deliver(flow.mail(sender=ZHANG, sender_name="张三", to=(LI,), cc=(SYSTEM,),
                                  subject="客户沟通-华夏银行-张三", in_reply_to=handover.message_id,
                                  body=report_body(issue="清理日志分区并调整轮转策略，磁盘告警消除")))
    assert shape(sent) == [((LI,), (WANG, ZHANG)), ((ZHANG,), ())]
    done = one(sent, to=LI)
    assert done.subject == "遗留问题已解决：华夏银行（跟进单 GJ2026-0002） [#GJ2026-0002]"
    assert "遗留的问题：日志服务器磁盘告警未消除" in done.text
    assert "张三发送了新的汇报邮件 HB2026-0003，沟通结果为“成功”：清理日志分区并调整轮转策略，磁盘告警消除" in done.text
    ack = one(sent, to=ZHANG)
    assert ack.subject.startswith("回执：汇报邮件已记录 HB2026-0003")
    assert "GJ2026-0002（日志服务器磁盘告警未消除）已随本次“成功”的汇报关闭" in ack.text
    assert "  - GJ2026-0001（负责人：张三）：客户要求V3.2补丁，需研发确认" in ack.text
    assert states(flow) == ("open", "closed")
    assert flow.ticket("GJ2026-0002")["data"]["closing_report"] == "HB2026-0003"
    assert [r["沟通的具体问题"] for r in flow.tracking()][-1] == "清理日志分区并调整轮转策略，磁盘告警消除"


def test_success_report_replying_to_the_opening_report_closes_its_followup_only(flow):
    two_followups(flow)
    # 张三 answers his own 问题遗留 report (GJ2026-0001's report thread) with a new report.
    sent = flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="回复：客户沟通-华夏银行-张三",
                     in_reply_to="<open-a@client.example>",
                     body=report_body(issue="安装V3.2补丁并验证告警恢复正常"))
    done = one(sent, to=LI)
    assert done.subject == "遗留问题已解决：华夏银行（跟进单 GJ2026-0001） [#GJ2026-0001]"
    assert len([s for s in sent if "遗留问题已解决" in s.subject]) == 1
    assert states(flow) == ("closed", "open")


@pytest.mark.parametrize("where", ["field", "body"])
def test_success_report_citing_the_number_closes_that_one_only(flow, where):
    two_followups(flow)
    kw = ({"followup": "ＧＪ2026－0002"} if where == "field"
          else {"issue": "处理跟进单GJ2026-0002：清理日志分区并调整轮转策略"})
    sent = flow.send(sender=WANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行-王五", body=report_body(**kw))
    assert shape(sent) == [((LI,), (WANG, ZHANG)), ((WANG,), ()), ((ZHANG,), (ZHAO,))]
    done = one(sent, to=LI)
    assert done.subject == "遗留问题已解决：华夏银行（跟进单 GJ2026-0002） [#GJ2026-0002]"
    assert "GJ2026-0001" not in done.text and "客户要求V3.2补丁" not in done.text
    assert states(flow) == ("open", "closed")
    ack = one(sent, to=WANG)
    assert "GJ2026-0002（日志服务器磁盘告警未消除）已随本次“成功”的汇报关闭" in ack.text
    assert "  - GJ2026-0001（负责人：张三）" in ack.text


def test_followup_closed_by_its_owner_answering_already_solved(flow):
    sent = flow.send(sender=WANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行-王五",
                     body=report_body(result="问题遗留", remaining="日志服务器磁盘告警未消除"))
    assert shape(sent) == [((WANG,), ()), ((ZHANG,), (ZHAO,))]
    handover = one(sent, to=ZHANG)
    assert handover.token == "GJ2026-0001"  # answers go to the follow-up
    assert "遗留问题已开《遗留问题跟进单》GJ2026-0001，负责人是您" in handover.text

    # A plain answer is only recorded.
    assert flow.reply_to(handover, sender=ZHANG, body="我来跟进。") == []
    # 已解决 from someone who is not the owner: explained, still open.
    denied = flow.reply_to(handover, sender=WANG, body="已解决")
    assert shape(denied) == [((WANG,), ())]
    assert "只有跟进单负责人（第一售前）张三可以关闭它" in denied[0].text
    assert flow.ticket("GJ2026-0001")["state"] == "open"
    # The owner says 已解决: closed, the 责任销售 told, owner and reporter copied.
    sent = flow.reply_to(handover, sender=ZHANG, body="已解决。\n清理日志分区并调整轮转策略后告警消除。")
    assert shape(sent) == [((LI,), (WANG, ZHANG))]
    assert sent[0].subject == "遗留问题已解决：华夏银行（跟进单 GJ2026-0001） [#GJ2026-0001]"
    assert "清理日志分区并调整轮转策略后告警消除" in sent[0].text
    assert flow.ticket("GJ2026-0001")["state"] == "closed"
    # Saying it again changes nothing and sends nothing.
    assert flow.reply_to(handover, sender=ZHANG, body="已解决") == []
    assert len(flow.tracking()) == 1


def test_owner_closes_followup_from_the_report_receipt(flow):
    sent = flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行-张三",
                     body=report_body(result="问题遗留", remaining="待客户提供抓包文件"))
    ack = sent[0]
    sent = flow.reply_to(ack, sender=ZHANG, body="问题已解决\n抓包确认为运营商线路丢包，已由运营商修复。")
    assert shape(sent) == [((LI,), (ZHANG,))]
    assert "运营商线路丢包" in sent[0].text
    assert flow.ticket("GJ2026-0001")["state"] == "closed"


@pytest.mark.parametrize("body, problem", [
    (report_body(result="还行"), "“沟通结果”只能填写“成功”或“问题遗留”，而不是“还行”。"),
    (report_body(result="问题遗留"), "“沟通结果”为“问题遗留”时，必须填写“遗留的问题描述”。"),
    (report_body(issue="解决了技术问题"), "“沟通的具体问题”写得太笼统（“解决了技术问题”）"),
    (report_body(issue="已处理。"), "“沟通的具体问题”写得太笼统（“已处理。”）"),
    (report_body(issue="技术支持"), "“沟通的具体问题”写得太笼统"),
    (report_body(issue="调试"), "“沟通的具体问题”太短（“调试”），至少写6个字"),
    ("沟通结果：成功\n项目名称：华夏银行\n沟通的具体问题：解决vista下远程控制网络参数设置\n",
     "缺少“沟通人”：请写一行“沟通人：……”。"),
])
def test_rejected_report_lists_each_problem_and_a_fill_in_body(flow, body, problem):
    sent = flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行-张三", body=body)
    assert shape(sent) == [((ZHANG,), ())]
    rej = sent[0]
    assert rej.subject == "汇报邮件未通过检查，请修改后重发：客户沟通-华夏银行-张三 [#HB2026-0001]"
    assert problem in rej.text
    assert "项目名称：华夏银行" in rej.text and "沟通结果：" in rej.text and "遗留的问题描述：" in rej.text
    assert "本次退回已登记，记录号 HB2026-0001" in rej.text
    assert flow.tracking() == []
    assert flow.ticket("HB2026-0001")["state"] == "rejected"
    assert flow.report("reports") == [{"汇报人": "张三", "已记录": "0", "退回": "1", "未立项": "0", "未计入": "0", "待确认项目": "0", "合计": "1"}]


def test_several_problems_are_all_listed(flow):
    sent = flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行-张三",
                     body="沟通结果：好\n沟通的具体问题：解决了技术问题\n")
    text = sent[0].text
    for p in ("1. 缺少“项目名称”", "2. 缺少“沟通人”", "3. 缺少“沟通方式”", "4. “沟通结果”只能填写", "5. “沟通的具体问题”写得太笼统"):
        assert p in text
    # The fill-in body keeps nothing that was wrong.
    assert "沟通结果：成功/问题遗留\n项目名称：华夏银行\n沟通人：\n沟通方式：\n沟通的具体问题：\n遗留的问题描述：" in text


def test_corrected_report_sent_as_an_answer_to_the_rejection(flow):
    rej = flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行-张三",
                    body=report_body(issue="解决了技术问题"))[0]
    sent = flow.reply_to(rej, sender=ZHANG, to=(LI,), cc=(SYSTEM,),
                         body=report_body(issue="修复VPN网关证书过期导致的分支断线"))
    assert shape(sent) == [((ZHANG,), ())]
    assert sent[0].subject == "回执：汇报邮件已记录 HB2026-0002（华夏银行） [#HB2026-0002]"
    assert [r["沟通的具体问题"] for r in flow.tracking()] == ["修复VPN网关证书过期导致的分支断线"]
    assert flow.ticket("HB2026-0001")["data"]["resubmitted_as"] == "HB2026-0002"
    assert flow.ticket("HB2026-0002")["data"]["resubmits"] == "HB2026-0001"
    assert flow.report("reports") == [{"汇报人": "张三", "已记录": "1", "退回": "1", "未立项": "0", "未计入": "0", "待确认项目": "0", "合计": "2"}]


def test_new_report_written_as_a_reply_in_an_old_thread_counts(flow):
    flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行-张三", body=report_body(),
              message_id="<rep-3@client.example>")
    sent = flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="回复：客户沟通-华夏银行-张三",
                     body=report_body(issue="第二次远程：修改OSPF区域配置"), in_reply_to="<rep-3@client.example>")
    assert shape(sent) == [((ZHANG,), ())]
    assert "HB2026-0002" in sent[0].subject
    assert [r["沟通的具体问题"] for r in flow.tracking()] == ["解决vista下远程控制网络参数设置", "第二次远程：修改OSPF区域配置"]


def test_unknown_project_mentions_lixiang(flow):
    sent = flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-南方航空-张三",
                     body=report_body(project="南方航空"))
    # The engineer is answered; the sales in To is reminded to file the 立项单 (art. 11, lixiang.py).
    assert shape(sent) == [((LI,), (ZHANG,)), ((ZHANG,), ())]
    assert one(sent, to=LI).subject == "请提交技术支持立项单：南方航空（第1次提醒） [#HB2026-0001]"
    r = one(sent, to=ZHANG)
    assert r.subject == "项目不存在，汇报邮件未记录：客户沟通-南方航空-张三 [#HB2026-0001]"
    assert "项目“南方航空”在项目通讯录中找不到" in r.text
    assert "最接近的已立项项目" not in r.text  # no project is a near match
    assert "它可能还没有立项" in r.text and "《技术支持立项单》" in r.text
    assert "本邮件已登记为“未立项”" in r.text
    assert flow.tracking() == []
    t = flow.ticket("HB2026-0001")
    assert (t["state"], t["project"]) == ("unregistered", "南方航空")
    assert flow.report("reports")[0]["未立项"] == "1"


def test_mistyped_project_is_asked_about_and_confirmed_with_one_reply(flow):
    sent = flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华厦银行-张三", body=report_body())
    # Only the question to the engineer: no 未立项 reminder to the sales.
    assert shape(sent) == [((ZHANG,), ())]
    q = sent[0]
    assert q.subject == "您是不是指“华夏银行”？汇报邮件暂未记录：客户沟通-华厦银行-张三 [#HB2026-0001]"
    assert "项目“华厦银行”在项目通讯录中找不到。您是不是指“华夏银行”？" in q.text
    assert "立项单" not in q.subject and flow.db("select count(*) from reminders")[0][0] == 0
    assert flow.ticket("HB2026-0001")["state"] == "unconfirmed"

    sent = flow.reply_to(q, sender=ZHANG, body="是")
    assert shape(sent) == [((ZHANG,), ())]
    assert sent[0].subject.startswith("回执：汇报邮件已记录 HB2026-0002（华夏银行）")
    [row] = flow.tracking()
    assert (row["项目"], row["汇报人"]) == ("华夏银行", "张三")
    assert flow.ticket("HB2026-0001")["data"]["resubmitted_as"] == "HB2026-0002"
    assert flow.db("select count(*) from reminders")[0][0] == 0


def test_a_report_confirmed_by_reply_is_dated_by_the_report_not_the_reply(flow):
    from datetime import datetime, timedelta
    from processor.mail.parse import CHINA_TZ
    written = (datetime.now(CHINA_TZ) - timedelta(days=2)).replace(second=0, microsecond=0)
    q = flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华厦银行-张三", body=report_body(),
                  date=written)[0]
    sent = flow.reply_to(q, sender=ZHANG, body="是")
    assert sent[0].subject.startswith("回执：汇报邮件已记录 HB2026-0002（华夏银行）")
    assert written.strftime("%Y-%m-%d %H:%M") in sent[0].text  # the receipt names the report's date
    [row] = flow.tracking("--month", written.strftime("%Y-%m"))
    assert row["日期"].startswith(written.strftime("%Y-%m-%d %H:%M"))


def test_mistyped_project_answered_no_is_recorded_as_unregistered(flow):
    q = flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行二期-张三", body=report_body())[0]
    assert "您是不是指“华夏银行”？" in q.subject
    sent = flow.reply_to(q, sender=ZHANG, body="不是", cc=(LI,))
    assert shape(sent) == [((LI,), (ZHANG,)), ((ZHANG,), ())]
    assert one(sent, to=LI).subject.startswith("请提交技术支持立项单：华夏银行二期（第1次提醒）")
    assert flow.tracking() == []


@pytest.mark.parametrize("name", ["新华保险", "华能电厂监控"])
def test_a_name_sharing_a_character_is_not_offered(flow, name):
    sent = flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject=f"客户沟通-{name}-张三", body=report_body(project=name))
    r = one(sent, to=ZHANG)
    assert r.subject.startswith("项目不存在") and "华夏银行" not in r.text and "东方电网" not in r.text


def test_report_from_someone_who_is_not_presales_is_not_counted(flow):
    sent = flow.send(sender=LI, to=(QIAN,), cc=(SYSTEM,), subject="客户沟通-华夏银行-张三", body=report_body())
    assert shape(sent) == [((LI,), ())]
    assert sent[0].subject == "汇报邮件未计入：客户沟通-华夏银行-张三 [#HB2026-0001]"
    assert "通讯录中您不是售前" in sent[0].text
    assert flow.tracking() == []
    assert flow.ticket("HB2026-0001")["state"] == "not_counted"


def test_same_report_seen_twice_is_recorded_once(flow):
    raw = flow.mail(sender=ZHANG, sender_name="张三", to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行-张三",
                    body=report_body(), message_id="<rep-4@client.example>")
    assert len(flow.deliver(raw)) == 1
    # The identical mail again (e.g. copied twice into the mailbox).
    assert flow.deliver(raw) == []
    # The journal copy: same Message-ID, different bytes.
    assert flow.deliver(b"X-MS-Exchange-Organization-Journal: copy\r\n" + raw) == []
    assert len(flow.tracking()) == 1


def test_unrelated_mail_is_ignored_without_answer(flow):
    assert flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通记录汇总", body=report_body()) == []
    assert flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="华夏银行周报", body="本周无事") == []
    assert flow.tracking() == []
    assert [m[1] for m in flow.messages()] == ["ignored", "ignored"]


def test_a_thread_answer_seen_twice_is_handled_once(flow):
    sent = flow.send(sender=WANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行-王五",
                     body=report_body(result="问题遗留", remaining="日志服务器磁盘告警未消除"))
    handover = one(sent, to=ZHANG)
    answer = flow.mail(sender=WANG, sender_name="王五", to=(SYSTEM,), subject="回复：" + handover.subject, body="已解决",
                       in_reply_to=handover.message_id, message_id="<ans-1@client.example>")
    assert shape(flow.deliver(answer)) == [((WANG,), ())]  # not the owner: told once
    assert flow.deliver(b"X-Journal: copy\r\n" + answer) == []  # the journal copy: nothing
    assert flow.ticket("GJ2026-0001")["state"] == "open"
