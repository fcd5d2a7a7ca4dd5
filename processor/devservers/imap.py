"""Real local IMAP servers for tests, the demo and benchmarks.

Nothing here is mocked at the protocol level: :class:`DovecotServer` runs the
system's Dovecot binary with a self-contained configuration in a private
directory, :class:`PymapServer` runs the pure-Python ``pymap`` server in a
subprocess.  Both listen on a free loopback port only.

Typical use::

    with DovecotServer(tmp_path) as srv:
        uid = srv.append(raw_bytes)
        client = srv.connect()          # logged-in imapclient.IMAPClient

Command line (foreground, prints ``host port user password`` once ready)::

    python -m processor.devservers.imap --workdir /tmp/demo-imap [--port N]
"""

from __future__ import annotations

import argparse
import atexit
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Iterable, Sequence

from imapclient import IMAPClient

from ._net import LOOPBACK, free_port, port_accepts, wait_port_closed

__all__ = [
    "ImapServer",
    "DovecotServer",
    "PymapServer",
    "DovecotNotInstalled",
    "ServerStartError",
    "dovecot_available",
    "pymap_available",
    "start_local_imap",
    "DOVECOT_INSTALL_HINT",
]

DOVECOT_INSTALL_HINT = (
    "Dovecot is required for the real-IMAP tests but was not found "
    "(looked for `dovecot` and `doveadm` in PATH, /usr/sbin, /usr/local/sbin). "
    "Install it with: apt-get install dovecot-imapd"
)

_APPENDUID_RE = re.compile(rb"APPENDUID\s+(\d+)\s+([0-9:,]+)", re.IGNORECASE)

# Flags that have a Maildir filename letter (used by the fast file loader).
_MAILDIR_FLAG_LETTERS = {
    "\\draft": "D",
    "\\flagged": "F",
    "\\answered": "R",
    "\\seen": "S",
    "\\deleted": "T",
}

# Multiappend batching limits (per IMAP command).
_MULTIAPPEND_MAX_MSGS = 500
_MULTIAPPEND_MAX_BYTES = 8 * 1024 * 1024


class DovecotNotInstalled(RuntimeError):
    """Dovecot binaries are missing (message says how to install them)."""


class ServerStartError(RuntimeError):
    """A server process did not come up; the message includes its log tail."""


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def _find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in ("/usr/sbin", "/usr/local/sbin", "/usr/bin", "/sbin"):
        cand = os.path.join(d, name)
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


def dovecot_available() -> bool:
    """True if the ``dovecot`` and ``doveadm`` binaries are installed."""
    return _find_binary("dovecot") is not None and _find_binary("doveadm") is not None


def pymap_available() -> bool:
    """True if the ``pymap`` package can be imported."""
    try:
        import pymap.main  # noqa: F401
    except Exception:
        return False
    return True


def _set_nodelay(client: IMAPClient) -> None:
    # imaplib sends a literal and its trailing CRLF in separate writes; with
    # Nagle enabled every APPEND then stalls on a delayed ACK (~5-40 ms).
    try:
        client._imap.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (AttributeError, OSError):
        pass


