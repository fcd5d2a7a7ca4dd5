"""Configuration: one TOML file, validated by pydantic.

Every error is reported as ``file: key.path: reason`` so an admin knows exactly
what to fix. Secrets never live in the file: keys ending in ``_env`` name the
environment variable that holds them.
"""
from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(Exception):
    """A config, rule, template or directory file is wrong.

    ``problems`` is a list of (file, key, reason) triples.
    """

    def __init__(self, problems: list[tuple[str, str, str]]):
        self.problems = problems
        super().__init__("\n".join(f"{f}: {k}: {r}" if k else f"{f}: {r}" for f, k, r in problems))


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
        if "@" not in v:
            raise ValueError("must be an email address")
        return v.lower()

    @model_validator(mode="after")
    def _dmarc(self):
        if self.require_dmarc and not self.authserv_id:
            raise ValueError("require_dmarc = true needs authserv_id (the id your mail server writes into Authentication-Results)")
        return self


class AccountConfig(_Strict):
    name: str
    host: str
    port: int = Field(993, ge=1, le=65535)
    ssl: bool = True
    starttls: bool = False
    username: str
    auth: Literal["password", "xoauth2"] = "password"
    password_env: str = ""
    oauth2_token_env: str = ""
    folders: list[str] = ["INBOX"]
    # What to do with a mail once its processing is committed.
    after: Literal["keep", "flag", "move"] = "keep"
    move_to: str = "Processed"
    flag: str = "\\Seen"
    idle: bool = True
    poll_interval: float = Field(60, gt=0)
    idle_renew: float = Field(1740, gt=0, le=1740)  # RFC 2177: re-issue within 29 min
    max_size: int = Field(25 * 1024 * 1024, gt=0)
    fetch_batch: int = Field(200, ge=1, le=5000)
    timeout: float = Field(60, gt=0)

    @model_validator(mode="after")
    def _check(self):
        if self.auth == "password" and not self.password_env:
            raise ValueError("auth = \"password\" needs password_env (the name of the environment variable holding the password)")
        if self.auth == "xoauth2":
            raise ValueError("auth = \"xoauth2\" is reserved for a later version; use \"password\"")
        if self.after == "move" and not self.move_to:
            raise ValueError("after = \"move\" needs move_to")
        if not self.folders:
            raise ValueError("folders must name at least one folder")
        return self

    def secret(self) -> str:
        return os.environ.get(self.password_env, "")


class SmtpConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(25, ge=1, le=65535)
    ssl: bool = False
    starttls: bool = False
    username: str = ""
    password_env: str = ""
    timeout: float = Field(30, gt=0)
    connections: int = Field(2, ge=1, le=16)

    @model_validator(mode="after")
    def _check(self):
        if self.username and not self.password_env:
            raise ValueError("username is set, so password_env must name the environment variable with the password")
        if self.ssl and self.starttls:
            raise ValueError("ssl and starttls cannot both be true")
        return self

    def secret(self) -> str:
        return os.environ.get(self.password_env, "") if self.password_env else ""


class OutboxConfig(_Strict):
    max_attempts: int = Field(12, ge=1)
    backoff_base: float = Field(30, gt=0)
    backoff_max: float = Field(3600, gt=0)
    batch: int = Field(500, ge=1)


class LimitsConfig(_Strict):
    replies_per_recipient_per_day: int = Field(20, ge=0)
    max_processing_attempts: int = Field(3, ge=1)
    max_attachment_size: int = Field(10 * 1024 * 1024, ge=0)


class StoreConfig(_Strict):
    url: str = "sqlite:///data/processor.db"


class PathsConfig(_Strict):
    rules: str = "rules"
    templates: str = "templates"
    directory: str = "directory.toml"


class DaemonConfig(_Strict):
    outbox_interval: float = Field(30, gt=0)
    retry_interval: float = Field(300, gt=0)
    reconnect_min: float = Field(1, gt=0)
    reconnect_max: float = Field(300, gt=0)


class Config(_Strict):
    system: SystemConfig = SystemConfig()
    accounts: list[AccountConfig] = []
    smtp: SmtpConfig = SmtpConfig()
    outbox: OutboxConfig = OutboxConfig()
    limits: LimitsConfig = LimitsConfig()
    store: StoreConfig = StoreConfig()
    paths: PathsConfig = PathsConfig()
    daemon: DaemonConfig = DaemonConfig()
    # Workflow settings, free-form per convention (validated by the workflows).
    workflows: dict[str, dict] = {}

    # Not from the file: where the file lives, to resolve relative paths.
    base_dir: Path = Field(default=Path("."), exclude=True)
    source: str = Field(default="<defaults>", exclude=True)

    @model_validator(mode="after")
    def _unique_accounts(self):
        names = [a.name for a in self.accounts]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"account names must be unique, repeated: {', '.join(sorted(dup))}")
        return self

    def path(self, p: str) -> Path:
        q = Path(p)
        return q if q.is_absolute() else (self.base_dir / q)

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


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([(str(path), "", "file not found")])
    except UnicodeDecodeError as e:
        raise ConfigError([(str(path), "", f"not UTF-8 text ({e.reason} at byte {e.start})")])
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([(str(path), "", f"TOML syntax error: {e}")])
    try:
        cfg = Config.model_validate(data)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            key = _loc(err["loc"])
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key (misspelt?)"
            elif msg.startswith("Value error, "):
                msg = msg[len("Value error, "):]
            problems.append((str(path), key, msg))
        raise ConfigError(problems)
    cfg.base_dir = path.resolve().parent
    cfg.source = str(path)
    return cfg
