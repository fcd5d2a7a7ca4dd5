"""The garbage collector's setting for a process that handles mail.

CPython's full collections walk every object that lives in the process: the
imported modules, the compiled rules, the directory, SQLAlchemy's mappers.
Measured on the 2,000-mail mix (bench/throughput.py), the processing process
ran three full collections of about 60 ms each, 7 % of its CPU. What exists
when the first runtime is built lives as long as the process, so it is frozen
(``gc.freeze``): no collection walks it again, and a forked sender shares its
pages unchanged. The full collections then cost about 15 ms each.

Nothing else changes: reference counting frees almost everything at once, and
the young generation is collected as often as CPython's default says (a rarer
young collection was tried: cycles of ORM rows then reached the oldest
generation and peak RSS went over its target).

What a reload replaces (the old rules, templates and directory) was frozen
too: it is freed by reference counting like everything else, but a reference
cycle among it is never collected. A reload is an admin's edit, a few times a
day at most.
"""
from __future__ import annotations

import gc

_applied = False


def apply() -> None:
    """Once per process, when the first runtime is built: freeze what exists."""
    global _applied
    if _applied:
        return
    _applied = True
    gc.collect()  # what is garbage now is not frozen with the rest
    gc.freeze()
