"""Parse stage: raw RFC 5322 bytes -> one normalised, fully decoded mail.

Uses the stdlib ``email`` package with the compat32 policy for MIME structure
only (it is ~10x faster than mail-parser and keeps raw bytes intact) and does
all charset / transfer-encoding decoding itself, because stdlib and
mail-parser both mangle GBK text labelled gb2312, raw 8-bit headers and
encoded words split mid-character.

``parse_mail`` never raises: problems are reported in ``ParsedMail.defects``.
What one mail may cost is bounded by :class:`MailLimits` (depth, parts, decoded
bytes, attachments, text); what was cut is reported in ``ParsedMail.cuts`` and a
mail that cannot be parsed safely at all gets ``ParsedMail.refusal`` (reasons as
data: a code and its parameters, see ``processor.reasons``).
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime

from ..reasons import Reason, clip
from .charset import decode_bytes, decode_header, decode_raw_header, normalize_charset
from .html import html_to_text
from .quote import strip_quoted
from .signature import html_signature_start, is_signoff_only, strip_signature, strip_signoff
from .subject import normalize_subject
from .tnef import is_tnef, read_tnef

__all__ = ["Attachment", "MailLimits", "ParsedMail", "parse_mail", "settle_date", "CHINA_TZ"]

CHINA_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")

_PARSER = BytesParser(policy=compat32)
_MB = 1024 * 1024
_CONTENT_TYPE_LINE = re.compile(rb"^content-type[ \t]*:", re.I | re.M)
# Header fields always looked at, even past the header-count bound.
_ESSENTIAL = frozenset({"from", "to", "cc", "reply-to", "subject", "date", "message-id", "in-reply-to",
                        "references", "content-type", "content-transfer-encoding", "auto-submitted",
                        "precedence", "list-id", "authentication-results", "x-ticket-processor"})


@dataclass(frozen=True, slots=True)
class MailLimits:
    """What parsing one mail may cost (config: ``[limits]``)."""
    max_depth: int = 20
    max_parts: int = 500
    max_decoded: int = 50 * _MB
    max_attachment: int = 10 * _MB
    max_attachments_total: int = 25 * _MB
    max_text_chars: int = 1_000_000
    max_subject_chars: int = 500
    max_headers: int = 1000
    max_header_chars: int = 20_000
    max_addresses: int = 500


DEFAULT_LIMITS = MailLimits()


@dataclass(slots=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes  # b"" when not kept (over a limit); ``size`` still says how big it was
    size: int = -1

    def __post_init__(self) -> None:
        if self.size < 0:
            self.size = len(self.data)

    @property
    def kept(self) -> bool:
        return len(self.data) == self.size


@dataclass(slots=True)
class ParsedMail:
    message_id: str | None = None
    subject: str = ""
    subject_norm: str = ""
    from_addr: str = ""
    from_name: str = ""
    to: list[tuple[str, str]] = field(default_factory=list)
    cc: list[tuple[str, str]] = field(default_factory=list)
    reply_to: list[tuple[str, str]] = field(default_factory=list)
    date: datetime | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    content_type: str = "text/plain"
    text: str = ""
    html: str | None = None
    body: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    headers: list[tuple[str, str]] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    # Bounds that cut something (the mail is still processed).
    cuts: list[Reason] = field(default_factory=list)
    # Set when the mail could not be parsed safely: quarantine it with this.
    refusal: Reason | None = None
    # The first message attached as message/rfc822 (a report forwarded as
    # an attachment), parsed; only at the top level.
    attached: "ParsedMail | None" = None
    # Set on the original unwrapped from an Exchange journal report: the
    # envelope (processor.mail.journal.JournalEnvelope).
    journal: object = None
    # Set when the body could not be read (broken MIME, unknown charset, an
    # Outlook TNEF body we cannot decode): answer that, not "fields missing".
    unreadable: Reason | None = None
    # The Date header's wall-clock time when it named no zone at all (read
    # provisionally as China time); settle_date() infers the zone.
    date_unzoned: datetime | None = None

    def cut(self, code: str, **params) -> None:
        r = Reason(code, params)
        self.cuts.append(r)
        self.defects.append(r.text())

    def header(self, name: str) -> str | None:
        """First value of header ``name`` (case-insensitive), or None."""
        key = name.lower()
        for k, v in self.headers:
            if k == key:
                return v
        return None

    def header_all(self, name: str) -> list[str]:
        """All values of header ``name`` (case-insensitive), in order."""
        key = name.lower()
        return [v for k, v in self.headers if k == key]

    @property
    def recipients(self) -> list[str]:
        """To + Cc addresses."""
        return [addr for _, addr in self.to] + [addr for _, addr in self.cc]


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------

_ANGLE_ID = re.compile(r"<([^<>]*)>")
_ADDR_OK = re.compile(r"[^\s@<>()\[\],;:\"]+@[^\s@<>()\[\],;:\"]+\Z")
_ADDR_FIND = re.compile(r"[A-Za-z0-9._%+!#$&'*/=?^`{|}~-]+@[A-Za-z0-9.-]+[A-Za-z0-9]")
_NEWLINES = re.compile(r"\r\n?")
_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_BOUNDARY_LINE = re.compile(r"^--([^\s]{1,200}?)(?:--)?[ \t]*\r?$", re.M)
_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")
_DATE_FALLBACK = re.compile(
    r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?"
    r"(?:[\sT]*(\d{1,2})\s*[:时]\s*(\d{1,2})(?:\s*[:分]\s*(\d{1,2}))?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?"
)


def _norm_msgid(value: str | None) -> str | None:
    if not value:
        return None
    m = _ANGLE_ID.search(value)
    if m is not None:
        ident = "".join(m.group(1).split())
        if ident:
            return f"<{ident}>"
    tokens = value.replace("<", " ").replace(">", " ").split()
    for tok in tokens:
        if "@" in tok:
            return f"<{tok}>"
    return f"<{tokens[0]}>" if tokens else None


def _norm_references(value: str | None) -> list[str]:
    if not value:
        return []
    ids = ["".join(x.split()) for x in _ANGLE_ID.findall(value)]
    ids = [f"<{x}>" for x in ids if x]
    if not ids:
        ids = [f"<{t}>" for t in value.replace(",", " ").split() if "@" in t]
    seen: set[str] = set()
    out = []
    for x in ids:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def _defect_text(defect: object) -> str:
    name = getattr(defect, "__name__", None) or type(defect).__name__
    detail = ""
    try:
        detail = str(defect) if not isinstance(defect, type) else ""
        # stdlib defects may quote raw (surrogate-escaped) header lines
        detail = detail.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        detail = " ".join(detail.replace("\x00", "").split())[:200]
    except Exception:
        detail = ""
    return f"{name}: {detail}" if detail else name


def _exc_text(exc: BaseException) -> str:
    try:
        text = str(exc).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except Exception:
        text = ""
    text = " ".join(text.replace("\x00", "").split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _parse_date(value: str | None, defects: list[str]) -> datetime | None:
    if value is None or not value.strip():
        defects.append("missing Date header")
        return None
    dt = None
    try:
        dt = parsedate_to_datetime(value)
    except Exception:
        dt = None
    if dt is None:
        m = _DATE_FALLBACK.search(value)
        if m is not None:
            try:
                y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
                hh = int(m.group(4) or 0)
                mi = int(m.group(5) or 0)
                ss = int(m.group(6) or 0)
                tz = None
                if m.group(7):
                    z = m.group(7)
                    if z == "Z":
                        tz = timezone.utc
                    else:
                        z = z.replace(":", "")
                        off = int(z[1:3]) * 60 + int(z[3:5])
                        tz = timezone(timedelta(minutes=-off if z[0] == "-" else off))
                dt = datetime(y, mo, d, hh, mi, ss, tzinfo=tz)
                defects.append(f"non-RFC 5322 Date header parsed leniently: {value!r}")
            except (ValueError, OverflowError):
                dt = None
    if dt is None:
        defects.append(f"unparseable Date header: {value!r}")
        return None
    if dt.tzinfo is None:
        if _MINUS_ZERO.search(value):
            # RFC 5322 3.3: -0000 is a time in UTC from a sender that does not
            # say where it is; not a local time.
            dt = dt.replace(tzinfo=timezone.utc)
            defects.append(Reason("date_zone_unknown", {"date": value.strip()[:100]}).text())
        else:
            dt = dt.replace(tzinfo=CHINA_TZ)  # provisional: settle_date() infers the zone
    return dt


_MINUS_ZERO = re.compile(r"(?:^|\s)-0000\s*(?:\([^)]*\))?\s*$")
# How much earlier than its arrival a Date may be before it is taken for a
# wrong clock (a client whose clock was reset is years off). Less than that
# is believed: a mail written offline and sent later, an old mail moved into
# the mailbox (its INTERNALDATE may be the day it was moved).
DATE_BEFORE_ARRIVAL_MAX = timedelta(days=365)


def arrival_from_received(mail: ParsedMail) -> datetime | None:
    """When the topmost ``Received`` header (our server's) says the mail
    arrived, or None."""
    top = mail.header("received")
    if not top or ";" not in top:
        return None
    try:
        dt = parsedate_to_datetime(top.rsplit(";", 1)[1].strip())
    except Exception:
        return None
    if dt is None:
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=timezone.utc)


def settle_date(mail: ParsedMail, arrived: datetime | None, tz=CHINA_TZ) -> None:
    """A ``Date`` far before the mail's arrival (a client with a reset clock)
    is replaced by the arrival time, and the defect noted. ``arrived``: the
    server's INTERNALDATE or the intake time; the topmost ``Received`` header
    wins (it is right for mail imported from an archive too). ``tz``: the
    zone the noted times are written in (``system.timezone``)."""
    arrived = arrival_from_received(mail) or arrived
    if arrived is not None and arrived.tzinfo is None:
        arrived = arrived.replace(tzinfo=timezone.utc)
    if mail.date_unzoned is not None:
        _settle_zone(mail, arrived, tz)
    if mail.date is None or arrived is None:
        return
    if mail.date < arrived - DATE_BEFORE_ARRIVAL_MAX:
        days = (arrived - mail.date).days
        mail.defects.append(Reason("date_before_arrival", {
            "date": mail.date.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
            "arrived": arrived.astimezone(tz).strftime("%Y-%m-%d %H:%M"), "days": days}).text())
        mail.date = arrived


# How far a zone-less Date may be from a whole-hour offset of its reference
# time (transit, a slow clock) and still be read as written in that zone.
ZONE_SLACK = timedelta(minutes=15)


def _received_times(mail: ParsedMail) -> list[datetime]:
    """The zoned times of the ``Received`` headers, topmost first."""
    out = []
    for value in mail.header_all("received")[:30]:
        if ";" not in value:
            continue
        try:
            dt = parsedate_to_datetime(value.rsplit(";", 1)[1].strip())
        except Exception:
            continue
        if dt is not None and dt.tzinfo is not None:
            out.append(dt)
    return out


def _settle_zone(mail: ParsedMail, arrived: datetime | None, tz) -> None:
    """A Date that names no zone. Its offset is inferred from the first
    hop's ``Received`` time (the sender's own server, nearest to when the
    mail was written), else from the arrival: when the two differ by a
    whole-hour zone (UTC-12 to UTC+14, within ``ZONE_SLACK``) the Date is
    read in that zone. Otherwise the arrival time is used. Either way the
    mail's defects say so, with times in ``tz``."""
    local = mail.date_unzoned
    mail.date_unzoned = None
    hops = _received_times(mail)
    if hops:
        reference, source = hops[-1], "第一个 Received 邮件头的时间"
    elif arrived is not None:
        reference, source = arrived, "到达时间"
    else:
        mail.date = local.replace(tzinfo=tz)  # nothing to infer from: the system's zone
        return
    diff = local.replace(tzinfo=timezone.utc) - reference
    hours = round(diff / timedelta(hours=1))
    shown = {"date": local.strftime("%Y-%m-%d %H:%M"), "source": source,
             "reference": reference.astimezone(tz).strftime("%Y-%m-%d %H:%M")}
    if -12 <= hours <= 14 and abs(diff - timedelta(hours=hours)) <= ZONE_SLACK:
        mail.date = local.replace(tzinfo=timezone(timedelta(hours=hours)))
        mail.defects.append(Reason("date_zone_inferred", {**shown, "zone": f"{hours:+03d}:00"}).text())
        return
    when = arrived or reference
    mail.date = when
    mail.defects.append(Reason("date_zone_missing", {
        **shown, "arrived": when.astimezone(tz).strftime("%Y-%m-%d %H:%M")}).text())


