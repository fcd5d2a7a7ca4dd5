"""Command line: ``python run.py COMMAND [--config PATH]``.

Admins read this output, so it is in Chinese.
"""
from __future__ import annotations

import argparse
import logging
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from .config import Config, ConfigError, load_config
from .oauth import problems as oauth_problems

ROOT = Path(__file__).resolve().parent.parent


def default_config_path() -> Path:
    p = ROOT / "config.toml"
    return p if p.exists() else ROOT / "config.example.toml"


def _runtime(cfg: Config):
    from .pipeline import Runtime
    return Runtime(cfg)


def print_problems(e: ConfigError) -> None:
    print("配置有误（文件: 键: 原因）：", file=sys.stderr)
    for f, k, r in e.problems:
        print(f"  {f}: {k or '-'}: {r}", file=sys.stderr)


def check_all(cfg: Config) -> list[tuple[str, str, str]]:
    """Every problem in config, directory, rules and templates."""
    from .directory import load_directory
    from .render import Renderer
    from .rules.engine import load_rules
    from .messages import check as messages_problems
    from .template_contexts import template_problems
    from .workflows import ACTIONS

    probs: list[tuple[str, str, str]] = []
    for loader in (lambda: load_directory(cfg.path(cfg.paths.directory)),
                   lambda: load_rules(cfg.path(cfg.paths.rules), set(ACTIONS))):
        try:
            loader()
        except ConfigError as e:
            probs += e.problems
    try:
        r = Renderer(cfg.path(cfg.paths.templates))
        probs += template_problems(r.folder, cfg.path(cfg.paths.rules))  # includes r.check()
        probs += messages_problems(r.folder)  # templates/messages.toml: every code worded, every placeholder known
        try:
            rules = load_rules(cfg.path(cfg.paths.rules), set(ACTIONS))
            for rule in rules.rules:
                for role, name in rule.templates.items():
                    if not r.exists(name):
                        probs.append((rule.source, f"do.templates.{role}", f"找不到模板 {name!r}：应有文件 {r.folder / (name + '.txt.j2')}"))
                # [workflows.<rule>] in the config overrides the rule's [settings]
                from .rules.engine import SETTINGS_CHECKS
                over = cfg.workflows.get(rule.name)
                if over and rule.action in SETTINGS_CHECKS:
                    probs += [(cfg.source, f"workflows.{rule.name}.{k}", why)
                              for k, why in SETTINGS_CHECKS[rule.action]({**rule.settings, **over})]
        except ConfigError:
            pass
    except ConfigError as e:
        probs += e.problems
    for a in cfg.accounts:
        if a.auth == "password" and not a.secret():
            probs.append((cfg.source, f"accounts.{a.name}.password_env",
                          f"环境变量 {a.password_env} 没有设置（应保存 IMAP 账号 {a.name} 的密码）"))
        if a.oauth is not None:
            probs += [(cfg.source, f"accounts.{a.name}.oauth.{k}", why) for k, why in oauth_problems(a.oauth)]
    if cfg.smtp.auth == "password" and cfg.smtp.username and not cfg.smtp.secret():
        probs.append((cfg.source, "smtp.password_env", f"环境变量 {cfg.smtp.password_env} 没有设置（应保存发信服务器 SMTP 的密码）"))
    if cfg.smtp.oauth is not None:
        probs += [(cfg.source, f"smtp.oauth.{k}", why) for k, why in oauth_problems(cfg.smtp.oauth)]
    from .workflows.survey import problems as survey_problems
    probs += [(cfg.source, f"workflows.survey.{k}", r) for k, r in survey_problems(cfg)]
    from .web.templates import problems as web_template_problems
    probs += web_template_problems(cfg.path(cfg.paths.templates) / "web")
    from .confidential import problems as confidential_problems
    probs += [(cfg.source, f"workflows.confidential.{k}", r) for k, r in confidential_problems(cfg)]
    try:
        from .workcal import load_holidays
        load_holidays(cfg.path(cfg.sla.holidays), missing_ok=True)
    except ConfigError as e:
        probs += e.problems
    return probs


