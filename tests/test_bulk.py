"""processor/store/bulk.py: many rows in one statement (COPY on PostgreSQL)
store what an INSERT of the same rows would have stored."""
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import event, insert, select
from sqlalchemy.exc import IntegrityError

from processor.store.bulk import insert_rows
from processor.store.db import Store
from processor.store.models import Audit, InFlight, Outbox, OutboxContent

CST = timezone(timedelta(hours=8))


def _stored(store, model):
    with store.reader() as s:
        return [{c.key: getattr(r, c.key) for c in model.__table__.c if c.key != "id"}
                for r in s.scalars(select(model).order_by(model.id))]


def test_rows_are_stored_as_an_insert_stores_them(db_url):
    """Bind processing (times in UTC, JSON, text made store-safe) and the
    Python-side defaults of the columns the rows leave out are applied."""
    store = Store(db_url)
    rows = [
        {"entity": "ticket", "action": "state", "message": None, "at": datetime(2026, 12, 2, 9, 30, tzinfo=CST),
         "detail": {"从": "待审批", "n": None, "list": [1, "二"]}},
        {"entity": "ticket", "action": "tab\there, NUL \x00 and a lone \ud800", "message": None,
         "at": datetime(2026, 12, 2, 1, 0, tzinfo=timezone.utc), "detail": {}},
    ]
    with store.session() as s, s.begin():
        insert_rows(s.connection(), Audit.__table__, rows)
    with store.session() as s, s.begin():  # the same rows by an INSERT: the reference
        s.execute(insert(Audit.__table__), rows)
    got = _stored(store, Audit)
    assert got[:2] == got[2:]
    first, second = got[:2]
    assert first["at"] == datetime(2026, 12, 2, 1, 30, tzinfo=timezone.utc)
    assert first["detail"] == {"从": "待审批", "n": None, "list": [1, "二"]}
    assert first["actor"] == "" and first["entity_id"] == ""  # the columns' defaults
    assert "\x00" not in second["action"] and "\ud800" not in second["action"]
    assert second["action"].startswith("tab\there, NUL ")
    store.dispose()


def test_a_json_null_and_a_missing_time_are_filled_in_as_by_an_insert(db_url):
    store = Store(db_url)
    before = datetime.now(timezone.utc)
    rows = [{"entity": "ticket", "action": "note", "message": None, "detail": None, "actor": "李四\r\n王五"}]
    with store.session() as s, s.begin():
        insert_rows(s.connection(), Audit.__table__, rows)
    with store.session() as s, s.begin():
        s.execute(insert(Audit.__table__), rows)
    copied, inserted = _stored(store, Audit)
    with store.reader() as s:  # JSON null, not SQL NULL: as an INSERT stores None (both read back as None)
        assert list(s.scalars(select(Audit.detail.is_(None)).order_by(Audit.id))) == [False, False]
    assert copied["actor"] == "李四\r\n王五"
    assert before <= copied["at"] <= inserted["at"]  # the column's default, at the time of writing
    store.dispose()


def test_a_duplicate_key_is_an_integrity_error_and_is_counted_as_one_statement(db_url):
    store = Store(db_url)
    statements = []
    event.listen(store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    row = {"sha256": "a" * 64, "solo": False, "deaths": 0, "owner": "host:1"}
    with store.session() as s, s.begin():
        insert_rows(s.connection(), InFlight.__table__, [row, {**row, "sha256": "b" * 64}])
    assert len([q for q in statements if "in_flight" in q]) == 1
    with pytest.raises(IntegrityError):
        with store.session() as s, s.begin():
            insert_rows(s.connection(), InFlight.__table__, [{**row, "sha256": "c" * 64}, row])
    with store.reader() as s:  # the failed statement wrote nothing
        assert sorted(s.scalars(select(InFlight.sha256))) == ["a" * 64, "b" * 64]
    store.dispose()


def test_mail_bytes_and_every_column_type_of_the_outbox_survive(db_url):
    """The binary format on PostgreSQL: each column typed as the dialect names it."""
    store = Store(db_url)
    statements = []
    event.listen(store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    raw = bytes(range(256)) * 4
    due = datetime(2026, 12, 2, 8, 0, tzinfo=CST)
    row = {"id": 7, "mail_from": "a@x", "rcpt": ["b@x", "丙@例子.中国"], "message_id": "<1@x>", "subject": "主题",
           "template": "reply", "rcpt_state": {"b@x": {"state": "sent", "code": 250}}, "uncertain": True,
           "next_attempt_at": due, "attempts": 3}
    contents = [{"id": 7, "raw": raw, "draft": None}, {"id": 8, "raw": None, "draft": {"text": "正文\n", "to": ["b@x"]}}]
    with store.session() as s, s.begin():
        insert_rows(s.connection(), Outbox.__table__, [row])
        insert_rows(s.connection(), OutboxContent.__table__, contents)
    kind = "COPY" if store.engine.dialect.name == "postgresql" else "INSERT"
    assert [q.split()[0] for q in statements if "outbox" in q] == [kind, kind]
    (got,) = _stored(store, Outbox)
    assert {k: got[k] for k in row if k != "id"} == {**{k: v for k, v in row.items() if k != "id"},
                                                     "next_attempt_at": datetime(2026, 12, 2, 0, 0, tzinfo=timezone.utc)}
    assert got["status"] == "pending" and got["kind"] == "reply" and got["lease_until"] is None
    kept = _stored(store, OutboxContent)
    assert [(bytes(c["raw"]) if c["raw"] is not None else None, c["draft"]) for c in kept] == \
        [(c["raw"], c["draft"]) for c in contents]
    store.dispose()


def test_every_column_type_of_the_schema_has_a_binary_copy_type():
    """A column added later with a type psycopg cannot name would fail the
    first COPY into its table."""
    import psycopg
    from sqlalchemy.dialects import postgresql

    from processor.store.bulk import copy_type
    from processor.store.models import Base

    dialect = postgresql.dialect()
    unknown = {f"{t.name}.{c.name}: {copy_type(c, dialect)}" for t in Base.metadata.tables.values() for c in t.c
               if psycopg.adapters.types.get(copy_type(c, dialect)) is None}
    assert not unknown


def test_rows_given_as_values_in_the_order_of_their_columns(db_url):
    """insert_values: the same rows as lists, in the order of the columns
    named, store what insert_rows stores (defaults of the columns left out
    included)."""
    from processor.store.bulk import insert_values

    store = Store(db_url)
    keys = ("entity", "action", "message", "at", "detail")
    values = [["ticket", "state", None, datetime(2026, 12, 2, 9, 30, tzinfo=CST), {"从": "待审批"}],
              ["ticket", "note", None, datetime(2026, 12, 2, 1, 0, tzinfo=timezone.utc), None]]
    with store.session() as s, s.begin():
        insert_values(s.connection(), Audit.__table__, keys, values)
        insert_rows(s.connection(), Audit.__table__, [dict(zip(keys, v)) for v in values])
    got = _stored(store, Audit)
    assert got[:2] == got[2:]
    assert got[0]["at"] == datetime(2026, 12, 2, 1, 30, tzinfo=timezone.utc) and got[0]["detail"] == {"从": "待审批"}
    assert got[1]["actor"] == "" and got[1]["detail"] is None
    store.dispose()
