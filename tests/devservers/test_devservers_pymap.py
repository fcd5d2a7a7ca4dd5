"""pymap (pure-Python IMAP server) as the non-Dovecot fallback."""

from __future__ import annotations

import pytest

from processor.devservers.imap import PymapServer, pymap_available

pytestmark = pytest.mark.skipif(not pymap_available(), reason="pip install pymap")

GBK_MAIL = ("Subject: 测试\r\nFrom: a@example.cn\r\nContent-Type: text/plain; charset=GBK\r\n\r\n"
            "中文正文\r\n").encode("gbk")


def test_pymap_dict_append_fetch(tmp_path):
    with PymapServer(tmp_path) as srv:
        uid = srv.append(GBK_MAIL)
        assert srv.fetch_all("INBOX") == {uid: GBK_MAIL}  # byte-exact
        c = srv.connect()
        try:
            caps = set(c.capabilities())
            assert {b"IDLE", b"MOVE", b"UIDPLUS", b"ID"} <= caps
        finally:
            c.logout()
        srv.append_many([GBK_MAIL] * 50, folder="Other")
        assert len(srv.folder_uids("Other")) == 50


def test_pymap_maildir_survives_restart(tmp_path):
    with PymapServer(tmp_path, backend="maildir") as srv:
        uid = srv.append(GBK_MAIL)
        port = srv.port
        srv.restart()
        assert srv.port == port
        body = srv.fetch_all("INBOX")[uid]
        # pymap's maildir backend stores via Python's mailbox module: LF line endings
        assert body.replace(b"\r\n", b"\n") == GBK_MAIL.replace(b"\r\n", b"\n")