_SIMPLE_ANGLE = re.compile(r"\s*([^<>]*?)\s*<\s*([^<>\s]+@[^<>\s]+)\s*>\s*\Z")
_SIMPLE_BARE = re.compile(r"\s*([^\s<>@]+@[^\s<>@]+)\s*\Z")


def _simple_addresses(texts: list[str]) -> list[tuple[str, str]] | None:
    """Fast path for the common ``name <addr>, addr`` lists; None if unsure."""
    out = []
    for text in texts:
        if '"' in text or "(" in text or ";" in text or ":" in text or "\\" in text:
            return None
        for item in text.split(","):
            if not item.strip():
                continue
            m = _SIMPLE_ANGLE.match(item)
            if m is not None:
                out.append((m.group(1), m.group(2)))
                continue
            m = _SIMPLE_BARE.match(item)
            if m is None:
                return None
            out.append(("", m.group(1)))
    return out


def _addresses(raw_values: list, hint: str | None) -> list[tuple[str, str]]:
    if not raw_values:
        return []
    texts = []
    for v in raw_values:
        t = decode_raw_header(v, hint)
        if "\x00" in t:
            t = t.replace("\x00", "")
        if "\n" in t or "\r" in t:
            t = " ".join(t.split())
        texts.append(t)
    pairs = _simple_addresses(texts)
    if pairs is None:
        try:
            pairs = getaddresses(texts)
        except Exception:
            pairs = []
            for t in texts:
                pairs.extend(("", a) for a in _ADDR_FIND.findall(t))
    out: list[tuple[str, str]] = []
    for name, addr in pairs:
        addr = (addr or "").strip()
        if addr and not _ADDR_OK.match(addr):
            m = _ADDR_FIND.search(addr)
            if m is not None:
                addr = m.group(0)
        if not addr:
            continue
        if name:
            name = decode_header(name, hint).strip()
            if name.startswith('"') and name.endswith('"') and len(name) >= 2:
                name = name[1:-1].strip()
        out.append((name or "", addr.lower()))
    return out


