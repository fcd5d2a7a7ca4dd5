"""What is internal (processor/confidential.py), and the queueing edge that
never lets the system send an internal document outside the organisation
(processor/queueing.py), in process on a SQLite store: the outbox rows are
read back and their MIME parsed."""
from __future__ import annotations

import email
import email.policy
from datetime import datetime, timezone
from email.message import EmailMessage

import pytest
from sqlalchemy import select

from processor.config import load_config
from processor.confidential import policy, problems, withheld
from processor.outbox import Outgoing
from processor.pipeline import Runtime
from processor.queueing import MailQueue
from processor.store.models import Audit, Outbox
from processor.template_contexts import CONTEXTS
from support import queued, write_config

NOW = datetime(2026, 11, 24, 3, 30, tzinfo=timezone.utc)
CUSTOMER = "wang@huaxia-bank.example"
LI = "lisi@company.example"
DOC = b"PK\x03\x04 internal plan"


@pytest.fixture
def rt(tmp_path):
    rt = Runtime(load_config(write_config(tmp_path, extra='[workflows.confidential]\ninternal = ["报价底价"]\n')))
    yield rt
    rt.store.dispose()


def forwarded(subject: str, filename: str) -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "zhangsan@company.example", LI, subject
    m.set_content("见附件")
    m.add_attachment(DOC, maintype="application", subtype="octet-stream", filename=filename)
    return m.as_bytes()


def test_internal_by_name_subject_and_admin_mark_and_the_domains_come_from_the_directory(rt):
    pol = policy(rt.cfg, rt.directory)
    assert pol.domains == {"company.example"}
    assert pol.internal_files("资料", ["华夏银行测试预案V2.docx", "拓扑.png"]) == ["华夏银行测试预案V2.docx"]
    assert pol.internal_files("资料", ["华夏银行ＳＳＬ实施预案.docx"]) == ["华夏银行ＳＳＬ实施预案.docx"]  # full-width folded
    assert pol.internal_files("文档审核-华夏银行-实施预案", ["v3.docx"]) == ["v3.docx"]  # the subject names it
    assert pol.internal_files("资料", ["2026报价底价.xlsx"]) == ["2026报价底价.xlsx"]  # marked internal in config
    assert pol.internal_files("资料", ["测试方案.docx"]) == []  # the customer's 测试方案 is not internal
    assert pol.outside([LI, "Wang@HuaXia-Bank.example", "x@company.example"]) == [CUSTOMER]
    assert withheld(pol, [("a.eml", "message/rfc822", forwarded("转发：测试预案", "plan.docx")),
                          ("b.eml", "message/rfc822", forwarded("日志", "vrrp.log"))]) == ["a.eml"]


def test_check_names_a_wrong_key_or_value():
    class C:
        workflows = {"confidential": {"patern": ["x"], "domains": "company.example", "enabled": "yes"}}
    assert [k for k, _ in problems(C())] == ["patern", "domains", "enabled"]


def _queue(rt, out: Outgoing) -> tuple[Outbox, list[Audit]]:
    with rt.store.session() as s, s.begin():
        MailQueue(rt).put(s, [out], now=NOW)
    row = queued(rt.store)[-1]
    with rt.store.reader() as s:
        audits = list(s.scalars(select(Audit).where(Audit.entity == "confidential")))
    return row, audits


def _names(raw: bytes) -> list[str]:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    return [p.get_filename() or p.get_content_type() for p in msg.iter_attachments()]


def _text(raw: bytes, subtype: str) -> str:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    return msg.get_body(preferencelist=(subtype,)).get_content()


def _mail(to, cc=()) -> Outgoing:
    out = Outgoing("ping_ack", to=list(to), cc=list(cc), kind="notice",
                   variables={**CONTEXTS["ping_ack"].sample, "topic": "测试", "subject": "测试"})
    out.attachments = [("华夏银行测试预案V2.docx", "application/octet-stream", DOC),
                       ("original.eml", "message/rfc822", forwarded("文档审核-华夏银行-实施预案", "v3.docx")),
                       ("vrrp.log", "text/plain", b"log")]
    return out


def test_the_system_never_sends_an_internal_document_outside(rt):
    # Inside the organisation: every file goes.
    row, audits = _queue(rt, _mail([LI]))
    assert _names(row.raw) == ["华夏银行测试预案V2.docx", "original.eml", "vrrp.log"] and audits == []
    assert "内部文档" not in _text(row.raw, "plain")
    # One outside recipient (even in Cc): the internal document and the
    # forwarded original carrying one are taken off; the log still goes.
    row, audits = _queue(rt, _mail([LI], cc=[CUSTOMER]))
    assert _names(row.raw) == ["vrrp.log"]
    assert DOC not in row.raw and b"internal plan" not in row.raw
    assert [(a.action, a.detail["outside"], a.detail["files"]) for a in audits] == [
        ("internal_withheld", [CUSTOMER], ["华夏银行测试预案V2.docx", "original.eml"])]
    # The mail says what it does not carry, and why, in both parts.
    note = (f"说明：附件 华夏银行测试预案V2.docx、original.eml 是内部文档（不对外发布），"
            f"因收件人中有公司以外的地址（{CUSTOMER}），未随本邮件发送。")
    assert note in _text(row.raw, "plain") and note in _text(row.raw, "html")
