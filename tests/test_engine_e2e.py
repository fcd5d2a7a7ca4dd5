"""The mail engine end to end: real Dovecot in, real aiosmtpd out.

Each test drops mails into the IMAP mailbox, runs the CLI, and asserts what a
user would see: the mails the system sent (or did not send) and the records
in the store.
"""
from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from processor.config import load_config
from processor.daemon import Daemon
from processor.pipeline import Runtime
from processor.store.db import Store
from processor.store.models import Message, Outbox, Quarantine
from support import IMAP_KINDS, ROOT, make_mail, run, start_imap, write_config

DATA = Path(__file__).parent / "data" / "mail"


def messages(cfg_path) -> list[Message]:
    cfg = load_config(cfg_path)
    st = Store(cfg.store_url)
    with st.session() as s:
        rows = list(s.scalars(select(Message).order_by(Message.id)))
    st.dispose()
    return rows


def quarantine_rows(cfg_path) -> list[Quarantine]:
    cfg = load_config(cfg_path)
    st = Store(cfg.store_url)
    with st.session() as s:
        rows = list(s.scalars(select(Quarantine).order_by(Quarantine.id)))
    st.dispose()
    return rows


def outbox(cfg_path) -> list[Outbox]:
    cfg = load_config(cfg_path)
    st = Store(cfg.store_url)
    with st.session() as s:
        rows = list(s.scalars(select(Outbox).order_by(Outbox.id)))
    st.dispose()
    return rows


@pytest.fixture(params=IMAP_KINDS)
def imap_server(request, tmp_path):
    """The engine runs on any RFC 3501 server: every test here runs on Dovecot
    and on pymap (which lacks UNSELECT and refuses CLOSE on EXAMINE)."""
    srv = start_imap(request.param, tmp_path / "imap")
    try:
        yield srv
    finally:
        srv.close()


def dovecot_only(srv, why: str) -> None:
    if srv.kind != "dovecot":
        pytest.skip(f"pymap: {why}")


@pytest.fixture
def env(tmp_path, imap_server, smtp_server):
    cfg = write_config(tmp_path / "cfg", imap=imap_server, smtp=smtp_server)
    return cfg, imap_server, smtp_server


# -- charsets through the real server ------------------------------------------

CHARSET_CASES = sorted(p.stem for p in DATA.glob("*.eml"))


@pytest.mark.parametrize("case", CHARSET_CASES)
def test_charset_case_decodes_through_imap(env, case):
    cfg, imap, smtp = env
    imap.append((DATA / f"{case}.eml").read_bytes())
    assert run(cfg, "once") == 0
    expected = json.loads((DATA / f"{case}.expected.json").read_text(encoding="utf-8"))
    (row,) = messages(cfg)
    if "subject" in expected:
        assert row.subject == expected["subject"]
    for piece in expected.get("body_contains", []):
        assert piece in row.text
    for piece in expected.get("body_not_contains", []):
        assert piece not in row.body


# -- the reply a staff member sees ------------------------------------------------

def test_ping_gets_a_threaded_chinese_receipt(env):
    cfg, imap, smtp = env
    raw = make_mail(subject="回复：工单测试 一下", message_id="<orig-1@client.example>", references="<older@client.example>")
    imap.append(raw)
    assert run(cfg, "once") == 0
    (m,) = smtp.wait_for(1)
    assert m.rcpt_tos == ["zhangsan@company.example"]
    assert m.subject == "回执：工单测试 一下"
    assert "工单系统已收到您的邮件" in m.text and "张三，您好" in m.text
    assert m.html and "工单系统已收到您的邮件" in m.html
    assert m.header("In-Reply-To") == "<orig-1@client.example>"
    assert "<older@client.example>" in m.header("References") and "<orig-1@client.example>" in m.header("References")
    assert m.header("Auto-Submitted") == "auto-replied"
    assert m.header("X-Auto-Response-Suppress") == "All"
    assert m.header("X-Ticket-Processor") == "tracking@company.example"
    assert "tracking@company.example" in m.header("From")
    assert m.header("Message-ID").endswith("@company.example>")
    # Running again sends nothing more.
    assert run(cfg, "once") == 0
    time.sleep(0.3)
    assert len(smtp.messages) == 1


