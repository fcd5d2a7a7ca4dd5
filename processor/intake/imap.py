"""IMAP intake (imapclient): incremental by UID, size first, exactly once.

A poll of an idle folder is one STATUS command and one primary-key lookup.
New mail is fetched in batches (sizes first, then bodies of the mails under the
limit, headers only for the others) and handed to the pipeline together with
the new sync position, which the pipeline commits in the same transaction.
Only after that commit is the mail moved or flagged on the server.
"""
from __future__ import annotations

import logging
import socket
import ssl as ssl_mod
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from typing import Callable

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError
from sqlalchemy import select, update

from ..config import AccountConfig
from ..failures import imap_line
from ..oauth import TokenError, provider_for
from ..pipeline import Incoming, Outcome, Pipeline
from ..store.models import Message, SyncState
from .lock import IntakeLocks

log = logging.getLogger(__name__)

# TokenError: no token for an XOAUTH2 sign-in; retried with the same backoff.
NETWORK_ERRORS = (IMAPClientError, OSError, socket.timeout, ssl_mod.SSLError, EOFError, TokenError)
CLIENT_ID = {"name": "ticket-processor", "version": "0.1", "vendor": "ticket-processor"}


class NoXOAuth2(IMAPClientError):
    """The server does not offer SASL XOAUTH2 (wrong host, or not before TLS)."""


def connect(acct: AccountConfig) -> IMAPClient:
    """A signed-in connection. With XOAUTH2, a token the server refuses is
    dropped, a fresh one fetched, and the sign-in tried once more on a new
    connection; a refusal of that one too is raised (LoginError)."""
    if acct.auth != "xoauth2":
        return _connect(acct, None)
    provider = provider_for(acct.oauth)
    token = provider.token()
    try:
        return _connect(acct, token)
    except LoginError:
        provider.invalidate(token)
        fresh = provider.token()
        log.info("IMAP 账号 %s：服务器拒绝了访问令牌，已重新获取令牌再登录一次", acct.name)
        return _connect(acct, fresh)


def _connect(acct: AccountConfig, token: str | None) -> IMAPClient:
    ctx = None
    if acct.ssl or acct.starttls:
        ctx = ssl_mod.create_default_context()
    c = IMAPClient(acct.host, port=acct.port, ssl=acct.ssl, ssl_context=ctx if acct.ssl else None, timeout=acct.timeout)
    try:
        if acct.starttls:
            c.starttls(ctx)
        if token is not None:
            if not c.has_capability("AUTH=XOAUTH2"):
                raise NoXOAuth2(f"{acct.host} does not offer AUTH=XOAUTH2")
            c.oauth2_login(acct.username, token)  # SASL XOAUTH2
        else:
            c.login(acct.username, acct.secret())
        # 163/126 mail refuse SELECT until the client identifies itself (RFC 2971).
        if c.has_capability("ID"):
            try:
                c.id_(CLIENT_ID)
            except IMAPClientError:
                pass
    except Exception:
        try:
            c.shutdown()
        except Exception:
            pass
        raise
    return c


