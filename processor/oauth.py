"""OAuth2 access tokens for XOAUTH2 sign-in to IMAP and SMTP.

One token provider per ``[accounts.oauth]`` / ``[smtp.oauth]`` table:

* ``microsoft``: the client-credentials flow of a daemon app in Entra ID
  (Microsoft 365 / Exchange Online), through MSAL; a client secret or a
  certificate, read from an environment variable or a file.
* ``generic``: a client-credentials POST to any OAuth2 token endpoint.
* ``file``: a token that an external tool keeps fresh in a file.
* ``command``: a token printed by a command an external tool provides.

Tokens are cached in memory (per process, shared by every connection with the
same settings) and fetched again before they expire. ``invalidate()`` drops a
token a server refused. Failures raise :class:`TokenError`: a code and its
parameters (data); the Chinese wording admins read is ``MESSAGES`` below.

Imports nothing of the package (config, intake, outbox and failures import it).
"""
from __future__ import annotations

import json
import logging
import os
import re
import shlex
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

log = logging.getLogger(__name__)

MICROSOFT_AUTHORITY = "https://login.microsoftonline.com"
MICROSOFT_SCOPE = "https://outlook.office365.com/.default"

# code -> Chinese wording; ``{name}`` fields come from the error's params.
# ``{where}`` names the table (e.g. "accounts.support.oauth"); ``{provider_code}``
# is the error code exactly as the identity provider reported it.
MESSAGES: dict[str, str] = {
    "secret_env_unset": "环境变量 {env} 没有设置（应保存客户端密码 client secret）",
    "secret_file_unreadable": "读不出文件 {path}（{error}）",
    "secret_file_empty": "文件 {path} 是空的（应保存客户端密码 client secret）",
    "certificate_unreadable": "读不出证书或私钥 {path}（{error}）",
    "endpoint_unreachable": "连不上令牌服务 {url}（{error}）。请检查网络、防火墙和代理；这可能是暂时的，稍后会自动重试",
    "endpoint_bad_response": "令牌服务 {url} 的回答看不懂（HTTP {status}：{body}）。请检查 token_url 是否写对",
    "tenant_not_found": "租户 {tenant} 不存在（{provider_code}）。请在 Entra 管理中心的应用“概述”页复制“目录(租户) ID”填到 tenant",
    "tenant_invalid": "tenant = {tenant!r} 既不是租户 ID（GUID）也不是租户域名（{provider_code}）。请填“目录(租户) ID”，或 contoso.onmicrosoft.com 这样的域名",
    "client_not_found": "在租户里找不到应用 {client_id}（{provider_code}）。请检查 client_id 是否是应用“概述”页上的“应用程序(客户端) ID”，以及 tenant 是否是同一个租户",
    "secret_invalid": "客户端密码不对（{provider_code}）。请检查保存密码的环境变量或文件：要的是密码的“值”，不是“机密 ID”",
    "secret_expired": "客户端密码已过期（{provider_code}）。请在应用的“证书和密码”页新建一个客户端密码，更新保存它的环境变量或文件",
    "secret_missing": "令牌服务要求客户端密码或证书，但请求里没有（{provider_code}）。请设置 secret_env、secret_file 或 certificate_file",
    "certificate_rejected": "证书不被接受（{provider_code}）。请把证书（.cer/.pem 的公钥部分）上传到应用的“证书和密码”页，并确认私钥与它配对",
    "consent_missing": "应用还没有得到管理员同意（{provider_code}）。请在应用的“API 权限”页添加 Office 365 Exchange Online 的应用程序权限 IMAP.AccessAsApp / SMTP.SendAsApp，并点“代表组织授予管理员同意”",
    "resource_not_found": "租户里没有所请求的资源（{provider_code}）。请检查 scope（Microsoft 365 应为 https://outlook.office365.com/.default），以及租户是否开通了 Exchange Online",
    "invalid_client": "客户端 ID 或密码被令牌服务拒绝（{provider_code}：{description}）。请检查 client_id 和保存密码的环境变量或文件",
    "unauthorized_client": "这个应用不允许用 client_credentials 方式取令牌（{provider_code}：{description}）。请在身份提供方把应用设为服务/守护进程类型，允许客户端凭据授权",
    "invalid_scope": "scope = {scope!r} 不被接受（{provider_code}：{description}）。请检查 scope",
    "provider_refused": "身份提供方拒绝发放令牌（{provider_code}：{description}）",
    "provider_unavailable": "身份提供方暂时不可用（{provider_code}：{description}），稍后会自动重试",
    "token_file_unreadable": "读不出令牌文件 {path}（{error}）。请检查负责刷新令牌的工具是否在运行",
    "token_file_empty": "令牌文件 {path} 是空的。请检查负责刷新令牌的工具是否在运行",
    "token_file_stale": "令牌文件 {path} 里的令牌被服务器拒绝，而文件还没有更新。请检查负责刷新令牌的工具是否在运行",
    "command_failed": "取令牌的命令 {command} 执行失败（{error}）",
    "command_empty": "取令牌的命令 {command} 没有输出令牌",
}

