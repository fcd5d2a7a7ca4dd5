"""Issue 10, "Mail that stalls or exhausts the processor": each hostile mail
goes through the real Dovecot (or `replay` on files) into SQLite and
PostgreSQL, with `run.py` as a real process, and the tests check what admins
and senders see: no traceback, every mail recorded, the queue moving on, the
cost of one mail bounded, and the reason for a quarantine saying what happened.
"""
from __future__ import annotations

import base64
import json
import subprocess
import sys

from sqlalchemy import create_engine, text

from fuzzmail import deep_multipart, long_mail, nested_rfc822
from support import ROOT, make_mail, write_config

ZHANG = "zhangsan@company.example"
WANG = "wangwu@company.example"
LI = "lisi@company.example"
ZHAO = "zhaoliu@company.example"
SYSTEM = "tracking@company.example"
MB = 1024 * 1024

# Runs a command and reports the peak RSS of it (and its children), in KB.
_RSS = """
import resource, subprocess, sys
p = subprocess.run(sys.argv[1:])
sys.stdout.flush()
print("MAXRSS", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, flush=True)
sys.exit(p.returncode)
"""

# run.py, except that the process SIGKILLs itself when it starts on a mail
# carrying the marker header: a process killed by the OOM killer, on demand.
_KILLER = """
import os, signal, sys
sys.path.insert(0, sys.argv.pop(1))
from processor import pipeline
_parse = pipeline.Pipeline.parse
def parse(self, raw):
    if b"X-Test-Kill-Me: yes" in raw:
        os.kill(os.getpid(), signal.SIGKILL)
    return _parse(self, raw)
pipeline.Pipeline.parse = parse
from processor.cli import main
sys.exit(main(sys.argv[1:]))
"""


# The same, with the intake waiting for each read-ahead at the end of a batch:
# every batch after the first is marked in flight with the batch before it.
_KILLER_MARKED_AHEAD = _KILLER.replace("from processor.cli import main", """from processor.intake import imap
imap._ready = lambda future: (lambda: future.result()) if future is not None else None
from processor.cli import main""")


def _once_until_it_lives(cfg, killer: str, tries: int = 8) -> list[int]:
    """`once` run by ``killer`` again and again until a run ends (at most
    ``tries``): each run's exit code; the one that ends prints no traceback."""
    codes = []
    for _ in range(tries):
        p = subprocess.run([sys.executable, "-c", killer, str(ROOT), "--config", str(cfg), "once"],
                           capture_output=True, text=True, cwd=ROOT)
        codes.append(p.returncode)
        if p.returncode == 0:
            assert "Traceback" not in p.stdout + p.stderr
            break
    return codes


def cli(cfg, *args: str) -> subprocess.CompletedProcess:
    """`run.py --config cfg ARGS` as a real process."""
    return subprocess.run([sys.executable, str(ROOT / "run.py"), "--config", str(cfg), *args],
                          capture_output=True, text=True, cwd=ROOT)


def assert_clean(p: subprocess.CompletedProcess) -> None:
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-3000:]
    assert "Traceback" not in out, out[-3000:]


def db(url: str, sql: str, **params) -> list[tuple]:
    eng = create_engine(url)
    try:
        with eng.connect() as c:
            rows = [tuple(r) for r in c.execute(text(sql), params)]
    finally:
        eng.dispose()
    # JSON columns come back as text on SQLite
    return [tuple(json.loads(v) if isinstance(v, str) and v[:1] and v[:1] in "[{" and v[-1:] in "]}" else v for v in r)
            for r in rows]


def setup(tmp_path, imap=None, smtp=None, db_url=None, extra: str = ""):
    url = db_url or f"sqlite:///{tmp_path / 'cfg' / 'data' / 'processor.db'}"
    cfg = write_config(tmp_path / "cfg", imap=imap, smtp=smtp, db_url=url, extra=extra)
    return cfg, url


def fields_body(symptom: str = "VRRP 主备每 5 分钟切换一次") -> str:
    return (f"环境：S5720 核心交换机，双机 VRRP\n操作过程：升级补丁后重启备机\n现象：{symptom}\n"
            "日志：10:01:02 ERROR vrrp: state MASTER -> BACKUP\n"
            "尝试次数：3\n\n谢谢！\n")


# -- amplification by nesting -----------------------------------------------------

