"""Body fields: ``字段：值`` lines, multi-line values, and HTML tables
(which the parser renders as TAB-separated rows).

Layouts people really write are read too: several fields on one line
separated by ``；``/``;``, numbered and bulleted lists (Outlook's
``1.<TAB>沟通结果：…``), tables pasted from Excel with a header row (labels
across the top, values below) or merged cells (a label spanning two value
rows), labels in traditional or half-converted characters (folded with
OpenCC), and Outlook's ``[cid:image001.png@…]`` image placeholders (dropped).
An unknown ``标签：值`` line under a field that already has a value is kept
apart (:attr:`Extraction.extras`), not appended to that field."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from ..mail.hanzi import to_simplified
from ..reasons import clip

# A field value is stored and echoed in replies: bound it (cut visibly with …).
MAX_FIELD_CHARS = 10_000
# At most this many unknown label lines are kept apart per mail.
MAX_EXTRAS = 20


@dataclass(frozen=True)
class FieldSpec:
    name: str  # identifier used by rules and templates
    label: str  # the label staff write, e.g. 沟通结果
    synonyms: tuple[str, ...] = ()
    multiline: bool = True

    @property
    def labels(self) -> tuple[str, ...]:
        return (self.label, *self.synonyms)


@dataclass
class Extraction:
    values: dict[str, str]
    # Unknown ``标签：值`` lines found under a field: (label, value), in order.
    extras: list[tuple[str, str]] = field(default_factory=list)


_BULLET = re.compile(r"^[\s(（\d一二三四五六七八九十]*[\.、．)）]?\s*[【\[]?")
_SEP = re.compile(r"\s*(?:[:：]|\t)\s*")
# A list mark followed by white space: Outlook's "1.<TAB>", "·<TAB>", "o<TAB>",
# Word's "（1）", circled numbers, "-", "*", "•".
_LIST_MARK = re.compile(
    r"^[ \t\u3000]*(?:[•·●○◦◆◇■□▪▫‣∙►▶➢➤✓√§Øo*\-–—]"
    r"|[（(]?\d{1,2}[.、．)）]|[（(]\d{1,2}[)）]|[①-⑳]|[一二三四五六七八九十]{1,3}[、.．])"
    r"[ \t\u3000]+")
# Outlook's plain-text stand-in for an inline image.
_CID = re.compile(r"\[cid:[^\]\n]{0,500}\]|<cid:[^>\n]{0,500}>", re.I)
# Where a line may hold several fields: ``沟通结果：成功；项目名称：华夏银行``.
_SEMI = re.compile(r"[；;]\s*")
# An unknown ``标签：值`` line: a short label starting with a Chinese character.
_OTHER_LABEL = re.compile(r"^([\u4e00-\u9fff][\u4e00-\u9fffA-Za-z0-9（）()/ ]{0,11}?)\s*[:：]\s*(\S.*)$")
# Column titles of a pasted two-column table ("项目 | 内容"): not a value.
_COLUMN_TITLES = frozenset({"内容", "值", "填写内容", "详细内容", "具体内容", "详情", "说明", "情况", "填写"})


def _norm_label(s: str) -> str:
    s = unicodedata.normalize("NFKC", s)
    s = _BULLET.sub("", s)
    s = s.strip().rstrip("】]").strip()
    return to_simplified("".join(s.split()))


def _clean(raw: str) -> str:
    line = raw.replace("\u00a0", " ")
    if "cid:" in line:
        line = _CID.sub("", line)
    return line.rstrip()


class FieldExtractor:
    def __init__(self, specs: list[FieldSpec]):
        self.specs = specs
        self._lookup: dict[str, str] = {}
        for spec in specs:
            for lab in spec.labels:
                self._lookup[_norm_label(lab)] = spec.name
        # Longest labels first so 遗留的问题描述 wins over 问题.
        self._labels = sorted(self._lookup, key=len, reverse=True)

    def _split(self, line: str) -> tuple[str, str, bool] | None:
        """If the line starts with a known label followed by a separator,
        return (name, value, is_table_row)."""
        line = _LIST_MARK.sub("", line, count=1).lstrip()
        m = _SEP.search(line)
        if not m:
            return None
        head = _norm_label(line[: m.start()])
        name = self._lookup.get(head)
        if name is None:
            return None
        return name, line[m.end():].strip(), "\t" in m.group(0)

    def _segments(self, line: str) -> list[str]:
        """A line holding several fields, split where a ``；``/``;`` is
        followed by a known label; other semicolons stay in the value."""
        if "；" not in line and ";" not in line:
            return [line]
        out, start = [], 0
        for m in _SEMI.finditer(line):
            if self._split(line[m.end():]) is not None:
                out.append(line[start:m.start()])
                start = m.end()
        out.append(line[start:])
        return out

    def _header_row(self, line: str) -> list[str | None] | None:
        """Labels across the top of a pasted table: the field of each column."""
        if "\t" not in line or ":" in line or "：" in line:
            return None
        cols = [self._lookup.get(_norm_label(c)) if c.strip() else None for c in line.split("\t")]
        cells = [c for c in line.split("\t") if c.strip()]
        if len([c for c in cols if c]) < 2 or len([c for c in cols if c]) != len(cells):
            return None
        return cols

    def extract(self, text: str) -> dict[str, str]:
        return self.extract_all(text).values

    def extract_all(self, text: str) -> Extraction:
        values: dict[str, list[str]] = {}
        extras: list[list] = []
        current: list[str] | None = None  # the value lines being continued
        inline = False  # the current field's value began on its label line
        table_field: str | None = None  # field of the previous table row
        columns: list[str | None] | None = None  # header row of a pasted table
        lines = text.splitlines()
        for raw in lines:
            line = _clean(raw)
            if columns is not None:
                if "\t" in line and self._split(line) is None:
                    for name, cell in zip(columns, line.split("\t")):
                        if name and cell.strip():
                            values.setdefault(name, []).append(cell.strip())
                    continue
                columns = None
            if raw and not line.strip() and "cid:" in raw:
                continue  # a line that held only an image placeholder
            cols = self._header_row(line)
            if cols is not None:
                columns = [c if c not in values else None for c in cols]
                for c in columns:
                    if c:
                        values[c] = []
                current, table_field = None, None
                continue
            segments = self._segments(line)
            for seg in segments:
                hit = self._split(seg)
                if hit:
                    name, value, table_row = hit
                    if table_row and _norm_label(value) in _COLUMN_TITLES:
                        current, table_field = None, None
                        continue  # "项目 | 内容": the titles of a two-column table
                    if table_row and name == table_field and value:
                        values[name].append(value)  # a merged label cell spanning rows
                        continue
                    if name in values:  # first occurrence wins; a quoted repeat is ignored
                        current, table_field = None, None
                        continue
                    values[name] = [value] if value else []
                    inline = bool(value)
                    # A table cell holds the whole value: the next line is not part of it.
                    current = None if table_row and value else values[name]
                    table_field = name if table_row else None
                    continue
                if table_field is not None and seg.startswith("\t") and seg.strip():
                    # A table row whose label cell is empty: the value goes on.
                    values[table_field].append(" ".join(seg.split()))
                    continue
                table_field = None
                if current is None:
                    continue
                if not seg.strip():
                    # A blank line ends a value that already has text.
                    if current:
                        current = None
                    continue
                body = seg.strip().replace("\t", " ")
                other = _OTHER_LABEL.match(_LIST_MARK.sub("", body, count=1))
                if other is not None and inline and any(current is v for v in values.values()):
                    # An unknown label under a field with a value: kept apart.
                    if len(extras) < MAX_EXTRAS:
                        extra = [other.group(1).strip(), [other.group(2).strip()]]
                        extras.append(extra)
                        current = extra[1]
                    else:
                        current = None
                    continue
                current.append(body)
        out = {k: clip("\n".join(v).strip(), MAX_FIELD_CHARS) for k, v in values.items()}
        return Extraction(out, [(clip(lab, 50), clip("\n".join(v).strip(), 500)) for lab, v in extras])