def _b64decode(data: bytes, defects: list[str]) -> bytes:
    try:
        return binascii.a2b_base64(data)
    except (binascii.Error, ValueError):
        pass
    clean = _B64_JUNK.sub(b"", data)
    rem = len(clean) % 4
    if rem == 1:
        clean = clean[:-1]
    elif rem:
        clean += b"=" * (4 - rem)
    try:
        out = binascii.a2b_base64(clean)
    except (binascii.Error, ValueError):
        defects.append("invalid base64 payload; dropped")
        return b""
    defects.append("malformed base64 padding repaired")
    return out


_CTYPE_OK = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+\Z")
_PARAM = re.compile(r""";\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"?|[^;]*)""")


def _split_params(value: object) -> tuple[str, dict[str, str], bool]:
    """``'text/plain; charset="gb2312"'`` -> ("text/plain", {"charset": "gb2312"}, rfc2231)."""
    if not isinstance(value, str):
        value = str(value)
    head, sep, _rest = value.partition(";")
    params: dict[str, str] = {}
    rfc2231 = False
    if sep:
        for m in _PARAM.finditer(value, len(head)):
            name = m.group(1).lower()
            val = m.group(2).strip()
            if val.startswith('"'):
                val = val[1:-1] if val.endswith('"') and len(val) > 1 else val[1:]
                if "\\" in val:
                    val = re.sub(r"\\(.)", r"\1", val)
            if "*" in name:
                rfc2231 = True
            if name not in params:
                params[name] = val
    return "".join(head.split()).lower(), params, rfc2231


