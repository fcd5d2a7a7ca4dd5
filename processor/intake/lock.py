"""Intake locks: each (account, folder) is read by one worker at a time.

Any number of ``serve`` processes may share one store. Each polls every
folder, but only the holder of the folder's intake lock fetches and
processes its mail and moves or flags it afterwards; the others skip it
(without even connecting to IMAP for it) and try again at their next poll.
When the holder dies, its lock is released by the operating system or the
database server, and the next worker to poll takes the folder over: no
lease to wait out, no manual step.

- PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on a
  dedicated connection that lives as long as the lock. The server releases
  it when that session ends: at once when the process dies, and within
  about a minute (TCP keepalives, set below) when its host or network does.
  The key is derived from the schema, the account and the folder, so
  installations in other schemas of the same database do not collide.
  Before every fetch the holder checks that its lock connection is alive;
  if it is not, the lock may be someone else's by now, so it stops and
  competes for it again.
- SQLite: ``flock`` on a lock file next to the database (SQLite stores are
  local to one machine anyway). The kernel releases it when the process
  dies.
- An in-memory SQLite store has one process by definition: no lock.

Correctness does not rest on the lock alone: the store's unique key on
(account, folder, UIDVALIDITY, UID) and the sync position committed with
each batch make a second reader of the same mail a no-op. The lock keeps
workers from doing the same work twice and from racing on MOVE/flag.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

_NAMESPACE = b"ticket-processor intake\0"

# Keepalives on the lock session, both ways: a holder whose host vanished (no
# FIN/RST) loses its lock after about idle + interval * count seconds, and a
# holder notices a vanished server as soon.
_PG_KEEPALIVES = {"tcp_keepalives_idle": 30, "tcp_keepalives_interval": 10, "tcp_keepalives_count": 3}
_LIBPQ_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}


def lock_key(namespace: str, account: str, folder: str) -> int:
    """A signed 64-bit advisory-lock key for one account and folder."""
    h = hashlib.blake2b(_NAMESPACE + "\0".join((namespace, account, folder)).encode("utf-8"), digest_size=8)
    return int.from_bytes(h.digest(), "big", signed=True)


class IntakeLocks:
    """The intake locks of one account, as held by this worker. ``hold``
    never waits: it returns whether this worker holds the folder now."""

    def __init__(self, store, account: str):
        self.account = account
        url = store.engine.url
        backend = url.get_backend_name()
        if backend == "postgresql":
            self._impl = _PgLocks(url, account)
        elif backend == "sqlite" and url.database and url.database != ":memory:":
            self._impl = _FileLocks(Path(url.database), account)
        else:
            self._impl = _NoLocks()
        self._standing_by: set[str] = set()  # folders another worker holds (logged once)
        self._unavailable: set[str] = set()  # folders whose lock could not be asked for (logged once)

    def hold(self, folder: str) -> bool:
        """Take or keep the folder's lock; False if another worker has it."""
        try:
            got = self._impl.hold(folder)
        except (DBAPIError, OSError) as e:
            self._impl.lost()
            if folder not in self._unavailable:  # once per outage, not every poll
                self._unavailable.add(folder)
                log.warning("收件锁 %s/%s 暂不可用（%s），本进程暂不收取该文件夹，稍后重试", self.account, folder,
                            str(getattr(e, "orig", None) or e).strip()[:300])
            return False
        self._unavailable.discard(folder)
        if got:
            self._standing_by.discard(folder)
        elif folder not in self._standing_by:
            self._standing_by.add(folder)
            log.info("邮箱 %s/%s 由另一个进程收取，本进程（pid %d）待命，对方停止后自动接管",
                     self.account, folder, os.getpid())
        return got

    def holds(self, folder: str) -> bool:
        """Held by this worker, as far as it knows (no round trip)."""
        return folder in self._impl.held

    def release(self) -> None:
        """Give every lock back (on close): another worker may take over."""
        try:
            self._impl.release()
        except (DBAPIError, OSError) as e:  # the lock goes with the connection anyway
            log.debug("releasing intake locks of %s: %s", self.account, e)
            self._impl.lost()


class _NoLocks:
    def __init__(self):
        self.held: set[str] = set()

    def hold(self, folder: str) -> bool:
        self.held.add(folder)
        return True

    def lost(self) -> None:
        self.held.clear()

    def release(self) -> None:
        self.held.clear()


class _FileLocks:
    def __init__(self, db_path: Path, account: str):
        self.db_path, self.account = db_path, account
        self.files: dict[str, int] = {}

    @property
    def held(self) -> set[str]:
        return set(self.files)

    def _path(self, folder: str) -> Path:
        key = lock_key(str(self.db_path.resolve()), self.account, folder) & 0xFFFFFFFFFFFFFFFF
        return self.db_path.with_name(f"{self.db_path.name}.intake-{key:016x}.lock")

    def hold(self, folder: str) -> bool:
        import fcntl

        if folder in self.files:
            return True
        path = self._path(folder)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        # Who holds it, for an admin looking at the file (never read by us).
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {self.account}/{folder}\n".encode("utf-8", "replace"))
        self.files[folder] = fd
        log.info("邮箱 %s/%s 现由本进程（pid %d）收取", self.account, folder, os.getpid())
        return True

    def lost(self) -> None:
        self.release()

    def release(self) -> None:
        files, self.files = self.files, {}
        for fd in files.values():
            os.close(fd)  # closing the descriptor drops the flock


class _PgLocks:
    def __init__(self, url, account: str):
        self.url, self.account = url, account
        self.engine = None
        self.conn = None
        self.namespace: str | None = None
        self.held: set[str] = set()

    def _connection(self):
        if self.conn is None:
            if self.engine is None:
                # Its own engine without a pool: the session IS the lock, so it
                # must never be handed to other work or kept after close.
                self.engine = create_engine(self.url, poolclass=NullPool, connect_args=dict(_LIBPQ_KEEPALIVES))
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            for name, value in _PG_KEEPALIVES.items():
                conn.exec_driver_sql(f"SET {name} = {int(value)}")
            self.namespace = conn.execute(text("SELECT current_database() || '.' || current_schema()")).scalar_one()
            self.conn = conn
        return self.conn

    def hold(self, folder: str) -> bool:
        conn = self._connection()
        if folder in self.held:
            conn.execute(text("SELECT 1"))  # raises if the session (and with it the lock) is gone
            return True
        got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                           {"k": lock_key(self.namespace, self.account, folder)}).scalar_one()
        if got:
            self.held.add(folder)
            log.info("邮箱 %s/%s 现由本进程（pid %d）收取", self.account, folder, os.getpid())
        return bool(got)

    def lost(self) -> None:
        """The lock session failed: whatever it held may be another's now."""
        if self.held:
            log.warning("邮箱 %s 的收件锁连接中断，不再收取 %s，稍后重新竞争", self.account, "、".join(sorted(self.held)))
        self.held.clear()
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.invalidate()
                conn.close()
            except Exception:
                pass

    def release(self) -> None:
        conn, held = self.conn, self.held
        self.held, self.conn = set(), None
        if conn is None:
            return
        try:
            if held:
                conn.execute(text("SELECT pg_advisory_unlock_all()"))
        finally:
            conn.close()
            if self.engine is not None:
                self.engine.dispose()
                self.engine = None