def test_our_own_reply_coming_back_is_not_answered(env):
    cfg, imap, smtp = env
    imap.append(make_mail(subject="工单测试"))
    run(cfg, "once")
    (reply,) = smtp.wait_for(1)
    imap.append(reply.data)  # e.g. the tracking address was CC'd on its own reply
    run(cfg, "once")
    rows = messages(cfg)
    assert [r.status for r in rows] == ["processed", "machine"]
    assert "自动邮件，不回复：本系统自己发出的邮件（带有 X-Ticket-Processor 头" in rows[1].reason
    assert len(smtp.messages) == 1


# -- never answer a machine ---------------------------------------------------------

MACHINE_CASES = {
    "auto_submitted": dict(headers={"Auto-Submitted": "auto-replied"}),
    "auto_generated": dict(headers={"Auto-Submitted": "auto-generated"}),
    "precedence_bulk": dict(headers={"Precedence": "bulk"}),
    "precedence_junk": dict(headers={"Precedence": "junk"}),
    "precedence_list": dict(headers={"Precedence": "list"}),
    "list_id": dict(headers={"List-Id": "<staff.company.example>"}),
    "list_unsubscribe": dict(headers={"List-Unsubscribe": "<mailto:leave@company.example>"}),
    "exchange_rules_loop": dict(headers={"X-MS-Exchange-Inbox-Rules-Loop": "zhangsan@company.example"}),
    "ooo_subject_zh": dict(subject="自动回复：工单测试"),
    "ooo_subject_en": dict(subject="Automatic reply: 工单测试"),
    "mailer_daemon": dict(sender="MAILER-DAEMON@company.example", sender_name="Mail Delivery System"),
    "empty_return_path": dict(headers={"Return-Path": "<>"}),
    "loop_header": dict(headers={"X-Ticket-Processor": "tracking@company.example"}),
    "system_address": dict(sender="tracking@company.example", sender_name="工单系统"),
}


@pytest.mark.parametrize("case", sorted(MACHINE_CASES))
def test_machines_are_recorded_but_never_answered(env, case):
    cfg, imap, smtp = env
    kw = {"subject": "工单测试", **MACHINE_CASES[case]}
    imap.append(make_mail(**kw))
    imap.append(make_mail(subject="工单测试 对照"))  # a human mail behind it still gets its answer
    assert run(cfg, "once") == 0
    rows = messages(cfg)
    assert [r.status for r in rows] == ["machine", "processed"], [r.reason for r in rows]
    got = smtp.wait_for(1)
    time.sleep(0.3)
    assert len(smtp.messages) == 1 and got[0].subject == "回执：工单测试 对照"


def test_delivery_report_is_not_answered(env):
    cfg, imap, smtp = env
    dsn = (b"From: Mail Delivery System <postmaster@mx.example>\r\nTo: zhangsan@company.example\r\n"
           b"Subject: Undelivered Mail\r\nMessage-ID: <dsn-1@mx.example>\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n"
           b"--b\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
           b"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n"
           b"Final-Recipient: rfc822; x@y.z\r\nAction: failed\r\nStatus: 5.1.1\r\n--b--\r\n")
    imap.append(dsn)
    run(cfg, "once")
    (row,) = messages(cfg)
    assert row.status == "machine" and "投递状态通知或已读回执（multipart/report）" in row.reason
    time.sleep(0.3)
    assert smtp.messages == []


def test_rate_limit_per_recipient_per_day(tmp_path, imap_server, smtp_server):
    cfg = write_config(tmp_path, imap=imap_server, smtp=smtp_server, extra="[limits]\nreplies_per_recipient_per_day = 3\n")
    for i in range(5):
        imap_server.append(make_mail(subject=f"工单测试 {i}"))
    imap_server.append(make_mail(subject="工单测试 别人", sender="wangwu@company.example", sender_name="王五"))
    run(cfg, "once")
    smtp_server.wait_for(4)
    time.sleep(0.3)
    to_zhang = [m for m in smtp_server.messages if m.rcpt_tos == ["zhangsan@company.example"]]
    to_wang = [m for m in smtp_server.messages if m.rcpt_tos == ["wangwu@company.example"]]
    assert len(to_zhang) == 3 and len(to_wang) == 1
    statuses = [o.status for o in outbox(cfg)]
    assert statuses.count("suppressed") == 2
    assert all("已达发送上限：今天已向 zhangsan@company.example 自动回复 3 封" in o.last_error
               for o in outbox(cfg) if o.status == "suppressed")