class _PartInfo:
    """Content-Type / -Disposition / -Transfer-Encoding of one part, parsed once."""

    __slots__ = ("ctype", "params", "disposition", "dparams", "cte", "rfc2231")

    def __init__(self, part: Message, default: str = "text/plain") -> None:
        ct = cd = cte = None
        for k, v in part._headers:
            kl = k.lower()
            if kl == "content-type":
                if ct is None:
                    ct = v
            elif kl == "content-disposition":
                if cd is None:
                    cd = v
            elif kl == "content-transfer-encoding":
                if cte is None:
                    cte = v
        rfc2231 = False
        if ct is not None:
            ctype, self.params, rfc2231 = _split_params(ct)
            if not _CTYPE_OK.match(ctype):
                ctype = "text/plain"
            self.ctype = ctype
        else:
            self.ctype = default
            self.params = {}
        if cd is not None:
            self.disposition, self.dparams, r2 = _split_params(cd)
            rfc2231 = rfc2231 or r2
        else:
            self.disposition = ""
            self.dparams = {}
        self.cte = "".join(str(cte).split()).lower() if cte is not None else ""
        self.rfc2231 = rfc2231

    @property
    def charset(self) -> str | None:
        cs = self.params.get("charset")
        if not cs:
            return None
        cs = cs.strip().strip("'\"").lower()
        return cs if cs and cs.isascii() else None


def _payload_bytes(part: Message, defects: list[str], cte: str | None = None) -> bytes:
    """Transfer-decoded payload of a non-multipart part."""
    payload = part._payload  # compat32: surrogate-escaped str (or bytes)
    if payload is None:
        return b""
    if isinstance(payload, list):
        return b""
    if isinstance(payload, str):
        try:
            data = payload.encode("ascii")
        except UnicodeEncodeError:
            data = payload.encode("utf-8", "surrogateescape")
    else:
        data = bytes(payload)
    if cte is None:
        cte = "".join(str(part.get("content-transfer-encoding", "")).split()).lower()
    if not cte or cte in ("7bit", "8bit", "binary"):
        return data
    if cte == "base64":
        return _b64decode(data, defects)
    if cte == "quoted-printable":
        try:
            return binascii.a2b_qp(data)
        except Exception:
            defects.append("invalid quoted-printable payload")
            return data
    if cte in ("x-uuencode", "uuencode", "uue", "x-uue"):
        try:
            out = part.get_payload(decode=True)
            return out if isinstance(out, bytes) else data
        except Exception:
            return data
    return data


def _unflow(text: str, delsp: bool) -> str:
    """RFC 3676 format=flowed: join soft-broken lines."""
    out: list[str] = []
    buf = ""
    for line in text.split("\n"):
        if line.startswith(" "):
            line = line[1:]  # space-stuffing
        if line.endswith(" ") and line != "-- ":
            buf += line[:-1] if delsp else line
            continue
        out.append(buf + line)
        buf = ""
    if buf:
        out.append(buf)
    return "\n".join(out)


def _clean_text(text: str, defects: list[str], where: str) -> str:
    if "\r" in text:
        text = _NEWLINES.sub("\n", text)
    if "\x00" in text:
        text = text.replace("\x00", "")
        defects.append(f"NUL characters removed from {where}")
    if text.startswith("\ufeff"):
        text = text[1:]
    return text


def _filename(part: Message, hint: str | None, info: _PartInfo | None = None) -> str:
    if info is not None and not info.rfc2231:
        value = info.dparams.get("filename") or info.params.get("name")
        if not value:
            return ""
        try:
            return decode_header(value, hint).strip().strip('"').strip()
        except Exception:
            return str(value)
    for param, header in (("filename", "content-disposition"), ("name", "content-type")):
        try:
            value = part.get_param(param, None, header)
        except Exception:
            value = None
        if not value:
            continue
        try:
            if isinstance(value, tuple):  # RFC 2231: (charset, language, text)
                cs, _lang, text = value
                raw = text.encode("latin-1", "surrogateescape") if isinstance(text, str) else bytes(text)
                name, _ = decode_bytes(raw, cs or None)
            else:
                name = decode_header(value.strip('"'), hint)
        except Exception:
            name = str(value)
        name = name.strip().strip('"').strip()
        if name:
            return name
    return ""


