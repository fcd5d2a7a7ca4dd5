"""Report commands (``run.py report ...``): tables with East-Asian-width
aware columns, CSV and JSON."""
from __future__ import annotations

import csv
import io
import json
import sys

from wcwidth import wcswidth

from .formula import csv_cell

# Every module in this package registers its reports with @report; they are
# imported at the end of this file, so adding a report is adding a module.


def _width(s: str) -> int:
    w = wcswidth(s)
    return w if w >= 0 else len(s)


EMPTY = "无记录"
MIN_COLUMN = 6  # the narrowest a wrapped column gets (display width): three Chinese characters
MIN_DATE_COLUMN = 10  # a date stays on one line, its time on the next
SEP = "  "


def terminal_width() -> int | None:
    """The width tables are fitted to: $COLUMNS, else the terminal's; None
    (no limit) when the output is not a terminal (a pipe or a file gets whole
    rows, as scripts expect)."""
    import os
    import shutil

    try:
        cols = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        cols = 0
    if cols > 0:
        return cols
    try:
        tty = sys.stdout.isatty()
    except (AttributeError, ValueError):
        tty = False
    return shutil.get_terminal_size((100, 24)).columns if tty else None


def _wrap(text: str, width: int) -> list[str]:
    """Break ``text`` into lines of at most ``width`` display columns
    (a Chinese character counts two), at a space where there is one."""
    lines: list[str] = []
    for para in text.split("\n"):
        line = ""
        for ch in para:
            if _width(line + ch) > width and line:
                cut = line.rfind(" ")
                if cut > 0:
                    lines.append(line[:cut])
                    line = line[cut + 1:]
                else:
                    lines.append(line)
                    line = ""
                if not line and ch == " ":
                    continue
            line += ch
        lines.append(line)
    return lines or [""]


def fit_widths(widths: list[int], headers: list[str], limit: int | None) -> list[int]:
    """Column widths that fit ``limit`` display columns: the widest column
    gives way first, none below its header or MIN_COLUMN (a table that still
    does not fit overflows)."""
    widths = list(widths)
    if not limit:
        return widths
    floor = [min(w, MIN_DATE_COLUMN if any(k in h for k in ("日期", "时间")) else MIN_COLUMN)
             for w, h in zip(widths, headers)]
    while sum(widths) + len(SEP) * (len(widths) - 1) > limit:
        i = max(range(len(widths)), key=lambda k: widths[k] - floor[k])
        if widths[i] <= floor[i]:
            break
        widths[i] -= 1
    return widths