def cmd_check(cfg: Config, args) -> int:
    probs = check_all(cfg)
    if probs:
        print_problems(ConfigError(probs))
        return 1
    from datetime import datetime, timezone

    from .sla import Sla
    for line in Sla(cfg).warnings(datetime.now(timezone.utc)):
        print(line, file=sys.stderr)  # a loud warning, not an error: the calendar falls back to Monday-Friday
    if cfg.trust.trust_from_header:
        print("警告：trust.trust_from_header = true —— 只凭 From 头信任发件人，任何人都能冒充通讯录中的人；"
              "只能用于封闭的测试邮箱。", file=sys.stderr)
    print(f"配置检查通过：{cfg.source}")
    if getattr(args, "connect", False):
        return 0 if print_probe(cfg) else 2
    return 0


def print_probe(cfg: Config, *, starting: bool = False) -> bool:
    """``check --connect``: reach every server; True when all answered.
    ``starting`` (serve): only failures the admin must fix count; a server
    that is merely down is reported and the daemon reconnects with backoff."""
    from .probe import probe
    findings = probe(cfg)
    for f in findings:
        if f.warning:
            print("  ! " + f.line, file=sys.stderr)
            continue
        print(("  ✓ " if f.ok else "  ✗ ") + f.line, file=sys.stdout if f.ok else sys.stderr)
    bad = [f for f in findings if not f.ok and not (starting and f.transient)]
    if bad:
        what = "无法启动" if starting else "连接检查"
        print(f"{what}：{len(bad)} 项失败，请按上面的说明改正后再运行 python run.py check --connect", file=sys.stderr)
    elif any(not f.ok for f in findings):
        print("有服务器暂时连不上；照常启动，之后会自动重连。", file=sys.stderr)
    else:
        print("连接检查通过：收信、发信服务器和数据库都可以连接。")
    return not bad


def _outbox_mark(rt) -> int:
    """The newest outbox row now: rows after it were queued by this command."""
    from sqlalchemy import func, select

    from .store.models import Outbox
    with rt.store.reader() as s:
        return s.scalar(select(func.coalesce(func.max(Outbox.id), 0)))


def _print_held_back(rt, after_id: int) -> None:
    """Name the mails this command queued but will not send, and why."""
    from sqlalchemy import func, select

    from .store.models import Outbox
    with rt.store.reader() as s:
        rows = s.execute(select(Outbox.status, Outbox.last_error, func.count()).where(
            Outbox.id > after_id, Outbox.status.in_(("suppressed", "failed"))).group_by(
            Outbox.status, Outbox.last_error).order_by(func.count().desc())).all()
    if not rows:
        return
    total = sum(n for _st, _why, n in rows)
    print(f"另有 {total} 封邮件没有发出：")
    for st, why, n in rows[:10]:
        print(f"  {n} 封{'不发送' if st == 'suppressed' else '发送失败'}：{why or '（未记录原因）'}")
    if len(rows) > 10:
        print(f"  ……还有 {len(rows) - 10} 种原因，用 python run.py report outbox 查看全部")


def _print_outcomes(outcomes) -> None:
    from .statuses import MESSAGE, name
    for o in outcomes:
        print(f"  #{o.row_id} [{name(MESSAGE, o.status)}] {o.from_addr} 《{o.subject}》 规则={o.rule or '-'}")
        if o.reason:
            print(f"      原因：{o.reason}")
        for to, cc, subj in o.outgoing:
            print(f"      → 发送给 {', '.join(to)}" + (f" 抄送 {', '.join(cc)}" if cc else "") + f"：{subj}")


