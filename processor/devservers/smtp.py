"""A real SMTP capture server (aiosmtpd) for tests, the demo and benchmarks.

In-process (a thread running an asyncio loop)::

    srv = CaptureSMTPServer(); srv.start()
    ... send mail to srv.host:srv.port ...
    msgs = srv.wait_for(3)
    srv.set_fail("tempfail")   # 451 on DATA from now on
    srv.set_fail("down")       # listener closed, port kept for a later start()
    srv.script_rcpt("a@x.example", "451 4.2.1 try later")   # one RCPT refused, then accepted
    srv.script_rcpt("b@x.example", then="550 5.1.1 no such user")  # refused for good
    srv.rcpt_log               # [(address, reply code)] of every RCPT TO answered
    CaptureSMTPServer(xoauth2=lambda user, token: ok)   # AUTH XOAUTH2 required, token checked
    CaptureSMTPServer(eight_bit_mime=False)   # EHLO without 8BITMIME, as some old relays

As a separate process (no GIL contention with the code under test); each
message is appended to ``<out>/messages.bin``, indexed in ``<out>/envelopes.jsonl``::

    python -m processor.devservers.smtp --port 0 --out /tmp/outbox
    # prints "host port" once ready
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import json
import os
import signal
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any, Sequence

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from .. import eventloop
from ._net import LOOPBACK, wait_port_closed

__all__ = ["Captured", "CaptureSMTPServer", "SMTPSinkProcess", "load_captured", "FAIL_MODES"]

#: Accepted values for ``fail_mode`` / :meth:`CaptureSMTPServer.set_fail`.
FAIL_MODES = (
    None,
    "tempfail",        # 451 4.3.0 in reply to DATA (after the message was sent)
    "tempfail_rcpt",   # 451 4.3.0 in reply to every RCPT TO
    "permfail",        # 554 5.6.0 in reply to DATA
    "reject_rcpt",     # 550 5.1.1 in reply to every RCPT TO
    "drop_after_data", # the message is captured, then the connection drops before the reply
    "down",            # listener closed (connections refused), port kept
)

DATA_SIZE_LIMIT = 200 * 1024 * 1024


# --------------------------------------------------------------------------
# captured message
# --------------------------------------------------------------------------

@dataclass
class Captured:
    """One message as received: envelope + raw DATA bytes (CRLF, dot-unstuffed)."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    received_at: float = field(default_factory=time.time)
    mail_options: list[str] = field(default_factory=list)  # MAIL FROM parameters: BODY=8BITMIME, SMTPUTF8
    _parsed: EmailMessage | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def message(self) -> EmailMessage:
        """Parsed with ``email.policy.default`` (cached)."""
        if self._parsed is None:
            self._parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        return self._parsed

    def header(self, name: str, default: str | None = None) -> str | None:
        """Decoded header value (str) or *default*."""
        value = self.message.get(name)
        return default if value is None else str(value)

    @property
    def subject(self) -> str | None:
        return self.header("Subject")

    @property
    def message_id(self) -> str | None:
        value = self.header("Message-ID")
        return value.strip() if value else None

    def _body(self, subtype: str) -> str | None:
        part = self.message.get_body(preferencelist=(subtype,))
        if part is None:
            return None
        return part.get_content().replace("\r\n", "\n")  # as a mail client shows it (8bit parts keep CRLF)

    @property
    def text(self) -> str | None:
        """Decoded text/plain body (charset handled), or None."""
        return self._body("plain")

    @property
    def html(self) -> str | None:
        """Decoded text/html body, or None."""
        return self._body("html")

    @property
    def attachments(self) -> list[EmailMessage]:
        return list(self.message.iter_attachments())


def _message_id_of(data: bytes) -> str | None:
    hdrs: Message = BytesHeaderParser(policy=email.policy.default).parsebytes(data)
    value = hdrs.get("Message-ID")
    return str(value).strip() if value is not None else None


# --------------------------------------------------------------------------
# handler shared by the threaded server and the CLI process
# --------------------------------------------------------------------------

