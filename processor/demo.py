"""``run.py demo``: the whole path on this machine, with nothing to set up.

Starts a local IMAP server (Dovecot if installed, else pymap) and an aiosmtpd
server that captures outgoing mail, writes a config with a SQLite store in a
temporary directory (using the shipped ``directory.toml``, ``rules/`` and
``templates/``), then, one step per sample mail, puts the mail into the
mailbox, runs one pass (``run.py once``) and prints what happened: the mail,
how it was classified, and every mail the system sent, with recipients.
At the end it prints the reports (项目跟踪表, 汇报统计, 投诉统计, 全部记录).

Everything printed is Chinese: it is what an admin sees when trying the
system for the first time.
"""
from __future__ import annotations

import base64
import os
import re
import shutil
import sys
import tempfile
from datetime import datetime
from email.utils import format_datetime, getaddresses
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
SYSTEM_ADDRESS = "tracking@company.example"
TZ = ZoneInfo("Asia/Shanghai")
_n = 0

# ---------------------------------------------------------------------------
# sample mails
# ---------------------------------------------------------------------------


def _encoded_word(text: str, charset: str) -> str:
    """RFC 2047 B-encoding with the charset label real clients write
    (Python's Header would write ``eucgb2312_cn`` for gb2312)."""
    if all(ord(c) < 128 for c in text):
        return text
    codec = _codec(charset)
    words, chunk = [], ""
    for ch in text:  # at most ~45 bytes per word: lines stay short
        if len((chunk + ch).encode(codec)) > 45:
            words.append(chunk)
            chunk = ""
        chunk += ch
    words.append(chunk)
    return "\r\n ".join(f"=?{charset}?B?{base64.b64encode(w.encode(codec)).decode()}?=" for w in words if w)


def _codec(charset: str) -> str:
    # Outlook labels mail gb2312 and still uses GBK-only characters.
    return {"gb2312": "gb18030", "gbk": "gb18030", "big5": "big5"}.get(charset.lower(), charset)


def _addr(a, charset: str) -> str:
    if isinstance(a, str):
        return a
    name, email = a
    return f"{_encoded_word(name, charset)} <{email}>" if name else email


def mail(sender: tuple[str, str], subject: str, body: str = "", *, to=(SYSTEM_ADDRESS,), cc=(),
         charset: str = "utf-8", headers: dict | None = None, in_reply_to: str | None = None,
         references: str | None = None, html: str | None = None, message_id: str | None = None,
         date: datetime | None = None, cte: str = "8bit", content_type: str | None = None) -> bytes:
    """One mail as a client writes it. Addresses are ``"a@b"`` or ``(name, "a@b")``.
    ``html`` makes an HTML-only mail; ``cte`` is 8bit or base64; ``content_type``
    overrides the type for a hand-built MIME body (e.g. a bounce)."""
    global _n
    _n += 1
    when = date or datetime.now(TZ)
    h = [_received(sender, when), ("From", _addr(sender, charset)),
         ("To", ", ".join(_addr(a, charset) for a in to))]
    if cc:
        h.append(("Cc", ", ".join(_addr(a, charset) for a in cc)))
    h += [("Subject", _encoded_word(subject, charset)), ("Date", format_datetime(when)),
          ("Message-ID", message_id or f"<{when:%Y%m%d%H%M%S}{_n:04d}{os.getpid() % 10000:04d}@company.example>")]
    if in_reply_to:
        h += [("In-Reply-To", in_reply_to), ("References", references or in_reply_to)]
    h += list((headers or {}).items())
    h.append(("MIME-Version", "1.0"))
    payload = (html if html is not None else body).replace("\r\n", "\n").replace("\n", "\r\n").encode(_codec(charset))
    if content_type:
        h += [("Content-Type", content_type)]
    else:
        h += [("Content-Type", f'text/{"html" if html is not None else "plain"}; charset="{charset}"')]
        h += [("Content-Transfer-Encoding", cte)]
    if cte == "base64" and not content_type:
        b = base64.b64encode(payload).decode()
        payload = "\r\n".join(b[i:i + 76] for i in range(0, len(b), 76)).encode() + b"\r\n"
    head = "".join(f"{k}: {v}\r\n" for k, v in h).encode("ascii")
    return head + b"\r\n" + payload


