"""Is this sender who the From header says? Only the organisation's own mail
system can tell, so a mail is trusted only when it carries a mark that one of
OUR servers wrote:

* an ``Authentication-Results`` header (RFC 8601) with our authserv-id saying
  ``dmarc=pass`` for exactly the From domain; or
* a ``Received`` chain, read from the top (the hops our servers wrote), that
  reaches an authenticated submission (``with ESMTPA``/``ESMTPSA``, RFC 3848)
  or a client address on a configured internal network or relay; or
* on Exchange, ``X-MS-Exchange-Organization-AuthAs: Internal`` (Exchange
  removes X-MS-Exchange-Organization-* headers from anonymous incoming mail).

Anything else a sender writes -- headers of other authserv-ids, Received
lines below the first hop from outside -- is ignored: anyone can write it.
A mail whose From is not exactly one plain address is never trusted.

The decision is data (a :class:`Verdict` with a code and parameters); the
Chinese wording for admins is in ``REASONS``.
"""
from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass, field
from email import errors
from email.policy import default as default_policy

from authres import AuthenticationResultsHeader
from mailparser.utils import parse_received

from .config import Config

# Reading at most this much of a header block; a larger one is not trusted.
MAX_HEADER_BYTES = 256 * 1024
# A header value longer than this is not read (not trusted when it matters).
MAX_VALUE = 4000
# At most this many Authentication-Results headers are read.
MAX_AR = 20
# RFC 3848 "with" protocol types that mean the client authenticated (SMTP AUTH).
AUTH_PROTOCOLS = {"ESMTPA", "ESMTPSA", "LMTPA", "LMTPSA", "UTF8SMTPA", "UTF8SMTPSA", "UTF8LMTPA", "UTF8LMTPSA"}
# Local delivery hops our own server writes without a client address
# (Postfix -> Dovecot over a unix socket: "from host by host with LMTP").
LOCAL_PROTOCOLS = {"LMTP", "LMTPS", "UTF8LMTP", "UTF8LMTPS"}
EXCHANGE_AUTHAS = "x-ms-exchange-organization-authas"

# Chinese wording of each verdict, for admins (report messages, logs).
REASONS = {
    # trusted
    "dmarc_pass": "{authserv_id} 的 Authentication-Results 头显示 {domain} 的 DMARC 通过",
    "authenticated_submission": "我方服务器 {by} 收到的是经过登录认证的提交（with {protocol}）",
    "internal_network": "邮件来自内部网络或内部中继 {ip}",
    "exchange_internal": "Exchange 标记为组织内部邮件（X-MS-Exchange-Organization-AuthAs: Internal）",
    "from_header_only": "配置 trust.trust_from_header = true：只凭 From 头信任发件人（不安全）",
    # not trusted: the From header
    "no_from": "没有 From 头",
    "several_from_headers": "有 {count} 个 From 头",
    "several_from_addresses": "From 头中有 {count} 个地址",
    "from_unparseable": "From 头无法解析为一个规范的地址：{value}",
    "from_quoted": "From 地址的用户名部分带引号或特殊字符：{value}",
    "from_mismatch": "From 头的地址 {strict} 与识别出的发件人 {parsed} 不一致",
    "from_domain_external": "发件人域名 {domain} 不是本组织的域名（{domains}）",
    "journal_sender_mismatch": "Exchange 日记报告列出的发件人 {sender} 与所附原邮件的发件人 {from_addr} 不一致",
    "headers_too_large": "邮件头过大（超过 {limit} 字节），无法确认来源",
    # not trusted: Authentication-Results
    "dmarc_fail": "{authserv_id} 的 Authentication-Results 头显示 dmarc={result}",
    "dmarc_other_domain": "{authserv_id} 的 Authentication-Results 头中的 DMARC 结果是针对 {other} 的，不是发件人域名 {domain}",
    "dmarc_missing": "没有 {authserv_id} 写入的、针对发件人域名 {domain} 的 DMARC 结果",
    "ar_unparseable": "{authserv_id} 的 Authentication-Results 头无法解析",
    # not trusted: Received chain
    "no_received": "没有 Received 头，看不出邮件经过了本组织的邮件系统",
    "received_unparseable": "第 {hop} 个 Received 头无法解析",
    "external_hop": "邮件来自外部：{by} 从 {client} 收到，未经登录认证",
    "auth_sender_mismatch": "登录认证的用户 {user} 与 From 地址 {addr} 不一致",
    "received_too_many": "Received 头超过 {limit} 个，无法确认来源",
    "no_internal_mark": "没有本组织邮件系统的认证标记（{detail}）",
}


