"""``MailQueue`` (processor/queueing.py) in process, on a SQLite store: what
it writes for each ``Outgoing``, the daily limit on automatic replies, a
suppressed backfill, thread links, and the rows stamped with a mail's
Message-ID. No mail server: the outbox rows are read back from the store."""
from __future__ import annotations

import email
import email.policy
import shutil
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from processor.config import load_config
from processor.outbox import Outgoing, build_mime, mail_bytes
from processor.pipeline import Pipeline, Runtime
from processor.queueing import MailQueue
from processor.render import Renderer
from processor.store.models import Outbox, Reminder, ReplyCount
from processor.records import records_of
from processor.template_contexts import CONTEXTS
from support import queued, write_config

from .test_transitions import ctx_for, record

A, B = "a@client.example", "b@client.example"
# 15:30 UTC is 23:30 in the default system zone (Asia/Shanghai): local midnight is 30 minutes away.
NOW = datetime(2026, 11, 24, 15, 30, tzinfo=timezone.utc)


@pytest.fixture
def rt(tmp_path):
    rt = Runtime(load_config(write_config(tmp_path, extra="[limits]\nreplies_per_recipient_per_day = 2\n")))
    yield rt
    rt.store.dispose()


def mail(i: int = 0, *, to=(A,), cc=(), kind="notice", **kw) -> Outgoing:
    sample = CONTEXTS["ping_ack"].sample
    return Outgoing("ping_ack", to=list(to), cc=list(cc), kind=kind, **kw,
                    variables={**sample, "topic": f"测试 {i}", "subject": f"测试 {i}"})


def outbox(rt) -> list[Outbox]:
    return queued(rt.store)


def test_each_mail_gets_an_outbox_row_under_the_message_id_it_is_given(rt):
    outs = [mail(1, to=(A, "B@Client.Example"), cc=(B,)), mail(2, to=(B,))]
    with rt.store.session() as s, s.begin():
        ids = MailQueue(rt).put(s, outs, now=NOW)
    assert len(set(ids)) == 2 and all(rt.ids.is_ours(m) for m in ids)
    assert [o.message_id for o in outs] == ids
    rows = outbox(rt)
    assert [r.message_id for r in rows] == ids
    assert [r.status for r in rows] == ["pending", "pending"]
    assert rows[0].rcpt == [A, B]  # lower-cased, each recipient once
    assert rows[0].to_addrs == [A, "B@Client.Example"] and rows[0].cc_addrs == [B]
    assert rows[0].mail_from == "tracking@company.example" and rows[0].template == "ping_ack"
    assert rows[0].raw is None and rows[0].draft["message_id"] == ids[0]  # kept as its draft: the sender builds it
    assert f"Message-ID: {ids[0]}".encode() in built(rt, rows[0])
    assert rows[0].caused_by is None
    assert rows[0].next_attempt_at.replace(tzinfo=timezone.utc) <= datetime.now(timezone.utc)  # due at once


def built(rt, row: Outbox) -> bytes:
    return mail_bytes(rt.cfg, row.raw, row.draft, lambda: rt.renderer)


def test_a_mail_without_files_is_built_by_the_sender_as_it_would_have_been_when_queued(rt):
    out = mail(1, to=(A,), cc=(B,), ticket_token="HB2026-0001", in_reply_to="<x@client.example>",
               references=["<root@client.example>"])
    with rt.store.session() as s, s.begin():
        [mid] = MailQueue(rt).put(s, [out], now=NOW)
    [row] = outbox(rt)
    at_once = build_mime(rt.cfg, out, rt.renderer.render(out.template, out.variables), mid, NOW,
                         names=MailQueue(rt)._names(out))
    assert (row.subject, built(rt, row)) == at_once
    assert row.draft["html"] is None and "<table" in at_once[1].decode()  # the layout drew it, at send time


def test_a_layout_that_fails_at_send_time_sends_the_text_in_plain_html(rt, tmp_path, caplog):
    with rt.store.session() as s, s.begin():
        MailQueue(rt).put(s, [mail(1)], now=NOW)
    [row] = outbox(rt)
    broken = tmp_path / "templates"
    shutil.copytree(rt.renderer.folder, broken)
    (broken / "_layout.html.j2").write_text("{{ project.name }}", encoding="utf-8")  # edited after it was queued
    raw = mail_bytes(rt.cfg, row.raw, row.draft, lambda: Renderer(broken))
    html = email.message_from_bytes(raw, policy=email.policy.default).get_body(("html",)).get_content()
    assert "<pre" in html and "测试 1" in html
    assert "HTML 版式无法生成" in caplog.text and "python run.py check" in caplog.text


