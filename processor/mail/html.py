"""Fast HTML -> text conversion for mail bodies (Outlook, Foxmail, QQ webmail).

A small regex tokenizer instead of ``html.parser`` / ``html2text``: it is
several times faster and gives us exact control over the output. Table rows
become one line each with the cell texts joined by a TAB, which the field
extractor relies on (``<tr><td>沟通结果</td><td>成功</td></tr>`` ->
``沟通结果\\t成功``).
"""

from __future__ import annotations

import re
from html import unescape

__all__ = ["html_to_text"]

_TOKEN = re.compile(
    r"<!--.*?(?:-->|\Z)"                            # comment (incl. conditional comments)
    r"|<!\[[^\]<>]*\]>"                            # downlevel-revealed <![if ...]> / <![endif]>
    r"|<[!?][^>]*(?:>|\Z)"                         # doctype, <?xml ...?>, CDATA-ish junk
    r"|<(/?)([a-zA-Z][a-zA-Z0-9:_.-]*)([^>]*)(?:>|\Z)"  # tag
    r"|[^<]+"                                      # text
    r"|<",                                         # stray '<'
    re.S,
)

# Elements whose content is dropped entirely.
_SKIP = frozenset({"style", "script", "head", "title", "xml", "template", "noscript",
                   "object", "iframe", "svg", "math"})
# Elements that start/end a block (soft line break).
_BLOCK = frozenset({
    "p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "dl", "dt", "dd",
    "blockquote", "pre", "hr", "center", "address", "section", "article", "header",
    "footer", "nav", "aside", "form", "fieldset", "caption", "figure", "figcaption",
    "main", "body", "html", "legend", "details", "summary", "option",
})
_CELL = frozenset({"td", "th"})

_WS = re.compile(r"[ \t\r\n\f\v]+")
_SOFT = "\x01"  # soft block break marker
_SOFT_RUN = re.compile(r"[ ]*\x01[\x01 ]*")  # spaces only: a table row may start or end with TABs
_SOFT_EDGE = re.compile(r"\n?\x01\n?")
_MULTI_SPACE = re.compile(r" {2,}")
_BLANKS = re.compile(r"\n(?:[ \t]*\n){2,}")


def _finish(raw: str) -> str:
    """Resolve soft breaks, trim lines, collapse blank-line runs."""
    if _SOFT in raw:
        raw = _SOFT_RUN.sub(_SOFT, raw)
        raw = _SOFT_EDGE.sub("\n", raw)
    if "  " in raw:
        raw = _MULTI_SPACE.sub(" ", raw)
    lines = [line.strip(" ") for line in raw.split("\n")]
    text = "\n".join(lines)
    if "\n\n\n" in text:
        text = _BLANKS.sub("\n\n", text)
    return text.strip("\n")


class _Table:
    __slots__ = ("carry", "data")

    def __init__(self) -> None:
        # column -> [text, rows still to cover] of cells merged down (rowspan)
        self.carry: dict[int, list] = {}
        # A row with two or more filled cells was seen: a data table (Excel),
        # not a layout table, so a row's columns matter.
        self.data = False


class _Row:
    __slots__ = ("cells",)

    def __init__(self) -> None:
        self.cells: list[_Cell] = []


class _Cell:
    __slots__ = ("buf", "rowspan", "colspan")

    def __init__(self, attrs: str = "") -> None:
        self.buf: list[str] = []
        self.rowspan = _span(attrs, "rowspan")
        self.colspan = _span(attrs, "colspan")


_SPAN = {name: re.compile(name + r"""\s*=\s*["']?\s*(\d{1,3})""", re.I) for name in ("rowspan", "colspan")}
_MAX_SPAN = 50


def _span(attrs: str, name: str) -> int:
    if name not in attrs.lower():
        return 1
    m = _SPAN[name].search(attrs)
    return max(1, min(int(m.group(1)), _MAX_SPAN)) if m else 1


def _grid_row(cells: list["_Cell"], table: "_Table | None") -> list[str]:
    """The row's cell texts by column: a cell merged down from a row above
    (rowspan) is repeated in its column, a cell merged across (colspan)
    leaves empty columns after it, so pasted Excel tables keep their columns."""
    carry = table.carry if table is not None else {}
    out: list[str] = []
    col = 0
    queue = list(cells)
    while queue or any(c >= col for c in carry):
        if col in carry:
            text, left = carry[col]
            out.append(text)
            if left <= 1:
                del carry[col]
            else:
                carry[col][1] = left - 1
            col += 1
            continue
        if not queue:
            out.append("")
            col += 1
            continue
        cell = queue.pop(0)
        text = _finish("".join(cell.buf))
        if cell.rowspan > 1 and table is not None:
            carry[col] = [text, cell.rowspan - 1]
        out.append(text)
        col += 1
        for _ in range(cell.colspan - 1):
            out.append("")
            col += 1
    return out


def _format_row(texts: list[str], table: "_Table | None" = None) -> str:
    if not any(t.strip() for t in texts):
        return ""
    filled = [t for t in texts if t.strip()]
    if len(filled) == 1:
        if table is None or not table.data:
            return filled[0]  # a layout table: one block of text
        # A data row with one filled cell keeps its column: leading TABs for
        # the empty cells before it, and a TAB after it so the line still
        # reads as a table row ("成功\t" under a header row of labels).
        col = next(i for i, t in enumerate(texts) if t.strip())
        return "\t" * col + " ".join(filled[0].split()) + ("\t" if col == 0 else "")
    if table is not None:
        table.data = True
    if any("\t" in t for t in filled):
        # Nested data tables inside a layout row: keep the blocks apart.
        return "\n".join(filled)
    while texts and not texts[-1].strip():
        texts = texts[:-1]
    # Empty cells inside the row are kept: columns stay where they are.
    return "\t".join(" ".join(t.split()) for t in texts)