def _received(sender, when: datetime) -> tuple[str, str]:
    """The Received line the company's mail server writes on top: staff
    submit with SMTP AUTH (ESMTPSA), which is what makes the processor trust
    the sender (processor/trust.py); anyone else arrives from outside."""
    email = sender[1] if isinstance(sender, tuple) else sender
    if email.lower().endswith("@" + SYSTEM_ADDRESS.split("@", 1)[1]):
        frm = "[192.168.10.23] (unknown [192.168.10.23])"
        proto = "ESMTPSA"
    else:
        frm = "mx.personal.example (mx.personal.example [198.51.100.20])"
        proto = "ESMTPS"
    return ("Received", f"from {frm} by mail.company.example (Postfix) with {proto} id 4D{_n:04d}; "
                        f"{format_datetime(when)}")


def sample_mails():
    """The steps of the demo (see :mod:`processor.demo_mails`); uses the
    people and projects of the shipped directory.toml."""
    from . import demo_mails
    return demo_mails.samples(mail)


# ---------------------------------------------------------------------------
# the demo
# ---------------------------------------------------------------------------

RULE = "─" * 72


def run_demo(args) -> int:
    from .config import load_config
    from .daemon import run_once
    from .devservers.imap import start_local_imap
    from .devservers.smtp import CaptureSMTPServer
    from .pipeline import Runtime

    keep = bool(getattr(args, "keep", False))
    work = Path(tempfile.mkdtemp(prefix="ticket-demo-"))
    os.chmod(work, 0o755)  # Dovecot drops privileges and must still reach its files
    imap = smtp = rt = web = None
    try:
        print("== 邮件工单处理器 演示 ==")
        print("在本机启动邮件服务器，把几封示例邮件放进工单系统的邮箱，逐封处理，显示系统做了什么。")
        print("不会连接真实的邮件服务器，也不会真正发出邮件。\n")
        imap = start_local_imap(work / "imap")
        smtp = CaptureSMTPServer()
        smtp.start()
        kind = "Dovecot" if "dovecot" in type(imap).__name__.lower() else "pymap"
        print(f"收信（IMAP）：本地 {kind}，127.0.0.1:{imap.port}，账号 {imap.user}（即工单系统邮箱 {SYSTEM_ADDRESS}）")
        print(f"发信（SMTP）：本地 aiosmtpd，127.0.0.1:{smtp.port}，只记录系统发出的邮件，不真正发出")
        os.environ["DEMO_IMAP_PASSWORD"] = imap.password
        shutil.copy(ROOT / "directory.toml", work / "directory.toml")
        (work / "config.toml").write_text(_config(imap, smtp), encoding="utf-8")
        print(f"数据库：SQLite，{work / 'data' / 'processor.db'}")
        cfg = load_config(work / "config.toml")
        rt = Runtime(cfg)
        from .web.app import Server
        web = Server(Runtime(cfg)).start()
        print(f"网页视图：{cfg.web.url}（只读；演示结束时给出登录验证码）")
        _print_directory(rt)

        steps = sample_mails()
        print(f"\n下面共 {len(steps)} 步：每一步把一封邮件放进收件箱，处理一遍（相当于 python run.py once），"
              "然后列出系统发出的邮件。")
        history: dict = {}
        total = 0
        problems: list[str] = []
        for i, step in enumerate(steps, 1):
            try:
                raw = step.build(history) if callable(step.build) else step.build
            except LookupError as e:  # an earlier step did not send the mail this one answers
                print(f"\n{RULE}\n第 {i} 步：{step.title}\n  无法生成这封邮件：{e}")
                problems.append(f"第 {i} 步：{e}")
                continue
            imap.append(raw)
            before = len(smtp.messages)
            outcomes, stats = run_once(rt)
            got = smtp.wait_for(before + stats.sent, timeout=10)[before:] if stats.sent else []
            got = _in_outbox_order(rt, got)
            history[step.key] = got
            total += len(got)
            _print_step(rt, i, step, raw, outcomes, got)
            if stats.deferred or stats.failed or stats.error:
                why = f"：{stats.error}" if stats.error else ""
                print(f"  ⚠ 有 {stats.deferred + stats.failed} 封邮件没有发出{why}（python run.py report outbox 可查看）")
                problems.append(f"第 {i} 步：有邮件没有发出{why}")

        print(f"\n{RULE}\n共处理 {len(steps)} 封邮件，系统发出 {total} 封邮件。")
        _print_reports(rt)
        print()
        _print_web_login(rt, web, smtp)
        if sys.stdin.isatty() and sys.stdout.isatty():
            print("网页视图运行中，按 Ctrl+C 结束演示。")
            try:
                web.thread.join()
            except KeyboardInterrupt:
                print()
        if keep:
            print(f"演示数据已保留在 {work}")
            print(f"  查看报表：python run.py --config {work / 'config.toml'} report tracking")
            print(f"  所有邮件：python run.py --config {work / 'config.toml'} report messages")
            print("  （本地邮件服务器已经停止；再处理新邮件需要改成真实的服务器地址）")
        else:
            print(f"演示数据目录 {work} 已删除（加 --keep 保留，之后可以用 run.py report 查看）。")
        if problems:
            print("\n演示过程中出现问题：")
            for p in problems:
                print(f"  {p}")
            return 1
        return 0
    finally:
        if web is not None:
            web.stop()
            web.rt.store.dispose()
        if rt is not None:
            rt.store.dispose()
        if smtp is not None:
            smtp.stop()
        if imap is not None:
            imap.stop()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def _print_web_login(rt, web, smtp) -> None:
    """A login code for a manager of the demo directory, mailed the real way (outbox -> local SMTP)."""
    person = next((p for r in rt.cfg.web.roles_see_all for p in rt.directory.with_role(r)), None)
    if person is None:
        return
    before = len(smtp.messages)
    web.web._send_code(person.email)
    for m in smtp.wait_for(before + 1, timeout=10)[before:]:
        got = re.search(r"验证码：(\d{6})", m.subject or "")
        if got and person.email in (m.header("To") or ""):
            print(f"网页视图：{rt.cfg.web.url}")
            print(f"  登录：邮箱 {person.email}（{person.name}，{'、'.join(sorted(person.roles))}），"
                  f"验证码 {got.group(1)}（{rt.cfg.web.code_minutes:g} 分钟内有效，只能用一次）")
            return


