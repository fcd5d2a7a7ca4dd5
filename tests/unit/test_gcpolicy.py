"""The collector's settings of a process that handles mail (processor.gcpolicy)."""
from __future__ import annotations

import subprocess
import sys

from support import ROOT, write_config


def test_building_a_runtime_freezes_what_is_loaded_and_makes_young_collections_rarer(tmp_path):
    cfg = write_config(tmp_path)
    code = ("import gc, sys; from processor.config import load_config; from processor.pipeline import Runtime; "
            "from processor import gcpolicy; before = gc.get_threshold(); "
            "rt = Runtime(load_config(sys.argv[1])); after = gc.get_threshold(); frozen = gc.get_freeze_count(); "
            "print(before[0], after[0] == gcpolicy.YOUNG, after[1:] == before[1:], frozen > 10000)")
    out = subprocess.run([sys.executable, "-c", code, str(cfg)], capture_output=True, text=True, cwd=str(ROOT))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["700", "True", "True", "True"]
