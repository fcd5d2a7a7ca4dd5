"""The collector's setting of a process that handles mail (processor.gcpolicy)."""
from __future__ import annotations

import subprocess
import sys

from support import ROOT, write_config


def test_building_a_runtime_freezes_what_is_loaded_and_leaves_the_thresholds(tmp_path):
    cfg = write_config(tmp_path)
    code = ("import gc, sys; from processor.config import load_config; from processor.pipeline import Runtime; "
            "before = gc.get_threshold(); frozen_before = gc.get_freeze_count(); "
            "rt = Runtime(load_config(sys.argv[1])); frozen = gc.get_freeze_count(); "
            "Runtime(load_config(sys.argv[1])); "
            "print(frozen_before, gc.get_threshold() == before, frozen > 10000, gc.get_freeze_count() <= frozen)")
    out = subprocess.run([sys.executable, "-c", code, str(cfg)], capture_output=True, text=True, cwd=str(ROOT))
    assert out.returncode == 0, out.stderr
    # Nothing frozen before; the runtime froze what was loaded, once: a second runtime adds nothing
    # (the count may fall, as frozen objects are freed by reference counting).
    assert out.stdout.split() == ["0", "True", "True", "True"]