class ImapIntake:
    def __init__(self, pipeline: Pipeline, acct: AccountConfig):
        self.pipeline = pipeline
        self.acct = acct
        self.store = pipeline.rt.store
        self.client: IMAPClient | None = None
        self.selected: str | None = None
        self.locks = IntakeLocks(self.store, acct.name)  # one worker per folder: see lock.py
        self._meta: tuple[str, int, dict] = ("", 0, {})  # (folder, uidvalidity, FETCH of sizes and dates)

    def close(self) -> None:
        self.locks.release()
        if self.client is not None:
            try:
                self.client.logout()
            except Exception:
                try:
                    self.client.shutdown()
                except Exception:
                    pass
        self.client = None
        self.selected = None

    def _client(self) -> IMAPClient:
        if self.client is None:
            self.client = connect(self.acct)
        return self.client

    def _unselect(self) -> None:
        """STATUS on the selected mailbox may be stale (RFC 3501 6.3.10), and
        the next poll relies on STATUS: leave no mailbox selected."""
        if self.selected is not None and self.client is not None:
            c, self.selected = self.client, None
            if c.has_capability("UNSELECT"):  # RFC 3691
                c.unselect_folder()
                return
            try:
                # CLOSE leaves the mailbox (RFC 3501 6.4.2); some servers (pymap)
                # refuse it on a read-only selection.
                c.close_folder()
            except IMAPClientError:
                # A failed EXAMINE also leaves the selected state (RFC 3501
                # 6.3.1): ask for a mailbox that cannot exist.
                try:
                    c.select_folder("ticket-processor-no-such-mailbox", readonly=True)
                except IMAPClientError:
                    pass

    def _select(self, folder: str, write: bool = False) -> dict:
        # EXAMINE unless we will change the mailbox: a read-write SELECT lets
        # the server rewrite state (Dovecot moves Maildir new/ to cur/, which
        # makes the next sync rescan the whole folder: ~250 ms at 100k mails).
        info = self._client().select_folder(folder, readonly=not write)
        self.selected = folder
        return info

    def poll(self, on_batch: Callable[[list[Outcome]], None] | None = None, woken: bool = False) -> list[Outcome]:
        """Fetch and process everything new in every folder. Raises network
        errors (the caller reconnects with backoff). ``woken``: the server
        told us something changed (IDLE), so skip the STATUS check."""
        out: list[Outcome] = []
        try:
            for folder in self.acct.folders:
                if self.locks.hold(folder):  # else another worker reads this folder
                    out += self._poll_folder(folder, on_batch, woken)
            self.post_actions()
            self._unselect()
        except NETWORK_ERRORS:
            self.close()
            raise
        return out

    def _poll_folder(self, folder: str, on_batch, woken: bool = False) -> list[Outcome]:
        c = self._client()
        # STATUS is the cheap check for an idle mailbox; when IDLE has told us
        # something changed, SELECT answers the same question and is needed
        # anyway (on a large Maildir each costs a folder scan).
        st = self._select(folder) if woken else c.folder_status(folder, [b"UIDVALIDITY", b"UIDNEXT"])
        uidvalidity, uidnext = int(st[b"UIDVALIDITY"]), int(st[b"UIDNEXT"])
        with self.store.reader() as s:
            state = s.get(SyncState, (self.acct.name, folder))
            state = (state.uidvalidity, state.last_uid) if state else None
        if state and state[0] == uidvalidity and uidnext - 1 <= state[1]:
            return []  # idle: one STATUS, one lookup
        if not woken:
            self._select(folder)
        last = 0
        if state is None:
            last = self._first_contact(folder, uidvalidity, uidnext)
        elif state[0] != uidvalidity:
            log.warning("账号 %s 的文件夹 %s：UIDVALIDITY 由 %s 变为 %s，按 Message-ID 和大小与已处理的邮件对应，不重复处理", self.acct.name,
                        folder, state[0], uidvalidity)
            last = self._reconcile(folder, uidvalidity)
        elif state:
            last = state[1]
        uids = sorted(u for u in c.search(["UID", f"{last + 1}:*"]) if u > last)
        out: list[list[Outcome]] = []  # each batch's outcomes
        batches = self._batches(folder, uidvalidity, uids)
        chunk = next(batches, None)
        ahead = None
        # Leaving the block waits for a read-ahead still running: the
        # connection is used again only once it is done.
        with ThreadPoolExecutor(1, thread_name_prefix="imap-fetch-ahead") as pool:
            try:
                while chunk is not None:
                    if out and not self.locks.hold(folder):
                        break  # lost the lock mid-way: its new holder carries on
                    items = ahead.result() if ahead is not None else self._fetch(folder, uidvalidity, chunk)
                    nxt = next(batches, None)  # (may ask the server for sizes: before the read-ahead starts)
                    # The next batch is read (BODY.PEEK: nothing changes on the
                    # server) while this one is processed, which touches neither
                    # the connection nor anything the fetch does; when it has
                    # been read by the end of this batch, it is marked in flight
                    # in this batch's transaction.
                    ahead = pool.submit(self._fetch, folder, uidvalidity, nxt) if nxt is not None else None
                    res = self.pipeline.process(items, sync={(self.acct.name, folder): (uidvalidity, chunk[-1])},
                                                upcoming=_ready(ahead))
                    out.append(res)
                    if on_batch:
                        on_batch(res)
                    chunk = nxt
            finally:
                self.pipeline.forget_premarked()  # (nothing, unless the loop stopped before a marked batch)
        return [o for res in out for o in res]

    def _batches(self, folder: str, uidvalidity: int, uids: list[int]):
        """``uids`` cut into batches of at most ``fetch_batch`` mails and
        ``fetch_bytes`` bytes (by RFC822.SIZE; a mail over ``max_size`` counts
        as its header block, all that is fetched of it; one mail larger than
        ``fetch_bytes`` is a batch of its own). The first batches are smaller
        (``_FIRST_BATCH``, doubling), and so are the last (``_ramp``). Sizes
        and arrival times are asked for ``_FIRST_META`` mails first, then four
        times as many each time, up to ``_META_WINDOW``, when the batches
        reach them, and kept for ``_fetch`` (the first batch starts after a
        short question, not after the sizes of a whole backlog)."""
        a = self.acct
        chunk: list[int] = []
        total = 0
        most = min(_FIRST_BATCH, a.fetch_batch)
        left = len(uids)  # not yet in a batch handed out
        limit = _ramp(most, left)
        i, step = 0, _FIRST_META
        while i < len(uids):
            window, i, step = uids[i:i + step], i + step, min(step * 4, _META_WINDOW)
            meta = self._sizes_and_dates(window)
            self._meta = (folder, uidvalidity, {**{u: self._meta[2][u] for u in chunk if u in self._meta[2]}, **meta})
            for u in window:
                size = meta.get(u, (0, None))[0]
                size = size if size <= a.max_size else _HEADER_GUESS
                if chunk and (len(chunk) >= limit or total + size > a.fetch_bytes):
                    yield chunk
                    left -= len(chunk)
                    chunk, total, most = [], 0, min(most * 2, a.fetch_batch)
                    limit = _ramp(most, left)
                chunk.append(u)
                total += size
        if chunk:
            yield chunk

    def _sizes_and_dates(self, uids: list[int]) -> dict[int, tuple[int, datetime | None]]:
        """Each mail's RFC822.SIZE and when the server received it (imapclient
        gives INTERNALDATE as a local naive time)."""
        return {u: (int(d.get(b"RFC822.SIZE", 0)), _aware(d.get(b"INTERNALDATE")))
                for u, d in self._client().fetch(uids, ["RFC822.SIZE", "INTERNALDATE"]).items()}

    def _first_contact(self, folder: str, uidvalidity: int, uidnext: int) -> int:
        """A folder never seen before: where to start (``start`` in the
        account's config). Mail before that point is not answered; the
        position is recorded at once, so the next poll does not decide again."""
        start = self.acct.start
        if start == "all":
            return 0
        c = self._client()
        if start == "now":
            last = uidnext - 1
        else:
            since = c.search(["SINCE", date.fromisoformat(start)])
            last = (min(since) - 1) if since else uidnext - 1
        skipped = len(c.search(["UID", f"1:{last}"])) if last > 0 else 0
        self.pipeline.process([], sync={(self.acct.name, folder): (uidvalidity, last)})
        if skipped:
            log.warning("账号 %s 的文件夹 %s 第一次连接：按 start = %r，之前的 %d 封邮件不处理、不回复"
                        "（需要时可用 run.py replay 导入，或把 start 设为 \"all\"）", self.acct.name, folder, start, skipped)
        return last

    def _fetch(self, folder: str, uidvalidity: int, uids: list[int]) -> list[Incoming]:
        c = self._client()
        f, v, known = self._meta
        meta = {u: known[u] for u in uids if u in known} if (f, v) == (folder, uidvalidity) else {}
        if len(meta) < len(uids):
            meta = self._sizes_and_dates(uids)
        sizes = {u: m[0] for u, m in meta.items()}
        # When the server received each mail (imapclient gives local naive times).
        arrived = {u: m[1] for u, m in meta.items()}
        small = [u for u in uids if sizes.get(u, 0) <= self.acct.max_size and u in sizes]
        big = [u for u in uids if sizes.get(u, 0) > self.acct.max_size]
        items: dict[int, Incoming] = {}
        if small:
            for u, d in c.fetch(small, ["BODY.PEEK[]"]).items():
                raw = d.get(b"BODY[]") or b""
                items[u] = Incoming(raw, self.acct.name, folder, uidvalidity, u, sizes.get(u, len(raw)),
                                    arrived=arrived.get(u))
        if big:
            for u, d in c.fetch(big, ["BODY.PEEK[HEADER]"]).items():
                items[u] = Incoming(d.get(b"BODY[HEADER]") or b"", self.acct.name, folder, uidvalidity, u, sizes[u],
                                    too_large=True, arrived=arrived.get(u))
        # A UID that vanished between SEARCH and FETCH (expunged by someone) is skipped.
        return [items[u] for u in uids if u in items]

    def _reconcile(self, folder: str, uidvalidity: int) -> int:
        """After a UIDVALIDITY change, map the server's new UIDs onto the mails
        we already have (same Message-ID and size) instead of re-importing.
        Returns 0: every UID is then looked at again, and mails not mapped go
        through the pipeline, where content dedupe catches copies."""
        c = self._client()
        uids = c.search(["ALL"])
        mapped = 0
        for i in range(0, len(uids), 1000):
            chunk = uids[i:i + 1000]
            data = c.fetch(chunk, ["RFC822.SIZE", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
            with self.store.session() as s, s.begin():
                for u, d in data.items():
                    hdr = next((v for k, v in d.items() if k.startswith(b"BODY[HEADER")), b"")
                    mid = hdr.decode("latin-1").partition(":")[2].strip() or None
                    if not mid:
                        continue
                    row = s.scalars(select(Message).where(Message.account == self.acct.name, Message.folder == folder,
                                                          Message.message_id == mid, Message.size == int(d[b"RFC822.SIZE"]),
                                                          Message.duplicate_of.is_(None))).first()
                    if row is not None and (row.uidvalidity != uidvalidity):
                        row.uidvalidity, row.uid = uidvalidity, u
                        mapped += 1
        log.info("账号 %s 的文件夹 %s：%d 封已处理的邮件对应到了新的 UID", self.acct.name, folder, mapped)
        return 0

    def post_actions(self) -> int:
        """Move or flag mails whose processing is committed."""
        if self.acct.after == "keep":
            return 0
        done = 0
        for folder in self.acct.folders:
            if not self.locks.holds(folder):
                continue
            with self.store.reader() as s:
                rows = s.execute(select(Message.id, Message.uid, Message.uidvalidity).where(
                    Message.account == self.acct.name, Message.folder == folder,
                    Message.post_action_pending.is_(True))).all()
            if not rows:
                continue
            info = self._select(folder, write=True)
            current = int(info.get(b"UIDVALIDITY", 0))
            uids = [r.uid for r in rows if r.uidvalidity == current]
            c = self._client()
            for i in range(0, len(uids), 500):
                chunk = uids[i:i + 500]
                if self.acct.after == "flag":
                    c.add_flags(chunk, [self.acct.flag.encode()], silent=True)
                elif c.has_capability("MOVE"):
                    self._ensure_folder(self.acct.move_to)
                    c.move(chunk, self.acct.move_to)
                else:
                    self._ensure_folder(self.acct.move_to)
                    c.copy(chunk, self.acct.move_to)
                    c.add_flags(chunk, [b"\\Deleted"], silent=True)
                    if c.has_capability("UIDPLUS"):
                        c.uid_expunge(chunk)
                    else:
                        c.expunge()
            with self.store.session() as s, s.begin():
                s.execute(update(Message).where(Message.id.in_([r.id for r in rows])).values(post_action_pending=False))
            done += len(rows)
        return done

    def _ensure_folder(self, name: str) -> None:
        c = self._client()
        if not c.folder_exists(name):
            c.create_folder(name)


_HEADER_GUESS = 64 * 1024  # what a mail over max_size costs a batch: its header block
_META_WINDOW = 5000  # mails whose sizes are asked for at once (cutting batches)
# The sizes asked for first: enough for the first few batches. Asking for a
# whole 2,000-mail backlog's took 0.2 s before the first mail was processed,
# while the sender and the SMTP server had nothing to do.
_FIRST_META = 250
# The first batch of a pass holds at most this many mails, and each next one
# twice as many, up to fetch_batch: the replies to the first mails go out
# while the rest is processed, instead of after a whole batch.
_FIRST_BATCH = 25


def _ramp(most: int, left: int) -> int:
    """How many mails the next batch may hold: ``most`` (the ramp-up to
    fetch_batch), but no more than half of the ``left`` mails of the pass,
    down to _FIRST_BATCH. The last batches get smaller again, so that the
    replies to the mails of the one before go out while they are processed:
    where the sender keeps up, a pass ends about one small batch after its
    last commit, not one whole batch of replies later (the 2,000-mail mix
    with the SMTP sink on uvloop: 0.18 s after it instead of 0.23-0.35 s)."""
    if left <= 2 * _FIRST_BATCH:
        return most  # the rest, in one batch
    return min(most, max(_FIRST_BATCH, -(-left // 2)))


class IdleWatcher(threading.Thread):
    """Holds one IDLE connection per folder and wakes the intake job when the
    server reports a change. Re-issues IDLE before idle_renew; reconnects with
    backoff. If the server lacks IDLE, it ends and polling carries on."""

    def __init__(self, acct: AccountConfig, folder: str, on_activity: Callable[[], None], stop: threading.Event,
                 backoff_min: float = 1, backoff_max: float = 300):
        super().__init__(name=f"idle:{acct.name}:{folder}", daemon=True)
        self.acct, self.folder, self.on_activity, self.stop_event = acct, folder, on_activity, stop
        self.backoff_min, self.backoff_max = backoff_min, backoff_max
        self.supported: bool | None = None

    def run(self) -> None:
        delay = self.backoff_min
        while not self.stop_event.is_set():
            c = None
            try:
                c = connect(self.acct)
                if not c.has_capability("IDLE"):
                    self.supported = False
                    log.info("%s 不支持 IDLE，改为每 %s 秒检查一次新邮件", self.acct.host, self.acct.poll_interval)
                    return
                self.supported = True
                c.select_folder(self.folder, readonly=True)
                delay = self.backoff_min
                self.on_activity()  # catch up on anything that arrived while we were away
                c.idle()
                started = time.monotonic()
                while not self.stop_event.is_set():
                    responses = c.idle_check(timeout=1)
                    if responses:
                        self.on_activity()
                    if time.monotonic() - started >= self.acct.idle_renew:
                        c.idle_done()
                        c.idle()
                        started = time.monotonic()
                try:
                    c.idle_done()
                except Exception:
                    pass
            except NETWORK_ERRORS as e:
                log.warning("IDLE（%s）：%s；%.0f 秒后重连", self.folder, imap_line(e, self.acct), delay)
                self.stop_event.wait(delay)
                delay = min(self.backoff_max, delay * 2)
            except Exception:
                log.exception("IDLE 账号 %s 文件夹 %s 出错，%.0f 秒后重连", self.acct.name, self.folder, delay)
                self.stop_event.wait(delay)
                delay = min(self.backoff_max, delay * 2)
            finally:
                if c is not None:
                    try:
                        c.logout()
                    except Exception:
                        try:
                            c.shutdown()
                        except Exception:
                            pass


def _aware(value) -> datetime | None:
    """An INTERNALDATE as an aware datetime (a naive one is local time)."""
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.astimezone()


def _ready(future):
    """What the read-ahead ``future`` read, if it is done and did not fail
    (without waiting); None otherwise."""
    if future is None:
        return None
    return lambda: future.result() if future.done() and future.exception() is None else None
