"""Progress of a long pass (``once``, ``replay``, a first sync).

On a terminal: a tqdm bar on stderr. Otherwise (systemd, cron, a pipe): one
log line every ``every`` seconds, so a 1,500-mail backlog is never silent.
"""
from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, label: str, total: int | None = None, *, stream=None, every: float = 10.0,
                 tty: bool | None = None, emit=None):
        """``emit``: where the periodic lines go instead of ``stream``
        (the daemon passes its logger, so the lines carry a timestamp)."""
        self.emit = emit
        self.label = label
        self.total = total
        self.done = 0
        self.stream = stream or sys.stderr
        self.every = every
        self.started = self._last = time.monotonic()
        self._bar = None
        if tty if tty is not None else getattr(self.stream, "isatty", lambda: False)():
            from tqdm import tqdm
            self._bar = tqdm(total=total, desc=label, unit="封", file=self.stream, dynamic_ncols=True,
                             bar_format="{desc}：{n_fmt}/{total_fmt} 封 |{bar}| {elapsed}<{remaining}"
                             if total else "{desc}：{n_fmt} 封 {elapsed}")

    def set_total(self, total: int) -> None:
        self.total = total
        if self._bar is not None:
            self._bar.total = total
            self._bar.refresh()

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            self._line(now)

    def _line(self, now: float) -> None:
        rate = self.done / max(now - self.started, 1e-9)
        of = f"/{self.total}" if self.total else ""
        left = ""
        if self.total and rate > 0 and self.total > self.done:
            left = f"，预计还需 {_duration((self.total - self.done) / rate)}"
        line = f"{self.label}：已处理 {self.done}{of} 封（每秒 {rate:.0f} 封{left}）"
        if self.emit is not None:
            self.emit(line)
        else:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s} 秒"
    if s < 3600:
        return f"{s // 60} 分 {s % 60} 秒"
    return f"{s // 3600} 小时 {s % 3600 // 60} 分"
