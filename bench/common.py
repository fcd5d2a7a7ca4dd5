"""Shared set-up for the benchmarks: real Dovecot, a real aiosmtpd sink in its
own process, and a config with a SQLite store in a temp dir."""
from __future__ import annotations

import os
import random
import resource
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from processor.devservers.imap import DovecotServer  # noqa: E402
from processor.devservers.smtp import SMTPSinkProcess  # noqa: E402
from support import DIRECTORY, drop_pg_schema, make_mail, new_pg_schema_url  # noqa: E402

BODY = """沟通结果：成功
项目名称：华夏银行
沟通人：客户信息中心 王工
沟通方式：电话
沟通的具体问题：解决vista下远程控制网络参数设置，客户端升级到 5.2.{n} 后无法连接管理服务器，
已指导客户修改防火墙策略并重新下发配置，验证正常。
遗留的问题描述：无

张三
技术支持部
电话：010-12345678
"""


# The Received line our mail server writes for a logged-in sender: without it
# the sender is not trusted (processor/trust.py) and nothing is done.
SUBMITTED = {"Received": "from [192.168.10.23] (unknown [192.168.10.23]) by mail.company.example (Postfix) "
                         "with ESMTPSA id 4Dbench; Mon, 30 Nov 2026 10:00:00 +0800"}


def workdir(prefix: str) -> Path:
    d = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(d, 0o755)
    return d


def bench_mails(n: int, kind: str = "ping", seed: int = 1) -> list[bytes]:
    """n distinct realistic mails. kind "ping" gets a receipt from the placeholder rule;
    kind "report" is a 客户沟通 report to the project's sales (if that rule is installed)."""
    rnd = random.Random(seed)
    hop = SUBMITTED
    out = []
    for i in range(n):
        body = BODY.format(n=rnd.randint(0, 99))
        if kind == "report":
            out.append(make_mail(subject="客户沟通-华夏银行-张三", body=body,
                                 to=("lisi@company.example",), cc=("tracking@company.example",),
                                 message_id=f"<bench-{seed}-{i}@client.example>", headers=hop))
        else:
            out.append(make_mail(subject=f"工单测试 {i}", body=body, message_id=f"<bench-{seed}-{i}@client.example>",
                                 headers=hop))
    return out


def start_servers(work: Path, sink_loop: str = "asyncio") -> tuple[DovecotServer, SMTPSinkProcess]:
    imap = DovecotServer(work / "imap")
    imap.start()
    sink = SMTPSinkProcess(work / "sink", loop=sink_loop)
    sink.start()
    return imap, sink


@contextmanager
def bench_setup(prefix: str, store: str = "sqlite", sink_loop: str = "asyncio"):
    """(work dir, Dovecot, SMTP sink, store URL) for one benchmark run, torn
    down after it. The URL is None for SQLite in the work dir, or a fresh
    schema in the PostgreSQL test database for ``store="pg"``. ``sink_loop``:
    the SMTP sink's event loop (asyncio, as the reported figures, or uvloop)."""
    work = workdir(prefix)
    imap, sink = start_servers(work, sink_loop)
    url, schema = new_pg_schema_url() if store == "pg" else (None, None)
    try:
        yield work, imap, sink, url
    finally:
        sink.stop()
        imap.stop()
        shutil.rmtree(work, ignore_errors=True)
        if schema:
            drop_pg_schema(schema)


def write_bench_config(work: Path, imap, sink, *, batch: int = 200, extra: str = "", account_extra: str = "",
                       directory: str = DIRECTORY, store_url: str | None = None) -> Path:
    """extra: TOML appended at the end (whole tables); account_extra: keys added
    to the [[accounts]] table (e.g. "poll_interval = 3600")."""
    os.environ["BENCH_IMAP_PASSWORD"] = imap.password
    (work / "directory.toml").write_text(directory, encoding="utf-8")
    p = work / "config.toml"
    p.write_text(f"""
[system]
address = "tracking@company.example"

[[accounts]]
name = "bench"
host = "127.0.0.1"
port = {imap.port}
ssl = false
username = "{imap.user}"
password_env = "BENCH_IMAP_PASSWORD"
fetch_batch = {batch}
start = "all"
{account_extra}

[smtp]
host = "127.0.0.1"
port = {sink.port}
connections = 2

[limits]
replies_per_recipient_per_day = 1000000

[store]
url = "{store_url or 'sqlite:///' + str(work / 'data' / 'processor.db')}"

[paths]
rules = "{ROOT / 'rules'}"
templates = "{ROOT / 'templates'}"
directory = "directory.toml"
{extra}
""", encoding="utf-8")
    return p


