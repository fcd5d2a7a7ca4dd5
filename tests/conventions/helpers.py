"""End-to-end flow for the convention tests: mails go into a real Dovecot
mailbox, ``run.py once`` fetches, processes and delivers to a real aiosmtpd
server, and the tests read what was sent and what the reports say."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from email.utils import getaddresses
from pathlib import Path

from sqlalchemy import create_engine, text

from support import make_mail, run, write_config

SYSTEM = "tracking@company.example"
ZHANG = "zhangsan@company.example"  # 张三 售前, 第一售前 of 华夏银行
WANG = "wangwu@company.example"  # 王五 售前, 第二售前 of 华夏银行
LI = "lisi@company.example"  # 李四 销售, 责任销售 of 华夏银行
ZHOU = "zhouqi@company.example"  # 周七 销售, 责任销售 of 东方电网
ZHAO = "zhaoliu@company.example"  # 赵六 售前经理
QIAN = "qian@company.example"  # 钱经理 技术支持部经理
SUN = "sun@company.example"  # 孙总监 技术总监
NAMES = {ZHANG: "张三", WANG: "王五", LI: "李四", ZHOU: "周七", ZHAO: "赵六", QIAN: "钱经理", SUN: "孙总监"}

TOKEN = re.compile(r"\[#([A-Z]+\d{4}-\d{4})\]")


def report_body(*, result="成功", project="华夏银行", contact="王经理（信息科）", method="电话",
                issue="解决vista下远程控制网络参数设置", remaining=None, followup=None, colon="：") -> str:
    lines = [f"沟通结果{colon}{result}", f"项目名称{colon}{project}", f"沟通人{colon}{contact}",
             f"沟通方式{colon}{method}", f"沟通的具体问题{colon}{issue}"]
    if remaining is not None:
        lines.append(f"遗留的问题描述{colon}{remaining}")
    if followup is not None:
        lines.append(f"跟进单编号{colon}{followup}")
    return "\n".join(lines) + "\n\n谢谢！\n张三\n"


@dataclass
class Sent:
    """One mail the system delivered, as the recipients see it."""
    to: list[str]
    cc: list[str]
    rcpt: list[str]
    subject: str
    text: str
    reply_to: str
    message_id: str
    in_reply_to: str
    attachments: list
    # What the reader's client shows: the display name of each To/Cc address ("" if none).
    names: dict = field(default_factory=dict)
    references: str = ""
    html: str = ""
    attachment_types: list = field(default_factory=list)

    @property
    def token(self) -> str | None:
        m = TOKEN.search(self.subject)
        return m.group(1) if m else None

    def __repr__(self) -> str:
        return f"<Sent to={self.to} cc={self.cc} {self.subject!r}>"


def _addrs(value: str | None) -> list[str]:
    """The bare addresses of a decoded To/Cc header (display names dropped)."""
    return sorted(a.strip().lower() for _n, a in getaddresses([value or ""]) if a.strip())


def _names(*values: str | None) -> dict[str, str]:
    return {a.strip().lower(): n for v in values for n, a in getaddresses([v or ""]) if a.strip()}


class Flow:
    def __init__(self, tmp_path: Path, imap_server, smtp_server, capsys, *, extra: str = "", directory: str | None = None,
                 db_url: str | None = None, **config):
        kw = {"extra": extra, "db_url": db_url, **config}
        if directory is not None:
            kw["directory"] = directory
        self.cfg = write_config(tmp_path, imap=imap_server, smtp=smtp_server, **kw)
        self.db_url = db_url or f"sqlite:///{tmp_path / 'data' / 'processor.db'}"
        self.imap = imap_server
        self.smtp = smtp_server
        self.capsys = capsys
        self.seen = 0
        self.tmp = tmp_path

    # -- mail in, mail out --------------------------------------------------
    def mail(self, **kw) -> bytes:
        return make_mail(**kw)

    def deliver(self, *raws: bytes) -> list[Sent]:
        """Append the mails to the mailbox, run one pass, return what was sent by it."""
        for raw in raws:
            self.imap.append(raw)
        assert run(self.cfg, "once") == 0
        self.capsys.readouterr()
        new = self.smtp.messages[self.seen:]
        self.seen = len(self.smtp.messages)
        out = []
        for c in new:
            out.append(Sent(to=_addrs(c.header("To")), cc=_addrs(c.header("Cc")), rcpt=sorted(c.rcpt_tos),
                            subject=c.subject or "", text=c.text or "", reply_to=(c.header("Reply-To") or "").lower(),
                            message_id=c.header("Message-ID") or "", in_reply_to=c.header("In-Reply-To") or "",
                            attachments=[a.get_filename() for a in c.attachments],
                            names=_names(c.header("To"), c.header("Cc")), references=c.header("References") or "",
                            html=c.html or "", attachment_types=[a.get_content_type() for a in c.attachments]))
        return out

    def send(self, *, sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject: str, body: str = "", **kw) -> list[Sent]:
        return self.deliver(make_mail(sender=sender, sender_name=NAMES.get(sender, sender), to=to, cc=cc,
                                      subject=subject, body=body, **kw))

    def reply_to(self, sent: Sent, *, sender: str, body: str, to=(SYSTEM,), cc=(), prefix="回复：") -> list[Sent]:
        """Answer a mail the system sent (its thread: In-Reply-To + the [#token] subject)."""
        return self.deliver(make_mail(sender=sender, sender_name=NAMES.get(sender, sender), to=to, cc=cc,
                                      subject=prefix + sent.subject, body=body, in_reply_to=sent.message_id))

    # -- what the admins see ------------------------------------------------
    def report(self, kind: str, *args: str) -> list[dict]:
        self.capsys.readouterr()
        assert run(self.cfg, "report", kind, "--format", "json", *args) == 0
        return json.loads(self.capsys.readouterr().out)

    def report_text(self, kind: str, *args: str) -> str:
        self.capsys.readouterr()
        assert run(self.cfg, "report", kind, *args) == 0
        return self.capsys.readouterr().out

    def tracking(self, *args: str) -> list[dict]:
        return self.report("tracking", *args)

    def db(self, sql: str, **params) -> list[tuple]:
        """Rows from the store (SQLite or PostgreSQL), JSON columns as Python values."""
        eng = create_engine(self.db_url)
        try:
            with eng.connect() as c:
                rows = [tuple(r) for r in c.execute(text(sql), params)]
        finally:
            eng.dispose()
        return [tuple(json.loads(v) if isinstance(v, str) and v[:1] in ("[", "{") and v[-1:] in ("]", "}") else v
                      for v in r) for r in rows]

    def ticket(self, number: str) -> dict:
        rows = self.db("select kind, state, project, owner, data, due_at, closed_at from tickets where number = :n", n=number)
        assert rows, f"no ticket {number}"
        kind, state, project, owner, data, due_at, closed_at = rows[0]
        return {"kind": kind, "state": state, "project": project, "owner": owner, "data": data,
                "due_at": due_at, "closed_at": closed_at}

    def messages(self) -> list[tuple]:
        return self.db("select id, status, rule, reason from messages order by id")


def one(sent: list[Sent], *, to: str, subject: str | None = None) -> Sent:
    """The single mail sent To ``to`` (whose subject contains ``subject``)."""
    hits = [s for s in sent if to in s.to and (subject is None or subject in s.subject)]
    assert len(hits) == 1, f"expected one mail to {to} ({subject!r}), got {hits} among {sent}"
    return hits[0]


def shape(sent: list[Sent]) -> list[tuple]:
    """(to, cc) of every mail, order-independent, for exact recipient checks."""
    return sorted((tuple(s.to), tuple(s.cc)) for s in sent)
