"""Engine, sessions and migrations.

SQLite is the default: one file, WAL mode, created on first run. PostgreSQL
works from the same code through the store URL.
"""
from __future__ import annotations

import functools
import hashlib
import re
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from .models import json_serializer

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_conn, _record):
    # Let SQLAlchemy, not pysqlite, decide where transactions begin (the
    # documented recipe): pysqlite would otherwise autocommit DDL, and a
    # crash during a migration could leave half a schema.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(_busy_timeout())
    cur.close()


BUSY_TIMEOUT = 30.0  # seconds a writer waits for another connection's write lock
_LOCK_POLL = 0.002


def _busy_timeout(seconds: float | None = None) -> str:
    return f"PRAGMA busy_timeout={int((BUSY_TIMEOUT if seconds is None else seconds) * 1000)}"


def _begin_sqlite(conn) -> None:
    """BEGIN for a reader; BEGIN IMMEDIATE for a writer, tried again every
    2 ms while another connection holds the write lock, for BUSY_TIMEOUT.

    SQLite's own busy handler sleeps in steps that grow to 100 ms, and
    between two of the daemon's batch transactions the lock is free for a
    few tens of milliseconds only: a sender waiting in that handler missed
    every gap for a second and more (nothing was sent while three batches
    were processed)."""
    if conn.get_execution_options().get("read_only"):
        conn.exec_driver_sql("BEGIN")
        return
    raw = conn.connection.dbapi_connection
    raw.execute(_busy_timeout(0))
    try:
        deadline = time.monotonic() + BUSY_TIMEOUT
        while time.monotonic() < deadline:
            try:
                raw.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e):
                    break  # another error: the try below reports it as SQLAlchemy does
            time.sleep(_LOCK_POLL)
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # the last try, failing as SQLAlchemy reports it
    finally:
        raw.execute(_busy_timeout())


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, json_serializer=json_serializer)
        event.listen(engine, "connect", _sqlite_pragmas)
        # IMMEDIATE: take the write lock when the transaction starts. A deferred
        # transaction that reads and then writes fails at once (SQLITE_BUSY,
        # no busy wait) if another connection committed in between; with the
        # lock taken up front, SQLite waits for busy_timeout instead.
        # Read-only sessions (Store.reader) begin deferred: in WAL mode they
        # take no lock at all and never wait for a writer.
        event.listen(engine, "begin", _begin_sqlite)
    else:
        engine = create_engine(url, pool_pre_ping=True, json_serializer=json_serializer)
    return engine


def alembic_config(engine: Engine) -> "AlembicConfig":
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    cfg.attributes["engine"] = engine
    return cfg


_REVISION = re.compile(r"^(down_revision|revision)\b[^=\n]*=\s*['\"]([^'\"]+)['\"]", re.M)


@functools.cache  # the migration files do not change under a running process
def head_revision() -> str | None:
    """The newest migration's revision, read from the migration files: the
    one no other names as its ``down_revision`` (None unless exactly one)."""
    revisions, downs = set(), set()
    for f in (MIGRATIONS / "versions").glob("*.py"):
        for key, value in _REVISION.findall(f.read_text(encoding="utf-8")):
            (downs if key == "down_revision" else revisions).add(value)
    heads = revisions - downs
    return heads.pop() if len(heads) == 1 else None


def at_head(engine: Engine) -> bool:
    """Is the store at the newest revision? One read of alembic_version."""
    head = head_revision()
    if head is None:
        return False
    try:
        with engine.execution_options(read_only=True).connect() as c:  # (SQLite: no write lock)
            return [r[0] for r in c.execute(text("SELECT version_num FROM alembic_version"))] == [head]
    except SQLAlchemyError:  # no such table yet: a new store
        return False


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (creates it on first run).
    A store already there is left alone without importing Alembic, whose
    import (Mako, and Pygments' lexers through it) costs every process that
    opens the store about 12 MB and a tenth of a second."""
    if at_head(engine):
        return
    from alembic import command

    command.upgrade(alembic_config(engine), "head")


def journal_base(engine: Engine, journal_dir: Path | None) -> Path | None:
    """The base path of the outbox senders' delivery journals (each sender
    appends to ``<base>.<sender id>``): beside a SQLite database file; for
    another store, in ``journal_dir``, named for the store (its URL without
    the password: two stores never share a journal). None: no journal."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        return Path(url.database + ".delivered") if url.database and url.database != ":memory:" else None
    if journal_dir is None:
        return None
    key = hashlib.sha256(url.render_as_string(hide_password=True).encode()).hexdigest()[:12]
    return journal_dir / f"outbox-{key}.delivered"


class Store:
    def __init__(self, url: str, *, upgrade: bool = True, journal_dir: Path | None = None):
        """``journal_dir``: where the outbox senders of a PostgreSQL store keep
        their journals (config ``outbox.journal_dir``); without it each mail's
        marks are committed to the store."""
        self.url = url
        self.engine = make_engine(url)
        self.journal = journal_base(self.engine, journal_dir)
        if upgrade:
            migrate(self.engine)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.readers = sessionmaker(self.engine.execution_options(read_only=True), expire_on_commit=False)

    def session(self) -> Session:
        """A session for work that writes (on SQLite it holds the write lock)."""
        return self.sessions()

    def reader(self) -> Session:
        """A session that only reads: never waits for, nor blocks, a writer."""
        return self.readers()

    def dispose(self) -> None:
        self.engine.dispose()