def _free_port(preferred: int = 8080) -> int:
    import socket
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    return preferred


def _config(imap, smtp) -> str:
    return f"""# Written by `run.py demo`: local servers, SQLite in this directory.
[system]
address = "{SYSTEM_ADDRESS}"
name = "工单系统"
timezone = "Asia/Shanghai"

[[accounts]]
name = "demo"
host = "127.0.0.1"
port = {imap.port}
ssl = false
username = "{imap.user}"
password_env = "DEMO_IMAP_PASSWORD"
timeout = 20
start = "all"

[smtp]
host = "127.0.0.1"
port = {smtp.port}
timeout = 10

[store]
url = "sqlite:///data/processor.db"

[web]
listen = "127.0.0.1:{_free_port()}"
cookie_secure = false            # the demo is plain HTTP on this machine

[paths]
rules = "{(ROOT / 'rules').as_posix()}"
templates = "{(ROOT / 'templates').as_posix()}"
directory = "directory.toml"
"""


# ---------------------------------------------------------------------------
# printing
# ---------------------------------------------------------------------------


def _who(rt, addr: str, name: str = "") -> str:
    """``张三 <zhangsan@company.example>``, the name from the directory if known."""
    p = rt.directory.by_email(addr)
    if addr.lower() == SYSTEM_ADDRESS:
        name = "工单系统"
    elif p is not None:
        name = p.name
    return f"{name} <{addr}>" if name else addr


def _people(rt, header_value: str | None) -> str:
    pairs = getaddresses([header_value or ""])
    return "、".join(_who(rt, a, n) for n, a in pairs if a) or "（无）"


def _print_directory(rt) -> None:
    d = rt.directory
    print(f"通讯录：directory.toml（{len(d.people)} 人，{len(d.projects)} 个项目）")
    for p in d.people:
        print(f"  {p.name}：{'、'.join(sorted(p.roles))}，{p.email}")
    for pr in d.projects:
        extra = f"，第二售前 {pr.presales2}" if pr.presales2 else ""
        alias = f"（别名：{'、'.join(pr.aliases)}）" if pr.aliases else ""
        print(f"  项目 {pr.name}{alias}：责任销售 {pr.sales}，第一售前 {pr.presales1}{extra}")