class _Handler:
    def __init__(self, sink, fail_mode: str | None = None) -> None:
        self.sink = sink              # callable(Captured)
        self.fail_mode = fail_mode
        self.xoauth2_log: list[tuple[str, bool]] = []  # (user, accepted) of every AUTH XOAUTH2 (not auth_*: a mechanism)
        # Per-recipient scripts (lower-cased address -> [replies to give in
        # order], then the sticky reply; None = accept).
        self.rcpt_scripts: dict[str, tuple[list[str | None], str | None]] = {}
        self.rcpt_log: list[tuple[str, int]] = []

    def _scripted(self, address: str) -> str | None:
        script = self.rcpt_scripts.get(address.lower())
        if script is None:
            return None
        replies, then = script
        return replies.pop(0) if replies else then

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        reply = self._scripted(address)
        mode = self.fail_mode
        if reply is None and mode == "tempfail_rcpt":
            reply = "451 4.3.0 Temporary failure (test server tempfail_rcpt)"
        if reply is None and mode == "reject_rcpt":
            reply = "550 5.1.1 Mailbox unavailable (test server reject_rcpt)"
        if reply is not None and not reply.startswith("2"):
            self.rcpt_log.append((address, int(reply[:3])))
            return reply
        self.rcpt_log.append((address, 250))
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        mode = self.fail_mode
        if mode == "tempfail":
            return "451 4.3.0 Temporary failure (test server tempfail)"
        if mode == "permfail":
            return "554 5.6.0 Transaction failed (test server permfail)"
        data = envelope.original_content if envelope.original_content is not None else envelope.content
        if isinstance(data, str):  # only with decode_data=True, which we never set
            data = data.encode("utf-8", "surrogateescape")
        self.sink(Captured(envelope.mail_from or "", list(envelope.rcpt_tos), bytes(data), time.time(),
                           mail_options=list(envelope.mail_options)))
        if mode == "drop_after_data" and server.transport is not None:
            server.transport.abort()  # accepted, but the client never hears it
        return "250 2.0.0 OK queued"


class _XOAuth2Handler(_Handler):
    """Also speaks AUTH XOAUTH2 (the SASL form of OAuth2 bearer tokens that
    Exchange Online and Gmail use): ``check(user, token)`` says whether a
    token is good. A refusal is the JSON error challenge then 535, as those
    servers answer."""

    def __init__(self, sink, fail_mode: str | None, check) -> None:
        super().__init__(sink, fail_mode)
        self.check = check

    async def auth_XOAUTH2(self, server, args):  # noqa: N802  (aiosmtpd: handler-provided AUTH mechanism)
        import base64

        from aiosmtpd.smtp import MISSING, AuthResult

        if len(args) == 1:
            raw = await server.challenge_auth("")
            if raw is MISSING:
                return AuthResult(success=False)
        else:
            try:
                raw = base64.b64decode(args[1], validate=True)
            except ValueError:
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        fields = dict(f.split("=", 1) for f in raw.decode("utf-8", "replace").split("\x01") if "=" in f)
        user, token = fields.get("user", ""), fields.get("auth", "").removeprefix("Bearer ")
        ok = bool(user and token) and bool(self.check(user, token))
        self.xoauth2_log.append((user, ok))
        if ok:
            return AuthResult(success=True, auth_data=user)
        await server.challenge_auth(json.dumps({"status": "401", "schemes": "bearer", "scope": "mail"}))
        return AuthResult(success=False, handled=False, message="535 5.7.3 Authentication unsuccessful")


_SMTP_KW: dict[str, Any] = dict(
    decode_data=False,
    enable_SMTPUTF8=True,
    data_size_limit=DATA_SIZE_LIMIT,
    hostname="devservers.localhost",
    ident="devservers capture SMTP",
)


class _Controller(Controller):
    """aiosmtpd Controller that supports port 0 and drops live sessions on stop."""

    def __init__(self, handler, hostname: str, port: int, **kw) -> None:
        kw.setdefault("ready_timeout", 30.0)
        super().__init__(handler, hostname=hostname, port=port, **kw)
        self.sessions: "weakref.WeakSet[SMTP]" = weakref.WeakSet()

    def factory(self):
        smtp = super().factory()
        self.sessions.add(smtp)
        return smtp

    def _create_server(self):
        async def create():
            server = await self.loop.create_server(
                self._factory_invoker, host=self.hostname, port=self.port,
                ssl=self.ssl_context, reuse_address=True)
            self.port = server.sockets[0].getsockname()[1]
            return server
        return create()

    def _abort_sessions(self) -> None:
        for smtp in list(self.sessions):
            transport = getattr(smtp, "transport", None)
            if transport is not None:
                transport.abort()
        self.sessions.clear()

    def stop(self, no_assert: bool = False) -> None:
        if self._thread is not None and self.loop.is_running():
            done = threading.Event()

            def close_all() -> None:
                if self.server is not None:
                    self.server.close()
                self._abort_sessions()
                done.set()

            self.loop.call_soon_threadsafe(close_all)
            done.wait(5)
        super().stop(no_assert=no_assert)


# --------------------------------------------------------------------------
# in-process server
# --------------------------------------------------------------------------

