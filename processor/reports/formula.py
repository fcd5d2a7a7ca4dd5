"""Spreadsheet formula injection: a cell a sender wrote must never become a
live formula in an export (OWASP "CSV injection").

Spreadsheet programs treat a cell that begins with ``=``, ``+``, ``-`` or
``@`` as a formula (and some strip a leading tab or carriage return first).
In the xlsx workbooks such a value is written as a text cell with Excel's
quote prefix, so it shows verbatim and stays text even when edited. CSV has
no cell types: the value gets a leading apostrophe, the usual convention,
which spreadsheet programs treat as "this is text". A plain number
(``-4``, ``+1.5``) is not a formula and is left alone.
"""
from __future__ import annotations

import re

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?\d+(?:\.\d+)?$")


def formula_like(value: str) -> bool:
    """Would a spreadsheet program read this cell text as a formula?"""
    return value.startswith(FORMULA_START) and not _PLAIN_NUMBER.match(value)


def csv_cell(value: str) -> str:
    """The CSV form of one cell: formula-like text gets a leading apostrophe."""
    return "'" + value if formula_like(value) else value
