"""项目实施工作单 ``项目实施工作单-<项目>-<简述>`` (art. 35-36), end to end
against Dovecot and aiosmtpd: the sales part by the 责任销售, routing
repaired (To 责任售前, CC 销售负责人 and 售前负责人), the technical part by the
责任售前's reply, the state naming the missing part."""
from __future__ import annotations

from datetime import datetime

import pytest

from conventions.helpers import LI, SYSTEM, WANG, ZHANG, ZHAO, ZHOU, Flow, one, shape
from support import DIRECTORY
from workflows4.test_document import build, outlook_reply, qq_reply

WU = "wu@company.example"  # 吴总 销售负责人
SS1 = f"SS{datetime.now().year}-0001"
SUBJECT = "项目实施工作单-华夏银行-核心交换机割接"
SALES_PART = "客户名称：华夏银行股份有限公司\n实施内容：核心交换机割接到新机房\n实施地点：北京市西城区金融街\n计划时间：12月10日晚\n时间要求：12月8日前\n"


@pytest.fixture
def flow(tmp_path, imap_server, smtp_server, capsys):
    directory = DIRECTORY + '\n[[people]]\nname = "吴总"\nemails = ["wu@company.example"]\nroles = ["销售负责人"]\n'
    return Flow(tmp_path, imap_server, smtp_server, capsys, directory=directory)


def record(flow: Flow) -> dict:
    return flow.ticket(SS1)


def test_an_order_missing_its_technical_part_until_the_engineer_completes_it(flow):
    # 李四 forgot the heads: the system sends them the order and says so.
    sent = flow.deliver(build(sender=LI, subject=SUBJECT, body=SALES_PART, to=(ZHANG,), cc=(SYSTEM,)))
    assert shape(sent) == [((LI,), ()), ((ZHANG,), (WU, ZHAO))]
    ack = one(sent, to=LI)
    assert ack.subject == f"回执：项目实施工作单已登记 {SS1}（华夏银行），等待张三填写技术部分 [#{SS1}]"
    assert "原邮件没有发给 吴总、赵六" in ack.text
    request = one(sent, to=ZHANG)
    assert "当前状态：待填写技术部分" in request.text and "实施地点：北京市西城区金融街" in request.text
    assert "实施方案：\n" in request.text and "实施环境、产品版本 必填" in request.text
    rec = record(flow)
    assert (rec["kind"], rec["state"], rec["owner"]) == ("implementation", "tech_missing", "张三")
    clocks = "select c.name, c.owner, c.status from sla_clocks c join tickets t on t.id = c.ticket_id where t.number = :n"
    # The engineer's step, and the sales' 时间要求 as his deadline.
    assert flow.db(clocks, n=SS1) == [("step:tech_missing", "张三", "running"), ("deadline", "张三", "running")]

    # 王五 is not the 责任售前: his technical part is refused.
    sent = flow.reply_to(request, sender=WANG, body="实施方案：双机热备\n实施环境：见拓扑\n产品版本：V5.2\n")
    assert shape(sent) == [((WANG,), ())] and "技术部分由责任售前张三填写" in sent[0].text
    assert record(flow)["data"]["tech"] == {}

    # 张三 from Outlook: only the plan; the reply names what is still missing.
    sent = flow.deliver(outlook_reply(request, sender=ZHANG, first="实施方案：分两次割接，先汇聚后核心"))
    assert shape(sent) == [((ZHANG,), ())]
    assert "缺少“实施环境”" in sent[0].text and "缺少“产品版本”" in sent[0].text
    rec = record(flow)
    assert rec["state"] == "tech_missing" and rec["data"]["tech"] == {"plan": "分两次割接，先汇聚后核心"}

    # 张三 from QQ Mail: the rest. Complete: the sales, CC the heads and 张三.
    sent = flow.deliver(qq_reply(request, sender=ZHANG, first="实施环境：新机房已上架，光纤已到位<br>产品版本：V5.2.1"))
    assert shape(sent) == [((LI,), (WU, ZHANG, ZHAO))]
    assert sent[0].subject == f"项目实施工作单 {SS1} 已填写完整：华夏银行-核心交换机割接 [#{SS1}]"
    assert "产品版本：V5.2.1" in sent[0].text and "当前状态：已填写完整" in sent[0].text
    rec = record(flow)
    assert (rec["state"], rec["owner"]) == ("complete", "李四") and rec["closed_at"] is not None
    assert rec["data"]["tech"]["version"] == "V5.2.1"
    assert flow.db(clocks, n=SS1) == [("step:tech_missing", "张三", "stopped"), ("deadline", "张三", "stopped")]


def test_only_the_projects_sales_with_a_complete_sales_part_records_an_order(flow):
    sent = flow.deliver(build(sender=ZHOU, subject=SUBJECT, body=SALES_PART, to=(ZHANG,)))
    assert shape(sent) == [((ZHOU,), ())] and "周七不是华夏银行项目的责任销售" in sent[0].text
    sent = flow.deliver(build(sender=LI, subject=SUBJECT, body=SALES_PART.replace("实施地点：北京市西城区金融街\n", ""),
                              to=(ZHANG,)))
    assert "缺少“实施地点”" in sent[0].text and "实施地点：\n" in sent[0].text
    sent = flow.deliver(build(sender=ZHANG, subject=SUBJECT, body=SALES_PART, to=(LI,)))
    assert "张三不是销售" in sent[0].text
    assert flow.db("select count(*) from tickets where kind = 'implementation'")[0][0] == 0