def _in_outbox_order(rt, got: list) -> list:
    """Captured mails in the order the system wrote them (delivery may
    interleave when several SMTP connections are used)."""
    from sqlalchemy import select

    from .store.models import Outbox
    with rt.store.reader() as s:
        order = {mid: i for i, mid in s.execute(select(Outbox.id, Outbox.message_id)).all()}
    return sorted(got, key=lambda c: order.get(c.message_id or "", 1 << 30))


def _print_step(rt, i: int, step, raw: bytes, outcomes, got: list) -> None:
    import email
    import email.policy
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    print(f"\n{RULE}\n第 {i} 步：{step.title}")
    print(f"  发件人：{_people(rt, str(msg.get('From', '')))}")
    print(f"  收件人：{_people(rt, str(msg.get('To', '')))}")
    if msg.get("Cc"):
        print(f"  抄送：{_people(rt, str(msg.get('Cc')))}")
    addressed = {a.lower() for _, a in getaddresses([str(msg.get("To", "")), str(msg.get("Cc", ""))])}
    if SYSTEM_ADDRESS not in addressed:
        print("  密送：工单系统 <tracking@company.example>")
    print(f"  主题：{msg.get('Subject', '')}")
    if not outcomes:
        print("  结果：没有收到这封邮件（请检查本地 IMAP 服务器）")
    for o in outcomes:
        print(f"  结果：{_result(rt, o)}")
        lines = _explain(rt, o, raw)
        for j, line in enumerate(lines):
            print(("  说明：" if j == 0 else "        ") + line)
    if not got:
        print("  ⇒ 系统没有发出邮件")
        return
    print(f"  ⇒ 系统发出 {len(got)} 封邮件：")
    for k, c in enumerate(got, 1):
        print(f"    【{k}】收件人：{_people(rt, c.header('To'))}")
        print(f"        抄送：{_people(rt, c.header('Cc'))}")
        print(f"        主题：{c.subject}")
        reply_to = c.header("Reply-To")
        if reply_to and SYSTEM_ADDRESS not in reply_to.lower():
            print(f"        回复到：{_people(rt, reply_to)}（收件人直接回复即可联系对方）")
        files = [a.get_filename() or "（未命名）" for a in c.attachments]
        if files:
            print(f"        附件：{'、'.join(files)}")
        body = _gist(c.text or "")
        for j, line in enumerate(body):
            print(("        正文：" if j == 0 else "              ") + line)


def _gist(text: str, width: int = 90) -> list[str]:
    """The first meaningful paragraph of an outgoing mail: the first line
    after the greeting, and when it announces a list (ends with ：) the
    list items up to the next blank line."""
    lines = [ln.rstrip() for ln in text.replace("\r\n", "\n").split("\n")]
    out: list[str] = []
    for idx, ln in enumerate(lines):
        s = ln.strip()
        if not s or s.endswith("您好：") or s == "您好：":
            continue
        out.append(s)
        if s.endswith("：") or s.endswith(":"):
            for more in lines[idx + 1:]:
                m = more.strip()
                if not m:
                    if len(out) > 1:
                        break
                    continue
                out.append(m)
                if len(out) >= 6:
                    break
        break
    return [s if len(s) <= width else s[:width - 1] + "…" for s in out]


_STATUS = {"ignored": "未匹配任何规则，只记录", "machine": "自动发出的邮件，不回复",
           "untrusted": "发件人不可信（不在通讯录中或未通过认证），只记录，不回复", "duplicate": "重复的邮件，已跳过", "seen": "这封邮件已经处理过",
           "quarantined": "已隔离，等待管理员处理", "failed": "处理出错，稍后重试"}


def _result(rt, o) -> str:
    if o.status != "processed":
        return _STATUS.get(o.status, o.status)
    rule = o.rule or ""
    if rule.startswith("reply:"):
        kind = {"report": "汇报邮件", "complaint": "投诉", "followup": "遗留问题跟进单",
                "workorder": "故障处理工作单", "document": "文档审核单"}.get(rule[6:], rule[6:])
        return f"已处理 —— 识别为对系统邮件的回复（{kind}的会话）"
    r = rt.rules.by_name.get(rule) if rt.rules is not None else None
    desc = r.description if r is not None and r.description else rule
    return f"已处理 —— 识别为“{desc}”（规则 {rule}）"


