"""The outbox against a real aiosmtpd server, on SQLite and PostgreSQL:
delivery tracked per recipient, and claims under a lease shared by any number
of senders."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timezone

import pytest
from sqlalchemy import event, select

from processor import outbox
from processor.config import load_config
from processor.outbox import Deliverer, Outgoing, mail_bytes, recover
from processor.pipeline import Pipeline, Runtime
from processor.store.models import Outbox, OutboxContent
from support import ROOT, run, write_config

A, B, C, D = "a@client.example", "b@client.example", "c@client.example", "d@client.example"


def setup(tmp_path, smtp, db_url, outbox: str = "") -> tuple:
    cfg = write_config(tmp_path, smtp=smtp, db_url=db_url)
    if outbox:
        cfg.write_text(cfg.read_text(encoding="utf-8").replace("[outbox]\n", "[outbox]\n" + outbox + "\n"), encoding="utf-8")
    return cfg, Runtime(load_config(cfg))


def queue(rt, n: int = 1, *, to=(A,), cc=()) -> list[str]:
    pipeline = Pipeline(rt)
    from processor.template_contexts import CONTEXTS
    sample = CONTEXTS["ping_ack"].sample  # exactly the variables its callers pass
    outs = [Outgoing("ping_ack", to=list(to), cc=list(cc), kind="notice",
                     variables={**sample, "topic": f"测试 {i}", "subject": f"测试 {i}", "system": rt.cfg.system})
            for i in range(n)]
    with rt.store.session() as s, s.begin():
        return pipeline.queue_outgoing(s, outs)


def rows(rt) -> list[Outbox]:
    with rt.store.reader() as s:
        return list(s.scalars(select(Outbox).order_by(Outbox.id)))


def report(cfg, capsys) -> list[dict]:
    capsys.readouterr()
    assert run(cfg, "report", "outbox", "--format", "json") == 0
    return json.loads(capsys.readouterr().out)


def wait_due(rt) -> None:
    """Sleep until every pending row's backoff has passed."""
    due = max(r.next_attempt_at for r in rows(rt) if r.status == "pending")
    time.sleep(max(0.0, (due - datetime.now(timezone.utc)).total_seconds()) + 0.05)


# ---------------------------------------------------------------------------
# 8bit text, and servers without 8BITMIME
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("eight_bit_mime", [True, False])
def test_text_goes_8bit_where_the_server_takes_it_and_in_base64_where_not(tmp_path, db_url, eight_bit_mime):
    from processor.devservers.smtp import CaptureSMTPServer

    srv = CaptureSMTPServer(eight_bit_mime=eight_bit_mime)
    srv.start()
    try:
        cfg, rt = setup(tmp_path, srv, db_url)
        (mid,) = queue(rt)
        (stored,) = rows(rt)
        with rt.store.reader() as s:
            content = s.get(OutboxContent, stored.id)
        built = mail_bytes(rt.cfg, content.raw, content.draft, lambda: rt.renderer)
        assert not built.isascii()  # built once, 8bit
        assert Deliverer(rt.cfg, rt.store).deliver_due().sent == 1
        (got,) = srv.wait_for(1)
    finally:
        srv.stop()
    assert got.message_id == mid and got.subject == "回执：测试 0"
    parts = {p.get_content_type(): p for p in got.message.walk() if not p.is_multipart()}
    encodings = {t: p["Content-Transfer-Encoding"] for t, p in parts.items()}
    if eight_bit_mime:
        assert "BODY=8BITMIME" in got.mail_options and not got.data.isascii()
        assert encodings == {"text/plain": "8bit", "text/html": "8bit"}
        assert got.data == built  # the bytes the outbox keeps (its draft, built)
    else:
        assert got.mail_options == [] and got.data.isascii()  # nothing 8-bit to a server that did not offer it
        assert encodings == {"text/plain": "base64", "text/html": "base64"}
        head = built.split(b"\r\n\r\n", 1)[0]
        assert got.data.startswith(head + b"\r\n")  # its own header fields, as they were
    assert "测试 0" in got.text and "测试 0" in got.html
    (row,) = rows(rt)
    assert row.status == "sent"


