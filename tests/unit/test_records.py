"""The batch-scoped record service (processor/records.py), in process, on
SQLite and PostgreSQL: ids without a flush, lookups that see the batch's own
changes, counters, rows written in bulk; and what a batch of realistic mail
costs the store (flushes and statements), which must not creep back."""
from __future__ import annotations

import sys
from datetime import datetime, timezone

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from processor.config import load_config
from processor.pipeline import Incoming, Pipeline, Runtime
from processor.records import Row, fresh, records_of
from processor.store.db import Store
from processor.store.models import Audit, Counter, Message, Penalty, ThreadLink, Ticket
from support import ROOT, write_config

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc)


@pytest.fixture
def store(db_url):
    st = Store(db_url)
    yield st
    st.dispose()


def _message(rec, mid: str) -> Message:
    return rec.new_message(Message(account="unit", folder="INBOX", sha256="0" * 64, status="new", message_id=mid,
                                   from_addr="a@company.example", body="正文"))


def test_ids_and_numbers_without_a_flush(store):
    flushes = []
    with store.session() as s, s.begin():
        event.listen(s, "after_flush", lambda *_: flushes.append(1))
        rec = records_of(s)
        m1, m2 = _message(rec, "<a@x>"), _message(rec, "<b@x>")
        t1 = rec.new_ticket("report", prefix="HB", state="accepted", message=m1, now=NOW)
        t2 = rec.new_ticket("report", prefix="HB", state="accepted", message=m2, now=NOW)
        rec.link("<a@x>", t1)
        assert (m1.id, m2.id) == (m1.id, m1.id + 1) and t2.id == t1.id + 1
        assert (t1.number, t2.number) == ("HB2026-0001", "HB2026-0002")
        assert t1.opened_by_message == m1.id
        assert rec.ticket_for_thread(None, ["<a@x>"]) is t1 and rec.ticket_by_token("HB2026-0002") is t2
        assert flushes == []
    with store.reader() as s:
        assert s.scalar(select(func.count()).select_from(Ticket)) == 2
        assert s.get(ThreadLink, "<a@x>").ticket_id == t1.id
    with store.session() as s, s.begin():  # the next batch continues the ids and the numbers
        rec = records_of(s)
        t3 = rec.new_ticket("report", prefix="HB", state="accepted", message=_message(rec, "<c@x>"), now=NOW)
        assert t3.number == "HB2026-0003" and t3.id > t2.id


def test_a_row_made_without_the_orms_constructor_is_stored_and_changed_as_one_made_with_it(store):
    """``fresh`` puts the values in the object's __dict__, past the ORM's
    instrumentation: the service writes it as it writes a constructed one,
    and a change made after that is an UPDATE."""
    values = dict(account="unit", folder="INBOX", sha256="0" * 64, status="new", from_addr="a@company.example",
                  body="正文", to_addrs=["b@company.example"], received_at=NOW)
    with store.session() as s, s.begin():
        rec = records_of(s)
        made, built = rec.new_message(fresh(Message, message_id="<f@x>", **values)), \
            rec.new_message(Message(message_id="<c@x>", **values))
        assert made.status == "new" and made.to_addrs == ["b@company.example"] and made.subject is None
        made.status = built.status = "processed"
        s.flush()  # the new rows are written, then the changes
        made.reason = built.reason = "已处理"
    columns = [c.key for c in Message.__table__.c if c.key not in ("id", "message_id")]
    with store.reader() as s:
        a, b = (s.scalars(select(Message).where(Message.message_id == m)).one() for m in ("<f@x>", "<c@x>"))
        assert [getattr(a, c) for c in columns] == [getattr(b, c) for c in columns]
        assert (a.status, a.reason, a.received_at) == ("processed", "已处理", NOW)


def test_questions_see_what_the_batch_changed(store):
    with store.session() as s, s.begin():
        rec = records_of(s)
        old = rec.new_ticket("followup", prefix="GJ", state="open", project="华夏银行", message=None, now=NOW)
        rec.new_ticket("followup", prefix="GJ", state="open", project="东方电网", message=None, now=NOW)
    with store.session() as s, s.begin():
        rec = records_of(s)
        assert [t.number for t in rec.tickets("followup", "华夏银行", ("open",))] == [old.number]
        loaded = rec.ticket_by_token(old.number)
        loaded.state = "closed"  # as states.change does, then tells the service
        rec.state_changed(loaded, "open", "closed")
        new = rec.new_ticket("followup", prefix="GJ", state="open", project="华夏银行", message=None, now=NOW)
        assert rec.tickets("followup", "华夏银行", ("open",)) == [new]
        assert [t.project for t in rec.tickets("followup", None, ("open",))] == ["东方电网", "华夏银行"]
        assert rec.events == [("state", loaded, "open", "closed")]  # records opened here: states.open_record tells


