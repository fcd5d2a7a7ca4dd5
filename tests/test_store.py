"""Store behaviour on both backends: dedupe, reused Message-IDs, outbox in the
same transaction, migrations. Runs once on SQLite and once on PostgreSQL."""
from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone

import pytest

from sqlalchemy import Text, func, select, text
from sqlalchemy import inspect as sa_inspect

from processor.config import load_config
from processor.pipeline import Incoming, Pipeline, Runtime
from processor.store.db import Store
from processor.store.models import Audit, Message, Outbox, SyncState
from support import ROOT, make_mail, write_config


def runtime(tmp_path, db_url) -> Runtime:
    cfg = load_config(write_config(tmp_path, db_url=db_url))
    return Runtime(cfg)


def rows(rt, model, *where):
    with rt.store.session() as s:
        return list(s.scalars(select(model).where(*where).order_by(model.id)))


def test_schema_is_created_and_migrations_are_idempotent(tmp_path, db_url):
    rt = runtime(tmp_path, db_url)
    again = Store(rt.store.url)  # second start: upgrade is a no-op
    with again.engine.connect() as c:
        assert c.execute(text("select version_num from alembic_version")).scalar() is not None
    again.dispose()


def test_a_store_at_the_newest_revision_opens_without_importing_alembic(tmp_path, db_url):
    import subprocess
    import sys

    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from processor.store.db import MIGRATIONS, head_revision

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert [head_revision()] == ScriptDirectory.from_config(cfg).get_heads()
    rt = runtime(tmp_path, db_url)  # a new store: migrated
    code = ("import sys; from processor.store.db import Store; s = Store(sys.argv[1]); "
            "print(sorted(m for m in ('alembic', 'mako', 'pygments') if m in sys.modules)); s.dispose()")
    out = subprocess.run([sys.executable, "-c", code, rt.store.url], capture_output=True, text=True, cwd=str(ROOT))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    # One revision behind (the newest one undone): upgraded as before.
    from alembic import command

    from processor.store.db import alembic_config
    command.downgrade(alembic_config(rt.store.engine), "-1")
    with rt.store.engine.connect() as c:
        assert c.execute(text("select version_num from alembic_version")).scalar() != head_revision()
    out = subprocess.run([sys.executable, "-c", code, rt.store.url], capture_output=True, text=True, cwd=str(ROOT))
    assert out.returncode == 0, out.stderr
    assert "alembic" in out.stdout
    with rt.store.engine.connect() as c:
        assert c.execute(text("select version_num from alembic_version")).scalar() == head_revision()
    rt.store.dispose()


def test_postgresql_writes_mail_bytes_with_lz4(tmp_path, db_url):
    """The outbox's and the raw mails' bytes are compressed with lz4 where the
    server has it (pglz cost the server a fifth of its time on replies)."""
    rt = runtime(tmp_path, db_url)
    try:
        with rt.store.engine.connect() as c:
            if c.dialect.name != "postgresql":
                pytest.skip("SQLite does not compress")
            has = "lz4" in (c.execute(text("SELECT enumvals FROM pg_settings "
                                           "WHERE name = 'default_toast_compression'")).scalar() or [])
            got = dict(c.execute(text("SELECT c.relname || '.' || a.attname, a.attcompression FROM pg_attribute a "
                                      "JOIN pg_class c ON c.oid = a.attrelid "
                                      "WHERE c.oid IN (to_regclass('outbox_content'), to_regclass('raw_mails')) "
                                      "AND a.attname IN ('raw', 'draft', 'data')")).all())
        columns = ("outbox_content.raw", "outbox_content.draft", "raw_mails.data")
        assert got == {k: "l" if has else "" for k in columns}
    finally:
        rt.store.dispose()


def test_mail_reply_and_sync_position_commit_together(tmp_path, db_url):
    rt = runtime(tmp_path, db_url)
    p = Pipeline(rt)
    raw = make_mail(subject="工单测试 第一封")
    p.process([Incoming(raw, "support", "INBOX", 7, 1)], sync={("support", "INBOX"): (7, 1)})
    msgs = rows(rt, Message)
    assert [(m.status, m.rule, m.uid) for m in msgs] == [("processed", "ping", 1)]
    out = rows(rt, Outbox)
    assert len(out) == 1 and out[0].to_addrs == ["zhangsan@company.example"] and out[0].status == "pending"
    assert out[0].caused_by == msgs[0].id
    assert "回执" in out[0].subject
    with rt.store.session() as s:
        st = s.get(SyncState, ("support", "INBOX"))
        assert (st.uidvalidity, st.last_uid) == (7, 1)
    assert rt.raw.get(msgs[0].sha256) == raw  # raw bytes kept, content-addressed


