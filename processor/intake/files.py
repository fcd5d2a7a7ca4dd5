"""File intake for replay and backfill: .eml files, mbox files, Maildir folders."""
from __future__ import annotations

import mailbox
from pathlib import Path
from typing import Iterator


def iter_raw(paths: list[str | Path]) -> Iterator[tuple[str, bytes]]:
    """Yield (source label, raw bytes) for every mail under the given paths."""
    for p in map(Path, paths):
        if p.is_dir() and (p / "cur").is_dir() and (p / "new").is_dir():
            md = mailbox.Maildir(str(p), factory=None, create=False)
            for key in sorted(md.iterkeys()):
                yield f"{p}:{key}", md.get_bytes(key)
        elif p.is_dir():
            for f in sorted(p.rglob("*.eml")):
                yield str(f), f.read_bytes()
        elif p.suffix.lower() == ".eml":
            yield str(p), p.read_bytes()
        elif p.is_file():
            mb = mailbox.mbox(str(p), factory=None, create=False)
            for key in mb.iterkeys():
                yield f"{p}:{key}", mb.get_bytes(key)
        else:
            raise FileNotFoundError(str(p))
