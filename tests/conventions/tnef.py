"""TNEF (winmail.dat) blobs written the way Outlook writes them (MS-OXTNEF):
signature, key, then attributes (level, id|type, length, data, checksum), the
body in the MAPI properties attribute (PR_HTML / PR_BODY / PR_RTF_COMPRESSED)
with PR_INTERNET_CPID saying its codepage."""
from __future__ import annotations

import struct
from email import encoders
from email.header import Header
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

PT_LONG, PT_UNICODE, PT_BINARY = 0x0003, 0x001F, 0x0102
PR_BODY_W, PR_HTML, PR_RTF_COMPRESSED, PR_INTERNET_CPID = 0x1000, 0x1013, 0x1009, 0x3FDE


def _attr(level: int, ident: int, atype: int, data: bytes) -> bytes:
    return (struct.pack("<BHHI", level, ident, atype, len(data)) + data
            + struct.pack("<H", sum(data) & 0xFFFF))


def _pad(b: bytes) -> bytes:
    return b + b"\x00" * (-len(b) % 4)


def _prop(ptype: int, pid: int, value) -> bytes:
    head = struct.pack("<HH", ptype, pid)
    if ptype == PT_LONG:
        return head + struct.pack("<I", value)
    data = value.encode("utf-16-le") + b"\x00\x00" if ptype == PT_UNICODE else value
    return head + struct.pack("<II", 1, len(data)) + _pad(data)


def tnef(*, html: str | None = None, text: str | None = None, rtf: bytes | None = None, cpid: int = 936) -> bytes:
    props = [_prop(PT_LONG, PR_INTERNET_CPID, cpid)]
    if html is not None:
        props.append(_prop(PT_BINARY, PR_HTML, html.encode("gb18030" if cpid == 936 else "utf-8")))
    if text is not None:
        props.append(_prop(PT_UNICODE, PR_BODY_W, text))
    if rtf is not None:
        props.append(_prop(PT_BINARY, PR_RTF_COMPRESSED, rtf))
    mapi = struct.pack("<I", len(props)) + b"".join(props)
    return (struct.pack("<IH", 0x223E9F78, 0x1234)
            + _attr(1, 0x9006, 0x0008, struct.pack("<I", 0x00010000))           # attTnefVersion
            + _attr(1, 0x9007, 0x0006, struct.pack("<II", 936, 0))              # attOemCodepage
            + _attr(1, 0x8008, 0x0007, b"IPM.Microsoft Mail.Note\x00")          # attMessageClass
            + _attr(1, 0x9003, 0x0006, mapi))                                   # attMAPIProps


# Compressed RTF of an Outlook "Rich Text" body (header: size, raw size, "LZFu", crc).
RTF_ONLY = struct.pack("<III", 40, 60, 0x75465A4C) + struct.pack("<I", 0) + b"\x00" * 28


SIG = "张三\n华信科技有限公司 技术支持部\n手机：138-0000-1234\n"


def outlook_tnef(blob: bytes, text: str = SIG, cc: str = "") -> bytes:
    """Outlook sending "Rich Text": multipart/mixed, a text part with the
    signature, and winmail.dat."""
    msg = MIMEMultipart("mixed")
    msg["From"] = "=?utf-8?b?5byg5LiJ?= <zhangsan@company.example>"
    msg["To"] = "lisi@company.example"
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = Header("客户沟通-华夏银行-张三", "gb2312").encode()
    msg["Date"] = "Mon, 30 Nov 2026 10:00:00 +0800"
    msg["Message-ID"] = "<tnef-1@company.example>"
    msg.attach(MIMEText(text, "plain", "gb18030"))
    part = MIMEBase("application", "ms-tnef")
    part.set_payload(blob)
    encoders.encode_base64(part)
    part.add_header("Content-Disposition", "attachment", filename="winmail.dat")
    msg.attach(part)
    return msg.as_bytes()


REPORT_HTML = ("<html><body><p>沟通结果：成功</p><p>项目名称：华夏银行</p><p>沟通人：王经理</p><p>沟通方式：电话</p>"
               "<p>沟通的具体问题：调整防火墙策略开放8443端口</p></body></html>")


def outlook_rtf(body: str) -> bytes:
    """An Outlook "Rich Text" body as Outlook stores it in PR_RTF_COMPRESSED:
    RTF with \\ansicpg936, a GBK font (\\fcharset134) and each Chinese
    character as two \\'xx escapes, one paragraph a line, compressed with
    MS-OXRTFCP (the compressed_rtf package implements both directions)."""
    from compressed_rtf import compress

    def esc(line: str) -> str:
        out = []
        for ch in line:
            if ord(ch) < 0x80:
                out.append("\\" + ch if ch in "\\{}" else ch)
            else:
                out.append("".join(f"\\'{b:02x}" for b in ch.encode("gbk")))
        return "".join(out)
    paras = "".join("\\pard\\f0\\fs20 " + esc(line) + "\\par\r\n" for line in body.splitlines())
    rtf = ("{\\rtf1\\ansi\\ansicpg936\\deff0\\deflang1033\\deflangfe2052"
           "{\\fonttbl{\\f0\\fnil\\fcharset134 \\'cb\\'ce\\'cc\\'e5;}{\\f1\\fswiss\\fcharset0 Calibri;}}\r\n"
           "{\\colortbl ;\\red31\\green73\\blue125;}\r\n"
           "{\\*\\generator Microsoft Exchange Server;}\r\n"
           "\\viewkind4\\uc1 " + paras + "}\r\n")
    return compress(rtf.encode("ascii"), compressed=True)


REPORT_LINES = ("沟通结果：成功\n项目名称：华夏银行\n沟通人：王经理\n沟通方式：电话\n"
                "沟通的具体问题：调整防火墙策略开放8443端口")
