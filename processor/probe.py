"""``check --connect``: reach every outside service the config names, without
changing anything: log in to each IMAP account and open each folder read-only,
connect and authenticate to SMTP (no mail is sent), and open the store.

``serve`` runs the same probe at start-up, so a wrong password is reported
once, in Chinese, instead of as a reconnect loop in the logs.
"""
from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

from .config import Config
from .failures import imap_line, is_transient, missing_folder_line, smtp_line, store_line


@dataclass
class Finding:
    ok: bool
    line: str
    # Failures that may heal by themselves (a server down): `serve` starts
    # anyway and reconnects with backoff; the others it refuses to start with.
    transient: bool = False
    # Not about reaching a server, and no failure: something that waits for
    # the admin (``check --connect`` and ``serve`` show it and go on).
    warning: bool = False


def probe_imap(acct) -> list[Finding]:
    from imapclient.exceptions import IMAPClientError

    from .intake.imap import NETWORK_ERRORS, connect

    if acct.auth == "password" and not acct.secret():
        return [Finding(False, f"IMAP 账号 {acct.name}：环境变量 {acct.password_env} 没有设置（应保存这个账号的密码）")]
    try:
        c = connect(acct)
    except NETWORK_ERRORS as e:
        return [Finding(False, imap_line(e, acct), is_transient(e))]
    out: list[Finding] = []
    try:
        names = [name for _flags, _delim, name in c.list_folders()]
        for folder in acct.folders:
            if folder not in names and folder.upper() != "INBOX":
                out.append(Finding(False, missing_folder_line(acct, folder, names)))
                continue
            try:
                info = c.select_folder(folder, readonly=True)  # EXAMINE: changes nothing
            except IMAPClientError as e:
                out.append(Finding(False, imap_line(e, acct)))
                continue
            how = "用 OAuth2 令牌（XOAUTH2）登录成功" if acct.auth == "xoauth2" else "登录成功"
            out.append(Finding(True, f"IMAP 账号 {acct.name}（{acct.host}:{acct.port}）：{how}，文件夹 {folder} "
                                     f"有 {int(info.get(b'EXISTS', 0))} 封邮件"))
    except NETWORK_ERRORS as e:
        out.append(Finding(False, imap_line(e, acct), is_transient(e)))
    finally:
        try:
            c.logout()
        except Exception:
            pass
    return out


async def _smtp(cfg: Config) -> None:
    import aiosmtplib

    from .outbox import sign_in

    c = cfg.smtp
    smtp = aiosmtplib.SMTP(hostname=c.host, port=c.port, use_tls=c.ssl, start_tls=c.starttls if c.starttls else False,
                           timeout=c.timeout)
    await smtp.connect()
    try:
        await smtp.ehlo()
        await sign_in(smtp, c)
    finally:
        try:
            await smtp.quit()
        except Exception:
            smtp.close()


def probe_smtp(cfg: Config) -> Finding:
    c = cfg.smtp
    if c.auth == "password" and c.username and not c.secret():
        return Finding(False, f"发信服务器 SMTP：环境变量 {c.password_env} 没有设置（应保存 SMTP 的密码）")
    try:
        asyncio.run(_smtp(cfg))
    except Exception as e:  # aiosmtplib, ssl and OS errors: all explained
        return Finding(False, smtp_line(e, c), is_transient(e))
    how = "，用 OAuth2 令牌（XOAUTH2）登录成功" if c.auth == "xoauth2" else "，登录成功" if c.username else "（不需要登录）"
    return Finding(True, f"发信服务器 SMTP（{c.host}:{c.port}）：连接成功{how}，没有发送邮件")


def probe_store(cfg: Config) -> Finding:
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from .store.db import make_engine

    try:
        engine = make_engine(cfg.store_url)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        finally:
            engine.dispose()
    except (SQLAlchemyError, OSError) as e:
        return Finding(False, store_line(e, cfg.store_url), is_transient(e))
    from sqlalchemy.engine import make_url
    return Finding(True, f"数据库 {make_url(cfg.store_url).render_as_string(hide_password=True)}：可以连接")


def probe_journal(cfg: Config) -> Finding | None:
    """PostgreSQL with ``outbox.journal_dir``: can the senders keep their
    journals there? (SQLite keeps them beside its database file.)"""
    from sqlalchemy.engine import make_url

    d = cfg.journal_dir
    if d is None or make_url(cfg.store_url).get_backend_name() == "sqlite":
        return None
    try:
        d.mkdir(parents=True, exist_ok=True)
        probe_file = d / f".probe-{os.getpid()}"
        probe_file.write_bytes(b"")
        probe_file.unlink()
    except OSError as e:
        from .failures import explain
        why = explain(e) or ("路径中有一段是文件，不是目录" if isinstance(e, NotADirectoryError) else f"操作系统错误 {e.errno}")
        return Finding(False, f"发信日志目录 {d}（[outbox] journal_dir）无法写入：{why}。请创建该目录并让运行服务的"
                              "用户可以写入，或把 journal_dir 改为另一个目录")
    return Finding(True, f"发信日志目录 {d}：可以写入")


def probe_held_elsewhere(cfg: Config) -> list[Finding]:
    """Mails held by a stopped sender whose journal is on another host: they
    wait for an admin (not a failure to start on: ``serve`` sends the rest)."""
    from sqlalchemy.exc import SQLAlchemyError

    from .outbox import held_elsewhere, held_elsewhere_line
    from .store.db import Store

    try:
        store = Store(cfg.store_url, upgrade=False, journal_dir=cfg.journal_dir)
        try:
            held = held_elsewhere(store)
        finally:
            store.dispose()
    except (SQLAlchemyError, OSError):  # no store yet, or not reachable: probe_store says so
        return []
    return [Finding(True, "发件队列：" + held_elsewhere_line(owner, n), warning=True) for owner, n in held.items()]


def probe(cfg: Config) -> list[Finding]:
    """Every outside service, in the order an admin would fix them."""
    out = [probe_store(cfg)]
    journal = probe_journal(cfg)
    if journal is not None:
        out.append(journal)
    if out[0].ok:
        out += probe_held_elsewhere(cfg)
    for acct in cfg.accounts:
        out += probe_imap(acct)
    out.append(probe_smtp(cfg))
    return out
