"""Builder for the sample raw mails in tests/data/mail/.

Every sample is built byte by byte (never through a str -> utf-8 round trip of
the whole message) so that the exact client bytes are under our control. Run

    python tests/mail/mail_samples.py

to (re)write ``tests/data/mail/*.eml`` and their ``*.expected.json`` sidecars.
``test_mail_samples.py`` checks that the files on disk are up to date.

All samples: From zhangsan@company.example, To tracking@company.example,
unique Message-IDs.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "mail"

FROM_ADDR = "zhangsan@company.example"
TO_ADDR = "tracking@company.example"
DATE = "Tue, 02 Jan 2024 10:00:00 +0800"

CRLF = b"\r\n"


def b_word(data: bytes, charset: str) -> bytes:
    return b"=?" + charset.encode() + b"?B?" + base64.b64encode(data) + b"?="


def q_word(data: bytes, charset: str) -> bytes:
    out = bytearray()
    for byte in data:
        ch = bytes([byte])
        if ch.isalnum() and byte < 128:
            out += ch
        elif ch == b" ":
            out += b"_"
        else:
            out += b"=%02X" % byte
    return b"=?" + charset.encode() + b"?Q?" + bytes(out) + b"?="


def qp_body(data: bytes) -> bytes:
    return crlf(binascii.b2a_qp(data.replace(b"\r\n", b"\n")))


def b64_body(data: bytes) -> bytes:
    enc = base64.b64encode(data)
    return CRLF.join(enc[i:i + 76] for i in range(0, len(enc), 76))


def crlf(text_bytes: bytes) -> bytes:
    return text_bytes.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def headers(name: str, subject: bytes, *, from_name: bytes | None = None,
            extra: list[bytes] | None = None) -> bytes:
    """Common header block (without the MIME headers)."""
    from_value = (from_name + b" " if from_name else b"") + b"<" + FROM_ADDR.encode() + b">"
    lines = [
        b"From: " + from_value,
        b"To: <" + TO_ADDR.encode() + b">",
        b"Subject: " + subject,
        b"Date: " + DATE.encode(),
        b"Message-ID: <sample-" + name.encode() + b"@company.example>",
        b"MIME-Version: 1.0",
    ]
    lines.extend(extra or [])
    return CRLF.join(lines) + CRLF


# --------------------------------------------------------------------------
# samples: name -> (raw bytes, expected dict)
# --------------------------------------------------------------------------

SAMPLES: dict[str, tuple[bytes, dict]] = {}


def sample(name: str, raw: bytes, subject: str, body_contains: list[str]) -> None:
    assert name not in SAMPLES
    SAMPLES[name] = (raw, {"subject": subject, "body_contains": body_contains})


def _build() -> None:
    # 1. GBK bytes under a gb2312 label (subject and 8bit body).
    subj = "回复：朱镕基喆堃—ＸＸ项目沟通"
    body = "您好：\n客户朱镕基、王喆、李堃反馈ＸＸ项目——已解决。\n谢谢！\n"
    sample(
        "gbk_under_gb2312",
        headers("gbk-under-gb2312", b_word(subj.encode("gbk"), "gb2312"),
                from_name=b_word("张三".encode("gbk"), "gb2312"))
        + b"Content-Type: text/plain; charset=gb2312" + CRLF
        + b"Content-Transfer-Encoding: 8bit" + CRLF + CRLF
        + crlf(body.encode("gbk")),
        subj, ["客户朱镕基、王喆、李堃反馈ＸＸ项目——已解决。", "谢谢！"],
    )

    # 2. RFC 2047 B words split inside a GBK character.
    subj = "客户沟通—镕喆项目进展汇报"
    raw_subj = subj.encode("gbk")
    cut = 5  # inside the third character (2 bytes each)
    assert raw_subj[:cut].decode("gbk", "replace") != subj[:3]
    sample(
        "ew_split_gb2312_b",
        headers("ew-split-gb2312-b",
                b_word(raw_subj[:cut], "gb2312") + CRLF + b" " + b_word(raw_subj[cut:], "gb2312"))
        + b"Content-Type: text/plain; charset=gb2312" + CRLF
        + b"Content-Transfer-Encoding: base64" + CRLF + CRLF
        + b64_body("项目进展：镕喆项目已完成第一阶段。\n".encode("gbk")) + CRLF,
        subj, ["项目进展：镕喆项目已完成第一阶段。"],
    )

    # 3. RFC 2047 Q words split inside a UTF-8 character.
    subj = "答复: 服务器故障处理结果"
    raw_subj = subj.encode("utf-8")
    cut = len("答复: 服".encode()) + 1  # inside "务"
    sample(
        "ew_split_utf8_q",
        headers("ew-split-utf8-q",
                q_word(raw_subj[:cut], "utf-8") + CRLF + b"\t" + q_word(raw_subj[cut:], "UTF-8"))
        + b"Content-Type: text/plain; charset=utf-8" + CRLF
        + b"Content-Transfer-Encoding: quoted-printable" + CRLF + CRLF
        + qp_body("故障已处理，服务恢复正常。\n".encode("utf-8")),
        subj, ["故障已处理，服务恢复正常。"],
    )

    # 4. Big5 (with HKSCS characters under a plain big5 label).
    subj = "回覆：粵港客戶問題嘅跟進"
    body = "你好，\n客戶問題已經處理咗，冇問題。\n"
    sample(
        "big5",
        headers("big5", b_word(subj.encode("big5hkscs"), "big5"),
                from_name=b_word("張三".encode("big5"), "big5"))
        + b"Content-Type: text/plain; charset=big5" + CRLF
        + b"Content-Transfer-Encoding: 8bit" + CRLF + CRLF
        + crlf(body.encode("big5hkscs")),
        subj, ["客戶問題已經處理咗，冇問題。"],
    )

    # 5. Raw 8-bit UTF-8 header (no RFC 2047).
    subj = "转发：数据库连接超时问题"
    sample(
        "raw_utf8_header",
        headers("raw-utf8-header", subj.encode("utf-8"), from_name="张三".encode("utf-8"))
        + b"Content-Type: text/plain; charset=utf-8" + CRLF
        + b"Content-Transfer-Encoding: 8bit" + CRLF + CRLF
        + crlf("数据库连接超时，请协助排查。\n".encode("utf-8")),
        subj, ["数据库连接超时，请协助排查。"],
    )

    # 6. Raw 8-bit GBK header (no RFC 2047), body labelled gb2312.
    subj = "Re: 镕喆网络设备巡检报告"
    sample(
        "raw_gbk_header",
        headers("raw-gbk-header", subj.encode("gbk"), from_name="张三".encode("gbk"))
        + b"Content-Type: text/plain; charset=gb2312" + CRLF
        + b"Content-Transfer-Encoding: 8bit" + CRLF + CRLF
        + crlf("巡检完成，设备运行正常。\n".encode("gbk")),
        subj, ["巡检完成，设备运行正常。"],
    )

    # 7. HTML-only Foxmail-like body (base64, gb2312 label, GBK characters).
    subj = "回复：客户沟通-镕喆项目"
    html = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=gb2312">'
        "<style>body { line-height: 1.5; } p { margin: 0; }</style></head>"
        '<body>\n<div><span></span>沟通已完成，客户表示满意。</div>'
        "<div><br></div><div>张三</div><div><br></div>"
        '<div style="font:Verdana normal 14px;color:#000;">'
        '<div style="FONT-SIZE: 12px;FONT-FAMILY: Arial Narrow;padding:2px 0 2px 0;">'
        "------------------&nbsp;原始邮件&nbsp;------------------</div>"
        '<div style="FONT-SIZE: 12px;background:#efefef;padding:8px;">'
        "<div><b>发件人:</b>&nbsp;\"李四\"&lt;lisi@customer.example&gt;;</div>"
        "<div><b>发送时间:</b>&nbsp;2024年1月2日(星期二) 上午9:00</div>"
        "</div><div><br></div>请尽快回复。</div></body></html>"
    )
    sample(
        "html_only_foxmail",
        headers("html-only-foxmail", b_word(subj.encode("gbk"), "gb2312"),
                extra=[b"X-Mailer: Foxmail 7.2.25.228[cn]"])
        + b'Content-Type: text/html; charset="gb2312"' + CRLF
        + b"Content-Transfer-Encoding: base64" + CRLF + CRLF
        + b64_body(html.encode("gbk")) + CRLF,
        subj, ["沟通已完成，客户表示满意。", "张三"],
    )

    # 8. HTML-only Outlook-like body: conditional comments, <o:p>, 2-col table, QP.
    subj = "答复: 客户沟通—镕喆项目－张三"
    html = (
        '<html xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-com:office:office" '
        'xmlns:w="urn:schemas-microsoft-com:office:word" xmlns="http://www.w3.org/TR/REC-html40">'
        '<head><meta http-equiv=Content-Type content="text/html; charset=gb2312">'
        '<meta name=Generator content="Microsoft Word 15 (filtered medium)">'
        "<!--[if !mso]><style>v\\:* {behavior:url(#default#VML);}</style><![endif]-->"
        "<style><!--\n/* Font Definitions */\n@font-face {font-family:等线;}\n"
        "p.MsoNormal, li.MsoNormal {margin:0cm; font-size:10.5pt;}\n--></style>"
        '<!--[if gte mso 9]><xml>\n<o:shapedefaults v:ext="edit" spidmax="1026" />\n</xml><![endif]-->'
        "</head>\n<body lang=ZH-CN link=\"#0563C1\" style='text-align:justify'>"
        "<div class=WordSection1>"
        "<p class=MsoNormal>您好：<span lang=EN-US><o:p></o:p></span></p>\n"
        "<p class=MsoNormal><span lang=EN-US><o:p>&nbsp;</o:p></span></p>\n"
        "<p class=MsoNormal>本次沟通记录如下：<span lang=EN-US><o:p></o:p></span></p>\n"
        "<table class=MsoTableGrid border=1 cellspacing=0 cellpadding=0 style='border-collapse:collapse'>"
        "<tr><td width=142 valign=top style='width:106.5pt'><p class=MsoNormal>沟通结果"
        "<span lang=EN-US><o:p></o:p></span></p></td>"
        "<td width=142 valign=top><p class=MsoNormal>成功<span lang=EN-US><o:p></o:p></span></p></td></tr>\n"
        "<tr><td width=142 valign=top><p class=MsoNormal>客户名称<o:p></o:p></p></td>"
        "<td width=142 valign=top><p class=MsoNormal>镕喆科技有限公司<o:p></o:p></p></td></tr>\n"
        "</table>"
        "<p class=MsoNormal><![if !supportLists]><span lang=EN-US>1.<span style='font:7.0pt'>&nbsp;&nbsp; "
        "</span></span><![endif]>后续跟进：下周二回访<o:p></o:p></p>"
        "<p class=MsoNormal><span lang=EN-US><o:p>&nbsp;</o:p></span></p>"
        "<div><div style='border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm'>"
        "<p class=MsoNormal><b>发件人<span lang=EN-US>:</span></b><span lang=EN-US> "
        "lisi@customer.example &lt;lisi@customer.example&gt; <br></span>"
        "<b>发送时间<span lang=EN-US>:</span></b><span lang=EN-US> 2024</span>年<span lang=EN-US>1</span>月"
        "<span lang=EN-US>2</span>日<span lang=EN-US> 9:00<br></span><b>收件人<span lang=EN-US>:</span></b>"
        "<span lang=EN-US> tracking@company.example<br></span><b>主题<span lang=EN-US>:</span></b> 客户沟通"
        "<span lang=EN-US><o:p></o:p></span></p></div></div>"
        "<p class=MsoNormal>请确认沟通结果。<o:p></o:p></p>"
        "</div></body></html>"
    )
    sample(
        "html_only_outlook",
        headers("html-only-outlook", b_word(subj.encode("gbk"), "gb2312"),
                extra=[b"X-Mailer: Microsoft Outlook 16.0", b"Thread-Index: AdoBcdEfGhIjKlMn"])
        + b'Content-Type: text/html; charset="gb2312"' + CRLF
        + b"Content-Transfer-Encoding: quoted-printable" + CRLF + CRLF
        + qp_body(html.encode("gbk")) + CRLF,
        subj, ["您好：", "本次沟通记录如下：", "沟通结果\t成功", "客户名称\t镕喆科技有限公司",
               "后续跟进：下周二回访"],
    )

    # 9. Quoted-printable UTF-8 text (soft line breaks inside multibyte chars).
    subj = "工单进展：存储扩容完成"
    text = ("存储扩容已于今日完成，新增容量 20TB，已通知客户验证。" * 3) + "\n测试结论：通过\n"
    qp = binascii.b2a_qp(text.encode("utf-8"))
    sample(
        "quoted_printable_utf8",
        headers("quoted-printable-utf8", b_word(subj.encode(), "utf-8"))
        + b"Content-Type: text/plain; charset=utf-8; format=fixed" + CRLF
        + b"Content-Transfer-Encoding: quoted-printable" + CRLF + CRLF
        + crlf(qp),
        subj, ["存储扩容已于今日完成，新增容量 20TB，已通知客户验证。" * 3, "测试结论：通过"],
    )

    # 10. Base64 multipart/alternative (plain + html) plus an attachment.
    subj = "Fwd: 月度巡检报告"
    plain = "附件为本月巡检报告，请查收。\n\n张三\n"
    html = "<div>附件为本月巡检报告，请查收。</div><div><br></div><div>张三</div>"
    fname = "巡检报告.txt"
    sample(
        "base64_multipart",
        headers("base64-multipart", q_word(subj.encode("utf-8"), "utf-8"))
        + b'Content-Type: multipart/mixed; boundary="----=_Part_1_2024"' + CRLF + CRLF
        + b"This is a multi-part message in MIME format." + CRLF
        + b"------=_Part_1_2024" + CRLF
        + b'Content-Type: multipart/alternative; boundary="----=_Part_2_2024"' + CRLF + CRLF
        + b"------=_Part_2_2024" + CRLF
        + b"Content-Type: text/plain; charset=utf-8" + CRLF
        + b"Content-Transfer-Encoding: base64" + CRLF + CRLF
        + b64_body(plain.encode()) + CRLF
        + b"------=_Part_2_2024" + CRLF
        + b"Content-Type: text/html; charset=utf-8" + CRLF
        + b"Content-Transfer-Encoding: base64" + CRLF + CRLF
        + b64_body(html.encode()) + CRLF
        + b"------=_Part_2_2024--" + CRLF
        + b"------=_Part_1_2024" + CRLF
        + b'Content-Type: text/plain; name="' + b_word(fname.encode("gbk"), "gb2312") + b'"' + CRLF
        + b'Content-Disposition: attachment; filename="' + b_word(fname.encode("gbk"), "gb2312") + b'"' + CRLF
        + b"Content-Transfer-Encoding: base64" + CRLF + CRLF
        + b64_body("设备A 正常\n设备B 正常\n".encode("gbk")) + CRLF
        + b"------=_Part_1_2024--" + CRLF,
        subj, ["附件为本月巡检报告，请查收。", "张三"],
    )

    # 11. Outlook plain-text reply with -----原始邮件----- history.
    subj = "RE: 回复: 客户沟通-镕喆项目"
    body = ("好的，已安排周三上门。\n\n张三\n\n-----原始邮件-----\n发件人: 李四 <lisi@customer.example>\n"
            "发送时间: 2024年1月2日 9:00\n收件人: tracking@company.example\n主题: 客户沟通-镕喆项目\n\n"
            "请安排上门时间。\n")
    sample(
        "reply_outlook_original",
        headers("reply-outlook-original", b_word(subj.encode("gbk"), "gb2312"),
                extra=[b"In-Reply-To: <orig-1@customer.example>",
                       b"References: <orig-0@customer.example> <orig-1@customer.example>"])
        + b"Content-Type: text/plain; charset=gb2312" + CRLF
        + b"Content-Transfer-Encoding: base64" + CRLF + CRLF
        + b64_body(crlf(body.encode("gbk"))) + CRLF,
        subj, ["好的，已安排周三上门。", "张三"],
    )

    # 12. Gmail Chinese reply with a wrapped "在 ... 写道：" attribution.
    subj = "Re: 服务器巡检"
    body = ("收到，谢谢。\n\n在 2024年1月2日周二 09:00，李四 <\nlisi@customer.example> 写道：\n\n"
            "> 请确认巡检结果。\n>\n")
    sample(
        "reply_gmail_zh",
        headers("reply-gmail-zh", b_word(subj.encode(), "UTF-8"))
        + b'Content-Type: text/plain; charset="UTF-8"' + CRLF
        + b"Content-Transfer-Encoding: base64" + CRLF + CRLF
        + b64_body(crlf(body.encode())) + CRLF,
        subj, ["收到，谢谢。"],
    )


def write_samples(directory: Path = DATA_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (raw, expected) in SAMPLES.items():
        eml = directory / f"{name}.eml"
        eml.write_bytes(raw)
        side = directory / f"{name}.expected.json"
        side.write_text(json.dumps(expected, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        written += [eml, side]
    return written


_build()

if __name__ == "__main__":
    for path in write_samples():
        print(path)