def test_same_mail_seen_again_in_the_batch_and_before(store):
    with store.session() as s, s.begin():
        rec = records_of(s)
        first = _message(rec, "<dup@x>")
        first.status = "processed"
    with store.session() as s, s.begin():
        rec = records_of(s)
        rec.prime(["<dup@x>"], [], [])
        again = _message(rec, "<dup@x>")
        third = _message(rec, "<dup@x>")
        other = rec.new_message(Message(account="unit", folder="INBOX", sha256="1" * 64, status="new",
                                        message_id="<dup@x>", from_addr="b@company.example", body="正文"))
        assert rec.same_mail(third) == [first.id, again.id]
        assert rec.same_mail(third, processed_only=True) == [first.id]
        assert rec.same_mail(other) == []


def test_counters_keep_the_last_items_and_are_built_once(store):
    built = []

    def build():
        built.append(1)
        return [["2026-11-02", 1, "TS2026-0001"], ["2026-11-03", 2, "TS2026-0002"]]

    with store.session() as s, s.begin():
        rec = records_of(s)
        c = rec.counter("complaint", "张三", "2026-11", build=build, keep=2)
        rec.count_in(c, ["2026-11-01", 3, "TS2026-0003"], keep=2)
        rec.count_in(c, ["2026-11-01", 3, "TS2026-0003"], keep=2)  # counted once
        # In counting order; the oldest beyond ``keep`` dropped, but counted.
        assert [i[-1] for i in c.items] == ["TS2026-0002", "TS2026-0003"] and c.count == 3
    with store.session() as s, s.begin():
        rec = records_of(s)
        c = rec.counter("complaint", "张三", "2026-11", build=build, keep=2)
        assert c.count == 3 and built == [1]
        rec.count_set(c, [["2026-11-02", 1, "TS2026-0001"]], keep=2)
    with store.reader() as s:
        row = s.get(Counter, ("complaint", "张三", "2026-11"))
        assert (row.count, row.items) == (1, [["2026-11-02", 1, "TS2026-0001"]])


def test_rows_loaded_by_some_columns_answer_each_question_with_one_query(store):
    def penalty(engineer, window, ordinal):
        return Penalty(engineer=engineer, rule="monthly", window=window, ordinal=ordinal, threshold=ordinal * 3,
                       penalty="扣发1级", complaints=[])

    with store.session() as s, s.begin():
        rec = records_of(s)
        for p in (penalty("张三", "2026-11", 1), penalty("李四", "2026-11", 1), penalty("张三", "2026-10", 1)):
            rec.add(p)
    queries = []
    event.listen(store.engine, "before_cursor_execute", lambda _c, _cur, stmt, *_a: queries.append(stmt))
    with store.session() as s, s.begin():
        rec = records_of(s)

        def ask(engineer, ordinal):
            return [(p.engineer, p.window, p.ordinal) for p in rec.rows(
                Penalty, load_by=("window",), engineer=engineer, rule="monthly", window="2026-11", ordinal=ordinal)]

        assert ask("张三", 1) == [("张三", "2026-11", 1)]
        assert ask("李四", 1) == [("李四", "2026-11", 1)] and ask("张三", 2) == [] and ask("王五", 1) == []
        assert len([q for q in queries if q.replace('"', "").count("WHERE penalties.window")]) == 1
        rec.add(penalty("张三", "2026-11", 2))  # a row added in the batch joins the answer
        assert ask("张三", 2) == [("张三", "2026-11", 2)]
        assert [p.window for p in rec.rows(Penalty, load_by=("window",), engineer="张三", window="2026-10")] \
            == ["2026-10"]
        assert len([q for q in queries if q.replace('"', "").count("WHERE penalties.window")]) == 2


