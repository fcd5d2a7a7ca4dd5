"""Timed jobs hosted by the daemon's loop.

Adding a job is one ``register`` call: a name, a function and an interval.
Other threads (the IDLE watchers, signal handlers) call ``wake(name)`` to run
a job as soon as possible. A job may return a number of seconds to override
its next delay (for backoff after errors).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger(__name__)


@dataclass
class Job:
    name: str
    fn: Callable[[], float | None]
    every: float
    next_at: float
    runs: int = 0
    failures: int = 0


class Scheduler:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.jobs: dict[str, Job] = {}
        self._cond = threading.Condition()

    def register(self, name: str, fn: Callable[[], float | None], every: float, start_now: bool = True) -> None:
        with self._cond:
            self.jobs[name] = Job(name, fn, every, self.clock() if start_now else self.clock() + every)
            self._cond.notify()

    def wake(self, name: str) -> None:
        with self._cond:
            job = self.jobs.get(name)
            if job is not None:
                job.next_at = min(job.next_at, self.clock())
                self._cond.notify()

    def run_due(self) -> int:
        """Run every job that is due now; returns how many ran."""
        ran = 0
        for job in sorted(self.jobs.values(), key=lambda j: j.next_at):
            if job.next_at > self.clock():
                continue
            job.next_at = self.clock() + job.every
            try:
                delay = job.fn()
                job.failures = 0
            except Exception:
                job.failures += 1
                delay = min(300.0, 2.0 ** job.failures)
                log.exception("定时任务 %s 出错（连续第 %d 次），%.0f 秒后重试", job.name, job.failures, delay)
            if delay is not None:
                job.next_at = self.clock() + delay
            job.runs += 1
            ran += 1
        return ran

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.run_due()
            with self._cond:
                nxt = min((j.next_at for j in self.jobs.values()), default=self.clock() + 1)
                timeout = max(0.0, nxt - self.clock())
                if timeout > 0 and not stop.is_set():
                    self._cond.wait(min(timeout, 1.0))
