"""/healthz against a real ``run.py serve`` running the web view inside it
(``[web] in_daemon``): 200 while Dovecot answers, 503 when Dovecot is
stopped (the daemon's heartbeat says the poll failed), 200 again after it
restarts."""
from __future__ import annotations

import socket
import time

import httpx

from support import start_serve, stop_serve, write_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_status(url: str, want: int, rounds: int = 600) -> dict:
    """Poll /healthz until it answers ``want`` (bounded); returns its JSON."""
    last = None
    for _ in range(rounds):
        try:
            r = httpx.get(url, timeout=5)
            last = (r.status_code, r.json())
            if r.status_code == want:
                return r.json()
        except httpx.HTTPError as e:
            last = repr(e)
        time.sleep(0.1)
    raise AssertionError(f"/healthz never answered {want}; last: {last}")


def test_healthz_follows_dovecot_down_and_up(tmp_path, imap_server, smtp_server):
    port = _free_port()
    cfg = write_config(tmp_path, imap=imap_server, smtp=smtp_server, account={"idle": False},
                       extra=f'\n[web]\nlisten = "127.0.0.1:{port}"\nin_daemon = true\ncookie_secure = false\n')
    proc = start_serve(cfg, tmp_path / "serve.log")
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        up = _wait_status(url, 200)
        assert up["store"] is True and up["imap"]["support"]["connected"] is True
        assert up["outbox_backlog"] == 0 and up["quarantine_open"] == 0
        imap_server.stop()
        down = _wait_status(url, 503)
        assert down["imap"]["support"]["connected"] is False and down["imap"]["support"]["error"]
        assert down["store"] is True
        imap_server.start()
        again = _wait_status(url, 200)
        assert again["imap"]["support"]["connected"] is True and again["last_poll_age_seconds"] is not None
    finally:
        stop_serve(proc)