def cmd_once(cfg: Config, args) -> int:
    from .daemon import run_once
    from .progress import Progress
    rt = _runtime(cfg)
    mark = _outbox_mark(rt)
    progress = Progress("收取并处理邮件")
    try:
        outcomes, stats = run_once(rt, progress=progress)
    finally:
        progress.close()
    if args.verbose:
        _print_outcomes(outcomes)
    print(f"处理邮件 {len(outcomes)} 封；发出 {stats.sent} 封，推迟 {stats.deferred} 封，失败 {stats.failed} 封。")
    _print_held_back(rt, mark)
    if stats.error:
        print(f"{stats.error}（邮件保留在发件箱，稍后重试）", file=sys.stderr)
    return 0


def cmd_serve(cfg: Config, args) -> int:
    from .daemon import Daemon
    if not args.no_connect_check and not print_probe(cfg, starting=True):
        return 2
    rt = _runtime(cfg)
    d = Daemon(rt, use_idle=not args.no_idle)
    d.install_signals()
    web = None
    if cfg.web.in_daemon:  # [web] in_daemon: the web view in this process, on its own Runtime
        from .web.app import Server
        web = Server(_runtime(cfg)).start()
        logging.getLogger(__name__).info("网页视图：%s", cfg.web.url)
    logging.getLogger(__name__).info("开始服务：%d 个 IMAP 账号", len(cfg.accounts))
    try:
        d.run()
    finally:
        if web is not None:
            web.stop()
    return 0


def cmd_web(cfg: Config, args) -> int:
    """The read-only web view, in the foreground."""
    import socket

    from .web.app import serve
    try:
        with socket.create_server((cfg.web.host, cfg.web.port)):
            pass
    except OSError:
        print(f"错误：网页视图无法监听 {cfg.web.listen}：端口已被占用，或本机没有这个地址；"
              f"请在配置文件的 [web] listen 中换一个端口或地址", file=sys.stderr)
        return 2
    rt = _runtime(cfg)
    print(f"网页视图：{cfg.web.url}（监听 {cfg.web.listen}，按 Ctrl+C 停止）", flush=True)
    serve(rt)
    return 0


NO_SEND_REASON = "回灌旧邮件（replay --no-send）：只入库，不发送"


def cmd_replay(cfg: Config, args) -> int:
    from .intake.files import iter_mails
    from .outbox import Deliverer
    from .pipeline import Incoming, Pipeline
    from .progress import Progress
    rt = _runtime(cfg)
    mark = _outbox_mark(rt)
    # --no-send: every mail this replay queues is recorded as not to be sent,
    # with the reason, in the same transaction; no later run delivers it.
    p = Pipeline(rt, suppress=NO_SEND_REASON if args.no_send else "")
    batch, outcomes = [], []
    progress = Progress("导入邮件")
    try:
        # The same size limit as IMAP intake: a larger mail is kept as headers only and quarantined.
        for _label, raw, size, too_large in iter_mails(args.paths, cfg.limits.max_mail_size):
            batch.append(Incoming(raw, size=size, too_large=too_large))
            if len(batch) >= 200:
                outcomes += p.process(batch)
                progress.advance(len(batch))
                batch = []
        if batch:
            outcomes += p.process(batch)
            progress.advance(len(batch))
    except FileNotFoundError as e:
        print(f"找不到文件：{e.filename or e}", file=sys.stderr)
        return 2
    finally:
        progress.close()
    if args.verbose or len(outcomes) <= 50:
        _print_outcomes(outcomes)
    stats = Deliverer(cfg, rt.store, templates=lambda: rt.renderer).deliver_due() if not args.no_send else None
    print(f"重放邮件 {len(outcomes)} 封" + (f"；发出 {stats.sent} 封，推迟 {stats.deferred} 封。" if stats else "；未发信（--no-send）。"))
    _print_held_back(rt, mark)
    return 0