@dataclass(frozen=True)
class Verdict:
    trusted: bool
    code: str
    params: dict = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The Chinese reason; every value from the mail is one bounded line."""
        try:
            return REASONS[self.code].format(**{k: _short(str(v)) for k, v in self.params.items()})
        except (KeyError, IndexError):
            return self.code


def _ok(code: str, **params) -> Verdict:
    return Verdict(True, code, params)


def _no(code: str, **params) -> Verdict:
    return Verdict(False, code, params)


def _short(value: str, n: int = 120) -> str:
    value = " ".join(value.split())
    return value if len(value) <= n else value[:n - 1] + "…"


_WANTED = ("from", "received", "authentication-results", EXCHANGE_AUTHAS)
_FIELD_NAME = re.compile(rb"[!-9;-~]+\Z")


def raw_headers(raw: bytes) -> list[tuple[str, str]] | None:
    """(lower-case name, unfolded raw value) of the header fields trust reads,
    in order, as they are on the wire (no RFC 2047 decoding: an encoded word
    is never read as structure). None if the header block is larger than
    MAX_HEADER_BYTES."""
    end = -1
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = raw.find(sep, 0, MAX_HEADER_BYTES + 4)
        if i >= 0 and (end < 0 or i < end):
            end = i
    if end < 0:
        if len(raw) > MAX_HEADER_BYTES:
            return None
        end = len(raw)
    out: list[tuple[str, list[bytes]]] = []
    current: list[bytes] | None = None
    for line in raw[:end].split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            if current is not None:
                current.append(line)
            continue
        current = None
        name, colon, value = line.partition(b":")
        name = name.rstrip(b" \t")
        if not colon or not _FIELD_NAME.match(name):
            continue  # not a header field (an mbox From_ line, garbage)
        lname = name.decode("ascii").lower()
        if lname in _WANTED:
            current = [value]
            out.append((lname, current))
    return [(n, " ".join(b" ".join(parts).decode("utf-8", "replace").split())) for n, parts in out]


# ---------------------------------------------------------------------------
# From
# ---------------------------------------------------------------------------

_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
# name <user@domain> and bare user@domain, with nothing special in the name
# (no quotes, comments, commas, brackets, @): anything else takes the full parser.
_FAST_ANGLE = re.compile(rf"""[^"<>(),;:\\@\[\]]*<(?P<user>{_ATEXT}(?:\.{_ATEXT})*)@(?P<domain>[A-Za-z0-9.-]+)>\s*\Z""")
_FAST_BARE = re.compile(rf"\s*(?P<user>{_ATEXT}(?:\.{_ATEXT})*)@(?P<domain>[A-Za-z0-9.-]+)\s*\Z")
_DOMAIN = re.compile(r"([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9-]{2,63}\Z")