def test_rows_to_stamp_get_the_message_id_of_their_mail(rt):
    with rt.store.session() as s, s.begin():
        first, second = Reminder(project="西部物流", project_key="西部物流"), Reminder(project="东方", project_key="东方")
        s.add_all([first, second])
        outs = [mail(1), mail(2, stamp=[second])]
        outs[0].stamp.append(first)
        ids = MailQueue(rt).put(s, outs, now=NOW)
    with rt.store.reader() as s:
        got = [(r.project, r.outbox_message_id) for r in s.scalars(select(Reminder).order_by(Reminder.id))]
    assert got == [("西部物流", ids[0]), ("东方", ids[1])]


def test_automatic_replies_stop_at_the_daily_limit_per_recipient(rt):
    q = MailQueue(rt)
    with rt.store.session() as s, s.begin():
        counts: dict = {}
        q.put(s, [mail(1, kind="reply"), mail(2, kind="reply")], now=NOW, counts=counts)
        q.put(s, [mail(3, kind="reply"), mail(4, to=(B,), kind="reply"), mail(5, kind="notice")], now=NOW, counts=counts)
    with rt.store.session() as s, s.begin():  # a later transaction reads the stored counts
        q.put(s, [mail(6, kind="reply")], now=NOW + timedelta(minutes=10))
        # After local midnight (Asia/Shanghai) it is another day: replies go out again.
        q.put(s, [mail(7, kind="reply")], now=NOW + timedelta(minutes=31))
    rows = outbox(rt)
    assert [r.status for r in rows] == ["pending", "pending", "suppressed", "pending", "pending", "suppressed", "pending"]
    assert rows[2].last_error == ("已达发送上限：今天已向 a@client.example 自动回复 2 封"
                                  "（limits.replies_per_recipient_per_day），本封不发")
    with rt.store.reader() as s:
        assert {(c.address, c.day, c.count) for c in s.scalars(select(ReplyCount))} == {
            (A, "2026-11-24", 2), (B, "2026-11-24", 1), (A, "2026-11-25", 1)}


def test_a_suppressing_queue_records_every_mail_as_not_to_be_sent(rt):
    with rt.store.session() as s, s.begin():
        MailQueue(rt, suppress="回放（--no-send）：不发送").put(s, [mail(1, kind="reply"), mail(2)], now=NOW)
    assert [(r.status, r.last_error) for r in outbox(rt)] == [("suppressed", "回放（--no-send）：不发送")] * 2
    with rt.store.reader() as s:
        assert list(s.scalars(select(ReplyCount))) == []  # not counted against the limit


def test_a_mail_with_a_ticket_token_joins_the_record_thread(rt):
    with rt.store.session() as s, s.begin():
        ctx = ctx_for(rt, s, "workorder", sender="王五", body="同意")
        t = record(ctx, "workorder", "pending_approval")
        by_token, by_object = mail(1, ticket_token=t.token), mail(2, ticket_token=t.token, ticket=t)
        ids = MailQueue(rt).put(s, [by_token, by_object, mail(3)], now=NOW)
        tid = t.id
    with rt.store.session() as s, s.begin():  # as the next batch finds them in the store
        rec = records_of(s)
        assert rec.ticket_for_thread(None, [ids[0]]).id == tid
        assert rec.ticket_for_thread(None, [ids[1]]).id == tid
        assert rec.ticket_for_thread(None, [ids[2]]) is None


def test_the_pipeline_queues_through_its_queue(rt):
    p = Pipeline(rt, suppress="不发送")
    with rt.store.session() as s, s.begin():
        (mid,) = p.queue_outgoing(s, [mail(1)], now=NOW)
    assert [(r.message_id, r.status) for r in outbox(rt)] == [(mid, "suppressed")]


def test_a_queue_told_to_build_now_keeps_the_bytes_not_the_draft(rt):
    q = MailQueue(rt)
    q.build_now = True
    with rt.store.session() as s, s.begin():
        [mid] = q.put(s, [mail(1)], now=NOW)
    [row] = outbox(rt)
    assert row.draft is None and f"Message-ID: {mid}".encode() in row.raw and b"<table" in row.raw


@pytest.mark.parametrize("behind", [True, False])
def test_the_intake_builds_the_mails_itself_while_the_sender_is_behind(tmp_path, monkeypatch, behind):
    import processor.outbox as outbox_module
    from processor.outbox import sender_behind
    from processor.pipeline import Incoming
    from support import make_mail

    rt = Runtime(load_config(write_config(tmp_path)))
    try:
        p = Pipeline(rt)
        p.process([Incoming(make_mail(subject="工单测试 1", message_id="<m1@client.example>"))])
        with rt.store.reader() as s:  # its receipt waits, not yet sent
            assert sender_behind(s, 0) and not sender_behind(s, 1)
        monkeypatch.setattr(outbox_module, "SENDER_BEHIND", 0 if behind else 1)
        p.process([Incoming(make_mail(subject="工单测试 2", message_id="<m2@client.example>"))])
        last = outbox(rt)[-1]
        assert (last.raw is not None, last.draft is None) == (behind, behind)
    finally:
        rt.store.dispose()
