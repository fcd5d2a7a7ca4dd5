"""Memory: RSS of `python run.py once` working through a backlog of 10k mails.
Target: < 200 MB.

RSS is sampled every 50 ms (psutil) for the process and all its children:
run_once forks a sender process when the backlog is >= 500. A forked child
shares pages with its parent, so the RSS sum counts shared pages twice (the
conservative figure the target is judged on); PSS, which splits shared pages
between the processes, is sampled alongside when the kernel provides it.

    python bench/memory.py [--n 10000] [--kind ping|report] [--new-store]

By default the store exists before `once` starts, as in a running
installation; ``--new-store`` measures a first run, which also creates the
schema (and imports Alembic to do it).
"""
from __future__ import annotations

import argparse
import re
import shutil
import sqlite3
import subprocess
import sys
import time

import psutil

from common import ROOT, bench_mails, sink_count, start_servers, workdir, write_bench_config

TARGET_MB = 200.0
MB = 1024 * 1024


def _mem(p: psutil.Process, pss: bool) -> tuple[int, int]:
    """(rss, pss) in bytes; pss 0 when not asked for or not available."""
    if pss:
        try:
            m = p.memory_full_info()
            return m.rss, getattr(m, "pss", 0)
        except psutil.AccessDenied:
            pass
    return p.memory_info().rss, 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--kind", default="ping", choices=["ping", "report"])
    ap.add_argument("--interval", type=float, default=0.05, help="sampling interval, seconds")
    ap.add_argument("--timeout", type=float, default=600, help="kill `once` after this many seconds")
    ap.add_argument("--no-pss", action="store_true", help="sample RSS only (PSS reads /proc/PID/smaps)")
    ap.add_argument("--new-store", action="store_true",
                    help="let `once` create the store (by default it exists, as in a running installation)")
    args = ap.parse_args()

    work = workdir("bench-mem-")
    imap, sink = start_servers(work)
    proc = None
    try:
        t = time.perf_counter()
        imap.append_many(bench_mails(args.n, args.kind))
        print(f"mailbox: {args.n} mails ({args.kind}) loaded in {time.perf_counter() - t:.1f} s")
        cfg_path = write_bench_config(work, imap, sink)
        out_path = work / "once.out"
        if not args.new_store:  # the store as an earlier run left it: schema at the newest revision
            subprocess.run([sys.executable, "-c", "import sys; from processor.config import load_config; "
                            "from processor.store.db import Store; Store(load_config(sys.argv[1]).store_url).dispose()",
                            str(cfg_path)], cwd=str(ROOT), check=True)

        samples: list[tuple[float, int, int, int, int]] = []  # (t, parent rss, children rss, total pss, n children)
        peak_parent = peak_children = peak_total = peak_pss = 0
        max_children = 0
        want_pss = not args.no_pss
        with open(out_path, "wb") as out:
            t0 = time.monotonic()
            proc = psutil.Popen([sys.executable, str(ROOT / "run.py"), "once", "--config", str(cfg_path)],
                                cwd=str(ROOT), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            while proc.poll() is None:
                if time.monotonic() - t0 > args.timeout:
                    print(f"`once` still running after {args.timeout:.0f} s: killed")
                    for k in proc.children(recursive=True):
                        k.kill()
                    proc.kill()
                    break
                try:
                    p_rss, p_pss = _mem(proc, want_pss)
                    kids = proc.children(recursive=True)
                except psutil.NoSuchProcess:
                    break
                c_rss = c_pss = 0
                for k in kids:
                    try:
                        r, s = _mem(k, want_pss)
                    except psutil.NoSuchProcess:
                        continue
                    c_rss += r
                    c_pss += s
                samples.append((time.monotonic() - t0, p_rss, c_rss, p_pss + c_pss, len(kids)))
                peak_parent = max(peak_parent, p_rss)
                peak_children = max(peak_children, c_rss)
                peak_total = max(peak_total, p_rss + c_rss)
                peak_pss = max(peak_pss, p_pss + c_pss)
                max_children = max(max_children, len(kids))
                time.sleep(args.interval)
            rc = proc.wait()
            elapsed = time.monotonic() - t0

        output = out_path.read_text("utf-8", "replace")
        m = re.search(r"处理邮件 (\d+) 封；发出 (\d+) 封", output)
        con = sqlite3.connect(f"file:{work / 'data' / 'processor.db'}?mode=ro", uri=True)
        try:
            rows = dict(con.execute("SELECT status, count(*) FROM messages GROUP BY status").fetchall())
        finally:
            con.close()
        delivered = sink_count(work)

        print(f"`python run.py once`: exit code {rc}, {elapsed:.1f} s, {len(samples)} samples every "
              f"{args.interval * 1000:.0f} ms, up to {max_children} child process(es)")
        # The summary line and any exception lines (a traceback's SQL can be very long).
        keep = [ln[:200] for ln in output.splitlines()
                if "处理邮件" in ln or "发信服务器" in ln or re.match(r"^[\w.]+(Error|Exception)\b", ln)]
        print("--- `once` output (summary and exceptions) ---\n" + "\n".join(keep[-12:]) + "\n---")
        crashed = "Traceback" in output
        if crashed:
            print("WARNING: a traceback in the output (a crashed sender child leaves the parent to deliver "
                  "everything at the end: the child's memory is then missing from the peak)")
        with_child = sum(1 for x in samples if x[2] > 0)
        if max_children:
            print(f"sender child alive (RSS > 0) in {with_child} of {len(samples)} samples")
        print(f"mails processed: {m.group(1) if m else '?'} (store: {rows}); "
              f"replies delivered (accepted by the sink): {delivered} (`once` says sent {m.group(2) if m else '?'})")
        print("RSS over time (s: parent + children = total MB):")
        step = max(1, len(samples) // 10)
        for s in samples[::step] + samples[-1:]:
            print(f"  {s[0]:6.1f} s: {s[1] / MB:6.1f} + {s[2] / MB:6.1f} = {(s[1] + s[2]) / MB:6.1f} MB"
                  + (f"  (PSS {s[3] / MB:6.1f} MB)" if s[3] else "") + f"  [{s[4]} children]")
        print(f"peak RSS, parent:              {peak_parent / MB:6.1f} MB")
        print(f"peak RSS, children:            {peak_children / MB:6.1f} MB")
        print(f"peak RSS, parent + children:   {peak_total / MB:6.1f} MB (same instant; shared pages counted twice)")
        if peak_pss:
            print(f"peak PSS, parent + children:   {peak_pss / MB:6.1f} MB (shared pages split)")
        print(f"target RSS < {TARGET_MB:.0f} MB with a backlog of {args.n}: "
              f"{'met' if peak_total / MB < TARGET_MB else 'NOT met'}"
              + ("" if m and int(m.group(1)) == args.n else " (WARNING: not every mail was processed)")
              + (" (INVALID RUN: a process crashed, see above)" if crashed else ""))
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        sink.stop()
        imap.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
