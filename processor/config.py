"""Configuration: one TOML file, validated by pydantic.

Every error is reported as ``file: key.path: reason`` so an admin knows exactly
what to fix. Admins read these, so the reasons are Chinese (file and key stay as
written); pydantic's errors are mapped by type in ``pydantic_reason``. Secrets never live in the file: keys ending in ``_env`` name the
environment variable that holds them.
"""
from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError, not_utf8_reason, toml_error_reason, unknown_key_reason  # noqa: F401  (re-exported)


def _address_list(v: list[str]) -> list[str]:
    """A list of mail addresses, each checked, lower-cased; the error names its item."""
    from .addresses import address_problem
    for i, a in enumerate(v):
        why = address_problem(a)
        if why:
            raise ValueError(f"第 {i + 1} 项：{why}")
    return [a.strip().lower() for a in v]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class SystemConfig(_Strict):
    address: str = "tracking@company.example"
    name: str = "工单系统"
    # Other addresses that belong to the system (aliases, the journal mailbox).
    own_addresses: list[str] = []
    hmac_secret_env: str = "PROCESSOR_HMAC_SECRET"
    timezone: str = "Asia/Shanghai"
    # Optional DMARC gate: only trust mail whose Authentication-Results header,
    # added by *our* server (this authserv-id), says dmarc=pass.
    require_dmarc: bool = False
    authserv_id: str = ""

    @field_validator("address")
    @classmethod
    def _addr(cls, v: str) -> str:
        from .addresses import address_problem
        why = address_problem(v)
        if why:
            raise ValueError(f"{why}（应写工单系统邮箱的地址，例如 tracking@company.example）")
        return v.strip().lower()

    @field_validator("own_addresses")
    @classmethod
    def _own(cls, v: list[str]) -> list[str]:
        return _address_list(v)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            import zoneinfo
            hint = difflib.get_close_matches(v, sorted(zoneinfo.available_timezones()), n=1)
            raise ValueError(f"未知的时区 {v!r}" + (f"，是不是 {hint[0]!r}？" if hint else "，应写成 Asia/Shanghai 这样的 IANA 时区名"))
        return v

    @model_validator(mode="after")
    def _dmarc(self):
        if self.require_dmarc and not self.authserv_id:
            raise ValueError("require_dmarc = true 时必须设置 authserv_id（您的邮件服务器写进 Authentication-Results 头的标识）")
        return self


class TrustConfig(_Strict):
    """How mail that really came through the organisation's own mail system
    is recognised (see processor/trust.py and the README). A sender in the
    directory is trusted only when the mail shows one of these marks."""
    # Which mail system delivers to the tracking mailbox; it picks the marks
    # read besides the ones below ("exchange": X-MS-Exchange-Organization-AuthAs).
    server: Literal["postfix", "exchange", "exmail", "coremail", "other"] = "other"
    # Domains of the organisation; empty means the domain of system.address.
    domains: list[str] = []
    # A Received hop written by our servers saying the mail was submitted with
    # SMTP AUTH (with ESMTPA / ESMTPSA, RFC 3848).
    authenticated_submission: bool = True
    # Client addresses that count as inside: office and VPN networks, internal
    # relays (an address or CIDR, e.g. "10.0.0.0/8", "192.0.2.25").
    internal_networks: list[str] = []
    # How many Received headers are read from the top at most.
    max_received: int = Field(30, ge=1, le=200)
    # UNSAFE: trust the From header alone. Only for a closed test mailbox.
    trust_from_header: bool = False

    @field_validator("domains")
    @classmethod
    def _domains(cls, v: list[str]) -> list[str]:
        out = []
        for d in v:
            d = d.strip().lower().lstrip("@")
            if not d or "@" in d or " " in d or "." not in d:
                raise ValueError(f"不是域名：{d!r}（例如 \"company.example\"）")
            out.append(d)
        return out

    @field_validator("internal_networks")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        import ipaddress
        for n in v:
            try:
                ipaddress.ip_network(n.strip(), strict=False)
            except ValueError:
                raise ValueError(f"不是 IP 地址或网段：{n!r}（例如 \"10.0.0.0/8\" 或 \"192.0.2.25\"）") from None
        return [n.strip() for n in v]