# -- trust -------------------------------------------------------------------------

def test_unknown_sender_changes_nothing(env):
    cfg, imap, smtp = env
    imap.append(make_mail(subject="工单测试", sender="someone@outside.example", sender_name="外人"))
    run(cfg, "once")
    (row,) = messages(cfg)
    assert row.status == "untrusted" and row.reason == "发件人 someone@outside.example 不在通讯录中，未做任何更改"
    assert outbox(cfg) == []
    time.sleep(0.3)
    assert smtp.messages == []


def test_dmarc_gate_trusts_only_our_own_authserv_id(tmp_path, imap_server, smtp_server):
    cfg = write_config(tmp_path, imap=imap_server, smtp=smtp_server, trust=None)
    text = cfg.read_text(encoding="utf-8").replace('name = "工单系统"\n', 'name = "工单系统"\nrequire_dmarc = true\nauthserv_id = "mx.company.example"\n', 1)
    cfg.write_text(text, encoding="utf-8")
    imap_server.append(make_mail(subject="工单测试 无认证"))
    imap_server.append(make_mail(subject="工单测试 别家认证",
                                 headers={"Authentication-Results": "mx.evil.example; dmarc=pass header.from=company.example"}))
    imap_server.append(make_mail(subject="工单测试 认证失败",
                                 headers={"Authentication-Results": "mx.company.example; dmarc=fail header.from=company.example"}))
    imap_server.append(make_mail(subject="工单测试 认证通过",
                                 headers={"Authentication-Results": "mx.company.example; spf=pass; dmarc=pass header.from=company.example"}))
    run(cfg, "once")
    rows = messages(cfg)
    assert [r.status for r in rows] == ["untrusted", "untrusted", "untrusted", "processed"]
    assert [r.reason for r in rows[:3]] == [
        "发件人未通过认证：没有 mx.company.example 写入的、针对发件人域名 company.example 的 DMARC 结果；"
        "未做任何更改，也不回复"] * 2 + [
        "发件人未通过认证：mx.company.example 的 Authentication-Results 头显示 dmarc=fail；未做任何更改，也不回复"]
    (m,) = smtp_server.wait_for(1)
    time.sleep(0.3)
    assert len(smtp_server.messages) == 1 and m.subject == "回执：工单测试 认证通过"


# -- exactly once --------------------------------------------------------------------

def test_same_mail_delivered_twice_is_answered_once(env):
    cfg, imap, smtp = env
    raw = make_mail(subject="工单测试 两次")
    imap.append(raw)
    imap.append(raw)
    run(cfg, "once")
    imap.append(raw)
    run(cfg, "once")
    rows = messages(cfg)
    assert [r.status for r in rows] == ["processed", "duplicate", "duplicate"]
    assert rows[2].reason == f"与 #{rows[0].id} 是同一封邮件（Message-ID 和内容都相同），不再处理"
    smtp.wait_for(1)
    time.sleep(0.3)
    assert len(smtp.messages) == 1


def test_reused_message_id_with_different_body_is_processed(env):
    cfg, imap, smtp = env
    imap.append(make_mail(subject="工单测试 甲", body="第一封", message_id="<reuse@client.example>"))
    imap.append(make_mail(subject="工单测试 乙", body="第二封", message_id="<reuse@client.example>"))
    run(cfg, "once")
    rows = messages(cfg)
    assert [r.status for r in rows] == ["processed", "processed"]
    assert f"Message-ID 与 #{rows[0].id} 相同但内容不同，已作为新邮件处理" in rows[1].defects
    got = smtp.wait_for(2)
    assert sorted(m.subject for m in got) == ["回执：工单测试 乙", "回执：工单测试 甲"]


def test_raw_bytes_are_kept_and_quoted_history_stripped(env):
    cfg, imap, smtp = env
    raw = make_mail(subject="工单测试", body="新的内容\n\n-----原始邮件-----\n发件人: 李四\n旧的内容\n")
    imap.append(raw)
    run(cfg, "once")
    (row,) = messages(cfg)
    assert row.body.strip() == "新的内容"
    assert "旧的内容" in row.text
    rt = Runtime(load_config(cfg))
    assert rt.raw.get(row.sha256) == raw


# -- poison mail and quarantine ------------------------------------------------------

