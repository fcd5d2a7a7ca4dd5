"""``run.py demo``: the whole path on this machine, with nothing to set up.

Starts a local IMAP server (Dovecot if installed, else pymap) and an aiosmtpd
server that captures outgoing mail, writes a config with a SQLite store in a
temporary directory, drops realistic mails into the mailbox, runs one pass,
and prints what happened.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from datetime import datetime, timezone
from email.header import Header
from email.utils import format_datetime, formataddr
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_n = 0


def mail(sender: tuple[str, str], subject: str, body: str, *, to=("tracking@company.example",), cc=(),
         charset: str = "utf-8", headers: dict | None = None, in_reply_to: str | None = None,
         html: bool = False, message_id: str | None = None) -> bytes:
    global _n
    _n += 1
    codec = {"gb2312": "gb18030", "gbk": "gb18030", "big5": "big5"}.get(charset, charset)
    h = [("From", formataddr((str(Header(sender[0], "utf-8")), sender[1]))), ("To", ", ".join(to))]
    if cc:
        h.append(("Cc", ", ".join(cc)))
    h += [("Subject", Header(subject, charset).encode()), ("Date", format_datetime(datetime.now(timezone.utc))),
          ("Message-ID", message_id or f"<demo-{_n}-{os.getpid()}@client.example>"), ("MIME-Version", "1.0")]
    if in_reply_to:
        h += [("In-Reply-To", in_reply_to), ("References", in_reply_to)]
    h += list((headers or {}).items())
    h += [("Content-Type", f'text/{"html" if html else "plain"}; charset="{charset}"'), ("Content-Transfer-Encoding", "8bit")]
    head = "".join(f"{k}: {v}\r\n" for k, v in h).encode("ascii")
    return head + b"\r\n" + body.replace("\n", "\r\n").encode(codec)


def sample_mails() -> list[tuple[str, bytes]]:
    """(what it shows, raw mail). Uses the people in the shipped directory.toml."""
    from . import demo_mails
    return demo_mails.samples(mail)


def run_demo(args) -> int:
    from .config import load_config
    from .daemon import run_once
    from .devservers.imap import start_local_imap
    from .devservers.smtp import CaptureSMTPServer
    from .pipeline import Runtime
    from .reports import REPORTS, render_table

    work = Path(tempfile.mkdtemp(prefix="ticket-demo-"))
    os.chmod(work, 0o755)
    imap = smtp = None
    try:
        print("== 启动本地邮件服务器 ==")
        imap = start_local_imap(work / "imap")
        smtp = CaptureSMTPServer()
        smtp.start()
        print(f"IMAP：{type(imap).__name__} 127.0.0.1:{imap.port}（账号 {imap.user}）")
        print(f"SMTP：aiosmtpd 127.0.0.1:{smtp.port}（捕获发出的邮件，不会真正发出）")
        os.environ["DEMO_IMAP_PASSWORD"] = imap.password
        shutil.copy(ROOT / "directory.toml", work / "directory.toml")
        (work / "config.toml").write_text(f"""
[system]
address = "tracking@company.example"
name = "工单系统"

[[accounts]]
name = "demo"
host = "127.0.0.1"
port = {imap.port}
ssl = false
username = "{imap.user}"
password_env = "DEMO_IMAP_PASSWORD"

[smtp]
host = "127.0.0.1"
port = {smtp.port}

[store]
url = "sqlite:///data/processor.db"

[paths]
rules = "{ROOT / 'rules'}"
templates = "{ROOT / 'templates'}"
directory = "directory.toml"
""", encoding="utf-8")
        cfg = load_config(work / "config.toml")
        rt = Runtime(cfg)
        samples = sample_mails()
        print(f"\n== 投递 {len(samples)} 封示例邮件到收件箱，然后处理一遍（run.py once）==")
        total_sent = 0
        for i, (what, raw) in enumerate(samples, 1):
            imap.append(raw)
            before = len(smtp.messages)
            outcomes, stats = run_once(rt)
            total_sent += stats.sent
            got = smtp.wait_for(before + stats.sent, timeout=10)[before:]
            for o in outcomes:
                print(f"\n[{i}] {what}")
                print(f"    发件人：{o.from_addr}  主题：{o.subject}")
                print(f"    结果：{_status_cn(o.status)}；规则：{o.rule or '无'}")
                if o.reason:
                    print(f"    说明：{o.reason}")
            for m in got:
                print(f"    ⇒ 系统发出：{m.subject}")
                print(f"       收件人：{', '.join(m.rcpt_tos)}")
                first = next((l for l in (m.text or "").splitlines() if l.strip() and not l.endswith("您好：")), "")
                if first:
                    print(f"       正文：{first.strip()[:80]}")
            if not got:
                print("    ⇒ 系统没有发出邮件")
        print(f"\n共发出 {total_sent} 封邮件。")
        for kind in ("tracking", "complaints", "tickets"):
            if kind in REPORTS:
                class A:  # report arguments
                    presales = month = None
                    open = False
                headers, rows = REPORTS[kind](rt, A)
                print(f"\n== 报表：{kind} ==")
                print(render_table(headers, rows) if rows else "（空）")
        print(f"\n演示数据目录：{work}" + ("（已保留）" if getattr(args, "keep", False) else "（结束后删除；加 --keep 保留）"))
        rt.store.dispose()
        return 0
    finally:
        if smtp is not None:
            smtp.stop()
        if imap is not None:
            imap.stop()
        if not getattr(args, "keep", False):
            shutil.rmtree(work, ignore_errors=True)


_STATUS = {"processed": "已处理", "ignored": "未匹配任何规则，仅记录", "machine": "自动邮件，不回复", "untrusted": "发件人不在通讯录，仅记录",
           "duplicate": "重复邮件，已跳过", "quarantined": "已隔离", "failed": "处理出错，稍后重试"}


def _status_cn(s: str) -> str:
    return _STATUS.get(s, s)


if __name__ == "__main__":
    sys.exit(run_demo(None))
