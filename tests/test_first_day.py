"""An admin's first day: `check` catches what would break at runtime,
`check --connect` reaches the real servers, environmental failures are one
Chinese line (never a traceback), long passes show progress, and backfills
never mail anyone.

Real Dovecot, aiosmtpd and SQLite/PostgreSQL; the CLI runs in a subprocess
where the admin's view (stdout, stderr, exit code) is what is asserted.
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from processor.config import load_config
from processor.store.db import Store
from processor.store.models import Outbox
from support import DIRECTORY, PG_BASE, ROOT, make_mail, write_config


def cli(cfg: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, str(ROOT / "run.py"), "--config", str(cfg), *args], capture_output=True,
                       text=True, encoding="utf-8", timeout=300, env={**os.environ, **(env or {})})
    assert "Traceback" not in p.stderr + p.stdout, p.stderr
    return p


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def outbox(cfg_path) -> list[Outbox]:
    st = Store(load_config(cfg_path).store_url)
    with st.session() as s:
        rows = list(s.scalars(select(Outbox).order_by(Outbox.id)))
    st.dispose()
    return rows


class FakeAcct:
    """Where a config points when the server is not what it says."""

    def __init__(self, port: int, user: str = "tracking", password: str = "secret", host: str = "127.0.0.1"):
        self.host, self.port, self.user, self.password = host, port, user, password


# -- check: values that break at runtime ------------------------------------------------------

@pytest.mark.parametrize("bad, key, words", [
    ("lisi@company,example", "people[2].emails[0]", "“lisi@company,example”不是合法的邮件地址：域名中有不允许的字符 ','"),
    ("lisi@", "people[2].emails[0]", "“lisi@”不是合法的邮件地址：@ 后面缺少域名"),
    ("a@x;b@y", "people[2].emails[0]", "一项只写一个地址"),
])
def test_check_refuses_malformed_directory_addresses(tmp_path, bad, key, words):
    cfg = write_config(tmp_path, directory=DIRECTORY.replace("lisi@company.example", bad, 1))
    p = cli(cfg, "check")
    assert p.returncode == 1
    line = next(ln for ln in p.stderr.splitlines() if key in ln)
    assert "directory.toml" in line and words in line and "李四" in line


@pytest.mark.parametrize("table, setting, key, words", [
    ("system", 'own_addresses = ["not-an-address"]', "system.own_addresses",
     "“not-an-address”不是合法的邮件地址：缺少 @"),
    ("system", 'timezone = "Asia/Shangai"', "system.timezone", "未知的时区 'Asia/Shangai'，是不是 'Asia/Shanghai'？"),
    ("store", 'url = "mysql://root@localhost/tickets"', "store.url", "不支持的数据库类型 'mysql'"),
    ("store", 'url = "processor.db"', "store.url", "无法识别的数据库地址 'processor.db'"),
    ("accounts", 'start = "yesterday"', "accounts[0].start",
     '只能是 "now"（从现在开始）、"all"（全部旧邮件）或日期 "YYYY-MM-DD"'),
])
def test_check_refuses_bad_values_with_one_chinese_line(tmp_path, table, setting, key, words):
    cfg = write_config(tmp_path)
    text = cfg.read_text(encoding="utf-8")
    if table == "store":
        text = re.sub(r"(?m)^url = .*$", setting, text)
    elif table == "system":
        text = text.replace("[system]\n", f"[system]\n{setting}\n", 1)
    else:
        text += f'\n[[accounts]]\nname = "x"\nhost = "h"\nusername = "u"\npassword_env = "X"\n{setting}\n'
    cfg.write_text(text, encoding="utf-8")
    p = cli(cfg, "check")
    assert p.returncode == 1, p.stdout
    (line,) = [ln for ln in p.stderr.splitlines() if key in ln]
    assert str(cfg) in line and words in line


# -- check --connect ----------------------------------------------------------------------------

def test_check_connect_reaches_every_server(tmp_path, imap_server, smtp_server, db_url):
    cfg = write_config(tmp_path, imap=imap_server, smtp=smtp_server, db_url=db_url)
    imap_server.append(make_mail(subject="已有的邮件"))
    p = cli(cfg, "check", "--connect")
    assert p.returncode == 0, p.stderr
    assert "IMAP 账号 support" in p.stdout and "登录成功，文件夹 INBOX 有 1 封邮件" in p.stdout
    assert f"发信服务器 SMTP（127.0.0.1:{smtp_server.port}）：连接成功（不需要登录），没有发送邮件" in p.stdout
    assert "：可以连接" in p.stdout and "连接检查通过" in p.stdout
    if "postgresql" in db_url:  # the senders' journals (SQLite keeps them beside its file)
        assert f"发信日志目录 {tmp_path / 'data'}：可以写入" in p.stdout
    assert smtp_server.messages == []


def test_check_connect_names_a_journal_folder_that_cannot_be_written(tmp_path, imap_server, smtp_server):
    (tmp_path / "a-file").write_text("")
    cfg = write_config(tmp_path, imap=imap_server, smtp=smtp_server, db_url=PG_BASE)
    cfg.write_text(cfg.read_text(encoding="utf-8").replace("[outbox]\n", '[outbox]\njournal_dir = "a-file/journals"\n'),
                   encoding="utf-8")
    p = cli(cfg, "check", "--connect")
    assert p.returncode == 2, p.stdout + p.stderr
    (line,) = [ln for ln in p.stderr.splitlines() if "发信日志目录" in ln]
    assert str(tmp_path / "a-file" / "journals") in line and "[outbox] journal_dir" in line and "无法写入" in line
    assert "Traceback" not in p.stderr


def _connect_failure(tmp_path, *, imap=None, smtp=None, account=None, extra="") -> str:
    cfg = write_config(tmp_path, imap=imap, smtp=smtp, account=account, extra=extra)
    p = cli(cfg, "check", "--connect")
    assert p.returncode == 2, p.stdout + p.stderr
    assert "连接检查：" in p.stderr and "项失败" in p.stderr
    return p.stderr


def test_check_connect_names_a_wrong_password(tmp_path, imap_server, smtp_server):
    err = _connect_failure(tmp_path, imap=FakeAcct(imap_server.port, password="wrong"), smtp=smtp_server)
    assert "IMAP 账号 support" in err and "登录失败，用户名或密码不对" in err and "TEST_IMAP_PASSWORD" in err


def test_check_connect_names_a_missing_folder(tmp_path, imap_server, smtp_server):
    imap_server.ensure_folder("Support")
    err = _connect_failure(tmp_path, imap=imap_server, smtp=smtp_server, account={"folders": ["INBOX", "Suport"]})
    assert "文件夹 'Suport' 不存在，是不是 'Support'？" in err


def test_check_connect_names_a_refused_port(tmp_path, smtp_server):
    port = free_port()
    err = _connect_failure(tmp_path, imap=FakeAcct(port), smtp=smtp_server)
    assert f"连接被拒绝：127.0.0.1:{port} 上没有服务在监听" in err


def test_check_connect_names_a_tls_mismatch(tmp_path, imap_server, smtp_server):
    err = _connect_failure(tmp_path, imap=imap_server, smtp=smtp_server, account={"ssl": True})
    assert "TLS 握手失败" in err and "现在是 ssl = true" in err


def test_check_connect_names_an_unknown_host(tmp_path, smtp_server):
    err = _connect_failure(tmp_path, imap=FakeAcct(993, host="imap.nonexistent.invalid"), smtp=smtp_server)
    assert "找不到主机 imap.nonexistent.invalid（DNS 解析失败）" in err


def test_check_connect_names_smtp_problems(tmp_path, imap_server, smtp_server):
    cfg = write_config(tmp_path, imap=imap_server, smtp=smtp_server)
    text = cfg.read_text(encoding="utf-8").replace("timeout = 5\n", "timeout = 5\nssl = true\n", 1)
    cfg.write_text(text, encoding="utf-8")
    p = cli(cfg, "check", "--connect")
    assert p.returncode == 2 and "发信服务器 SMTP" in p.stderr and "TLS 握手失败" in p.stderr
    text = text.replace("ssl = true\n", 'username = "tracking"\npassword_env = "TEST_SMTP_PASSWORD"\n')
    cfg.write_text(text, encoding="utf-8")
    p = cli(cfg, "check", "--connect", env={"TEST_SMTP_PASSWORD": "x"})
    assert p.returncode == 2 and "服务器不接受登录（没有提供 AUTH）" in p.stderr


def test_check_connect_names_an_unreachable_store(tmp_path, imap_server, smtp_server):
    port = free_port()
    cfg = write_config(tmp_path, imap=imap_server, smtp=smtp_server,
                       db_url=f"postgresql+psycopg://postgres@127.0.0.1:{port}/test")
    p = cli(cfg, "check", "--connect")
    assert p.returncode == 2
    assert f"数据库 postgresql+psycopg://postgres@127.0.0.1:{port}/test：连接被拒绝" in p.stderr


def test_serve_refuses_to_start_on_what_only_the_admin_can_fix(tmp_path, imap_server, smtp_server):
    cfg = write_config(tmp_path, imap=FakeAcct(imap_server.port, password="wrong"), smtp=smtp_server)
    p = cli(cfg, "serve")
    assert p.returncode == 2 and "登录失败，用户名或密码不对" in p.stderr and "无法启动：1 项失败" in p.stderr


def test_serve_starts_while_a_server_is_merely_down(tmp_path, imap_server, smtp_server):
    """SMTP down at start-up: reported, and the daemon runs (the outbox waits)."""
    import signal
    import time

    class Down:
        host, port = "127.0.0.1", free_port()

    cfg = write_config(tmp_path, imap=imap_server, smtp=Down)
    imap_server.append(make_mail(subject="工单测试 启动时发信服务器不可用"))
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--config", str(cfg), "serve"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8")
    try:
        deadline = time.monotonic() + 120
        rows = []
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            rows = outbox(cfg)
            if rows and rows[0].status == "pending" and rows[0].last_error:
                break  # the reply was tried (SMTP down) and waits for the next try
            time.sleep(0.3)
        # (not sent for want of a connection: no attempt counted)
        assert [(r.status, r.attempts, "连接被拒绝" in r.last_error) for r in rows] == [("pending", 0, True)]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert "有服务器暂时连不上；照常启动，之后会自动重连。" in err
    assert f"连接被拒绝：127.0.0.1:{Down.port}" in err and "Traceback" not in err


# -- once: environmental failures are one line ---------------------------------------------------

@pytest.mark.parametrize("case", ["password", "port", "tls", "dns", "folder"])
def test_once_explains_environmental_failures_without_traceback(tmp_path, imap_server, smtp_server, case):
    if case == "password":
        cfg = write_config(tmp_path, imap=FakeAcct(imap_server.port, password="wrong"), smtp=smtp_server)
        words = "登录失败，用户名或密码不对"
    elif case == "port":
        port = free_port()
        cfg = write_config(tmp_path, imap=FakeAcct(port), smtp=smtp_server)
        words = f"连接被拒绝：127.0.0.1:{port} 上没有服务在监听"
    elif case == "tls":
        cfg = write_config(tmp_path, imap=imap_server, smtp=smtp_server, account={"ssl": True})
        words = "TLS 握手失败"
    elif case == "dns":
        cfg = write_config(tmp_path, imap=FakeAcct(993, host="imap.nonexistent.invalid"), smtp=smtp_server)
        words = "找不到主机 imap.nonexistent.invalid（DNS 解析失败）"
    else:
        cfg = write_config(tmp_path, imap=imap_server, smtp=smtp_server, account={"folders": ["Tracking"]})
        words = "文件夹不存在"
    p = cli(cfg, "once")
    assert p.returncode == 2
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert lines[0].startswith("错误：IMAP 账号 support") and words in lines[0], p.stderr
    assert lines[-1] == "（加 --debug 可以看到详细的出错位置）"
    debug = subprocess.run([sys.executable, str(ROOT / "run.py"), "--config", str(cfg), "--debug", "once"],
                           capture_output=True, text=True, encoding="utf-8", timeout=300)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


# -- backfills and first contact -----------------------------------------------------------------

def test_replay_no_send_never_mails_anyone_later(tmp_path, imap_server, smtp_server):
    cfg = write_config(tmp_path, imap=imap_server, smtp=smtp_server)
    old = tmp_path / "old"
    old.mkdir()
    for i in range(3):
        (old / f"{i}.eml").write_bytes(make_mail(subject=f"工单测试 旧{i}"))
    p = cli(cfg, "replay", "--no-send", str(old))
    assert p.returncode == 0, p.stderr
    assert "重放邮件 3 封；未发信（--no-send）。" in p.stdout
    assert "另有 3 封邮件没有发出：" in p.stdout
    assert "3 封不发送：回灌旧邮件（replay --no-send）：只入库，不发送" in p.stdout
    rows = outbox(cfg)
    assert [r.status for r in rows] == ["suppressed"] * 3
    assert cli(cfg, "once").returncode == 0
    imap_server.append(make_mail(subject="工单测试 新的"))
    assert cli(cfg, "once").returncode == 0
    (m,) = smtp_server.wait_for(1)
    assert m.subject == "回执：工单测试 新的"
    assert [r.status for r in outbox(cfg)] == ["suppressed"] * 3 + ["sent"]
    assert len(smtp_server.messages) == 1


def test_start_now_skips_old_mail_and_answers_new(tmp_path, imap_server, smtp_server):
    cfg = write_config(tmp_path, imap=imap_server, smtp=smtp_server, account={"start": "now"})
    for i in range(4):
        imap_server.append(make_mail(subject=f"工单测试 历史{i}"))
    p = cli(cfg, "once")
    assert p.returncode == 0
    assert "之前的 4 封邮件不处理、不回复" in p.stderr and "run.py replay" in p.stderr
    assert "处理邮件 0 封" in p.stdout
    imap_server.append(make_mail(subject="工单测试 现在"))
    p = cli(cfg, "once")
    assert "处理邮件 1 封" in p.stdout and "不处理、不回复" not in p.stderr
    (m,) = smtp_server.wait_for(1)
    assert m.subject == "回执：工单测试 现在"
    assert len(smtp_server.messages) == 1


def test_start_now_on_an_empty_mailbox_still_answers_the_first_mail(tmp_path, imap_server, smtp_server):
    cfg = write_config(tmp_path, imap=imap_server, smtp=smtp_server, account={"start": "now"})
    assert cli(cfg, "once").returncode == 0
    imap_server.append(make_mail(subject="工单测试 第一封"))
    cli(cfg, "once")
    (m,) = smtp_server.wait_for(1)
    assert m.subject == "回执：工单测试 第一封"


def test_start_date_answers_only_mail_since_that_day(tmp_path, imap_server, smtp_server):
    from datetime import datetime, timezone
    cfg = write_config(tmp_path, imap=imap_server, smtp=smtp_server, account={"start": "2026-06-01"})
    # SINCE looks at the server's arrival date (INTERNALDATE): set it as a migration would.
    c = imap_server.connect()
    c.append("INBOX", make_mail(subject="工单测试 五月"), msg_time=datetime(2026, 5, 20, tzinfo=timezone.utc))
    c.append("INBOX", make_mail(subject="工单测试 七月"), msg_time=datetime(2026, 7, 2, tzinfo=timezone.utc))
    c.logout()
    p = cli(cfg, "once")
    assert "之前的 1 封邮件不处理、不回复" in p.stderr
    (m,) = smtp_server.wait_for(1)
    assert m.subject == "回执：工单测试 七月"


# -- progress and the summary ----------------------------------------------------------------------

def test_once_summary_names_the_replies_held_back_and_why(tmp_path, imap_server, smtp_server):
    cfg = write_config(tmp_path, imap=imap_server, smtp=smtp_server, extra="[limits]\nreplies_per_recipient_per_day = 2\n")
    for i in range(5):
        imap_server.append(make_mail(subject=f"工单测试 {i}"))
    p = cli(cfg, "once")
    assert "处理邮件 5 封；发出 2 封" in p.stdout
    assert "另有 3 封邮件没有发出：" in p.stdout
    assert ("3 封不发送：已达发送上限：今天已向 zhangsan@company.example 自动回复 2 封"
            "（limits.replies_per_recipient_per_day），本封不发") in p.stdout


def test_progress_lines_when_not_on_a_terminal():
    import io

    from processor.progress import Progress
    out = io.StringIO()
    p = Progress("收取并处理邮件", stream=out, every=0, tty=False)
    p.set_total(1500)
    for _ in range(3):
        p.advance(500)
    p.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("收取并处理邮件：已处理 500/1500 封（每秒") and "预计还需" in lines[0]
    assert lines[-1].startswith("收取并处理邮件：已处理 1500/1500 封")


def test_progress_bar_on_a_terminal():
    import io

    from processor.progress import Progress
    out = io.StringIO()
    p = Progress("导入邮件", total=10, stream=out, tty=True)
    p.advance(10)
    p.close()
    assert "导入邮件：10/10 封" in out.getvalue()


def test_reports_on_an_unreachable_store_are_one_line(tmp_path):
    port = free_port()
    cfg = write_config(tmp_path, db_url=f"postgresql+psycopg://postgres@127.0.0.1:{port}/test")
    p = cli(cfg, "report", "tracking")
    assert p.returncode == 2
    assert p.stderr.splitlines()[0] == (f"错误：数据库 postgresql+psycopg://postgres@127.0.0.1:{port}/test：连接被拒绝："
                                        f"127.0.0.1:{port} 上没有服务在监听。请检查 host 和 port，以及服务器是否已启动、防火墙是否放行")