def test_poison_mail_is_quarantined_and_does_not_block(tmp_path, imap_server, smtp_server, capsys):
    from processor.workflows import ACTIONS

    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    (rules / "zz_boom.toml").write_text('name = "boom"\npriority = 1\n[match]\nsubject = "^工单测试 毒"\n'
                                        '[do]\naction = "test_maybe_boom"\n', encoding="utf-8")
    broken = {"on": True}

    def maybe_boom(ctx):
        if broken["on"]:
            raise RuntimeError("模拟的处理错误")
        ctx.reply("ping_ack", rule=ctx.match.rule, why="")
        ctx.decide("processed")

    ACTIONS["test_maybe_boom"] = maybe_boom
    try:
        cfg = write_config(tmp_path / "cfg", imap=imap_server, smtp=smtp_server, rules_dir=rules)
        imap_server.append(make_mail(subject="工单测试 前"))
        imap_server.append(make_mail(subject="工单测试 毒"))
        imap_server.append(make_mail(subject="工单测试 后"))
        run(cfg, "once")  # attempt 1 (batch), then a retry in the same pass
        got = smtp_server.wait_for(2)
        assert sorted(m.subject for m in got) == ["回执：工单测试 前", "回执：工单测试 后"]
        run(cfg, "once")  # further retries until the limit (3)
        rows = messages(cfg)
        poison = [r for r in rows if r.subject == "工单测试 毒"]
        assert len(poison) == 1 and poison[0].status == "quarantined" and poison[0].attempts == 3
        capsys.readouterr()
        assert run(cfg, "quarantine", "list") == 0
        listing = capsys.readouterr().out
        assert "模拟的处理错误" in listing and listing.split("\t")[1] == "待处理" and "open" not in listing
        qid = listing.split()[0]
        assert run(cfg, "quarantine", "show", qid) == 0
        shown = capsys.readouterr().out
        assert "Subject:" in shown and "状态：待处理" in shown
        # The time in the system time zone (Asia/Shanghai), as in the listing.
        ((created,),) = [(q.created_at,) for q in quarantine_rows(cfg)]
        local = created.astimezone(ZoneInfo(load_config(cfg).system.timezone))
        assert f"时间：{local:%Y-%m-%d %H:%M:%S}" in shown and f"{local:%Y-%m-%d %H:%M}" in listing
        broken["on"] = False  # the admin fixed the cause
        assert run(cfg, "quarantine", "retry", qid) == 0
        got = smtp_server.wait_for(3)
        assert got[2].subject == "回执：工单测试 毒"
        rows = messages(cfg)
        assert [r.status for r in rows if r.subject == "工单测试 毒"] == ["processed"]
        run(cfg, "quarantine", "list")
        assert "\t已重试\t" in capsys.readouterr().out
    finally:
        ACTIONS.pop("test_maybe_boom", None)


def test_malformed_mail_is_quarantined_with_raw_bytes(env, capsys):
    cfg, imap, smtp = env
    garbage = b"\x00\xff\xfe garbage\r\nnot a header\r\n\r\n\xc3\x28 body"
    imap.append(garbage)
    imap.append(make_mail(subject="工单测试 后面"))
    run(cfg, "once")
    rows = messages(cfg)
    assert [r.status for r in rows] == ["quarantined", "processed"]
    capsys.readouterr()
    run(cfg, "quarantine", "list")
    line = capsys.readouterr().out.splitlines()[0]
    assert "邮件格式有误：没有可用的 From 发件人地址" in line
    rt = Runtime(load_config(cfg))
    on_server = imap.fetch_all("INBOX")[rows[0].uid]  # Dovecot turns NUL into 0x80 on APPEND
    assert rt.raw.get(rows[0].sha256) == on_server


def test_too_large_mail_is_quarantined_and_sender_told_once(tmp_path, imap_server, smtp_server):
    cfg = write_config(tmp_path, imap=imap_server, smtp=smtp_server, account={"max_size": 20000})
    big = make_mail(subject="工单测试 大附件", body="日志\n" + "x" * 70 * 400)
    imap_server.append(big)
    imap_server.append(make_mail(subject="工单测试 小"))
    run(cfg, "once")
    run(cfg, "once")
    rows = messages(cfg)
    assert [r.status for r in rows] == ["quarantined", "processed"]
    assert "邮件过大" in rows[0].reason
    got = smtp_server.wait_for(2)
    time.sleep(0.3)
    assert len(smtp_server.messages) == 2
    notice = next(m for m in got if "过大" in m.subject)
    assert notice.rcpt_tos == ["zhangsan@company.example"] and "超过了工单系统的上限" in notice.text


