"""第二售前支持记录 支持记录-<项目>-<姓名> (art. 6, 16), end to end through a
real Dovecot mailbox and a real SMTP server."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from conventions.helpers import LI, SYSTEM, WANG, ZHANG, ZHAO, ZHOU, Flow, one, shape
from processor.rules.engine import load_rule
from support import ROOT

YEAR = datetime.now(timezone.utc).year
PREFIX = load_rule(ROOT / "rules" / "support_record.toml")[0].lifecycles[0].prefix  # its lifecycle's
NOV5 = datetime(2026, 11, 5, 8, 30, tzinfo=timezone.utc)  # 16:30 in Asia/Shanghai


def zc(n: int) -> str:
    return f"{PREFIX}{YEAR}-{n:04d}"


@pytest.fixture
def flow(tmp_path, imap_server, smtp_server, capsys, db_url):
    """Each test runs on SQLite and on PostgreSQL."""
    return Flow(tmp_path, imap_server, smtp_server, capsys, db_url=db_url)


def body(*, date="2026年11月5日", content="核心交换机主控板故障，远程切换到备用主控并恢复业务", method="远程", extra="") -> str:
    lines = []
    if date is not None:
        lines.append(f"支持日期：{date}")
    if method:
        lines.append(f"支持方式：{method}")
    if content is not None:
        lines.append(f"支持内容：{content}")
    return "\n".join(lines) + ("\n" + extra if extra else "") + "\n\n王五\n"


def record(flow, *, sender=WANG, project="华夏银行", name="王五", to=(ZHANG,), cc=(ZHAO, SYSTEM), text=None, **kw):
    kw.setdefault("date", NOV5)
    return flow.send(sender=sender, to=to, cc=cc, subject=f"支持记录-{project}-{name}",
                     body=body() if text is None else text, **kw)


def rows(flow) -> list[tuple]:
    return flow.db("select owner, project, reporter, sender, method, result, issue, remaining, source_message_id "
                   "from tracking_rows order by id")


def tickets(flow) -> list[tuple]:
    return flow.db("select number, state, project, owner from tickets where kind = 'support_record' order by id")


def test_record_from_the_second_presales_goes_into_the_first_presales_table(flow):
    sent = record(flow, message_id="<zc-1@client.example>")
    # The 售前经理 was in CC: no forward; the 第一售前 is told (CC 售前经理), the sender gets a 回执.
    assert shape(sent) == [((WANG,), ()), ((ZHANG,), (ZHAO,))]
    notice = one(sent, to=ZHANG)
    assert notice.subject == f"王五（第二售前）的支持记录：华夏银行，已记入您的项目跟踪表 [#{zc(1)}]"
    assert notice.reply_to == WANG
    assert "支持日期：2026-11-05" in notice.text
    assert "支持内容：核心交换机主控板故障，远程切换到备用主控并恢复业务" in notice.text
    assert "标记为“第二售前支持记录（远程）”" in notice.text
    assert "之后此项目的协调仍由您负责" in notice.text
    ack = one(sent, to=WANG)
    assert ack.subject == f"回执：支持记录已记入张三的项目跟踪表 {zc(1)}（华夏银行） [#{zc(1)}]"
    assert ack.in_reply_to == "<zc-1@client.example>"
    assert f"记录号 {zc(1)}" in ack.text and "转发" not in ack.text

    assert rows(flow) == [("张三", "华夏银行", "王五", "王五", "第二售前支持记录（远程）", "",
                           "核心交换机主控板故障，远程切换到备用主控并恢复业务", "", "<zc-1@client.example>")]
    assert tickets(flow) == [(zc(1), "accepted", "华夏银行", "张三")]
    t = flow.tracking("--presales", "张三")
    assert [(r["日期"], r["汇报人"], r["沟通方式"], r["记录号"]) for r in t] == [
        ("2026-11-05 16:30", "王五", "第二售前支持记录（远程）", zc(1))]
    assert flow.tracking("--presales", "王五") == []
    assert [(r["编号"], r["类型"], r["状态"]) for r in flow.report("tickets")] == [(zc(1), "第二售前支持记录", "已记录")]


def test_an_earlier_support_date_and_the_optional_fields(flow):
    sent = record(flow, text=body(date="11月3日", method="", extra="沟通人：刘工（机房）\n处理结果：问题遗留\n"
                                                            "遗留的问题描述：备用主控固件版本偏低，需择机升级"))
    assert shape(sent) == [((WANG,), ()), ((ZHANG,), (ZHAO,))]
    assert "处理结果：问题遗留" in one(sent, to=ZHANG).text
    assert "遗留的问题描述：备用主控固件版本偏低，需择机升级" in one(sent, to=ZHANG).text
    assert rows(flow)[0][4:8] == ("第二售前支持记录", "问题遗留", "核心交换机主控板故障，远程切换到备用主控并恢复业务",
                                  "备用主控固件版本偏低，需择机升级")
    r = flow.tracking()[0]
    assert (r["日期"], r["沟通人"], r["沟通结果"]) == ("2026-11-03 00:00", "刘工（机房）", "问题遗留")


def test_missing_cc_to_the_manager_is_repaired(flow):
    sent = record(flow, cc=(SYSTEM,))
    assert shape(sent) == [((WANG,), ()), ((ZHANG,), (ZHAO,)), ((ZHAO,), ())]
    fwd = one(sent, to=ZHAO)
    assert fwd.subject == f"转发支持记录：支持记录-华夏银行-王五 [#{zc(1)}]"
    assert fwd.reply_to == WANG
    assert fwd.attachments == ["original.eml"]
    assert "没有按制度第六条抄送售前经理，系统现将其转发给您" in fwd.text
    assert "支持内容：核心交换机主控板故障" in fwd.text
    ack = one(sent, to=WANG)
    assert "这封邮件没有抄送售前经理，系统已把它转发给赵六" in ack.text
    assert len(rows(flow)) == 1
    # The 售前经理 in To (not CC) counts as addressed.
    sent = record(flow, to=(ZHANG, ZHAO), cc=(SYSTEM,), text=body(content="更换华夏银行分行防火墙电源模块"))
    assert shape(sent) == [((WANG,), ()), ((ZHANG,), (ZHAO,))]


@pytest.mark.parametrize("sender, name, text", [
    (ZHANG, "张三", "您是华夏银行项目的第一售前。支持记录邮件由第二售前发给第一售前"),
    (ZHAO, "赵六", "华夏银行项目的第二售前是王五，支持记录邮件只能由第二售前发给第一售前"),
    (LI, "李四", "华夏银行项目的第二售前是王五"),
])
def test_only_the_second_presales_may_send_a_record(flow, sender, name, text):
    sent = record(flow, sender=sender, name=name, cc=(SYSTEM,))
    assert shape(sent) == [((sender,), ())]  # no forward, no notice
    assert sent[0].subject == f"支持记录未记录：支持记录-华夏银行-{name} [#{zc(1)}]"
    assert text in sent[0].text
    assert "本邮件已登记为“未计入”" in sent[0].text
    assert rows(flow) == []
    assert tickets(flow) == [(zc(1), "not_allowed", "华夏银行", "张三")]


def test_the_second_presales_of_another_project_is_refused(flow):
    # 王五 is 第二售前 of 华夏银行 but 第一售前 of 东方电网.
    sent = record(flow, project="东方电网", to=(ZHANG,))
    assert shape(sent) == [((WANG,), ())]
    assert "您是东方电网项目的第一售前" in sent[0].text
    assert rows(flow) == []


@pytest.mark.parametrize("text, problem", [
    (body(date=None), "缺少“支持日期”：请写一行“支持日期：……”。"),
    (body(content=None), "缺少“支持内容”：请写一行“支持内容：……”。"),
    (body(content="已处理"), "“支持内容”写得太笼统（“已处理”）"),
    (body(date="上周"), "“支持日期”无法识别（“上周”）：请写成 2026-11-05 这样的日期。"),
    (body(date="2026-11-20"), "“支持日期”是 2026-11-20，晚于发信日期 2026-11-05"),
    (body(extra="处理结果：还行"), "“处理结果”只能填写“成功”或“问题遗留”，而不是“还行”。"),
])
def test_invalid_record_is_rejected_with_a_fill_in_body(flow, text, problem):
    sent = record(flow, text=text)
    assert shape(sent) == [((WANG,), ())]
    rej = sent[0]
    assert rej.subject == f"支持记录未通过检查，请修改后重发：支持记录-华夏银行-王五 [#{zc(1)}]"
    assert problem in rej.text
    assert "支持日期：" in rej.text and "支持内容：" in rej.text
    assert rows(flow) == []
    assert tickets(flow) == [(zc(1), "rejected", "华夏银行", "张三")]


def test_corrected_record_sent_as_an_answer_to_the_rejection(flow):
    rej = record(flow, text=body(content="已处理"))[0]
    assert "支持日期：2026年11月5日\n支持内容：\n支持方式：远程\n" in rej.text
    sent = flow.reply_to(rej, sender=WANG, to=(ZHANG,), cc=(ZHAO, SYSTEM), body=body(date="2026-11-05"))
    assert shape(sent) == [((WANG,), ()), ((ZHANG,), (ZHAO,))]
    assert one(sent, to=WANG).subject.startswith(f"回执：支持记录已记入张三的项目跟踪表 {zc(2)}")
    assert tickets(flow) == [(zc(1), "rejected", "华夏银行", "张三"), (zc(2), "accepted", "华夏银行", "张三")]
    assert flow.ticket(zc(1))["data"]["resubmitted_as"] == zc(2)
    assert len(rows(flow)) == 1
    # The 第一售前 answering the notice only adds to the thread.
    assert flow.reply_to(one(sent, to=ZHANG), sender=ZHANG, body="收到，谢谢。", to=(WANG,), cc=(SYSTEM,)) == []
    assert len(rows(flow)) == 1 and len(tickets(flow)) == 2


def test_unknown_project_is_not_recorded_and_sends_no_lixiang_reminder(flow):
    sent = record(flow, project="南方航空", to=(ZHANG, LI))
    assert shape(sent) == [((WANG,), ())]
    assert sent[0].subject == f"项目不存在，支持记录未记录：支持记录-南方航空-王五 [#{zc(1)}]"
    assert rows(flow) == [] and flow.db("select count(*) from reminders") == [(0,)]
    assert tickets(flow) == [(zc(1), "unregistered", "南方航空", "")]


def test_mistyped_project_is_asked_about_and_recorded_on_yes(flow):
    sent = record(flow, project="华夏银", to=(ZHANG, LI))
    assert shape(sent) == [((WANG,), ())]
    q = sent[0]
    assert q.subject == f"您是不是指“华夏银行”？支持记录暂未记录：支持记录-华夏银-王五 [#{zc(1)}]"
    assert rows(flow) == [] and flow.db("select count(*) from reminders") == [(0,)]
    assert tickets(flow) == [(zc(1), "unconfirmed", "华夏银", "")]
    sent = flow.reply_to(q, sender=WANG, body="是")
    assert ((ZHANG,), (ZHAO,)) in shape(sent)
    assert one(sent, to=ZHANG).subject == f"王五（第二售前）的支持记录：华夏银行，已记入您的项目跟踪表 [#{zc(2)}]"
    [row] = rows(flow)
    assert row[:4] == ("张三", "华夏银行", "王五", "王五")
    assert tickets(flow)[1][:3] == (zc(2), "accepted", "华夏银行")


def test_name_in_the_subject_differs_from_the_sender(flow):
    sent = record(flow, name="张三")
    assert shape(sent) == [((WANG,), ()), ((ZHANG,), (ZHAO,))]
    assert "标题中的名字是“张三”，而邮件由王五发出；本次按发件人王五记录" in one(sent, to=WANG).text
    assert rows(flow)[0][2] == "王五"


def test_record_on_a_project_filed_by_lixiang_in_the_same_pass(flow):
    lixiang = ("项目名称：南方航空\n客户：南方航空信息中心\n第一售前：张三\n第二售前：王五\n"
               "支持内容要求：核心网络改造的方案交流与测试环境搭建\n")
    sent = flow.deliver(
        flow.mail(sender=LI, sender_name="李四", to=(ZHAO,), cc=(SYSTEM,), subject="立项-南方航空", body=lixiang),
        flow.mail(sender=WANG, sender_name="王五", to=(ZHANG,), cc=(ZHAO, SYSTEM), subject="支持记录-南方航空-王五",
                  body=body(date="今天", content="南航测试环境核心交换机配置恢复")))
    assert shape(sent) == [((LI,), ()), ((WANG,), ()), ((WANG, ZHANG), (LI,)), ((ZHANG,), (ZHAO,))]
    assert rows(flow)[0][:5] == ("张三", "南方航空", "王五", "王五", "第二售前支持记录（远程）")
    # A project filed without a 第二售前 accepts no support record.
    flow.send(sender=ZHOU, to=(ZHAO,), cc=(SYSTEM,), subject="立项-西部物流",
              body=lixiang.replace("南方航空", "西部物流").replace("第二售前：王五", "第二售前：无"))
    sent = record(flow, project="西部物流")
    assert shape(sent) == [((WANG,), ())]
    assert "西部物流项目没有登记第二售前" in sent[0].text
    assert len(rows(flow)) == 1
