"""The monthly pack as a PDF, beside the xlsx: the same sheets as HTML
tables (``templates/report_pack.html.j2``) with the charts as PNG images,
laid out for A4 landscape and rendered by WeasyPrint.

Chinese text needs a CJK font installed on the machine (Debian:
``fonts-noto-cjk`` or ``fonts-wqy-zenhei``); the stylesheet names both.
Message-ID columns are left out, as they are hidden in the xlsx.
"""
from __future__ import annotations

import base64
import io
from pathlib import Path

from .xlsx import Sheet, _message_id_columns, as_sheet

TEMPLATE = "report_pack.html.j2"
SHIPPED = Path(__file__).resolve().parents[2] / "templates"
FONTS = ["Noto Sans CJK SC", "Noto Sans SC", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Source Han Sans SC",
         "Microsoft YaHei", "PingFang SC", "SimHei", "DejaVu Sans"]


def _cell(v) -> str:
    from datetime import datetime
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M")
    return "" if v is None else str(v)


def _table(heading: str, headers: list[str], rows: list[list], totals: list | None) -> dict:
    keep = [i for i, hidden in enumerate(_message_id_columns(headers, rows)) if not hidden]
    return {"heading": heading, "headers": [headers[i] for i in keep],
            "rows": [[_cell(r[i]) if i < len(r) else "" for i in keep] for r in rows],
            "totals": [_cell(totals[i]) if i < len(totals) else "" for i in keep] if totals else None}


def _bar_png(title: str, categories: list[str], series: dict[str, list[float]]) -> str:
    """A grouped bar chart as a data: URI (PNG)."""
    import logging

    import matplotlib
    matplotlib.use("Agg")
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)  # a font without a "normal" weight
    from matplotlib import pyplot as plt

    plt.rcParams["font.sans-serif"] = FONTS
    plt.rcParams["font.family"] = "sans-serif"
    plt.rcParams["axes.unicode_minus"] = False
    fig, ax = plt.subplots(figsize=(6.4, 2.8), dpi=150)
    try:
        n = max(1, len(series))
        step = 0.8 / n
        for k, (name, values) in enumerate(series.items()):
            xs = [i - 0.4 + step * (k + 0.5) for i in range(len(categories))]
            bars = ax.bar(xs, values, width=step, label=name)
            ax.bar_label(bars, fontsize=7, fmt="%g")
        ax.set_xticks(range(len(categories)), categories, fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.yaxis.get_major_locator().set_params(integer=True)
        ax.spines[["top", "right"]].set_visible(False)
        ax.legend(fontsize=7, frameon=False)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _chart_images(sh: Sheet) -> list[str]:
    tables = [(sh.headers, sh.rows)] + [(h, r) for _t, h, r, _s in sh.below]
    out = []
    for ch in sh.charts:
        if ch.table >= len(tables):
            continue
        headers, rows = tables[ch.table]
        if not rows:
            continue
        cols = [c for c in ch.columns if c in headers]
        out.append(_bar_png(ch.title, [str(r[0]) for r in rows],
                            {c: [float(r[headers.index(c)] or 0) for r in rows] for c in cols}))
    return out


def pack_html(rt, variables: dict, sheets: list) -> str:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    folders = [str(rt.renderer.folder)] if getattr(rt, "renderer", None) is not None else []
    env = Environment(loader=FileSystemLoader(folders + [str(SHIPPED)]), undefined=StrictUndefined,
                      autoescape=select_autoescape(enabled_extensions=("html.j2",), default=True),
                      trim_blocks=True, lstrip_blocks=True)
    sections = []
    for sh in (as_sheet(s) for s in sheets):
        tables = [_table("", sh.headers, sh.rows, sh.totals)]
        tables += [_table(t, h, r, s) for t, h, r, s in sh.below]
        sections.append({"title": sh.heading or sh.title, "tables": tables, "charts": _chart_images(sh)})
    return env.get_template(TEMPLATE).render(**variables, sections=sections, fonts=FONTS)


def pack_pdf(rt, variables: dict, sheets: list) -> bytes:
    from weasyprint import HTML

    return HTML(string=pack_html(rt, variables, sheets)).write_pdf()
