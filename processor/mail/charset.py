"""Charset normalisation and robust decoding for (Chinese) mail.

Mail in the wild routinely lies about its charset: GBK text is labelled
``gb2312``, Big5-HKSCS text is labelled ``big5``, raw 8-bit headers carry no
label at all.  Everything here maps labels to the *superset* codec and falls
back through a fixed chain (utf-8 -> gb18030 -> big5hkscs) so that decoding
never raises and rarely needs replacement characters.
"""

from __future__ import annotations

import binascii
import codecs
import re

__all__ = [
    "normalize_charset",
    "decode_bytes",
    "decode_header",
    "decode_raw_header",
    "FALLBACK_CHAIN",
]

# Strict fallback order used when the declared charset does not fit the bytes.
FALLBACK_CHAIN: tuple[str, ...] = ("utf-8", "gb18030", "big5hkscs")

# Labels (lower-case, '_' and ' ' folded to '-') mapped to the python codec we
# actually want. Supersets are preferred: gb2312 text is almost always GBK.
_ALIASES: dict[str, str] = {}


def _alias(target: str, *labels: str) -> None:
    for label in labels:
        _ALIASES[label] = target


_alias(
    "gb18030",
    "gb2312", "gb-2312", "gb2312-80", "gb-2312-80", "gb2312-1980", "euc-cn", "euccn",
    "x-euc-cn", "gbk", "x-gbk", "cp936", "ms936", "windows-936", "936", "gb18030",
    "gb-18030", "gb18030-2000", "gb18030-2005", "csgb2312", "cn-gb", "csiso58gb231280",
    "iso-ir-58", "chinese", "x-mac-chinesesimp", "x-cp20936", "cp20936", "gb",
)
_alias(
    "big5hkscs",
    "big5", "big-5", "big5-hkscs", "big5hkscs", "x-big5", "cn-big5", "csbig5", "cp950",
    "ms950", "windows-950", "big5-eten", "x-x-big5", "x-mac-chinesetrad", "big5-2003",
)
_alias(
    "cp949",
    "ks-c-5601-1987", "ks-c-5601", "ksc5601", "ksc-5601", "euc-kr", "euckr", "cp949",
    "windows-949", "ms949", "uhc", "x-windows-949", "korean", "csksc56011987", "ks-x-1001",
)
_alias("cp932", "shift-jis", "shiftjis", "sjis", "x-sjis", "ms-kanji", "cp932", "windows-31j",
       "csshiftjis", "ms932")
_alias("euc_jis_2004", "euc-jp", "eucjp", "x-euc-jp", "cseucpkdfmtjapanese")
_alias("iso2022_jp_ext", "iso-2022-jp", "csiso2022jp", "iso2022jp")
_alias("utf-7", "utf-7", "utf7", "unicode-1-1-utf-7", "csunicode11utf7", "x-unicode-2-0-utf-7",
       "x-unicode20utf7")
_alias("utf-8", "utf-8", "utf8", "unicode-1-1-utf-8", "x-unicode20utf8", "unicode-2-0-utf-8",
       "x-unicode-2-0-utf-8", "utf-8-sig", "unknown", "unknown-8bit", "x-unknown", "default",
       "charset", "8bit", "7bit", "binary", "x-user-defined", "none", "")
_alias(
    "cp1252",
    "us-ascii", "ascii", "us", "ansi-x3.4-1968", "ansi-x3.4-1986", "iso646-us", "iso-ir-6",
    "cp367", "ibm367", "csascii", "iso-8859-1", "iso8859-1", "iso-8859-1:1987", "latin1",
    "latin-1", "l1", "iso-ir-100", "cp819", "ibm819", "csisolatin1", "windows-1252", "cp1252",
    "x-cp1252",
)
_alias("cp874", "windows-874", "tis-620", "tis620", "iso-8859-11", "x-windows-874", "cp874")
_alias("iso8859-8", "iso-8859-8-i", "iso-8859-8-e", "logical", "visual")
_alias("iso8859-6", "iso-8859-6-i", "iso-8859-6-e")
_alias("utf-16", "unicode", "ucs-2", "csunicode", "iso-10646-ucs-2")

# Python codecs that are ASCII-transparent (pure-ASCII bytes decode to the same
# text). Used to take a fast path for pure ASCII payloads.
_NOT_ASCII_COMPATIBLE = {"utf-7", "hz", "utf-16", "utf-16-le", "utf-16-be", "utf-32",
                         "utf-32-le", "utf-32-be", "iso2022_jp_ext", "iso2022_jp",
                         "iso2022_jp_1", "iso2022_jp_2", "iso2022_jp_2004", "iso2022_jp_3",
                         "iso2022_kr", "cp037", "cp500", "cp1140", "cp273", "cp875",
                         "cp1026", "cp424"}

