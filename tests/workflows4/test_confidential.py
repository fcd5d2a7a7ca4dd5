"""The confidentiality guard (art. 31, 39: 《测试预案》《实施预案》 are internal,
不对外发布), end to end against Dovecot and aiosmtpd: an internal document
addressed outside the organisation is flagged to the sender and the 售前经理
at once, and the system itself never sends one outside."""
from __future__ import annotations

from conventions.helpers import LI, SYSTEM, ZHANG, ZHAO, Flow, one, shape
from support import DIRECTORY
from workflows4.test_document import DOCX, V1, build

import pytest

CUSTOMER = "wang@huaxia-bank.example"


@pytest.fixture
def flow(tmp_path, imap_server, smtp_server, capsys):
    return Flow(tmp_path, imap_server, smtp_server, capsys)


def events(flow: Flow) -> list[tuple]:
    return [(actor, d["outside"], d["files"]) for actor, d in flow.db(
        "select actor, detail from audit where entity = 'confidential' and action = 'internal_outside' order by id")]


def monthly(flow: Flow):
    """This month's report content, as the monthly mail is made of it."""
    from datetime import datetime
    from processor.config import load_config
    from processor.pipeline import Runtime
    from processor.reports.scheduled import monthly_content
    rt = Runtime(load_config(flow.cfg))
    try:
        now = datetime.now(rt.tz)
        variables, sheets = monthly_content(rt, now.strftime("%Y-%m"), now)
        text = rt.renderer.render("report_monthly", {**variables, "attached": [], "recipients": []}).text
        section = text.split("十、内部文档外发")[1].split("\n\n")[0]
        assert all(f"发给了 {c['outside']}：{c['files']}" in section for c in variables["confidential"]), section
        return variables, sheets
    finally:
        rt.store.dispose()


def test_an_implementation_plan_sent_to_a_customer_address_is_flagged_at_once(flow):
    raw = build(sender=ZHANG, subject="文档审核-华夏银行-实施预案", body="请审核。", to=(LI,),
                cc=(SYSTEM, CUSTOMER), files=(("华夏银行实施预案V1.docx", DOCX, V1),))
    sent = flow.deliver(raw)
    warn = one(sent, to=ZHANG, subject="内部文档外发提醒")
    assert (warn.to, warn.cc) == ([ZHANG], [ZHAO])
    assert warn.subject == "内部文档外发提醒：文档审核-华夏银行-实施预案"
    assert CUSTOMER in warn.text and "华夏银行实施预案V1.docx" in warn.text and "不对外发布" in warn.text
    assert events(flow) == [("张三", [CUSTOMER], ["华夏银行实施预案V1.docx"])]
    # ... and it is in this month's report (section 十 and its own sheet).
    variables, sheets = monthly(flow)
    assert [(c["sender"], c["outside"], c["files"]) for c in variables["confidential"]] == [
        ("张三", CUSTOMER, "华夏银行实施预案V1.docx")]
    sheet = next(sh for sh in sheets if sh.title == "内部文档外发")
    assert [r[1:4] for r in sheet.rows] == [["张三", CUSTOMER, "华夏银行实施预案V1.docx"]]
    # The mail is still handled as what it is: the review goes to the sales.
    assert one(sent, to=LI).attachments == ["华夏银行实施预案V1.docx"]
    assert len(shape(sent)) == 3
    # The same mail seen again (a journal copy: same Message-ID, other bytes) is not flagged twice.
    assert flow.deliver(b"Received: from journal.company.example by mx.company.example\r\n" + raw) == []
    assert len(events(flow)) == 1