def cmd_quarantine(cfg: Config, args) -> int:
    from sqlalchemy import select

    from .pipeline import Pipeline
    from .reports import _local
    from .statuses import QUARANTINE, name
    from .store.models import Quarantine
    rt = _runtime(cfg)
    with rt.store.reader() as s:
        if args.action == "list":
            rows = list(s.scalars(select(Quarantine).order_by(Quarantine.id)))
            if not rows:
                print("隔离区为空。")
            for q in rows:
                print(f"{q.id}\t{name(QUARANTINE, q.status)}\t{_local(rt, q.created_at)}\t{q.account}/{q.folder}/{q.uid or '-'}\t{q.reason}")
            return 0
        q = s.get(Quarantine, args.id) if args.id else None
        if q is None:
            print(f"隔离记录 {args.id} 不存在。", file=sys.stderr)
            return 2
        if args.action == "show":
            print(f"编号：{q.id}\n状态：{name(QUARANTINE, q.status)}\n时间：{_local(rt, q.created_at, '%Y-%m-%d %H:%M:%S')}\n来源：{q.account}/{q.folder} UID {q.uid}\n原因：{q.reason}")
            if args.raw:
                sys.stdout.flush()
                sys.stdout.buffer.write(rt.raw.get(q.sha256) if q.sha256 and rt.raw.has(q.sha256) else q.headers.encode())
                return 0
            print(f"原始邮件：{'已保存（SHA-256 ' + q.sha256 + '），用 --raw 输出' if q.sha256 and rt.raw.has(q.sha256) else '未保存全文，只有邮件头'}")
            print(f"--- 邮件头 ---\n{q.headers}")
            return 0
        message_id = q.message
    if message_id is None or not rt.raw.has(q.sha256 or ""):
        print("无法重试：原始邮件内容没有保存（例如超过大小上限的邮件只保存了邮件头）。", file=sys.stderr)
        return 2
    o = Pipeline(rt).rerun(message_id, from_quarantine=True)
    _print_outcomes([o])
    from .outbox import Deliverer
    Deliverer(cfg, rt.store, templates=lambda: rt.renderer).deliver_due()
    return 0 if o.status not in ("failed", "quarantined") else 1


def cmd_outbox(cfg: Config, args) -> int:
    """``outbox release SENDER``: put back the mails a sender on another host
    held when it stopped (its journal is on that host)."""
    from .outbox import LeaseRunning, release
    from .reports import _local
    rt = _runtime(cfg)
    try:
        n = release(rt.store, args.sender)
    except LeaseRunning as e:
        print(f"未放回：发信进程 {args.sender} 的租约到 {_local(rt, e.until, '%Y-%m-%d %H:%M:%S')} 为止，它可能仍在发送；"
              "租约到期后再执行。", file=sys.stderr)
        return 2
    if not n:
        print(f"发信进程 {args.sender} 没有持有任何邮件。")
        return 0
    print(f"已把发信进程 {args.sender} 持有的 {n} 封邮件放回发件队列，标记为“可能重复发送”："
          "它们将以相同的 Message-ID 再发一次，收件方可据此去重。")
    return 0


def cmd_trust(cfg: Config, args) -> int:
    """Show how the sender of saved mails (.eml, mbox, Maildir) is judged:
    for checking the [trust] settings against real mail from your server."""
    from .intake.files import iter_raw
    from .mail.parse import parse_mail
    from .trust import decide
    try:
        for label, raw in iter_raw(args.paths):
            addr = parse_mail(raw).from_addr
            v = decide(raw, addr, cfg)
            print(f"{label}：发件人 {addr or '（无）'} —— {'可信' if v.trusted else '不可信'}：{v.text}")
    except FileNotFoundError as e:
        print(f"找不到文件：{e}", file=sys.stderr)
        return 2
    return 0


def cmd_demo(cfg: Config, args) -> int:
    import importlib.util
    missing = [m for m in ("aiosmtpd", "pymap") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"演示需要本地邮件服务器 {'、'.join(missing)}，还没有安装。请运行：python3 -m pip install -e '.[demo]'",
              file=sys.stderr)
        return 2
    from .demo import run_demo
    return run_demo(args)