def test_a_draft_that_cannot_be_built_waits_and_the_others_go(tmp_path, db_url, smtp_server, caplog):
    cfg, rt = setup(tmp_path, smtp_server, db_url)
    first, second = queue(rt, 2)
    with rt.store.session() as s, s.begin():
        bad = s.get(OutboxContent, s.scalars(select(Outbox.id).where(Outbox.message_id == first)).one())
        bad.draft = {"message_id": first}  # damaged: most of what the mail is built from is gone
    assert Deliverer(rt.cfg, rt.store).deliver_due().sent == 1
    assert [m.message_id for m in smtp_server.wait_for(1)] == [second]
    by_id = {r.message_id: r for r in rows(rt)}
    assert by_id[second].status == "sent"
    assert by_id[first].status == "pending" and "无法生成这封邮件" in by_id[first].last_error
    assert "无法生成" in caplog.text


def test_a_mail_whose_content_is_missing_waits_with_that_reason_and_the_others_go(tmp_path, db_url, smtp_server):
    cfg, rt = setup(tmp_path, smtp_server, db_url)
    first, second = queue(rt, 2)
    with rt.store.session() as s, s.begin():
        s.delete(s.get(OutboxContent, s.scalars(select(Outbox.id).where(Outbox.message_id == first)).one()))
    assert Deliverer(rt.cfg, rt.store).deliver_due().sent == 1
    assert [m.message_id for m in smtp_server.wait_for(1)] == [second]
    by_id = {r.message_id: r for r in rows(rt)}
    assert by_id[first].status == "pending" and "无法生成这封邮件" in by_id[first].last_error
    assert "存储中没有这封邮件的内容" in by_id[first].last_error


# ---------------------------------------------------------------------------
# per recipient
# ---------------------------------------------------------------------------

def test_a_4xx_for_one_recipient_is_retried_for_that_recipient_alone(tmp_path, smtp_server, db_url, capsys):
    cfg, rt = setup(tmp_path, smtp_server, db_url)
    (mid,) = queue(rt, to=(A,), cc=(B, C))
    smtp_server.script_rcpt(B, "451 4.2.1 mailbox busy, try later")

    st = Deliverer(rt.cfg, rt.store).deliver_due()
    assert (st.sent, st.deferred, st.failed) == (0, 1, 0)
    (first,) = smtp_server.wait_for(1)
    assert first.rcpt_tos == [A, C] and first.message_id == mid
    (row,) = rows(rt)
    assert row.status == "pending" and row.attempts == 1
    assert {a: v["state"] for a, v in row.rcpt_state.items()} == {A: "sent", B: "deferred", C: "sent"}
    assert row.rcpt_state[B]["code"] == 451 and "mailbox busy" in row.rcpt_state[B]["reply"]
    (line,) = report(cfg, capsys)
    assert line["状态"] == "部分已送达，其余待重试" and line["未送达"] == "" and B in line["错误"]

    wait_due(rt)
    st = Deliverer(rt.cfg, rt.store).deliver_due()
    assert (st.sent, st.deferred, st.failed) == (1, 0, 0)
    second = smtp_server.wait_for(2)[1]
    assert second.rcpt_tos == [B]  # only the refused recipient, the same mail
    assert second.message_id == mid and second.data == first.data
    (row,) = rows(rt)
    assert row.status == "sent" and row.attempts == 2 and row.sent_at is not None
    assert {a: v["state"] for a, v in row.rcpt_state.items()} == {A: "sent", B: "sent", C: "sent"}
    assert Counter(r for m in smtp_server.messages for r in m.rcpt_tos) == {A: 1, B: 1, C: 1}
    assert smtp_server.rcpt_log == [(A, 250), (B, 451), (C, 250), (B, 250)]
    assert report(cfg, capsys)[0]["状态"] == "已发送"
    # Nothing is due any more.
    assert Deliverer(rt.cfg, rt.store).deliver_due().sent == 0 and len(smtp_server.messages) == 2