class OAuthConfig(_Strict):
    """Where XOAUTH2 tokens come from (``[accounts.oauth]``, ``[smtp.oauth]``;
    processor/oauth.py). Secrets live in environment variables or files,
    never here."""
    provider: Literal["microsoft", "generic", "file", "command"]
    # microsoft: the Entra ID tenant (directory ID or domain) and the app's client ID.
    tenant: str = ""
    client_id: str = ""
    # The client secret: an environment variable or a file (one of them) ...
    secret_env: str = ""
    secret_file: str = ""
    # ... or (microsoft) a certificate registered with the app and its private key.
    certificate_file: str = ""
    private_key_file: str = ""  # empty: the key is in certificate_file
    private_key_passphrase_env: str = ""
    # microsoft: global cloud by default; 21Vianet: https://login.chinacloudapi.cn
    authority: str = "https://login.microsoftonline.com"
    # generic: the token endpoint.
    token_url: str = ""
    scope: str = ""  # microsoft: https://outlook.office365.com/.default unless set
    # file / command: where an external tool keeps the token fresh.
    token_file: str = ""
    command: str | list[str] = ""
    # A token is fetched again this many seconds before it expires (at most
    # half its lifetime); a token that says nothing of its lifetime is used
    # for token_lifetime seconds.
    refresh_margin: float = Field(300, ge=0)
    token_lifetime: float = Field(300, gt=0)
    ca_file: str = ""  # extra CA bundle for the token endpoint (a TLS-inspecting proxy)
    timeout: float = Field(30, gt=0)

    @field_validator("authority", "token_url")
    @classmethod
    def _url(cls, v: str) -> str:
        v = v.strip()
        if v and not re.match(r"^https?://[^/\s]+", v):
            raise ValueError(f"应写成 https://主机/路径 这样的网址，现为 {v!r}")
        return v

    @model_validator(mode="after")
    def _check(self):
        p = self.provider
        sources = [k for k in ("secret_env", "secret_file", "certificate_file") if getattr(self, k)]
        if p in ("microsoft", "generic"):
            if not self.client_id:
                raise ValueError(f"provider = \"{p}\" 时必须设置 client_id（应用的客户端 ID）")
            if len(sources) != 1 or (p == "generic" and sources == ["certificate_file"]):
                allowed = "secret_env、secret_file 或 certificate_file" if p == "microsoft" else "secret_env 或 secret_file"
                got = f"，现在设置了 {'、'.join(sources)}" if sources else ""
                raise ValueError(f"provider = \"{p}\" 时必须且只能用 {allowed} 之一指明客户端凭据{got}"
                                 "（密码不写在配置文件里）")
        if p == "microsoft":
            if not self.tenant:
                raise ValueError("provider = \"microsoft\" 时必须设置 tenant（Entra 的目录(租户) ID，或 contoso.onmicrosoft.com 这样的域名）")
            if not self.authority.startswith("https://"):
                raise ValueError(f"authority 必须是 https:// 网址，现为 {self.authority!r}")
            if not self.scope:
                self.scope = "https://outlook.office365.com/.default"
        if p == "generic" and not self.token_url:
            raise ValueError("provider = \"generic\" 时必须设置 token_url（令牌服务的网址）")
        if p == "file" and not self.token_file:
            raise ValueError("provider = \"file\" 时必须设置 token_file（外部工具保存令牌的文件）")
        if p == "command" and not self.command:
            raise ValueError("provider = \"command\" 时必须设置 command（输出令牌的命令，例如 [\"/usr/local/bin/get-token\", \"--mail\"]）")
        if self.private_key_file and not self.certificate_file:
            raise ValueError("设置了 private_key_file，就必须用 certificate_file 指明证书")
        return self

    def resolve(self, base: Path) -> None:
        """Relative file names are relative to the config file."""
        for k in ("secret_file", "certificate_file", "private_key_file", "token_file", "ca_file"):
            v = getattr(self, k)
            if v and not Path(v).is_absolute():
                setattr(self, k, str(base / v))


