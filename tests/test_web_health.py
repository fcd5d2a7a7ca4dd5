"""/healthz against a real ``run.py serve`` running the web view inside it
(``[web] in_daemon``): 200 while Dovecot answers, 503 when Dovecot is
stopped (the daemon's heartbeat says the poll failed), 200 again after it
restarts. Meanwhile the daemon mails the admin once that intake stalled and
once that it recovered."""
from __future__ import annotations

import socket
import time

import httpx

from support import start_serve, stop_serve, write_config


ADMIN = "admin@company.example"
STALLED = "告警：工单系统收信停滞"
RECOVERED = "已恢复：工单系统收信恢复正常"


def _alerts(smtp) -> list[str]:
    return [m.subject for m in smtp.messages if ADMIN in (m.header("To") or "")]


def _wait_mail(smtp, subject: str, rounds: int = 600):
    for _ in range(rounds):
        got = [m for m in smtp.messages if m.subject == subject]
        if got:
            return got[0]
        time.sleep(0.1)
    raise AssertionError(f"no mail {subject!r}; got {_alerts(smtp)}")


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
                       extra=f'\n[web]\nlisten = "127.0.0.1:{port}"\nin_daemon = true\ncookie_secure = false\n'
                             f'alert_to = ["{ADMIN}"]\nstall_minutes = 0.05\n')
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
        alert = _wait_mail(smtp_server, STALLED)
        assert "邮箱 support" in alert.text and "没有成功收取邮件" in alert.text and "/healthz" in alert.text
        imap_server.start()
        again = _wait_status(url, 200)
        assert again["imap"]["support"]["connected"] is True and again["last_poll_age_seconds"] is not None
        _wait_mail(smtp_server, RECOVERED)
        time.sleep(3)  # more alert checks run: nothing more is mailed
        assert _alerts(smtp_server) == [STALLED, RECOVERED]
    finally:
        stop_serve(proc)
