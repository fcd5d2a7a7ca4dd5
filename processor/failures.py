"""Environmental failures explained to an admin, in one Chinese line.

A wrong password, a refused port, a TLS mismatch, an unknown host, a missing
folder or an unreachable store are the admin's to fix, not the program's: the
CLI prints the line that :func:`explain` returns (cause and fix) instead of a
traceback. ``--debug`` still shows the trace.
"""
from __future__ import annotations

import socket
import ssl

from .oauth import TokenError


class ServiceFailure(Exception):
    """An outside service (IMAP, SMTP, the store) failed in a way the admin
    must fix. ``str()`` is the Chinese line to print."""

    def __init__(self, line: str):
        super().__init__(line)
        self.line = line


def _chain(exc: BaseException):
    """exc, then its causes and contexts (aiosmtplib and SQLAlchemy wrap the
    OS error that says what really happened)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _text(exc: BaseException) -> str:
    return " ".join(str(e) for e in _chain(exc)).lower()


def _network_reason(exc: BaseException, host: str, port: int, tls: str) -> str | None:
    """The cause and fix for a failure to reach ``host:port``, or None.
    ``tls`` describes the configured mode ("ssl", "starttls" or "plain")."""
    text = _text(exc)
    for e in _chain(exc):
        if isinstance(e, ssl.SSLCertVerificationError):
            return (f"服务器 {host} 的 TLS 证书校验失败（{e.verify_message or '证书不受信任'}）："
                    "请检查 host 是否与证书上的名称一致，或把签发证书的 CA 加入本机的信任列表")
        if isinstance(e, ssl.SSLError):
            return (f"与 {host}:{port} 的 TLS 握手失败（{e.reason or e}）：端口与加密方式不匹配。"
                    + _tls_hint(tls))
        if isinstance(e, socket.gaierror):
            return f"找不到主机 {host}（DNS 解析失败）：请检查 host 的拼写，以及本机能否解析这个名字"
        if isinstance(e, ConnectionRefusedError):
            return f"连接被拒绝：{host}:{port} 上没有服务在监听。请检查 host 和 port，以及服务器是否已启动、防火墙是否放行"
        if isinstance(e, (socket.timeout, TimeoutError)):
            return (f"连接 {host}:{port} 超时：服务器没有应答。请检查网络和防火墙；"
                    "如果端口没错，可能是加密方式不匹配。" + _tls_hint(tls))
        if isinstance(e, OSError) and e.errno is not None and "unreachable" in str(e).lower():
            return f"无法到达 {host}:{port}（网络不可达）：请检查网络、路由和防火墙"
    if "connection refused" in text:
        return f"连接被拒绝：{host}:{port} 上没有服务在监听。请检查 host 和 port，以及服务器是否已启动、防火墙是否放行"
    if "wrong version number" in text or "record layer" in text or "unexpected eof" in text or "ssl" in text:
        return f"与 {host}:{port} 的 TLS 握手失败：端口与加密方式不匹配。" + _tls_hint(tls)
    if "timed out" in text or "timeout" in text:
        return f"连接 {host}:{port} 超时：服务器没有应答。请检查网络和防火墙；如果端口没错，可能是加密方式不匹配。" + _tls_hint(tls)
    return None


def is_transient(exc: BaseException) -> bool:
    """A failure that may heal by itself (server down, network away), as
    opposed to one only the admin can fix (password, TLS mode, folder name)."""
    for e in _chain(exc):
        if isinstance(e, TokenError):
            return e.transient
        if isinstance(e, ssl.SSLError):
            return False
        if isinstance(e, (ConnectionRefusedError, ConnectionResetError, socket.timeout, TimeoutError)):
            return True
        if isinstance(e, socket.gaierror):
            return e.errno == socket.EAI_AGAIN  # "temporary failure in name resolution"
    text = _text(exc)
    return "connection refused" in text or "timed out" in text


def _tls_hint(tls: str) -> str:
    now = {"ssl": "现在是 ssl = true", "starttls": "现在是 starttls = true", "plain": "现在是不加密"}[tls]
    return (f"（{now}。一般 993/465 端口用 ssl = true，143/587 端口用 starttls = true，"
            "本机测试用的 143/25 端口可以都设为 false）")


def imap_line(exc: BaseException, acct) -> str:
    """One Chinese line for a failure of the IMAP account ``acct``."""
    from imapclient.exceptions import LoginError

    where = f"IMAP 账号 {acct.name}（{acct.host}:{acct.port}，用户 {acct.username}）"
    tls = "ssl" if acct.ssl else "starttls" if acct.starttls else "plain"
    for e in _chain(exc):
        if isinstance(e, TokenError):
            return f"{where}：取不到 OAuth2 访问令牌（[accounts.oauth]，provider = \"{acct.oauth.provider}\"）：{e}"
        if type(e).__name__ == "NoXOAuth2":
            return (f"{where}：服务器不提供 XOAUTH2 登录（能力列表里没有 AUTH=XOAUTH2）。请检查 host"
                    "（Microsoft 365 为 outlook.office365.com，993 端口，ssl = true），以及 ssl / starttls 的设置")
        if acct.auth == "xoauth2" and (isinstance(e, LoginError) or "authenticationfailed" in str(e).lower().replace(" ", "")):
            return f"{where}：{token_refused_reason(acct.oauth, 'IMAP', str(e))}"
        if isinstance(e, LoginError) or "authenticationfailed" in str(e).lower().replace(" ", "") \
                or "login failed" in str(e).lower():
            return (f"{where}：登录失败，用户名或密码不对。请检查 username，以及环境变量 {acct.password_env} 里的密码"
                    "（有的邮箱要用“客户端专用密码/授权码”，而不是网页登录的密码）")
    reason = _network_reason(exc, acct.host, acct.port, tls)
    if reason is None:
        text = str(exc)
        if "doesn't exist" in text.lower() or "nonexistent" in text.lower() or "not exist" in text.lower():
            reason = f"文件夹不存在（服务器说：{text[:200]}）。请检查 folders 的写法，或在邮箱里建好这个文件夹"
        else:
            reason = f"与服务器通信失败：{type(exc).__name__}: {str(exc)[:300]}"
    return f"{where}：{reason}"


def token_refused_reason(oauth, protocol: str, said: str) -> str:
    """Why a mail server refuses a token that the identity provider just
    issued (twice: the retry with a fresh token was refused too)."""
    head = f"服务器拒绝了刚取得的 OAuth2 访问令牌（重新取得后仍被拒绝；服务器说：{said[:160]}）。"
    if oauth.provider == "microsoft":
        perm = "IMAP.AccessAsApp" if protocol == "IMAP" else "SMTP.SendAsApp"
        mailbox = ("Add-MailboxPermission -Identity <邮箱> -User <服务主体 ID> -AccessRights FullAccess" if protocol == "IMAP"
                   else "Add-MailboxPermission（FullAccess）或 Add-RecipientPermission（SendAs）")
        return (head + f"请检查：应用有 Office 365 Exchange Online 的应用程序权限 {perm} 并已授予管理员同意；"
                "已在 Exchange Online PowerShell 用 New-ServicePrincipal 注册应用的服务主体；"
                f"已对这个邮箱执行 {mailbox}；username 是邮箱的完整地址"
                + ("；租户的 SMTP AUTH 没有关闭（Set-CASMailbox -SmtpClientAuthenticationDisabled $false）" if protocol == "SMTP" else "")
                + "。权限改动生效可能要等 30 分钟")
    return head + "请检查 username 是否是邮箱的完整地址、令牌的 scope 是否对应这个邮件服务，以及这个账号是否允许用令牌登录"


def missing_folder_line(acct, folder: str, existing: list[str]) -> str:
    import difflib
    hint = difflib.get_close_matches(folder, existing, n=1, cutoff=0.5)
    shown = "、".join(existing[:12]) + ("……" if len(existing) > 12 else "")
    return (f"IMAP 账号 {acct.name}（{acct.host}:{acct.port}）：文件夹 {folder!r} 不存在"
            + (f"，是不是 {hint[0]!r}？" if hint else "。") + f"服务器上现有：{shown or '（无）'}。"
            "请改正配置里的 folders，或在邮箱里建好这个文件夹")


def smtp_line(exc: BaseException, smtp) -> str:
    """One Chinese line for a failure of the SMTP server ``smtp`` (SmtpConfig)."""
    import aiosmtplib

    where = f"发信服务器 SMTP（{smtp.host}:{smtp.port}）"
    tls = "ssl" if smtp.ssl else "starttls" if smtp.starttls else "plain"
    for e in _chain(exc):
        if isinstance(e, TokenError):
            return f"{where}：取不到 OAuth2 访问令牌（[smtp.oauth]，provider = \"{smtp.oauth.provider}\"）：{e}"
        if isinstance(e, aiosmtplib.SMTPAuthenticationError) and smtp.auth == "xoauth2":
            return f"{where}：{token_refused_reason(smtp.oauth, 'SMTP', f'{e.code} {e.message[:120]}')}"
        if isinstance(e, aiosmtplib.SMTPAuthenticationError):
            return (f"{where}：登录失败（{e.code} {e.message[:120]}），用户名或密码不对。请检查 [smtp] 的 username，"
                    f"以及环境变量 {smtp.password_env} 里的密码")
        if isinstance(e, aiosmtplib.SMTPException) and "xoauth2 not supported" in str(e).lower():
            return (f"{where}：服务器不提供 XOAUTH2 登录（EHLO 的回答里没有 AUTH XOAUTH2）。通常要先加密：请设置 starttls = true"
                    "（Microsoft 365 为 smtp.office365.com，587 端口）；并检查 host 是否写对")
        if isinstance(e, aiosmtplib.SMTPException) and "auth" in str(e).lower() and "not supported" in str(e).lower():
            return (f"{where}：服务器不接受登录（没有提供 AUTH）。通常要先加密：请设置 starttls = true（587 端口）"
                    "或 ssl = true（465 端口）；若这台服务器不需要登录，请删去 username")
    reason = _network_reason(exc, smtp.host, smtp.port, tls)
    if reason is None:
        reason = f"通信失败：{type(exc).__name__}: {str(exc)[:300]}"
    return f"{where}：{reason}"


def store_line(exc: BaseException, url: str) -> str:
    """One Chinese line for a store that cannot be opened."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    shown = u.render_as_string(hide_password=True)
    text = _text(exc)
    if u.get_backend_name() == "sqlite":
        if "unable to open" in text or "readonly" in text or "read-only" in text or "permission" in text:
            return (f"数据库 {shown}：无法打开或写入这个文件。请检查路径所在的目录存在、"
                    "运行本程序的用户对它有读写权限")
        if "locked" in text:
            return f"数据库 {shown}：文件被别的进程锁住了，请稍后再试，或检查是否有卡住的进程"
        return f"数据库 {shown}：无法使用（{str(exc)[:300]}）"
    if "password authentication failed" in text or "authentication failed" in text:
        return f"数据库 {shown}：登录失败，用户名或密码不对（PostgreSQL 的 pg_hba.conf 也要允许这个用户从这里连接）"
    if "does not exist" in text and "database" in text:
        return f"数据库 {shown}：库 {u.database!r} 不存在。请先建库：createdb {u.database}"
    if "does not exist" in text and "role" in text:
        return f"数据库 {shown}：用户 {u.username!r} 不存在。请在 PostgreSQL 中建好这个用户，或改正地址中的用户名"
    reason = _network_reason(exc, u.host or "localhost", u.port or 5432, "plain")
    if reason is None:
        reason = f"无法连接（{str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__}）"
    return f"数据库 {shown}：{reason}"


def explain(exc: BaseException, cfg=None) -> str | None:
    """The Chinese line for an environmental error that reached the CLI, or
    None when it is a bug (then the traceback is the right thing to show)."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    if isinstance(exc, ServiceFailure):
        return exc.line
    if isinstance(exc, (OperationalError, DBAPIError)) and cfg is not None:
        return store_line(exc, cfg.store_url)
    if isinstance(exc, PermissionError):
        return f"没有权限：{exc.filename or exc}。请检查运行本程序的用户对这个文件或目录的权限"
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return f"找不到文件或目录：{exc.filename}"
    if isinstance(exc, OSError) and exc.errno == 28:
        return "磁盘已满：请清理磁盘空间后重试（没有处理完的邮件下次会接着处理，不会丢失）"
    if isinstance(exc, MemoryError):
        return "内存不足：请增加内存，或在配置中调小 fetch_batch 或 fetch_bytes"
    return None
