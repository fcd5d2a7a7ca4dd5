"""The long-running service (``serve``) and the single pass (``once``)."""
from __future__ import annotations

import logging
import signal
import threading

from . import heartbeat
from .alerts import Alerts
from .config import ConfigError
from .failures import imap_line
from .intake.imap import NETWORK_ERRORS, IdleWatcher, ImapIntake
from .jobs import Scheduler
from .outbox import Deliverer, DeliveryStats, recover
from .pipeline import Outcome, Pipeline, Runtime
from .queueing import MailQueue
from .progress import Progress
from .reports.scheduled import send_scheduled_reports
from .surveys import job as survey_job, interval as survey_interval, send_due as send_due_surveys

log = logging.getLogger(__name__)


class Daemon:
    def __init__(self, rt: Runtime, *, use_idle: bool = True):
        self.rt = rt
        self.cfg = rt.cfg
        self.pipeline = Pipeline(rt)
        self.queue = MailQueue(rt)  # the timed jobs' mail
        self.deliverer = Deliverer(rt.cfg, rt.store, templates=lambda: rt.renderer)  # a reload replaces it
        self.scheduler = Scheduler()
        self.stop_event = threading.Event()
        self.use_idle = use_idle
        self.intakes = {a.name: ImapIntake(self.pipeline, a) for a in self.cfg.accounts}
        self.watchers: list[IdleWatcher] = []
        self._backoff: dict[str, float] = {}
        self._reload_requested = False
        self._woken: dict[str, bool] = {}

    # jobs -------------------------------------------------------------------
    def _intake_job(self, name: str):
        def job():
            intake = self.intakes[name]
            woken = self._woken.pop(name, False)
            # A long poll (the first sync of a big mailbox) logs a line every 10 s.
            progress = Progress(f"IMAP 账号 {name} 收取邮件", tty=False, emit=log.info)

            def on_batch(res):
                progress.advance(len(res))
                self.scheduler.wake("outbox")
            try:
                got = intake.poll(on_batch=on_batch, woken=woken)
            except NETWORK_ERRORS as e:
                self._beat(name, False, imap_line(e, intake.acct))
                d = min(self.cfg.daemon.reconnect_max, max(self.cfg.daemon.reconnect_min, self._backoff.get(name, 0) * 2))
                self._backoff[name] = d
                log.warning("%s；%.0f 秒后重连", imap_line(e, intake.acct), d)
                return d
            self._backoff[name] = 0
            self._beat(name, True)
            if got:
                log.info("IMAP 账号 %s：收到 %d 封新邮件", name, len(got))
            return None
        return job

    def _beat(self, name: str, ok: bool, error: str = "") -> None:
        """The poll state another process reads (processor/heartbeat.py)."""
        try:
            heartbeat.beat(self.rt.store, name, ok=ok, error=error)
        except Exception:  # the store is down: the poll itself will say so
            log.debug("heartbeat not written", exc_info=True)

    def _outbox_job(self):
        self.deliverer.deliver_due()

    def _retry_job(self):
        self.pipeline.retry_failed()

    def _reload_job(self):
        if not self._reload_requested:
            return
        self._reload_requested = False
        try:
            self.rt.reload()
            log.info("已重新加载通讯录、规则和模板")
        except ConfigError as e:
            log.error("重新加载被拒绝，继续使用原来的通讯录、规则和模板：\n%s", e)

    def _wake_intake(self, name: str) -> None:
        self._woken[name] = True
        self.scheduler.wake(f"intake:{name}")

    def request_reload(self, *_):
        self._reload_requested = True
        self.scheduler.wake("reload")

    def stop(self, *_):
        self.stop_event.set()
        self.scheduler.wake("outbox")

    # run --------------------------------------------------------------------
    def start(self) -> None:
        for line in self.rt.sla.warnings(self.rt.clock()):
            log.warning("%s", line)
        n = recover(self.rt.store)
        if n:
            log.warning("发信：%d 封邮件在上次运行停止时正在发送，将以相同的 Message-ID 重发（收件方可据此去重）", n)
        for acct in self.cfg.accounts:
            self.scheduler.register(f"intake:{acct.name}", self._intake_job(acct.name), acct.poll_interval)
            if self.use_idle and acct.idle:
                for folder in acct.folders:
                    w = IdleWatcher(acct, folder, lambda n=acct.name: self._wake_intake(n),
                                    self.stop_event, self.cfg.daemon.reconnect_min, self.cfg.daemon.reconnect_max)
                    w.start()
                    self.watchers.append(w)
        self.scheduler.register("outbox", self._outbox_job, self.cfg.daemon.outbox_interval)
        self.scheduler.register("retry", self._retry_job, self.cfg.daemon.retry_interval, start_now=False)
        self.scheduler.register("reload", self._reload_job, 3600, start_now=False)
        self.scheduler.register("surveys", survey_job(self.rt, self.queue), survey_interval(self.cfg))
        self.scheduler.register("sla", lambda: self.rt.sla.check(self.rt, self.queue), self.cfg.sla.check_interval)
        self.scheduler.register("reports", lambda: send_scheduled_reports(self.rt, self.queue), 60)
        alerts = Alerts(self.rt, self.queue, self.rt.clock())
        self.scheduler.register("alerts", alerts.check, alerts.interval(), start_now=False)

    def run(self) -> None:
        self.start()
        try:
            self.scheduler.run_forever(self.stop_event)
        finally:
            for i in self.intakes.values():
                i.close()

    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        signal.signal(signal.SIGHUP, self.request_reload)


