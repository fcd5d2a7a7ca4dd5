"""A sales' 时间要求 (art. 33, 42) on a document becomes a clock with the
usual reminder and escalation, and a document late against it costs its
engineer -1 in the telecom points scheme; end to end against Dovecot and
aiosmtpd with the domain clock moved forward (as tests/test_sla_e2e.py)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from processor.config import load_config
from processor.daemon import run_once
from processor.pipeline import Runtime
from processor.store.models import Breach, Clock
from support import run, write_config
from workflows4.test_document import DOCX, V1, build

from conventions.helpers import LI, ZHANG, ZHAO

CST = timezone(timedelta(hours=8))
TUE_10 = datetime(2026, 11, 24, 10, 0, tzinfo=CST)


class Clock_:
    def __init__(self, t):
        self.t = t

    def __call__(self):
        return self.t


def test_a_document_late_against_the_sales_time_requirement(tmp_path, imap_server, smtp_server, capsys):
    cfg = write_config(tmp_path, imap=imap_server, smtp=smtp_server,
                       extra="[reports]\nmonthly_enabled = false\nweekly_enabled = false\n[sla]\npoints = true\n")
    clock = Clock_(TUE_10)
    rt = Runtime(load_config(cfg), clock=clock)

    def once():
        before = len(smtp_server.messages)
        _, stats = run_once(rt, sender_process=False)
        return smtp_server.messages[before:before + stats.sent]

    imap_server.append(build(sender=ZHANG, subject="文档审核-华夏银行-测试预案", body="请审核。\n时间要求：11月25日 12:00\n",
                             files=(("测试预案V1.docx", DOCX, V1),)))
    once()
    with rt.store.reader() as s:
        c = s.scalars(select(Clock).where(Clock.name == "deadline")).one()
        assert (c.owner, c.status, c.mode, c.target_minutes) == ("张三", "running", "24x7", 26 * 60)
        assert c.due_at.replace(tzinfo=timezone.utc) == datetime(2026, 11, 25, 12, 0, tzinfo=CST)

    # At 80 % of the time the engineer is reminded.
    clock.t = datetime(2026, 11, 25, 9, 0, tzinfo=CST)
    sent = once()
    assert [(m.rcpt_tos, "时间要求" in m.text) for m in sent] == [([ZHANG], True)]
    # Past it: the 售前经理 (first up the document chain) is told, 张三 in Cc; a breach against 张三.
    clock.t = datetime(2026, 11, 25, 12, 30, tzinfo=CST)
    sent = once()
    assert [sorted(m.rcpt_tos) for m in sent] == [sorted([ZHAO, ZHANG])]
    assert "时间要求" in sent[0].text
    with rt.store.reader() as s:
        assert [(b.person, b.clock) for b in s.scalars(select(Breach))] == [("张三", "deadline")]
    rt.store.dispose()
    capsys.readouterr()
    assert run(cfg, "report", "points", "--format", "json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r for r in rows if r["人员"] == "张三"] == [
        {"人员": "张三", "超时故障(-5)": "0", "有效投诉(-2)": "0", "迟交记录(-1)": "1", "合计": "-1"}]
    assert all(r["人员"] != "李四" for r in rows)


def test_a_document_approved_in_time_stops_its_deadline_clock(tmp_path, imap_server, smtp_server, capsys):
    cfg = write_config(tmp_path, imap=imap_server, smtp=smtp_server,
                       extra="[reports]\nmonthly_enabled = false\nweekly_enabled = false\n")
    clock = Clock_(TUE_10)
    rt = Runtime(load_config(cfg), clock=clock)
    before = len(smtp_server.messages)
    imap_server.append(build(sender=ZHANG, subject="文档审核-华夏银行-测试预案", body="时间要求：11月26日前\n",
                             files=(("测试预案V1.docx", DOCX, V1),)))
    run_once(rt, sender_process=False)
    review = next(m for m in smtp_server.messages[before:] if m.rcpt_tos == [LI])
    imap_server.append(build(sender=LI, subject="回复：" + review.subject, body="通过", to=("tracking@company.example",),
                             in_reply_to=review.header("Message-ID")))
    run_once(rt, sender_process=False)
    with rt.store.reader() as s:
        assert [(c.name, c.status) for c in s.scalars(select(Clock).order_by(Clock.id))] == [
            ("step:in_review", "stopped"), ("deadline", "stopped")]
    clock.t = datetime(2026, 11, 27, 10, 0, tzinfo=CST)
    _, stats = run_once(rt, sender_process=False)
    assert stats.sent == 0
    rt.store.dispose()


def test_the_sales_restates_the_time_requirement_in_a_reply(tmp_path, imap_server, smtp_server, capsys):
    """A new 时间要求 from the project's 责任销售 in the thread (here with 驳回)
    replaces the deadline: the clock starts again for the new time, owned by
    the author; the same line from the author changes nothing."""
    cfg = write_config(tmp_path, imap=imap_server, smtp=smtp_server,
                       extra="[reports]\nmonthly_enabled = false\nweekly_enabled = false\n")
    clock = Clock_(TUE_10)
    rt = Runtime(load_config(cfg), clock=clock)
    before = len(smtp_server.messages)
    imap_server.append(build(sender=ZHANG, subject="文档审核-华夏银行-测试预案", body="时间要求：11月26日前\n",
                             files=(("测试预案V1.docx", DOCX, V1),)))
    run_once(rt, sender_process=False)
    review = next(m for m in smtp_server.messages[before:] if m.rcpt_tos == [LI])

    def reply(sender, body):
        imap_server.append(build(sender=sender, subject="回复：" + review.subject, body=body,
                                 to=("tracking@company.example",), in_reply_to=review.header("Message-ID")))
        run_once(rt, sender_process=False)

    def deadlines():
        with rt.store.reader() as s:
            return [(c.status, c.owner, c.due_at.replace(tzinfo=timezone.utc).astimezone(CST).strftime("%m-%d %H:%M"))
                    for c in s.scalars(select(Clock).where(Clock.name == "deadline").order_by(Clock.id))]

    assert deadlines() == [("running", "张三", "11-26 18:00")]
    reply(ZHANG, "我尽快。\n时间要求：12月20日\n")  # the author cannot move it
    assert deadlines() == [("running", "张三", "11-26 18:00")]
    reply(LI, "驳回：请补充性能测试项目\n时间要求：11月25日 12:00\n")
    assert deadlines() == [("stopped", "张三", "11-26 18:00"), ("running", "张三", "11-25 12:00")]
    with rt.store.reader() as s:
        from processor.store.models import Message
        last = s.scalars(select(Message).order_by(Message.id.desc())).first()
        assert "时间要求改为“11月25日 12:00”" in last.reason
    rt.store.dispose()