def test_same_mail_twice_is_recorded_once(tmp_path, db_url):
    rt = runtime(tmp_path, db_url)
    p = Pipeline(rt)
    raw = make_mail(subject="工单测试 重复")
    p.process([Incoming(raw, "support", "INBOX", 7, 1), Incoming(raw, "support", "INBOX", 7, 2)])
    p.process([Incoming(raw)])  # and again by replay
    msgs = rows(rt, Message)
    assert [m.status for m in msgs] == ["processed", "duplicate", "duplicate"]
    assert {m.duplicate_of for m in msgs[1:]} == {msgs[0].id}
    assert len(rows(rt, Outbox)) == 1  # one reply only


def test_reused_message_id_with_other_content_is_a_new_mail(tmp_path, db_url):
    rt = runtime(tmp_path, db_url)
    p = Pipeline(rt)
    a = make_mail(subject="工单测试 A", body="第一封", message_id="<same@client.example>")
    b = make_mail(subject="工单测试 B", body="第二封，内容不同", message_id="<same@client.example>")
    p.process([Incoming(a)])
    p.process([Incoming(b)])
    msgs = rows(rt, Message)
    assert [m.status for m in msgs] == ["processed", "processed"]
    assert any("Message-ID 与 #" in d and "相同但内容不同" in d for d in msgs[1].defects)
    assert len(rows(rt, Outbox)) == 2


def test_same_uid_seen_again_is_not_reprocessed(tmp_path, db_url):
    rt = runtime(tmp_path, db_url)
    p = Pipeline(rt)
    raw = make_mail(subject="工单测试 UID")
    p.process([Incoming(raw, "support", "INBOX", 7, 5)])
    p.process([Incoming(raw, "support", "INBOX", 7, 5)])
    assert len(rows(rt, Message)) == 1
    assert len(rows(rt, Outbox)) == 1


def test_audit_and_outbox_roll_back_with_a_failed_batch(tmp_path, db_url):
    """A mail whose processing raises leaves nothing behind but its failure record."""
    from processor.workflows import ACTIONS

    rt = runtime(tmp_path, db_url)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "boom.toml").write_text('name = "boom"\n[match]\nsubject = "^爆炸"\n[do]\naction = "test_boom"\n', encoding="utf-8")
    shutil.copy(ROOT / "rules" / "ping.toml", rules)

    def boom(ctx):
        ctx.reply("ping_ack", rule=ctx.match.rule, why="")
        ctx.audit("test", 1, "before-boom")
        raise RuntimeError("action bug")

    ACTIONS["test_boom"] = boom
    try:
        rt.cfg.paths.rules = str(rules)
        rt.reload()
        p = Pipeline(rt)
        p.process([Incoming(make_mail(subject="爆炸")), Incoming(make_mail(subject="工单测试 后面的"))])
    finally:
        del ACTIONS["test_boom"]
    msgs = rows(rt, Message)
    assert sorted(m.status for m in msgs) == ["failed", "processed"]
    assert len(rows(rt, Outbox)) == 1  # only the good mail's reply
    assert rows(rt, Audit, Audit.action == "before-boom") == []
    with rt.store.session() as s:
        assert s.scalar(select(func.count()).select_from(Message).where(Message.error.like("%action bug%"))) == 1


def _hog(path, stop, cycles, hold=0.1, gap=0.004):
    """Another writer, as the daemon's intake is: the write lock held for
    ``hold`` (the first time for half a second, so that a waiting writer is
    past SQLite's first short sleeps), free for ``gap``, taken again; counts
    its cycles."""
    import sqlite3
    import time

    c = sqlite3.connect(path, isolation_level=None, timeout=30)
    while not stop.is_set() and cycles[0] < 200:
        c.execute("BEGIN IMMEDIATE")
        time.sleep(hold if cycles[0] else 0.5)
        c.execute("COMMIT")
        cycles[0] += 1
        time.sleep(gap)
    c.close()


def test_a_sqlite_writer_gets_in_between_another_writers_transactions(tmp_path):
    """The sender's claims wait for the intake's batch transactions, which
    leave the lock free for a few milliseconds only. SQLite's own busy
    handler sleeps 100 ms at a time and missed those gaps for seconds; the
    store tries again every few milliseconds and takes the first or second."""
    import threading

    rt = runtime(tmp_path, None)
    path = rt.store.url.split("///", 1)[-1]
    stop, cycles = threading.Event(), [0]
    hog = threading.Thread(target=_hog, args=(path, stop, cycles))
    hog.start()
    try:
        threading.Event().wait(0.05)  # the other writer holds the lock now
        with rt.store.session() as s, s.begin():
            s.add(SyncState(account="a", folder="INBOX", uidvalidity=1, last_uid=1))
        waited = cycles[0]
    finally:
        stop.set()
        hog.join()
    assert waited <= 3, f"the writer waited {waited} of the other writer's transactions"
    with rt.store.session() as s:
        assert s.get(SyncState, ("a", "INBOX")).last_uid == 1