def _logout(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:
        try:
            client.shutdown()
        except Exception:
            pass


def _parse_appenduid(resp: bytes | str | None) -> int | None:
    if resp is None:
        return None
    if isinstance(resp, str):
        resp = resp.encode("ascii", "replace")
    m = _APPENDUID_RE.search(resp)
    if not m:
        return None
    last = m.group(2).split(b",")[-1].split(b":")[-1]
    return int(last)


def _tail(path: Path, n: int = 40) -> str:
    try:
        lines = path.read_text("utf-8", "replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:])


def _traversable_by_others(path: Path) -> bool:
    """True if every directory from / down to *path* has the o+x bit."""
    p = path
    while True:
        try:
            if not os.stat(p).st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
        if p.parent == p:
            return True
        p = p.parent


def _group_members_alive(pgid: int) -> bool:
    """True if any non-zombie process still belongs to process group *pgid*.

    Zombies are ignored on purpose: in containers PID 1 often does not reap
    orphans, and a zombie holds no sockets.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            data = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ..."; comm may contain spaces/parens.
        rest = data[data.rfind(")") + 2:].split()
        if len(rest) >= 3 and rest[0] != "Z" and int(rest[2]) == pgid:
            return True
    return False


_LIVE_SERVERS: "weakref.WeakSet[ImapServer]" = weakref.WeakSet()


@atexit.register
def _stop_leftover_servers() -> None:
    # Server processes run in their own session, so they would survive the
    # interpreter; make sure a crashed/aborted test run does not leak them.
    for srv in list(_LIVE_SERVERS):
        try:
            srv.kill()
        except Exception:
            pass


# --------------------------------------------------------------------------
# base class
# --------------------------------------------------------------------------

class ImapServer:
    """A real IMAP server process on a loopback port with one mail account.

    Subclasses implement :meth:`_command` / :meth:`_prepare`; process
    management and the IMAP helper methods live here.
    """

    kind = "imap"
    startup_timeout = 30.0

    def __init__(self, workdir: Path | str, user: str = "tracking", password: str = "secret",
                 port: int | None = None, *, host: str = LOOPBACK) -> None:
        if ":" in user or ":" in password or "\n" in user + password:
            raise ValueError("user/password must not contain ':' or newlines")
        self.workdir = Path(workdir).absolute()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.user = user
        self.password = password
        self._port_fixed = port is not None
        self.port: int = port if port is not None else 0
        self._proc: subprocess.Popen | None = None
        self._lock = threading.RLock()
        self._stdout_path = self.workdir / f"{self.kind}.out"

    # ---- subclass hooks ----------------------------------------------------
    def _prepare(self) -> None:
        """Write config/state for the current ``self.port`` (called per start)."""

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _log_text(self) -> str:
        return _tail(self._stdout_path)

    # ---- lifecycle ---------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        with self._lock:
            if self.running:
                return
            if self._proc is not None:  # died on its own: reap leftovers first
                self._terminate_group(signal.SIGKILL, wait_port=False)
            attempts = 1 if self._port_fixed or self.port else 5
            last_err: Exception | None = None
            for _ in range(attempts):
                if not self.port:
                    self.port = free_port(self.host)
                try:
                    self._start_once()
                    self._port_fixed = True   # restart() must reuse this port
                    return
                except ServerStartError as exc:
                    last_err = exc
                    if "in use" in str(exc) and attempts > 1:
                        self.port = 0        # lost the race for the port: pick another
                        continue
                    raise
            assert last_err is not None
            raise last_err

    def _start_once(self) -> None:
        self._prepare()
        out = open(self._stdout_path, "ab")
        try:
            self._proc = subprocess.Popen(
                self._command(), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=str(self.workdir), env=self._env(),
            )
        finally:
            out.close()
        _LIVE_SERVERS.add(self)
        deadline = time.monotonic() + self.startup_timeout
        last_exc: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            if port_accepts(self.host, self.port, timeout=0.5):
                try:
                    c = self.connect(timeout=5)
                    _logout(c)
                    return
                except Exception as exc:  # not ready yet (auth process starting, ...)
                    last_exc = exc
            time.sleep(0.05)
        log = self._log_text()
        rc = self._proc.poll()
        self._terminate_group(signal.SIGKILL, wait_port=False)
        state = f"exited with code {rc}" if rc is not None else "did not become ready"
        in_use = "address already in use" in log.lower()
        raise ServerStartError(
            f"{type(self).__name__} on {self.host}:{self.port} {state}"
            f"{' (port in use)' if in_use else ''}; last error: {last_exc!r}\n--- log tail ---\n{log}"
        )

    def _env(self) -> dict[str, str]:
        return dict(os.environ)

    def _terminate_group(self, sig: int, *, wait_port: bool = True, timeout: float = 15.0) -> None:
        proc = self._proc
        if proc is None:
            return
        pgid = proc.pid  # start_new_session=True: leader of its own group
        try:
            # The whole group: with only the master signalled, Dovecot sometimes
            # waits ~5 s for a login process; every Dovecot process handles
            # SIGTERM gracefully on its own.
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)
        # Children (login/imap/auth processes) must be gone too.
        deadline = time.monotonic() + timeout
        while _group_members_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _group_members_alive(pgid):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._proc = None
        _LIVE_SERVERS.discard(self)
        if wait_port and self.port and not wait_port_closed(self.host, self.port, timeout=timeout):
            raise RuntimeError(f"port {self.host}:{self.port} still accepts connections after stop")

    def stop(self) -> None:
        """Clean shutdown (SIGTERM); returns once the port is closed."""
        with self._lock:
            self._terminate_group(signal.SIGTERM)

    def kill(self) -> None:
        """Abrupt SIGKILL of the whole server process group (outage tests)."""
        with self._lock:
            self._terminate_group(signal.SIGKILL)

    def restart(self) -> None:
        """stop() + start() on the same port and the same mail data."""
        with self._lock:
            self.stop()
            self.start()

    def close(self) -> None:
        """Stop and release any resources outside ``workdir``."""
        self.stop()

    def __enter__(self) -> "ImapServer":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.user}@{self.host}:{self.port} "
                f"{'running' if self.running else 'stopped'}>")

    # ---- IMAP helpers ------------------------------------------------------
    def connect(self, timeout: float | None = 60.0) -> IMAPClient:
        """A new logged-in :class:`imapclient.IMAPClient` (caller logs out)."""
        client = IMAPClient(self.host, self.port, ssl=False, timeout=timeout)
        _set_nodelay(client)
        try:
            client.login(self.user, self.password)
        except Exception:
            _logout(client)
            raise
        return client

    @staticmethod
    def _ensure_folder(client: IMAPClient, folder: str) -> None:
        if folder.upper() == "INBOX" or client.folder_exists(folder):
            return
        try:
            client.create_folder(folder)
        except IMAPClient.Error:
            if not client.folder_exists(folder):  # lost a creation race: fine
                raise

    def ensure_folder(self, folder: str) -> None:
        c = self.connect()
        try:
            self._ensure_folder(c, folder)
        finally:
            _logout(c)

    def append(self, raw: bytes, folder: str = "INBOX", flags: Iterable = ()) -> int:
        """IMAP APPEND one message (creating *folder* if needed); returns its UID."""
        c = self.connect()
        try:
            self._ensure_folder(c, folder)
            resp = c.append(folder, raw, flags=tuple(flags))
            uid = _parse_appenduid(resp)
            if uid is None:  # server without UIDPLUS: best effort
                c.select_folder(folder, readonly=True)
                uid = max(c.search("ALL"))
            return uid
        finally:
            _logout(c)

    def append_many(self, raws: Sequence[bytes], folder: str = "INBOX", flags: Iterable = ()) -> None:
        """Bulk load over one connection using MULTIAPPEND batches."""
        self._imap_append_many(raws, folder, tuple(flags))

    def _imap_append_many(self, raws: Sequence[bytes], folder: str, flags: tuple) -> None:
        c = self.connect(timeout=600)
        try:
            self._ensure_folder(c, folder)
            multi = b"MULTIAPPEND" in c.capabilities()
            batch: list = []
            size = 0

            def flush() -> None:
                nonlocal batch, size
                if not batch:
                    return
                if multi:
                    c.multiappend(folder, batch)
                else:
                    for item in batch:
                        c.append(folder, item["msg"], flags=item["flags"])
                batch, size = [], 0

            for raw in raws:
                batch.append({"msg": raw, "flags": flags})
                size += len(raw)
                if len(batch) >= _MULTIAPPEND_MAX_MSGS or size >= _MULTIAPPEND_MAX_BYTES:
                    flush()
            flush()
        finally:
            _logout(c)

    def folder_uids(self, folder: str = "INBOX") -> list[int]:
        c = self.connect()
        try:
            c.select_folder(folder, readonly=True)
            return sorted(c.search("ALL"))
        finally:
            _logout(c)

    def fetch_all(self, folder: str = "INBOX") -> dict[int, bytes]:
        """{uid: full message bytes} for every message in *folder* (no \\Seen change)."""
        c = self.connect(timeout=600)
        try:
            c.select_folder(folder, readonly=True)
            uids = sorted(c.search("ALL"))
            result: dict[int, bytes] = {}
            for i in range(0, len(uids), 1000):
                for uid, data in c.fetch(uids[i:i + 1000], [b"BODY.PEEK[]"]).items():
                    result[uid] = data[b"BODY[]"]
            return result
        finally:
            _logout(c)

    def fetch_flags(self, folder: str = "INBOX") -> dict[int, tuple]:
        c = self.connect()
        try:
            c.select_folder(folder, readonly=True)
            uids = c.search("ALL")
            if not uids:
                return {}
            return {uid: d[b"FLAGS"] for uid, d in c.fetch(uids, [b"FLAGS"]).items()}
        finally:
            _logout(c)

    def list_folders(self) -> list[str]:
        c = self.connect()
        try:
            return [name for _flags, _delim, name in c.list_folders()]
        finally:
            _logout(c)


# --------------------------------------------------------------------------
# Dovecot
# --------------------------------------------------------------------------

def _account(name_candidates: Sequence[str]) -> pwd.struct_passwd | None:
    for name in name_candidates:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    return None


class DovecotServer(ImapServer):
    """System Dovecot (2.3) with a private config, Maildir storage and one user.

    Layout (``root`` is ``workdir/dovecot`` or, when running as root and
    ``workdir`` is not traversable by unprivileged users -- e.g. pytest's
    0700 ``/tmp/pytest-of-root`` -- a 0711 directory under /tmp that
    ``workdir/dovecot`` symlinks to; :meth:`close` removes it):

    * ``root/dovecot.conf``, ``root/passwd``, ``root/dovecot.log``
    * ``root/run`` (base_dir, unix sockets only), ``root/state``
    * ``root/home/<user>/Maildir`` -- the mailbox (``self.maildir``)

    As root the IMAP mail processes run as ``nobody`` (Dovecot refuses uid 0),
    auth/internal processes as ``dovecot`` and login processes as
    ``dovenull``.  As non-root everything runs as the current user.
    """

    kind = "dovecot"

    def __init__(self, workdir: Path | str, user: str = "tracking", password: str = "secret",
                 port: int | None = None, *, host: str = LOOPBACK, extra_conf: str = "") -> None:
        self.dovecot_bin = _find_binary("dovecot")
        self.doveadm_bin = _find_binary("doveadm")
        if not (self.dovecot_bin and self.doveadm_bin):
            raise DovecotNotInstalled(DOVECOT_INSTALL_HINT)
        super().__init__(workdir, user, password, port, host=host)
        self.extra_conf = extra_conf
        self._external_root: Path | None = None
        self._setup_accounts()
        self.root = self._prepare_root()
        self._stdout_path = self.root / "dovecot.out"
        self.conf_path = self.root / "dovecot.conf"
        self.log_path = self.root / "dovecot.log"
        self.passwd_path = self.root / "passwd"
        self.home = self.root / "home" / user
        self.maildir = self.home / "Maildir"

    # ---- setup -------------------------------------------------------------
    def _setup_accounts(self) -> None:
        self.as_root = os.geteuid() == 0
        if self.as_root:
            internal = _account(["dovecot"])
            login = _account(["dovenull", "nobody"])
            mail = _account(["nobody", "dovecot"])
            if internal is None or login is None or mail is None:
                raise DovecotNotInstalled(
                    "Dovecot system accounts (dovecot, dovenull) are missing; "
                    "reinstall with: apt-get install --reinstall dovecot-core dovecot-imapd")
            self.internal_user = internal.pw_name
            self.internal_group = grp.getgrgid(internal.pw_gid).gr_name
            self.login_user = login.pw_name
            self.mail_uid, self.mail_gid = mail.pw_uid, mail.pw_gid
        else:
            try:
                me = pwd.getpwuid(os.getuid())
                my_group = grp.getgrgid(os.getgid()).gr_name
            except KeyError as exc:
                raise RuntimeError(
                    "running Dovecot as non-root needs a passwd/group entry for the "
                    f"current uid/gid ({os.getuid()}/{os.getgid()})") from exc
            self.internal_user = self.login_user = me.pw_name
            self.internal_group = my_group
            self.mail_uid, self.mail_gid = os.getuid(), os.getgid()

    def _prepare_root(self) -> Path:
        link = self.workdir / "dovecot"
        if link.is_symlink():
            target = Path(os.readlink(link))
            if target.is_dir():
                self._external_root = target
                return target
            link.unlink()
        if not self.as_root or _traversable_by_others(self.workdir):
            link.mkdir(exist_ok=True)
            if self.as_root:
                os.chmod(link, 0o711)
            return link
        base = tempfile.gettempdir()
        if not _traversable_by_others(Path(base)):
            base = "/tmp"
        ext = Path(tempfile.mkdtemp(prefix="devservers-dovecot-", dir=base))
        os.chmod(ext, 0o711)
        link.symlink_to(ext)
        self._external_root = ext
        return ext

    def _config_text(self) -> str:
        r = self.root
        nonroot = ""
        if not self.as_root:
            # A non-root master cannot chroot or switch users.
            nonroot = "\n".join(
                f"service {svc} {{\n  chroot =\n}}"
                for svc in ("imap-login", "imap-urlauth-login", "pop3-login", "submission-login",
                            "anvil", "ipc", "old-stats", "aggregator", "director")
            )
        first_uid = max(1, min(self.mail_uid, 500)) if self.mail_uid else 1
        first_gid = max(1, min(self.mail_gid, 500)) if self.mail_gid else 1
        return f"""\
# Generated by processor.devservers.imap -- self-contained test Dovecot.
# Only the IMAP listener below is on TCP; everything else is unix sockets in base_dir.
base_dir = {r}/run
state_dir = {r}/state
instance_name = devservers-dovecot-{self.port}
log_path = {r}/dovecot.log
info_log_path = {r}/dovecot.log
debug_log_path = {r}/dovecot.log
protocols = imap
listen = {self.host}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
default_internal_user = {self.internal_user}
default_internal_group = {self.internal_group}
default_login_user = {self.login_user}
first_valid_uid = {first_uid}
first_valid_gid = {first_gid}
last_valid_uid = 0
last_valid_gid = 0
mail_location = maildir:~/Maildir
# test server: speed over durability
mail_fsync = never
# IDLE: inotify gives immediate notifications; this is the polling fallback.
mailbox_idle_check_interval = 1 secs
login_greeting = Dovecot (devservers) ready.
protocol imap {{
  mail_max_userip_connections = 1000
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.passwd_path}
}}
userdb {{
  driver = static
  args = uid={self.mail_uid} gid={self.mail_gid} home={r}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = {self.host}
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  process_min_avail = 1
}}
service doveadm {{
  # unix socket only (no doveadm_port => no TCP listener)
}}
{nonroot}
{self.extra_conf}
"""

    def _prepare(self) -> None:
        r = self.root
        (r / "state").mkdir(exist_ok=True)
        home_root = r / "home"
        home_root.mkdir(exist_ok=True)
        os.chmod(home_root, 0o755)
        self.home.mkdir(exist_ok=True)
        os.chmod(self.home, 0o700)
        if self.as_root:
            os.chown(self.home, self.mail_uid, self.mail_gid)
        self.passwd_path.write_text(f"{self.user}:{{PLAIN}}{self.password}::::::\n")
        os.chmod(self.passwd_path, 0o644)
        self.conf_path.write_text(self._config_text())
        os.chmod(self.conf_path, 0o644)
        # A SIGKILLed master leaves its pid file behind; dovecot would refuse
        # to start if that pid happened to be reused by an unrelated process.
        pidfile = r / "run" / "master.pid"
        try:
            old_pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            old_pid = None
        if old_pid is not None and not self._is_our_dovecot(old_pid):
            pidfile.unlink(missing_ok=True)

    def _is_our_dovecot(self, pid: int) -> bool:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        return str(self.conf_path).encode() in cmdline

    def _command(self) -> list[str]:
        return [self.dovecot_bin, "-F", "-c", str(self.conf_path)]

    def _log_text(self) -> str:
        return (_tail(self._stdout_path, 20) + "\n--- dovecot.log ---\n" + _tail(self.log_path, 40))

    def close(self) -> None:
        self.stop()
        if self._external_root is not None:
            shutil.rmtree(self._external_root, ignore_errors=True)
            link = self.workdir / "dovecot"
            if link.is_symlink():
                link.unlink()
            self._external_root = None

    # ---- doveadm -----------------------------------------------------------
    def doveadm(self, *args: str, check: bool = True, timeout: float = 300) -> str:
        """Run ``doveadm -c <our conf> <args>`` and return stdout."""
        res = subprocess.run([self.doveadm_bin, "-c", str(self.conf_path), *args],
                             capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise RuntimeError(f"doveadm {' '.join(args)} failed ({res.returncode}): "
                               f"{res.stderr.strip() or res.stdout.strip()}")
        return res.stdout

    def mailbox_path(self, folder: str = "INBOX") -> Path:
        """Filesystem path of *folder*'s Maildir."""
        out = self.doveadm("mailbox", "path", "-u", self.user, folder).strip()
        return Path(out)

    def message_count(self, folder: str = "INBOX") -> int:
        out = self.doveadm("mailbox", "status", "-u", self.user, "messages", folder)
        return int(out.strip().split("=")[1])

    # ---- fast bulk load ----------------------------------------------------
    def append_many(self, raws: Sequence[bytes], folder: str = "INBOX", flags: Iterable = (),
                    method: str = "maildir", recent: bool = True) -> None:
        """Bulk load; UIDs follow the order of *raws*.

        ``method="maildir"`` (default, fastest: ~10k/s): deliver the files
        straight into the folder's Maildir the standard tmp/ -> rename way --
        into ``new/`` (like a local delivery agent, messages are \\Recent) or,
        with flags or ``recent=False``, into ``cur/`` -- then run
        ``doveadm force-resync`` so Dovecot has assigned the UIDs before this
        returns.  ``method="imap"``: MULTIAPPEND batches over one connection
        (~2-5k/s, exercises the protocol).
        """
        flags = tuple(flags)
        if method == "imap":
            return self._imap_append_many(raws, folder, flags)
        if method != "maildir":
            raise ValueError(f"unknown method {method!r}")
        letters = []
        for f in flags:
            name = f.decode() if isinstance(f, bytes) else str(f)
            letter = _MAILDIR_FLAG_LETTERS.get(name.lower())
            if letter is None:  # keywords need Dovecot's keyword file: use IMAP
                return self._imap_append_many(raws, folder, flags)
            letters.append(letter)
        info = ":2," + "".join(sorted(set(letters))) if (letters or not recent) else ""
        c = self.connect()
        try:
            self._ensure_folder(c, folder)
            c.select_folder(folder, readonly=True)  # makes Dovecot create cur/new/tmp
        finally:
            _logout(c)
        mdir = self.mailbox_path(folder)
        tmp_dir = mdir / "tmp"
        dest_dir = mdir / ("cur" if info else "new")
        chown = self.as_root and (self.mail_uid, self.mail_gid) != (0, 0)
        host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")
        pid = os.getpid()
        now = time.time()
        sec = int(now)
        usec = int((now - sec) * 1e6)
        tmp_s, dest_s = str(tmp_dir), str(dest_dir)
        flags_w = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        for i, raw in enumerate(raws):
            # Unique per file: time, pid and a zero-padded sequence number (Q).
        # Dovecot orders new files by the time fields, then by name, so the
        # padding makes UIDs follow the order of *raws*.
            base = f"{sec}.M{usec}P{pid}Q{i:09d}.{host},S={len(raw)}"
            tpath = f"{tmp_s}/{base}"
            fd = os.open(tpath, flags_w, 0o600)
            try:
                os.write(fd, raw)
                if chown:
                    os.fchown(fd, self.mail_uid, self.mail_gid)
            finally:
                os.close(fd)
            os.rename(tpath, f"{dest_s}/{base}{info}")
        # Sync now so that UIDs are assigned (in file order) before returning.
        self.doveadm("force-resync", "-u", self.user, folder)


# --------------------------------------------------------------------------
# pymap
# --------------------------------------------------------------------------

class PymapServer(ImapServer):
    """The pure-Python ``pymap`` IMAP server in a subprocess (non-root friendly).

    ``backend="dict"`` (default): in-memory, byte-exact, fast -- but data does
    NOT survive stop()/restart()/kill() (``persistent`` is False).
    ``backend="maildir"``: data survives restarts, but pymap stores messages
    through Python's ``mailbox`` module, so FETCH returns LF line endings
    instead of CRLF and bulk APPEND is slow (~3 ms/message).
    """

    kind = "pymap"

    def __init__(self, workdir: Path | str, user: str = "tracking", password: str = "secret",
                 port: int | None = None, *, host: str = LOOPBACK, backend: str = "dict") -> None:
        if not pymap_available():
            raise RuntimeError("pymap is not installed: pip install pymap")
        if backend not in ("dict", "maildir"):
            raise ValueError("backend must be 'dict' or 'maildir'")
        super().__init__(workdir, user, password, port, host=host)
        self.backend = backend
        self.persistent = backend == "maildir"
        self.root = self.workdir / "pymap"
        self.root.mkdir(exist_ok=True)
        self._stdout_path = self.root / "pymap.log"

    def _prepare(self) -> None:
        if self.backend != "maildir":
            return
        from pysasl.hashing import BuiltinHash

        # pymap's default is 500k PBKDF2 rounds (~0.1 s per login); use fewer.
        hashed = BuiltinHash(rounds=1000).hash(self.password)
        (self.root / "pymap-etc-passwd").write_text(f"{self.user}:x::::{self.user}:\r\n")
        (self.root / "pymap-etc-shadow").write_text(f"{self.user}:{hashed}:::::::\r\n")

    def _command(self) -> list[str]:
        cmd = [sys.executable, "-c", "from pymap.main import main; main()",
               "--host", self.host, "--port", str(self.port), "--no-tls"]
        if self.backend == "dict":
            cmd += ["dict", "--demo-user", self.user, "--demo-password", self.password]
        else:
            cmd += ["maildir", str(self.root)]
        return cmd

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env


# --------------------------------------------------------------------------
# factory + CLI
# --------------------------------------------------------------------------

def start_local_imap(workdir: Path | str, backend: str = "auto", **kw) -> ImapServer:
    """Start and return Dovecot if installed, else pymap (dict backend).

    ``backend`` may force ``"dovecot"`` or ``"pymap"``; with ``"auto"`` the
    environment variable ``PROCESSOR_DEMO_IMAP`` (dovecot | pymap) may too, as a
    fresh machine without Dovecot would behave.
    """
    if backend == "auto":
        backend = os.environ.get("PROCESSOR_DEMO_IMAP", "").strip().lower() or "auto"
    if backend == "auto":
        if dovecot_available():
            backend = "dovecot"
        elif pymap_available():
            backend = "pymap"
        else:
            raise RuntimeError(DOVECOT_INSTALL_HINT + " (or pip install pymap)")
    srv: ImapServer
    if backend == "dovecot":
        srv = DovecotServer(workdir, **kw)
    elif backend == "pymap":
        srv = PymapServer(workdir, **kw)
    else:
        raise ValueError(f"unknown backend {backend!r}")
    srv.start()
    return srv


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m processor.devservers.imap",
        description="Run a local IMAP server in the foreground; prints 'host port user password' when ready.")
    ap.add_argument("--workdir", required=True, type=Path)
    ap.add_argument("--port", type=int, default=None)
    ap.add_argument("--user", default="tracking")
    ap.add_argument("--password", default="secret")
    ap.add_argument("--backend", choices=["auto", "dovecot", "pymap"], default="auto")
    args = ap.parse_args(argv)

    srv = start_local_imap(args.workdir, backend=args.backend, user=args.user,
                           password=args.password, port=args.port)
    stop = threading.Event()

    def _on_signal(signum, frame):  # noqa: ARG001
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    print(f"{srv.host} {srv.port} {srv.user} {srv.password}", flush=True)
    try:
        while not stop.is_set():
            if not srv.running:
                print("server process exited unexpectedly", file=sys.stderr)
                return 1
            stop.wait(0.5)
    finally:
        # close(): also removes a runtime dir that had to live outside --workdir
        # (root + non-traversable workdir); data inside --workdir is kept.
        srv.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