_MACHINE = {
    "auto_submitted": "邮件头 Auto-Submitted 表明这是自动回复（RFC 3834）",
    "precedence": "邮件头 Precedence 表明这是群发或垃圾邮件",
    "list": "这是邮件列表的邮件",
    "out_of_office": "这是外出/休假自动回复",
    "bounce": "这是退信（投递失败通知，或发件人是 MAILER-DAEMON 等邮件系统地址）",
}

_TEMPLATE_NOTES = {
    "report_forward": "责任销售不在收件人和抄送中，系统把汇报转发给责任销售（第十二条）。",
    "report_handover": "汇报人不是第一售前，系统通知第一售前，抄送售前经理（第六、十六条）。",
    "complaint_forward": "投诉没有同时发给技术支持部经理和技术总监，系统把投诉转给缺少的人（第十三条）。",
    "complaint_notice": "系统通知被投诉的售前。",
}

_HOW_CLOSED = {"reply": "负责人回复“已解决”", "report": "新的汇报沟通结果为“成功”"}


def _machine_kind(raw: bytes) -> str:
    """Which of the guard's machine-mail checks fires for this mail, in
    Chinese (recomputed here: the reason text is the pipeline's business)."""
    from .guard import ALL_MACHINE_CHECKS
    from .mail.parse import parse_mail
    m = parse_mail(raw)
    for c in ALL_MACHINE_CHECKS:
        if c.check(m):
            return _MACHINE.get(c.name, "这是机器自动发出的邮件")
    return "这是本系统自己发出的邮件"