def render_table(headers: list[str], rows: list[list], fmt: str = "table", *, width: int | None = None) -> str:
    """A table for a terminal (long cells, headers too, wrap within their
    column so the table fits ``width`` display columns; None: no limit,
    e.g. ``--wide`` or a file), or CSV / JSON. An empty table says 无记录.
    Fitted to a width, columns of Message-IDs (internal identifiers) are
    left out; ``--wide``, CSV and JSON keep them."""
    rows = [["" if v is None else str(v) for v in r] for r in rows]
    if fmt == "json":
        return json.dumps([dict(zip(headers, r)) for r in rows], ensure_ascii=False, indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow([csv_cell(str(h)) for h in headers])
        w.writerows([[csv_cell(v) for v in r] for r in rows])
        return buf.getvalue()
    if not rows:
        return EMPTY
    if width:
        from .xlsx import _message_id_columns
        keep = [i for i, hidden in enumerate(_message_id_columns(headers, rows)) if not hidden]
        headers, rows = [headers[i] for i in keep], [[r[i] for i in keep] for r in rows]
    cells = [headers] + [[v.replace("\r", "") for v in r] for r in rows]
    natural = [max(max(_width(line) for line in r[i].split("\n")) for r in cells) for i in range(len(headers))]
    widths = fit_widths(natural, headers, width)

    def lines(r) -> list[str]:
        parts = [_wrap(v, widths[i]) for i, v in enumerate(r)]
        out = []
        for k in range(max(len(p) for p in parts)):
            out.append(SEP.join((p[k] if k < len(p) else "") + " " * (widths[i] - _width(p[k] if k < len(p) else ""))
                                for i, p in enumerate(parts)).rstrip())
        return out

    out = lines(headers) + [SEP.join("-" * w for w in widths)]
    for r in cells[1:]:
        out += lines(r)
    return "\n".join(out)


def add_report_parser(sub, add) -> None:
    """Registered by the CLI; the report kinds come with the conventions."""
    p = add("report", cmd_report, "报表：" + " | ".join(sorted(REPORTS)))
    p.add_argument("kind", choices=sorted(REPORTS))
    p.add_argument("--format", choices=["table", "csv", "json", "xlsx"], default="table",
                   help="xlsx 须同时给出 --out 文件名")
    p.add_argument("--out", metavar="FILE", help="写入文件而不是输出到屏幕（--format xlsx 时必须）")
    p.add_argument("--month", help="YYYY-MM")
    p.add_argument("--presales", help="只看某位售前")
    p.add_argument("--open", action="store_true", help="只看未关闭的")
    p.add_argument("--wide", action="store_true", help="表格不按终端宽度折行，每行完整显示")


REPORTS: dict = {}


def report(name: str):
    def deco(fn):
        REPORTS[name] = fn
        return fn
    return deco


@report("messages")
def _messages(rt, args):
    from sqlalchemy import select

    from ..statuses import MESSAGE, name
    from ..store.models import Message
    with rt.store.reader() as s:
        rows = s.execute(select(Message.id, Message.received_at, Message.from_addr, Message.subject, Message.status,
                                Message.rule, Message.reason, Message.outcome_code, Message.outcome_params)
                         .order_by(Message.id)).all()

    from ..messages import default as default_messages
    wording = getattr(rt, "messages", None) or default_messages()

    def rule(r) -> str:
        if r.rule and r.rule.startswith("reply:"):
            return f"回复（{_kind_name(rt, r.rule[len('reply:'):])}）"
        return r.rule or ""

    # The outcome in the wording of templates/messages.toml as it is now; rows
    # written before outcomes were data keep their stored text.
    return (["编号", "收到时间", "发件人", "主题", "状态", "规则", "说明"],
            [[r.id, _local(rt, r.received_at), r.from_addr, r.subject, name(MESSAGE, r.status), rule(r),
              wording.outcome(r.outcome_code, r.outcome_params) if r.outcome_code else r.reason] for r in rows])


@report("outbox")
def _outbox(rt, args):
    from sqlalchemy import select

    from ..outbox import held_elsewhere, held_elsewhere_line, status_label, undelivered
    from ..store.models import Outbox
    with rt.store.reader() as s:
        rows = s.execute(select(Outbox.id, Outbox.created_at, Outbox.to_addrs, Outbox.cc_addrs, Outbox.subject, Outbox.status,
                                Outbox.rcpt_state, Outbox.uncertain, Outbox.attempts, Outbox.last_error, Outbox.claimed_by)
                         .order_by(Outbox.id)).all()
    held = held_elsewhere(rt.store)  # claims waiting for their sender's host, or for `outbox release`

    def error(r) -> str:
        return held_elsewhere_line(r.claimed_by, held[r.claimed_by]) if r.claimed_by in held else r.last_error

    return (["编号", "生成时间", "收件人", "抄送", "主题", "状态", "未送达", "尝试次数", "错误"],
            [[r.id, _local(rt, r.created_at), ",".join(r.to_addrs), ",".join(r.cc_addrs), r.subject,
              status_label(r.status, r.rcpt_state, r.uncertain), undelivered(r.rcpt_state), r.attempts, error(r)]
             for r in rows])


# Sheet titles of the one-table reports in xlsx (the kind's name otherwise).
SHEET_TITLES = {"tracking": "项目跟踪表", "reports": "汇报统计", "complaints": "投诉统计", "tickets": "记录",
                "messages": "收到的邮件", "outbox": "发出的邮件", "sla": "服务时效", "satisfaction": "回访满意度",
                "workorders": "故障处理工作单", "projects": "项目", "improvements": "产品改进申请",
                "bugs": "Bug反馈", "reminders": "提醒"}


def report_sheets(rt, kind: str, args) -> list:
    """The report as xlsx sheets: the 项目跟踪表 one sheet per engineer
    (第一售前), any other report one sheet (with a 合计 row when it has
    numbers to add up)."""
    from .xlsx import Sheet, sum_totals, tracking_sheets

    headers, rows = REPORTS[kind](rt, args)
    if kind == "tracking":
        return tracking_sheets(rt, headers, rows, presales=getattr(args, "presales", None))
    title = SHEET_TITLES.get(kind, kind)
    totals = sum_totals(headers, rows) if rows and kind in SUMMED else None
    return [Sheet(title, headers, rows, heading=title, totals=totals)]


# Reports whose numbers add up (per-person counts): their xlsx has a 合计 row.
SUMMED = {"reports", "complaints", "points"}


def period_line(rt, args) -> str:
    """The period row of an on-demand workbook."""
    from datetime import datetime, timezone

    month = getattr(args, "month", None)
    who = f"，售前：{args.presales}" if getattr(args, "presales", None) else ""
    if month:
        _month_range(rt, month)  # a malformed --month is explained there
        return month_period_text(month)[3] + who
    return f"全部记录，截至 {_local(rt, datetime.now(timezone.utc))}{who}"


def cmd_report(cfg, args) -> int:
    out = getattr(args, "out", None)
    if args.format == "xlsx" and not out:
        print("--format xlsx 需要用 --out 指定要写入的文件，例如：--format xlsx --out 项目跟踪表.xlsx", file=sys.stderr)
        return 2
    from ..pipeline import Runtime
    rt = Runtime(cfg)
    if args.format == "xlsx":
        from .xlsx import write_workbook
        sheets = report_sheets(rt, args.kind, args)
        try:
            write_workbook(out, sheets, period=period_line(rt, args))
        except OSError as e:
            print(f"无法写入 {out}：{e.strerror or e}", file=sys.stderr)
            return 1
        print(f"已写入 {out}（{len(sheets)} 个工作表，{sum(len(sh.rows) for sh in sheets)} 行）")
        return 0
    headers, rows = REPORTS[args.kind](rt, args)
    text = render_table(headers, rows, args.format,
                        width=None if (out or getattr(args, "wide", False)) else terminal_width())
    if out:
        try:
            # CSV with a BOM: Excel on a Chinese Windows reads it as UTF-8, not GBK.
            with open(out, "w", encoding="utf-8-sig" if args.format == "csv" else "utf-8", newline="") as f:
                f.write(text if text.endswith("\n") else text + "\n")
        except OSError as e:
            print(f"无法写入 {out}：{e.strerror or e}", file=sys.stderr)
            return 1
        print(f"已写入 {out}（{len(rows)} 行）")
        return 0
    print(text)
    return 0


# --- convention reports (issue 3) ---

def _lifecycles(rt):
    """The record kinds' lifecycles (their Chinese names and states)."""
    from ..lifecycles import Lifecycles

    rules = getattr(rt, "rules", None)
    return rules.lifecycles if rules is not None else Lifecycles()


def _kind_name(rt, kind: str) -> str:
    return _lifecycles(rt).label(kind)


def _state_name(rt, kind: str, state: str) -> str:
    return _lifecycles(rt).state_name(kind, state)


def _month_range(rt, month: str | None):
    """(start, end) in UTC for --month YYYY-MM in the system time zone, or (None, None)."""
    if not month:
        return None, None
    from datetime import datetime, timezone
    try:
        y, m = (int(x) for x in month.split("-"))
        start = datetime(y, m, 1, tzinfo=rt.tz)
        end = datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=rt.tz)
    except (ValueError, TypeError):
        raise SystemExit(f"--month 的格式应为 YYYY-MM，例如 2026-11，而不是 {month!r}")
    return start.astimezone(timezone.utc), end.astimezone(timezone.utc)


