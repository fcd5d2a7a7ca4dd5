"""Cost per mail as the store grows, and complaint cost against history.

    python bench/growth.py [--stages 1000,5000,20000] [--store sqlite|pg]
    python bench/growth.py --complaints [--history 1000,20000] [--measure 200] [--instructions]

Default mode: the realistic mix (bench/mix.py) waiting in Dovecot, taken by
`once` with every reply delivered to aiosmtpd, stage after stage into the
store the previous stage left. It prints the CPU time per mail of the
processor (this process and the sender process `once` forks, which builds
and sends the replies) for each stage, the ratio to the first stage, and the
peak RSS; and, apart, this process's alone. How the building of the replies
is split between the two depends on how far the sender is behind (outbox
SENDER_BEHIND), which differs from stage to stage, so the target is judged
on their sum.

``--complaints``: for each history size, a fresh store gets that many
complaints (spread over the mix's engineers and projects) through the
pipeline, then the same ``--measure`` complaints are timed (CPU per mail),
and their SQL statements and the rows the ORM loads from the store are counted
(the same whatever the machine's speed).
The ratio of the last to the first shows whether counting grows with history.
With ``--instructions`` each history size runs under valgrind's callgrind
and the instructions of the measured complaints are counted instead of
their CPU time: the same from run to run on a noisy machine, where the CPU
time of 200 complaints moved by half.
"""
from __future__ import annotations

import argparse
import resource
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from common import bench_setup, children_cpu, count_instructions, under_callgrind, write_bench_config
from mix import PROJECTS, SALES, _Box, mix_directory, mix_mails


def complaints(n: int, seed: int, history: bool = False) -> list[bytes]:
    """n complaints; ``history``: spread over the two years before November
    2026, else in November 2026 (the month being measured)."""
    box = _Box(seed)
    if history:
        box.when = datetime(2024, 11, 1, 1, 0, tzinfo=timezone.utc)
        box.step = timedelta(days=730) / max(n, 1)
    for _ in range(n):
        box.complaint()
    return box.mails


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def grow(args) -> None:
    from processor.config import load_config
    from processor.daemon import run_once
    from processor.pipeline import Runtime

    with bench_setup("bench-growth-", args.store) as (work, imap, sink, url):
        cfg = load_config(write_bench_config(work, imap, sink, directory=mix_directory(), store_url=url))
        rt = Runtime(cfg)
        first = None
        total = 0
        for i, n in enumerate(int(x) for x in args.stages.split(",")):
            imap.append_many(mix_mails(n, seed=100 + i))
            c0, k0, t0 = time.process_time(), children_cpu(), time.perf_counter()
            outcomes, stats = run_once(rt)  # joins (and so reaps) its sender process
            own, wall = time.process_time() - c0, time.perf_counter() - t0
            cpu = own + children_cpu() - k0
            total += len(outcomes)
            per = cpu / len(outcomes) * 1000
            first = first or per
            print(f"stage {i + 1}: {len(outcomes):6d} mails into a store of {total - len(outcomes):6d}: "
                  f"{per:6.2f} ms CPU per mail ({per / first:.2f}× stage 1; this process alone "
                  f"{own / len(outcomes) * 1000:.2f} ms), {len(outcomes) / wall:5.0f} mails/s, "
                  f"sent {stats.sent}, peak RSS {rss_mb():.0f} MB")
        rt.store.dispose()


def complaint_cost(args) -> None:
    if args.instructions and not args._measured:
        first = None
        for history in (int(x) for x in args.history.split(",")):
            count, out = under_callgrind([str(Path(__file__).resolve()), "--complaints", "--_measured",
                                          "--history", str(history), "--measure", str(args.measure)])
            per = count / args.measure / 1e6
            first = first or per
            print(f"{out.strip()}; {per:.2f} million instructions per complaint ({per / first:.3f}× the first)")
        return
    from sqlalchemy import event

    from processor.config import load_config
    from processor.pipeline import Incoming, Pipeline, Runtime
    from processor.store.models import Base
    from throughput import Counter

    measured = complaints(args.measure, seed=999)
    first = None
    for history in (int(x) for x in args.history.split(",")):
        with bench_setup("bench-complaints-") as (work, imap, sink, _url):
            cfg = load_config(write_bench_config(work, imap, sink, directory=mix_directory()))
            rt = Runtime(cfg)
            p = Pipeline(rt, suppress="benchmark")
            old = complaints(history, seed=history, history=True)
            for i in range(0, len(old), 200):
                p.process([Incoming(raw) for raw in old[i:i + 200]])
            count = Counter(rt.store.engine)
            loaded = [0]

            def on_load(*_a):
                loaded[0] += 1

            event.listen(Base, "load", on_load, propagate=True)
            c0 = time.process_time()
            with count_instructions(args._measured):
                for i in range(0, len(measured), 50):
                    p.process([Incoming(raw) for raw in measured[i:i + 50]])
            per = (time.process_time() - c0) / len(measured) * 1000
            event.remove(Base, "load", on_load)
            first = first or per
            # What does not depend on the machine's speed: the statements and
            # the rows the ORM loads from the store for the same complaints.
            cost = "" if args._measured else f"{per:6.2f} ms CPU per complaint ({per / first:.2f}× the first); "
            print(f"{args.measure} complaints after {history:6d} earlier ones "
                  f"({len(SALES)} sales, {len(PROJECTS)} projects): {cost}{count.sql / len(measured):.2f} statements and "
                  f"{loaded[0] / len(measured):.1f} rows loaded as objects per complaint")
            rt.store.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stages", default="1000,5000,20000")
    ap.add_argument("--store", default="sqlite", choices=["sqlite", "pg"])
    ap.add_argument("--complaints", action="store_true")
    ap.add_argument("--history", default="1000,20000")
    ap.add_argument("--measure", type=int, default=200)
    ap.add_argument("--instructions", action="store_true",
                    help="--complaints: count the instructions of the measured complaints with callgrind")
    ap.add_argument("--_measured", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    (complaint_cost if args.complaints else grow)(args)


if __name__ == "__main__":
    main()