class AccountConfig(_Strict):
    name: str
    host: str
    port: int = Field(993, ge=1, le=65535)
    ssl: bool = True
    starttls: bool = False
    username: str
    auth: Literal["password", "xoauth2"] = "password"
    password_env: str = ""
    oauth: OAuthConfig | None = None  # auth = "xoauth2": where the token comes from
    folders: list[str] = ["INBOX"]
    # Where to start in a folder seen for the first time: "now" (mail already
    # there is not answered), "all", or a date "YYYY-MM-DD" (mail since then).
    start: str = "now"
    # What to do with a mail once its processing is committed.
    after: Literal["keep", "flag", "move"] = "keep"
    move_to: str = "Processed"
    flag: str = "\\Seen"
    idle: bool = True
    poll_interval: float = Field(60, gt=0)
    idle_renew: float = Field(1740, gt=0, le=1740)  # RFC 2177: re-issue within 29 min
    max_size: int = Field(25 * 1024 * 1024, gt=0)
    fetch_batch: int = Field(200, ge=1, le=5000)
    # Bytes of whole mails per batch (a mail larger than this is a batch of its
    # own): with the next batch read ahead, at most twice this is in memory.
    fetch_bytes: int = Field(64 * 1024 * 1024, ge=1024 * 1024)
    timeout: float = Field(60, gt=0)

    @model_validator(mode="after")
    def _check(self):
        if self.auth == "password" and not self.password_env:
            raise ValueError("auth = \"password\" 时必须设置 password_env（保存密码的环境变量的名称）")
        if self.auth == "xoauth2" and self.oauth is None:
            raise ValueError("auth = \"xoauth2\" 时必须有 [accounts.oauth] 表，写明令牌从哪里来（provider 等，见 README）")
        if self.auth == "password" and self.oauth is not None:
            raise ValueError("有 [accounts.oauth] 表时应设置 auth = \"xoauth2\"")
        if self.after == "move" and not self.move_to:
            raise ValueError("after = \"move\" 时必须设置 move_to（处理后移入的文件夹）")
        if not self.folders:
            raise ValueError("folders 至少要列出一个文件夹，例如 [\"INBOX\"]")
        return self

    @field_validator("start")
    @classmethod
    def _start(cls, v: str) -> str:
        from datetime import date
        v = v.strip().lower()
        if v in ("now", "all"):
            return v
        try:
            date.fromisoformat(v)
        except ValueError:
            raise ValueError(f"只能是 \"now\"（从现在开始）、\"all\"（全部旧邮件）或日期 \"YYYY-MM-DD\"，现为 {v!r}")
        return v

    def secret(self) -> str:
        return os.environ.get(self.password_env, "")


class SmtpConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(25, ge=1, le=65535)
    ssl: bool = False
    starttls: bool = False
    username: str = ""
    auth: Literal["password", "xoauth2"] = "password"
    password_env: str = ""
    oauth: OAuthConfig | None = None  # auth = "xoauth2": where the token comes from
    timeout: float = Field(30, gt=0)
    connections: int = Field(2, ge=1, le=16)

    @model_validator(mode="after")
    def _check(self):
        if self.auth == "xoauth2":
            if not self.username:
                raise ValueError("auth = \"xoauth2\" 时必须设置 username（发信邮箱的地址）")
            if self.oauth is None:
                raise ValueError("auth = \"xoauth2\" 时必须有 [smtp.oauth] 表，写明令牌从哪里来（provider 等，见 README）")
        elif self.oauth is not None:
            raise ValueError("有 [smtp.oauth] 表时应设置 auth = \"xoauth2\"")
        elif self.username and not self.password_env:
            raise ValueError("设置了 username，就必须用 password_env 指明保存密码的环境变量")
        if self.ssl and self.starttls:
            raise ValueError("ssl 和 starttls 不能同时为 true（465 端口一般用 ssl，587 端口一般用 starttls）")
        return self

    def secret(self) -> str:
        return os.environ.get(self.password_env, "") if self.password_env else ""


class OutboxConfig(_Strict):
    max_attempts: int = Field(12, ge=1)
    backoff_base: float = Field(30, gt=0)
    backoff_max: float = Field(3600, gt=0)
    batch: int = Field(500, ge=1)
    # A sender's claim on outbox rows lasts this long; it starts no send after
    # half of it, and other senders take the rows back once it has expired
    # (at once when the claiming process is known to be dead).
    lease: float = Field(300, gt=0)
    # PostgreSQL: the folder (relative to the config file) where each sender
    # keeps its delivery journal, as on SQLite (beside the database file
    # there): a mail's in-flight mark and its acceptance are lines appended
    # to a local file, folded into the store once per claim, instead of a
    # round trip to the server per mail. "" keeps them in PostgreSQL, one
    # commit per mail: for senders on several hosts, which then take over a
    # dead host's claims by themselves (see README, Leases).
    journal_dir: str = "data"