def _explain(rt, o, raw: bytes) -> list[str]:
    """What happened to one mail, in Chinese, from the audit trail it left."""
    from sqlalchemy import select

    from .store.models import Audit, Outbox, Ticket
    if o.status == "machine":
        return [_machine_kind(raw) + "。自动发出的邮件一律不回复，以免邮件循环；只保存备查。"]
    if o.status == "untrusted" and rt.directory.by_email(o.from_addr) is not None:
        return [f"{o.reason}。只有经过本组织邮件系统认证的邮件才能改变记录（防止冒用）；邮件只保存备查。"]
    if o.status == "untrusted":
        return [f"{o.from_addr} 不在通讯录中。通讯录以外的地址不能改变任何记录，系统也不回复（防止冒用）；邮件只保存备查。"]
    if o.status == "ignored":
        return ["标题不符合任何规则（汇报邮件、投诉邮件、工单测试……），只保存备查。"]
    if o.status != "processed":
        return [o.reason] if o.reason else []

    with rt.store.reader() as s:
        audits = list(s.scalars(select(Audit).where(Audit.message == o.row_id).order_by(Audit.id)))
        templates = [t for (t,) in s.execute(select(Outbox.template).where(Outbox.caused_by == o.row_id)
                                               .order_by(Outbox.id)).all()]
        tickets = {t.number: t for t in s.scalars(select(Ticket).where(
            Ticket.number.in_([a.entity_id for a in audits if a.entity == "ticket"])))}
    lines: list[str] = []
    for a in audits:
        d = a.detail or {}
        t = tickets.get(a.entity_id)
        data = (t.data or {}) if t is not None else {}
        act = a.action
        if act == "report_accepted":
            lines.append(f"汇报通过检查，记入第一售前{d.get('owner', '')}的《项目跟踪表》，记录号 {a.entity_id}"
                         f"（项目 {d.get('project', '')}，汇报人 {d.get('reporter', '')}，{d.get('reporter_role', '')}，"
                         f"沟通结果“{d.get('result', '')}”）。")
            if data.get("resubmits"):
                lines.append(f"这是对退回的 {data['resubmits']} 的重新提交。")
        elif act == "report_rejected":
            lines.append(f"汇报没有通过检查，已退回并登记，记录号 {a.entity_id}。问题：")
            lines += [f"  {k}. {p}" for k, p in enumerate(d.get("problems") or data.get("problems") or [], 1)]
        elif act == "report_unregistered":
            lines.append(f"项目“{d.get('project', '')}”在通讯录中找不到（可能未立项），汇报未记录，记录号 {a.entity_id}。")
        elif act == "report_not_counted":
            lines.append(f"发件人在通讯录中不是售前，汇报未计入，记录号 {a.entity_id}。")
        elif act == "followup_opened":
            due = d.get("due_at", "")
            try:
                due = datetime.fromisoformat(due).astimezone(TZ).strftime("%Y-%m-%d %H:%M")
            except (TypeError, ValueError):
                pass
            lines.append(f"沟通结果为“问题遗留”：开《遗留问题跟进单》{a.entity_id}，负责人 {d.get('owner', '')}，"
                         f"期限 {due}（第十七条）。")
        elif act == "followup_closed":
            lines.append(f"《遗留问题跟进单》{a.entity_id} 已关闭（{_HOW_CLOSED.get(d.get('how'), d.get('how', ''))}），"
                         "系统通知责任销售（第十八条）。")
        elif act == "complaint_counted":
            lines.append(f"投诉有效，记在 {d.get('target', '')} 名下，记录号 {a.entity_id}（项目 {d.get('project', '')}）。")
        elif act in ("complaint_not_counted", "complaint_rejected", "complaint_unregistered"):
            lines.append(f"投诉未计入，记录号 {a.entity_id}，已告知投诉人原因。")
        elif act == "complaint_withdrawn":
            lines.append(f"投诉 {a.entity_id} 已撤回，重新计数。")
        elif act == "penalty_fired":
            who = a.entity_id.split("/", 1)[0]
            lines.append(f"{who} 的有效投诉达到处罚次数：{d.get('penalty', '')}（依据 {'、'.join(d.get('complaints') or [])}，"
                         "第十四条），报技术支持部经理，抄送技术总监。")
        elif act == "penalty_revoked":
            lines.append(f"处罚撤销：{d.get('penalty', '')}。")
        elif act == "penalty_rebased":
            lines.append(f"处罚依据变更：{d.get('penalty', '')}。")
        elif act == "thread_reply":
            lines.append(f"记录在 {a.entity_id} 的会话中，不算新的汇报，不回复。")
        elif act == "thread_close_denied":
            lines.append(f"只有跟进单负责人可以关闭 {a.entity_id}，已告知发件人。")
        elif a.entity == "workorder":
            lines += _explain_workorder(a, d, rt.rules.lifecycles.names("workorder"))
        elif a.entity == "document":
            lines += _explain_document(a, d, rt.rules.lifecycles.names("document"))
        elif act.startswith("thread_"):
            lines.append(f"记录在 {a.entity_id} 的会话中，没有改变任何状态。")
    for tpl in dict.fromkeys(templates):
        if tpl in _TEMPLATE_NOTES:
            lines.append(_TEMPLATE_NOTES[tpl])
    if not lines and (o.rule or "") == "ping":
        lines.append("系统测试邮件，已回执（说明收信、处理、发信都正常）。")
    if not lines:
        lines.append("已处理，没有改变任何记录。")
    return lines


_WORKORDER_STEPS = {
    "rd_review": "交研发经理审核（第四十五条）",
    "rejected": "退回故障提出人，附驳回意见（第四十五条）",
    "close_requested": "请故障提出人确认是否解决（第四十六条）",
    "closed": "故障提出人确认解决，工作单关闭，通知研发负责人和研发经理（第四十六条）",
    "custom_pending": "征求故障提出人对转定制研发的意见（第四十七条）",
    "custom": "转入定制研发流程，工作单结束（第四十七条）",
}
_REFUSED = {"not_allowed": "发件人无权执行", "wrong_state": "当前状态下不能执行", "missing_arg": "缺少原因或姓名",
            "bad_assignee": "指派的人不是研发人员"}


