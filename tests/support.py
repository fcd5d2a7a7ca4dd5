"""Shared helpers for end-to-end tests: config files, mails, running the CLI."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from email.header import Header
from email.utils import format_datetime, formataddr
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from processor.cli import main as cli_main

ROOT = Path(__file__).resolve().parent.parent
PG_BASE = os.environ.get("TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

DIRECTORY = """
[[people]]
name = "张三"
emails = ["zhangsan@company.example"]
roles = ["售前"]

[[people]]
name = "王五"
emails = ["wangwu@company.example"]
roles = ["售前"]

[[people]]
name = "李四"
emails = ["lisi@company.example"]
roles = ["销售"]

[[people]]
name = "周七"
emails = ["zhouqi@company.example"]
roles = ["销售"]

[[people]]
name = "赵六"
emails = ["zhaoliu@company.example"]
roles = ["售前经理", "售前"]

[[people]]
name = "钱经理"
emails = ["qian@company.example"]
roles = ["技术支持部经理"]

[[people]]
name = "孙总监"
emails = ["sun@company.example"]
roles = ["技术总监"]

[[people]]
name = "郑经理"
emails = ["zheng@company.example"]
roles = ["研发经理"]

[[people]]
name = "冯工"
emails = ["feng@company.example"]
roles = ["研发"]

[[people]]
name = "陈工"
emails = ["chen@company.example"]
roles = ["研发"]

[[people]]
name = "卫测试"
emails = ["wei@company.example"]
roles = ["测试组"]

[[projects]]
name = "华夏银行"
aliases = ["华夏"]
sales = "李四"
presales1 = "张三"
presales2 = "王五"

[[projects]]
name = "东方电网"
sales = "周七"
presales1 = "王五"
presales2 = "张三"
"""


# Test mails go straight into the mailbox (IMAP APPEND) and carry no mark of
# a mail system, so the workflow tests trust the From header alone. Tests of
# sender trust pass trust=None (the shipped defaults) or their own [trust] keys.
TEST_TRUST = "trust_from_header = true"


def new_pg_schema_url() -> str:
    """A fresh schema in the test database; the URL puts it first on the search path."""
    schema = "t_" + uuid.uuid4().hex[:12]
    eng = create_engine(PG_BASE)
    with eng.begin() as c:
        c.execute(text(f"CREATE SCHEMA {schema}"))
    eng.dispose()
    return f"{PG_BASE}?options=-csearch_path%3D{schema}", schema


def drop_pg_schema(schema: str) -> None:
    eng = create_engine(PG_BASE)
    with eng.begin() as c:
        c.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    eng.dispose()


def write_config(tmp: Path, *, imap=None, smtp=None, db_url: str | None = None, directory: str = DIRECTORY,
                 account: dict | None = None, extra: str = "", rules_dir: Path | None = None,
                 templates_dir: Path | None = None, trust: str | None = TEST_TRUST) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "directory.toml").write_text(directory, encoding="utf-8")
    acct = ""
    if imap is not None:
        os.environ["TEST_IMAP_PASSWORD"] = imap.password
        opts = {"ssl": False, "poll_interval": 1, "fetch_batch": 50, "timeout": 10, "start": "all"}
        opts.update(account or {})
        lines = "\n".join(f"{k} = {_toml(v)}" for k, v in opts.items())
        acct = f"""
[[accounts]]
name = "support"
host = "{imap.host}"
port = {imap.port}
username = "{imap.user}"
password_env = "TEST_IMAP_PASSWORD"
{lines}
"""
    smtp_s = f"""
[smtp]
host = "{smtp.host if smtp is not None else '127.0.0.1'}"
port = {smtp.port if smtp is not None else 1}
timeout = 5
"""
    url = db_url or f"sqlite:///{tmp / 'data' / 'processor.db'}"
    cfg = f"""
[system]
address = "tracking@company.example"
name = "工单系统"
{acct}
{smtp_s}
[outbox]
backoff_base = 0.2
backoff_max = 1

[store]
url = "{url}"

[paths]
rules = "{rules_dir or ROOT / 'rules'}"
templates = "{templates_dir or ROOT / 'templates'}"
directory = "directory.toml"

{"[trust]" + chr(10) + trust if trust is not None else ""}