class CaptureSMTPServer:
    """aiosmtpd capture server on a loopback port, running in a thread."""

    def __init__(self, host: str = LOOPBACK, port: int | None = None, fail_mode: str | None = None,
                 xoauth2=None, eight_bit_mime: bool = True) -> None:
        if fail_mode not in FAIL_MODES:
            raise ValueError(f"fail_mode must be one of {FAIL_MODES}")
        self.host = host
        self.port: int = port or 0
        self.messages: list[Captured] = []
        self._cond = threading.Condition()
        mode = None if fail_mode == "down" else fail_mode
        self._xoauth2 = xoauth2 is not None
        self._handler = _XOAuth2Handler(self._add, mode, xoauth2) if xoauth2 is not None else _Handler(self._add, mode)
        if not eight_bit_mime:
            async def handle_EHLO(server, session, envelope, hostname, responses):  # noqa: N802 (aiosmtpd's 5-argument hook)
                session.host_name = hostname
                return [r for r in responses if r[4:].upper() != "8BITMIME"]
            self._handler.handle_EHLO = handle_EHLO
        self._controller: _Controller | None = None
        self._down = fail_mode == "down"
        self._lock = threading.RLock()

    # ---- capture -----------------------------------------------------------
    def _add(self, captured: Captured) -> None:
        with self._cond:
            self.messages.append(captured)
            self._cond.notify_all()

    def wait_for(self, n: int, timeout: float = 10) -> list[Captured]:
        """Block until at least *n* messages are captured; returns a snapshot."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.messages) < n:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"expected at least {n} captured message(s) within {timeout}s, "
                        f"got {len(self.messages)}")
                self._cond.wait(remaining)
            return list(self.messages)

    def clear(self) -> None:
        with self._cond:
            self.messages.clear()

    def by_message_id(self) -> dict[str, list[Captured]]:
        """{Message-ID header value (with <>) : captured messages}; no-ID mails under ''."""
        out: dict[str, list[Captured]] = {}
        with self._cond:
            snapshot = list(self.messages)
        for m in snapshot:
            out.setdefault(_message_id_of(m.data) or "", []).append(m)
        return out

    def __len__(self) -> int:
        return len(self.messages)

    # ---- per-recipient answers --------------------------------------------
    def script_rcpt(self, address: str, *replies: str | None, then: str | None = None) -> None:
        """Answer RCPT TO:<address> with *replies* in turn (full SMTP reply
        lines such as ``"451 4.2.1 mailbox busy"``; None accepts), and with
        *then* once they are used up (None = accept). Other recipients are
        unaffected; the fail mode still applies to unscripted answers."""
        for r in (*replies, then):
            if r is not None and not (len(r) >= 3 and r[:3].isdigit() and r[0] in "245"):
                raise ValueError(f"not an SMTP reply: {r!r}")
        self._handler.rcpt_scripts[address.lower()] = (list(replies), then)

    def clear_scripts(self) -> None:
        self._handler.rcpt_scripts.clear()

    @property
    def auth_log(self) -> list[tuple[str, bool]]:
        """(user, accepted) of every AUTH XOAUTH2, in order."""
        return list(getattr(self._handler, "xoauth2_log", []))

    @property
    def rcpt_log(self) -> list[tuple[str, int]]:
        """(address, reply code) of every RCPT TO answered, in order."""
        return list(self._handler.rcpt_log)

    # ---- lifecycle ---------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._controller is not None

    @property
    def fail_mode(self) -> str | None:
        return "down" if self._down else self._handler.fail_mode

    def start(self) -> None:
        with self._lock:
            self._down = False
            if self._controller is not None:
                return
            kw = dict(_SMTP_KW)
            kw["server_hostname"] = kw.pop("hostname")
            if self._xoauth2:  # sign-in required, over plain TCP (loopback only)
                kw.update(auth_required=True, auth_require_tls=False, auth_exclude_mechanism=["LOGIN", "PLAIN"])
            ctl = _Controller(self._handler, self.host, self.port, **kw)
            ctl.start()
            self._controller = ctl
            self.port = ctl.port  # the real port when 0 was requested

    def stop(self) -> None:
        """Close the listener and all sessions; returns once the port refuses connections."""
        with self._lock:
            ctl, self._controller = self._controller, None
            if ctl is not None:
                ctl.stop()
                wait_port_closed(self.host, self.port, timeout=10)

    def restart(self) -> None:
        with self._lock:
            self.stop()
            self.start()

    def set_fail(self, mode: str | None) -> None:
        """None = accept; "tempfail"/"tempfail_rcpt"/"permfail"/"reject_rcpt" =
        SMTP error replies; "drop_after_data" = capture, then drop the
        connection before replying; "down" = stop() (port kept for a later start()).
        Leaving "down" for any other mode starts the server again."""
        if mode not in FAIL_MODES:
            raise ValueError(f"fail mode must be one of {FAIL_MODES}")
        with self._lock:
            if mode == "down":
                self.stop()
                self._down = True
                return
            self._handler.fail_mode = mode
            if self._down:
                self.start()

    def __enter__(self) -> "CaptureSMTPServer":
        if not self._down:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (f"<CaptureSMTPServer {self.host}:{self.port} mode={self.fail_mode} "
                f"captured={len(self.messages)}>")


# --------------------------------------------------------------------------
# separate-process sink
# --------------------------------------------------------------------------

class _DirSink:
    """Appends each message to <out>/messages.bin and a line with its offset
    and length to <out>/envelopes.jsonl. One append-only file instead of a
    file per message: creating a file costs about a millisecond on some
    filesystems, which would make the sink, not the code under test, the
    bottleneck of a benchmark."""

    def __init__(self, out: Path) -> None:
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self._data = open(out / "messages.bin", "ab")
        self._index = open(out / "envelopes.jsonl", "a", encoding="utf-8")

    def __call__(self, c: Captured) -> None:
        offset = self._data.tell()
        self._data.write(c.data)
        self._data.flush()
        self._index.write(json.dumps({"offset": offset, "length": len(c.data), "mail_from": c.mail_from,
                                      "rcpt_tos": c.rcpt_tos, "received_at": c.received_at}, ensure_ascii=False) + "\n")
        self._index.flush()


def load_captured(out_dir: Path | str) -> list[Captured]:
    """Read back what ``python -m processor.devservers.smtp --out DIR`` wrote."""
    out = Path(out_dir)
    index = out / "envelopes.jsonl"
    result: list[Captured] = []
    if not index.exists():
        return result
    for line in index.read_text("utf-8").splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # partially written last line
            continue
        with open(out / "messages.bin", "rb") as f:
            f.seek(rec["offset"])
            data = f.read(rec["length"])
        if len(data) == rec["length"]:
            result.append(Captured(rec["mail_from"], rec["rcpt_tos"], data, rec["received_at"]))
    return result


class SMTPSinkProcess:
    """Runs ``python -m processor.devservers.smtp`` as a child process."""

    def __init__(self, out_dir: Path | str, host: str = LOOPBACK, port: int | None = None,
                 fail_mode: str | None = None, loop: str = "asyncio") -> None:
        self.out_dir = Path(out_dir)
        self.host = host
        self.port: int = port or 0
        self.fail_mode = fail_mode
        self.loop = loop
        self._proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        cmd = [sys.executable, "-m", "processor.devservers.smtp", "--host", self.host,
               "--port", str(self.port), "--out", str(self.out_dir), "--loop", self.loop]
        if self.fail_mode:
            cmd += ["--fail-mode", self.fail_mode]
        env = dict(os.environ)
        # make the package importable even when the caller's cwd is elsewhere
        pkg_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                      env=env, text=True, start_new_session=True)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()  # "host port" once ready
        if not line:
            rc = self._proc.wait(timeout=timeout)
            self._proc = None
            raise RuntimeError(f"SMTP sink process exited with {rc} before becoming ready")
        self.port = int(line.split()[1])

    @property
    def pid(self) -> int | None:
        """The sink process's id while it runs (the benchmarks read its CPU time)."""
        return self._proc.pid if self._proc is not None else None

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        wait_port_closed(self.host, self.port, timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def messages(self) -> list[Captured]:
        return load_captured(self.out_dir)

    def count(self) -> int:
        return sum(1 for _ in self.out_dir.glob("*.eml"))

    def wait_for(self, n: int, timeout: float = 10) -> list[Captured]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msgs = self.messages()
            if len(msgs) >= n:
                return msgs
            time.sleep(0.05)
        raise TimeoutError(f"expected {n} message(s), have {len(self.messages())}")

    def __enter__(self) -> "SMTPSinkProcess":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m processor.devservers.smtp",
                                 description="SMTP capture server writing each message to a file.")
    ap.add_argument("--host", default=LOOPBACK)
    ap.add_argument("--port", type=int, default=0, help="0 = pick a free port (printed)")
    ap.add_argument("--out", required=True, type=Path, help="directory for messages.bin + envelopes.jsonl")
    ap.add_argument("--fail-mode", default=None, choices=[m for m in FAIL_MODES if m and m != "down"])
    ap.add_argument("--loop", default="asyncio", choices=eventloop.LOOPS,
                    help="the event loop (uvloop: a cheaper server on the benchmarks' shared cores)")
    args = ap.parse_args(argv)

    sink = _DirSink(args.out)
    handler = _Handler(sink, args.fail_mode)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: SMTP(handler, **_SMTP_KW),
                                          host=args.host, port=args.port, reuse_address=True)
        port = server.sockets[0].getsockname()[1]
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print(f"{args.host} {port}", flush=True)
        await stop.wait()
        server.close()
        await server.wait_closed()

    eventloop.run(run(), args.loop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