def from_address(values: list[str], parsed: str) -> tuple[str, str] | Verdict:
    """(address, domain) of the one plain From address, or why there is none.
    ``parsed`` is the address the mail parser took (what the workflows see):
    it must be the same."""
    if not values:
        return _no("no_from")
    if len(values) > 1:
        return _no("several_from_headers", count=len(values))
    value = values[0]
    if len(value) > MAX_VALUE:
        return _no("from_unparseable", value=_short(value))
    fast = _FAST_ANGLE.match(value) or _FAST_BARE.match(value)
    if fast is not None:  # the common shapes, without the full RFC 5322 parser
        user, domain = fast.group("user"), fast.group("domain").lower()
        if _DOMAIN.match(domain):
            return _same(f"{user}@{domain}".lower(), domain, parsed)
    try:
        h = default_policy.header_factory("from", value)
        addresses = list(h.addresses)
        groups = list(h.groups)
        defects = list(h.defects)
    except Exception:
        return _no("from_unparseable", value=_short(value))
    if len(addresses) > 1:
        return _no("several_from_addresses", count=len(addresses))
    # Obsolete syntax ("J. Smith", a source route) is harmless; anything
    # invalid (a second <address>, an unquoted @ in the name) is not.
    if (not addresses or len(groups) != 1 or groups[0].display_name is not None
            or any(not isinstance(d, errors.ObsoleteHeaderDefect) for d in defects)):
        return _no("from_unparseable", value=_short(value))
    a = addresses[0]
    user, domain = a.username or "", (a.domain or "").lower()
    if not _DOT_ATOM.match(user) or not _DOMAIN.match(domain):
        return _no("from_quoted", value=_short(value))
    return _same(f"{user}@{domain}".lower(), domain, parsed)


def _same(addr: str, domain: str, parsed: str) -> tuple[str, str] | Verdict:
    if addr != (parsed or "").lower():
        return _no("from_mismatch", strict=addr, parsed=parsed or "（无）")
    return addr, domain


# ---------------------------------------------------------------------------
# Authentication-Results
# ---------------------------------------------------------------------------

def dmarc_verdict(values: list[str], authserv_id: str, domain: str) -> Verdict:
    """The DMARC result our server (``authserv_id``) reported for ``domain``.

    Every DMARC result of ours must be a pass for exactly ``domain`` (a
    second, different result of ours -- e.g. one a sender wrote below the
    real one -- makes it fail); other authserv-ids are ignored. SPF, DKIM and
    DMARC may be in separate headers."""
    ours = authserv_id.lower()
    found: list[tuple[str, list[str]]] = []
    for value in values[:MAX_AR]:
        head = value.split(";", 1)[0].split()
        if not head or head[0].lower() != ours:
            continue
        if len(value) > MAX_VALUE:
            return _no("ar_unparseable", authserv_id=authserv_id)
        try:
            parsed = AuthenticationResultsHeader.parse_value(value)
        except Exception:
            return _no("ar_unparseable", authserv_id=authserv_id)
        if (parsed.authserv_id or "").lower() != ours:
            continue
        for r in parsed.results:
            if (r.method or "").lower() != "dmarc":
                continue
            froms = [(p.value or "").lower().strip().rstrip(".") for p in r.properties
                     if (p.type or "").lower() == "header" and (p.name or "").lower() == "from"]
            found.append(((r.result or "").lower(), froms))
    if not found:
        return _no("dmarc_missing", authserv_id=authserv_id, domain=domain)
    for result, froms in found:
        if result != "pass":
            return _no("dmarc_fail", authserv_id=authserv_id, result=result)
        if froms != [domain]:
            return _no("dmarc_other_domain", authserv_id=authserv_id, domain=domain,
                       other="、".join(froms) or "（未注明域名）")
    return _ok("dmarc_pass", authserv_id=authserv_id, domain=domain)


# ---------------------------------------------------------------------------
# Received
# ---------------------------------------------------------------------------

_BRACKETED = re.compile(r"\[(?:IPv6:)?([0-9A-Fa-f:.]+)(?:%[^\]]*)?\]")
_PARENS_IP = re.compile(r"\(([0-9A-Fa-f:.]+)\)")
_AUTH_SENDER = re.compile(r"\(\s*Authenticated sender:\s*([^\s)]+)\s*\)", re.I)