def test_a_sqlite_writer_that_never_gets_the_lock_fails_as_locked(tmp_path, monkeypatch):
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from processor.store import db

    rt = runtime(tmp_path, None)
    monkeypatch.setattr(db, "BUSY_TIMEOUT", 0.2)
    other = sqlite3.connect(rt.store.url.split("///", 1)[-1], isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(OperationalError, match="locked"):
            with rt.store.session() as s, s.begin():
                s.add(SyncState(account="a", folder="INBOX", uidvalidity=1, last_uid=1))
    finally:
        other.execute("ROLLBACK")
        other.close()
    with rt.store.engine.connect() as c:  # the connection waits as before for its other statements
        assert c.exec_driver_sql("PRAGMA busy_timeout").scalar() == 200


def test_a_json_value_is_encoded_once_and_stored_as_json_dumps_gives_it(tmp_path, db_url, monkeypatch):
    """SafeJSON checks a value by encoding it; the engine's encoder passes that
    text on instead of encoding the value again. A value the check refuses
    (a NUL in a string) is still cleaned first."""
    import json

    import processor.store.models as models

    st = Store(db_url or f"sqlite:///{tmp_path / 'j.db'}")
    calls = []

    def counted(encode):
        return lambda v, *a, **k: calls.append(1) or encode(v, *a, **k)
    monkeypatch.setattr(models.json, "dumps", counted(json.dumps))  # the engine's encoder
    monkeypatch.setattr(models, "_dumps", counted(models._dumps))  # SafeJSON's check
    clean = {"why": "中文 \"引号\"", "n": [1, 2.5, None, True]}
    with st.session() as s, s.begin():
        s.add(Audit(entity="t", entity_id="1", action="a", actor="", detail=clean))
    assert len(calls) == 1
    with st.session() as s, s.begin():
        s.add(Audit(entity="t", entity_id="2", action="a", actor="", detail={"bad": "x\x00y"}))
    monkeypatch.undo()
    with st.reader() as s:
        stored = dict(s.execute(select(Audit.entity_id, func.cast(Audit.detail, Text)).order_by(Audit.id)).all())
        details = dict(s.execute(select(Audit.entity_id, Audit.detail)).all())
    assert json.loads(stored["1"]) == clean and details["1"] == clean
    assert "\x00" not in details["2"]["bad"] and "\\u0000" not in stored["2"]
    st.dispose()


def test_queued_mails_move_to_their_own_table_and_back(tmp_path, db_url):
    """0012: a queued mail's bytes or draft leave its outbox row for
    outbox_content (same id), and come back on a downgrade."""
    from alembic import command

    from processor.store.db import alembic_config
    rt = runtime(tmp_path, db_url)
    cfg = alembic_config(rt.store.engine)
    try:
        command.downgrade(cfg, "0011_outbox_drafts")
        columns = ("message_id, template, kind, mail_from, rcpt, to_addrs, cc_addrs, subject, raw, draft, status, "
                   "attempts, next_attempt_at, last_error, created_at, uncertain")
        with rt.store.engine.begin() as c:
            for i, (raw, draft) in enumerate([(b"From: a\r\n\r\nbody\r\n", None), (None, '{"text": "\u6b63\u6587"}')]):
                c.execute(text(f"INSERT INTO outbox ({columns}) VALUES (:mid, 't', 'reply', 'a@x', '[]', '[]', '[]', 's', "
                               ":raw, :draft, 'pending', 0, :now, '', :now, :no)"),
                          {"mid": f"<m{i}@x>", "raw": raw, "draft": draft, "now": datetime.now(timezone.utc), "no": False})
        command.upgrade(cfg, "head")
        with rt.store.engine.connect() as c:
            got = c.execute(text("SELECT o.message_id, c.raw, c.draft FROM outbox o "
                                 "JOIN outbox_content c ON c.id = o.id ORDER BY o.id")).all()
            outbox_columns = {col["name"] for col in sa_inspect(c).get_columns("outbox")}
        assert [(m, bytes(r) if r is not None else None, d if isinstance(d, (dict, type(None))) else json.loads(d))
                for m, r, d in got] == [("<m0@x>", b"From: a\r\n\r\nbody\r\n", None), ("<m1@x>", None, {"text": "正文"})]
        assert not {"raw", "draft"} & outbox_columns
        command.downgrade(cfg, "-1")
        with rt.store.engine.connect() as c:
            back = c.execute(text("SELECT message_id, raw FROM outbox ORDER BY id")).all()
            assert "outbox_content" not in sa_inspect(c).get_table_names()
        assert [(m, bytes(r) if r is not None else None) for m, r in back] == \
            [("<m0@x>", b"From: a\r\n\r\nbody\r\n"), ("<m1@x>", None)]
        command.upgrade(cfg, "head")
    finally:
        rt.store.dispose()