def test_bulk_rows_are_written_before_a_reader_and_at_commit(store):
    with store.session() as s, s.begin():
        rec = records_of(s)
        m = _message(rec, "<m@x>")
        rec.audit("ticket", "HB2026-0001", "opened", message=m, at=NOW)
        # A query in the same transaction sees it, as it would see an ORM row.
        assert s.scalars(select(Audit.action)).all() == ["opened"]
        rec.audit("ticket", "HB2026-0001", "changed", message=m, at=NOW)
        rec.insert(ThreadLink, Row(message_id="<n@x>", ticket_id=rec.new_ticket(
            "report", prefix="HB", state="accepted", message=m, now=NOW).id))
    with store.reader() as s:
        assert s.scalars(select(Audit.action).order_by(Audit.id)).all() == ["opened", "changed"]
        assert s.get(ThreadLink, "<n@x>") is not None


def test_a_batch_of_realistic_mail_costs_one_flush_and_few_statements(tmp_path, db_url):
    """The mix of bench/mix.py (reports, complaints, thread replies, machine
    mail, strangers, duplicates), 200 mails per batch: the store is written
    once per batch, and the statements per mail stay few."""
    sys.path.insert(0, str(ROOT / "bench"))
    from mix import mix_directory, mix_mails

    cfg = load_config(write_config(tmp_path, db_url=db_url, directory=mix_directory(),
                                   extra="[limits]\nreplies_per_recipient_per_day = 100000\n"))
    rt = Runtime(cfg)
    try:
        p = Pipeline(rt)
        mails = mix_mails(600, seed=7)
        p.process([Incoming(raw) for raw in mails[:200]])  # a store with history
        flushes, sql = [], []

        def on_flush(*_a):
            flushes.append(1)

        event.listen(Session, "after_flush", on_flush)
        event.listen(rt.store.engine, "before_cursor_execute", lambda *_a: sql.append(1))
        try:
            outcomes = p.process([Incoming(raw) for raw in mails[200:400]])
            outcomes += p.process([Incoming(raw) for raw in mails[400:]])
        finally:
            event.remove(Session, "after_flush", on_flush)
        statuses = {o.status for o in outcomes}
        assert statuses >= {"processed", "machine", "untrusted", "duplicate"}, statuses
        assert "failed" not in statuses and "quarantined" not in statuses
        assert len(flushes) <= 2 * 2 + 2, len(flushes)  # the batch's own, and a rare path's at most
        assert len(sql) / 400 <= 2.5, len(sql) / 400
    finally:
        rt.store.dispose()


@pytest.mark.parametrize("whole", [500, 0], ids=["all-projects-at-once", "per-project"])
def test_newest_open_records_and_their_count_as_the_batch_left_them(store, monkeypatch, whole):
    import processor.records
    monkeypatch.setattr(processor.records, "WHOLE", whole)
    open_, done = ("open",), "closed"
    with store.session() as s, s.begin():
        rec = records_of(s)
        m = _message(rec, "<seed@x>")
        for i in range(6):
            rec.new_ticket("followup", prefix="GJ", project="甲" if i < 5 else "乙", state="open", message=m, now=NOW)
    with store.session() as s, s.begin():
        rec = records_of(s)
        m = _message(rec, "<batch@x>")
        first = rec.ticket_by_token("GJ2026-0001")  # seen before the count: counted from the batch
        first.state = done
        rec.state_changed(first, "open", done)
        newest, total = rec.newest("followup", "甲", open_, 2)
        assert [t.number for t in newest] == ["GJ2026-0004", "GJ2026-0005"] and total == 4
        # Changes after the count: one closed, one opened.
        fifth = rec.ticket_by_token("GJ2026-0005")
        fifth.state = done
        rec.state_changed(fifth, "open", done)
        rec.new_ticket("followup", prefix="GJ", project="甲", state="open", message=m, now=NOW)
        newest, total = rec.newest("followup", "甲", open_, 2)
        assert [t.number for t in newest] == ["GJ2026-0004", "GJ2026-0007"] and total == 4
        assert rec.newest("followup", "乙", open_, 2)[1] == 1 and rec.newest("followup", "丙", open_, 2) == ([], 0)
        assert rec.newest("followup", "甲", open_, 0) == ([], 4)