# ---------------------------------------------------------------------------
# body walk
# ---------------------------------------------------------------------------


class _Walk:
    __slots__ = ("plain", "html", "inner_plain", "inner_html", "attachments", "defects",
                 "hint", "mail", "limits", "parts", "decoded", "kept", "stopped", "cut_codes")

    def __init__(self, mail: ParsedMail, hint: str | None, limits: MailLimits) -> None:
        self.plain: list[str] = []
        self.html: str | None = None
        self.inner_plain: str | None = None
        self.inner_html: str | None = None
        self.attachments: list[Attachment] = []
        self.defects = mail.defects
        self.hint = hint
        self.mail = mail
        self.limits = limits
        self.parts = 0  # parts visited
        self.decoded = 0  # bytes decoded so far
        self.kept = 0  # attachment bytes kept so far
        self.stopped = False  # a bound was hit: visit nothing more
        self.cut_codes: set[str] = set()

    def cut_once(self, code: str, **params) -> None:
        if code not in self.cut_codes:
            self.cut_codes.add(code)
            self.mail.cut(code, **params)

    def payload(self, part: Message, cte: str | None) -> bytes:
        """Transfer-decoded payload, within the per-mail decoded budget."""
        raw = part._payload
        n = len(raw) if isinstance(raw, (str, bytes)) else 0
        if self.decoded + n > self.limits.max_decoded:  # decoded size <= encoded size
            self.cut_once("decoded_size_cut", limit=self.limits.max_decoded)
            self.stopped = True
            return b""
        data = _payload_bytes(part, self.defects, cte)
        self.decoded += len(data)
        return data

    def attach(self, filename: str, ctype: str, data: bytes, size: int | None = None) -> None:
        size = len(data) if size is None else size
        lim = self.limits
        if size > lim.max_attachment:
            self.mail.cut("attachment_too_large", name=clip(filename, 200), size=size, limit=lim.max_attachment)
            data = b""
        elif self.kept + size > lim.max_attachments_total:
            self.mail.cut("attachments_total_cut", name=clip(filename, 200), limit=lim.max_attachments_total)
            data = b""
        else:
            self.kept += size
        self.attachments.append(Attachment(clip(filename, 500), ctype, data, size))


def _decode_text_part(part: Message, info: _PartInfo, ctx: _Walk) -> str:
    ctype = info.ctype
    data = ctx.payload(part, info.cte)
    charset = info.charset
    if charset is None and ctype == "text/html" and data:
        m = _META_CHARSET.search(data, 0, 4096)
        if m is not None:
            charset = m.group(1).decode("ascii", "ignore")
    text, dfs = decode_bytes(data, charset)
    if dfs:
        ctx.defects.extend(f"{ctype} part: {d}" for d in dfs)
    text = _clean_text(text, ctx.defects, f"{ctype} part")
    if ctype == "text/plain" and info.params.get("format", "").lower() == "flowed":
        text = _unflow(text, info.params.get("delsp", "").lower() == "yes")
    return text


def _walk(part: Message, depth: int, ctx: _Walk, inner: bool, parent: str) -> None:
    if ctx.stopped:
        return
    if depth > ctx.limits.max_depth:
        ctx.cut_once("mime_depth_cut", limit=ctx.limits.max_depth)
        return
    ctx.parts += 1
    if ctx.parts > ctx.limits.max_parts:
        ctx.cut_once("mime_parts_cut", limit=ctx.limits.max_parts)
        ctx.stopped = True
        return
    for d in part.defects:
        ctx.defects.append(_defect_text(d))
    info = _PartInfo(part, "message/rfc822" if parent == "multipart/digest" else "text/plain")
    ctype = info.ctype
    maintype = ctype.split("/", 1)[0]
    payload = part._payload
    if isinstance(payload, list):
        if maintype == "message":
            _embedded_message(part, info, depth, ctx, inner)
            return
        for sub in payload:
            if isinstance(sub, Message):
                _walk(sub, depth + 1, ctx, inner, ctype)
        return
    if maintype == "multipart":
        _recover_multipart(part, info, depth, ctx, inner)
        return
    filename = _filename(part, ctx.hint, info)
    if info.disposition != "attachment" and not filename and ctype in ("text/plain", "text/html"):
        text = _decode_text_part(part, info, ctx)
        if inner:
            if ctype == "text/plain":
                if ctx.inner_plain is None:
                    ctx.inner_plain = text
            elif ctx.inner_html is None:
                ctx.inner_html = text
        elif ctype == "text/plain":
            if not ctx.plain or parent == "multipart/mixed":
                ctx.plain.append(text)
        elif ctx.html is None:
            ctx.html = text
        return
    if inner:
        return
    data = ctx.payload(part, info.cte)
    if ctx.stopped:
        return
    ctx.attach(filename, ctype, data)


