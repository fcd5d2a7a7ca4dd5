"""项目实施进场准备单 / 项目实施与进度计划表 (art. 38, 41), end to end against
Dovecot and aiosmtpd: the engineer drafts, the 责任销售 confirms (确认)
before it goes to the customer; a draft addressed to a customer before that
is flagged to the sales and the 售前经理; anyone else's 确认 is refused."""
from __future__ import annotations

from datetime import datetime

import pytest

from conventions.helpers import LI, SYSTEM, ZHANG, ZHAO, ZHOU, Flow, one, shape
from workflows4.test_document import build, outlook_reply, qq_reply

QR1 = f"QR{datetime.now().year}-0001"
CUSTOMER = "wang@huaxia-bank.example"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DRAFT = ("进场准备单V1.xlsx", XLSX, b"PK draft 1")


@pytest.fixture
def flow(tmp_path, imap_server, smtp_server, capsys):
    return Flow(tmp_path, imap_server, smtp_server, capsys)


def test_the_sales_confirms_the_draft_and_nobody_else_can(flow):
    sent = flow.deliver(build(sender=ZHANG, subject="进场准备单-华夏银行-核心交换机割接", body="请确认进场准备单。",
                              to=(LI,), files=(DRAFT,)))
    assert shape(sent) == [((LI,), ()), ((ZHANG,), ())]
    review = one(sent, to=LI)
    assert review.subject == f"请确认文档 {QR1}：华夏银行-进场准备单-核心交换机割接（第1版） [#{QR1}]"
    assert "确认后才能发给客户" in review.text and review.attachments == ["进场准备单V1.xlsx"]
    assert "确认          —— 确认通过" in review.text
    t = flow.ticket(QR1)
    assert (t["kind"], t["state"], t["owner"]) == ("confirmation", "in_review", "李四")

    # Another salesperson, the 售前经理 and the author may not confirm.
    for who in (ZHOU, ZHAO, ZHANG):
        sent = flow.reply_to(review, sender=who, body="确认")
        assert shape(sent) == [((who,), ())]
        assert sent[0].subject == f"操作未执行：{QR1} 的“确认”只能由责任销售（李四）操作 [#{QR1}]"
    assert flow.ticket(QR1)["state"] == "in_review"

    # 李四 confirms from QQ Mail: the engineer may now send it to the customer.
    sent = flow.deliver(qq_reply(review, sender=LI, first="确认"))
    assert shape(sent) == [((ZHANG,), (LI,))]
    assert sent[0].subject == f"实施文档确认单 {QR1} 已确认：华夏银行-进场准备单-核心交换机割接（第1版） [#{QR1}]"
    assert "可以发给客户" in sent[0].text
    assert flow.ticket(QR1)["state"] == "approved"


def test_a_draft_reaching_a_customer_before_confirmation_is_flagged(flow):
    # 张三 sends the plan straight to the customer, the sales only in Cc.
    sent = flow.deliver(build(sender=ZHANG, subject="进度计划表-华夏银行", body="王经理：进度计划见附件。",
                              to=(CUSTOMER,), cc=(LI, SYSTEM), files=(("进度计划表.xlsx", XLSX, b"PK plan"),)))
    flag = one(sent, to=LI, subject="未经确认")
    assert flag.subject == f"未经确认的《进度计划表》发给了客户：{QR1}（华夏银行） [#{QR1}]"
    assert sorted(flag.cc) == sorted([ZHAO, ZHANG]) and CUSTOMER in flag.text
    flagged = flow.db("select detail from audit where entity = 'confirmation' and action = 'draft_outside'")
    assert [d["outside"] for (d,) in flagged] == [[CUSTOMER]]
    review = one(sent, to=LI, subject="请确认")
    # 李四 returns it from Outlook; the new version, again to the customer, is flagged again.
    sent = flow.deliver(outlook_reply(review, sender=LI, first="驳回：割接时间要避开月底结算"))
    assert one(sent, to=ZHANG).subject.startswith(f"实施文档确认单 {QR1} 第1版被驳回")
    sent = flow.deliver(build(sender=ZHANG, subject="回复：" + review.subject, body="已调整。", to=(CUSTOMER,),
                              cc=(LI, SYSTEM), files=(("进度计划表V2.xlsx", XLSX, b"PK plan 2"),),
                              in_reply_to=review.message_id))
    assert one(sent, to=LI, subject="未经确认").subject.startswith("未经确认的《进度计划表》")
    assert flow.ticket(QR1)["data"]["version"] == 2
    # Once confirmed, sending it to the customer is what should happen: no flag.
    review2 = one(sent, to=LI, subject="请确认")
    flow.reply_to(review2, sender=LI, body="确认")
    sent = flow.deliver(build(sender=ZHANG, subject="回复：" + review2.subject, body="王经理：定稿见附件。",
                              to=(CUSTOMER,), cc=(SYSTEM,), files=(("进度计划表V2.xlsx", XLSX, b"PK plan 2"),),
                              in_reply_to=review2.message_id))
    assert [s for s in sent if "未经确认" in s.subject] == []
    assert len(flow.db("select id from audit where entity = 'confirmation' and action = 'draft_outside'")) == 2
