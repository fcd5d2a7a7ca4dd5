"""xlsx workbooks for the reports (``--format xlsx --out FILE`` and the
monthly mail's attachment), written with openpyxl.

Every sheet has the report's headers in a bold, frozen first row with an
auto-filter; column widths follow the East-Asian display width of the
longest cell (a Chinese character counts two), capped, with long text
wrapped. Cells that hold dates are real Excel dates: ``datetime`` values as
they are, and strings like ``2026-11-03 14:20`` / ``2026-11-03`` in a column
whose header names a date or time (日期, 时间). A column whose every cell is
a number or a plain decimal string ("4.50") holds numbers; any other column
(names, record numbers, Message-IDs, a phone number among names) stays text.
Text that a spreadsheet would read as a formula (``=``, ``+``, ``-``, ``@``)
is written as a text cell (see ``formula``): what a sender wrote is never live.

A report function is registered once (``@report``) and gives
``(headers, rows)``; this module only lays them out, so the table, CSV, JSON
and xlsx outputs always show the same rows.
"""
from __future__ import annotations

import io
import re
from datetime import date, datetime
from pathlib import Path

from . import _width
from .formula import formula_like

MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

MAX_WIDTH = 60  # characters (half-width units); longer text wraps
MIN_WIDTH = 6
_DATE_HEADERS = ("日期", "时间")
_DATETIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?)?$")
_NUMBER = re.compile(r"^-?(?:0|[1-9]\d{0,14})(?:\.\d+)?$")
_BAD_SHEET_CHARS = re.compile(r"[\[\]:*?/\\]")

Sheet = tuple[str, list[str], list[list]]  # (title, headers, rows)


def sheet_title(name: str, used: set[str]) -> str:
    """A valid, unique sheet title: no []:*?/\\, at most 31 characters."""
    base = _BAD_SHEET_CHARS.sub("_", str(name or "").strip()).strip("'") or "Sheet"
    base = base[:31]
    title, n = base, 2
    while title.lower() in used:
        suffix = f"({n})"
        title = base[:31 - len(suffix)] + suffix
        n += 1
    used.add(title.lower())
    return title


def _numeric_columns(headers: list[str], rows: list[list]) -> list[bool]:
    """Columns whose every non-empty cell is a number (or a plain decimal
    string): those become numbers; a column of mixed text stays text."""
    out = []
    for i in range(len(headers)):
        vals = [r[i] for r in rows if i < len(r) and r[i] is not None and r[i] != ""]
        out.append(bool(vals) and all(
            (isinstance(v, (int, float)) and not isinstance(v, bool)) or (isinstance(v, str) and _NUMBER.match(v))
            for v in vals))
    return out


def _cell_value(value, is_date_col: bool, is_number_col: bool = False):
    """(value, number_format or None) for one cell."""
    if value is None:
        return None, None
    if isinstance(value, datetime):
        v = value.replace(tzinfo=None)  # Excel has no time zones: the caller gives local time
        return v, "yyyy-mm-dd hh:mm"
    if isinstance(value, date):
        return value, "yyyy-mm-dd"
    if isinstance(value, bool):
        return ("是" if value else "否"), None
    if isinstance(value, (int, float)):
        return value, None
    s = str(value)
    if is_date_col:
        m = _DATETIME.match(s)
        if m:
            y, mo, d, h, mi, sec = m.groups()
            try:
                if h is None:
                    return datetime(int(y), int(mo), int(d)), "yyyy-mm-dd"
                return datetime(int(y), int(mo), int(d), int(h), int(mi), int(sec or 0)), \
                    ("yyyy-mm-dd hh:mm" if sec is None else "yyyy-mm-dd hh:mm:ss")
            except ValueError:
                return s, None
    if is_number_col and _NUMBER.match(s):
        return (float(s) if "." in s else int(s)), ("0.00" if "." in s and len(s.split(".")[1]) == 2 else None)
    return s, None


def _display(value, fmt: str | None) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M" if fmt and "hh" in fmt else "%Y-%m-%d")
    return "" if value is None else str(value)


def add_sheet(wb, title: str, headers: list[str], rows: list[list], used: set[str] | None = None):
    """Append one formatted sheet to an openpyxl workbook; returns it."""
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    used = used if used is not None else {ws.title.lower() for ws in wb.worksheets}
    ws = wb.create_sheet(sheet_title(title, used))
    bold = Font(bold=True)
    widths = [_width(str(h)) for h in headers]
    date_cols = [any(k in str(h) for k in _DATE_HEADERS) for h in headers]
    num_cols = _numeric_columns(headers, rows)
    ws.append([str(h) for h in headers])
    for c in ws[1]:
        c.font = bold
        c.alignment = Alignment(vertical="center")
    wrap = Alignment(wrap_text=True, vertical="top")
    top = Alignment(vertical="top")
    for r_i, row in enumerate(rows, start=2):
        for c_i, raw in enumerate(row, start=1):
            known = c_i - 1 < len(headers)
            value, fmt = _cell_value(raw, known and date_cols[c_i - 1], known and num_cols[c_i - 1])
            cell = ws.cell(row=r_i, column=c_i, value=value)
            if isinstance(value, str) and formula_like(value):
                # openpyxl makes any "=..." a formula: force text, with Excel's quote prefix.
                cell.data_type = "s"
                cell.quotePrefix = True
            if fmt:
                cell.number_format = fmt
            text = _display(value, fmt)
            longest = max((_width(line) for line in text.split("\n")), default=0)
            if c_i - 1 < len(widths):
                widths[c_i - 1] = max(widths[c_i - 1], longest)
            cell.alignment = wrap if (longest > MAX_WIDTH or "\n" in text) else top
    for i, w in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(i)].width = max(MIN_WIDTH, min(MAX_WIDTH, w) + 2)
    ws.freeze_panes = "A2"
    if headers:
        ws.auto_filter.ref = f"A1:{get_column_letter(len(headers))}{max(1, len(rows) + 1)}"
    return ws


def workbook(sheets: list[Sheet]):
    """An openpyxl Workbook with one formatted sheet per (title, headers, rows)."""
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    used: set[str] = set()
    for title, headers, rows in sheets or [("Sheet", [], [])]:
        add_sheet(wb, title, headers, rows, used)
    return wb


def workbook_bytes(sheets: list[Sheet]) -> bytes:
    buf = io.BytesIO()
    workbook(sheets).save(buf)
    return buf.getvalue()


def write_workbook(path: str | Path, sheets: list[Sheet]) -> None:
    """Write atomically: a half-written file never replaces a good one."""
    path = Path(path)
    data = workbook_bytes(sheets)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def tracking_sheets(rt, headers: list[str], rows: list[list], *, presales: str | None = None,
                    engineers: list[str] | None = None) -> list[Sheet]:
    """The 项目跟踪表 split into one sheet per engineer (第一售前, the first
    column), sheet title = the person's name. Every engineer in the directory
    (role 售前) gets a sheet, an empty one if they have no rows, so a
    missing table is visible; owners no longer in the directory are added
    after them. With ``presales``: that engineer only."""
    by_owner: dict[str, list[list]] = {}
    for r in rows:
        by_owner.setdefault(r[0] or "", []).append(r)
    if presales:
        names = [presales]
    else:
        names = list(engineers if engineers is not None else [p.name for p in rt.directory.with_role("售前")])
        names += [o for o in sorted(by_owner) if o not in names]
    if not names:
        return [("项目跟踪表", headers, [])]
    return [(n or "（无第一售前）", headers, by_owner.get(n, [])) for n in names]