def _embedded_message(part: Message, info: _PartInfo, depth: int, ctx: _Walk, inner: bool) -> None:
    """message/rfc822, message/delivery-status, ...: attachment + fallback text.
    Only the outermost embedded message becomes an attachment (it holds the
    ones nested in it)."""
    ctype = info.ctype
    inner_msgs = [m for m in part._payload if isinstance(m, Message)]
    if ctype == "message/rfc822":
        inner_msgs = inner_msgs[:1]
    filename = _filename(part, ctx.hint, info)
    if not filename and ctype == "message/rfc822" and inner_msgs:
        subj = decode_header(inner_msgs[0].get("subject", ""), ctx.hint).strip()
        filename = clip(subj or "message", 200) + ".eml"
    # Serialising a nested message copies it: at N levels of nesting that is
    # N copies. Estimate first and keep only what the budgets allow.
    size = _approx_size(inner_msgs, ctx.limits.max_parts) if not inner else 0
    data = b""
    lim = ctx.limits
    if not inner and ctx.decoded + size > lim.max_decoded:
        ctx.cut_once("decoded_size_cut", limit=lim.max_decoded)
        ctx.stopped = True
        return
    if not inner and size <= lim.max_attachment and ctx.kept + size <= lim.max_attachments_total:
        try:
            data = b"\n".join(m.as_bytes() for m in inner_msgs)
        except Exception as exc:  # RecursionError on absurd nesting, ...
            ctx.defects.append(f"cannot serialise embedded {ctype}: {type(exc).__name__}")
            data = b""
        size = len(data)
        ctx.decoded += size
    if not inner:
        ctx.attach(filename, ctype, data, size if not data else None)
    if ctype == "message/rfc822":
        for m in inner_msgs:
            _walk(m, depth + 1, ctx, True, ctype)


def _approx_size(msgs: list, max_parts: int) -> int:
    """Upper-bound estimate of the serialised size of ``msgs`` (iterative:
    no recursion, at most ``max_parts`` parts looked at)."""
    total = 0
    stack = list(msgs)
    seen = 0
    while stack and seen <= max_parts:
        m = stack.pop()
        seen += 1
        for k, v in m._headers:
            total += len(k) + len(v) + 4
        p = m._payload
        if isinstance(p, list):
            stack.extend(x for x in p if isinstance(x, Message))
            total += 100 * len(p)  # boundaries
        elif isinstance(p, (str, bytes)):
            total += len(p)
    if stack:
        total += sum(len(x._payload) if isinstance(x._payload, (str, bytes)) else 0 for x in stack)
    return total


def _recover_multipart(part: Message, info: _PartInfo, depth: int, ctx: _Walk,
                       inner_flag: bool) -> None:
    """A multipart whose boundary is missing or wrong: sniff one and re-parse."""
    ctype = info.ctype
    payload = part._payload
    if not isinstance(payload, str):
        payload = str(payload or "")
    m = _BOUNDARY_LINE.search(payload)
    if m is not None and depth < ctx.limits.max_depth:
        boundary = m.group(1)
        ctx.defects.append(f"{ctype}: boundary missing or wrong; recovered using {boundary!r}")
        head = f'Content-Type: {ctype}; boundary="{boundary}"\r\n\r\n'
        try:
            data = payload.encode("utf-8", "surrogateescape")
            sub = _PARSER.parsebytes(head.encode("ascii", "replace") + data)
        except Exception:
            sub = None
        if sub is not None and sub.is_multipart():
            sub.defects.clear()
            _walk(sub, depth + 1, ctx, inner_flag, ctype)
            return
    ctx.defects.append(f"{ctype}: no usable boundary; body treated as text/plain")
    text, dfs = decode_bytes(payload.encode("utf-8", "surrogateescape"), info.charset)
    ctx.defects.extend(dfs)
    text = _clean_text(text, ctx.defects, ctype)
    if inner_flag:
        if ctx.inner_plain is None:
            ctx.inner_plain = text
    else:
        ctx.plain.append(text)


def _charset_hint(msg: Message) -> str | None:
    """Body charset, used to decode raw 8-bit headers (after utf-8)."""
    try:
        n = 0
        for part in msg.walk():
            cs = _PartInfo(part).charset
            if cs:
                return normalize_charset(cs)
            n += 1
            if n > 8:
                break
    except Exception:
        pass
    return None


# ---------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------

_ADDRESS_HEADERS = ("from", "to", "cc", "reply-to")


def parse_mail(raw: bytes, limits: MailLimits | None = None, _attached: bool = True) -> ParsedMail:
    """Parse raw RFC 5322 bytes into a :class:`ParsedMail`. Never raises."""
    mail = ParsedMail()
    defects = mail.defects
    try:
        _parse_into(mail, raw, defects, limits or DEFAULT_LIMITS)
        if _attached:
            inner = next((a for a in mail.attachments if a.content_type == "message/rfc822" and a.kept and a.data), None)
            if inner is not None:
                mail.attached = parse_mail(inner.data, limits, _attached=False)
    except Exception as exc:  # pragma: no cover - last line of defence
        defects.append(f"internal error while parsing: {_exc_text(exc)}")
        if mail.refusal is None and not mail.from_addr:
            mail.refusal = Reason("parse_failed", {"error": _exc_text(exc)})
    return mail