_MB = 1024 * 1024


class LimitsConfig(_Strict):
    """What one mail may cost. Sizes are bytes, lengths characters."""

    replies_per_recipient_per_day: int = Field(20, ge=0)
    max_processing_attempts: int = Field(3, ge=1)
    # A mail being processed when the process died (killed for memory, ...) is
    # quarantined unparsed after this many such deaths; the mails behind it go on.
    max_crashes: int = Field(3, ge=1, le=100)
    # Largest mail `replay` takes whole (IMAP accounts have their own max_size).
    max_mail_size: int = Field(25 * _MB, gt=0)
    max_mime_depth: int = Field(20, ge=1, le=100)
    max_mime_parts: int = Field(500, ge=1, le=100000)
    max_decoded_size: int = Field(50 * _MB, gt=0)  # all parts of one mail, decoded
    max_attachment_size: int = Field(10 * _MB, ge=0)  # one attachment kept from a mail
    max_attachments_total: int = Field(25 * _MB, ge=0)  # all attachments kept from one mail
    max_forward_total: int = Field(10 * _MB, ge=0)  # attachments re-sent on one outgoing mail
    max_text_chars: int = Field(1_000_000, ge=1000)  # body text kept and used
    max_subject_chars: int = Field(500, ge=20, le=10000)

    @model_validator(mode="after")
    def _order(self):
        if self.max_attachment_size > self.max_attachments_total:
            raise ValueError(f"max_attachment_size（{self.max_attachment_size}）不能大于 max_attachments_total"
                             f"（{self.max_attachments_total}，每封邮件保留的附件总大小）")
        if self.max_attachments_total > self.max_decoded_size:
            raise ValueError(f"max_attachments_total（{self.max_attachments_total}）不能大于 max_decoded_size"
                             f"（{self.max_decoded_size}，每封邮件解码后的总大小）")
        return self


class StoreConfig(_Strict):
    url: str = "sqlite:///data/processor.db"

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError
        example = "应写成 sqlite:///data/processor.db 或 postgresql+psycopg://用户@主机/数据库"
        try:
            u = make_url(v)
        except ArgumentError:
            raise ValueError(f"无法识别的数据库地址 {v!r}，{example}")
        if u.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError(f"不支持的数据库类型 {u.get_backend_name()!r}，只支持 SQLite 和 PostgreSQL；{example}")
        if u.get_backend_name() == "postgresql":
            if u.get_driver_name() not in ("psycopg", "psycopg2"):
                raise ValueError(f"PostgreSQL 请用 psycopg 驱动：postgresql+psycopg://…（现为 {u.drivername}）")
            import importlib.util
            if importlib.util.find_spec(u.get_driver_name()) is None:
                raise ValueError("PostgreSQL 驱动 psycopg 没有安装：python3 -m pip install -e '.[pg]'")
        return v


class PathsConfig(_Strict):
    rules: str = "rules"
    templates: str = "templates"
    directory: str = "directory.toml"


class DaemonConfig(_Strict):
    outbox_interval: float = Field(30, gt=0)
    retry_interval: float = Field(300, gt=0)
    reconnect_min: float = Field(1, gt=0)
    reconnect_max: float = Field(300, gt=0)


_DURATION = r"^\s*\d+(\.\d+)?\s*(m|h|d)\s*$"
_HHMM = r"^([01]\d|2[0-3]):[0-5]\d$"


class HoursConfig(_Strict):
    start: str = Field("09:00", pattern=_HHMM)
    end: str = Field("18:00", pattern=_HHMM)

    @model_validator(mode="after")
    def _order(self):
        if self.end <= self.start:
            raise ValueError(f"end（{self.end}）必须晚于 start（{self.start}）")
        return self