_LABEL_CLEAN = re.compile(r"[_\s]+")
_cache: dict[object, str] = {}


def _normalize_uncached(label: object) -> str:
    if isinstance(label, bytes):
        label = label.decode("ascii", "ignore")
    elif not isinstance(label, str):
        try:
            label = str(label)
        except Exception:
            return "utf-8"
    text = label.strip().strip("\"'").strip()
    # RFC 2231 language suffix: "utf-8*zh-cn"
    text = text.split("*", 1)[0]
    # Stray parameters: "gb2312;format=flowed"
    text = text.split(";", 1)[0].strip().lower()
    text = _LABEL_CLEAN.sub("-", text)
    if not text.isascii():
        return "utf-8"
    hit = _ALIASES.get(text)
    if hit is not None:
        return hit
    try:
        info = codecs.lookup(text)
    except (LookupError, ValueError, TypeError):
        # Common sloppy spellings: "x-gbk", "windows-936", "gb-2312" etc.
        stripped = text[2:] if text.startswith("x-") else text
        hit = _ALIASES.get(stripped) or _ALIASES.get(stripped.replace("-", ""))
        return hit or "utf-8"
    if not getattr(info, "_is_text_encoding", True):
        return "utf-8"  # base64, rot13, zlib, ... are not charsets
    name = info.name
    # Map what codecs.lookup resolved to our supersets.
    return _ALIASES.get(name.replace("_", "-"), name)


def normalize_charset(label: str | None) -> str:
    """Return the python codec name to use for a MIME charset label.

    gb2312/gbk/euc-cn/... -> "gb18030", big5 family -> "big5hkscs", unknown,
    invalid or missing -> "utf-8". Never raises.
    """
    if label is None:
        return "utf-8"
    try:
        hit = _cache.get(label)
    except TypeError:  # unhashable
        return _normalize_uncached(label)
    if hit is None:
        hit = _normalize_uncached(label)
        if len(_cache) < 4096:
            _cache[label] = hit
    return hit


def decode_bytes(data: bytes, charset: str | None) -> tuple[str, list[str]]:
    """Decode ``data`` with the (normalised) declared charset.

    On failure try utf-8, gb18030, big5hkscs strictly; as a last resort decode
    with the declared codec using ``errors="replace"``. Returns
    ``(text, defects)``. Never raises.
    """
    if not data:
        return "", []
    if not isinstance(data, bytes):
        if not isinstance(data, (bytearray, memoryview)):
            return str(data), []
        data = bytes(data)
    codec = normalize_charset(charset)
    if codec not in _NOT_ASCII_COMPATIBLE and data.isascii():
        return data.decode("ascii"), []
    try:
        return data.decode(codec), []
    except (UnicodeError, LookupError):
        pass
    except Exception:  # pragma: no cover - exotic codec failures
        pass
    for alt in FALLBACK_CHAIN:
        if alt == codec:
            continue
        try:
            text = data.decode(alt)
        except UnicodeError:
            continue
        return text, [f"bytes do not match declared charset {charset!r}; decoded as {alt}"]
    try:
        text = data.decode(codec, "replace")
    except Exception:  # pragma: no cover
        text = bytes(data).decode("utf-8", "replace")
    return text, [f"undecodable bytes in charset {charset!r}; replacement characters used"]


# --------------------------------------------------------------------------
# Header decoding (RFC 2047 + raw 8-bit)
# --------------------------------------------------------------------------

# Encoded word. Like the stdlib, tolerate spaces inside the encoded text
# (some broken mailers emit them) but keep the match non-greedy.
_EW = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?(.*?)\?=", re.S)
_FOLD = re.compile(r"\r?\n[ \t]*|\r[ \t]*")
_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")


def _b_decode(text: str) -> bytes | None:
    try:
        data = text.encode("ascii")
    except UnicodeError:
        return None
    if not len(data) % 4:
        try:
            return binascii.a2b_base64(data)
        except (binascii.Error, ValueError):
            pass
    data = _B64_JUNK.sub(b"", data)
    rem = len(data) % 4
    if rem == 1:
        data = data[:-1]
    elif rem:
        data += b"=" * (4 - rem)
    try:
        return binascii.a2b_base64(data)
    except (binascii.Error, ValueError):
        return None