def sink_count(work: Path) -> int:
    f = work / "sink" / "envelopes.jsonl"
    return sum(1 for _ in f.open()) if f.exists() else 0


class SinkReader:
    """Reads what the SMTPSinkProcess accepted, incrementally: each call to
    new() returns the (received_at, raw bytes) pairs added since the last call."""

    def __init__(self, work: Path):
        self.index = work / "sink" / "envelopes.jsonl"
        self.data = work / "sink" / "messages.bin"
        self._pos = 0

    def new(self) -> list[tuple[float, bytes]]:
        import json

        if not self.index.exists():
            return []
        out = []
        with self.index.open("rb") as f:
            f.seek(self._pos)
            chunk = f.read()
        end = chunk.rfind(b"\n") + 1  # whole lines only (the sink may be mid-write)
        if not end:
            return []
        self._pos += end
        recs = [json.loads(line) for line in chunk[:end].splitlines() if line.strip()]
        if recs:
            with self.data.open("rb") as f:
                for r in recs:
                    f.seek(r["offset"])
                    out.append((r["received_at"], f.read(r["length"])))
        return out


def header(raw: bytes, name: str) -> str | None:
    """One header's value from raw mail bytes (unfolded, stripped)."""
    from email.parser import BytesHeaderParser

    v = BytesHeaderParser().parsebytes(raw).get(name)
    return " ".join(str(v).split()) if v is not None else None


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    import math

    s = sorted(values)
    return s[max(0, min(len(s) - 1, math.ceil(p / 100 * len(s)) - 1))]


def children_cpu() -> float:
    """CPU seconds of this process's children that have ended (the sender
    process of each `once`; the servers run on until the end)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _stat(path: Path) -> tuple[str, list[str]]:
    """(command name, the fields after it) of /proc/<pid>/stat."""
    name, _, rest = path.read_text().partition("(")[2].rpartition(")")
    return name, rest.split()


def process_cpu(pid: int | None) -> float:
    """Seconds of CPU another process has used so far (Linux; 0 elsewhere)."""
    try:
        fields = _stat(Path(f"/proc/{pid}/stat"))[1]
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    except (OSError, ValueError, IndexError, TypeError):
        return 0.0


def postgres_cpu() -> float:
    """CPU seconds used so far by the local PostgreSQL server: its running
    processes, and the backends that have ended (counted in their parent's
    children time). Linux; 0 elsewhere."""
    total = 0
    for d in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        try:
            name, fields = _stat(d / "stat") if d.name.isdigit() else ("", [])
        except OSError:
            continue
        if name.startswith("postgres"):
            total += sum(int(f) for f in fields[11:15])  # utime, stime and those of reaped children
    return total / os.sysconf("SC_CLK_TCK")


def under_callgrind(argv: list[str]) -> tuple[int, str]:
    """Run ``python argv...`` under valgrind's callgrind with instrumentation
    off until the program turns it on (``count_instructions``) and return
    the instructions it executed while on, and what it printed: the same to a few parts in ten
    million from run to run, whatever else the machine is doing. The same
    hash seed each run: sets and dicts of strings iterate alike."""
    import subprocess

    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    out = workdir("bench-callgrind-")
    try:
        cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out / 'callgrind.out'}",
               sys.executable, *argv]
        p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
        collected = [line for line in p.stderr.splitlines() if "Collected :" in line]
        if p.returncode != 0 or not collected:
            sys.exit(p.stderr[-3000:])
        return int(collected[-1].split(":")[-1].strip().replace(",", "")), p.stdout
    finally:
        shutil.rmtree(out, ignore_errors=True)


@contextmanager
def count_instructions(on: bool = True):
    """Instrument the block when running under ``under_callgrind`` (``on``)."""
    import subprocess

    def toggle(state: str) -> None:
        subprocess.run(["callgrind_control", "-i", state, str(os.getpid())], stdout=subprocess.DEVNULL, check=True)

    if on:
        toggle("on")
    try:
        yield
    finally:
        if on:
            toggle("off")
