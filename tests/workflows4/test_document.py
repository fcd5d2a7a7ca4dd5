"""Document review 文档审核 ``文档审核-<项目>-<文档名>`` (art. 25-28, 31, 39),
end to end: mails go into a real Dovecot mailbox, ``run.py once`` processes
them and delivers to a real aiosmtpd server; the tests read the delivered
mails and the store (the record, its rounds, its attachments, the audit)."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import SMTP
from email.utils import format_datetime, formataddr, make_msgid

import pytest

from conventions.clients import attachment, outlook
from conventions.helpers import LI, SYSTEM, ZHANG, ZHAO, ZHOU, Flow, Sent, one, shape

NAMES = {ZHANG: "张三", LI: "李四", ZHAO: "赵六", ZHOU: "周七"}
YEAR = datetime.now().year
WD1 = f"WD{YEAR}-0001"
SUBJECT = "文档审核-华夏银行-测试预案"
V1 = "《测试预案》第一版：环境准备、功能项目。\n".encode()
V2 = "《测试预案》第二版：环境准备（含性能测试环境）、功能项目。\n".encode()
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def build(*, sender: str, subject: str, body: str, to=(LI,), cc=(SYSTEM,), files=(), in_reply_to: str | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = formataddr((NAMES.get(sender, ""), sender))
    msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(timezone.utc))
    msg["Message-ID"] = make_msgid(domain="client.example")
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    msg.set_content(body)
    for name, ctype, data in files:
        maintype, subtype = ctype.split("/", 1)
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes(policy=SMTP)


def outlook_reply(sent: Sent, *, sender: str, first: str, files=()) -> bytes:
    """Outlook 2016: GB2312 text + HTML, its own header block above the quote."""
    quote = (f"\n\n发件人: 工单系统 <{SYSTEM}>\n发送时间: 2026年11月30日 10:00\n收件人: {sender}\n"
             f"主题: {sent.subject}\n\n" + sent.text)
    text = first + "\n\n李四\n\n________________________________" + quote
    html = (f"<html><body><div>{first}</div><div>&nbsp;</div><div>李四</div>"
            f"<div style='border:none;border-top:solid #E1E1E1 1.0pt'><p><b>发件人:</b> 工单系统 &lt;{SYSTEM}&gt;<br>"
            f"<b>主题:</b> {sent.subject}</p></div><p>{sent.text.replace(chr(10), '<br>')}</p></body></html>")
    return outlook(text=text, html=html, sender=sender, to=(SYSTEM,), subject="答复: " + sent.subject,
                   in_reply_to=sent.message_id, attachments=[attachment(*f) for f in files])


def qq_reply(sent: Sent, *, sender: str, first: str) -> bytes:
    """QQ Mail: GB18030 HTML with its 原始邮件 separator, and the text derived from it."""
    from processor.mail.html import html_to_text
    html = (f"<div>{first}</div><div><br></div><div><br></div>"
            "<div style=\"font-size: 12px;font-family: Arial Narrow;padding:2px 0 2px 0;\">"
            "------------------&nbsp;原始邮件&nbsp;------------------</div>"
            f"<div style=\"font-size: 12px;background:#efefef;padding:8px;\"><div><b>发件人:</b>&nbsp;\"工单系统\"&lt;{SYSTEM}&gt;;</div>"
            f"<div><b>主题:</b>&nbsp;{sent.subject}</div></div><div><br></div>"
            f"<div>{sent.text.replace(chr(10), '<br>')}</div>")
    alt = MIMEMultipart("alternative")
    alt.attach(MIMEText(html_to_text(html), "plain", "gb18030"))
    alt.attach(MIMEText(html, "html", "gb18030"))
    from email.header import Header
    alt["From"] = formataddr((str(Header(NAMES.get(sender, sender), "utf-8")), sender))
    alt["To"] = SYSTEM
    alt["Subject"] = Header("回复：" + sent.subject, "utf-8").encode()
    alt["Date"] = format_datetime(datetime.now(timezone.utc))
    alt["Message-ID"] = f"<tencent_{uuid.uuid4().hex.upper()}@qq.com>"
    alt["In-Reply-To"] = sent.message_id
    alt["References"] = sent.message_id
    alt["X-Mailer"] = "QQMail 2.x"
    return alt.as_bytes()


class Doc:
    def __init__(self, flow: Flow):
        self.flow = flow

    def submit(self, *, sender=ZHANG, subject=SUBJECT, body="请审核测试预案。\n时间要求：12月5日前\n", to=(LI,),
               files=(("测试预案V1.docx", DOCX, V1),)) -> list[Sent]:
        return self.flow.deliver(build(sender=sender, subject=subject, body=body, to=to, files=files))

    def reply(self, sent: Sent, *, sender: str, body: str, files=()) -> list[Sent]:
        return self.flow.deliver(build(sender=sender, subject="回复：" + sent.subject, body=body, to=(SYSTEM,),
                                       cc=(), files=files, in_reply_to=sent.message_id))

    def record(self, number: str = WD1) -> dict:
        return self.flow.ticket(number)

    def files(self, number: str = WD1) -> list[tuple[str, bytes]]:
        rows = self.flow.db("select a.filename, r.data from attachments a join tickets t on t.id = a.ticket_id "
                            "left join raw_mails r on r.sha256 = a.sha256 where t.number = :n order by a.id", n=number)
        return [(name, bytes(data)) for name, data in rows]

    def clocks(self, number: str = WD1) -> list[tuple]:
        return self.flow.db("select c.name, c.owner, c.status, c.target_minutes from sla_clocks c "
                            "join tickets t on t.id = c.ticket_id where t.number = :n order by c.id", n=number)

    def refusals(self, number: str = WD1) -> list[tuple[str, str]]:
        return [(d["command"], d["reason"]) for (d,) in self.flow.db(
            "select detail from audit where entity = 'document' and entity_id = :n and action = 'command_refused' "
            "order by id", n=number)]


@pytest.fixture
def doc(tmp_path, imap_server, smtp_server, capsys):
    return Doc(Flow(tmp_path, imap_server, smtp_server, capsys))


@pytest.fixture
def doc_db(tmp_path, imap_server, smtp_server, capsys, db_url):
    """Runs once on SQLite and once on PostgreSQL."""
    return Doc(Flow(tmp_path, imap_server, smtp_server, capsys, db_url=db_url))


def test_two_rounds_returned_then_passed_with_outlook_and_qq_replies_and_refusals(doc_db):
    doc, flow = doc_db, doc_db.flow
    sent = doc.submit()
    assert shape(sent) == [((LI,), ()), ((ZHANG,), ())]
    ack = one(sent, to=ZHANG)
    assert ack.subject == f"回执：文档审核单 {WD1} 第1版已送李四审核（华夏银行-测试预案） [#{WD1}]"
    assert "当前状态：待审核，文档在李四处" in ack.text and "时间要求：12月5日前" in ack.text
    review = one(sent, to=LI)
    assert review.subject == f"请审核文档 {WD1}：华夏银行-测试预案（第1版） [#{WD1}]"
    assert review.attachments == ["测试预案V1.docx"]
    assert "通过" in review.text and "驳回：意见" in review.text
    rec = doc.record()
    assert (rec["kind"], rec["state"], rec["project"], rec["owner"]) == ("document", "in_review", "华夏银行", "李四")
    assert (rec["data"]["author"], rec["data"]["reviewer"], rec["data"]["version"]) == ("张三", "李四", 1)
    assert rec["data"]["doc_type"] == "测试预案" and rec["data"]["deadline"] == "12月5日前"
    # A step clock runs while the sales holds it (2 working days, default profile).
    # And the sales' 时间要求 (12月5日前) runs as the author's deadline (tests/workflows4/test_deadlines.py).
    assert [c[:3] for c in doc.clocks()] == [("step:in_review", "李四", "running"), ("deadline", "张三", "running")]
    assert doc.clocks()[0][3] == 2 * 9 * 60

    # Only the project's 责任销售 reviews: not another salesperson, not the author.
    sent = doc.reply(review, sender=ZHOU, body="通过")
    assert shape(sent) == [((ZHOU,), ())]
    assert sent[0].subject == f"操作未执行：{WD1} 的“通过”只能由责任销售（李四）操作 [#{WD1}]"
    sent = doc.reply(review, sender=ZHANG, body="通过")
    assert shape(sent) == [((ZHANG,), ())] and "只能由责任销售（李四）操作" in sent[0].subject
    # 驳回 needs the comments.
    sent = doc.reply(review, sender=LI, body="驳回")
    assert sent[0].subject == f"操作未执行：“驳回”需要写明意见 [#{WD1}]"
    assert doc.refusals() == [("通过", "not_allowed"), ("通过", "not_allowed"), ("驳回", "missing_arg")]
    assert doc.record()["state"] == "in_review"

    # 李四 returns it from Outlook (答复: prefix, GB2312, quoted history below).
    sent = flow.deliver(outlook_reply(review, sender=LI, first="驳回：请补充性能测试的环境准备"))
    assert shape(sent) == [((ZHANG,), (LI,))]
    returned = sent[0]
    assert returned.subject == f"文档审核单 {WD1} 第1版被驳回：华夏银行-测试预案 [#{WD1}]"
    assert "意见：请补充性能测试的环境准备" in returned.text and "第2版" in returned.text
    rec = doc.record()
    assert (rec["state"], rec["owner"]) == ("returned", "张三")
    assert [c for c in doc.clocks() if c[0] != "deadline"] == [("step:in_review", "李四", "stopped", 2 * 9 * 60),
                                                               ("step:returned", "张三", "running", 3 * 9 * 60)]
    r1 = rec["data"]["rounds"][0]
    assert (r1["decision"], r1["decided_by"]) == ("驳回", "李四")
    assert r1["comment"].startswith("请补充性能测试的环境准备") and "通过 ——" not in r1["comment"]
    # A 通过 now is in the wrong state.
    sent = doc.reply(returned, sender=LI, body="通过")
    assert "当前状态为“驳回待重写”" in sent[0].subject

    # 张三 answers the 驳回 with the new version: round 2, back to the sales.
    sent = doc.reply(returned, sender=ZHANG, body="说明：已补充性能测试环境\n", files=(("测试预案V2.docx", DOCX, V2),))
    assert shape(sent) == [((LI,), ()), ((ZHANG,), ())]
    review2 = one(sent, to=LI)
    assert review2.subject == f"请审核文档 {WD1}：华夏银行-测试预案（第2版） [#{WD1}]"
    assert review2.attachments == ["测试预案V2.docx"]
    assert "第1版" in review2.text and "李四驳回，意见：请补充性能测试的环境准备" in review2.text
    rec = doc.record()
    assert (rec["state"], rec["owner"], rec["data"]["version"]) == ("in_review", "李四", 2)

    # 李四 passes it from QQ Mail.
    sent = flow.deliver(qq_reply(review2, sender=LI, first="通过"))
    assert shape(sent) == [((ZHANG,), (LI,))]
    assert sent[0].subject == f"文档审核单 {WD1} 已通过：华夏银行-测试预案（第2版） [#{WD1}]"
    assert "内部文档，不对外发布" in sent[0].text
    rec = doc.record()
    assert rec["state"] == "approved" and rec["closed_at"] is not None
    assert {status for _n, _o, status, _t in doc.clocks()} == {"stopped"}
    rounds = rec["data"]["rounds"]
    assert [(r["n"], r["by"], [f["name"] for f in r["files"]], r["decision"]) for r in rounds] == [
        (1, "张三", ["测试预案V1.docx"], "驳回"), (2, "张三", ["测试预案V2.docx"], "通过")]
    # Both versions are kept, bytes and all.
    assert doc.files() == [("测试预案V1.docx", V1), ("测试预案V2.docx", V2)]
    history = [(h["command"], h["from"], h["to"], h["by"]) for h in rec["data"]["history"]]
    assert history == [("驳回", "in_review", "returned", "李四"), ("重新提交", "returned", "in_review", "张三"),
                       ("通过", "in_review", "approved", "李四")]


def test_the_sales_may_answer_the_engineers_original_mail(doc):
    """The sales was addressed by the engineer: a reply to that mail, not to
    the system's request, is in the record's thread too."""
    raw = build(sender=ZHANG, subject=SUBJECT, body="请审核。", files=(("测试预案V1.docx", DOCX, V1),))
    doc.flow.deliver(raw)
    import email
    mid = email.message_from_bytes(raw)["Message-ID"]
    sent = doc.flow.deliver(build(sender=LI, subject="回复：" + SUBJECT, body="通过，写得不错", to=(ZHANG,),
                                  cc=(SYSTEM,), in_reply_to=mid))
    assert shape(sent) == [((ZHANG,), (LI,))]
    assert "李四的说明：写得不错" in sent[0].text
    assert doc.record()["state"] == "approved"


def test_a_submission_without_attachment_or_from_a_non_engineer_is_not_recorded(doc):
    sent = doc.submit(files=())
    assert shape(sent) == [((ZHANG,), ())]
    assert sent[0].subject == f"{SUBJECT}（未登记，请修改后重新发送）"
    assert "请把要审核的文档“测试预案”作为附件一起发送" in sent[0].text
    sent = doc.submit(sender=LI, to=(ZHANG,))
    assert shape(sent) == [((LI,), ())] and "李四不是售前" in sent[0].text
    sent = doc.submit(subject="文档审核-华夏证劵-测试预案")
    assert "找不到" in sent[0].text
    assert doc.flow.db("select count(*) from tickets where kind = 'document'")[0][0] == 0


def test_a_new_version_by_new_mail_while_in_review_is_the_next_round(doc):
    doc.submit()
    sent = doc.submit(files=(("测试预案V2.docx", DOCX, V2),))
    review2 = one(sent, to=LI)
    assert "（第2版）" in review2.subject and review2.attachments == ["测试预案V2.docx"]
    rec = doc.record()
    assert [r["decision"] for r in rec["data"]["rounds"]] == ["已被新版本替代", ""]
    assert doc.flow.db("select count(*) from tickets where kind = 'document'")[0][0] == 1
