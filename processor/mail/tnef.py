"""Outlook's TNEF (``application/ms-tnef``, ``winmail.dat``): the body of a
mail Outlook sent in "Rich Text" form, read with tnefparse.

Outlook keeps the body in the TNEF part's MAPI properties (plain text,
HTML, or compressed RTF); the mail's own text part then holds little more
than the signature. A body that is only compressed RTF is decompressed
(compressed_rtf, MS-OXRTFCP) and turned into text with striprtf, which
honours ``\\ansicpg`` and each font's ``\\fcharset`` (GBK, Big5)."""
from __future__ import annotations

import logging

__all__ = ["TnefBody", "read_tnef", "is_tnef"]

_CODEPAGES = {936: "gb18030", 54936: "gb18030", 950: "big5", 65001: "utf-8", 1252: "cp1252", 20127: "ascii"}


class TnefBody:
    __slots__ = ("text", "html", "rtf_only", "error")

    def __init__(self, text: str | None = None, html: str | None = None, rtf_only: bool = False,
                 error: str = "") -> None:
        self.text = text
        self.html = html
        self.rtf_only = rtf_only
        self.error = error

    @property
    def readable(self) -> bool:
        return bool((self.text or "").strip() or (self.html or "").strip())


def is_tnef(content_type: str, filename: str) -> bool:
    return content_type == "application/ms-tnef" or (filename or "").lower() == "winmail.dat"


def _text(value, codepage: str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):  # a MAPI string or binary property: its values
        parts = [_text(v, codepage) for v in value]
        return "".join(p for p in parts if p) or None
    if isinstance(value, str):
        return value.replace("\x00", "")
    data = bytes(value).rstrip(b"\x00")
    for enc in (codepage, "utf-8", "gb18030"):
        if not enc:
            continue
        try:
            return data.decode(enc)
        except (UnicodeDecodeError, LookupError):
            continue
    return data.decode("gb18030", "replace")


def read_tnef(data: bytes) -> TnefBody:
    """The body held in a TNEF blob. Never raises."""
    if not data:
        return TnefBody(error="empty")
    try:
        from tnefparse import TNEF
        log = logging.getLogger("tnefparse")
        level = log.level
        log.setLevel(logging.CRITICAL)  # a damaged blob is reported here, not logged
        try:
            t = TNEF(data, do_checksum=False)
        finally:
            log.setLevel(level)
    except Exception as exc:
        return TnefBody(error=f"{type(exc).__name__}: {str(exc)[:200]}")
    codepage = None
    for p in getattr(t, "mapiprops", []) or []:
        if getattr(p, "name", None) == 0x3FDE:  # PR_INTERNET_CPID
            raw = p.data
            try:
                cp = int.from_bytes(bytes(raw[:4]), "little") if isinstance(raw, (bytes, bytearray)) else int(raw)
            except (TypeError, ValueError):
                cp = None
            codepage = _CODEPAGES.get(cp) or codepage
    codepage = codepage or _CODEPAGES.get(_oem(t)) or "gb18030"
    text = _text(t.body, codepage)
    html = _text(t.htmlbody, codepage)
    out = TnefBody(text, html)
    if not out.readable:
        rtf = getattr(t, "_rtfbody", None)
        out.text = _rtf_text(rtf, codepage) if rtf else None
        if not out.readable:
            out.text = None
            out.rtf_only = bool(rtf)
            out.error = "rtf_only" if out.rtf_only else "no_body"
    return out


_RTF_MAX = 2_000_000  # decompressed RTF kept at most (a hostile size header)


def _rtf_text(compressed, codepage: str) -> str | None:
    """The text of a compressed RTF body, or None when it cannot be read."""
    try:
        from compressed_rtf import decompress
        from striprtf.striprtf import rtf_to_text
        raw = bytes(compressed)
        if len(raw) >= 8 and int.from_bytes(raw[4:8], "little") > _RTF_MAX:
            return None
        rtf = decompress(raw + b"\x00")[:_RTF_MAX]
        if not rtf.lstrip().startswith(b"{\\rtf"):
            return None
        # The RTF itself is 7-bit with \'xx escapes; its own \ansicpg wins.
        text = rtf_to_text(rtf.decode("latin-1"), encoding=codepage, errors="replace")
    except Exception:
        return None
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    return text if text.strip() else None


def _oem(t) -> int | None:
    cp = getattr(t, "codepage", None)
    if isinstance(cp, str) and cp.startswith("cp") and cp[2:].isdigit():
        return int(cp[2:])
    return None
