"""The local Dovecot used by tests/demo/benchmarks really behaves like an IMAP server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from imapclient import IMAPClient

from processor.devservers._net import port_accepts
from processor.devservers.imap import DovecotServer, dovecot_available, start_local_imap

GBK_MAIL = (
    "From: =?GBK?B?1cXI/Q==?= <zhangsan@example.cn>\r\n"
    "To: support@example.com\r\n"
    "Subject: 服务器故障 工单\r\n"
    "Message-ID: <gbk-1@example.cn>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=GBK\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "您好，我们的服务器无法启动，请尽快处理。\r\n"
).encode("gbk")


def small_mail(i: int) -> bytes:
    return (f"From: user{i}@example.com\r\nTo: support@example.com\r\nSubject: ticket {i}\r\n"
            f"Message-ID: <{i}.bulk@example.com>\r\n\r\nbody {i}\r\n").encode()


def _listening_ports_of_group(pgid: int) -> set[int]:
    """TCP ports in LISTEN state owned by any process of process group *pgid* (Linux)."""
    inodes: set[str] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat[stat.rfind(")") + 2:].split()[2]) != pgid:
                continue
            for fd in (entry / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except (OSError, ValueError):
            continue
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A = LISTEN
                ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def test_dovecot_is_installed():
    assert dovecot_available(), "apt-get install dovecot-imapd"


def test_login_and_capabilities(imap_server: DovecotServer):
    c = IMAPClient(imap_server.host, imap_server.port, ssl=False, timeout=30)
    try:
        c.login(imap_server.user, imap_server.password)
        caps = set(c.capabilities())
        for cap in (b"IDLE", b"MOVE", b"UIDPLUS", b"ID", b"MULTIAPPEND"):
            assert cap in caps, caps
        assert c.id_()  # server answers ID
    finally:
        c.logout()
    assert imap_server.host == "127.0.0.1"


def test_wrong_password_rejected(imap_server: DovecotServer):
    c = IMAPClient(imap_server.host, imap_server.port, ssl=False, timeout=30)
    try:
        with pytest.raises(IMAPClient.Error):
            c.login(imap_server.user, "wrong")
    finally:
        c.shutdown()


def test_only_the_imap_port_is_listening(imap_server: DovecotServer):
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs Linux /proc")
    assert _listening_ports_of_group(imap_server.pid) == {imap_server.port}


def test_append_fetch_roundtrip_gbk_bytes_unchanged(imap_server: DovecotServer):
    uid = imap_server.append(GBK_MAIL)
    assert imap_server.folder_uids() == [uid]
    assert imap_server.fetch_all("INBOX") == {uid: GBK_MAIL}
    # also readable through a plain client, byte for byte
    c = imap_server.connect()
    try:
        c.select_folder("INBOX", readonly=True)
        assert c.fetch([uid], [b"BODY.PEEK[]"])[uid][b"BODY[]"] == GBK_MAIL
    finally:
        c.logout()
    # stored as a Maildir file tests can inspect
    files = list((imap_server.maildir / "cur").iterdir()) + list((imap_server.maildir / "new").iterdir())
    assert len(files) == 1


def test_append_creates_folder_and_sets_flags(imap_server: DovecotServer):
    uid = imap_server.append(small_mail(1), folder="Tickets.Done", flags=[r"\Seen"])
    assert "Tickets.Done" in imap_server.list_folders()
    assert imap_server.folder_uids("Tickets.Done") == [uid]
    assert b"\\Seen" in imap_server.fetch_flags("Tickets.Done")[uid]
    assert imap_server.append(small_mail(2), folder="Tickets.Done") == uid + 1


def test_idle_sees_append_from_other_connection(imap_server: DovecotServer):
    watcher = imap_server.connect()
    try:
        watcher.select_folder("INBOX")
        watcher.idle()
        imap_server.append(small_mail(1))
        seen = []
        deadline = time.monotonic() + 10  # generous: CI machines are noisy
        while time.monotonic() < deadline:
            responses = watcher.idle_check(timeout=1)
            seen.extend(responses)
            if any(r[1:2] == (b"EXISTS",) and r[0] >= 1 for r in responses):
                break
        watcher.idle_done()
        assert any(r[1:2] == (b"EXISTS",) for r in seen), seen
    finally:
        watcher.logout()


def test_move_between_folders(imap_server: DovecotServer):
    uid = imap_server.append(small_mail(1))
    imap_server.ensure_folder("Archive")
    c = imap_server.connect()
    try:
        c.select_folder("INBOX")
        c.move([uid], "Archive")
    finally:
        c.logout()
    assert imap_server.folder_uids("INBOX") == []
    assert len(imap_server.folder_uids("Archive")) == 1


def test_restart_keeps_port_and_data(imap_server: DovecotServer):
    uid = imap_server.append(GBK_MAIL)
    port = imap_server.port
    imap_server.restart()
    assert imap_server.port == port
    assert imap_server.fetch_all("INBOX") == {uid: GBK_MAIL}
    # UIDs continue (same UIDVALIDITY / mailbox state)
    assert imap_server.append(small_mail(2)) == uid + 1


def test_stop_closes_port_and_kill_is_abrupt(imap_server: DovecotServer):
    uid = imap_server.append(small_mail(1))
    port = imap_server.port
    imap_server.stop()
    assert not port_accepts(imap_server.host, port)
    imap_server.start()
    # an open session is cut by kill()
    c = imap_server.connect()
    c.select_folder("INBOX")
    imap_server.kill()
    assert not imap_server.running
    assert not port_accepts(imap_server.host, port)
    with pytest.raises((OSError, IMAPClient.Error, IMAPClient.AbortError)):
        c.noop()
    c.shutdown()
    imap_server.start()
    assert imap_server.port == port
    assert imap_server.folder_uids() == [uid]


def test_bulk_load_5000(imap_server: DovecotServer):
    mails = [small_mail(i) for i in range(5000)]
    imap_server.append_many(mails)
    uids = imap_server.folder_uids()
    assert len(uids) == 5000
    # UIDs follow the input order
    c = imap_server.connect()
    try:
        c.select_folder("INBOX", readonly=True)
        got = c.fetch([uids[0], uids[-1]], [b"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
        assert b"<0.bulk@example.com>" in got[uids[0]][b"BODY[HEADER.FIELDS (MESSAGE-ID)]"]
        assert b"<4999.bulk@example.com>" in got[uids[-1]][b"BODY[HEADER.FIELDS (MESSAGE-ID)]"]
    finally:
        c.logout()
    # regular APPEND afterwards continues the UID sequence
    assert imap_server.append(small_mail(5000)) == uids[-1] + 1


def test_bulk_load_imap_method_and_flags(imap_server: DovecotServer):
    imap_server.append_many([small_mail(i) for i in range(300)], folder="Bulk", method="imap")
    imap_server.append_many([small_mail(i) for i in range(20)], folder="Seen", flags=[r"\Seen"])
    assert len(imap_server.folder_uids("Bulk")) == 300
    flags = imap_server.fetch_flags("Seen")
    assert len(flags) == 20 and all(b"\\Seen" in f for f in flags.values())


def test_fixed_port_and_context_manager(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with DovecotServer(tmp_path / "d", user="alice", password="pw", port=port) as srv:
        assert srv.port == port
        assert srv.append(small_mail(1)) == 1
    assert not port_accepts("127.0.0.1", port)


def test_two_servers_side_by_side(tmp_path):
    a = start_local_imap(tmp_path / "a")
    try:
        b = start_local_imap(tmp_path / "b")
        try:
            assert isinstance(a, DovecotServer) and isinstance(b, DovecotServer)
            assert a.port != b.port
            a.append(small_mail(1))
            assert b.folder_uids() == []
        finally:
            b.close()
    finally:
        a.close()


def test_cli_runs_in_foreground(tmp_path):
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "processor.devservers.imap", "--workdir", str(tmp_path / "cli")],
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline().split()
        host, port, user, password = line[0], int(line[1]), line[2], line[3]
        c = IMAPClient(host, port, ssl=False, timeout=30)
        c.login(user, password)
        c.logout()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert not port_accepts(host, port)
