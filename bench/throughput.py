"""Throughput: N mails through Dovecot -> `once` -> aiosmtpd, replies included,
against the raw baseline measured in the same run (IMAP UID FETCH in batches
plus stdlib parsing, no processing).

    python bench/throughput.py [--n 2000] [--kind ping|report]
"""
from __future__ import annotations

import argparse
import email
import email.header
import email.policy
import shutil
import time

from common import bench_mails, sink_count, start_servers, workdir, write_bench_config


def parse_stdlib(raw: bytes) -> None:
    """What a program reading mail with the stdlib does: the modern email API."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    for h in ("Subject", "From", "To", "Cc", "Date", "Message-ID"):
        msg.get(h)
    body = msg.get_body(preferencelist=("plain", "html"))
    if body is not None:
        body.get_content()


def parse_minimal(raw: bytes) -> None:
    """The least parsing that still decodes the text: compat32 + manual decode."""
    msg = email.message_from_bytes(raw)
    str(email.header.make_header(email.header.decode_header(msg.get("Subject", ""))))
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8", "replace")


def baseline(imap, batch: int, parse) -> float:
    """Mails per second for IMAP UID FETCH in batches plus parsing, no processing."""
    c = imap.connect()
    t = time.perf_counter()
    c.select_folder("INBOX", readonly=True)
    uids = c.search(["ALL"])
    n = 0
    for i in range(0, len(uids), batch):
        for _uid, d in c.fetch(uids[i:i + batch], ["BODY.PEEK[]"]).items():
            parse(d[b"BODY[]"])
            n += 1
    dt = time.perf_counter() - t
    c.logout()
    return n / dt


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
        b1 = baseline(imap, args.batch, parse_stdlib)
        m1 = baseline(imap, args.batch, parse_minimal)
        t = time.perf_counter()
        outcomes, stats = run_once(rt)
        ours = time.perf_counter() - t
        b2 = baseline(imap, args.batch, parse_stdlib)
        m2 = baseline(imap, args.batch, parse_minimal)
        base_rate = max(b1, b2)  # the better of the runs before and after: the stricter ratio
        rate = len(outcomes) / ours
        delivered = sink_count(work)
        statuses = {}
        for o in outcomes:
            statuses[o.status] = statuses.get(o.status, 0) + 1
        print(f"mails: {args.n} ({args.kind}); processed: {statuses}; replies accepted by SMTP: {delivered} (sent {stats.sent})")
        print(f"baseline: UID FETCH + stdlib parsing (email.policy.default, get_body): {base_rate:7.0f} mails/s (runs {b1:.0f}, {b2:.0f})")
        print(f"floor:    UID FETCH + minimal compat32 parse + decode:                 {max(m1, m2):7.0f} mails/s (runs {m1:.0f}, {m2:.0f})")
        print(f"ours:     end to end, `once`, replies accepted by SMTP:                {rate:7.0f} mails/s ({ours:.2f} s)")
        print(f"ratio:    {rate / base_rate:.0%} of the baseline, {rate / max(m1, m2):.0%} of the floor")
        if delivered != len(outcomes):
            print(f"WARNING: {len(outcomes)} mails processed but {delivered} replies accepted")
        rt.store.dispose()
    finally:
        sink.stop()
        imap.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
