"""Small networking helpers shared by the local dev/test mail servers."""

from __future__ import annotations

import socket
import time

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on *host* that was free a moment ago.

    The kernel picks the port (bind to port 0).  There is an unavoidable
    race between closing this probe socket and the real server binding
    the port; callers that chose the port this way retry on EADDRINUSE.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if a TCP connect to host:port succeeds right now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port_closed(host: str, port: int, timeout: float = 15.0) -> bool:
    """Wait until nothing accepts connections on host:port. True on success."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not port_accepts(host, port, timeout=0.3):
            return True
        time.sleep(0.05)
    return False