def month_period_text(month: str) -> tuple[str, str, str, str]:
    """(label 2026年10月, first day, last day, the period line of every sheet)."""
    from datetime import date, timedelta

    y, m = (int(x) for x in month.split("-"))
    last = (date(y + (m == 12), m % 12 + 1, 1) - timedelta(days=1))
    first = f"{y:04d}-{m:02d}-01"
    return f"{y}年{m}月", first, last.isoformat(), f"统计期间：{y}年{m}月（{first} 至 {last.isoformat()}）"


def _local(rt, dt, fmt="%Y-%m-%d %H:%M"):
    return dt.astimezone(rt.tz).strftime(fmt) if dt is not None else ""


@report("tracking")
def _tracking(rt, args):
    """项目跟踪表: one table per 第一售前 (--presales), rows in date order."""
    from sqlalchemy import select

    from ..store.models import Ticket, TrackingRow
    start, end = _month_range(rt, args.month)
    with rt.store.reader() as s:
        q = select(TrackingRow, Ticket.number).join(Ticket, TrackingRow.ticket_id == Ticket.id)
        if args.presales:
            q = q.where(TrackingRow.owner == args.presales)
        if start is not None:
            q = q.where(TrackingRow.comm_date >= start, TrackingRow.comm_date < end)
        rows = s.execute(q.order_by(TrackingRow.owner, TrackingRow.comm_date, TrackingRow.id)).all()
    return (["第一售前", "日期", "项目", "汇报人", "沟通人", "沟通方式", "沟通结果", "沟通的具体问题", "遗留的问题描述",
             "记录号", "邮件"],
            [[r.owner, _local(rt, r.comm_date), r.project, r.reporter, r.contact, r.method, r.result, r.issue,
              r.remaining, number, r.source_message_id or ""] for r, number in rows])