def test_a_5xx_for_one_recipient_is_recorded_shown_and_logged(tmp_path, smtp_server, db_url, capsys, caplog):
    cfg, rt = setup(tmp_path, smtp_server, db_url)
    (mid,) = queue(rt, to=(A,), cc=(D,))
    smtp_server.script_rcpt(D, then="550 5.1.1 <d@client.example>: no such user")

    with caplog.at_level(logging.WARNING, logger="processor.outbox"):
        st = Deliverer(rt.cfg, rt.store).deliver_due()
    assert (st.sent, st.deferred, st.failed) == (1, 0, 0)
    (got,) = smtp_server.wait_for(1)
    assert got.rcpt_tos == [A]
    (row,) = rows(rt)
    assert row.status == "sent" and row.rcpt_state[D]["state"] == "failed" and row.rcpt_state[D]["code"] == 550
    (line,) = report(cfg, capsys)
    assert line["状态"] == "已发送（1 位收件人未送达）"
    assert line["未送达"] == "d@client.example（550 5.1.1 <d@client.example>: no such user）"
    (msg,) = [r.getMessage() for r in caplog.records if D in r.getMessage()]
    assert "无法送达 d@client.example" in msg and "收件服务器拒收" in msg and "550" in msg and mid in msg
    # Not tried again.
    time.sleep(0.3)
    Deliverer(rt.cfg, rt.store).deliver_due()
    assert smtp_server.rcpt_log == [(A, 250), (D, 550)]


def test_every_recipient_refused_for_good_fails_the_mail(tmp_path, smtp_server, db_url, capsys):
    cfg, rt = setup(tmp_path, smtp_server, db_url)
    queue(rt, to=(D,))
    smtp_server.script_rcpt(D, then="550 5.1.1 no such user")
    st = Deliverer(rt.cfg, rt.store).deliver_due()
    assert (st.sent, st.deferred, st.failed) == (0, 0, 1)
    assert smtp_server.messages == []
    assert rows(rt)[0].status == "failed"
    assert report(cfg, capsys)[0]["状态"] == "发送失败"


def test_a_server_down_for_longer_than_max_attempts_rounds_fails_no_mail(tmp_path, smtp_server, db_url, capsys):
    cfg, rt = setup(tmp_path, smtp_server, db_url, outbox="max_attempts = 2")
    (mid,) = queue(rt, to=(A,))
    smtp_server.set_fail("down")
    for _ in range(4):  # twice max_attempts rounds, each one connection refused
        st = Deliverer(rt.cfg, rt.store).deliver_due()
        assert st.error and (st.sent, st.deferred, st.failed) == (0, 1, 0)
        (row,) = rows(rt)
        assert row.status == "pending" and row.attempts == 0 and not row.rcpt_state
        assert "连接" in row.last_error or "refused" in row.last_error.lower()
        wait_due(rt)
    (line,) = report(cfg, capsys)
    assert line["状态"] == "待发送" and line["错误"]
    smtp_server.set_fail(None)
    st = Deliverer(rt.cfg, rt.store).deliver_due()
    assert (st.sent, st.deferred, st.failed) == (1, 0, 0)
    (got,) = smtp_server.wait_for(1)
    assert got.message_id == mid and got.rcpt_tos == [A]
    (row,) = rows(rt)
    assert row.status == "sent" and row.last_error == ""


