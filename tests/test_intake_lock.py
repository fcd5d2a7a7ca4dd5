"""Intake locks (processor/intake/lock.py) on the real stores: one holder per
account and folder, takeover when the holder releases, dies (SIGKILL) or
loses its lock connection. The end-to-end test with two ``serve``
processes is in test_workers.py."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import create_engine, text

from processor.intake.lock import IntakeLocks
from processor.store.db import Store
from support import ROOT, drop_pg_schema, new_pg_schema_url


@pytest.fixture
def store(db_url):
    st = Store(db_url)
    yield st
    st.dispose()


def eventually_held(locks: IntakeLocks, folder: str, tries: int = 400) -> bool:
    """The OS / server releases a dead holder's lock asynchronously: retry, bounded."""
    for _ in range(tries):
        if locks.hold(folder):
            return True
        time.sleep(0.05)
    return False


def test_one_holder_per_folder_and_takeover_on_release(store):
    a, b = IntakeLocks(store, "support"), IntakeLocks(store, "support")
    try:
        assert a.hold("INBOX") and a.hold("INBOX")  # re-entrant for its holder
        assert not b.hold("INBOX")
        assert b.hold("Archive") and not a.hold("Archive")  # folders are independent
        assert IntakeLocks(store, "sales").hold("INBOX")  # so are accounts
        assert a.holds("INBOX") and not b.holds("INBOX")
        a.release()
        assert not a.holds("INBOX")
        assert b.hold("INBOX") and not a.hold("INBOX")
    finally:
        a.release()
        b.release()


HOLDER = """
import sys, time
from processor.intake.lock import IntakeLocks
from processor.store.db import Store
locks = IntakeLocks(Store(sys.argv[1], upgrade=False), "support")
print("held" if locks.hold("INBOX") else "refused", flush=True)
time.sleep(600)
"""


def test_takeover_when_the_holder_is_killed(store, db_url):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, db_url], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        mine = IntakeLocks(store, "support")
        assert not mine.hold("INBOX")
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        assert eventually_held(mine, "INBOX")
        mine.release()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        holder.stdout.close()


def test_postgresql_holder_that_lost_its_session_stops_and_another_takes_over():
    url, schema = new_pg_schema_url()
    st = Store(url)
    a, b = IntakeLocks(st, "support"), IntakeLocks(st, "support")
    try:
        assert a.hold("INBOX") and not b.hold("INBOX")
        pid = a._impl.conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        eng = create_engine(url)
        with eng.begin() as c:
            assert c.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar_one()
        eng.dispose()
        # The holder finds out at its next check, before fetching anything.
        assert not a.hold("INBOX") and not a.holds("INBOX")
        assert eventually_held(b, "INBOX")
        assert not a.hold("INBOX")  # a fresh session of the old holder competes like anyone
    finally:
        a.release()
        b.release()
        st.dispose()
        drop_pg_schema(schema)


def test_postgresql_installations_in_other_schemas_do_not_collide():
    (u1, s1), (u2, s2) = new_pg_schema_url(), new_pg_schema_url()
    st1, st2 = Store(u1), Store(u2)
    a, b = IntakeLocks(st1, "support"), IntakeLocks(st2, "support")
    try:
        assert a.hold("INBOX") and b.hold("INBOX")
    finally:
        a.release()
        b.release()
        st1.dispose()
        st2.dispose()
        drop_pg_schema(s1)
        drop_pg_schema(s2)


def test_postgresql_unreachable_means_not_held_and_one_warning(caplog):
    """A lock that cannot be asked for is not held: intake of that folder
    waits (no traceback, one warning per outage, not one per poll)."""
    from processor.devservers._net import free_port

    eng = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test")
    try:
        locks = IntakeLocks(type("S", (), {"engine": eng})(), "support")
        with caplog.at_level("WARNING", logger="processor.intake.lock"):
            assert [locks.hold("INBOX") for _ in range(3)] == [False] * 3
        assert not locks.holds("INBOX")
        warnings = [r.getMessage() for r in caplog.records if r.name == "processor.intake.lock"]
        assert len(warnings) == 1 and "收件锁 support/INBOX 暂不可用" in warnings[0], warnings
        locks.release()
    finally:
        eng.dispose()