# -- after processing: keep, flag or move --------------------------------------------

def test_after_move_moves_only_processed_mail(tmp_path, imap_server, smtp_server):
    cfg = write_config(tmp_path, imap=imap_server, smtp=smtp_server, account={"after": "move", "move_to": "Processed"})
    imap_server.append(make_mail(subject="工单测试 移走"))
    run(cfg, "once")
    assert imap_server.folder_uids("INBOX") == []
    assert len(imap_server.folder_uids("Processed")) == 1
    assert all(not r.post_action_pending for r in messages(cfg))


def test_after_flag_sets_the_flag(tmp_path, imap_server, smtp_server):
    cfg = write_config(tmp_path, imap=imap_server, smtp=smtp_server, account={"after": "flag", "flag": "\\Flagged"})
    imap_server.append(make_mail(subject="工单测试 标记"))
    run(cfg, "once")
    flags = imap_server.fetch_flags("INBOX")
    assert any(b"\\Flagged" in f for f in flags.values())


def test_the_next_batch_is_read_while_one_is_processed_and_each_mail_once_in_order(tmp_path, imap_server, smtp_server,
                                                                                   monkeypatch):
    from processor.intake.imap import ImapIntake
    from processor.pipeline import Pipeline

    cfg = write_config(tmp_path / "cfg", imap=imap_server, smtp=smtp_server, account={"fetch_batch": 2})
    u = [imap_server.append(make_mail(subject=f"工单测试 {i}", message_id=f"<ahead-{i}@client.example>"))
         for i in range(5)]  # (pymap numbers from 101)
    batches = [(u[0], u[1]), (u[2], u[3]), (u[4],)]
    log: list[str] = []
    started = {b: threading.Event() for b in batches[1:]}
    after = dict(zip(batches, batches[1:]))
    fetch, process = ImapIntake._fetch, Pipeline.process

    def fetched(self, folder, uidvalidity, uids):
        log.append(f"fetch {uids}")
        if tuple(uids) in started:
            started[tuple(uids)].set()
        return fetch(self, folder, uidvalidity, uids)

    def processed(self, items, **kw):
        out = process(self, items, **kw)
        if items:
            uids = tuple(i.uid for i in items)
            log.append(f"processed {list(uids)}")
            if uids in after:  # the next batch is being read while this one is processed
                assert started[after[uids]].wait(60), f"no read-ahead of {after[uids]} while {uids} was processed"
        return out

    monkeypatch.setattr(ImapIntake, "_fetch", fetched)
    monkeypatch.setattr(Pipeline, "process", processed)
    assert run(cfg, "once") == 0
    assert [e for e in log if e.startswith("processed")] == [f"processed {list(b)}" for b in batches]
    assert sorted(e for e in log if e.startswith("fetch")) == sorted(f"fetch {list(b)}" for b in batches)
    assert sorted(m.message_id for m in messages(cfg)) == [f"<ahead-{i}@client.example>" for i in range(5)]
    assert sorted(m.subject for m in smtp_server.wait_for(5)) == [f"回执：工单测试 {i}" for i in range(5)]
    assert run(cfg, "once") == 0
    assert len(messages(cfg)) == 5 and len(smtp_server.messages) == 5