#: The Chinese names of the shipped SLA profiles (a profile's ``label`` when it sets none).
PROFILE_LABELS = {
    "fault_7x24": "7×24小时故障", "fault_level1": "一级故障", "fault_level2": "二级故障",
    "fault_level2_nms": "二级故障（网管中断）", "fault_level3": "三级故障", "fault_level4": "四级故障",
    "consultation": "咨询", "followup": "遗留问题跟进", "workorder": "故障处理工作单",
    "document": "文档审核", "implementation": "项目实施工作单", "deadline": "时间要求",
}


class SlaProfile(_Strict):
    """Targets are durations: "30m", "4h", "1d". On a working-hours clock,
    h and m are working hours/minutes and d is working days."""

    name: str
    # What people read (reports, xlsx); by default the shipped name's Chinese name, else the name.
    label: str = ""
    clock: Literal["work", "24x7"] = "work"
    response: str = Field("", pattern=r"^$|" + _DURATION)
    update: str = Field("", pattern=r"^$|" + _DURATION)
    resolution: str = Field("", pattern=r"^$|" + _DURATION)
    # Clocks that run while a record is in a state (e.g. 待审批 = "4h").
    steps: dict[str, str] = {}
    pause_states: list[str] = []
    hours: HoursConfig | None = None
    source: str = ""  # where the numbers come from (document line)

    @field_validator("steps")
    @classmethod
    def _steps(cls, v: dict[str, str]) -> dict[str, str]:
        import re
        for state, d in v.items():
            if not re.match(_DURATION, d):
                raise ValueError(f"steps.{state}：时长应写成 30m、4h 或 1d 这样的形式，现为 {d!r}")
        return v

    @model_validator(mode="after")
    def _label(self) -> SlaProfile:
        if not self.label.strip():
            self.label = PROFILE_LABELS.get(self.name, self.name)
        return self


class SlaConfig(_Strict):
    enabled: bool = True
    hours: HoursConfig = HoursConfig()
    holidays: str = "holidays.toml"  # admin additions to the Chinese holiday calendar
    prebreach_fraction: float = Field(0.8, gt=0, lt=1)
    repeat_after_hours: float = Field(4, gt=0)  # still overdue: escalate one step further after this
    check_interval: float = Field(60, gt=0)  # seconds between clock checks
    digest_threshold: int = Field(3, ge=2)  # more notices than this for one person at once: one digest mail
    points: bool = False  # the telecom contract's scheme: -5 overdue fault, -2 complaint, -1 late document
    # A 支持记录 (art. 16) mailed more than this many working days after the support is a late document.
    document_days: int = Field(1, ge=0)
    profiles: list[SlaProfile] = []
    kinds: dict[str, str] = {}  # record kind -> profile name
    field_profiles: dict[str, dict[str, str]] = {}  # record field -> {value -> profile}, e.g. 故障级别
    chains: dict[str, list[str]] = {}  # record kind -> escalation chain of roles (owner first)

    @model_validator(mode="after")
    def _refs(self):
        names = [p.name for p in self.profiles]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"profiles 中的 name 重复：{'、'.join(sorted(dup))}")
        for kind, prof in self.kinds.items():
            if prof not in names:
                raise ValueError(f"kinds.{kind} 引用的时限方案 {prof!r} 不存在（已定义：{'、'.join(names) or '无'}）")
        for fld, mapping in self.field_profiles.items():
            for val, prof in mapping.items():
                if prof not in names:
                    raise ValueError(f"field_profiles.{fld}.{val} 引用的时限方案 {prof!r} 不存在")
        if self.chains:
            from .directory import ROLES  # here: directory imports this module
        for kind, chain in self.chains.items():
            for r in chain:
                if r not in ROLES:
                    raise ValueError(f"chains.{kind} 中的角色 {r!r} 不存在；可用角色：{'、'.join(ROLES)}")
        return self


class ReportsConfig(_Strict):
    monthly_enabled: bool = True
    monthly_day: int = Field(1, ge=1, le=28)
    monthly_time: str = Field("09:00", pattern=_HHMM)
    monthly_roles: list[str] = ["技术支持部经理", "技术总监", "售前经理"]
    weekly_enabled: bool = True
    weekly_weekday: int = Field(1, ge=1, le=7)  # 1 = Monday
    weekly_time: str = Field("09:00", pattern=_HHMM)
    weekly_roles: list[str] = ["售前"]


