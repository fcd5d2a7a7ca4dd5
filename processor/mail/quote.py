"""Quoted-history removal for reply bodies (Outlook, Foxmail, QQ, Gmail, ...)."""

from __future__ import annotations

import re

__all__ = ["strip_quoted", "find_quote_start"]

_SP = r"(?:[ \t\u00a0\u3000]|&nbsp;)"

# Separator lines; the quote starts at the match start.
_SEPARATORS = re.compile(
    # Outlook / Foxmail / QQ separators: any dash run around the label.
    r"^[ \t>]*-{2,}" + _SP + r"*(?:原始邮件|原始郵件|原邮件|Original Message|Original|回复的原邮件)"
    + _SP + r"*-{2,}[ \t]*$",
    re.M,
)

# Attribution lines, found by their ending ("写道：" / "wrote:") and then
# validated by their beginning, which may be on the previous line:
#   Gmail zh: "在 2024年1月2日周二 10:00，张三 <a@b.c> 写道："
#   Gmail en: "On Tue, Jan 2, 2024 at 10:00 AM Foo <a@b.c> wrote:"
_ATTRIB_END = re.compile(r"(?:写道|寫道|\bwrote)[ \t]*[:：]?[ \t]*$", re.M)
_ATTRIB_START_ZH = re.compile(r"[ \t]*(?:在|於|于)")
_ATTRIB_START_EN = re.compile(r"[ \t]*On\b")
_ATTRIB_MAX = 400  # characters an attribution (over at most two lines) may span


def _attribution_start(text: str, limit: int) -> int:
    """Start of the first attribution line (before ``limit``) or -1."""
    for m in _ATTRIB_END.finditer(text, 0, limit):
        end = m.start()
        start_re = _ATTRIB_START_EN if text.startswith("wrote", end) else _ATTRIB_START_ZH
        line_start = text.rfind("\n", 0, end) + 1
        candidates = [line_start]
        if line_start > 0:
            candidates.append(text.rfind("\n", 0, line_start - 1) + 1)
        for start in candidates:
            if end - start > _ATTRIB_MAX:
                break
            sm = start_re.match(text, start, end)
            if sm is not None and any(c.isdigit() for c in text[sm.end():end]):
                return start
    return -1


# Outlook style header block: a From line followed by Sent/Date/To lines.
_FROM_LINE = re.compile(r"^[ \t>*]*(?:发件人|發件人|寄件者|寄件人|From)[ \t*]*[:：]", re.M)
_HEADER_FOLLOW = re.compile(
    r"[ \t>*]*(?:发送时间|發送時間|发送日期|發送日期|傳送時間|寄件日期|日期|时间|時間|Sent|Date|"
    r"收件人|收件者|To|抄送|Cc|主题|主旨|Subject)[ \t*]*[:：]",
    re.I,
)
_SEPARATOR_LINE = re.compile(r"^[ \t]*(?:_{8,}|-{8,}|={8,})[ \t]*$")
_HEADER_LOOKAHEAD = 6  # lines after the From line searched for Sent/Date/To


def _header_block_start(text: str, limit: int) -> int:
    """Position of the first Outlook header block (before ``limit``) or -1."""
    for m in _FROM_LINE.finditer(text, 0, limit):
        start = m.start()
        eol = text.find("\n", start)
        if eol < 0:
            continue
        found = False
        pos = eol + 1
        for _ in range(_HEADER_LOOKAHEAD):
            if pos >= len(text):
                break
            nxt = text.find("\n", pos)
            line_end = len(text) if nxt < 0 else nxt
            if _HEADER_FOLLOW.match(text, pos, line_end):
                found = True
                break
            pos = line_end + 1
        if not found:
            continue
        # Outlook web puts "________________________________" above the block.
        prev_end = start - 1
        while prev_end > 0:
            prev_start = text.rfind("\n", 0, prev_end) + 1
            line = text[prev_start:prev_end]
            if line.strip():
                if _SEPARATOR_LINE.match(line):
                    return prev_start
                break
            prev_end = prev_start - 1
        return start
    return -1


def find_quote_start(text: str) -> int:
    """Offset where quoted history starts, or -1 if no marker was found."""
    best = -1
    m = _SEPARATORS.search(text)
    if m is not None:
        best = m.start()
    for finder in (_attribution_start, _header_block_start):
        limit = best if best >= 0 else len(text)
        pos = finder(text, limit)
        if pos >= 0 and (best < 0 or pos < best):
            best = pos
    return best


def _strip_trailing_gt(text: str) -> str:
    lines = text.split("\n")
    end = len(lines)
    while end and not lines[end - 1].strip():
        end -= 1
    i = end
    saw_quote = False
    while i:
        line = lines[i - 1].lstrip(" \t")
        if line.startswith(">") or line.startswith("&gt;"):
            saw_quote = True
            i -= 1
        elif not line.strip() and saw_quote:
            i -= 1
        else:
            break
    if not saw_quote:
        return text
    return "\n".join(lines[:i])


def strip_quoted(text: str) -> str:
    """Remove quoted history from a reply body. Returns the original text if
    stripping would leave nothing."""
    if not text:
        return text or ""
    cut = find_quote_start(text)
    result = text[:cut] if cut >= 0 else text
    if ">" in result:
        result = _strip_trailing_gt(result)
    result = result.rstrip()
    if not result.strip():
        return text
    return result
