"""Latency with IMAP IDLE: from a mail landing in the mailbox (IMAP APPEND
returned) to its reply being accepted by the SMTP sink. Target: p95 < 1 s.

`python run.py serve` runs as a subprocess with poll_interval = 3600, so only
IDLE can trigger the intake. Mails are appended one at a time with a random
gap; replies are matched by In-Reply-To. Also measured: the floor, a bare
IDLE client's APPEND -> EXISTS delay (Dovecot notifies ~0.5 s after a change).
With gaps under 0.5 s a mail can land while the previous one's notification
is pending and be fetched by that poll; --gap-min 1 --gap-max 1.5 measures
isolated events. --preload N starts from an INBOX of N old (processed) mails.

    python bench/latency.py [--n 50] [--gap-min 0.2] [--gap-max 0.6] [--preload 0]

BENCH_KEEP=1 keeps the temp dir (serve.log, the store) for a look afterwards.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timezone

from common import (BODY, ROOT, SUBMITTED, SinkReader, header, make_mail, percentile, start_servers, workdir,
                    write_bench_config)

TARGET_MS = 1000.0


def stop_process(proc: subprocess.Popen, timeout: float = 15) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _epoch(v: str | None) -> float | None:
    """A datetime the store wrote (naive UTC in SQLite) as a Unix timestamp."""
    if not v:
        return None
    d = datetime.fromisoformat(v)
    if d.tzinfo is None:
        d = d.replace(tzinfo=timezone.utc)
    return d.timestamp()


def stages(db_path, appended: dict[str, float], accepted: dict[str, float]) -> dict[str, list[float]]:
    """Per-mail split of the latency (ms), using the time the pipeline built the
    mail's row (messages.received_at): intake = APPEND -> row built (IDLE
    notification, wake-up, STATUS, SELECT, FETCH, parse, rules); delivery = row
    built -> reply accepted by the sink (commit, outbox job, SMTP)."""
    out: dict[str, list[float]] = {"intake (APPEND -> row built)": [], "delivery (row built -> SMTP accepted)": []}
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT m.message_id, m.received_at FROM messages m").fetchall()
    finally:
        con.close()
    for mid, rec in rows:
        t_row = _epoch(rec)
        if mid in appended and t_row is not None:
            out["intake (APPEND -> row built)"].append((t_row - appended[mid]) * 1000)
            if mid in accepted:
                out["delivery (row built -> SMTP accepted)"].append((accepted[mid] - t_row) * 1000)
    return out


def idle_floor(imap, n: int, rnd: random.Random, gap_min: float, gap_max: float, folder: str = "IdleFloor") -> list[float]:
    """The floor: a bare imapclient IDLE on its own folder, APPEND -> EXISTS seen (ms),
    same gaps. Dovecot sends IDLE notifications ~0.5 s after the change (it
    batches changes), so this is the part of the latency no IDLE client removes."""
    imap.ensure_folder(folder)
    w = imap.connect()
    base = w.select_folder(folder, readonly=True)[b"EXISTS"]
    seen: dict[int, float] = {}
    stop = threading.Event()

    def watch() -> None:
        w.idle()
        top = base
        while not stop.is_set():
            for resp in w.idle_check(timeout=0.2):
                if len(resp) >= 2 and resp[1] == b"EXISTS" and resp[0] > top:
                    now = time.time()
                    for k in range(top + 1, resp[0] + 1):
                        seen[k] = now
                    top = resp[0]
        w.idle_done()

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    a = imap.connect()
    appended = {}
    try:
        for i in range(n):
            time.sleep(rnd.uniform(gap_min, gap_max))
            a.append(folder, make_mail(subject=f"floor {i}"))
            appended[base + i + 1] = time.time()
        deadline = time.monotonic() + 5
        while len(seen) < n and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        t.join(5)
        for c in (a, w):
            try:
                c.logout()
            except Exception:
                pass
    return [(seen[k] - at) * 1000 for k, at in appended.items() if k in seen]


def preload(imap, cfg_path, n: int) -> None:
    """Bulk-load n old mails into INBOX and tell the store they are processed
    (SyncState at UIDNEXT-1), so the daemon starts on a big, idle mailbox."""
    from poll_cost import small_mails
    from processor.config import load_config
    from processor.store.db import Store
    from processor.store.models import SyncState

    t = time.perf_counter()
    imap.append_many(small_mails(n), recent=False)
    c = imap.connect()
    st = c.folder_status("INBOX", [b"UIDVALIDITY", b"UIDNEXT"])
    c.logout()
    cfg = load_config(cfg_path)
    store = Store(cfg.store_url)
    with store.session() as s, s.begin():
        s.merge(SyncState(account=cfg.accounts[0].name, folder="INBOX", uidvalidity=int(st[b"UIDVALIDITY"]),
                          last_uid=int(st[b"UIDNEXT"]) - 1))
    store.dispose()
    print(f"preloaded {n} old mails (marked processed) in {time.perf_counter() - t:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--gap-min", type=float, default=0.2)
    ap.add_argument("--gap-max", type=float, default=0.6)
    ap.add_argument("--warmup", type=int, default=3, help="mails sent (and answered) before measuring")
    ap.add_argument("--ready-timeout", type=float, default=60, help="seconds to wait for each warm-up reply")
    ap.add_argument("--drain-timeout", type=float, default=30, help="seconds to wait for replies after the last mail")
    ap.add_argument("--floor-n", type=int, default=10, help="mails for the bare-IDLE floor (0: skip)")
    ap.add_argument("--preload", type=int, default=0,
                    help="old mails bulk-loaded into INBOX first and marked processed in the store (a big mailbox)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    tag = uuid.uuid4().hex[:8]

    work = workdir("bench-lat-")
    imap, sink = start_servers(work)
    proc = None
    log_path = work / "serve.log"
    try:
        floor = idle_floor(imap, args.floor_n, rnd, args.gap_min, args.gap_max) if args.floor_n else []
        cfg_path = write_bench_config(work, imap, sink, account_extra="poll_interval = 3600")
        if args.preload:
            preload(imap, cfg_path, args.preload)
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "serve", "--config", str(cfg_path)],
                                    cwd=str(ROOT), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        reader = SinkReader(work)
        accepted: dict[str, float] = {}  # In-Reply-To -> time the sink accepted the reply

        def collect() -> None:
            for at, raw in reader.new():
                irt = header(raw, "In-Reply-To")
                if irt:
                    accepted.setdefault(irt, at)

        def mail(i: int, label: str) -> tuple[str, bytes]:
            mid = f"<lat-{tag}-{label}-{i}@client.example>"
            return mid, make_mail(subject=f"工单测试 {i}", body=BODY.format(n=i % 100), message_id=mid,
                                headers=SUBMITTED)

        c = imap.connect()
        try:
            # Ready = the daemon answered a warm-up mail (IDLE watcher connected, code paths warm).
            t_start = time.monotonic()
            for i in range(args.warmup):
                mid, raw = mail(i, "warmup")
                c.append("INBOX", raw)
                t0 = time.time()
                deadline = time.monotonic() + args.ready_timeout
                while mid not in accepted and time.monotonic() < deadline and proc.poll() is None:
                    time.sleep(0.02)
                    collect()
                if mid not in accepted:
                    tail = log_path.read_text("utf-8", "replace")[-3000:]
                    print(f"daemon not ready: no reply to warm-up mail {i} within {args.ready_timeout:.0f} s "
                          f"(exit code {proc.poll()})\n--- serve.log tail ---\n{tail}")
                    return
                print(f"warm-up {i}: reply after {(accepted[mid] - t0) * 1000:.0f} ms")
            print(f"daemon ready after {time.monotonic() - t_start:.1f} s")

            appended: dict[str, float] = {}
            for i in range(args.n):
                time.sleep(rnd.uniform(args.gap_min, args.gap_max))
                collect()
                mid, raw = mail(i, "m")
                c.append("INBOX", raw)
                appended[mid] = time.time()
        finally:
            try:
                c.logout()
            except Exception:
                pass

        deadline = time.monotonic() + args.drain_timeout
        while time.monotonic() < deadline and proc.poll() is None:
            collect()
            if all(m in accepted for m in appended):
                break
            time.sleep(0.05)
        collect()
        alive = proc.poll() is None
        stop_process(proc)

        lat = [(accepted[m] - t) * 1000 for m, t in appended.items() if m in accepted]
        missing = [m for m in appended if m not in accepted]
        print(f"mails: {len(appended)} (gap {args.gap_min}-{args.gap_max} s, IDLE only: poll_interval = 3600"
              + (f", INBOX preloaded with {args.preload} old mails)" if args.preload else ")"))
        print(f"replies matched: {len(lat)}; never arrived (within {args.drain_timeout:.0f} s): {len(missing)}"
              + ("" if alive else "; WARNING: the daemon exited early"))
        if lat:
            p95 = percentile(lat, 95)
            print(f"latency APPEND -> reply accepted: p50 {percentile(lat, 50):.0f} ms, p95 {p95:.0f} ms, "
                  f"max {max(lat):.0f} ms, min {min(lat):.0f} ms")
            for name, vals in stages(work / "data" / "processor.db", appended, accepted).items():
                if vals:
                    print(f"  {name:40s} p50 {percentile(vals, 50):6.0f} ms, p95 {percentile(vals, 95):6.0f} ms, "
                          f"max {max(vals):6.0f} ms")
            if floor:
                print(f"floor (bare IDLE client, APPEND -> EXISTS, {len(floor)} mails, same gaps): "
                      f"p50 {percentile(floor, 50):.0f} ms, p95 {percentile(floor, 95):.0f} ms, max {max(floor):.0f} ms "
                      "(Dovecot sends IDLE notifications ~0.5 s after a change; the daemon can beat that when a "
                      "mail lands while the previous one's notification is pending: that poll fetches both. "
                      "Gaps >= 0.5 s (--gap-min 1 --gap-max 1.5) measure isolated events)")
            met = p95 < TARGET_MS and not missing
            print(f"target p95 < {TARGET_MS:.0f} ms: {'met' if met else 'NOT met'}"
                  + (" (some replies missing)" if missing and p95 < TARGET_MS else ""))
        else:
            print(f"target p95 < {TARGET_MS:.0f} ms: NOT met (no replies)")
    finally:
        if proc is not None:
            stop_process(proc)
        sink.stop()
        imap.close()
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
