"""processor/eventloop.py: the sender's event loop is uvloop where it is
installed; asyncio's when asked, or where uvloop is missing."""
from __future__ import annotations

import asyncio
import sys

import pytest

from processor import eventloop


async def _which() -> str:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


def test_the_default_is_uvloop_where_it_is_a_dependency():
    expected = "asyncio" if sys.platform == "win32" else "uvloop"  # pyproject.toml
    assert eventloop.run(_which()) == expected


def test_asyncio_when_asked():
    assert eventloop.run(_which(), "asyncio") == "asyncio"


def test_an_exception_in_the_coroutine_reaches_the_caller():
    async def fails():
        raise LookupError("x")

    with pytest.raises(LookupError):
        eventloop.run(fails())