# Identity-provider error codes (Entra ID's AADSTS numbers first, then the
# OAuth2 error strings of RFC 6749 5.2) -> our code. Transient ones heal alone.
_AADSTS = {
    90002: "tenant_not_found",
    900023: "tenant_invalid",
    90013: "tenant_invalid",
    700016: "client_not_found",
    7000215: "secret_invalid",
    7000222: "secret_expired",
    7000218: "secret_missing",
    700027: "certificate_rejected",
    700023: "certificate_rejected",
    65001: "consent_missing",
    650057: "consent_missing",
    500011: "resource_not_found",
    70011: "invalid_scope",
    1002016: "provider_refused",
}
_OAUTH_ERRORS = {
    "invalid_client": "invalid_client",
    "unauthorized_client": "unauthorized_client",
    "invalid_scope": "invalid_scope",
    "temporarily_unavailable": "provider_unavailable",
    "server_error": "provider_unavailable",
}
TRANSIENT = {"endpoint_unreachable", "provider_unavailable"}


class TokenError(Exception):
    """No token could be had. ``code`` and ``params`` are data; ``str()`` is
    the Chinese line (without the account: the caller says which one)."""

    def __init__(self, code: str, **params):
        self.code = code
        self.params = params
        super().__init__(self.text())

    @property
    def transient(self) -> bool:
        return self.code in TRANSIENT

    def text(self) -> str:
        template = MESSAGES.get(self.code, self.code)
        try:
            return template.format(**self.params)
        except (KeyError, IndexError, ValueError):
            return f"{template}（{self.params}）"


def provider_error(payload: dict, *, tenant: str = "", client_id: str = "", scope: str = "") -> TokenError:
    """The TokenError for an identity provider's error answer (RFC 6749 5.2;
    Entra ID adds ``error_codes`` and puts ``AADSTSnnn:`` in the description)."""
    error = str(payload.get("error") or "")
    description = str(payload.get("error_description") or "").strip()
    number = None
    codes = payload.get("error_codes")
    if isinstance(codes, list) and codes and isinstance(codes[0], int):
        number = codes[0]
    else:
        m = re.search(r"AADSTS(\d+)", description)
        number = int(m.group(1)) if m else None
    short = description.splitlines()[0][:200] if description else ""
    if number is not None and number in _AADSTS:
        code = _AADSTS[number]
        provider_code = f"AADSTS{number}"
    else:
        code = _OAUTH_ERRORS.get(error, "provider_refused")
        provider_code = f"AADSTS{number}" if number is not None else (error or "unknown_error")
    return TokenError(code, provider_code=provider_code, description=short or error, tenant=tenant,
                      client_id=client_id, scope=scope)


