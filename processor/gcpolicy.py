"""The garbage collector's settings for a process that handles mail.

A batch allocates hundreds of thousands of short-lived objects: parsed mails,
ORM rows, rendered replies. CPython's default settings collect the young
generation every 700 allocations, and its older collections walk every
long-lived object too: the imported modules, the compiled templates, the
rules and the directory. Measured on the 2,000-mail mix (bench/throughput.py),
the settings below take about 5 % off the processing process's CPU.

Reference counting still frees almost everything at once; these settings only
make the search for reference cycles rarer (a young collection every
``YOUNG`` allocations), and leave out of it what exists when the first
runtime is built. The memory benchmark (bench/memory.py) stays within its
target with them.
"""
from __future__ import annotations

import gc

YOUNG = 20_000  # allocations between two collections of the young generation (CPython: 700)
_applied = False


def apply() -> None:
    """Once per process, when the first runtime is built (everything loaded
    by then lives as long as the process): freeze what exists, so that no
    collection walks it again (and a forked sender shares it unchanged), and
    collect the young generation every YOUNG allocations."""
    global _applied
    if _applied:
        return
    _applied = True
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG, older, oldest)