def test_nested_rfc822_bomb_costs_bounded_memory_and_storage(tmp_path, imap_server, smtp_server, db_url):
    """A 故障处理 mail of ~8.6 MB with 38 levels of message/rfc822 (it drove RSS
    to 1.7 GB, stored 170 MB of attachments and queued a 232 MB notice)."""
    cfg, url = setup(tmp_path, imap_server, smtp_server, db_url)
    bomb = nested_rfc822(38, payload=bytes(range(256)) * (6 * MB // 256))
    assert 8 * MB < len(bomb) < 9 * MB
    imap_server.append(bomb)
    imap_server.append(make_mail(subject="工单测试 炸弹后面的邮件", message_id="<behind-bomb@client.example>"))
    p = subprocess.run([sys.executable, "-c", _RSS, sys.executable, str(ROOT / "run.py"), "--config", str(cfg), "once"],
                       capture_output=True, text=True, cwd=ROOT)
    assert_clean(p)
    maxrss_mb = int(p.stdout.rsplit("MAXRSS", 1)[1]) / 1024
    print(f"peak RSS {maxrss_mb:.0f} MB")
    assert maxrss_mb < 700, f"peak RSS {maxrss_mb:.0f} MB"

    rows = db(url, "select status, rule, message_id, reason from messages order by id")
    assert [r[0] for r in rows] == ["processed", "processed"], rows
    assert rows[0][1] == "workorder" and rows[1][2] == "<behind-bomb@client.example>"
    # One attachment row (the outermost forwarded mail), within the per-mail limits.
    atts = db(url, "select filename, size, sha256 from attachments")
    assert len(atts) == 1, atts
    kept = sum(size for _n, size, sha in atts if sha)
    assert kept <= 25 * MB
    # Nothing stored or queued is a multiple of the mail.
    stored = db(url, "select coalesce(sum(size), 0) from raw_mails")[0][0]
    assert stored <= 2 * len(bomb) + 5 * MB, stored
    # (A mail without files is queued as its draft, which is the smaller.)
    sizes = [len(raw or draft) for (raw, draft) in db(url, "select raw, draft from outbox_content")]
    assert sizes and max(sizes) <= 10 * MB * 1.4 + 500_000, sizes
    # The 售前经理 got the approval request; the mail behind the bomb got its receipt.
    got = smtp_server.wait_for(len(sizes))
    assert any(ZHAO in m.rcpt_tos for m in got)
    assert any(m.header("In-Reply-To") == "<behind-bomb@client.example>" for m in got)


def test_nesting_beyond_the_limit_is_cut_and_says_so(tmp_path):
    """Small limits: deeper parts are ignored, big attachments are not kept,
    and the stored defects say which bound cut what."""
    cfg, url = setup(tmp_path, extra="[limits]\nmax_mime_depth = 6\nmax_attachment_size = 100000\n"
                                      "max_attachments_total = 150000\n")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.eml").write_bytes(nested_rfc822(10, payload=b"z" * 300_000, subject="工单测试 嵌套"))
    assert_clean(cli(cfg, "replay", "--no-send", str(tmp_path / "in")))
    ((status, defects),) = db(url, "select status, defects from messages")
    assert status == "processed"
    assert "邮件结构嵌套超过 6 层，更深的部分已忽略" in defects
    assert any("超过单个附件上限 100000 字节，内容未保留" in d for d in defects)


def test_deep_nesting_is_quarantined_with_what_happened(tmp_path, imap_server, smtp_server, db_url):
    """1,500 nested multiparts made the parser raise RecursionError and the
    mail was quarantined as "no From"."""
    cfg, url = setup(tmp_path, imap_server, smtp_server, db_url)
    imap_server.append(deep_multipart(1500))
    imap_server.append(make_mail(subject="工单测试 后面", message_id="<behind-deep@client.example>"))
    assert_clean(cli(cfg, "once"))
    rows = db(url, "select status, reason from messages order by id")
    assert [s for s, _ in rows] == ["quarantined", "processed"]
    assert "MIME 部分过多" in rows[0][1] and "From" not in rows[0][1]
    ((code, params, reason),) = db(url, "select code, params, reason from quarantine")
    assert code == "mime_too_many_parts"
    assert "From" not in reason and "上限 500 个" in reason
    listing = cli(cfg, "quarantine", "list")
    assert_clean(listing)
    assert "邮件包含的 MIME 部分过多" in listing.stdout


def test_parser_recursion_is_reported_not_raised(tmp_path, db_url):
    """With the part bound set very high the stdlib parser itself gives up
    (RecursionError): the mail is quarantined as too deep, headers kept."""
    cfg, url = setup(tmp_path, db_url=db_url, extra="[limits]\nmax_mime_parts = 100000\n")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "deep.eml").write_bytes(deep_multipart(3000))
    (tmp_path / "in" / "z.eml").write_bytes(make_mail(subject="工单测试 后面"))
    assert_clean(cli(cfg, "replay", "--no-send", str(tmp_path / "in")))
    rows = db(url, "select status, from_addr, subject from messages order by id")
    assert rows[0] == ("quarantined", ZHANG, "工单测试 深嵌套")
    assert rows[1][0] == "processed"
    ((code, reason),) = db(url, "select code, reason from quarantine")
    assert code == "mime_too_deep" and reason.startswith("邮件结构嵌套过深")


# -- NUL bytes ---------------------------------------------------------------------

def test_nul_bytes_without_from_are_quarantined_once(tmp_path, db_url):
    """On PostgreSQL this failed on every run (a traceback each time) and the
    mail was never quarantined: quarantining wrote the NULs it had failed on.
    Raw NULs come in through `replay` (Dovecot turns NUL into 0x80)."""
    cfg, url = setup(tmp_path, db_url=db_url)
    (tmp_path / "in").mkdir()
    raw = (b"To: tracking@company.example\r\nSubject: \x00\xe5\xb7\xa5\xe5\x8d\x95\x00\r\nX-Junk: a\x00b\r\n"
           b"Message-ID: <nul-1@client.example>\r\nContent-Type: text/plain; charset=\"utf-8\x00\"\r\n\r\n"
           b"body \x00 with \x00 NULs \xff\xfe\r\n")
    (tmp_path / "in" / "a.eml").write_bytes(raw)
    (tmp_path / "in" / "b.eml").write_bytes(make_mail(subject="工单测试 NUL 后面", message_id="<behind-nul@client.example>"))
    for _ in range(2):
        assert_clean(cli(cfg, "replay", "--no-send", str(tmp_path / "in")))
    rows = db(url, "select status, message_id, subject from messages order by id")
    assert rows[:2] == [("quarantined", "<nul-1@client.example>", "工单"), ("processed", "<behind-nul@client.example>",
                                                                           "工单测试 NUL 后面")]
    assert [r[0] for r in rows[2:]] == ["duplicate", "duplicate"]  # the second run: seen already
    ((code, headers, sha),) = db(url, "select code, headers, sha256 from quarantine")
    assert code == "no_from" and "\x00" not in headers and "X-Junk: ab" in headers
    # The raw bytes are kept as they came, NULs included.
    assert db(url, "select data from raw_mails where sha256 = :s", s=sha)[0][0] == raw


def test_encoded_nul_bytes_through_imap(tmp_path, imap_server, smtp_server, db_url):
    """NULs that survive IMAP: encoded words, base64 and quoted-printable text,
    RFC 2231 file names."""
    cfg, url = setup(tmp_path, imap_server, smtp_server, db_url)
    imap_server.append(
        b"Reply-To: =?utf-8?q?=00?= <x@y.example>\r\nTo: tracking@company.example\r\nSubject: =?utf-8?q?a=00b?=\r\n"
        b"Message-ID: <enc-nul@client.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nYQBi\r\n"
        b"--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n"
        b"Content-Disposition: attachment; filename*=utf-8''a%00b.txt\r\n\r\nx=00y\r\n--b--\r\n")
    imap_server.append(make_mail(subject="工单测试 后面", body="你好！", message_id="<behind-enc@client.example>"))
    assert_clean(cli(cfg, "once"))
    rows = db(url, "select status, subject, text from messages order by id")
    assert rows == [("quarantined", "ab", "ab"), ("processed", "工单测试 后面", "你好！")]


# -- lengths -----------------------------------------------------------------------

def test_long_values_are_cut_visibly_not_fatal(tmp_path, imap_server, smtp_server, db_url):
    """A 10,000-character project name (varchar(200) on PostgreSQL) and a
    100,000-character subject (echoed into a 2.5 MB reply)."""
    cfg, url = setup(tmp_path, imap_server, smtp_server, db_url)
    name = "超长项目" * 2500
    imap_server.append(long_mail(f"立项-{name}", "客户：某客户信息中心\n第一售前：张三\n第二售前：王五\n"
                                 "支持内容要求：核心网络改造的方案交流与测试环境搭建，11月底前完成POC\n\n李四\n",
                                 sender=LI, to=f"{ZHAO}, {SYSTEM}"))
    imap_server.append(long_mail("工单测试 " + "长" * 100_000, "你好"))
    assert_clean(cli(cfg, "once"))
    rows = db(url, "select status, subject, reason from messages order by id")
    assert [r[0] for r in rows] == ["processed", "processed"], rows
    assert all(len(subj) <= 500 and subj.endswith("…") for _s, subj, _r in rows)
    (project,) = db(url, "select name from projects")[0]
    assert len(project) <= 200 and project.endswith("…") and project.startswith("超长项目")
    sent = smtp_server.wait_for(2)
    receipt = next(m for m in sent if "工单测试" in (m.subject or ""))
    assert len(receipt.subject) < 700 and "…" in receipt.subject
    assert len(receipt.data) < 100_000
    assert all(len(m.data) < 200_000 for m in sent)


# -- replay ------------------------------------------------------------------------

def test_replay_applies_the_intake_size_limit(tmp_path, db_url):
    """A 30 MB mail went through `replay` whole."""
    cfg, url = setup(tmp_path, db_url=db_url)
    (tmp_path / "in").mkdir()
    line = base64.b64encode(b"\x00" * 57) + b"\r\n"
    big = make_mail(subject="工单测试 大邮件", message_id="<big@client.example>")
    big = big.replace(b"text/plain", b"application/octet-stream").replace(b"8bit", b"base64")
    big = big.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n" + line * (30 * MB // len(line))
    assert len(big) > 30 * MB
    (tmp_path / "in" / "a-big.eml").write_bytes(big)
    (tmp_path / "in" / "b-small.eml").write_bytes(make_mail(subject="工单测试 小邮件"))
    p = cli(cfg, "replay", "--no-send", str(tmp_path / "in"))
    assert_clean(p)
    rows = db(url, "select status, message_id, size, reason from messages order by id")
    assert rows[0][:3] == ("quarantined", "<big@client.example>", len(big))
    assert "邮件过大" in rows[0][3] and "上限 26214400 字节" in rows[0][3]
    assert rows[1][0] == "processed"
    ((code, params),) = db(url, "select code, params from quarantine")
    assert code == "too_large"
    assert db(url, "select max(size) from raw_mails")[0][0] < MB


# -- reused Message-ID ---------------------------------------------------------------

def test_reused_message_id_with_another_sender_and_body_is_a_new_mail(tmp_path, imap_server, smtp_server, db_url):
    cfg, url = setup(tmp_path, imap_server, smtp_server, db_url)
    mid = "<reused@client.example>"
    imap_server.append(make_mail(sender=ZHANG, subject="故障处理-华夏银行-VRRP切换", to=(ZHAO,), cc=(SYSTEM,),
                                 body=fields_body(), message_id=mid))
    assert_clean(cli(cfg, "once"))
    first = len(smtp_server.wait_for(1))
    # Another sender, another body, the same Message-ID: a new order.
    imap_server.append(make_mail(sender=WANG, sender_name="王五", subject="故障处理-东方电网-OSPF邻居中断", to=(ZHAO,),
                                 cc=(SYSTEM,), body=fields_body("OSPF 邻居反复中断"), message_id=mid))
    assert_clean(cli(cfg, "once"))
    tickets = db(url, "select number, project from tickets where kind = 'workorder' order by id")
    assert [p for _n, p in tickets] == ["华夏银行", "东方电网"]
    sent = smtp_server.wait_for(first + 1)[first:]
    ack = [m for m in sent if m.rcpt_tos == [WANG]]
    assert ack and "已登记" in ack[0].subject and tickets[1][0] in ack[0].subject
    reasons = [r for (r,) in db(url, "select reason from messages order by id")]
    assert "未做更改" not in reasons[1]
    # The same mail again (a journal copy: other headers, same sender and body) still changes nothing.
    copy = make_mail(sender=WANG, sender_name="王五", subject="故障处理-东方电网-OSPF邻居中断", to=(ZHAO,), cc=(SYSTEM,),
                     body=fields_body("OSPF 邻居反复中断"), message_id=mid, headers={"X-Journal": "1"})
    imap_server.append(copy)
    assert_clean(cli(cfg, "once"))
    assert len(db(url, "select id from tickets where kind = 'workorder'")) == 2
    assert "未做更改" in db(url, "select reason from messages order by id desc")[0][0]


# -- a mail the process dies on ------------------------------------------------------

def test_a_mail_that_kills_the_process_is_quarantined_after_n_deaths(tmp_path, imap_server, smtp_server, db_url):
    """The process is SIGKILLed whenever it starts on one mail (as the OOM
    killer did): each restart finds the in-flight marker; after
    limits.max_crashes deaths on that mail alone it is quarantined without
    being parsed, and the mails around it go through."""
    cfg, url = setup(tmp_path, imap_server, smtp_server, db_url)
    imap_server.append(make_mail(subject="工单测试 前", message_id="<before@client.example>"))
    imap_server.append(make_mail(subject="工单测试 毒", message_id="<poison@client.example>",
                                 headers={"X-Test-Kill-Me": "yes"}))
    imap_server.append(make_mail(subject="工单测试 后", message_id="<after@client.example>"))
    codes = _once_until_it_lives(cfg, _KILLER)
    # Killed in the batch, then three times on the poison alone; then done.
    assert codes == [-9, -9, -9, -9, 0], codes
    rows = sorted(db(url, "select coalesce(message_id, ''), status from messages"))
    assert rows == [("", "quarantined"), ("<after@client.example>", "processed"),
                    ("<before@client.example>", "processed")], rows
    ((code, params, sha),) = db(url, "select code, params, sha256 from quarantine")
    assert code == "crashed_repeatedly"
    assert b"X-Test-Kill-Me" in db(url, "select data from raw_mails where sha256 = :s", s=sha)[0][0]
    assert db(url, "select count(*) from in_flight") == [(0,)]
    # Receipts for the two good mails, none for the poison; and a later run is quiet.
    answered = {m.header("In-Reply-To") for m in smtp_server.wait_for(2)}
    assert answered == {"<before@client.example>", "<after@client.example>"}
    assert_clean(cli(cfg, "once"))
    assert len(db(url, "select id from messages")) == 3


def test_a_mail_that_kills_the_process_in_a_batch_marked_ahead_is_quarantined_too(tmp_path, imap_server,
                                                                                    smtp_server, db_url):
    """The poison is in the second batch, whose marks were written with the
    first: the process dies on it, the next one finds the marks (the batch
    then goes one mail at a time), and after limits.max_crashes deaths on it
    alone it is quarantined; the mail beside it goes through."""
    url = db_url or f"sqlite:///{tmp_path / 'cfg' / 'data' / 'processor.db'}"
    cfg = write_config(tmp_path / "cfg", imap=imap_server, smtp=smtp_server, db_url=url, account={"fetch_batch": 2})
    for name in ("a", "b"):
        imap_server.append(make_mail(subject=f"工单测试 {name}", message_id=f"<first-{name}@client.example>"))
    imap_server.append(make_mail(subject="工单测试 毒", message_id="<poison@client.example>",
                                 headers={"X-Test-Kill-Me": "yes"}))
    imap_server.append(make_mail(subject="工单测试 后", message_id="<after@client.example>"))
    codes = _once_until_it_lives(cfg, _KILLER_MARKED_AHEAD)
    # Killed in the marked-ahead batch, then three times on the poison alone; then done.
    assert codes == [-9, -9, -9, -9, 0], codes
    rows = sorted(db(url, "select coalesce(message_id, ''), status from messages"))
    assert rows == [("", "quarantined"), ("<after@client.example>", "processed"),
                    ("<first-a@client.example>", "processed"), ("<first-b@client.example>", "processed")], rows
    assert [r[0] for r in db(url, "select code from quarantine")] == ["crashed_repeatedly"]
    assert db(url, "select count(*) from in_flight") == [(0,)]
    answered = {m.header("In-Reply-To") for m in smtp_server.wait_for(3)}
    assert answered == {"<first-a@client.example>", "<first-b@client.example>", "<after@client.example>"}