def test_a_recipient_deferred_until_the_last_attempt_is_given_up(tmp_path, smtp_server, db_url, capsys, caplog):
    cfg, rt = setup(tmp_path, smtp_server, db_url, outbox="max_attempts = 2")
    queue(rt, to=(A,), cc=(B,))
    smtp_server.script_rcpt(B, then="452 4.2.2 mailbox full")
    Deliverer(rt.cfg, rt.store).deliver_due()
    wait_due(rt)
    with caplog.at_level(logging.WARNING, logger="processor.outbox"):
        Deliverer(rt.cfg, rt.store).deliver_due()
    (row,) = rows(rt)
    assert row.status == "sent" and row.attempts == 2 and row.rcpt_state[B]["state"] == "failed"
    assert [m.rcpt_tos for m in smtp_server.messages] == [[A]]
    assert report(cfg, capsys)[0]["未送达"] == "b@client.example（452 4.2.2 mailbox full）"
    assert any("已尝试 2 次仍被暂时拒收" in r.getMessage() and B in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------------------
# leases: any number of senders on one store
# ---------------------------------------------------------------------------

def test_a_sender_marks_each_mail_in_its_journal_and_records_the_claim_in_the_store_once(tmp_path, smtp_server,
                                                                                          db_url):
    """On both stores (PostgreSQL: in ``outbox.journal_dir``): a mail's
    in-flight mark and its acceptance are lines in the sender's own journal,
    not statements; the journal is folded into the store when the claim is
    done, and emptied."""
    cfg, rt = setup(tmp_path, smtp_server, db_url)
    base = rt.store.journal
    if "postgresql" in db_url:
        assert base.parent == tmp_path / "data" and base.name.startswith("outbox-") and base.name.endswith(".delivered")
    else:
        assert base == tmp_path / "store.db.delivered"
    queue(rt, 4)
    d = Deliverer(rt.cfg, rt.store)
    assert d.owner.endswith("j")  # a journaling sender: see the next test
    seen = []

    def on_sql(conn, cur, stmt, params, *_a):
        seen.append(stmt.split()[0])

    event.listen(rt.store.engine, "after_cursor_execute", on_sql)
    try:
        assert d.deliver_due().sent == 4
    finally:
        event.remove(rt.store.engine, "after_cursor_execute", on_sql)
    # The claim (select, update), the mails read, the fold; nothing per mail.
    assert seen.count("UPDATE") <= 3, seen
    journal = base.with_name(f"{base.name}.{d.owner}")
    assert journal.exists() and journal.read_bytes() == b""
    assert {(r.status, r.claimed_by, r.uncertain) for r in rows(rt)} == {("sent", "", False)}
    assert len(smtp_server.wait_for(4)) == 4


OTHER_HOST = "otherhost_4242_99999_abcdefj"  # a journaling sender on another host


def _held_by(rt, owner: str, *, lease_seconds: float) -> None:
    """Every row claimed by ``owner`` under a lease ending in ``lease_seconds``."""
    from datetime import timedelta

    from sqlalchemy import update
    with rt.store.session() as s, s.begin():
        s.execute(update(Outbox).values(status="claimed", claimed_by=owner,
                                        lease_until=datetime.now(timezone.utc) + timedelta(seconds=lease_seconds)))


def test_the_claims_of_a_sender_whose_journal_is_on_another_host_wait_for_it_or_for_outbox_release(
        tmp_path, smtp_server, db_url, caplog, capsys):
    """Which of its mails went out is written only in its journal, on its
    host: nothing is taken back here, and the log says how to go on. An
    admin who knows that host is gone puts them back with ``outbox release``:
    then they go out again flagged uncertain, with the same Message-ID."""
    cfg, rt = setup(tmp_path, smtp_server, db_url)
    mids = queue(rt, 2)
    _held_by(rt, OTHER_HOST, lease_seconds=300)
    assert run(cfg, "outbox", "release", OTHER_HOST) == 2  # its lease runs: it may be sending
    assert "租约" in capsys.readouterr().err
    _held_by(rt, OTHER_HOST, lease_seconds=-1)  # lapsed
    with caplog.at_level(logging.WARNING, logger="processor.outbox"):
        assert recover(rt.store) == 0
        assert Deliverer(rt.cfg, rt.store).deliver_due().sent == 0
    assert {(r.status, r.claimed_by) for r in rows(rt)} == {("claimed", OTHER_HOST)}
    (warning,) = [r.getMessage() for r in caplog.records if OTHER_HOST in r.getMessage()]
    assert "主机 otherhost 上" in warning and f"python run.py outbox release {OTHER_HOST}" in warning
    # The admin sees them in the outbox report, and in check --connect (which still passes).
    assert {r["错误"] for r in report(cfg, capsys)} == {warning.removeprefix("发信：").removesuffix("；本进程不接手")}
    assert run(cfg, "check", "--connect") == 0
    out = capsys.readouterr()
    assert f"! 发件队列：主机 otherhost 上的发信进程 {OTHER_HOST} 持有 2 封邮件" in out.err and "连接检查通过" in out.out
    assert run(cfg, "outbox", "release", OTHER_HOST) == 0
    assert "2 封邮件放回发件队列" in capsys.readouterr().out
    assert {(r.status, r.claimed_by, r.uncertain) for r in rows(rt)} == {("pending", "", True)}
    assert Deliverer(rt.cfg, rt.store).deliver_due().sent == 2
    assert sorted(m.message_id for m in smtp_server.wait_for(2)) == sorted(mids)
    assert run(cfg, "outbox", "release", OTHER_HOST) == 0
    assert "没有持有任何邮件" in capsys.readouterr().out


def test_a_lapsed_claim_from_another_host_is_taken_back_exactly_where_its_journal_can_be_read(tmp_path, smtp_server,
                                                                                             db_url):
    """A journal on a shared folder, or a sender that keeps its marks in the
    store (no "j"): the rows come back without asking anyone, and only the
    one in flight is uncertain."""
    cfg, rt = setup(tmp_path, smtp_server, db_url)
    queue(rt, 3)
    first, second, third = (r.id for r in rows(rt))
    _held_by(rt, OTHER_HOST, lease_seconds=-1)
    base = rt.store.journal
    base.parent.mkdir(parents=True, exist_ok=True)
    base.with_name(f"{base.name}.{OTHER_HOST}").write_text(
        f"s\t{first}\n{first}\t2026-12-01T08:00:00+00:00\ns\t{second}\n")  # the first accepted, the second in flight
    assert recover(rt.store) == 1
    assert [(r.status, r.uncertain) for r in rows(rt)] == [("sent", False), ("pending", True), ("pending", False)]
    store_marks = OTHER_HOST[:-1]  # the same sender without a journal: 'sending' marks the one in flight
    _held_by(rt, store_marks, lease_seconds=-1)
    from sqlalchemy import update
    with rt.store.session() as s, s.begin():
        s.execute(update(Outbox).where(Outbox.id == third).values(status="sending"))
    assert recover(rt.store) == 1
    assert [(r.status, r.uncertain) for r in rows(rt)][2] == ("pending", True)


def test_rows_under_a_live_lease_are_left_alone_and_taken_back_when_it_expires(tmp_path, smtp_server, db_url):
    cfg, rt = setup(tmp_path, smtp_server, db_url, outbox="lease = 2")
    queue(rt, 3)
    holder = Deliverer(rt.cfg, rt.store)
    assert len(holder._claim(10)) == 3  # a sender that stalls after claiming (this process: alive)
    other = Deliverer(rt.cfg, rt.store)
    assert recover(rt.store) == 0
    assert other.deliver_due().sent == 0 and smtp_server.messages == []
    assert {(r.status, r.claimed_by) for r in rows(rt)} == {("claimed", holder.owner)}
    time.sleep(2.1)  # the lease is over
    assert recover(rt.store) == 0  # claimed but never in flight: not uncertain
    assert {(r.status, r.claimed_by, r.uncertain) for r in rows(rt)} == {("pending", "", False)}
    assert other.deliver_due().sent == 3
    assert sorted(Counter(m.message_id for m in smtp_server.wait_for(3)).values()) == [1, 1, 1]


CRASHING_SENDER = """
import asyncio, contextlib, os, signal, sys
from processor.config import load_config
from processor.outbox import Deliverer, _journal_for
from processor.store.db import Store
cfg = load_config(sys.argv[1])
store = Store(cfg.store_url, upgrade=False, journal_dir=cfg.journal_dir)
d = Deliverer(cfg, store)
rows = d._claim(100)
jpath = _journal_for(store, d.owner)
if jpath:
    jpath.parent.mkdir(parents=True, exist_ok=True)
with store.engine.connect() as d._conn, (open(jpath, "a") if jpath else contextlib.nullcontext()) as d._journal:
    asyncio.run(d._started(rows[1]))  # the second row is in flight...
    os.kill(os.getpid(), signal.SIGKILL)  # ...when the sender dies
"""


@pytest.mark.parametrize("journal_dir", ["data", ""])
def test_a_dead_senders_rows_come_back_at_once_and_only_the_one_in_flight_is_uncertain(tmp_path, smtp_server, db_url,
                                                                                      journal_dir):
    if journal_dir == "" and "postgresql" not in db_url:
        pytest.skip("SQLite's sender always keeps a journal")
    # the default lease: 300 s; on PostgreSQL without a journal the mark is in the store
    cfg, rt = setup(tmp_path, smtp_server, db_url, outbox=f'journal_dir = "{journal_dir}"')
    mids = queue(rt, 4)
    proc = subprocess.run([sys.executable, "-c", CRASHING_SENDER, str(cfg)], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == -9, proc.stderr
    assert [r.status for r in rows(rt)] == ["claimed", "claimed" if journal_dir else "sending", "claimed", "claimed"]
    assert recover(rt.store) == 1
    assert [(r.status, r.uncertain) for r in rows(rt)] == [("pending", False), ("pending", True), ("pending", False),
                                                            ("pending", False)]
    assert Deliverer(rt.cfg, rt.store).deliver_due().sent == 4
    assert sorted(m.message_id for m in smtp_server.wait_for(4)) == sorted(mids)


def test_a_connection_lost_after_the_mail_went_out_flags_the_row_uncertain(tmp_path, smtp_server, db_url, capsys):
    cfg, rt = setup(tmp_path, smtp_server, db_url)
    (mid,) = queue(rt, to=(A,))
    smtp_server.set_fail("drop_after_data")  # the server has the mail; we never hear its 250
    st = Deliverer(rt.cfg, rt.store).deliver_due()
    assert st.deferred == 1 and st.error
    (row,) = rows(rt)
    assert (row.status, row.uncertain) == ("pending", True)
    smtp_server.set_fail(None)
    wait_due(rt)
    assert Deliverer(rt.cfg, rt.store).deliver_due().sent == 1
    assert [m.message_id for m in smtp_server.wait_for(2)] == [mid, mid]  # the repeat is flagged, same Message-ID
    (row,) = rows(rt)
    assert (row.status, row.uncertain) == ("sent", True)
    assert report(cfg, capsys)[0]["状态"] == "已发送，可能重复发送"


SENDER = """
import sys
from processor.config import load_config
from processor.outbox import Deliverer, recover
from processor.store.db import Store
cfg = load_config(sys.argv[1])
store = Store(cfg.store_url, upgrade=False)
recover(store)
d = Deliverer(cfg, store)
print("ready", flush=True)
sys.stdin.readline()  # all start together
sent = 0
while True:
    st = d.deliver_due()
    sent += st.sent
    if not (st.sent or st.deferred or st.failed):
        break
print(sent, flush=True)
"""


def test_several_senders_share_one_store_while_one_is_killed(tmp_path, smtp_server, db_url):
    import random
    import signal

    seed = int(os.environ.get("CRASH_SEED", time.time()))
    rnd = random.Random(seed)
    cfg, rt = setup(tmp_path, smtp_server, db_url, outbox="batch = 10")
    mids = queue(rt, 300)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def sender():
        p = subprocess.Popen([sys.executable, "-c", SENDER, str(cfg)], cwd=ROOT, env=env, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert p.stdout.readline() == "ready\n", p.stderr.read()
        return p

    def go(*procs):
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.close()

    a, b, c = sender(), sender(), sender()
    go(a, b, c)
    time.sleep(rnd.uniform(0.05, 0.5))
    b.send_signal(signal.SIGKILL)
    b.wait()
    for p in (a, c):
        assert p.wait() == 0, p.stderr.read()
    # One more sender takes back what the killed one held (at once: it is dead) and sends it.
    d = sender()
    go(d)
    assert d.wait() == 0, d.stderr.read()
    print(f"seed {seed}: sent by the survivors {[int(p.stdout.read()) for p in (a, c, d)]}")
    got = Counter(m.message_id for m in smtp_server.wait_for(300))
    out = rows(rt)
    assert set(got) == set(mids) and {r.status for r in out} == {"sent"}, f"seed {seed}"
    uncertain = {r.message_id for r in out if r.uncertain}
    assert all(n == 1 or (n == 2 and mid in uncertain) for mid, n in got.items()), f"seed {seed}: {got.most_common(3)}"
    assert len(uncertain) <= rt.cfg.smtp.connections, f"seed {seed}"


def test_a_sender_starts_no_send_after_half_its_lease(tmp_path, smtp_server, db_url):
    cfg, rt = setup(tmp_path, smtp_server, db_url, outbox="lease = 0.001")
    queue(rt, 3)
    st = Deliverer(rt.cfg, rt.store).deliver_due()
    assert (st.sent, st.deferred, st.failed) == (0, 0, 0)
    assert smtp_server.messages == [] and smtp_server.rcpt_log == []
    # Given back untried: not counted as an attempt, not uncertain, free for the next claim.
    assert {(r.status, r.claimed_by, r.attempts, r.uncertain) for r in rows(rt)} == {("pending", "", 0, False)}


def test_postgresql_sender_commits_without_waiting_for_the_disk_and_gives_the_connection_back_as_it_was(
        tmp_path, smtp_server, db_url, monkeypatch):
    """Without a journal (``outbox.journal_dir = ""``: senders on several
    hosts), its per-mail statements go on the event loop's own connection (a
    round trip to the server no longer stops the other SMTP connections),
    each commits itself (one round trip, not BEGIN, UPDATE and COMMIT) without
    waiting for the disk (the same promise as the unsynced journal); nothing
    else in the process is changed."""
    cfg, rt = setup(tmp_path, smtp_server, db_url, outbox='journal_dir = ""')
    if rt.store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's sender always appends to its journal")
    seen = []

    class Watched(Deliverer):
        async def _execute(self, stmt, params):
            c = self._aconn
            setting = (await (await c.execute("SHOW synchronous_commit")).fetchone())[0]
            seen.append((type(c).__name__, c.autocommit, setting, "nxt" in params))
            await super()._execute(stmt, params)

    queue(rt, 3)
    monkeypatch.setattr(outbox, "OWN_CONNECTION_FROM", 3)
    st = Watched(rt.cfg, rt.store).deliver_due()
    assert st.sent == 3
    # Two SMTP connections, mails 1 and 3 on the first: each connection's
    # first mail is marked in flight alone, then a result and the next mark
    # are one statement (mail 1 sent, 3 in flight), and a last result alone.
    assert sorted(seen) == [("AsyncConnection", True, "off", False)] * 4 + [("AsyncConnection", True, "off", True)], seen
    assert [r.status for r in rows(rt)] == ["sent"] * 3
    with rt.store.engine.connect() as c:  # the pooled connection, back to the server's setting
        assert c.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
        assert c.connection.dbapi_connection.autocommit is False


def test_a_small_postgresql_claim_sends_on_the_pooled_connection(tmp_path, smtp_server, db_url):
    """Without a journal, a claim of a few mails (a daemon answering mail as
    it comes) does not open a connection of its own: its statements go on the
    pooled one, each committing itself without waiting for the disk."""
    cfg, rt = setup(tmp_path, smtp_server, db_url, outbox='journal_dir = ""')
    if rt.store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's sender always appends to its journal")
    seen = []

    def on_sql(conn, cur, stmt, params, *_a):
        if stmt.startswith("UPDATE outbox") and "rid" in (params or {}):  # a mail's (not the claim's)
            seen.append((cur.connection.autocommit, conn.exec_driver_sql("SHOW synchronous_commit").scalar()))

    queue(rt, 3)
    event.listen(rt.store.engine, "after_cursor_execute", on_sql)
    try:
        assert Deliverer(rt.cfg, rt.store).deliver_due().sent == 3
    finally:
        event.remove(rt.store.engine, "after_cursor_execute", on_sql)
    assert 3 < outbox.OWN_CONNECTION_FROM and seen == [(True, "off")] * 5, seen


def test_a_claim_reads_the_mails_after_its_commit(tmp_path, smtp_server, db_url):
    """The claim's write transaction takes the rows' ids only; the mails
    (about 10 kB each) are read once they are ours, by a reader: on SQLite
    the intake waits for the write lock while a claim holds it."""
    cfg, rt = setup(tmp_path, smtp_server, db_url)
    mids = queue(rt, 3)
    seen: list[tuple[bool, str]] = []
    event.listen(rt.store.engine, "before_cursor_execute",
                 lambda conn, _cur, sql, *_a: seen.append((bool(conn.get_execution_options().get("read_only")), sql)))
    assert Deliverer(rt.cfg, rt.store).deliver_due().sent == 3
    contents = [read_only for read_only, sql in seen if "outbox_content" in sql]
    assert contents and all(contents), seen
    assert sorted(m.message_id for m in smtp_server.wait_for(3)) == sorted(mids)


def test_a_sqlite_sender_takes_the_write_lock_once_per_batch(tmp_path, smtp_server):
    """What a batch's journal says was accepted is recorded in the same
    transaction as the next claim: the intake holds SQLite's write lock for
    most of a pass, and every wait for it is time the sender does not send."""
    cfg, rt = setup(tmp_path, smtp_server, None, outbox="batch = 2")
    mids = queue(rt, 5)
    writes: list[str] = []
    event.listen(rt.store.engine, "begin", lambda conn: writes.append("w")
                 if not conn.get_execution_options().get("read_only") else None)
    st = Deliverer(rt.cfg, rt.store).deliver_due()
    assert st.sent == 5
    assert len(writes) == 4, writes  # three claims of 2, 2 and 1, and the empty one that records the last batch
    assert [r.status for r in rows(rt)] == ["sent"] * 5
    assert sorted(m.message_id for m in smtp_server.wait_for(5)) == sorted(mids)


def test_rows_committed_while_a_sqlite_sender_waits_for_the_lock_are_in_its_claim(tmp_path, smtp_server, monkeypatch):
    """What is due is decided once the sender holds the write lock: replies the
    intake commits while the sender waits go out with this claim, not a batch
    later."""
    import threading
    import time as _time
    import types

    from processor.store import db

    cfg, rt = setup(tmp_path, smtp_server, None)
    waiting = threading.Event()
    monkeypatch.setattr(db, "time", types.SimpleNamespace(
        monotonic=_time.monotonic, sleep=lambda s: (waiting.set(), _time.sleep(s))))
    result = {}
    sender = threading.Thread(target=lambda: result.setdefault("st", Deliverer(rt.cfg, rt.store).deliver_due(
        max_batches=1)))
    pipeline = Pipeline(rt)
    from processor.template_contexts import CONTEXTS
    sample = CONTEXTS["ping_ack"].sample
    with rt.store.session() as s, s.begin():
        s.connection()  # the intake's batch holds the write lock
        sender.start()
        assert waiting.wait(30)
        mids = pipeline.queue_outgoing(s, [Outgoing("ping_ack", to=[A], kind="notice", variables={
            **sample, "topic": f"测试 {i}", "subject": f"测试 {i}", "system": rt.cfg.system}) for i in range(3)])
    sender.join()
    assert result["st"].sent == 3
    assert sorted(m.message_id for m in smtp_server.wait_for(3)) == sorted(mids)
