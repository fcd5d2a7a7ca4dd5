"""Content-addressed raw mail store: every message's exact bytes, keyed by
SHA-256, in the database itself -- written in the same transaction as the
message row, so a crash can never leave one without the other."""
from __future__ import annotations

import hashlib

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from .models import RawMail


def sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


class RawStore:
    def __init__(self, store):
        self.store = store

    def put_many(self, s, items: list[tuple[str, bytes]]) -> None:
        """Insert (sha, raw) pairs not yet stored, inside the caller's transaction."""
        if not items:
            return
        uniq = {sha: raw for sha, raw in items}
        insert = pg_insert if s.bind.dialect.name == "postgresql" else sqlite_insert
        s.execute(insert(RawMail).on_conflict_do_nothing(index_elements=["sha256"]),
                  [{"sha256": k, "size": len(v), "data": v} for k, v in uniq.items()])

    def get(self, sha: str) -> bytes:
        with self.store.reader() as s:
            data = s.scalar(select(RawMail.data).where(RawMail.sha256 == sha))
        if data is None:
            raise KeyError(sha)
        return bytes(data)

    def has(self, sha: str) -> bool:
        with self.store.reader() as s:
            return s.scalar(select(RawMail.sha256).where(RawMail.sha256 == sha)) is not None
