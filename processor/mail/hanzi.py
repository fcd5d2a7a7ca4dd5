"""Traditional/simplified folding of Chinese text with OpenCC.

Labels and keyword values are compared after :func:`to_simplified`, so a
label written in traditional characters, or half converted (溝通结果), reads as
its simplified form without a hand-written list of variants."""
from __future__ import annotations

from functools import lru_cache

import opencc

__all__ = ["to_simplified"]

_CONVERTER = opencc.OpenCC("t2s")


@lru_cache(maxsize=4096)
def _convert(text: str) -> str:
    return _CONVERTER.convert(text)


def to_simplified(text: str) -> str:
    """``text`` with traditional characters replaced by simplified ones
    (character-level, no phrase rewriting). ASCII is returned unchanged."""
    if not text or text.isascii():
        return text or ""
    if len(text) > 200:  # long values are not cached
        return _CONVERTER.convert(text)
    return _convert(text)