@report("reports")
def _reports(rt, args):
    """汇报邮件统计 per engineer: recorded, rejected, 未立项, not counted."""
    from datetime import datetime

    from ..store.models import Ticket
    from sqlalchemy import select
    start, end = _month_range(rt, args.month)
    counts: dict[str, dict[str, int]] = {}
    with rt.store.reader() as s:
        for t in s.scalars(select(Ticket).where(Ticket.kind == "report").order_by(Ticket.id)):
            data = t.data or {}
            when = datetime.fromisoformat(data["date"]) if data.get("date") else t.opened_at
            if start is not None and not (start <= when < end):
                continue
            who = data.get("reporter") or data.get("sender") or ""
            if args.presales and who != args.presales:
                continue
            c = counts.setdefault(who, {})
            c[t.state] = c.get(t.state, 0) + 1
    names = _lifecycles(rt).names("report")
    return (["汇报人", *names.values(), "合计"],
            [[who, *(c.get(k, 0) for k in names), sum(c.values())] for who, c in sorted(counts.items())])


@report("complaints")
def _complaints(rt, args):
    """投诉统计 per engineer, with the penalty thresholds crossed (still in force).
    With --month: complaints dated in that month, and thresholds reached by them."""
    from datetime import datetime

    from sqlalchemy import select

    from ..store.models import Penalty, Ticket
    start, end = _month_range(rt, args.month)
    per: dict[str, dict] = {}
    dates: dict[str, datetime] = {}

    def entry(who):
        return per.setdefault(who, {"counted": [], "withdrawn": 0, "other": 0, "penalties": []})

    with rt.store.reader() as s:
        for t in s.scalars(select(Ticket).where(Ticket.kind == "complaint").order_by(Ticket.id)):
            data = t.data or {}
            when = datetime.fromisoformat(data["date"]) if data.get("date") else t.opened_at
            dates[t.number] = when
            if start is not None and not (start <= when < end):
                continue
            if args.presales and t.owner != args.presales:
                continue
            e = entry(t.owner or "（未计入）")
            if t.state == "counted":
                e["counted"].append(t.number)
            elif t.state == "withdrawn":
                e["withdrawn"] += 1
            else:
                e["other"] += 1
        pens = list(s.scalars(select(Penalty).where(Penalty.state == "active").order_by(Penalty.engineer, Penalty.id)))
    for p in pens:
        if args.presales and p.engineer != args.presales:
            continue
        reached = dates.get((p.complaints or [""])[-1])
        if start is not None and (reached is None or not (start <= reached < end)):
            continue
        label = "累计" if p.window == "all" else p.window
        entry(p.engineer)["penalties"].append(f"{label}第{p.threshold}次：{p.penalty}")
    return (["售前", "有效投诉", "已撤回", "未计入", "投诉记录", "已触发的处罚"],
            [[who, len(e["counted"]), e["withdrawn"], e["other"], "、".join(e["counted"]), "；".join(e["penalties"])]
             for who, e in sorted(per.items())])


@report("tickets")
def _tickets(rt, args):
    """Every numbered record; --open: follow-ups (and other work items) not closed."""
    from datetime import datetime, timezone

    from sqlalchemy import select

    from ..store.models import Ticket
    now = datetime.now(timezone.utc)
    start, end = _month_range(rt, args.month)
    with rt.store.reader() as s:
        q = select(Ticket)
        if args.open:
            q = q.where(Ticket.closed_at.is_(None))
        if args.presales:
            q = q.where(Ticket.owner == args.presales)
        if start is not None:
            q = q.where(Ticket.opened_at >= start, Ticket.opened_at < end)
        rows = list(s.scalars(q.order_by(Ticket.id)))
    return (["编号", "类型", "项目", "负责人", "状态", "开单时间", "到期时间", "关闭时间", "逾期"],
            [[t.number, _kind_name(rt, t.kind), t.project, t.owner, _state_name(rt, t.kind, t.state),
              _local(rt, t.opened_at), _local(rt, t.due_at), _local(rt, t.closed_at),
              "是" if t.due_at is not None and t.closed_at is None and t.due_at < now else ""] for t in rows])


def _load_report_modules() -> None:
    import importlib
    import pkgutil

    for m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        importlib.import_module(f"{__name__}.{m.name}")


_load_report_modules()