[daemon]
outbox_interval = 0.5
retry_interval = 1
reconnect_min = 0.2
reconnect_max = 1
{extra}
"""
    p = tmp / "config.toml"
    p.write_text(cfg, encoding="utf-8")
    return p


def _toml(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\") + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return str(v)


def run(config: Path, *args: str) -> int:
    return cli_main(["--config", str(config), *args])


def make_mail(*, sender: str = "zhangsan@company.example", sender_name: str = "张三", to=("tracking@company.example",),
              cc=(), subject: str = "工单测试", body: str = "你好", charset: str = "utf-8", message_id: str | None = None,
              in_reply_to: str | None = None, references: str | None = None, headers: dict | None = None,
              html: str | None = None, date: datetime | None = None) -> bytes:
    """A mail as a client would send it. Non-UTF-8 charsets are encoded as
    the real clients do (8bit body, RFC 2047 subject)."""
    mid = message_id or f"<{uuid.uuid4().hex}@client.example>"
    enc_subject = Header(subject, "utf-8" if charset == "utf-8" else charset).encode()
    hdrs = [
        ("From", formataddr((str(Header(sender_name, "utf-8")), sender))),
        ("To", ", ".join(to)),
    ]
    if cc:
        hdrs.append(("Cc", ", ".join(cc)))
    hdrs += [("Subject", enc_subject), ("Date", format_datetime(date or datetime.now(timezone.utc))),
             ("Message-ID", mid), ("MIME-Version", "1.0")]
    if in_reply_to:
        hdrs.append(("In-Reply-To", in_reply_to))
    if references or in_reply_to:
        hdrs.append(("References", references or in_reply_to))
    for k, v in (headers or {}).items():
        hdrs.append((k, v))
    codec = {"gb2312": "gb18030", "gbk": "gb18030", "big5": "big5"}.get(charset, charset)
    if html is not None:
        hdrs += [("Content-Type", f'text/html; charset="{charset}"'), ("Content-Transfer-Encoding", "8bit")]
        payload = html.encode(codec)
    else:
        hdrs += [("Content-Type", f'text/plain; charset="{charset}"'), ("Content-Transfer-Encoding", "8bit")]
        payload = body.encode(codec)
    head = "".join(f"{k}: {v}\r\n" for k, v in hdrs).encode("ascii", "surrogateescape")
    return head + b"\r\n" + payload.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


IMAP_KINDS = ["dovecot", "pymap"]


def start_imap(kind: str, workdir):
    """A started local IMAP server of ``kind``; pymap (pure Python, no
    RFC 3691 UNSELECT, no persistence across restarts) is what a fresh machine
    without Dovecot runs the demo on."""
    from processor.devservers.imap import DOVECOT_INSTALL_HINT, DovecotServer, PymapServer, dovecot_available

    if kind == "dovecot":
        if not dovecot_available():
            import pytest
            pytest.fail(DOVECOT_INSTALL_HINT, pytrace=False)
        srv = DovecotServer(workdir)
    else:
        srv = PymapServer(workdir)
    srv.start()
    return srv


# -- real daemons, killed and restarted (test_crash.py, test_workers.py) --------------------


def start_serve(cfg: Path, log: Path | None = None) -> subprocess.Popen:
    """A real ``run.py serve`` process; its output appended to ``log`` if given."""
    out = open(log, "ab") if log is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--config", str(cfg), "serve"],
                                stdout=out, stderr=subprocess.STDOUT if log is not None else subprocess.DEVNULL, cwd=ROOT)
    finally:
        if log is not None:
            out.close()


def stop_serve(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def store_state(cfg: Path):
    """(messages, outbox rows) as stored now."""
    from processor.config import load_config
    from processor.store.db import Store
    from processor.store.models import Message, Outbox

    st = Store(load_config(cfg).store_url, upgrade=False)
    try:
        with st.session() as s:
            msgs = list(s.scalars(select(Message)))
            out = list(s.scalars(select(Outbox)))
    finally:
        st.dispose()
    return msgs, out


def wait_until_all_done(cfg: Path, n_mails: int, rounds: int = 360):
    """Poll the store until every mail is processed and every reply sent, or
    ``rounds`` polls have passed (a bound, not a speed check); returns the state."""
    msgs, out = [], []
    for _ in range(rounds):
        try:
            msgs, out = store_state(cfg)
        except (OperationalError, ProgrammingError):  # the schema is still being created
            time.sleep(0.5)
            continue
        if (sum(m.status == "processed" for m in msgs) >= n_mails and len(out) >= n_mails
                and all(o.status == "sent" for o in out)):
            break
        time.sleep(0.5)
    return msgs, out


def assert_each_once(msgs, out, smtp_server, expected_mids: set[str], seed) -> dict:
    """Every mail recorded and processed once, one reply each, each received;
    a reply received twice only if its row is flagged ``uncertain`` (SMTP has
    no two-phase commit: a kill between the server's acceptance and its
    recording). Returns counts for the test to print."""
    by_mid = Counter(m.message_id for m in msgs)
    assert set(by_mid) == expected_mids, f"seed {seed}: lost {sorted(expected_mids - set(by_mid))[:10]}"
    assert max(by_mid.values()) == 1, f"seed {seed}: recorded twice: {[k for k, v in by_mid.items() if v > 1]}"
    assert {m.status for m in msgs} == {"processed"}, f"seed {seed}"
    assert len(out) == len(expected_mids) and {o.status for o in out} == {"sent"}, f"seed {seed}"
    time.sleep(0.5)
    got = Counter(m.header("Message-ID") for m in smtp_server.messages)
    assert set(got) == {o.message_id for o in out}, f"seed {seed}: a reply is missing or unknown"
    answered = Counter(m.header("In-Reply-To") for m in smtp_server.messages)
    assert set(answered) == set(by_mid), f"seed {seed}"
    uncertain = {o.message_id for o in out if o.uncertain}
    repeated = {mid: n for mid, n in got.items() if n > 1}
    assert all(mid in uncertain and n == 2 for mid, n in repeated.items()), \
        f"seed {seed}: sent twice without a crash in the send window: {repeated}"
    return {"uncertain": len(uncertain), "repeated": len(repeated)}


def queued(store, *where) -> list:
    """The outbox rows (oldest first), each with what it carries as ``raw``
    and ``draft`` (kept in outbox_content, beside the row)."""
    from processor.store.models import Outbox, OutboxContent

    with store.reader() as s:
        out = []
        for row, content in s.execute(select(Outbox, OutboxContent).outerjoin(Outbox.content)
                                      .where(*where).order_by(Outbox.id)):
            row.raw, row.draft = (content.raw, content.draft) if content is not None else (None, None)
            out.append(row)
        return out