def test_newest_reads_a_project_again_when_the_batch_closed_more_than_it_read(store, monkeypatch):
    import processor.records
    monkeypatch.setattr(processor.records, "WHOLE", 0)  # per project
    with store.session() as s, s.begin():
        rec = records_of(s)
        m = _message(rec, "<seed@x>")
        for _ in range(8):
            rec.new_ticket("followup", prefix="GJ", project="甲", state="open", message=m, now=NOW)
    with store.session() as s, s.begin():
        rec = records_of(s)
        newest, total = rec.newest("followup", "甲", ("open",), 2)
        assert [t.number for t in newest] == ["GJ2026-0007", "GJ2026-0008"] and total == 8
        for number in ("GJ2026-0008", "GJ2026-0007", "GJ2026-0006"):  # more than the two spare
            t = rec.ticket_by_token(number)
            t.state = "closed"
            rec.state_changed(t, "open", "closed")
        newest, total = rec.newest("followup", "甲", ("open",), 2)
        assert [t.number for t in newest] == ["GJ2026-0004", "GJ2026-0005"] and total == 5
        newest, total = rec.newest("followup", "甲", ("open",), 4)  # more than asked for before
        assert [t.number for t in newest] == ["GJ2026-0002", "GJ2026-0003", "GJ2026-0004", "GJ2026-0005"]


def test_the_mail_that_opened_a_record_is_known_before_it_is_written(store):
    """A reply later in the same batch threads under the mail that opened
    the record, although that mail's row is not written yet; a later batch
    reads it back with one query, and asks once per batch."""
    sql = []
    with store.session() as s, s.begin():
        rec = records_of(s)
        m = _message(rec, "<opener@x>")
        m.subject_norm = "客户沟通-甲项目-张三"
        m.received_at = NOW
        t = rec.new_ticket("report", prefix="HB", state="accepted", message=m, now=NOW)
        event.listen(store.engine, "before_cursor_execute", lambda _c, _cur, stmt, *_a: sql.append(stmt))
        assert rec.openers({t.opened_by_message, None}) == {m.id: ("<opener@x>", NOW, "客户沟通-甲项目-张三")}
        assert sql == []
        mid = m.id
    with store.session() as s, s.begin():
        rec = records_of(s)
        before = len(sql)
        got = rec.openers({mid, 999999})
        assert got[mid][0] == "<opener@x>" and got[mid][2] == "客户沟通-甲项目-张三" and 999999 not in got
        assert rec.openers({mid, 999999}) == got
        asked = [q for q in sql[before:] if q.lstrip().upper().startswith("SELECT")]
        assert len(asked) == 1, asked


def test_postgresql_ids_a_batch_did_not_use_serve_the_next_batch(store):
    """A sequence's value is never handed out twice, so the ids reserved and
    left over by one batch are the next batch's: no round trip for them."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite takes the table's max id + 1 inside its write transaction")
    asked = []
    event.listen(store.engine, "before_cursor_execute",
                 lambda _c, _cur, stmt, *_a: asked.append(stmt) if "nextval" in stmt else None)
    with store.session() as s, s.begin():
        first = _message(records_of(s), "<one@x>").id
    with store.session() as s, s.begin():
        second = _message(records_of(s), "<two@x>").id
    assert len(asked) == 1 and second > first


def test_postgresql_a_busy_table_asks_for_ids_less_often_from_batch_to_batch(store):
    """Each round trip for ids fetches twice as many as the last, and the
    next batch goes on from there: batches of 100 new records each ask once
    or not at all once the block has grown, instead of three times each."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite takes the table's max id + 1 inside its write transaction")
    asked = []
    event.listen(store.engine, "before_cursor_execute",
                 lambda _c, _cur, stmt, *_a: asked.append(stmt) if "nextval" in stmt else None)
    per_batch = []
    for b in range(6):
        before = len(asked)
        with store.session() as s, s.begin():
            rec = records_of(s)
            m = _message(rec, f"<batch{b}@x>")
            for _ in range(100):
                rec.new_ticket("report", prefix="HB", state="accepted", message=m, now=NOW)
        per_batch.append(len(asked) - before)
    # messages: one ask; tickets: 32 + 64 + 128 in the first batch, then what is left and 256, 512...
    assert per_batch[0] == 4 and sum(per_batch[1:]) <= 4, per_batch


def test_the_numbers_of_every_kind_are_read_in_one_query_per_batch(store):
    with store.session() as s, s.begin():
        rec = records_of(s)
        m = _message(rec, "<n1@x>")
        for prefix in ("HB", "TS", "GZ"):
            rec.new_ticket("report", prefix=prefix, state="accepted", message=m, now=NOW)
    asked = []
    event.listen(store.engine, "before_cursor_execute",
                 lambda _c, _cur, stmt, *_a: asked.append(stmt) if "FROM settings" in stmt else None)
    with store.session() as s, s.begin():
        rec = records_of(s)
        m = _message(rec, "<n2@x>")
        numbers = [rec.new_ticket("report", prefix=p, state="accepted", message=m, now=NOW).number
                   for p in ("GZ", "HB", "TS", "HB", "XQ")]
    assert numbers == ["GZ2026-0002", "HB2026-0002", "TS2026-0002", "HB2026-0003", "XQ2026-0001"]
    assert len(asked) == 1, asked


