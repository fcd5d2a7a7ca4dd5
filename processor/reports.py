"""Report commands (``run.py report ...``): tables with East-Asian-width
aware columns, CSV and JSON."""
from __future__ import annotations

import csv
import io
import json
import sys

from wcwidth import wcswidth


def _width(s: str) -> int:
    w = wcswidth(s)
    return w if w >= 0 else len(s)


def render_table(headers: list[str], rows: list[list], fmt: str = "table") -> str:
    rows = [["" if v is None else str(v) for v in r] for r in rows]
    if fmt == "json":
        return json.dumps([dict(zip(headers, r)) for r in rows], ensure_ascii=False, indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(headers)
        w.writerows(rows)
        return buf.getvalue()
    cells = [headers] + [[v.replace("\n", " ") for v in r] for r in rows]
    widths = [max(_width(r[i]) for r in cells) for i in range(len(headers))]

    def line(r):
        return "  ".join(v + " " * (widths[i] - _width(v)) for i, v in enumerate(r)).rstrip()

    out = [line(headers), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


def add_report_parser(sub, add) -> None:
    """Registered by the CLI; the report kinds come with the conventions."""
    p = add("report", cmd_report, "报表：" + " | ".join(sorted(REPORTS)))
    p.add_argument("kind", choices=sorted(REPORTS))
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument("--month", help="YYYY-MM")
    p.add_argument("--presales", help="只看某位售前")
    p.add_argument("--open", action="store_true", help="只看未关闭的")


REPORTS: dict = {}


def report(name: str):
    def deco(fn):
        REPORTS[name] = fn
        return fn
    return deco


@report("messages")
def _messages(rt, args):
    from sqlalchemy import select

    from .store.models import Message
    with rt.store.session() as s:
        rows = s.execute(select(Message.id, Message.received_at, Message.from_addr, Message.subject, Message.status,
                                Message.rule, Message.reason).order_by(Message.id)).all()
    return (["编号", "收到时间", "发件人", "主题", "状态", "规则", "说明"],
            [[r.id, f"{r.received_at:%Y-%m-%d %H:%M}", r.from_addr, r.subject, r.status, r.rule or "", r.reason] for r in rows])


@report("outbox")
def _outbox(rt, args):
    from sqlalchemy import select

    from .store.models import Outbox
    with rt.store.session() as s:
        rows = s.execute(select(Outbox.id, Outbox.created_at, Outbox.to_addrs, Outbox.cc_addrs, Outbox.subject, Outbox.status,
                                Outbox.attempts, Outbox.last_error).order_by(Outbox.id)).all()
    return (["编号", "生成时间", "收件人", "抄送", "主题", "状态", "尝试次数", "错误"],
            [[r.id, f"{r.created_at:%Y-%m-%d %H:%M}", ",".join(r.to_addrs), ",".join(r.cc_addrs), r.subject, r.status,
              r.attempts, r.last_error] for r in rows])


def cmd_report(cfg, args) -> int:
    from .pipeline import Runtime
    rt = Runtime(cfg)
    headers, rows = REPORTS[args.kind](rt, args)
    print(render_table(headers, rows, args.format))
    return 0
