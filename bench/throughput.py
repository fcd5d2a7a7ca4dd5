"""Throughput: N mails through Dovecot -> `once` -> aiosmtpd, replies included,
against the raw baseline measured in the same run (IMAP UID FETCH in batches
plus stdlib parsing, no processing).

    python bench/throughput.py [--n 2000] [--kind ping|report]
"""
from __future__ import annotations

import argparse
import email
import shutil
import time

from common import bench_mails, sink_count, start_servers, workdir, write_bench_config


def baseline(imap, batch: int) -> tuple[int, float]:
    c = imap.connect()
    t = time.perf_counter()
    c.select_folder("INBOX", readonly=True)
    uids = c.search(["ALL"])
    n = 0
    for i in range(0, len(uids), batch):
        for _uid, d in c.fetch(uids[i:i + batch], ["BODY.PEEK[]"]).items():
            msg = email.message_from_bytes(d[b"BODY[]"])
            str(email.header.make_header(email.header.decode_header(msg.get("Subject", ""))))
            for part in msg.walk():
                if part.get_content_maintype() == "text":
                    part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8", "replace")
            n += 1
    dt = time.perf_counter() - t
    c.logout()
    return n, dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--kind", default="ping", choices=["ping", "report"])
    ap.add_argument("--batch", type=int, default=200)
    args = ap.parse_args()

    from processor.config import load_config
    from processor.daemon import run_once
    from processor.pipeline import Runtime

    work = workdir("bench-tp-")
    imap, sink = start_servers(work)
    try:
        imap.append_many(bench_mails(args.n, args.kind))
        cfg = load_config(write_bench_config(work, imap, sink, batch=args.batch))
        rt = Runtime(cfg)
        b1 = baseline(imap, args.batch)
        t = time.perf_counter()
        outcomes, stats = run_once(rt)
        ours = time.perf_counter() - t
        b2 = baseline(imap, args.batch)
        base_rate = max(b1[0] / b1[1], b2[0] / b2[1])
        rate = len(outcomes) / ours
        delivered = sink_count(work)
        statuses = {}
        for o in outcomes:
            statuses[o.status] = statuses.get(o.status, 0) + 1
        print(f"mails: {args.n} ({args.kind}); processed: {statuses}; replies accepted by SMTP: {delivered} (sent {stats.sent})")
        print(f"baseline (UID FETCH + stdlib parse): {base_rate:8.0f} mails/s  (runs: {b1[0]/b1[1]:.0f}, {b2[0]/b2[1]:.0f})")
        print(f"end to end (once, replies included): {rate:8.0f} mails/s  ({ours:.2f} s)")
        print(f"ratio: {rate / base_rate:.0%} of baseline")
        rt.store.dispose()
    finally:
        sink.stop()
        imap.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