def _parse_structure(mail: ParsedMail, raw: bytes, limits: MailLimits) -> tuple[Message, bool]:
    """(message, body_ok). The stdlib parser recurses once per nesting level
    and keeps every part: a mail with far more parts than allowed, or nested
    beyond what it can follow, is parsed for its headers only and refused."""
    count = len(_CONTENT_TYPE_LINE.findall(raw))
    if count > limits.max_parts:
        mail.refusal = Reason("mime_too_many_parts", {"count": count, "limit": limits.max_parts})
    else:
        try:
            return _PARSER.parsebytes(raw), True
        except RecursionError:
            mail.refusal = Reason("mime_too_deep", {"limit": limits.max_depth})
    mail.defects.append(mail.refusal.text())
    return _PARSER.parsebytes(raw, headersonly=True), False


def _parse_into(mail: ParsedMail, raw: bytes, defects: list[str], limits: MailLimits = DEFAULT_LIMITS) -> None:
    if raw is None:
        raw = b""
    elif isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    elif not isinstance(raw, bytes):
        raw = bytes(raw)
    if not raw.strip():
        defects.append("empty message")
    msg, body_ok = _parse_structure(mail, raw, limits)

    # ---- headers -------------------------------------------------------
    hint: str | None = None
    hint_done = False
    raw_addr: dict[str, list] = {}
    first: dict[str, str] = {}
    headers = mail.headers
    try:
        n_headers = 0
        for name, value in msg.raw_items():
            lname = str(name).strip().lower()
            n_headers += 1
            if n_headers > limits.max_headers and (lname not in _ESSENTIAL or lname in first):
                continue
            if isinstance(value, str) and len(value) > limits.max_header_chars:
                value = value[:limits.max_header_chars]
            if not isinstance(value, str) or not value.isascii():
                if not hint_done:
                    hint = _charset_hint(msg)
                    hint_done = True
            text = decode_header(value, hint)
            if "\x00" in text:
                text = text.replace("\x00", "")
            text = text.strip()
            headers.append((lname, text))
            if lname not in first:
                first[lname] = text
            if lname in _ADDRESS_HEADERS:
                raw_addr.setdefault(lname, []).append(value)
        if n_headers > limits.max_headers:
            mail.cut("headers_cut", count=n_headers, limit=limits.max_headers)
    except Exception as exc:
        defects.append(f"header decoding failed: {_exc_text(exc)}")

    subject = first.get("subject", "")
    if len(subject) > limits.max_subject_chars:
        mail.cut("subject_truncated", size=len(subject), limit=limits.max_subject_chars)
        subject = clip(subject, limits.max_subject_chars)
    mail.subject = subject
    try:
        mail.subject_norm = normalize_subject(subject)
    except Exception:
        mail.subject_norm = subject

    mail.message_id = _norm_msgid(first.get("message-id"))
    if mail.message_id is None:
        defects.append("missing Message-ID header")
    mail.in_reply_to = _norm_msgid(first.get("in-reply-to"))
    mail.references = _norm_references(" ".join(mail.header_all("references")))

    try:
        froms = _addresses(raw_addr.get("from", []), hint)
        if froms:
            mail.from_name, mail.from_addr = froms[0]
        elif "from" in raw_addr:
            defects.append(f"From header without a usable address: {first.get('from')!r}")
        if "from" not in raw_addr:
            defects.append("missing From header")
        mail.to = _addresses(raw_addr.get("to", []), hint)[:limits.max_addresses]
        mail.cc = _addresses(raw_addr.get("cc", []), hint)[:limits.max_addresses]
        mail.reply_to = _addresses(raw_addr.get("reply-to", []), hint)[:limits.max_addresses]
    except Exception as exc:
        defects.append(f"address parsing failed: {_exc_text(exc)}")

    mail.date = _parse_date(first.get("date"), defects)
    if mail.date is not None and mail.date.tzinfo is CHINA_TZ:
        mail.date_unzoned = mail.date.replace(tzinfo=None)

    # ---- body ----------------------------------------------------------
    try:
        mail.content_type = _PartInfo(msg).ctype
    except Exception:
        mail.content_type = "text/plain"
    ctx = _Walk(mail, hint, limits)
    try:
        if body_ok:
            _walk(msg, 0, ctx, False, "")
    except RecursionError:
        ctx.cut_once("mime_depth_cut", limit=limits.max_depth)
    except Exception as exc:
        defects.append(f"body decoding failed: {_exc_text(exc)}")
    mail.attachments = ctx.attachments
    mail.html = ctx.html
    plain = "\n".join(ctx.plain) if ctx.plain else None
    if plain is not None and not plain.strip() and ctx.html:
        plain = None  # empty text/plain alternative: use the HTML
    if plain is None and ctx.html is None:
        # nothing in the top-level message: fall back to an embedded message
        if ctx.inner_plain is not None:
            plain = ctx.inner_plain
        elif ctx.inner_html is not None:
            mail.html = ctx.inner_html
    if mail.html is not None and len(mail.html) > 4 * limits.max_text_chars:
        mail.html = mail.html[:4 * limits.max_text_chars]
    if plain is not None:
        mail.text = plain
    elif mail.html is not None:
        try:
            mail.text = html_to_text(mail.html)
        except Exception as exc:  # pragma: no cover - html_to_text never raises
            defects.append(f"html conversion failed: {type(exc).__name__}")
    _tnef_body(mail)
    if len(mail.text) > limits.max_text_chars:
        mail.cut("text_truncated", size=len(mail.text), limit=limits.max_text_chars)
        mail.text = clip(mail.text, limits.max_text_chars)
    if not mail.text.strip():
        defects.append("empty body")
        mail.body = mail.text
    else:
        try:
            mail.body = _body(mail)
        except Exception as exc:  # pragma: no cover
            defects.append(f"quote stripping failed: {type(exc).__name__}")
            mail.body = mail.text
    if mail.unreadable is None:
        mail.unreadable = _unreadable(mail, msg)


