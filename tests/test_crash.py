"""Crash safety: kill a real `run.py serve` with SIGKILL at random moments while
a few hundred mails flow through Dovecot, restart it, and check that every mail
was processed exactly once and every reply delivered once.

SMTP has no two-phase commit: if the daemon dies after the server accepted a
mail but before the acceptance was recorded, that one mail is sent again with
the same Message-ID (the idempotency key receivers can dedupe on). Such rows are
flagged `uncertain` at restart; the test allows a second copy only for them, and
fails on any other repeat. Only rows really in flight may be flagged: at most
one per SMTP connection per kill.

Runs on SQLite and on PostgreSQL.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time

from sqlalchemy.exc import OperationalError, ProgrammingError

from processor.config import load_config
from support import ROOT, assert_each_once, make_mail, store_state, write_config

N_MAILS = 300
N_KILLS = 10


def start(cfg) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--config", str(cfg), "serve"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)


def test_sigkill_at_random_moments_loses_nothing_and_sends_nothing_twice(tmp_path, imap_server, smtp_server, db_url):
    seed = int(os.environ.get("CRASH_SEED", time.time()))
    rnd = random.Random(seed)
    print(f"CRASH_SEED={seed}")
    cfg = write_config(tmp_path, imap=imap_server, smtp=smtp_server, db_url=db_url,
                       account={"poll_interval": 0.5, "fetch_batch": 20},
                       extra="[limits]\nreplies_per_recipient_per_day = 100000\n")
    originals = [make_mail(subject=f"工单测试 {i}", message_id=f"<crash-{i}@client.example>") for i in range(N_MAILS)]

    def feed():
        for i in range(0, N_MAILS, 10):
            imap_server.append_many(originals[i:i + 10], method="imap")
            time.sleep(rnd.uniform(0.02, 0.15))

    feeder = threading.Thread(target=feed)
    proc = start(cfg)
    feeder.start()
    kills = 0
    try:
        while kills < N_KILLS:
            time.sleep(rnd.uniform(0.1, 1.2))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            proc = start(cfg)
        feeder.join()
        # Let the last incarnation finish the work.
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                msgs, out = store_state(cfg)
            except (OperationalError, ProgrammingError):  # the newest incarnation is still creating the schema
                time.sleep(0.5)
                continue
            if (sum(m.status == "processed" for m in msgs) >= N_MAILS and out
                    and all(o.status == "sent" for o in out) and len(out) >= N_MAILS):
                break
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        feeder.join()

    msgs, out = store_state(cfg)
    counts = assert_each_once(msgs, out, smtp_server, {f"<crash-{i}@client.example>" for i in range(N_MAILS)}, seed)
    uncertain = {o.message_id for o in out if o.uncertain}
    connections = load_config(cfg).smtp.connections
    assert len(uncertain) <= kills * connections, f"seed {seed}: {len(uncertain)} rows flagged uncertain after {kills} kills"
    print(f"kills={kills} uncertain rows={counts['uncertain']} repeated sends={counts['repeated']}")