class LogFormat(logging.Formatter):
    """Log lines for admins: the time in ``system.timezone``, the level in Chinese."""

    LEVELS = {"DEBUG": "调试", "INFO": "信息", "WARNING": "警告", "ERROR": "错误", "CRITICAL": "严重"}

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s：%(message)s")
        self.tz = ZoneInfo("Asia/Shanghai")

    def formatTime(self, record, datefmt=None):
        return datetime.fromtimestamp(record.created, self.tz).strftime("%Y-%m-%d %H:%M:%S")

    def format(self, record):
        record.levelname = self.LEVELS.get(record.levelname, record.levelname)
        return super().format(record)


LOG_FORMAT = LogFormat()


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="run.py", description="邮件工单处理器 (email-native ticket processor)")
    ap.add_argument("--config", type=Path, default=None, help="配置文件（默认 run.py 旁的 config.toml，否则 config.example.toml）")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--debug", action="store_true", help="出错时显示 Python 的详细调用栈（给开发人员看）")
    sub = ap.add_subparsers(dest="command", required=True)

    def add(name, fn, help_):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--config", type=Path, default=argparse.SUPPRESS)
        p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)
        p.set_defaults(fn=fn)
        return p

    p = add("serve", cmd_serve, "守护进程：IMAP IDLE（不支持时轮询）")
    p.add_argument("--no-idle", action="store_true", help="只轮询，不用 IDLE")
    p.add_argument("--no-connect-check", action="store_true", help="启动时不先检查各服务器能否连接")
    add("web", cmd_web, "只读网页视图（总览、记录、搜索、报表；邮件验证码登录），地址见 [web] listen")
    add("once", cmd_once, "处理一遍：收取新邮件、处理、发送发件箱，然后退出")
    p = add("check", cmd_check, "检查配置、通讯录、规则和模板")
    p.add_argument("--connect", action="store_true", help="再连接每个 IMAP 账号、SMTP 服务器和数据库（不发信、不改动邮箱）")
    p = add("replay", cmd_replay, "重放 .eml 文件、mbox 或 Maildir")
    p.add_argument("paths", nargs="+")
    p.add_argument("--no-send", action="store_true", help="只入库，不发信（发件箱保留待发）")
    p = add("trust", cmd_trust, "按 [trust] 配置判断 .eml 文件（或 mbox、Maildir）的发件人是否可信")
    p.add_argument("paths", nargs="+")
    p = add("demo", cmd_demo, "在本机启动演示用的邮件服务器并处理几封示例邮件")
    p.add_argument("--keep", action="store_true", help="演示结束后保留临时目录")
    p = add("quarantine", cmd_quarantine, "隔离区：list | show ID | retry ID")
    p.add_argument("action", choices=["list", "show", "retry"])
    p.add_argument("id", type=int, nargs="?")
    p.add_argument("--raw", action="store_true", help="show：输出原始邮件字节（可重定向为 .eml 文件）")
    p = add("outbox", cmd_outbox, "发件队列：release 发信进程标识（放回另一台主机上已停止的发信进程持有的邮件）")
    p.add_argument("action", choices=["release"])
    p.add_argument("sender", help="发信进程标识，见日志中的提示")
    from .reports import add_report_parser
    add_report_parser(sub, add)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(LOG_FORMAT)
    logging.basicConfig(level=logging.INFO if args.verbose or args.command == "serve" else logging.WARNING,
                        handlers=[handler])  # a no-op where logging is already set up (tests)
    cfg = None
    try:
        if args.command == "demo":
            return cmd_demo(None, args)
        cfg = load_config(args.config or default_config_path())
        LOG_FORMAT.tz = ZoneInfo(cfg.system.timezone)
        return args.fn(cfg, args)
    except ConfigError as e:
        print_problems(e)
        return 1
    except KeyboardInterrupt:
        print("已中断。没有处理完的邮件下次会接着处理。", file=sys.stderr)
        return 130
    except Exception as e:
        from .failures import explain
        line = explain(e, cfg)
        if line is None or args.debug:
            raise  # a bug: the traceback is what a developer needs
        print(f"错误：{line}", file=sys.stderr)
        print("（加 --debug 可以看到详细的出错位置）", file=sys.stderr)
        return 2