def html_to_text(html: str) -> str:
    """Convert an HTML mail body to readable plain text. Never raises."""
    if not html:
        return ""
    try:
        return _convert(html)
    except Exception:  # pragma: no cover - defensive
        try:
            stripped = re.sub(r"<[^>]*>", " ", html)
            return _finish(unescape(stripped).replace("\xa0", " "))
        except Exception:
            return ""


def _convert(html: str) -> str:
    if "\x00" in html:
        html = html.replace("\x00", "")
    lower: str | None = None
    out: list[str] = []          # current buffer (top level or innermost cell)
    stack: list[object] = []     # open _Table / _Row / _Cell objects
    buffers: list[list[str]] = [out]
    pre = 0
    open_buf: list[str] | None = None  # buffer/offset of the last block opening
    open_at = 0
    pos = 0
    n = len(html)
    match = _TOKEN.match

    def close_cell() -> None:
        cell = stack.pop()
        buffers.pop()
        row = stack[-1]
        row.cells.append(cell)  # type: ignore[union-attr]

    def close_row() -> None:
        if stack and isinstance(stack[-1], _Cell):
            close_cell()
        row = stack.pop()
        table = stack[-1] if stack and isinstance(stack[-1], _Table) else None
        line = _format_row(_grid_row(row.cells, table), table)  # type: ignore[union-attr]
        if line:
            buf = buffers[-1]
            buf.append(_SOFT)
            buf.append(line)
            buf.append(_SOFT)

    def close_table() -> None:
        while stack and not isinstance(stack[-1], _Table):
            if isinstance(stack[-1], _Cell):
                close_cell()
            else:
                close_row()
        if stack:
            stack.pop()
        buffers[-1].append(_SOFT)

    while pos < n:
        m = match(html, pos)
        if m is None:  # cannot happen (stray '<' alternative), but be safe
            buffers[-1].append(html[pos])
            pos += 1
            continue
        pos = m.end()
        tag = m.group(2)
        if tag is None:
            tok = m.group(0)
            if tok[0] == "<" and len(tok) > 1:
                continue  # comment / doctype / conditional marker
            if pre:
                text = tok.replace("\r\n", "\n").replace("\r", "\n")
            else:
                text = _WS.sub(" ", tok)
            if "&" in text:
                text = unescape(text)
            if "\xa0" in text:
                text = text.replace("\xa0", " ")
            buffers[-1].append(text)
            continue
        name = tag.lower()
        closing = bool(m.group(1))
        if name in _SKIP:
            if closing:
                continue
            if m.group(3).rstrip().endswith("/"):
                continue  # self-closing <script/>
            if lower is None:
                lower = html.lower()
            end = lower.find("</" + name, pos)
            if end < 0:
                if name == "head":
                    body = lower.find("<body", pos)
                    if body >= 0:
                        pos = body
                    continue  # unclosed <head>: just ignore the tag
                if name in ("title", "xml", "noscript"):
                    continue
                pos = n
                break
            gt = html.find(">", end)
            pos = n if gt < 0 else gt + 1
            continue
        if name == "br":
            buffers[-1].append("\n")
            continue
        if name in _BLOCK:
            buf = buffers[-1]
            if name == "pre":
                pre = pre - 1 if closing and pre else (pre if closing else pre + 1)
            if closing:
                # An empty paragraph (Outlook "<p>&nbsp;</p>") is a blank line.
                if open_buf is buf and name in ("p", "div") and open_at <= len(buf):
                    since = "".join(buf[open_at:])
                    if not since.strip(" \x01") and "\n" not in since:
                        buf.append("\n")
                open_buf = None
            else:
                open_buf = buf
                open_at = len(buf) + 1
            buf.append(_SOFT)
            continue
        if name in _CELL:
            if closing:
                if stack and isinstance(stack[-1], _Cell):
                    close_cell()
                continue
            if stack and isinstance(stack[-1], _Cell):
                close_cell()
            if stack and isinstance(stack[-1], _Table):
                stack.append(_Row())
            if stack and isinstance(stack[-1], _Row):
                cell = _Cell(m.group(3) or "")
                stack.append(cell)
                buffers.append(cell.buf)
            else:
                buffers[-1].append(" ")
            continue
        if name == "tr":
            if closing:
                if stack and isinstance(stack[-1], _Cell):
                    close_cell()
                if stack and isinstance(stack[-1], _Row):
                    close_row()
                continue
            if stack and isinstance(stack[-1], _Cell):
                close_cell()
            if stack and isinstance(stack[-1], _Row):
                close_row()
            if not stack or not isinstance(stack[-1], _Table):
                buffers[-1].append(_SOFT)
                stack.append(_Table())
            stack.append(_Row())
            continue
        if name == "table":
            if closing:
                if any(isinstance(x, _Table) for x in stack):
                    close_table()
                continue
            buffers[-1].append(_SOFT)
            stack.append(_Table())
            continue
        if name in ("thead", "tbody", "tfoot", "colgroup", "col"):
            continue
        # Everything else (span, a, b, font, o:p, img, ...) is inline: ignore.
    while stack:
        top = stack[-1]
        if isinstance(top, _Cell):
            close_cell()
        elif isinstance(top, _Row):
            close_row()
        else:
            close_table()
    return _finish("".join(out))
