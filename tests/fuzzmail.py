"""Hostile and broken mails for the hardening tests and bench/fuzz.py: nested
message/rfc822 bombs, absurd nesting, and a seeded mutator (truncation,
flipped bytes, broken boundaries, bogus charsets, NULs, bad base64/QP, header
floods, deep nesting) over realistic seed mails."""
from __future__ import annotations

import base64
import random
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from datetime import datetime, timezone
from pathlib import Path

from support import make_mail

DATA = Path(__file__).parent / "data" / "mail"

WORKORDER_BODY = ("环境：S5720 核心交换机，双机 VRRP\n操作过程：升级补丁后重启备机\n现象：VRRP 主备频繁切换\n"
                  "日志：见附件\n尝试次数：3\n\n谢谢！\n")


def nested_rfc822(levels: int, *, payload: bytes, subject: str = "故障处理-华夏银行-嵌套邮件",
                  sender: str = "zhangsan@company.example", body: str = WORKORDER_BODY,
                  to: str = "zhaoliu@company.example", cc: str = "tracking@company.example") -> bytes:
    """A mail whose attachment is a forwarded mail that forwards a mail ...
    ``levels`` deep; the innermost one carries ``payload`` as a base64 file."""
    b64 = base64.encodebytes(payload)
    inner = (b"From: someone@client.example\r\nSubject: innermost\r\nMIME-Version: 1.0\r\n"
             b"Content-Type: multipart/mixed; boundary=\"inner\"\r\n\r\n--inner\r\nContent-Type: text/plain\r\n\r\n"
             b"log attached\r\n--inner\r\nContent-Type: application/octet-stream\r\n"
             b"Content-Disposition: attachment; filename=\"dump.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
             + b64 + b"\r\n--inner--\r\n")
    for i in range(levels):
        b = f"lvl{i}".encode()
        inner = (b"From: someone@client.example\r\nSubject: Fwd level " + b + b"\r\nMIME-Version: 1.0\r\n"
                 b"Content-Type: multipart/mixed; boundary=\"" + b + b"\"\r\n\r\n--" + b +
                 b"\r\nContent-Type: text/plain\r\n\r\nforwarded\r\n--" + b +
                 b"\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"\r\n--" + b + b"--\r\n")
    head = (f"From: =?utf-8?b?{base64.b64encode('张三'.encode()).decode()}?= <{sender}>\r\nTo: {to}\r\nCc: {cc}\r\n"
            f"Subject: =?utf-8?b?{base64.b64encode(subject.encode()).decode()}?=\r\n"
            f"Date: {format_datetime(datetime.now(timezone.utc))}\r\nMessage-ID: {make_msgid(domain='client.example')}\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"top\"\r\n\r\n").encode()
    return (head + b"--top\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            + body.encode() + b"\r\n--top\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"\r\n--top--\r\n")


def deep_multipart(levels: int, *, sender: str = "zhangsan@company.example", subject: str = "工单测试 深嵌套") -> bytes:
    """``levels`` of multipart/mixed, each holding the next (1,500 breaks the stdlib parser)."""
    head = (f"From: {sender}\r\nTo: tracking@company.example\r\nSubject: {subject}\r\n"
            f"Date: {format_datetime(datetime.now(timezone.utc))}\r\nMessage-ID: {make_msgid(domain='client.example')}\r\n"
            "MIME-Version: 1.0\r\n").encode()
    opening = b"".join(b"Content-Type: multipart/mixed; boundary=\"d%d\"\r\n\r\n--d%d\r\n" % (i, i) for i in range(levels))
    closing = b"".join(b"\r\n--d%d--\r\n" % i for i in reversed(range(levels)))
    return head + opening + b"Content-Type: text/plain\r\n\r\nhello\r\n" + closing


def attachment_mail(n: int = 0) -> bytes:
    msg = EmailMessage()
    msg["From"] = "张三 <zhangsan@company.example>"
    msg["To"] = "tracking@company.example"
    msg["Subject"] = f"工单测试 附件 {n}"
    msg["Date"] = format_datetime(datetime.now(timezone.utc))
    msg["Message-ID"] = make_msgid(domain="client.example")
    msg.set_content("你好，附件是日志。\n", charset="utf-8")
    msg.add_alternative("<p>你好，<b>附件</b>是日志。</p>", subtype="html", charset="gb2312")
    msg.add_attachment(("日志 " * 200).encode("gb18030"), maintype="text", subtype="plain", filename="日志.txt")
    msg.add_attachment(bytes(range(256)) * 8, maintype="application", subtype="octet-stream", filename="dump.bin")
    return msg.as_bytes(policy=SMTP)


def seeds() -> list[bytes]:
    """Realistic mails to mutate: the charset corpus plus generated ones."""
    out = [p.read_bytes() for p in sorted(DATA.glob("*.eml"))]
    out += [make_mail(subject="工单测试 种子", body="你好\n" * 20),
            make_mail(subject="回复：工单测试", charset="gb2312", body="测试中文正文，GBK 编码。"),
            make_mail(subject="客户沟通-华夏银行-张三", body="沟通结果：成功\n项目名称：华夏银行\n沟通人：王经理\n"
                                                         "沟通方式：电话\n沟通的具体问题：无法登录\n"),
            make_mail(subject="故障处理-华夏银行-交换机故障", to=("zhaoliu@company.example",),
                      cc=("tracking@company.example",), body=WORKORDER_BODY),
            make_mail(subject="工单测试 html", html="<html><body><p>你好</p><table><tr><td>a</td></tr></table></body></html>"),
            attachment_mail(),
            nested_rfc822(3, payload=b"x" * 3000)]
    return out


# -- mutations --------------------------------------------------------------------

def _truncate(r: random.Random, m: bytes) -> bytes:
    return m[:r.randrange(0, max(len(m), 1))]


def _flip(r: random.Random, m: bytes) -> bytes:
    b = bytearray(m)
    for _ in range(r.randint(1, 40)):
        if b:
            b[r.randrange(len(b))] = r.randrange(256)
    return bytes(b)


def _boundaries(r: random.Random, m: bytes) -> bytes:
    choice = r.randrange(4)
    if choice == 0:
        return m.replace(b"boundary=", b"boundary=x", 1)
    if choice == 1:
        return m.replace(b"--\r\n", b"\r\n")
    if choice == 2:
        return m.replace(b"boundary=", b"boundary=\"\"; x=", 1)
    return m.replace(b"multipart/alternative", b"multipart/mixed; boundary=nothere")


def _charset(r: random.Random, m: bytes) -> bytes:
    bogus = r.choice([b"x-unknown-9", b"utf-7", b"gb2312\x00", b"\xff\xfe", b"utf-16", b"iso-2022-jp", b"" * 3, b"a" * 300])
    m = m.replace(b"charset=\"utf-8\"", b"charset=\"" + bogus + b"\"").replace(b"charset=utf-8", b"charset=" + bogus)
    return m.replace(b"=?utf-8?", b"=?" + bogus + b"?", 1)


def _nuls(r: random.Random, m: bytes) -> bytes:
    b = bytearray(m)
    for _ in range(r.randint(1, 30)):
        b.insert(r.randrange(len(b) + 1), 0)
    if r.random() < 0.5:  # and drop From
        return bytes(b).replace(b"\nFrom:", b"\nX-Nothing:").replace(b"From:", b"X-Nothing:", 1)
    return bytes(b)


def _bad_encodings(r: random.Random, m: bytes) -> bytes:
    junk = r.choice([b"!!!notbase64@@@\r\n", b"QUJD=RA==\r\n====\r\n", b"=ZZ=\r\n=\r\n=4", b"=?utf-8?b?@@@?="])
    m = m.replace(b"Content-Transfer-Encoding: 8bit", b"Content-Transfer-Encoding: " +
                  r.choice([b"base64", b"quoted-printable", b"x-uuencode", b"bogus"]))
    cut = m.find(b"\r\n\r\n")
    return m if cut < 0 else m[:cut + 4] + junk + m[cut + 4:]


def _header_flood(r: random.Random, m: bytes) -> bytes:
    n = r.choice([200, 2000, 20000])
    name = r.choice([b"X-Flood", b"Received", b"To", b"Subject"])
    flood = b"".join(name + b": v%d@x.example\r\n" % i for i in range(n))
    if r.random() < 0.3:
        flood += b"X-Long: " + b"a" * r.choice([10000, 300000]) + b"\r\n"
    return flood + m


def _deep(r: random.Random, m: bytes) -> bytes:
    return deep_multipart(r.choice([30, 300, 1500, 3000]), subject=f"工单测试 深 {r.random()}")


def _nest(r: random.Random, m: bytes) -> bytes:
    return nested_rfc822(r.randint(1, 60), payload=r.randbytes(r.randint(0, 20000)),
                         subject=r.choice(["故障处理-华夏银行-嵌套", "工单测试 嵌套"]))


def long_mail(subject: str, body: str, *, sender: str = "zhangsan@company.example",
              to: str = "tracking@company.example") -> bytes:
    """A well-formed mail with a subject of any length (email.header is
    quadratic on long values: encode the words here)."""
    words = "\r\n ".join(f"=?utf-8?b?{base64.b64encode(subject[i:i + 15].encode()).decode()}?="
                          for i in range(0, len(subject), 15))
    head = (f"From: {sender}\r\nTo: {to}\r\nSubject: {words}\r\nDate: {format_datetime(datetime.now(timezone.utc))}\r\n"
            f"Message-ID: {make_msgid(domain='client.example')}\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
    return head.encode() + body.replace("\n", "\r\n").encode()


def _long_values(r: random.Random, m: bytes) -> bytes:
    big = "长" * r.choice([300, 10000, 100000])
    return long_mail(r.choice(["工单测试 ", "立项-", "故障处理-"]) + big, f"项目名称：{big}\n现象：{big}\n")


MUTATIONS = {
    "truncate": _truncate, "flip": _flip, "boundaries": _boundaries, "charset": _charset, "nul": _nuls,
    "encoding": _bad_encodings, "header_flood": _header_flood, "deep": _deep, "nest": _nest, "long": _long_values,
}


def fuzz_mails(n: int, seed: int) -> list[tuple[str, bytes]]:
    """n (mutation names, mail) pairs, reproducible from ``seed``. Each mail
    gets one to three mutations."""
    return list(iter_fuzz_mails(n, seed))


def iter_fuzz_mails(n: int, seed: int):
    """The same mails as fuzz_mails, one at a time (memory stays flat)."""
    r = random.Random(seed)
    base = seeds()
    names = sorted(MUTATIONS)
    for i in range(n):
        m = r.choice(base)
        # A unique Message-ID, so that every mutated mail is a mail of its own.
        m = m.replace(b"Message-ID: <", b"Message-ID: <f%d." % i, 1)
        chosen = r.sample(names, r.randint(1, 3))
        for name in chosen:
            m = MUTATIONS[name](r, m)
        yield "+".join(chosen), m
