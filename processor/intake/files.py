"""File intake for replay and backfill: .eml files, mbox files, Maildir folders."""
from __future__ import annotations

import mailbox
import re
from pathlib import Path
from typing import BinaryIO, Iterator

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_HEADER_MAX = 1024 * 1024
_CHUNK = 1024 * 1024


def _sources(paths: list[str | Path]) -> Iterator[tuple[str, object]]:
    """(label, opener) for every mail; opener() gives a binary file."""
    for p in map(Path, paths):
        if p.is_dir() and (p / "cur").is_dir() and (p / "new").is_dir():
            md = mailbox.Maildir(str(p), factory=None, create=False)
            for key in sorted(md.iterkeys()):
                yield f"{p}:{key}", (lambda md=md, key=key: md.get_file(key))
        elif p.is_dir():
            for f in sorted(p.rglob("*.eml")):
                yield str(f), (lambda f=f: open(f, "rb"))
        elif p.suffix.lower() == ".eml":
            yield str(p), (lambda p=p: open(p, "rb"))
        elif p.is_file():
            mb = mailbox.mbox(str(p), factory=None, create=False)
            for key in mb.iterkeys():
                yield f"{p}:{key}", (lambda mb=mb, key=key: mb.get_file(key))
        else:
            raise FileNotFoundError(str(p))


def header_block(data: bytes) -> bytes:
    """The header block of a mail (up to and including the blank line)."""
    head = data[:_HEADER_MAX]
    m = _HEADER_END.search(head)
    return head[:m.end()] if m else head


def _read_bounded(f: BinaryIO, max_size: int) -> tuple[bytes, int, bool]:
    """(raw, size, too_large): the whole mail, or only its header block when
    it is larger than ``max_size`` (never more than max_size + 1 bytes held)."""
    data = f.read(max_size + 1)
    if len(data) <= max_size:
        return data, len(data), False
    size = len(data)
    data = header_block(data)
    while True:
        chunk = f.read(_CHUNK)
        if not chunk:
            break
        size += len(chunk)
    return data, size, True


def iter_mails(paths: list[str | Path], max_size: int) -> Iterator[tuple[str, bytes, int, bool]]:
    """Yield (source label, raw bytes, size, too_large) for every mail under
    the given paths. A mail over ``max_size`` bytes (the limit IMAP intake
    applies too) yields only its header block, with too_large set."""
    for label, opener in _sources(paths):
        f = opener()
        try:
            raw, size, too_large = _read_bounded(f, max_size)
        finally:
            f.close()
        yield label, raw, size, too_large


def iter_raw(paths: list[str | Path]) -> Iterator[tuple[str, bytes]]:
    """Yield (source label, raw bytes) for every mail under the given paths (unbounded)."""
    for label, opener in _sources(paths):
        f = opener()
        try:
            yield label, f.read()
        finally:
            f.close()