class TokenProvider:
    """Base: cache, refresh before expiry, invalidate. Thread-safe (IMAP IDLE
    watchers and the intake share one provider)."""

    def __init__(self, cfg):
        self.cfg = cfg
        self._lock = threading.Lock()
        self._token: str | None = None
        self._good_until = 0.0  # time.monotonic() after which the token is fetched again
        self.fetches = 0  # tokens asked for (check output, tests)

    def token(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() >= self._good_until:
                value, lifetime = self._fetch()
                self.fetches += 1
                self._token = value
                margin = min(self.cfg.refresh_margin, lifetime / 2) if lifetime else 0
                self._good_until = time.monotonic() + (lifetime - margin if lifetime else self.cfg.token_lifetime)
            return self._token

    def invalidate(self, token: str | None = None) -> None:
        """A server refused ``token``: the next ``token()`` fetches a new one."""
        with self._lock:
            if token is None or token == self._token:
                self._forget(self._token)
                self._token = None
                self._good_until = 0.0

    def _forget(self, token: str | None) -> None:
        pass

    def _fetch(self) -> tuple[str, float]:
        """(token, lifetime in seconds, 0 when unknown)."""
        raise NotImplementedError


def _read_secret(cfg) -> str:
    if cfg.secret_env:
        v = os.environ.get(cfg.secret_env, "")
        if not v:
            raise TokenError("secret_env_unset", env=cfg.secret_env)
        return v
    if cfg.secret_file:
        try:
            v = Path(cfg.secret_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise TokenError("secret_file_unreadable", path=cfg.secret_file, error=_short(e))
        if not v:
            raise TokenError("secret_file_empty", path=cfg.secret_file)
        return v
    raise TokenError("secret_missing", provider_code="-")


def _short(e: BaseException) -> str:
    return (getattr(e, "strerror", None) or str(e) or type(e).__name__)[:200]


def _ssl_context(cfg) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cfg.ca_file or None)


def _lifetime(payload: dict) -> float:
    try:
        return max(0.0, float(payload.get("expires_in") or 0))
    except (TypeError, ValueError):
        return 0.0


class GenericProvider(TokenProvider):
    """client_credentials POST to ``token_url`` (RFC 6749 4.4); the client
    authenticates with its id and secret in the form body (client_secret_post)."""

    def _fetch(self) -> tuple[str, float]:
        c = self.cfg
        form = {"grant_type": "client_credentials", "client_id": c.client_id, "client_secret": _read_secret(c)}
        if c.scope:
            form["scope"] = c.scope
        req = urllib.request.Request(c.token_url, data=urllib.parse.urlencode(form).encode(),
                                     headers={"Accept": "application/json",
                                              "Content-Type": "application/x-www-form-urlencoded"})
        status, body = 0, b""
        try:
            ctx = _ssl_context(c) if c.token_url.startswith("https:") else None
            with urllib.request.urlopen(req, timeout=c.timeout, context=ctx) as r:
                status, body = r.status, r.read(1 << 20)
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read(1 << 20)
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise TokenError("endpoint_unreachable", url=c.token_url, error=_short(reason) if isinstance(reason, BaseException) else str(reason))
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            payload = None
        if not isinstance(payload, dict):
            if status >= 500:
                raise TokenError("provider_unavailable", provider_code=f"HTTP {status}", description=body[:120].decode("utf-8", "replace"))
            raise TokenError("endpoint_bad_response", url=c.token_url, status=status, body=body[:120].decode("utf-8", "replace"))
        if status == 200 and isinstance(payload.get("access_token"), str) and payload["access_token"]:
            return payload["access_token"], _lifetime(payload)
        if payload.get("error"):
            raise provider_error(payload, tenant=c.tenant, client_id=c.client_id, scope=c.scope)
        raise TokenError("endpoint_bad_response", url=c.token_url, status=status, body=body[:120].decode("utf-8", "replace"))


class MicrosoftProvider(TokenProvider):
    """Entra ID client credentials through MSAL (ConfidentialClientApplication)."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self._app = None

    def _credential(self):
        c = self.cfg
        if not c.certificate_file:
            return _read_secret(c)
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        try:
            cert_pem = Path(c.certificate_file).read_bytes()
            key_path = c.private_key_file or c.certificate_file
            key_pem = Path(key_path).read_bytes()
        except OSError as e:
            raise TokenError("certificate_unreadable", path=e.filename or c.certificate_file, error=_short(e))
        passphrase = os.environ.get(c.private_key_passphrase_env, "") if c.private_key_passphrase_env else ""
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
            serialization.load_pem_private_key(key_pem, passphrase.encode() or None)
        except (ValueError, TypeError) as e:
            raise TokenError("certificate_unreadable", path=c.certificate_file, error=_short(e))
        # MSAL derives the SHA-256 thumbprint from the certificate and signs the
        # client assertion with PS256 (Entra ID's current form; SHA-1 is legacy).
        cred = {"private_key": key_pem.decode("ascii"),
                "public_certificate": cert.public_bytes(serialization.Encoding.PEM).decode("ascii")}
        if passphrase:
            cred["passphrase"] = passphrase
        return cred

    def _application(self):
        if self._app is None:
            import msal
            import requests

            c = self.cfg
            authority = f"{c.authority.rstrip('/')}/{c.tenant}"
            try:
                self._app = msal.ConfidentialClientApplication(
                    c.client_id, client_credential=self._credential(), authority=authority,
                    # The authority is the one the admin wrote (global, 21Vianet, US Gov):
                    # no look-up of it at login.microsoftonline.com.
                    instance_discovery=False, http_client=_http_session(c),
                    token_cache=msal.TokenCache())
            except requests.RequestException as e:
                raise TokenError("endpoint_unreachable", url=authority, error=_short(e))
            except ValueError as e:  # OIDC discovery refused: a wrong tenant, mostly
                said, x = [], e
                while x is not None and len(said) < 5:  # MSAL wraps the answer that says why
                    said.append(str(x))
                    x = x.__cause__ or x.__context__
                raise _discovery_error(" ".join(reversed(said)), c)
        return self._app

    def _forget(self, token):
        self._app = None  # MSAL caches tokens itself: a refused one must not come back

    def _fetch(self) -> tuple[str, float]:
        import requests

        c = self.cfg
        app = self._application()
        try:
            result = app.acquire_token_for_client(scopes=[c.scope])
        except requests.RequestException as e:
            self._app = None
            raise TokenError("endpoint_unreachable", url=c.authority, error=_short(e))
        if "access_token" in result:
            return result["access_token"], _lifetime(result)
        self._app = None
        raise provider_error(result, tenant=c.tenant, client_id=c.client_id, scope=c.scope)


def _http_session(c):
    """requests.Session for MSAL: ``ca_file`` really used (requests lets
    REQUESTS_CA_BUNDLE override a session's own ``verify``), and a timeout on
    every request. Proxies from the environment still apply."""
    import requests

    class Session(requests.Session):
        def merge_environment_settings(self, url, proxies, stream, verify, cert):
            out = super().merge_environment_settings(url, proxies, stream, verify, cert)
            if c.ca_file:
                out["verify"] = c.ca_file
            return out

        def request(self, method, url, **kw):
            kw.setdefault("timeout", c.timeout)
            return super().request(method, url, **kw)

    return Session()


def _discovery_error(text: str, c) -> TokenError:
    m = re.search(r"\{.*?\}(?=[^}]*$)", text, re.S) or re.search(r"\{.*\}", text, re.S)
    if m:
        try:
            payload = json.loads(m.group(0))
            if isinstance(payload, dict) and payload.get("error"):
                return provider_error(payload, tenant=c.tenant, client_id=c.client_id, scope=c.scope)
        except ValueError:
            pass
    if "AADSTS" in text:
        return provider_error({"error_description": text}, tenant=c.tenant, client_id=c.client_id, scope=c.scope)
    return TokenError("tenant_not_found", tenant=c.tenant, provider_code=text[:120])


def _parse_token_text(text: str) -> tuple[str, float]:
    """A bare token, or JSON with ``access_token`` (and ``expires_in``)."""
    text = text.strip()
    if text.startswith("{"):
        try:
            payload = json.loads(text)
        except ValueError:
            return "", 0
        tok = payload.get("access_token") if isinstance(payload, dict) else None
        return (tok, _lifetime(payload)) if isinstance(tok, str) else ("", 0)
    return text, 0


class FileProvider(TokenProvider):
    """The token an external tool writes to ``token_file``: read again whenever
    the file changes, and after a server refused the token."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self._refused: str | None = None
        self._seen: tuple | None = None

    def token(self) -> str:
        with self._lock:
            path = self.cfg.token_file
            try:
                st = os.stat(path)
                key = (st.st_mtime_ns, st.st_size, st.st_ino)
                if self._token is None or key != self._seen:
                    text = Path(path).read_text(encoding="utf-8")
                    self.fetches += 1
                    self._token, _ = _parse_token_text(text)
                    self._seen = key
            except (OSError, UnicodeDecodeError) as e:
                raise TokenError("token_file_unreadable", path=path, error=_short(e))
            if not self._token:
                raise TokenError("token_file_empty", path=path)
            if self._token == self._refused:
                raise TokenError("token_file_stale", path=path)
            return self._token

    def invalidate(self, token: str | None = None) -> None:
        with self._lock:
            self._refused = token or self._token
            self._token = None


class CommandProvider(TokenProvider):
    """The token a command prints (a bare token, or JSON with access_token and
    expires_in); a bare token is used for ``token_lifetime`` seconds."""

    def _fetch(self) -> tuple[str, float]:
        c = self.cfg
        argv = shlex.split(c.command) if isinstance(c.command, str) else list(c.command)
        shown = " ".join(argv)[:120]
        try:
            r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=c.timeout)
        except (OSError, subprocess.SubprocessError) as e:
            raise TokenError("command_failed", command=shown, error=_short(e))
        if r.returncode != 0:
            err = r.stderr.decode("utf-8", "replace").strip().splitlines()
            raise TokenError("command_failed", command=shown,
                             error=f"退出码 {r.returncode}" + (f"：{err[-1][:200]}" if err else ""))
        tok, lifetime = _parse_token_text(r.stdout.decode("utf-8", "replace"))
        if not tok:
            raise TokenError("command_empty", command=shown)
        return tok, lifetime


def problems(cfg) -> list[tuple[str, str]]:
    """What ``check`` can tell without asking anyone: (key, Chinese reason)
    for credentials and files that are not there."""
    import shutil

    out: list[tuple[str, str]] = []
    if cfg.secret_env and not os.environ.get(cfg.secret_env):
        out.append(("secret_env", f"环境变量 {cfg.secret_env} 没有设置（应保存客户端密码 client secret）"))
    for key in ("secret_file", "certificate_file", "private_key_file", "token_file", "ca_file"):
        path = getattr(cfg, key)
        if path and not os.path.isfile(path):
            out.append((key, f"文件 {path} 不存在" + ("（外部工具应把令牌写在这里）" if key == "token_file" else "")))
        elif path and not os.access(path, os.R_OK):
            out.append((key, f"没有权限读文件 {path}"))
    if cfg.private_key_passphrase_env and not os.environ.get(cfg.private_key_passphrase_env):
        out.append(("private_key_passphrase_env", f"环境变量 {cfg.private_key_passphrase_env} 没有设置（应保存私钥的密码）"))
    if cfg.provider == "command":
        argv = shlex.split(cfg.command) if isinstance(cfg.command, str) else list(cfg.command)
        if argv and shutil.which(argv[0]) is None:
            out.append(("command", f"找不到命令 {argv[0]}（请写完整路径，并确认它可以执行）"))
    return out


_KINDS = {"microsoft": MicrosoftProvider, "generic": GenericProvider, "file": FileProvider, "command": CommandProvider}
_registry: dict[str, TokenProvider] = {}
_registry_lock = threading.Lock()


def provider_for(cfg) -> TokenProvider:
    """The one provider of this process for these settings (an OAuthConfig):
    connections with the same settings share the cached token."""
    key = cfg.model_dump_json()
    with _registry_lock:
        p = _registry.get(key)
        if p is None:
            p = _registry[key] = _KINDS[cfg.provider](cfg)
        return p


def _reset_after_fork() -> None:
    global _registry_lock
    _registry.clear()  # a child (the sender process) fetches its own tokens
    _registry_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)