def test_message_rows_are_written_by_the_service_and_then_are_the_sessions_own(store):
    """A batch's mail rows are written in bulk, before anything that refers
    to them (an explicit flush included), with the columns' defaults; after
    that a query returns the same object, and a change to it is stored."""
    with store.session() as s, s.begin():
        rec = records_of(s)
        m = _message(rec, "<row@x>")
        t = rec.new_ticket("report", prefix="HB", state="accepted", message=m, now=NOW)
        s.flush()  # the ticket refers to the message row: it is written first
        assert s.get(Message, m.id) is m
        m.status = "processed"  # changed after it was written
        later = _message(rec, "<later@x>")
        assert s.scalars(select(Message).where(Message.message_id == "<later@x>")).one() is later
        later.rule = "report"
    with store.reader() as s:
        got = {r.message_id: r for r in s.scalars(select(Message))}
        assert got["<row@x>"].status == "processed" and got["<later@x>"].rule == "report"
        assert got["<row@x>"].reason == "" and got["<row@x>"].defects == [] and got["<row@x>"].received_at is not None
        assert s.get(Ticket, t.id).opened_by_message == m.id


def test_a_complaint_reads_only_the_penalty_rows_it_may_change(tmp_path):
    """Complaint cost does not grow with history: with hundreds of penalties
    already in the month and overall (bench/growth.py --complaints piles its
    history into one month), the next complaints load only the rows for the
    thresholds they reach, not the window's."""
    sys.path.insert(0, str(ROOT / "bench"))
    from growth import complaints
    from mix import mix_directory

    cfg = load_config(write_config(tmp_path, directory=mix_directory(),
                                   extra="[limits]\nreplies_per_recipient_per_day = 100000\n"))
    rt = Runtime(cfg)
    try:
        p = Pipeline(rt, suppress="test")
        history = complaints(2400, seed=5, history=True)
        for i in range(0, len(history), 400):
            p.process([Incoming(raw) for raw in history[i:i + 400]])
        with rt.store.reader() as s:
            stored = s.scalar(select(func.count()).select_from(Penalty))
        loaded = []

        def on_load(target, _ctx):
            loaded.append(target.id)

        event.listen(Penalty, "load", on_load)
        try:
            outcomes = p.process([Incoming(raw) for raw in complaints(40, seed=6)])
        finally:
            event.remove(Penalty, "load", on_load)
        assert {o.status for o in outcomes} == {"processed"}
        assert stored > 400, stored
        assert len(loaded) <= 40, (len(loaded), stored)  # at most one per threshold reached
    finally:
        rt.store.dispose()


def test_newest_of_many_projects_is_one_query_when_there_are_too_many_to_read_whole(store, monkeypatch):
    """Above WHOLE, each project's newest few come from one ranked query per
    batch (not one query per project asked about)."""
    import processor.records
    monkeypatch.setattr(processor.records, "WHOLE", 0)
    with store.session() as s, s.begin():
        rec = records_of(s)
        m = _message(rec, "<seed@x>")
        for i in range(12):
            rec.new_ticket("followup", prefix="GJ", project="甲乙丙"[i % 3], state="open", message=m, now=NOW)
    asked = []
    event.listen(store.engine, "before_cursor_execute",
                 lambda _c, _cur, stmt, *_a: asked.append(stmt) if "FROM tickets" in stmt else None)
    with store.session() as s, s.begin():
        rec = records_of(s)
        got = {p: rec.newest("followup", p, ("open",), 2) for p in "甲乙丙丁"}
    assert {p: ([t.number for t in ts], n) for p, (ts, n) in got.items()} == {
        "甲": (["GJ2026-0007", "GJ2026-0010"], 4), "乙": (["GJ2026-0008", "GJ2026-0011"], 4),
        "丙": (["GJ2026-0009", "GJ2026-0012"], 4), "丁": ([], 0)}
    assert len(asked) == 2, asked  # the counts of every project, and the newest few of every project
