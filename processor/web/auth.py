"""Login by a one-time code mailed through the system's own outbox, and
signed session cookies.

Codes live in the web process's memory, hashed (HMAC-SHA256 with the session
key): a restart forgets them, which only means asking for a new code. A code
is valid ``[web] code_minutes``, works once, and is refused after
``MAX_TRIES`` wrong guesses; at most ``[web] codes_per_hour`` codes are mailed
to one address per hour. Only people in the directory get a code; anyone else
is told the same words (no probing who is in the directory).

Sessions are itsdangerous-signed cookies (HttpOnly, SameSite=Lax, Secure
unless ``[web] cookie_secure = false``) holding the address and the login
time; the signature's age bounds the session (``[web] session_hours``).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "tp_session"
MAX_TRIES = 5  # wrong codes for one address before its code is dropped
CODE_DIGITS = 6


@dataclass
class _Pending:
    digest: str
    expires: float
    tries: int = 0


@dataclass
class CodeBook:
    """Pending codes per address (lower-case), hashed."""
    key: bytes
    lifetime: float  # seconds
    per_hour: int
    clock: object = time.monotonic
    _codes: dict[str, _Pending] = field(default_factory=dict)
    _mailed: dict[str, list[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _digest(self, addr: str, code: str) -> str:
        return hmac.new(self.key, f"{addr}\n{code}".encode(), hashlib.sha256).hexdigest()

    def may_send(self, addr: str) -> bool:
        now = self.clock()
        with self._lock:
            recent = [t for t in self._mailed.get(addr, []) if now - t < 3600]
            self._mailed[addr] = recent
            return len(recent) < self.per_hour

    def issue(self, addr: str) -> str | None:
        """A new code for ``addr`` (replacing an earlier one), or None when
        the hourly limit is reached."""
        now = self.clock()
        with self._lock:
            recent = [t for t in self._mailed.get(addr, []) if now - t < 3600]
            if len(recent) >= self.per_hour:
                self._mailed[addr] = recent
                return None
            recent.append(now)
            self._mailed[addr] = recent
            code = f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"
            self._codes[addr] = _Pending(self._digest(addr, code), now + self.lifetime)
            self._sweep(now)
            return code

    def redeem(self, addr: str, code: str) -> bool:
        """True once for the right, unexpired code; the code is gone after."""
        now = self.clock()
        code = "".join((code or "").split())[:20]
        with self._lock:
            p = self._codes.get(addr)
            if p is None:
                return False
            if now >= p.expires:
                del self._codes[addr]
                return False
            if hmac.compare_digest(p.digest, self._digest(addr, code)):
                del self._codes[addr]
                return True
            p.tries += 1
            if p.tries >= MAX_TRIES:
                del self._codes[addr]
            return False

    def _sweep(self, now: float) -> None:
        for a in [a for a, p in self._codes.items() if now >= p.expires]:
            del self._codes[a]


class Sessions:
    def __init__(self, key: bytes, hours: float):
        self.signer = URLSafeTimedSerializer(key, salt="web-session")
        self.max_age = int(hours * 3600)

    def make(self, addr: str) -> str:
        return self.signer.dumps({"a": addr, "n": secrets.token_hex(8)})

    def read(self, cookie: str | None) -> str | None:
        """The address of a valid, unexpired session cookie, else None."""
        if not cookie or len(cookie) > 4096:
            return None
        try:
            v = self.signer.loads(cookie, max_age=self.max_age)
        except BadSignature:  # includes SignatureExpired
            return None
        a = v.get("a") if isinstance(v, dict) else None
        return a if isinstance(a, str) else None


def web_key(secret: bytes) -> bytes:
    """The web view's own key, derived from the system's HMAC secret."""
    return hmac.new(secret, b"web-view", hashlib.sha256).digest()
