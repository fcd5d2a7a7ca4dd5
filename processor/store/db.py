"""Engine, sessions and migrations.

SQLite is the default: one file, WAL mode, created on first run. PostgreSQL
works from the same code through the store URL.
"""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

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
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        # IMMEDIATE: take the write lock when the transaction starts. A deferred
        # transaction that reads and then writes fails at once (SQLITE_BUSY,
        # no busy wait) if another connection committed in between; with the
        # lock taken up front, SQLite waits for busy_timeout instead.
        # Read-only sessions (Store.reader) begin deferred: in WAL mode they
        # take no lock at all and never wait for a writer.
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql(
            "BEGIN" if conn.get_execution_options().get("read_only") else "BEGIN IMMEDIATE"))
    else:
        engine = create_engine(url, pool_pre_ping=True)
    return engine


def alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (creates it on first run)."""
    command.upgrade(alembic_config(engine), "head")


class Store:
    def __init__(self, url: str, *, upgrade: bool = True):
        self.url = url
        self.engine = make_engine(url)
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