def _q_decode(text: str) -> bytes | None:
    try:
        return binascii.a2b_qp(text.encode("ascii"), header=True)
    except (UnicodeError, binascii.Error, ValueError):
        return None


def _decode_8bit(raw: bytes, hint: str | None) -> str:
    """Decode raw 8-bit header bytes: utf-8, then the hint, then gb18030, big5hkscs."""
    try:
        return raw.decode("utf-8")
    except UnicodeError:
        pass
    chain: list[str] = []
    if hint:
        h = normalize_charset(hint)
        if h not in ("utf-8", "cp1252") and h not in _NOT_ASCII_COMPATIBLE:
            chain.append(h)
    for alt in ("gb18030", "big5hkscs"):
        if alt not in chain:
            chain.append(alt)
    for codec in chain:
        try:
            return raw.decode(codec)
        except UnicodeError:
            continue
    return raw.decode("gb18030", "replace")


def decode_raw_header(value: object, hint: str | None = None) -> str:
    """Turn a header value as stored by the compat32 parser into real text.

    Only undoes the *transport* level (surrogate-escaped raw 8-bit bytes,
    ``Header`` objects, bytes); RFC 2047 encoded words are left intact. Useful
    before address parsing, where encoded words must stay atoms.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        if value.isascii():
            return value
        try:
            value.encode("utf-8")
            return value  # real unicode, no surrogate escapes
        except UnicodeEncodeError:
            raw = value.encode("utf-8", "surrogateescape")
            try:
                return _decode_8bit(raw, hint)
            except Exception:
                return raw.decode("utf-8", "replace")
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        if raw.isascii():
            return raw.decode("ascii")
        return _decode_8bit(raw, hint)
    chunks = getattr(value, "_chunks", None)
    if chunks is not None:  # email.header.Header
        parts = []
        for s, cs in chunks:
            if isinstance(s, bytes):
                parts.append(_decode_8bit(s, hint))
            else:
                parts.append(decode_raw_header(s, hint))
        return "".join(parts)
    try:
        return str(value)
    except Exception:
        return ""


def decode_header(value, fallback_charset: str | None = None) -> str:
    """Fully decode a header value to text. Never raises.

    * RFC 2047 encoded words: adjacent words with the same (normalised)
      charset are joined at byte level before decoding, so characters split
      across words survive; whitespace between encoded words is dropped.
    * Raw 8-bit bytes (surrogate-escaped str from compat32, ``Header``
      objects, bytes) are decoded as utf-8, then ``fallback_charset`` (if
      given), then gb18030, then big5hkscs.
    * Malformed encoded words are kept as literal text.
    * Folding (CRLF + WSP) is unfolded to a single space.
    """
    try:
        text = decode_raw_header(value, fallback_charset)
        if "\r" in text or "\n" in text:
            text = _FOLD.sub(" ", text)
        if "=?" in text:
            text = _decode_words(text)
        if "\x00" in text:
            text = text.replace("\x00", "")
        return text
    except Exception:
        try:
            # never hand out lone surrogates: they break UTF-8 encoders/DBs
            return str(value).encode("utf-8", "replace").decode("utf-8").replace("\x00", "")
        except Exception:
            return ""


def _decode_words(text: str) -> str:
    # Segments: list of [charset, bytes] (encoded) or str (literal).
    segs: list = []
    pos = 0
    for m in _EW.finditer(text):
        start = m.start()
        literal = text[pos:start]
        label, enc, payload = m.group(1), m.group(2), m.group(3)
        if enc in "bB":
            data = _b_decode(payload)
        else:
            data = _q_decode(payload)
        if data is None:
            # Malformed: keep the whole thing as literal text.
            if literal or m.group(0):
                segs.append(literal + m.group(0))
            pos = m.end()
            continue
        codec = normalize_charset(label)
        if literal:
            if (not literal.strip(" \t\r\n")) and segs and not isinstance(segs[-1], str):
                pass  # whitespace between two encoded words: dropped
            else:
                segs.append(literal)
        if segs and not isinstance(segs[-1], str) and segs[-1][0] == codec:
            segs[-1][1] += data
        else:
            segs.append([codec, bytearray(data)])
        pos = m.end()
    tail = text[pos:]
    if tail:
        segs.append(tail)
    out: list[str] = []
    for seg in segs:
        if isinstance(seg, str):
            out.append(seg)
        else:
            decoded, _ = decode_bytes(bytes(seg[1]), seg[0])
            out.append(decoded)
    return "".join(out)
