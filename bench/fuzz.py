"""Fuzz: 10,000 mutated mails (tests/fuzzmail.py: truncation, flipped bytes,
broken boundaries, bogus charsets, NULs, bad base64/QP, header floods, deep
nesting, nested rfc822 bombs, huge values) through the pipeline, one mail per
call as `replay` would take them (size limit included), into a fresh store.

Prints the outcome counts (every mail must be recorded: no crash, no logged
traceback), the counts per mutation, the slowest mails and the peak RSS.
A slow mail is judged against the median (ratios, not seconds).

    python bench/fuzz.py [--n 10000] [--seed N] [--db URL] [--top 15]
"""
from __future__ import annotations

import argparse
import logging
import resource
import statistics
import time
import traceback
from collections import Counter, defaultdict

from common import DIRECTORY, ROOT, workdir  # noqa: F401  (common sets sys.path)
from fuzzmail import iter_fuzz_mails

from processor.config import load_config
from processor.pipeline import Incoming, Pipeline, Runtime
from processor.intake.files import header_block


class _Tracebacks(logging.Handler):
    """Counts log records that carry a traceback (an admin would see one)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        if record.exc_info:
            self.records.append(record)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--db", default="", help="store URL (default: SQLite in a temp dir)")
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    print(f"seed={args.seed} n={args.n}")

    work = workdir("bench-fuzz-")
    (work / "directory.toml").write_text(DIRECTORY, encoding="utf-8")
    url = args.db or f"sqlite:///{work / 'data' / 'processor.db'}"
    (work / "config.toml").write_text(f"""
[system]
address = "tracking@company.example"

[limits]
replies_per_recipient_per_day = 1000000

# The fuzzed mails carry no trust marks; take their From at face value, so
# that they reach the workflows instead of stopping at the trust check.
[trust]
trust_from_header = true

[store]
url = "{url}"

[paths]
rules = "{ROOT / 'rules'}"
templates = "{ROOT / 'templates'}"
directory = "directory.toml"
""", encoding="utf-8")
    cfg = load_config(work / "config.toml")
    rt = Runtime(cfg)
    pipe = Pipeline(rt)
    tb = _Tracebacks()
    logging.getLogger().addHandler(tb)
    logging.getLogger().setLevel(logging.WARNING)

    status = Counter()
    per_kind: dict[str, Counter] = defaultdict(Counter)
    timings = []
    crashes = []
    limit = cfg.limits.max_mail_size
    t0 = time.perf_counter()
    volume = 0
    for i, (kind, raw) in enumerate(iter_fuzz_mails(args.n, args.seed)):
        volume += len(raw)
        big = len(raw) > limit
        inc = Incoming(header_block(raw) if big else raw, size=len(raw), too_large=big)
        t = time.perf_counter()
        try:
            (o,) = pipe.process([inc])
            st, reason = o.status, o.reason
        except Exception as e:  # a crash: replay would have died here
            st, reason = "CRASH", f"{type(e).__name__}: {e}"
            crashes.append((i, kind, traceback.format_exc()))
        dt = time.perf_counter() - t
        status[st] += 1
        for k in kind.split("+"):
            per_kind[k][st] += 1
        timings.append((dt, i, kind, len(raw), st, reason))
        if (i + 1) % 1000 == 0:
            print(f"  {i + 1} mails, {time.perf_counter() - t0:.0f}s")
    total = time.perf_counter() - t0

    n = len(timings)
    print(f"\nprocessed {n} mails ({volume / 1e6:.0f} MB, generation included) in {total:.1f}s ({n / total:.1f}/s); "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    print("outcomes: " + ", ".join(f"{k}={v}" for k, v in status.most_common()))
    print("per mutation:")
    for k in sorted(per_kind):
        print(f"  {k:13s} " + ", ".join(f"{s}={n}" for s, n in per_kind[k].most_common()))
    med = statistics.median(t for t, *_ in timings)
    print(f"\nmedian {med * 1000:.1f} ms per mail; the {args.top} slowest (x median):")
    for dt, i, kind, size, st, reason in sorted(timings, reverse=True)[:args.top]:
        print(f"  #{i:<6d} {dt / med:7.0f}x  {dt * 1000:8.0f} ms  {size / 1024:9.0f} KB  {kind:32s} {st:11s} {reason[:60]}")
    print(f"\ncrashes: {len(crashes)}; logged tracebacks: {len(tb.records)}")
    for i, kind, text in crashes[:3]:
        print(f"--- mail #{i} ({kind}) ---\n{text}")
    for r in tb.records[:3]:
        print(f"--- logged: {r.getMessage()[:200]}")
    print(f"store: {url}")
    raise SystemExit(1 if crashes or tb.records else 0)


if __name__ == "__main__":
    main()