def test_a_batch_read_ahead_is_marked_in_flight_in_the_transaction_of_the_batch_before_it(
        tmp_path, imap_server, smtp_server, monkeypatch):
    """Only the first batch of a pass writes its in-flight marks in a
    transaction of its own; each later one, read while the one before it
    was processed, is marked in that batch's transaction, and the marks are
    there when it starts. (The read-ahead is waited for here; the intake
    itself only takes it when it is done.)"""
    import processor.intake.imap as intake
    from processor.pipeline import Pipeline
    from processor.store.models import InFlight
    from processor.store.raw import sha256

    cfg = write_config(tmp_path / "cfg", imap=imap_server, smtp=smtp_server, account={"fetch_batch": 2})
    for i in range(5):
        imap_server.append(make_mail(subject=f"工单测试 {i}", message_id=f"<marked-{i}@client.example>"))
    monkeypatch.setattr(intake, "_ready", lambda future: (lambda: future.result()) if future is not None else None)
    store = Store(load_config(cfg).store.url)
    marks, found = [], []
    mark, process = Pipeline._mark, Pipeline.process

    def marked(self, shas, solo):
        marks.append(len(shas))
        return mark(self, shas, solo)

    def processed(self, items, **kw):
        if items:
            with store.reader() as s:
                held = set(s.scalars(select(InFlight.sha256)))
            found.append(sum(sha256(i.raw) in held for i in items))
        return process(self, items, **kw)

    monkeypatch.setattr(Pipeline, "_mark", marked)
    monkeypatch.setattr(Pipeline, "process", processed)
    assert run(cfg, "once") == 0
    assert marks == [2] and found == [0, 2, 1]
    with store.reader() as s:
        assert s.scalar(select(func.count()).select_from(InFlight)) == 0
    assert sorted(m.subject for m in smtp_server.wait_for(5)) == [f"回执：工单测试 {i}" for i in range(5)]
    store.dispose()


def test_batches_are_bounded_by_bytes_as_well_as_by_count(tmp_path, imap_server, smtp_server, monkeypatch):
    from processor.intake.imap import ImapIntake

    cfg = write_config(tmp_path / "cfg", imap=imap_server, smtp=smtp_server,
                       account={"fetch_batch": 50, "fetch_bytes": 1024 * 1024})
    body = "你好\n" + "填充内容填充内容填充内容 abcdefghij\n" * 8500  # about 400 KB: two fit in 1 MB, three do not
    u = [imap_server.append(make_mail(subject=f"工单测试 {i}", body=body, message_id=f"<big-{i}@client.example>"))
         for i in range(5)]
    calls: list[list[int]] = []
    fetch = ImapIntake._fetch

    def fetched(self, folder, uidvalidity, uids):
        calls.append(list(uids))
        return fetch(self, folder, uidvalidity, uids)

    monkeypatch.setattr(ImapIntake, "_fetch", fetched)
    assert run(cfg, "once") == 0
    assert calls == [u[0:2], u[2:4], u[4:5]]
    assert sorted(m.message_id for m in messages(cfg)) == [f"<big-{i}@client.example>" for i in range(5)]
    assert len(smtp_server.wait_for(5)) == 5


def _batch_sizes(tmp_path, imap_server, smtp_server, monkeypatch, n: int, first: int) -> list[int]:
    """How many mails each batch of one pass over ``n`` waiting mails held
    (fetch_batch 20, a first batch of ``first``); every mail recorded once."""
    from processor.intake import imap as intake

    cfg = write_config(tmp_path / "cfg", imap=imap_server, smtp=smtp_server, account={"fetch_batch": 20})
    monkeypatch.setattr(intake, "_FIRST_BATCH", first)
    imap_server.append_many([make_mail(subject=f"工单测试 {i}", message_id=f"<ramp-{i}@client.example>")
                             for i in range(n)])
    sizes: list[int] = []
    fetch = intake.ImapIntake._fetch
    monkeypatch.setattr(intake.ImapIntake, "_fetch",
                        lambda self, f, v, uids: sizes.append(len(uids)) or fetch(self, f, v, uids))
    assert run(cfg, "once") == 0
    assert sorted(m.message_id for m in messages(cfg)) == sorted(f"<ramp-{i}@client.example>" for i in range(n))
    return sizes


def test_the_first_batches_of_a_pass_are_small_so_that_replies_start_early(tmp_path, imap_server, smtp_server,
                                                                          monkeypatch):
    # Doubling, up to fetch_batch (20); then no more than half of what is
    # left (19 -> 10, 9 -> 5), down to _FIRST_BATCH; the last 4 (no more
    # than twice _FIRST_BATCH) in one batch.
    assert _batch_sizes(tmp_path, imap_server, smtp_server, monkeypatch, 40, 3) == [3, 6, 12, 10, 5, 4]


def test_the_last_batches_of_a_pass_are_small_so_that_the_pass_ends_soon_after_its_last_commit(
        tmp_path, imap_server, smtp_server, monkeypatch):
    """Full batches while more than twice a batch is left, then halves."""
    assert _batch_sizes(tmp_path, imap_server, smtp_server, monkeypatch, 100, 5) == [5, 10, 20, 20, 20, 13, 6, 6]