def _body(mail: ParsedMail) -> str:
    """The text the sender wrote in this mail: without quoted history and
    without the signature (marked in the HTML, by a delimiter or a client's
    line, or an unmarked sign-off with the sender's name)."""
    text = mail.text
    if mail.html:
        cut = html_signature_start(mail.html)
        if cut >= 0:
            above = html_to_text(mail.html[:cut])
            if above.strip():
                text = above
    body = strip_quoted(text)
    unsigned = strip_signature(body)
    if unsigned.strip():
        body = unsigned
    elif body.strip() and unsigned != body:
        return ""  # nothing but a signature
    return strip_signoff(body, (mail.from_name,))


def _tnef_body(mail: ParsedMail) -> None:
    """Outlook "Rich Text" mail: the body is in winmail.dat, the text part
    holds little more than the signature. Read the TNEF body and use it."""
    blob = next((a for a in mail.attachments if is_tnef(a.content_type, a.filename)), None)
    if blob is None:
        return
    got = read_tnef(blob.data) if blob.kept else None
    if got is not None and got.readable:
        if got.html and got.html.strip():
            mail.html = got.html
            mail.text = html_to_text(got.html)
        else:
            mail.text = _NEWLINES.sub("\n", got.text or "")
        mail.defects.append("body read from the Outlook TNEF part (winmail.dat)")
        return
    outer = strip_signoff(strip_signature(strip_quoted(mail.text or "")), (mail.from_name,))
    lines = [ln.strip() for ln in outer.splitlines() if ln.strip()]
    name = mail.from_name.strip()
    only_signature = not lines or (bool(name) and len(lines) <= 8 and lines[0].startswith(name))
    if only_signature:
        form = ("RTF 格式" if got is not None and got.rtf_only else
                "附件过大未保留" if got is None else "格式无法识别")
        mail.unreadable = Reason("unreadable_tnef", {"form": form})
        mail.defects.append(mail.unreadable.text())


def _signature_only(mail: ParsedMail) -> bool:
    """The sender wrote something, but once the signature (and sign-off) is
    cut nothing is left: the body never reached us (a client that put it in
    a format we could not see) or was never written. A mail that carries a
    forwarded message or a file is not empty: its content is there."""
    if not mail.text.strip() or mail.attached is not None:
        return False
    if mail.body.strip() and not is_signoff_only(mail.body, (mail.from_name,)):
        return False
    if not strip_quoted(mail.text).strip():
        return False  # nothing but quoted history
    return not any(not a.content_type.startswith("image/") and not is_tnef(a.content_type, a.filename)
                   for a in mail.attachments)


_BASE64_LINE = re.compile(r"^[A-Za-z0-9+/]{60,}={0,2}$", re.M)
_MIME_LEAK = re.compile(r"^content-(?:type|transfer-encoding)\s*:", re.I | re.M)
_BROKEN = ("invalid base64", "no usable boundary", "undecodable bytes")


def _unreadable(mail: ParsedMail, msg: Message) -> Reason | None:
    """Why the body cannot be read, or None: mostly replacement characters
    (an unknown or wrong charset), nothing left after a decoding failure, or
    raw MIME (headers, base64) where the text should be."""
    text = mail.text or ""
    bad = text.count("\ufffd")
    if bad >= 8 and bad * 20 >= len("".join(text.split())):
        charsets = sorted({cs for cs in (_PartInfo(p).charset for p in msg.walk()) if cs})
        return Reason("unreadable_charset", {"charset": "、".join(charsets) or "未声明"})
    if _signature_only(mail):
        return Reason("unreadable_signature_only", {})
    broken = any(any(b in d for b in _BROKEN) for d in mail.defects)
    if broken and not mail.body.strip():
        return Reason("unreadable_mime", {})
    if broken and _MIME_LEAK.search(text) and len(_BASE64_LINE.findall(text)) >= 3:
        return Reason("unreadable_mime", {})
    return None