class WebConfig(_Strict):
    """The read-only web view (``run.py web``, processor/web/)."""
    # host:port the web view listens on; keep it on loopback behind a TLS proxy.
    listen: str = "127.0.0.1:8080"
    # Roles that see every record; everyone else sees the records they are a party to.
    roles_see_all: list[str] = ["售前经理", "技术支持部经理", "技术总监", "总经理"]
    session_hours: float = Field(12, gt=0, le=24 * 30)  # a login lasts this long
    cookie_secure: bool = True  # the session cookie only over HTTPS (false: plain HTTP, e.g. the demo)
    code_minutes: float = Field(10, gt=0, le=24 * 60)  # a mailed login code is valid this long
    codes_per_hour: int = Field(5, ge=1, le=100)  # login codes mailed to one address per hour at most
    public_url: str = ""  # the address people open (in the code mail); empty: http://<listen>
    in_daemon: bool = False  # true: ``serve`` runs the web view too, in the same process
    # The daemon mails these addresses once when intake stalls or the outbox backlog keeps
    # growing, and once when it recovers (empty: nobody is told).
    alert_to: list[str] = []
    stall_minutes: float = Field(30, gt=0)  # no successful IMAP poll for this long: intake has stalled
    backlog_minutes: float = Field(30, gt=0)  # the outbox backlog grew for this long without shrinking

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"应写成 主机:端口，例如 \"127.0.0.1:8080\"，现为 {v!r}")
        return v

    @field_validator("roles_see_all")
    @classmethod
    def _roles(cls, v: list[str]) -> list[str]:
        from .directory import ROLES  # here: directory imports this module
        for r in v:
            if r not in ROLES:
                hint = difflib.get_close_matches(r, ROLES, n=1)
                raise ValueError(f"未知的角色 {r!r}" + (f"，是不是 {hint[0]!r}？" if hint else f"；可用角色：{'、'.join(ROLES)}"))
        return v

    @field_validator("alert_to")
    @classmethod
    def _alert_to(cls, v: list[str]) -> list[str]:
        return _address_list(v)

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def url(self) -> str:
        return (self.public_url or f"http://{self.listen}").rstrip("/")