def test_sizes_are_asked_for_a_few_mails_first_so_that_the_first_batch_starts_at_once(tmp_path, imap_server,
                                                                                   smtp_server, monkeypatch):
    from processor.intake import imap as intake

    cfg = write_config(tmp_path / "cfg", imap=imap_server, smtp=smtp_server, account={"fetch_batch": 20})
    monkeypatch.setattr(intake, "_FIRST_BATCH", 3)
    monkeypatch.setattr(intake, "_FIRST_META", 4)
    monkeypatch.setattr(intake, "_META_WINDOW", 30)
    imap_server.append_many([make_mail(subject=f"工单测试 {i}", message_id=f"<meta-{i}@client.example>")
                             for i in range(40)])
    asked: list[int] = []
    fetched: list[int] = []
    sizes, fetch = intake.ImapIntake._sizes_and_dates, intake.ImapIntake._fetch
    monkeypatch.setattr(intake.ImapIntake, "_sizes_and_dates",
                        lambda self, uids: asked.append(len(uids)) or sizes(self, uids))
    monkeypatch.setattr(intake.ImapIntake, "_fetch",
                        lambda self, f, v, uids: fetched.append(len(uids)) or fetch(self, f, v, uids))
    assert run(cfg, "once") == 0
    assert asked == [4, 16, 20]  # four times as many each time, up to _META_WINDOW
    assert fetched == [3, 6, 12, 10, 5, 4]  # the batches are cut as before, across the windows
    assert sorted(m.message_id for m in messages(cfg)) == sorted(f"<meta-{i}@client.example>" for i in range(40))


def test_a_mail_larger_than_fetch_bytes_is_a_batch_of_its_own(tmp_path, imap_server, smtp_server, monkeypatch):
    from processor.intake.imap import ImapIntake

    cfg = write_config(tmp_path / "cfg", imap=imap_server, smtp=smtp_server,
                       account={"fetch_batch": 50, "fetch_bytes": 1024 * 1024})
    big = "你好\n" + "填充内容填充内容填充内容 abcdefghij\n" * 25000  # about 1.2 MB
    u = [imap_server.append(make_mail(subject=f"工单测试 {i}", body=big if i == 1 else "你好",
                                      message_id=f"<one-{i}@client.example>")) for i in range(3)]
    calls: list[list[int]] = []
    fetch = ImapIntake._fetch
    monkeypatch.setattr(ImapIntake, "_fetch", lambda self, f, v, uids: calls.append(list(uids)) or fetch(self, f, v, uids))
    assert run(cfg, "once") == 0
    assert calls == [[u[0]], [u[1]], [u[2]]]
    assert sorted(m.message_id for m in messages(cfg)) == [f"<one-{i}@client.example>" for i in range(3)]
    assert len(smtp_server.wait_for(3)) == 3


def test_default_keeps_mail_unread_on_server(env):
    cfg, imap, smtp = env
    imap.append(make_mail(subject="工单测试 保留"))
    run(cfg, "once")
    flags = imap.fetch_flags("INBOX")
    assert len(flags) == 1 and not any(b"\\Seen" in f for f in flags.values())


def test_uidvalidity_change_reconciles_instead_of_reimporting(env):
    cfg, imap, smtp = env
    dovecot_only(imap, "no way to change a mailbox's UIDVALIDITY (doveadm)")
    for i in range(3):
        imap.append(make_mail(subject=f"工单测试 {i}"))
    run(cfg, "once")
    smtp.wait_for(3)
    c = imap.connect()
    uv1 = c.folder_status("INBOX", [b"UIDVALIDITY"])[b"UIDVALIDITY"]
    c.logout()
    # The server resets the mailbox's UIDVALIDITY (as after a restore or migration).
    imap.doveadm("mailbox", "update", "-u", imap.user, "--uid-validity", str(uv1 + 1000), "INBOX")
    imap.append(make_mail(subject="工单测试 新的"))
    c = imap.connect()
    uv2 = c.folder_status("INBOX", [b"UIDVALIDITY"])[b"UIDVALIDITY"]
    c.logout()
    assert uv2 != uv1
    run(cfg, "once")
    got = smtp.wait_for(4)
    time.sleep(0.3)
    assert len(smtp.messages) == 4 and got[3].subject == "回执：工单测试 新的"
    rows = messages(cfg)
    assert [r.status for r in rows] == ["processed"] * 4
    assert {r.uidvalidity for r in rows} == {uv2}


