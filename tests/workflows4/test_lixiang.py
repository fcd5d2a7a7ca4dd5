"""Convention 4, 技术支持立项单 立项-<项目> (art. 9-11), and the 未立项 reminders,
end to end through a real Dovecot mailbox and a real SMTP server."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from conventions.helpers import LI, SYSTEM, WANG, ZHANG, ZHAO, ZHOU, Flow, one, report_body, shape
from support import DIRECTORY

YEAR = datetime.now(timezone.utc).year
QIAN_ = "qian@company.example"


def lx(n: int) -> str:
    return f"LX{YEAR}-{n:04d}"


def hb(n: int) -> str:
    return f"HB{YEAR}-{n:04d}"


@pytest.fixture
def flow(tmp_path, imap_server, smtp_server, capsys, db_url):
    """Each test runs on SQLite and on PostgreSQL."""
    return Flow(tmp_path, imap_server, smtp_server, capsys, db_url=db_url)


def form(*, project="南方航空", customer="南方航空股份有限公司信息中心", p1="张三", p2="王五",
         content="核心网络改造的方案交流与测试环境搭建，11月底前完成POC") -> str:
    lines = [f"项目名称：{project}", f"客户：{customer}", f"第一售前：{p1}"]
    if p2 is not None:
        lines.append(f"第二售前：{p2}")
    lines.append(f"支持内容要求：{content}")
    return "\n".join(lines) + "\n\n李四\n"


def file_lixiang(flow, *, sender=LI, subject="立项-南方航空", body=None, to=(ZHAO,), cc=(SYSTEM,), **kw):
    return flow.send(sender=sender, to=to, cc=cc, subject=subject, body=form() if body is None else body, **kw)


def projects(flow) -> list[tuple]:
    return flow.db("select name, key, customer, sales, presales1, presales2, status, content, number from projects "
                   "order by id")


def tickets(flow, kind="project") -> list[tuple]:
    return flow.db("select number, state, project, owner from tickets where kind = :k order by id", k=kind)


def reminders(flow) -> list[tuple]:
    return flow.db("select kind, project, project_key, ordinal, to_addrs, engineer, outbox_message_id "
                   "from reminders order by id")


# ---------------------------------------------------------------------------
# the 立项单
# ---------------------------------------------------------------------------


def test_lixiang_creates_the_project_tells_the_presales_and_returns_the_number(flow):
    sent = file_lixiang(flow, message_id="<lx-1@client.example>")
    assert shape(sent) == [((LI,), ()), ((WANG, ZHANG), (LI,))]

    notice = one(sent, to=ZHANG)
    assert notice.subject == f"新项目立项：南方航空（第一售前 张三） [#{lx(1)}]"
    assert notice.reply_to == LI
    assert "李四提交了南方航空项目的《技术支持立项单》" in notice.text
    assert "客户：南方航空股份有限公司信息中心" in notice.text
    assert "支持内容要求：核心网络改造的方案交流与测试环境搭建，11月底前完成POC" in notice.text
    assert "请第一售前张三根据立项要求做好相应准备" in notice.text
    assert "“支持记录-南方航空-王五”" in notice.text

    ack = one(sent, to=LI)
    assert ack.subject == f"回执：立项单已记录 {lx(1)}（南方航空） [#{lx(1)}]"
    assert ack.in_reply_to == "<lx-1@client.example>"
    assert f"项目已建立，记录号 {lx(1)}" in ack.text
    assert "系统已通知第一售前张三和第二售前王五（抄送您）" in ack.text
    assert "未立项提醒" not in ack.text

    assert projects(flow) == [("南方航空", "南方航空", "南方航空股份有限公司信息中心", "李四", "张三", "王五", "active",
                               "核心网络改造的方案交流与测试环境搭建，11月底前完成POC", lx(1))]
    assert tickets(flow) == [(lx(1), "accepted", "南方航空", "张三")]
    # The 立项单 is archived as the mail: its Message-ID belongs to the record's thread.
    assert flow.db("select t.number from thread_links l join tickets t on t.id = l.ticket_id "
                   "where l.message_id = '<lx-1@client.example>'") == [(lx(1),)]
    assert flow.messages()[0][1:3] == ("processed", "lixiang")

    rows = {r["项目"]: r for r in flow.report("projects")}
    assert rows["南方航空"] == {"项目": "南方航空", "来源": "立项", "责任销售": "李四", "第一售前": "张三", "第二售前": "王五",
                              "客户": "南方航空股份有限公司信息中心", "状态": "active", "立项单号": lx(1),
                              "未立项提醒次数": "0", "已通知可停止支持": ""}
    assert (rows["华夏银行"]["来源"], rows["东方电网"]["来源"]) == ("通讯录", "通讯录")
    assert [(t["编号"], t["类型"], t["状态"]) for t in flow.report("tickets")] == [(lx(1), "立项单", "已立项")]
    assert flow.report("tickets", "--open") == []


def test_a_report_on_a_project_filed_in_the_same_pass_is_accepted(flow):
    # The 立项单 and a report on the new project arrive together: one `once` pass.
    sent = flow.deliver(
        flow.mail(sender=LI, sender_name="李四", to=(ZHAO,), cc=(SYSTEM,), subject="立项-南方航空", body=form()),
        flow.mail(sender=ZHANG, sender_name="张三", to=(LI,), cc=(SYSTEM,), subject="客户沟通-南方航空项目-张三",
                  body=report_body(project="南方航空", issue="演示核心交换机双机热备切换")))
    assert shape(sent) == [((LI,), ()), ((WANG, ZHANG), (LI,)), ((ZHANG,), ())]
    ack = one(sent, to=ZHANG, subject="回执")
    assert ack.subject == f"回执：汇报邮件已记录 {hb(1)}（南方航空） [#{hb(1)}]"
    assert "记入张三的《项目跟踪表》" in ack.text
    assert [(r["第一售前"], r["项目"], r["汇报人"], r["沟通的具体问题"]) for r in flow.tracking()] == [
        ("张三", "南方航空", "张三", "演示核心交换机双机热备切换")]
    assert reminders(flow) == []

    # A later pass (a fresh process) knows the project from the store; a report by the
    # 第二售前 notifies the 第一售前 as for a directory project.
    sent = flow.send(sender=WANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-南方航空-王五",
                     body=report_body(project="南方航空", issue="更换南航测试环境防火墙策略"))
    assert shape(sent) == [((WANG,), ()), ((ZHANG,), (ZHAO,))]
    assert [r["汇报人"] for r in flow.tracking("--presales", "张三")] == ["张三", "王五"]


def test_a_second_lixiang_with_the_same_normalised_name_updates_the_project(flow):
    file_lixiang(flow)
    sent = file_lixiang(flow, subject="立项－南方航空项目",
                        body=form(project="南方航空 项目", p2="赵六", content="核心网络改造POC，追加无线网络优化方案"))
    # The new 第二售前 赵六 and the 第一售前 are told; 王五, dropped, is copied.
    assert shape(sent) == [((LI,), ()), ((ZHANG, ZHAO), (LI, WANG))]
    notice = one(sent, to=ZHAO)
    assert notice.subject == f"立项单更新：南方航空（第一售前 张三） [#{lx(2)}]"
    assert "第二售前：王五 → 赵六" in notice.text
    assert "王五：按本次更新，您不再是本项目的售前。" in notice.text
    ack = one(sent, to=LI)
    assert ack.subject == f"回执：立项单已更新 {lx(2)}（南方航空） [#{lx(2)}]"
    assert f"本次是对立项单 {lx(1)} 的更新" in ack.text
    assert "支持内容要求：核心网络改造的方案交流与测试环境搭建，11月底前完成POC → 核心网络改造POC，追加无线网络优化方案" in ack.text
    assert projects(flow) == [("南方航空", "南方航空", "南方航空股份有限公司信息中心", "李四", "张三", "赵六", "active",
                               "核心网络改造POC，追加无线网络优化方案", lx(2))]
    assert tickets(flow) == [(lx(1), "accepted", "南方航空", "张三"), (lx(2), "accepted", "南方航空", "张三")]


def test_subject_variants(flow):
    # Full-width dash, the word 项目, the sales' own name at the end, 立项单 and 技术支持立项.
    sent = file_lixiang(flow, subject="回复：立项单－南方航空项目-李四")
    assert one(sent, to=LI).subject == f"回执：立项单已记录 {lx(1)}（南方航空） [#{lx(1)}]"
    sent = file_lixiang(flow, subject="技术支持立项：西部物流", body=form(project="西部物流项目"))
    assert one(sent, to=LI).subject == f"回执：立项单已记录 {lx(2)}（西部物流） [#{lx(2)}]"
    # The subject by alias, the body by name: one project (the directory's).
    sent = file_lixiang(flow, subject="立项-华夏", body=form(project="华夏银行"))
    assert sent[0].subject == f"立项单已存档，项目以通讯录为准：华夏银行 [#{lx(3)}]"
    assert [p[0] for p in projects(flow)] == ["南方航空", "西部物流"]
    assert flow.send(sender=LI, to=(ZHAO,), cc=(SYSTEM,), subject="立项讨论会纪要", body=form()) == []


def test_no_second_presales(flow):
    sent = file_lixiang(flow, body=form(p2="无"))
    assert shape(sent) == [((LI,), ()), ((ZHANG,), (LI,))]
    assert "第二售前：无" in one(sent, to=ZHANG).text
    assert "支持记录" not in one(sent, to=ZHANG).text
    assert projects(flow)[0][4:6] == ("张三", "")
    sent = file_lixiang(flow, subject="立项-西部物流", body=form(project="西部物流", p2=None))
    assert shape(sent) == [((LI,), ()), ((ZHANG,), (LI,))]
    assert [p[0] for p in projects(flow)] == ["南方航空", "西部物流"]


@pytest.mark.parametrize("body, problem", [
    (form(p1="张3"), "“第一售前”填写的“张3”不在通讯录中：请写通讯录中售前的姓名（张三、王五、赵六）"),
    (form(p1="周七"), "“第一售前”填写的周七在通讯录中不是售前"),
    (form(p2="李四"), "“第二售前”填写的李四在通讯录中不是售前"),
    (form(p2="钱五"), "“第二售前”填写的“钱五”不在通讯录中"),
    (form(p2="张三"), "“第二售前”与“第一售前”是同一个人（张三）"),
    (form(content="技术支持"), "“支持内容要求”写得太笼统（“技术支持”）"),
    ("项目名称：南方航空\n第一售前：张三\n支持内容要求：核心网络改造的方案交流与测试环境搭建\n", "缺少“客户”：请写一行“客户：……”。"),
    (form(project="南方电网"), "标题中的项目是“南方航空”，而正文“项目名称”写的是“南方电网”"),
])
def test_invalid_lixiang_is_rejected_with_each_problem_and_a_fill_in_body(flow, body, problem):
    sent = file_lixiang(flow, body=body)
    assert shape(sent) == [((LI,), ())]
    rej = sent[0]
    assert rej.subject == f"立项单未通过检查，请修改后重发：立项-南方航空 [#{lx(1)}]"
    assert problem in rej.text
    assert "项目名称：" in rej.text and "第一售前：" in rej.text and "支持内容要求：" in rej.text
    assert f"本次退回已登记，记录号 {lx(1)}" in rej.text
    assert projects(flow) == []
    assert tickets(flow)[0][:2] == (lx(1), "rejected")


def test_fill_in_body_keeps_what_was_right(flow):
    rej = file_lixiang(flow, body=form(p1="张3", p2="张三", content="支持"))[0]
    assert ("项目名称：南方航空\n客户：南方航空股份有限公司信息中心\n第一售前：\n第二售前：张三\n支持内容要求：\n"
            in rej.text)


def test_corrected_lixiang_sent_as_an_answer_to_the_rejection(flow):
    rej = file_lixiang(flow, body=form(p1="张3"))[0]
    sent = flow.reply_to(rej, sender=LI, body=form())
    assert shape(sent) == [((LI,), ()), ((WANG, ZHANG), (LI,))]
    assert one(sent, to=LI).subject == f"回执：立项单已记录 {lx(2)}（南方航空） [#{lx(2)}]"
    assert projects(flow)[0][8] == lx(2)
    assert tickets(flow) == [(lx(1), "rejected", "南方航空", ""), (lx(2), "accepted", "南方航空", "张三")]
    assert flow.ticket(lx(1))["data"]["resubmitted_as"] == lx(2)
    # A presales answering the notice only adds to the thread.
    notice = one(sent, to=ZHANG)
    assert flow.reply_to(notice, sender=ZHANG, body="收到，下周一去现场。", to=(LI,), cc=(SYSTEM,)) == []
    assert [n["from"] for n in flow.ticket(lx(2))["data"]["thread"]] == ["张三"]
    assert len(projects(flow)) == 1


def test_only_sales_file_a_lixiang(flow):
    sent = file_lixiang(flow, sender=ZHANG, to=(LI,))
    assert shape(sent) == [((ZHANG,), ())]
    assert sent[0].subject == f"立项单未受理：立项-南方航空 [#{lx(1)}]"
    assert "《技术支持立项单》由项目的责任销售提交（制度第九、十条），而通讯录中您不是销售" in sent[0].text
    assert "本邮件已登记为“未受理”" in sent[0].text
    assert projects(flow) == []
    assert tickets(flow) == [(lx(1), "not_allowed", "南方航空", "")]


def test_another_sales_cannot_change_a_project_filed_by_its_sales(flow):
    file_lixiang(flow)
    sent = file_lixiang(flow, sender=ZHOU, body=form(p1="王五", p2="张三"))
    assert shape(sent) == [((ZHOU,), ())]
    assert sent[0].subject == f"立项单未受理：立项-南方航空 [#{lx(2)}]"
    assert f"项目“南方航空”已由李四立项（立项单 {lx(1)}），只有该项目的责任销售可以修改立项单" in sent[0].text
    assert projects(flow)[0][3:6] == ("李四", "张三", "王五")
    assert tickets(flow)[1][:2] == (lx(2), "not_allowed")


def test_the_directory_file_wins_over_a_lixiang(flow):
    # 华夏银行 is in directory.toml (李四, 张三, 王五); the alias 华夏 finds it too.
    sent = file_lixiang(flow, sender=ZHOU, subject="立项-华夏",
                        body=form(project="华夏", customer="华夏银行总行", p1="赵六", p2="王五"))
    assert shape(sent) == [((ZHOU,), ())]  # no notice to anyone
    r = sent[0]
    assert r.subject == f"立项单已存档，项目以通讯录为准：华夏银行 [#{lx(1)}]"
    assert f"已存档，记录号 {lx(1)}" in r.text
    assert "系统以通讯录为准，本立项单不改变项目信息" in r.text
    assert "  - 责任销售：通讯录为“李四”，立项单为“周七”" in r.text
    assert "  - 客户：通讯录为“（空）”，立项单为“华夏银行总行”" in r.text
    assert "  - 第一售前：通讯录为“张三”，立项单为“赵六”" in r.text
    assert "第二售前：通讯录为" not in r.text
    assert "请联系管理员修改通讯录（directory.toml）" in r.text
    assert projects(flow) == []
    assert tickets(flow) == [(lx(1), "directory", "华夏银行", "张三")]
    assert flow.ticket(lx(1))["data"]["differences"] == ["责任销售", "客户", "第一售前"]
    # Reports still go to the directory's 第一售前.
    flow.send(sender=ZHAO, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行-赵六", body=report_body())
    assert flow.tracking()[0]["第一售前"] == "张三"
    assert [(p["项目"], p["来源"]) for p in flow.report("projects")] == [("华夏银行", "通讯录"), ("东方电网", "通讯录")]


def test_a_lixiang_matching_the_directory_changes_nothing(tmp_path, imap_server, smtp_server, capsys, db_url):
    directory = DIRECTORY.replace('name = "东方电网"\n', 'name = "东方电网"\ncustomer = "国网东方电力调度中心"\n')
    flow = Flow(tmp_path, imap_server, smtp_server, capsys, directory=directory, db_url=db_url)
    sent = file_lixiang(flow, subject="立项-东方电网", sender=ZHOU,
                        body=form(project="东方电网", customer="国网东方电力调度中心", p1="王五", p2="张三"))
    assert shape(sent) == [((ZHOU,), ())]
    assert sent[0].subject == f"立项单已存档，项目以通讯录为准：东方电网 [#{lx(1)}]"
    assert "立项单与通讯录中的登记一致，无需处理。" in sent[0].text and "不一致" not in sent[0].text
    assert tickets(flow) == [(lx(1), "directory", "东方电网", "王五")]
    assert projects(flow) == []


def test_the_same_lixiang_seen_twice_is_recorded_once(flow):
    raw = flow.mail(sender=LI, sender_name="李四", to=(ZHAO,), cc=(SYSTEM,), subject="立项-南方航空", body=form(),
                    message_id="<lx-dup@client.example>")
    assert len(flow.deliver(raw)) == 2
    assert flow.deliver(b"X-Journal: copy\r\n" + raw) == []
    assert len(tickets(flow)) == 1 and len(projects(flow)) == 1


# ---------------------------------------------------------------------------
# 未立项: reminders to sales, and the stop notice at the threshold (art. 11)
# ---------------------------------------------------------------------------


def report_on(flow, project="南方航空", *, sender=ZHANG, to=(LI,), cc=(SYSTEM,), issue="调试核心交换机的远程管理地址"):
    name = {ZHANG: "张三", WANG: "王五"}[sender]
    return flow.send(sender=sender, to=to, cc=cc, subject=f"客户沟通-{project}-{name}",
                     body=report_body(project=project, issue=issue))


def test_reports_on_an_unregistered_project_remind_sales_and_the_stop_notice_goes_once(flow):
    sent = report_on(flow)
    assert shape(sent) == [((LI,), (ZHANG,)), ((ZHANG,), ())]
    assert one(sent, to=ZHANG).subject == f"项目不存在，汇报邮件未记录：客户沟通-南方航空-张三 [#{hb(1)}]"
    rem = one(sent, to=LI)
    assert rem.subject == f"请提交技术支持立项单：南方航空（第1次提醒） [#{hb(1)}]"
    assert rem.reply_to == ZHANG
    assert f"张三就项目“南方航空”发送了客户沟通汇报邮件（记录号 {hb(1)}），但这个项目还没有立项" in rem.text
    assert "发一封标题为“立项-南方航空”的邮件" in rem.text
    assert "项目名称：南方航空\n客户：\n第一售前：\n第二售前：\n支持内容要求：" in rem.text
    assert "提醒 3 次后仍未立项的，技术支持人员可以停止对此项目的支持" in rem.text
    assert reminders(flow) == [("lixiang", "南方航空", "南方航空", 1, [LI], "张三", rem.message_id)]
    assert flow.ticket(hb(1))["state"] == "unregistered"

    # The second report (another spelling of the name) is the second reminder.
    sent = report_on(flow, "南方航空项目", issue="排查机场专线丢包问题")
    assert shape(sent) == [((LI,), (ZHANG,)), ((ZHANG,), ())]
    assert "（第2次提醒）" in one(sent, to=LI).subject

    # The third, by another engineer: reminder 3 and, once, the stop notice to both
    # engineers, CC the 售前经理.
    sent = report_on(flow, sender=WANG, issue="配置南航测试环境VPN")
    assert shape(sent) == [((LI,), (WANG,)), ((WANG,), ()), ((WANG, ZHANG), (ZHAO,))]
    rem3 = one(sent, to=LI)
    assert "（第3次提醒）" in rem3.subject and "提醒已达 3 次" in rem3.text
    stop = one(sent, to=ZHANG)
    assert stop.subject == f"项目“南方航空”仍未立项：已提醒3次，可以停止支持 [#{hb(3)}]"
    assert "系统已代技术支持人员向销售李四发出 3 次立项提醒" in stop.text
    assert "  1. " in stop.text and "提醒李四（张三的汇报）" in stop.text and "提醒李四（王五的汇报）" in stop.text
    assert "技术支持人员可以停止对此项目的支持，项目出现延误等情况由销售自己承担责任" in stop.text

    # The fourth: a reminder, no second stop notice.
    sent = report_on(flow, issue="协助客户确认割接窗口和回退方案")
    assert shape(sent) == [((LI,), (ZHANG,)), ((ZHANG,), ())]
    assert "（第4次提醒）" in one(sent, to=LI).subject

    rows = reminders(flow)
    assert [(r[0], r[3], r[5]) for r in rows] == [("lixiang", 1, "张三"), ("lixiang", 2, "张三"), ("lixiang", 3, "王五"),
                                                  ("lixiang_stop", 3, "王五"), ("lixiang", 4, "张三")]
    assert {r[2] for r in rows} == {"南方航空"}
    assert rows[3][4] == [ZHANG, WANG, ZHAO]
    # Each reminder is kept with the Message-ID of the mail that went out.
    assert rows[2][6] == rem3.message_id and rows[3][6] == stop.message_id
    assert {r[6] for r in rows} == {m for (m,) in flow.db("select message_id from outbox where template like 'lixiang_%'")}

    row = {r["项目"]: r for r in flow.report("projects")}["南方航空"]
    assert (row["来源"], row["未立项提醒次数"], row["已通知可停止支持"]) == ("未立项", "4", "是")
    ev = flow.report("reminders")
    assert [(e["类型"], e["第几次"], e["技服人员"], e["发送状态"]) for e in ev] == [
        ("立项提醒（发给销售）", "1", "张三", "sent"), ("立项提醒（发给销售）", "2", "张三", "sent"),
        ("立项提醒（发给销售）", "3", "王五", "sent"), ("可停止支持通知", "3", "王五", "sent"),
        ("立项提醒（发给销售）", "4", "张三", "sent")]
    assert flow.report("reports") == [
        {"汇报人": "张三", "已记录": "0", "退回": "0", "未立项": "3", "未计入": "0", "待确认项目": "0", "合计": "3"},
        {"汇报人": "王五", "已记录": "0", "退回": "0", "未立项": "1", "未计入": "0", "待确认项目": "0", "合计": "1"}]

    # Sales finally files the 立项单: the receipt mentions the reminders, reports count again.
    sent = file_lixiang(flow)
    assert "此前系统曾就该项目向销售发出 4 次未立项提醒" in one(sent, to=LI).text
    sent = report_on(flow, issue="完成核心交换机割接并验证业务")
    assert shape(sent) == [((ZHANG,), ())]
    assert "回执：汇报邮件已记录" in sent[0].subject
    row = {r["项目"]: r for r in flow.report("projects")}["南方航空"]
    assert (row["来源"], row["未立项提醒次数"], row["已通知可停止支持"]) == ("立项", "4", "是")


def test_threshold_is_a_setting(tmp_path, imap_server, smtp_server, capsys, db_url):
    flow = Flow(tmp_path, imap_server, smtp_server, capsys, db_url=db_url,
                extra="[workflows.lixiang]\nreminders_before_stop = 1\n")
    sent = report_on(flow)
    assert shape(sent) == [((LI,), (ZHANG,)), ((ZHANG,), ()), ((ZHANG,), (ZHAO,))]
    assert "已提醒1次，可以停止支持" in one(sent, to=ZHANG, subject="仍未立项").subject
    sent = report_on(flow, issue="排查机场专线丢包问题")
    assert shape(sent) == [((LI,), (ZHANG,)), ((ZHANG,), ())]
    assert [(r[0], r[3]) for r in reminders(flow)] == [("lixiang", 1), ("lixiang_stop", 1), ("lixiang", 2)]


def test_no_reminder_without_a_sales_among_the_recipients(flow):
    # Sent to the 售前经理 and a 技术支持部经理 only: nobody to remind.
    sent = report_on(flow, to=(ZHAO,), cc=(SYSTEM, QIAN_))
    assert shape(sent) == [((ZHANG,), ())]
    assert reminders(flow) == []
    # Several sales in To/CC are all reminded, in one mail.
    sent = report_on(flow, to=(LI, ZHOU), issue="排查机场专线丢包问题")
    assert shape(sent) == [((LI, ZHOU), (ZHANG,)), ((ZHANG,), ())]
    assert "李四、周七，您好" in one(sent, to=LI).text
    assert [(r[3], sorted(r[4])) for r in reminders(flow)] == [(1, [LI, ZHOU])]


def test_a_rejected_report_on_an_unknown_project_still_reminds(flow):
    sent = flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-南方航空-张三",
                     body="沟通结果：成功\n沟通的具体问题：解决了技术问题\n")
    assert shape(sent) == [((LI,), (ZHANG,)), ((ZHANG,), ())]
    assert "“沟通的具体问题”写得太笼统" in one(sent, to=ZHANG).text
    assert [r[3] for r in reminders(flow)] == [1]


def test_check_validates_the_lixiang_and_support_record_settings(tmp_path, capsys):
    from support import write_config
    from support import run as run_cli
    cfg = write_config(tmp_path, extra="[workflows.lixiang]\nreminders_before_stop = 0\nremind_sale = true\n\n"
                                       "[workflows.support_record]\nforward_missing_cc = \"yes\"\n")
    assert run_cli(cfg, "check") == 1
    err = capsys.readouterr().err
    assert "workflows.lixiang.reminders_before_stop: 必须是 ≥ 1 的整数（次），现为 0" in err
    assert "workflows.lixiang.remind_sale: 未知的键（拼写错误？）：是不是 remind_sales？" in err
    assert "workflows.support_record.forward_missing_cc: 必须是 true 或 false，现为 \"yes\"" in err


def test_a_long_running_process_follows_lixiang_updates_across_batches(tmp_path, db_url):
    """`serve` keeps one Runtime: each batch must see the store's latest 立项, and a
    batch that rolls back must leave nothing behind in the running directory."""
    from processor.config import load_config
    from processor.pipeline import Incoming, Pipeline, Runtime
    from support import make_mail, write_config

    rt = Runtime(load_config(write_config(tmp_path, db_url=db_url)))
    pipe = Pipeline(rt)

    def mail(sender, name, subject, text):
        return Incoming(make_mail(sender=sender, sender_name=name, to=(ZHAO,), cc=(SYSTEM,), subject=subject, body=text))

    pipe.process([mail(LI, "李四", "立项-南方航空", form())])
    pipe.process([mail(LI, "李四", "立项-南方航空", form(p1="赵六", p2="张三"))])
    pipe.process([mail(WANG, "王五", "客户沟通-南方航空-王五", report_body(project="南方航空", issue="更换南航测试环境防火墙策略"))])
    assert flow_rows(tmp_path, db_url) == [("赵六", "南方航空", "王五")]
    assert [p.name for p in rt.file_directory.projects] == ["华夏银行", "东方电网"]

    # A batch that fails after a 立项 was accepted: the project must not survive the rollback.
    from processor.workflows import ACTIONS
    rule = rt.rules.by_name["lixiang"]
    original = rule.action
    rule.action, ACTIONS["test_lixiang_then_boom"] = "test_lixiang_then_boom", _lixiang_then_boom
    try:
        pipe.process([mail(LI, "李四", "立项-西部物流", form(project="西部物流"))])
    finally:
        rule.action = original
        ACTIONS.pop("test_lixiang_then_boom", None)
    assert rt.directory.project("西部物流") is None
    assert [p.name for p in rt.file_directory.projects] == ["华夏银行", "东方电网"]


def _lixiang_then_boom(ctx):
    from processor.workflows import ACTIONS
    ACTIONS["record_lixiang"](ctx)
    assert ctx.directory.project("西部物流") is not None  # seen at once, in the same batch
    raise RuntimeError("模拟的处理错误")


def flow_rows(tmp_path, db_url) -> list[tuple]:
    from sqlalchemy import create_engine, text
    eng = create_engine(db_url)
    try:
        with eng.connect() as c:
            return [tuple(r) for r in c.execute(text("select owner, project, reporter from tracking_rows order by id"))]
    finally:
        eng.dispose()
