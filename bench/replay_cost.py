"""The intake's own cost, measured so that two versions of the code can be
compared on a noisy machine: the realistic mix (bench/mix.py) replayed
through Pipeline.process in this process, with no IMAP and no SMTP.

    python bench/replay_cost.py [--warm 400] [--n 400] [--build] [--store sqlite|pg]
    python bench/replay_cost.py --instructions [...]

A batch of ``--warm`` mails first (templates compiled, statements cached, a
store with some history), then ``--n`` mails are measured, in batches of
200 as the intake takes them. Replies are queued as drafts, as while the
sender keeps up (``--build``: built by the intake, as while it is behind).

By default it prints the CPU time per mail. ``--instructions`` runs the
same under valgrind's callgrind with only the measured part instrumented
and prints the instructions executed: the same count to a few parts in ten
million from run to run, whatever else the machine is doing, where the CPU
time of a run moved by a tenth and more on the shared machines the
benchmarks ran on. Syscalls and waits are not in it; throughput.py remains
the measure of the whole.
"""
from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from common import count_instructions, postgres_cpu, under_callgrind, workdir, write_bench_config
from support import drop_pg_schema, new_pg_schema_url
from mix import mix_directory, mix_mails

BATCH = 200


class _NoServer:
    """The config's IMAP and SMTP settings, never connected to."""
    port = 9
    user = "bench"
    password = "unused"


def measure(warm: int, n: int, build: bool, toggle: bool, store: str = "sqlite") -> None:
    import processor.pipeline as pipeline
    from processor.config import load_config
    from processor.pipeline import Incoming, Pipeline, Runtime

    work = workdir("bench-replay-")
    url, schema = new_pg_schema_url() if store == "pg" else (None, None)
    try:
        rt = Runtime(load_config(write_bench_config(work, _NoServer, _NoServer, directory=mix_directory(),
                                                    store_url=url)))
        if not build:
            pipeline.sender_behind = lambda _s, _limit=None: False
        p = Pipeline(rt)
        mails = mix_mails(warm + n)

        def run(first: int, last: int) -> None:
            for i in range(first, last, BATCH):
                p.process([Incoming(raw, "bench", "INBOX", 1, i + j + 1)
                           for j, raw in enumerate(mails[i:min(i + BATCH, last)])])

        run(0, warm)
        t, server = time.process_time(), postgres_cpu()
        with count_instructions(toggle):
            run(warm, warm + n)
        cpu, server = time.process_time() - t, postgres_cpu() - server
        if not toggle:
            print(f"cpu: {cpu:.3f} s for {n} mails, {1000 * cpu / n:.2f} ms a mail"
                  f" (after {warm}; replies {'built' if build else 'queued as drafts'}; store {store})"
                  + (f"; the PostgreSQL server {1000 * server / n:.2f} ms a mail" if store == "pg" else ""))
        rt.store.dispose()
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if schema:
            drop_pg_schema(schema)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--warm", type=int, default=400)
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--build", action="store_true", help="the intake builds the replies (the sender is behind)")
    ap.add_argument("--instructions", action="store_true", help="count instructions with callgrind")
    ap.add_argument("--store", default="sqlite", choices=["sqlite", "pg"])
    ap.add_argument("--_measured", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not args.instructions:
        measure(args.warm, args.n, args.build, toggle=args._measured, store=args.store)
        return
    argv = [str(Path(__file__).resolve()), "--_measured", "--warm", str(args.warm), "--n", str(args.n),
            "--store", args.store]
    count, _out = under_callgrind(argv + (["--build"] if args.build else []))
    print(f"instructions: {count:,} for {args.n} mails, {count / args.n / 1e6:.2f} million a mail"
          f" (after {args.warm}; replies {'built' if args.build else 'queued as drafts'}; store {args.store})")


if __name__ == "__main__":
    main()