# -- outages ----------------------------------------------------------------------------

def _serve(cfg_path, use_idle=True):
    rt = Runtime(load_config(cfg_path))
    d = Daemon(rt, use_idle=use_idle)
    t = threading.Thread(target=d.run, daemon=True)
    t.start()
    return d, t


def _wait(pred, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


def test_idle_picks_up_new_mail_without_polling(tmp_path, imap_server, smtp_server):
    cfg = write_config(tmp_path, imap=imap_server, smtp=smtp_server, account={"poll_interval": 3600})
    d, t = _serve(cfg)
    try:
        assert _wait(lambda: any(w.supported for w in d.watchers))
        time.sleep(0.5)
        imap_server.append(make_mail(subject="工单测试 IDLE"))
        (m,) = smtp_server.wait_for(1, timeout=30)
        assert m.subject == "回执：工单测试 IDLE"
    finally:
        d.stop()
        t.join(10)


def test_imap_server_restart_mid_run(tmp_path, imap_server, smtp_server):
    dovecot_only(imap_server, "its in-memory mailbox does not survive a restart")
    cfg = write_config(tmp_path, imap=imap_server, smtp=smtp_server)
    d, t = _serve(cfg)
    try:
        for i in range(5):
            imap_server.append(make_mail(subject=f"工单测试 前{i}"))
        smtp_server.wait_for(5, timeout=30)
        imap_server.kill()
        time.sleep(1)
        imap_server.start()
        for i in range(5):
            imap_server.append(make_mail(subject=f"工单测试 后{i}"))
        smtp_server.wait_for(10, timeout=60)
        assert t.is_alive()
    finally:
        d.stop()
        t.join(10)
    time.sleep(0.3)
    subjects = [m.subject for m in smtp_server.messages]
    assert len(subjects) == 10 and len(set(subjects)) == 10


def test_smtp_down_then_back_delivers_every_reply_once(env):
    cfg, imap, smtp = env
    smtp.set_fail("down")
    for i in range(4):
        imap.append(make_mail(subject=f"工单测试 {i}"))
    assert run(cfg, "once") == 0
    assert [o.status for o in outbox(cfg)] == ["pending"] * 4
    assert all(o.attempts == 0 and o.last_error for o in outbox(cfg))  # not tried: no attempt counted
    smtp.set_fail("tempfail")  # up, but refusing for now
    time.sleep(1.2)  # backoff_max in the test config is 1 s
    run(cfg, "once")
    assert smtp.messages == []
    assert {o.status for o in outbox(cfg)} == {"pending"} and all("451" in o.last_error for o in outbox(cfg))
    smtp.set_fail(None)
    time.sleep(1.2)
    run(cfg, "once")
    got = smtp.wait_for(4)
    time.sleep(0.3)
    assert len(smtp.messages) == 4
    assert len({m.header("Message-ID") for m in got}) == 4
    assert [o.status for o in outbox(cfg)] == ["sent"] * 4


def test_mail_content_is_data_not_template_source(env):
    cfg, imap, smtp = env
    imap.append(make_mail(subject="工单测试 {{ 7*7 }} <script>alert(1)</script>", sender_name="{{ system.name }}"))
    run(cfg, "once")
    (m,) = smtp.wait_for(1)
    assert m.subject == "回执：工单测试 {{ 7*7 }} <script>alert(1)</script>"
    assert "{{ 7*7 }}" in m.text and "49" not in m.text
    assert "&lt;script&gt;" in m.html and "<script>" not in m.html


def test_client_identifies_itself_with_imap_id(tmp_path, smtp_server):
    """163/126 mail refuse SELECT until the client sends ID (RFC 2971)."""
    from processor.devservers.imap import DovecotServer

    srv = DovecotServer(tmp_path / "imap", extra_conf="imap_id_log = *\nmail_debug = no\n")
    srv.start()
    try:
        cfg = write_config(tmp_path / "cfg", imap=srv, smtp=smtp_server)
        srv.append(make_mail(subject="工单测试 ID"))
        run(cfg, "once")
        smtp_server.wait_for(1)
        log = Path(srv.log_path).read_text(errors="replace")
        assert "ticket-processor" in log
    finally:
        srv.close()