class Config(_Strict):
    system: SystemConfig = SystemConfig()
    accounts: list[AccountConfig] = []
    smtp: SmtpConfig = SmtpConfig()
    outbox: OutboxConfig = OutboxConfig()
    limits: LimitsConfig = LimitsConfig()
    store: StoreConfig = StoreConfig()
    paths: PathsConfig = PathsConfig()
    daemon: DaemonConfig = DaemonConfig()
    sla: SlaConfig = SlaConfig()
    reports: ReportsConfig = ReportsConfig()
    trust: TrustConfig = TrustConfig()
    web: WebConfig = WebConfig()
    # Workflow settings, free-form per convention (validated by the workflows).
    workflows: dict[str, dict] = {}

    # Not from the file: where the file lives, to resolve relative paths.
    base_dir: Path = Field(default=Path("."), exclude=True)
    source: str = Field(default="<defaults>", exclude=True)

    @field_validator("accounts")
    @classmethod
    def _unique_accounts(cls, accounts: list[AccountConfig]) -> list[AccountConfig]:
        names = [a.name for a in accounts]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"[[accounts]] 的 name 不能重复，重复的有：{'、'.join(sorted(dup))}")
        return accounts

    def path(self, p: str) -> Path:
        q = Path(p)
        return q if q.is_absolute() else (self.base_dir / q)

    @property
    def journal_dir(self) -> Path | None:
        """Where senders on PostgreSQL keep their journals (None: in the store)."""
        return self.path(self.outbox.journal_dir) if self.outbox.journal_dir.strip() else None

    @property
    def store_url(self) -> str:
        url = self.store.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite:///:memory:":
            return prefix + str(self.path(url[len(prefix):]).resolve())
        return url

    @property
    def own_addresses(self) -> set[str]:
        return {self.system.address, *(a.lower() for a in self.system.own_addresses)}


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _num(v) -> str:
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def _toml_value(v) -> str | None:
    """A scalar as it would be written in TOML, or None for tables/arrays."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return _num(v)
    if isinstance(v, str):
        return json.dumps(v if len(v) <= 60 else v[:57] + "...", ensure_ascii=False)
    return None


def _optional_model(t):
    """``X | None`` -> X when X is a model (``oauth: OAuthConfig | None``)."""
    import types
    from typing import Union, get_origin

    if get_origin(t) in (Union, types.UnionType):
        return next((a for a in get_args(t) if isinstance(a, type) and issubclass(a, BaseModel)), t)
    return t


def _model_at(loc: tuple):
    """The pydantic model that holds the key at ``loc``, if any."""
    t = Config
    for part in loc:
        t = _optional_model(t)
        if isinstance(part, int):
            args = get_args(t)
            t = args[0] if args else None
        elif isinstance(t, type) and issubclass(t, BaseModel) and part in t.model_fields:
            t = t.model_fields[part].annotation
        else:
            return None
    t = _optional_model(t)
    return t if isinstance(t, type) and issubclass(t, BaseModel) else None


def _known_keys(loc: tuple) -> list[str]:
    model = _model_at(loc)
    if model is None:
        return []
    return [n for n, f in model.model_fields.items() if not f.exclude]


_TYPE_REASONS = {
    "int_parsing": "必须是整数",
    "int_type": "必须是整数",
    "int_from_float": "必须是整数，不能带小数",
    "float_parsing": "必须是数字",
    "float_type": "必须是数字",
    "bool_parsing": "必须是 true 或 false（小写，不加引号）",
    "bool_type": "必须是 true 或 false（小写，不加引号）",
    "string_type": "必须是字符串（用双引号括起来）",
    "list_type": "必须是数组，例如 [\"a\", \"b\"]",
    "dict_type": "必须是一个表（[名称] 或 { 键 = 值 }）",
    "model_type": "必须是一个表（[名称] 下写 键 = 值）",
    "model_attributes_type": "必须是一个表（[名称] 下写 键 = 值）",
}
_BOUND_REASONS = {
    "less_than_equal": ("le", "必须小于或等于 {}"),
    "greater_than_equal": ("ge", "必须大于或等于 {}"),
    "less_than": ("lt", "必须小于 {}"),
    "greater_than": ("gt", "必须大于 {}"),
}


def pydantic_reason(err: dict) -> str:
    """One pydantic error as a Chinese reason that says how to fix it."""
    typ, ctx = err["type"], err.get("ctx") or {}
    loc = tuple(err.get("loc", ()))
    if typ == "extra_forbidden":
        return unknown_key_reason(str(loc[-1]) if loc else "", _known_keys(loc[:-1]))
    if typ == "missing":
        return "缺少必填的键，请补上"
    if typ == "value_error":
        e = ctx.get("error")
        return str(e) if e is not None else err["msg"].removeprefix("Value error, ")
    if typ in _BOUND_REASONS and _BOUND_REASONS[typ][0] in ctx:
        name, text = _BOUND_REASONS[typ]
        reason = text.format(_num(ctx[name]))
    elif typ == "literal_error":
        allowed = re.findall(r"'((?:[^'\\]|\\.)*)'", str(ctx.get("expected", "")))
        choices = "、".join(json.dumps(a, ensure_ascii=False) for a in allowed) or str(ctx.get("expected", ""))
        reason = f"只能是以下之一：{choices}"
    elif typ in _TYPE_REASONS:
        reason = _TYPE_REASONS[typ]
    else:
        return f"值不合法：{err['msg']}"
    given = _toml_value(err.get("input"))
    return reason + (f"，现为 {given}" if given is not None else "")


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([(str(path), "", "找不到配置文件（请检查路径，或用 --config 指定）")])
    except IsADirectoryError:
        raise ConfigError([(str(path), "", "这是一个文件夹，不是配置文件（请用 --config 指定 .toml 文件）")])
    except UnicodeDecodeError as e:
        raise ConfigError([(str(path), "", not_utf8_reason(e))])
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([(str(path), "", toml_error_reason(e))])
    try:
        cfg = Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError([(str(path), _loc(err["loc"]), pydantic_reason(err)) for err in e.errors()])
    cfg.base_dir = path.resolve().parent
    cfg.source = str(path)
    for o in [a.oauth for a in cfg.accounts] + [cfg.smtp.oauth]:
        if o is not None:
            o.resolve(cfg.base_dir)
    return cfg
