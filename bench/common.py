"""Shared set-up for the benchmarks: real Dovecot, a real aiosmtpd sink in its
own process, and a config with a SQLite store in a temp dir."""
from __future__ import annotations

import os
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from processor.devservers.imap import DovecotServer  # noqa: E402
from processor.devservers.smtp import SMTPSinkProcess  # noqa: E402
from support import DIRECTORY, make_mail  # noqa: E402

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


def workdir(prefix: str) -> Path:
    d = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(d, 0o755)
    return d


def bench_mails(n: int, kind: str = "ping", seed: int = 1) -> list[bytes]:
    """n distinct realistic mails. kind "ping" gets a receipt from the placeholder rule;
    kind "report" is a 客户沟通 report to the project's sales (if that rule is installed)."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        body = BODY.format(n=rnd.randint(0, 99))
        if kind == "report":
            out.append(make_mail(subject="客户沟通-华夏银行-张三", body=body,
                                 to=("lisi@company.example",), cc=("tracking@company.example",),
                                 message_id=f"<bench-{seed}-{i}@client.example>"))
        else:
            out.append(make_mail(subject=f"工单测试 {i}", body=body, message_id=f"<bench-{seed}-{i}@client.example>"))
    return out


def start_servers(work: Path) -> tuple[DovecotServer, SMTPSinkProcess]:
    imap = DovecotServer(work / "imap")
    imap.start()
    sink = SMTPSinkProcess(work / "sink")
    sink.start()
    return imap, sink


def write_bench_config(work: Path, imap, sink, *, batch: int = 200, extra: str = "") -> Path:
    os.environ["BENCH_IMAP_PASSWORD"] = imap.password
    (work / "directory.toml").write_text(DIRECTORY, encoding="utf-8")
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

[smtp]
host = "127.0.0.1"
port = {sink.port}
connections = 2

[limits]
replies_per_recipient_per_day = 1000000

[store]
url = "sqlite:///{work / 'data' / 'processor.db'}"

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
