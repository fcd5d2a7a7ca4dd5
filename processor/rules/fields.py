"""Body fields: ``字段：值`` lines, multi-line values, and HTML tables
(which the parser renders as TAB-separated rows)."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from ..reasons import clip

# A field value is stored and echoed in replies: bound it (cut visibly with …).
MAX_FIELD_CHARS = 10_000


@dataclass(frozen=True)
class FieldSpec:
    name: str  # identifier used by rules and templates
    label: str  # the label staff write, e.g. 沟通结果
    synonyms: tuple[str, ...] = ()
    multiline: bool = True

    @property
    def labels(self) -> tuple[str, ...]:
        return (self.label, *self.synonyms)


_BULLET = re.compile(r"^[\s\d一二三四五六七八九十]*[\.、．)）]?\s*[【\[]?")
_SEP = re.compile(r"\s*(?:[:：]|\t)\s*")


def _norm_label(s: str) -> str:
    s = unicodedata.normalize("NFKC", s)
    s = _BULLET.sub("", s)
    s = s.strip().rstrip("】]").strip()
    return "".join(s.split())


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
        m = _SEP.search(line)
        if not m:
            return None
        head = _norm_label(line[: m.start()])
        name = self._lookup.get(head)
        if name is None:
            return None
        return name, line[m.end():].strip(), "\t" in m.group(0)

    def extract(self, text: str) -> dict[str, str]:
        values: dict[str, list[str]] = {}
        current: str | None = None
        for raw in text.splitlines():
            line = raw.replace("\u00a0", " ").rstrip()
            hit = self._split(line)
            if hit:
                name, value, table_row = hit
                if name in values:  # first occurrence wins; a quoted repeat is ignored
                    current = None
                    continue
                values[name] = [value] if value else []
                # A table cell holds the whole value: the next line is not part of it.
                current = None if table_row and value else name
                continue
            if current is None:
                continue
            if not line.strip():
                # A blank line ends a value that already has text.
                if values[current]:
                    current = None
                continue
            values[current].append(line.strip().replace("\t", " "))
        return {k: clip("\n".join(v).strip(), MAX_FIELD_CHARS) for k, v in values.items()}
