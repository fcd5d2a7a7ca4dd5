"""Content-addressed raw mail store: every message's exact bytes, by SHA-256."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path


class RawStore:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, sha: str) -> Path:
        return self.folder / sha[:2] / f"{sha}.eml"

    def put(self, raw: bytes) -> str:
        sha = hashlib.sha256(raw).hexdigest()
        p = self.path(sha)
        if not p.exists():
            p.parent.mkdir(exist_ok=True)
            tmp = p.with_suffix(f".{os.getpid()}.tmp")
            with open(tmp, "wb") as f:
                f.write(raw)
            os.replace(tmp, p)  # atomic: a crash leaves no half file under the real name
        return sha

    def get(self, sha: str) -> bytes:
        return self.path(sha).read_bytes()

    def has(self, sha: str) -> bool:
        return self.path(sha).exists()