def _client_ip(clause: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The connecting client's address in a ``from`` clause: the last address
    literal (the TCP-info our server wrote comes after the HELO name)."""
    hits = [(m.start(), m.group(1)) for m in _BRACKETED.finditer(clause)]
    hits += [(m.start(), m.group(1)) for m in _PARENS_IP.finditer(clause)]
    for _pos, text in sorted(hits, reverse=True):
        try:
            return ipaddress.ip_address(text)
        except ValueError:
            continue
    return None


@functools.lru_cache(maxsize=8)
def _networks(configured: tuple[str, ...]) -> list:
    return [ipaddress.ip_network(n, strict=False) for n in configured]


def received_verdict(values: list[str], addr: str, cfg: Config) -> Verdict:
    """Walk the Received chain from the top. The top hop was written by our
    own server; each next hop is believed only while the previous one came
    from an internal address (our relay wrote it)."""
    t = cfg.trust
    if not values:
        return _no("no_received")
    networks = _networks(tuple(t.internal_networks))
    for i, value in enumerate(values):
        if i >= t.max_received:
            return _no("received_too_many", limit=t.max_received)
        if len(value) > MAX_VALUE:
            return _no("received_unparseable", hop=i + 1)
        try:
            hop = parse_received(value)
        except Exception:
            return _no("received_unparseable", hop=i + 1)
        by = _short(hop.get("by", "") or "?", 60)
        clause = hop.get("from", "") or ""
        proto = (hop.get("with", "") or "").split()
        proto = proto[0].upper() if proto else ""
        if t.authenticated_submission and proto in AUTH_PROTOCOLS:
            m = _AUTH_SENDER.search(value)
            if m and m.group(1).lower().strip("<>") != addr:
                return _no("auth_sender_mismatch", user=m.group(1), addr=addr)
            return _ok("authenticated_submission", by=by, protocol=proto)
        if not clause:
            # Local pickup ("by host (Postfix, from userid 1000)") or a hop
            # without a client: nothing says who wrote the mail.
            return _no("external_hop", by=by, client="本机（没有来源信息）")
        ip = _client_ip(clause)
        if ip is None:
            if proto in LOCAL_PROTOCOLS:
                continue  # our MTA handing over to our mailbox server
            return _no("external_hop", by=by, client=_short(clause, 60))
        if ip.is_loopback:
            continue  # our own server talking to itself: the hop below is ours too
        if any(ip in n for n in networks):
            if i + 1 == len(values):
                return _ok("internal_network", ip=str(ip))
            continue
        return _no("external_hop", by=by, client=str(ip))
    return _no("no_internal_mark", detail="Received 链中没有登录认证的提交，也没有来自内部网络的客户端")


# ---------------------------------------------------------------------------
# the decision
# ---------------------------------------------------------------------------

def org_domains(cfg: Config) -> list[str]:
    return cfg.trust.domains or [cfg.system.address.split("@", 1)[1].lower()]


def decide(raw: bytes, from_addr: str, cfg: Config) -> Verdict:
    """Is the sender of ``raw`` (whose parsed From is ``from_addr``) trusted?"""
    t = cfg.trust
    if t.trust_from_header:
        return _ok("from_header_only")
    headers = raw_headers(raw)
    if headers is None:
        return _no("headers_too_large", limit=MAX_HEADER_BYTES)

    def all_of(name: str) -> list[str]:
        return [v for k, v in headers if k == name]

    got = from_address(all_of("from"), from_addr)
    if isinstance(got, Verdict):
        return got
    addr, domain = got
    domains = org_domains(cfg)
    if domain not in domains:
        return _no("from_domain_external", domain=domain, domains="、".join(domains))

    authserv_id = cfg.system.authserv_id
    dmarc = None
    if authserv_id:
        dmarc = dmarc_verdict(all_of("authentication-results"), authserv_id, domain)
        if dmarc.trusted:
            return dmarc
        if cfg.system.require_dmarc or dmarc.code != "dmarc_missing":
            # The gate is on, or our own server said no: nothing else counts.
            return dmarc
    if t.server == "exchange":
        authas = [v.strip().lower() for v in all_of(EXCHANGE_AUTHAS)]
        if authas and all(v == "internal" for v in authas):
            return _ok("exchange_internal")
    received = received_verdict(all_of("received"), addr, cfg)
    if received.trusted or dmarc is None:
        return received
    if received.code in ("no_received", "no_internal_mark"):
        return _no("no_internal_mark", detail=f"{dmarc.text}；{received.text}")
    return received