def _explain_document(a, d: dict, names: dict) -> list[str]:
    """The 文档审核单's audit rows in Chinese (art. 28); ``names``: its states' (lifecycle)."""
    act = a.action
    if act == "document_submitted":
        return [f"文档登记为《文档审核单》{a.entity_id}（项目 {d.get('project', '')}，编写售前 {d.get('author', '')}），"
                f"交责任销售{d.get('reviewer', '')}审核（第二十八条）。"]
    if act == "document_round":
        return [f"第{d.get('round', '')}版：{'、'.join(d.get('files') or []) or '（无附件）'}，文件已保存在记录中。"]
    if act.startswith("state:"):
        old, _, new = act[6:].partition("->")
        return [f"《文档审核单》{a.entity_id}：{names.get(old, old)} → {names.get(new, new)}"
                + (f"（{d.get('command', '')}{'：' + d['arg'] if d.get('arg') else ''}）" if d.get("command") else "")]
    if act == "command_refused":
        return [f"“{d.get('command', '')}”没有执行（{d.get('reason', '')}），已回复说明。"]
    return []


def _explain_workorder(a, d: dict, names: dict) -> list[str]:
    """The 故障处理工作单's audit rows in Chinese (art. 43-47); ``names``: its states' (lifecycle)."""
    act = a.action
    if act == "workorder_submitted":
        basis = f"明显严重的bug：{d['serious']}" if d.get("serious") else f"已尝试{d.get('attempts')}次"
        return [f"《故障处理工作单》登记为 {a.entity_id}（项目 {d.get('project', '')}，故障提出人 {d.get('raiser', '')}，"
                f"{basis}），状态“待审批”，请售前经理审批（第四十四条）。"]
    if act == "workorder_rejected":
        return ["故障处理工作单没有通过检查，没有登记，已回复问题和可直接补全的正文：",
                *[f"  {k}. {p}" for k, p in enumerate(d.get("problems") or [], 1)]]
    if act == "attachment_kept":
        return [f"附件 {d.get('filename', '')}（{d.get('size', 0)} 字节）已保存到 {a.entity_id}，之后的通知邮件会附上它。"]
    if act == "attachment_over_limit":
        return [f"附件 {d.get('filename', '')}（{d.get('size', 0)} 字节）超过大小上限，只记录文件名和大小。"]
    if act == "command_refused":
        return [f"“{d.get('command', '')}”未执行（{_REFUSED.get(d.get('reason'), d.get('reason', ''))}），已回复说明。"]
    if act.startswith("state:"):
        old, _, new = act[6:].partition("->")
        who = re.split(r"[\s,，。;；、:：(（]+", d.get("arg") or "", maxsplit=1)[0]
        what = (f"指派研发负责人 {who}（第四十五条）" if d.get("command") == "指派"
                else _WORKORDER_STEPS.get(new, ""))
        return [f"《故障处理工作单》{a.entity_id}：{names.get(old, old)} → {names.get(new, new)}"
                f"（{a.actor}回复“{d.get('command', '')}”）" + (f"，{what}。" if what else "。")]
    return []


def _print_reports(rt) -> None:
    from .reports import REPORTS, render_table

    class A:  # report arguments, as `run.py report` would pass them
        presales = month = None
        open = False
        format = "table"

    def get(kind, **kw):
        a = A()
        for k, v in kw.items():
            setattr(a, k, v)
        return REPORTS[kind](rt, a)

    # 项目跟踪表: one per 第一售前 (art. 16), as each engineer keeps it.
    if "tracking" in REPORTS:
        owners = [p.name for p in rt.directory.people if any(pr.presales1 == p.name for pr in rt.directory.projects)]
        headers, _ = get("tracking")
        drop = {"第一售前", "邮件"}
        keep = [k for k, h in enumerate(headers) if h not in drop]
        for who in owners:
            _, rows = get("tracking", presales=who)
            print(f"\n== 项目跟踪表：{who}（第一售前）==  python run.py report tracking --presales {who}")
            print(render_table([headers[k] for k in keep], [[r[k] for k in keep] for r in rows]) if rows else "（空）")
    for kind, title in (("reports", "汇报统计（含退回）"), ("complaints", "投诉统计和已触发的处罚"),
                        ("tickets", "全部记录（汇报、投诉、遗留问题跟进单）"),
                        ("workorders", "故障处理工作单")):
        if kind not in REPORTS:
            continue
        headers, rows = get(kind)
        print(f"\n== {title} ==  python run.py report {kind}")
        print(render_table(headers, rows) if rows else "（空）")


if __name__ == "__main__":
    sys.exit(run_demo(None))
