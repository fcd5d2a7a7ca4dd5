"""Subject normalisation: width folding, reply/forward prefixes, ticket tokens."""

from __future__ import annotations

import re

__all__ = [
    "fold",
    "strip_prefixes",
    "normalize_subject",
    "find_ticket_token",
    "remove_ticket_token",
    "TICKET_TOKEN_RE",
]

# Dash variants folded to ASCII '-'. A run of non-ASCII dashes (the Chinese
# IME dash "——" is two U+2014) folds to a single '-'.
_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\uff0d\u2212\ufe58\ufe63"
_DASH_RUN = re.compile("[" + _DASHES + "]+")

_FOLD_TABLE: dict[int, object] = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}
_FOLD_TABLE[0x3000] = " "
for _ch in _DASHES:
    _FOLD_TABLE[ord(_ch)] = "-"
for _cp in (0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF):  # zero-width characters
    _FOLD_TABLE[_cp] = None


def fold(text: str) -> str:
    """Fold full-width ASCII to ASCII, U+3000 to space, dash variants to '-',
    drop zero-width characters, collapse whitespace runs and trim."""
    if not text:
        return ""
    if not text.isascii():
        if _DASH_RUN.search(text):
            text = _DASH_RUN.sub("-", text)
        text = text.translate(_FOLD_TABLE)
    return " ".join(text.split())


_PREFIX_WORDS = (
    "回复|答复|回覆|回復|答覆|转发|轉發|转寄|轉寄|转|轉"
    "|re|fwd|fw|aw|wg|sv|vs|tr|rv|antw|odp|ynt"
)
# One prefix or one leading bracketed tag (ticket tokens "[#...]" excluded).
_PREFIX_RE = re.compile(
    r"\s*(?:"
    r"(?:" + _PREFIX_WORDS + r")\s*(?:\[\s*\d+\s*\]|\^\s*\d+|\(\s*\d+\s*\))?\s*[:：]"
    r"|\[(?!\s*#[A-Za-z0-9-]+\s*\])[^\[\]]*\]"
    r"|【[^【】]*】"
    r")\s*",
    re.IGNORECASE,
)


def strip_prefixes(subject: str) -> str:
    """Strip reply/forward prefixes (any mix, any case, repeated) and leading
    bracketed tags like ``[EXT]`` / ``【外部邮件】``; ticket tokens ``[#...]``
    are kept."""
    if not subject:
        return ""
    s = subject
    pos = 0
    n = len(s)
    match = _PREFIX_RE.match
    while pos < n:
        m = match(s, pos)
        if m is None or m.end() == pos:
            break
        pos = m.end()
    return s[pos:].strip()


def normalize_subject(subject: str) -> str:
    """fold + strip_prefixes; ticket token kept.

    ``回复：RE: 答复: [外部]客户沟通—XX项目－张三 `` -> ``客户沟通-XX项目-张三``
    """
    if not subject:
        return ""
    return fold(strip_prefixes(fold(subject)))


# Ticket token "[#K3F9-12]", tolerant of full-width brackets/hash/dashes.
TICKET_TOKEN_RE = re.compile(
    r"[\[［]\s*[#＃]\s*([A-Za-z0-9Ａ-Ｚａ-ｚ０-９][A-Za-z0-9Ａ-Ｚａ-ｚ０-９\-" + _DASHES + r"]*)\s*[\]］]"
)


def find_ticket_token(subject: str) -> str | None:
    """Return the token inside ``[#...]`` (e.g. ``"K3F9-12"``) or None."""
    if not subject:
        return None
    m = TICKET_TOKEN_RE.search(subject)
    if m is None:
        return None
    token = m.group(1)
    return token if token.isascii() else fold(token)


def remove_ticket_token(subject: str) -> str:
    """Remove every ``[#...]`` ticket token and tidy the whitespace."""
    if not subject:
        return ""
    return " ".join(TICKET_TOKEN_RE.sub(" ", subject).split())
