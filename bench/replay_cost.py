"""The intake's own cost, measured so that two versions of the code can be
compared on a noisy machine: the realistic mix (bench/mix.py) replayed
through Pipeline.process in this process, with no IMAP and no SMTP.

    python bench/replay_cost.py [--warm 400] [--n 400] [--build]
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
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import workdir, write_bench_config
from mix import mix_directory, mix_mails

BATCH = 200


class _NoServer:
    """The config's IMAP and SMTP settings, never connected to."""
    port = 9
    user = "bench"
    password = "unused"


def measure(warm: int, n: int, build: bool, toggle: bool) -> None:
    import processor.pipeline as pipeline
    from processor.config import load_config
    from processor.pipeline import Incoming, Pipeline, Runtime

    work = workdir("bench-replay-")
    try:
        rt = Runtime(load_config(write_bench_config(work, _NoServer, _NoServer, directory=mix_directory())))
        if not build:
            pipeline.sender_behind = lambda _s, _limit=None: False
        p = Pipeline(rt)
        mails = mix_mails(warm + n)

        def run(first: int, last: int) -> None:
            for i in range(first, last, BATCH):
                p.process([Incoming(raw, "bench", "INBOX", 1, i + j + 1)
                           for j, raw in enumerate(mails[i:min(i + BATCH, last)])])

        run(0, warm)
        if toggle:
            subprocess.run(["callgrind_control", "-i", "on", str(os.getpid())], stdout=subprocess.DEVNULL, check=True)
        t = time.process_time()
        run(warm, warm + n)
        cpu = time.process_time() - t
        if toggle:
            subprocess.run(["callgrind_control", "-i", "off", str(os.getpid())], stdout=subprocess.DEVNULL, check=True)
        else:
            print(f"cpu: {cpu:.3f} s for {n} mails, {1000 * cpu / n:.2f} ms a mail"
                  f" (after {warm}; replies {'built' if build else 'queued as drafts'})")
        rt.store.dispose()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--warm", type=int, default=400)
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--build", action="store_true", help="the intake builds the replies (the sender is behind)")
    ap.add_argument("--instructions", action="store_true", help="count instructions with callgrind")
    ap.add_argument("--_measured", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not args.instructions:
        measure(args.warm, args.n, args.build, toggle=args._measured)
        return
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    out = workdir("bench-callgrind-") / "callgrind.out"
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
           sys.executable, str(Path(__file__).resolve()), "--_measured", "--warm", str(args.warm), "--n", str(args.n)]
    if args.build:
        cmd.append("--build")
    # The same hash seed each run: sets and dicts of strings iterate alike.
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    collected = [line for line in p.stderr.splitlines() if "Collected :" in line]
    if p.returncode != 0 or not collected:
        sys.exit(p.stderr[-3000:])
    count = int(collected[-1].split(":")[-1].strip().replace(",", ""))
    print(f"instructions: {count:,} for {args.n} mails, {count / args.n / 1e6:.2f} million a mail"
          f" (after {args.warm}; replies {'built' if args.build else 'queued as drafts'})")
    shutil.rmtree(out.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