def test_any_mail_to_the_tracking_mailbox_is_guarded_even_one_no_rule_takes(flow):
    sent = flow.deliver(build(sender=ZHANG, subject="华夏银行资料", body="王经理，资料见附件。", to=(CUSTOMER,),
                              cc=(SYSTEM,), files=(("测试预案.docx", DOCX, V1), ("拓扑.pdf", "application/pdf", b"%PDF"))))
    assert shape(sent) == [((ZHANG,), (ZHAO,))]
    assert "测试预案.docx" in sent[0].text and "拓扑.pdf" not in sent[0].text
    assert events(flow) == [("张三", [CUSTOMER], ["测试预案.docx"])]
    # Inside the organisation nothing is said.
    assert flow.deliver(build(sender=ZHANG, subject="华夏银行资料", body="见附件。", to=(LI,), cc=(SYSTEM,),
                              files=(("测试预案.docx", DOCX, V1),))) == []
    assert len(events(flow)) == 1


def test_the_system_does_not_send_the_document_to_a_sales_using_an_outside_mailbox(tmp_path, imap_server,
                                                                                   smtp_server, capsys):
    """李四 reads mail at a personal mailbox: the organisation's domain is
    configured, so that address is outside. The review request reaches him
    without the 测试预案; the engineer and the 售前经理 are warned."""
    outside_li = "lisi@qq-mail.example"
    flow = Flow(tmp_path, imap_server, smtp_server, capsys, directory=DIRECTORY.replace(LI, outside_li),
                extra='[workflows.confidential]\ndomains = ["company.example"]\n')
    sent = flow.deliver(build(sender=ZHANG, subject="文档审核-华夏银行-测试预案", body="请审核。", to=(outside_li,),
                              files=(("测试预案V1.docx", DOCX, V1),)))
    review = one(sent, to=outside_li)
    assert review.subject.startswith("请审核文档") and review.attachments == []
    assert f"附件 测试预案V1.docx 是内部文档（不对外发布），因收件人中有公司以外的地址（{outside_li}），未随本邮件发送" \
        in review.text
    assert one(sent, to=ZHANG, subject="内部文档外发提醒").cc == [ZHAO]
    withheld = flow.db("select detail from audit where entity = 'confidential' and action = 'internal_withheld'")
    assert [(d["outside"], d["files"]) for (d,) in withheld] == [([outside_li], ["测试预案V1.docx"])]


def test_an_unreadable_mail_carrying_an_internal_document_outside_is_flagged_too(flow):
    """The body cannot be read (an unknown charset), the attachment can: the
    sender gets both the unreadable answer and the confidentiality notice."""
    from email.header import Header
    boundary = "b-unreadable-1"
    raw = ("From: =?utf-8?b?5byg5LiJ?= <" + ZHANG + ">\r\nTo: " + CUSTOMER + "\r\nCc: " + SYSTEM + "\r\n"
           "Subject: " + Header("客户沟通-华夏银行-张三", "utf-8").encode() + "\r\n"
           "Message-ID: <guard-unreadable-1@client.example>\r\nMIME-Version: 1.0\r\n"
           f"Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n"
           f"--{boundary}\r\nContent-Type: text/plain; charset=\"x-unknown-cjk\"\r\n"
           "Content-Transfer-Encoding: 8bit\r\n\r\n").encode() + bytes(range(0x80, 0x100)) * 3 + (
           f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n"
           "Content-Disposition: attachment; filename=\"=?utf-8?b?"
           + __import__("base64").b64encode("华夏银行实施预案.docx".encode()).decode() + "?=\"\r\n"
           "Content-Transfer-Encoding: base64\r\n\r\nUEsDBA==\r\n"
           f"--{boundary}--\r\n").encode()
    sent = flow.deliver(raw)
    assert sorted(s.subject.split("：")[0] for s in sent) == ["内部文档外发提醒", "邮件无法读取，请重新发送"]
    warn = one(sent, to=ZHANG, subject="内部文档外发提醒")
    assert (warn.to, warn.cc) == ([ZHANG], [ZHAO]) and CUSTOMER in warn.text
    assert events(flow) == [("张三", [CUSTOMER], ["华夏银行实施预案.docx"])]
