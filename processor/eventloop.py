"""Which event loop runs a coroutine: uvloop or asyncio's own.

The SMTP sender runs on uvloop where it is installed (Linux and macOS, where
it is a dependency): its transports and selector are C, and a sender spends
much of its time in them, writing SMTP commands and reading replies. On the
mix benchmark that took the forked sender's CPU from about 1.6 to 1.5 s.
Elsewhere (Windows) asyncio's loop runs it. The development SMTP server
runs on asyncio's loop unless asked (``--loop uvloop``): the benchmarks'
stand-in for a mail server, whose cost on the shared cores they report.
"""
from __future__ import annotations

import asyncio

try:
    import uvloop
except ImportError:  # Windows, or a Python uvloop does not support
    uvloop = None

LOOPS = ("uvloop", "asyncio")


def run(coro, loop: str = "uvloop"):
    """Run ``coro`` to completion on a new event loop of kind ``loop``
    (uvloop falls back to asyncio's where it is not installed); return
    its result."""
    if loop == "uvloop" and uvloop is not None:
        return uvloop.run(coro)
    return asyncio.run(coro)
