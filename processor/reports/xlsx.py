"""xlsx workbooks for the reports (``--format xlsx --out FILE`` and the
monthly mail's attachment), written with openpyxl.

Every sheet is made to be forwarded or printed as it is: a title row, a
period row (统计期间 ...), then the report's headers in a bold, frozen row
with an auto-filter, the rows, and a bold 合计 row where the caller gives
one (values, never formulas); further tables and native bar charts may
follow (the monthly 汇总). Columns of Message-IDs (internal identifiers) are
hidden. Print setup: A4 landscape, fitted to one page wide, the rows down to
the header repeated on every page, the period and 第 N 页，共 M 页 in the
footer. Column widths follow the East-Asian display width of the
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
from dataclasses import dataclass, field
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
_MESSAGE_ID = re.compile(r"^<[^<>\s]+@[^<>\s]+>$")

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


@dataclass
class Chart:
    """A native bar chart of some columns of one of a sheet's tables (0: the
    main table, 1...: the tables below it), one series per column."""
    title: str
    columns: list[str]
    table: int = 0
    anchor: str = ""  # top-left cell; default: right of the tables
    y_title: str = ""


@dataclass
class Sheet:
    """One sheet: a title row, a period row, the table (a bold header row,
    the rows, a 合计 row when ``totals`` is given), further tables below it
    (``below``: (heading, headers, rows, totals)) and native charts."""
    title: str
    headers: list[str]
    rows: list[list]
    heading: str = ""  # the title row; default: the sheet title
    totals: list | None = None
    below: list[tuple[str, list[str], list[list], list | None]] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)

    def __iter__(self):  # (title, headers, rows), as sheets were tuples
        return iter((self.title, self.headers, self.rows))


def as_sheet(s) -> Sheet:
    return s if isinstance(s, Sheet) else Sheet(*s)


def sum_totals(headers: list[str], rows: list[list], label: str = "合计") -> list:
    """A 合计 row: the sum of every numeric column (the first column holds
    ``label``); other columns stay empty."""
    nums = _numeric_columns(headers, rows)
    out: list = [label]
    for i in range(1, len(headers)):
        if not nums[i]:
            out.append("")
            continue
        vals = [r[i] for r in rows if i < len(r) and r[i] not in (None, "")]
        total = sum(float(v) if isinstance(v, str) else v for v in vals)
        out.append(int(total) if float(total).is_integer() and not any(isinstance(v, str) and "." in v for v in vals)
                   else f"{total:.2f}")
    return out


def _message_id_columns(headers: list[str], rows: list[list]) -> list[bool]:
    """Columns that hold Message-IDs (every non-empty cell looks like one):
    internal identifiers, kept in a hidden column."""
    out = []
    for i in range(len(headers)):
        vals = [str(r[i]) for r in rows if i < len(r) and r[i] not in (None, "")]
        out.append("Message-ID" in str(headers[i]) or (bool(vals) and all(_MESSAGE_ID.match(v) for v in vals)))
    return out


TITLE_ROW, PERIOD_ROW, HEADER_ROW = 1, 2, 3


def _write_table(ws, top: int, headers: list[str], rows: list[list], totals: list | None, widths: list[int]) -> int:
    """Write a header row at ``top``, the rows and the totals row; widen
    ``widths``; return the last row written."""
    from openpyxl.styles import Alignment, Border, Font, PatternFill, Side

    bold = Font(bold=True)
    head_fill = PatternFill("solid", fgColor="DDE4EE")
    for c_i, h in enumerate(headers, start=1):
        c = ws.cell(row=top, column=c_i, value=str(h))
        c.font = bold
        c.fill = head_fill
        c.alignment = Alignment(vertical="center", wrap_text=True)
        if c_i - 1 < len(widths):
            widths[c_i - 1] = max(widths[c_i - 1], min(_width(str(h)), 16))
    date_cols = [any(k in str(h) for k in _DATE_HEADERS) for h in headers]
    num_cols = _numeric_columns(headers, rows + ([totals] if totals else []))
    wrap = Alignment(wrap_text=True, vertical="top")
    plain = Alignment(vertical="top")
    r_i = top
    for r_i, row in enumerate(rows + ([totals] if totals else []), start=top + 1):
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
            if known:
                widths[c_i - 1] = max(widths[c_i - 1], longest)
            cell.alignment = wrap if (longest > MAX_WIDTH or "\n" in text) else plain
    if totals:
        line = Side(style="thin")
        for c_i in range(1, len(headers) + 1):
            c = ws.cell(row=r_i, column=c_i)
            c.font = bold
            c.border = Border(top=line)
    return r_i


def add_sheet(wb, title, headers: list[str] | None = None, rows: list[list] | None = None,
              used: set[str] | None = None, *, period: str = ""):
    """Append one formatted sheet to an openpyxl workbook; returns it.
    ``title`` is a Sheet, or the title with ``headers`` and ``rows``."""
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.properties import PageSetupProperties

    sh = title if isinstance(title, Sheet) else Sheet(title, list(headers or []), list(rows or []))
    used = used if used is not None else {ws.title.lower() for ws in wb.worksheets}
    ws = wb.create_sheet(sheet_title(sh.title, used))
    headers, rows = [str(h) for h in sh.headers], sh.rows
    ncols = max([len(headers)] + [len(h) for _t, h, _r, _s in sh.below] + [1])
    ws.cell(row=TITLE_ROW, column=1, value=sh.heading or sh.title).font = Font(bold=True, size=14)
    ws.cell(row=PERIOD_ROW, column=1, value=period).font = Font(color="555555")
    ws.row_dimensions[TITLE_ROW].height = 22
    widths = [MIN_WIDTH] * ncols
    last = _write_table(ws, HEADER_ROW, headers, rows, sh.totals, widths)
    tables = [(HEADER_ROW, HEADER_ROW + len(rows), headers)]
    for heading, b_headers, b_rows, b_totals in sh.below:
        top = last + 2
        ws.cell(row=top, column=1, value=heading).font = Font(bold=True, size=12)
        last = _write_table(ws, top + 1, [str(h) for h in b_headers], b_rows, b_totals, widths)
        tables.append((top + 1, top + 1 + len(b_rows), [str(h) for h in b_headers]))
    for i, w in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(i)].width = max(MIN_WIDTH, min(MAX_WIDTH, w) + 2)
    for i, hidden in enumerate(_message_id_columns(headers, rows), start=1):
        if hidden:
            ws.column_dimensions[get_column_letter(i)].hidden = True
    ws.freeze_panes = f"A{HEADER_ROW + 1}"
    if headers:
        ws.auto_filter.ref = f"A{HEADER_ROW}:{get_column_letter(len(headers))}{HEADER_ROW + max(1, len(rows))}"
    _charts(ws, sh.charts, tables, ncols)
    # Print: A4 landscape, one page wide, title to header rows on every page,
    # the period and page numbers in the footer.
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.orientation = ws.ORIENTATION_LANDSCAPE
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    ws.print_title_rows = f"{TITLE_ROW}:{HEADER_ROW}"
    ws.print_options.gridLines = True
    ws.page_margins.left = ws.page_margins.right = 0.4
    ws.oddFooter.left.text = period
    ws.oddFooter.center.text = "第 &P 页，共 &N 页"
    ws.oddFooter.right.text = sh.heading or sh.title
    return ws


def _charts(ws, charts: list[Chart], tables: list[tuple[int, int, list[str]]], ncols: int) -> None:
    from openpyxl.chart import BarChart, Reference
    from openpyxl.utils import get_column_letter

    for n, ch in enumerate(charts):
        if ch.table >= len(tables):
            continue
        header_row, last_row, headers = tables[ch.table]
        if last_row <= header_row:
            continue  # nothing to draw
        chart = BarChart()
        chart.type = "col"
        chart.title = ch.title
        chart.y_axis.title = ch.y_title or None
        chart.y_axis.majorGridlines = None
        chart.height, chart.width = 7, 16
        for col in ch.columns:
            if col in headers:
                c = headers.index(col) + 1
                chart.add_data(Reference(ws, min_col=c, min_row=header_row, max_row=last_row), titles_from_data=True)
        chart.set_categories(Reference(ws, min_col=1, min_row=header_row + 1, max_row=last_row))
        ws.add_chart(chart, ch.anchor or f"{get_column_letter(ncols + 2)}{1 + 15 * n}")


def workbook(sheets: list, *, period: str = ""):
    """An openpyxl Workbook with one formatted sheet per Sheet (or
    (title, headers, rows)); ``period`` is shown under every title and in
    every footer."""
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    used: set[str] = set()
    for sh in sheets or [("Sheet", [], [])]:
        add_sheet(wb, as_sheet(sh), used=used, period=period)
    return wb


def workbook_bytes(sheets: list, *, period: str = "") -> bytes:
    buf = io.BytesIO()
    workbook(sheets, period=period).save(buf)
    return buf.getvalue()


def write_workbook(path: str | Path, sheets: list, *, period: str = "") -> None:
    """Write atomically: a half-written file never replaces a good one."""
    path = Path(path)
    data = workbook_bytes(sheets, period=period)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def tracking_sheets(rt, headers: list[str], rows: list[list], *, presales: str | None = None,
                    engineers: list[str] | None = None) -> list[Sheet]:
    """The 项目跟踪表 split into one sheet per engineer (第一售前, the first
    column), sheet title = the person's name. Every engineer in the directory
    (role 售前) gets a sheet, an empty one if they have no rows, so a
    missing table is visible; owners no longer in the directory are added
    after them. With ``presales``: that engineer only. The 第一售前 column
    (the sheet's name) is left out; the Message-ID goes to a hidden column;
    a 合计 row counts the rows and the 问题遗留 among them."""
    by_owner: dict[str, list[list]] = {}
    for r in rows:
        by_owner.setdefault(r[0] or "", []).append(r[1:])
    if presales:
        names = [presales]
    else:
        names = list(engineers if engineers is not None else [p.name for p in rt.directory.with_role("售前")])
        names += [o for o in sorted(by_owner) if o not in names]
    shown = [("邮件Message-ID" if h == "邮件" else h) for h in headers[1:]]
    result = shown.index("沟通结果") if "沟通结果" in shown else None

    def sheet(name: str, own: list[list]) -> Sheet:
        left = sum(1 for r in own if result is not None and r[result] not in ("成功", "", None))
        total = [f"共 {len(own)} 条" + (f"（问题遗留 {left} 条）" if left else "")] + [""] * (len(shown) - 1)
        return Sheet(name or "（无第一售前）", shown, own, heading=f"项目跟踪表 — {name or '（无第一售前）'}",
                     totals=total)

    if not names:
        return [Sheet("项目跟踪表", headers, [], heading="项目跟踪表")]
    return [sheet(n, by_owner.get(n, [])) for n in names]