SENDER_PROCESS_THRESHOLD = 500


def _sender_process_main(cfg, stop, wake, results) -> None:
    """Child process: deliver due outbox rows until told to stop. A process,
    not a thread, so SMTP work does not compete with parsing for the GIL."""
    from .store.db import Store

    # A fresh engine: never reuse the parent's connections.
    store = Store(cfg.store_url, upgrade=False, journal_dir=cfg.journal_dir)
    deliverer = Deliverer(cfg, store)
    stats = DeliveryStats()
    try:
        while True:
            wake.wait(0.2)
            wake.clear()
            finishing = stop.is_set()
            st = deliverer.deliver_due()
            stats.sent += st.sent
            stats.deferred += st.deferred
            stats.failed += st.failed
            stats.error = st.error or stats.error
            if st.error or finishing:
                break
    finally:
        results.put((stats.sent, stats.deferred, stats.failed, stats.error))
        store.dispose()


def backlog(rt: Runtime) -> int:
    """Roughly how many new mails wait on the servers (one STATUS per folder)."""
    from .intake.imap import connect
    from .store.models import SyncState

    total = 0
    for acct in rt.cfg.accounts:
        c = connect(acct)
        try:
            for folder in acct.folders:
                st = c.folder_status(folder, [b"UIDVALIDITY", b"UIDNEXT", b"MESSAGES"])
                with rt.store.reader() as s:
                    state = s.get(SyncState, (acct.name, folder))
                if state is None and acct.start == "now":
                    continue  # first contact: old mail is skipped (see ImapIntake._first_contact)
                if state is None or state.uidvalidity != st[b"UIDVALIDITY"]:
                    total += int(st[b"MESSAGES"])
                else:
                    total += max(0, int(st[b"UIDNEXT"]) - 1 - state.last_uid)
        finally:
            c.logout()
    return total


def run_once(rt: Runtime, on_batch=None, sender_process: bool | None = None,
             progress=None) -> tuple[list[Outcome], DeliveryStats]:
    """One pass: fetch everything new, process it, flush the outbox.

    Delivery overlaps intake: in a thread for small passes, in a child process
    when the backlog is large (``sender_process=None`` decides by backlog).
    ``progress`` (processor.progress.Progress) is told the backlog and each
    batch. An IMAP account that cannot be reached raises ServiceFailure with
    the Chinese explanation."""
    from .failures import ServiceFailure
    import multiprocessing

    recover(rt.store)
    pipeline = Pipeline(rt)
    deliverer = Deliverer(rt.cfg, rt.store, templates=lambda: rt.renderer)
    stats = DeliveryStats()

    def add(st: DeliveryStats):
        stats.sent += st.sent
        stats.deferred += st.deferred
        stats.failed += st.failed
        stats.error = st.error or stats.error

    waiting = None
    if sender_process is None or progress is not None:
        try:
            waiting = backlog(rt)
        except NETWORK_ERRORS:
            waiting = None  # the intake below reports it
    if sender_process is None:
        sender_process = (waiting or 0) >= SENDER_PROCESS_THRESHOLD
    if progress is not None and waiting:
        progress.set_total(waiting)
    if sender_process:
        mp = multiprocessing.get_context("fork")
        done, wake, results = mp.Event(), mp.Event(), mp.Queue()
        worker = mp.Process(target=_sender_process_main, args=(rt.cfg, done, wake, results), daemon=True)
        worker.start()
    else:
        done, wake = threading.Event(), threading.Event()

        def sender():
            while not done.is_set():
                wake.wait(0.5)
                wake.clear()
                st = deliverer.deliver_due()
                add(st)
                if st.error:  # server down: do not hammer it during this pass
                    return

        worker = threading.Thread(target=sender, name="outbox", daemon=True)
        worker.start()
    outcomes: list[Outcome] = []

    def batch_done(res):
        wake.set()
        if progress is not None:
            progress.advance(len(res))
        if on_batch:
            on_batch(res)

    try:
        for acct in rt.cfg.accounts:
            intake = ImapIntake(pipeline, acct)
            try:
                outcomes += intake.poll(on_batch=batch_done)
                heartbeat.beat(rt.store, acct.name, ok=True)
            except NETWORK_ERRORS as e:
                heartbeat.beat(rt.store, acct.name, ok=False, error=imap_line(e, acct))
                raise ServiceFailure(imap_line(e, acct)) from e
            finally:
                intake.close()
        outcomes += pipeline.retry_failed()
    finally:
        done.set()
        wake.set()
        if sender_process:
            sent, deferred, failed, error = results.get()
            add(DeliveryStats(sent, deferred, failed, error))
        worker.join()
    queue = MailQueue(rt)
    send_due_surveys(rt, queue)  # 回访 that are due: queued before the final flush
    rt.sla.check(rt, queue)  # reminders and escalations that are due
    send_scheduled_reports(rt, queue)  # the monthly / weekly report mails, when due
    if not stats.error:
        add(deliverer.deliver_due())
    return outcomes, stats
