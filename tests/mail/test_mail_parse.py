import base64
import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sys
import pytest

from processor.mail.parse import Attachment, ParsedMail, parse_mail

sys.path.insert(0, str(Path(__file__).resolve().parent))  # robust under --import-mode=importlib
import mail_samples  # noqa: E402

DATA = mail_samples.DATA_DIR
SAMPLE_NAMES = sorted(p.name[:-4] for p in DATA.glob("*.eml"))


def load(name: str) -> ParsedMail:
    return parse_mail((DATA / f"{name}.eml").read_bytes())


def check_common(m: ParsedMail, name: str) -> None:
    assert m.from_addr == "zhangsan@company.example"
    assert m.to == [("", "tracking@company.example")]
    assert m.message_id == f"<sample-{name.replace('_', '-')}@company.example>"
    assert m.date == datetime(2024, 1, 2, 10, 0, tzinfo=timezone(timedelta(hours=8)))
    assert m.defects == []


# ---------------------------------------------------------------------------
# the sample files
# ---------------------------------------------------------------------------


def test_samples_on_disk_are_up_to_date():
    assert set(SAMPLE_NAMES) == set(mail_samples.SAMPLES)
    for name, (raw, expected) in mail_samples.SAMPLES.items():
        assert (DATA / f"{name}.eml").read_bytes() == raw, name
        side = json.loads((DATA / f"{name}.expected.json").read_text(encoding="utf-8"))
        assert side == expected, name


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_sample_matches_sidecar(name):
    expected = json.loads((DATA / f"{name}.expected.json").read_text(encoding="utf-8"))
    m = load(name)
    assert m.subject == expected["subject"]
    for needle in expected["body_contains"]:
        assert needle in m.body
    check_common(m, name)


def test_gbk_under_gb2312():
    m = load("gbk_under_gb2312")
    assert m.subject == "回复：朱镕基喆堃—ＸＸ项目沟通"
    assert m.subject_norm == "朱镕基喆堃-XX项目沟通"
    assert m.from_name == "张三"
    assert m.text == "您好：\n客户朱镕基、王喆、李堃反馈ＸＸ项目——已解决。\n谢谢！\n"
    assert "\ufffd" not in m.text


def test_encoded_word_split_gb2312_b():
    m = load("ew_split_gb2312_b")
    assert m.subject == "客户沟通—镕喆项目进展汇报"
    assert m.text == "项目进展：镕喆项目已完成第一阶段。\n"


def test_encoded_word_split_utf8_q():
    m = load("ew_split_utf8_q")
    assert m.subject == "答复: 服务器故障处理结果"
    assert m.subject_norm == "服务器故障处理结果"
    assert m.text == "故障已处理，服务恢复正常。\n"


def test_big5():
    m = load("big5")
    assert m.subject == "回覆：粵港客戶問題嘅跟進"
    assert m.subject_norm == "粵港客戶問題嘅跟進"
    assert m.from_name == "張三"
    assert m.text == "你好，\n客戶問題已經處理咗，冇問題。\n"


def test_raw_8bit_utf8_header():
    m = load("raw_utf8_header")
    assert m.subject == "转发：数据库连接超时问题"
    assert m.from_name == "张三"
    assert m.header("subject") == "转发：数据库连接超时问题"
    assert m.body == "数据库连接超时，请协助排查。"


def test_raw_8bit_gbk_header():
    m = load("raw_gbk_header")
    assert m.subject == "Re: 镕喆网络设备巡检报告"
    assert m.subject_norm == "镕喆网络设备巡检报告"
    assert m.from_name == "张三"
    assert m.body == "巡检完成，设备运行正常。"


def test_html_only_foxmail():
    m = load("html_only_foxmail")
    assert m.subject == "回复：客户沟通-镕喆项目"
    assert m.html is not None and "<div>" in m.html
    assert "原始邮件" in m.text
    assert m.body == "沟通已完成，客户表示满意。\n\n张三"


def test_html_only_outlook():
    m = load("html_only_outlook")
    assert m.subject == "答复: 客户沟通—镕喆项目－张三"
    assert m.subject_norm == "客户沟通-镕喆项目-张三"
    lines = m.body.split("\n")
    assert "沟通结果\t成功" in lines
    assert "客户名称\t镕喆科技有限公司" in lines
    assert "发件人" not in m.body and "请确认沟通结果" not in m.body
    assert "发送时间: 2024年1月2日 9:00" in m.text
    for junk in ("MsoNormal", "<o:p>", "shapedefaults", "font-family"):
        assert junk not in m.text


def test_quoted_printable():
    m = load("quoted_printable_utf8")
    assert m.subject == "工单进展：存储扩容完成"
    assert m.text == ("存储扩容已于今日完成，新增容量 20TB，已通知客户验证。" * 3) + "\n测试结论：通过\n"


def test_base64_multipart_with_attachment():
    m = load("base64_multipart")
    assert m.subject == "Fwd: 月度巡检报告"
    assert m.subject_norm == "月度巡检报告"
    assert m.content_type == "multipart/mixed"
    assert m.text == "附件为本月巡检报告，请查收。\n\n张三\n"
    assert m.html == "<div>附件为本月巡检报告，请查收。</div><div><br></div><div>张三</div>"
    assert m.attachments == [
        Attachment("巡检报告.txt", "text/plain", "设备A 正常\n设备B 正常\n".encode("gbk"))
    ]


def test_reply_outlook_original():
    m = load("reply_outlook_original")
    assert m.subject_norm == "客户沟通-镕喆项目"
    assert m.body == "好的，已安排周三上门。\n\n张三"
    assert m.in_reply_to == "<orig-1@customer.example>"
    assert m.references == ["<orig-0@customer.example>", "<orig-1@customer.example>"]


def test_reply_gmail_zh_wrapped_attribution():
    m = load("reply_gmail_zh")
    assert m.body == "收到，谢谢。"


# ---------------------------------------------------------------------------
# mail-parser canary
# ---------------------------------------------------------------------------


def test_mailparser_loses_gbk_under_gb2312_but_we_do_not():
    mailparser = pytest.importorskip("mailparser")
    raw = (DATA / "gbk_under_gb2312.eml").read_bytes()
    truth = "您好：\n客户朱镕基、王喆、李堃反馈ＸＸ项目——已解决。\n谢谢！"
    theirs = mailparser.parse_from_bytes(raw).body
    ours = parse_mail(raw).text
    assert ours.strip() == truth
    # If this fails, mail-parser learned to decode GBK labelled gb2312 properly.
    assert theirs.strip().replace("\r\n", "\n") != truth


# ---------------------------------------------------------------------------
# headers, addresses, dates, ids
# ---------------------------------------------------------------------------

BASIC = (
    b"From: =?utf-8?B?5byg5LiJ?= <ZhangSan@Company.Example>\r\n"
    b'To: "Li, Si" <LiSi@x.example>, wang@x.example,\r\n =?gb2312?B?1cXI/Q==?= <z@x.example>\r\n'
    b"Cc: (comment) c1@x.example, =?utf-8?Q?=E8=B5=B5=E5=85=AD?= <c2@x.example>\r\n"
    b"Reply-To: <reply@x.example>\r\n"
    b"Subject: =?utf-8?B?5Zue5aSN77ya?= [#K3F9-12] test\r\n"
    b"Date: Tue, 2 Jan 2024 10:00:00\r\n"
    b"Message-ID: abc@host\r\n"
    b"In-Reply-To: <parent@host> (comment)\r\n"
    b"References: <a@host>\r\n\t<b@host> <a@host>\r\n"
    b"X-Custom: one\r\nx-custom: two\r\n"
    b"\r\nhello\r\n"
)


def test_headers_addresses_ids():
    m = parse_mail(BASIC)
    assert m.from_addr == "zhangsan@company.example"
    assert m.from_name == "张三"
    assert m.to == [("Li, Si", "lisi@x.example"), ("", "wang@x.example"), ("张三", "z@x.example")]
    assert m.cc == [("comment", "c1@x.example"), ("赵六", "c2@x.example")]
    assert m.reply_to == [("", "reply@x.example")]
    assert m.recipients == ["lisi@x.example", "wang@x.example", "z@x.example", "c1@x.example",
                            "c2@x.example"]
    assert m.subject == "回复： [#K3F9-12] test"
    assert m.subject_norm == "[#K3F9-12] test"
    assert m.message_id == "<abc@host>"
    assert m.in_reply_to == "<parent@host>"
    assert m.references == ["<a@host>", "<b@host>"]
    assert m.header("X-CUSTOM") == "one"
    assert m.header_all("x-custom") == ["one", "two"]
    assert m.header("nope") is None
    assert m.headers[0] == ("from", "张三 <ZhangSan@Company.Example>")
    # naive date -> Asia/Shanghai
    assert m.date == datetime(2024, 1, 2, 10, 0, tzinfo=timezone(timedelta(hours=8)))
    assert m.date.utcoffset() == timedelta(hours=8)
    assert m.body == "hello"
    assert m.defects == []


def test_date_with_zone_and_lenient_formats():
    m = parse_mail(b"Date: Tue, 2 Jan 2024 10:00:00 +0000 (UTC)\r\n\r\nx")
    assert m.date == datetime(2024, 1, 2, 10, tzinfo=timezone.utc)
    m = parse_mail(b"Date: 2024-01-02 10:00:00\r\n\r\nx")
    assert m.date == datetime(2024, 1, 2, 10, tzinfo=timezone(timedelta(hours=8)))
    m = parse_mail("Date: 2024年1月2日 10:00\r\n\r\nx".encode("utf-8"))
    assert m.date == datetime(2024, 1, 2, 10, tzinfo=timezone(timedelta(hours=8)))
    m = parse_mail(b"Date: someday\r\n\r\nx")
    assert m.date is None
    assert any("unparseable Date" in d for d in m.defects)


def test_missing_headers_reported():
    m = parse_mail(b"Subject: only a subject\r\n\r\nbody text\r\n")
    assert m.subject == "only a subject"
    assert m.from_addr == "" and m.from_name == ""
    assert m.message_id is None and m.date is None
    joined = " | ".join(m.defects)
    for needle in ("missing From", "missing Message-ID", "missing Date"):
        assert needle in joined
    assert m.body == "body text"


def test_empty_body_reported():
    m = parse_mail(b"From: a@b.example\r\nMessage-ID: <x@y>\r\nDate: Tue, 2 Jan 2024 10:00:00 +0800\r\n\r\n")
    assert m.text == "" and m.body == ""
    assert m.defects == ["empty body"]


def test_text_plain_preferred_over_html_and_empty_plain_falls_back():
    def alt(plain: bytes) -> bytes:
        return (b"Content-Type: multipart/alternative; boundary=b\r\n\r\n"
                b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + plain + b"\r\n"
                b"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>html \xe6\x96\x87</p>\r\n--b--\r\n")
    m = parse_mail(alt(b"plain \xe6\x96\x87"))
    assert m.text == "plain 文" and m.html == "<p>html 文</p>"
    m = parse_mail(alt(b"  "))
    assert m.text == "html 文"


def test_html_meta_charset_used_when_no_param():
    html = '<meta charset="gbk"><p>镕喆</p>'.encode("gbk")
    m = parse_mail(b"Content-Type: text/html\r\n\r\n" + html)
    assert m.text == "镕喆"


def test_attachment_filename_rfc2231_and_raw_8bit():
    raw = (
        b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n"
        b"--zz\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nbody\r\n"
        b"--zz\r\nContent-Type: application/pdf\r\n"
        b"Content-Disposition: attachment; filename*=gb2312''%E9%46%86%B4.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(b"%PDF-1") + b"\r\n"
        b"--zz\r\nContent-Type: image/png\r\n"
        b'Content-Disposition: inline; filename="' + "截图.png".encode("gbk") + b'"\r\n\r\nPNG\r\n'
        b"--zz--\r\n"
    )
    m = parse_mail(raw)
    assert m.text == "body"
    assert [(a.filename, a.content_type, a.data) for a in m.attachments] == [
        ("镕喆.pdf", "application/pdf", b"%PDF-1"),
        ("截图.png", "image/png", b"PNG"),
    ]


def test_forwarded_message_attachment_and_inner_fallback():
    inner = (b"From: x@y.example\r\nSubject: =?utf-8?B?5Y6f5aeL?=\r\n"
             b"Content-Type: text/plain; charset=utf-8\r\n\r\ninner \xe6\x96\x87\r\n")
    raw = (b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n"
           b"--zz\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"--zz--\r\n")
    m = parse_mail(raw)
    assert m.text == "inner 文"
    assert len(m.attachments) == 1
    att = m.attachments[0]
    assert att.content_type == "message/rfc822" and att.filename == "原始.eml"
    assert b"inner" in att.data


def test_multipart_report_bounce():
    raw = (
        b"From: MAILER-DAEMON@company.example\r\nContent-Type: multipart/report; report-type=delivery-status;"
        b" boundary=rr\r\n\r\n--rr\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
        b"--rr\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        b"Final-Recipient: rfc822; nobody@x.example\r\nStatus: 5.1.1\r\n"
        b"--rr\r\nContent-Type: text/rfc822-headers\r\n\r\nSubject: hi\r\n--rr--\r\n"
    )
    m = parse_mail(raw)
    assert m.content_type == "multipart/report"
    assert m.text.strip() == "Delivery failed."
    types = [a.content_type for a in m.attachments]
    assert types == ["message/delivery-status", "text/rfc822-headers"]
    assert b"5.1.1" in m.attachments[0].data


def test_format_flowed_is_unflowed():
    raw = (b"Content-Type: text/plain; charset=utf-8; format=flowed\r\n\r\n"
           b"a long line that was \r\nwrapped by the client\r\n-- \r\nsig\r\n")
    assert parse_mail(raw).text == "a long line that was wrapped by the client\n-- \nsig\n"


# ---------------------------------------------------------------------------
# bad mail: never raises
# ---------------------------------------------------------------------------


def test_garbage_bytes():
    m = parse_mail(bytes(range(256)) * 4)
    assert isinstance(m, ParsedMail)
    assert m.defects


@pytest.mark.parametrize("raw", [b"", b"\r\n", b"\x00", None, "str input 中文", bytearray(b"Subject: x\r\n\r\ny")])
def test_degenerate_inputs(raw):
    m = parse_mail(raw)
    assert isinstance(m, ParsedMail)
    assert isinstance(m.text, str) and isinstance(m.defects, list)


def test_missing_boundary_truncated_multipart_is_recovered():
    raw = (b"From: zhangsan@company.example\r\nMessage-ID: <t@x>\r\nDate: Tue, 2 Jan 2024 10:00:00 +0800\r\n"
           b"Content-Type: multipart/mixed\r\n\r\n"
           b"--abc\r\nContent-Type: text/plain; charset=gb2312\r\n\r\n" + "恢复的正文".encode("gbk") + b"\r\n"
           b"--abc\r\nContent-Type: text/html\r\n\r\n<p>trunc")
    m = parse_mail(raw)
    assert m.text.strip() == "恢复的正文"
    assert any("NoBoundaryInMultipart" in d for d in m.defects)
    assert any("recovered" in d for d in m.defects)


def test_truncated_multipart_without_close_boundary():
    raw = (b"Content-Type: multipart/alternative; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>tr")
    m = parse_mail(raw)
    assert m.text.strip() == "hello"
    assert any("CloseBoundaryNotFound" in d for d in m.defects)


def test_multipart_without_any_boundary_line():
    m = parse_mail(b"Content-Type: multipart/mixed\r\n\r\njust some text\r\n")
    assert m.text.strip() == "just some text"
    assert any("no usable boundary" in d for d in m.defects)


def test_nul_ridden_body():
    raw = (b"From: a@b.example\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
           + "正\x00文\x00\x00内容".encode("utf-8") + b"\x00" * 50)
    m = parse_mail(raw)
    assert m.text == "正文内容"
    assert any("NUL" in d for d in m.defects)


def test_undecodable_body_reported():
    m = parse_mail(b"Content-Type: text/plain; charset=utf-8\r\n\r\n\xff\xfe\xfa\x80\x80\xff")
    assert "\ufffd" in m.text
    assert any("replacement" in d for d in m.defects)


def test_bad_base64_and_qp_do_not_raise():
    m = parse_mail(b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n5Lit5p!!\r\n")
    assert isinstance(m.text, str)
    m = parse_mail(b"Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=ZZ=\r\n")
    assert isinstance(m.text, str)


def test_deep_nesting_does_not_raise():
    depth = 200
    parts = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(depth))
    m = parse_mail(parts + b"Content-Type: text/plain\r\n\r\ndeep\r\n")
    assert isinstance(m, ParsedMail)


def test_random_bytes_never_raise():
    rng = random.Random(20240102)
    samples = [(DATA / f"{n}.eml").read_bytes() for n in SAMPLE_NAMES]
    alphabet = b"=?BQ:\r\n\t <>@-;\"'" + bytes(range(0x80, 0x100, 7))
    for i in range(600):
        kind = i % 3
        if kind == 0:
            raw = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 400)))
        elif kind == 1:
            raw = bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 400)))
            raw = b"Subject: " + raw[:100] + b"\r\nFrom: " + raw[100:200] + b"\r\n\r\n" + raw[200:]
        else:  # mutate a real sample
            base = bytearray(rng.choice(samples))
            for _ in range(rng.randrange(1, 20)):
                op = rng.randrange(3)
                pos = rng.randrange(len(base))
                if op == 0:
                    base[pos] = rng.randrange(256)
                elif op == 1:
                    del base[pos:pos + rng.randrange(1, 50)]
                else:
                    base[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 10)))
            raw = bytes(base)
        m = parse_mail(raw)
        assert isinstance(m, ParsedMail)
        assert isinstance(m.subject, str) and isinstance(m.body, str)
        assert_db_safe(m)


def assert_db_safe(m: ParsedMail) -> None:
    """Every string is valid UTF-8 (no lone surrogates) and NUL-free."""
    strings = [m.subject, m.subject_norm, m.from_addr, m.from_name, m.text, m.body, m.html or "",
               m.content_type, m.message_id or "", m.in_reply_to or "", *m.references, *m.defects]
    strings += [n + a for n, a in m.to + m.cc + m.reply_to]
    strings += [k + v for k, v in m.headers]
    strings += [a.filename + a.content_type for a in m.attachments]
    for s in strings:
        s.encode("utf-8")  # raises on lone surrogates
        assert "\x00" not in s, s


def test_outputs_are_db_safe_with_raw_8bit_and_nul_headers():
    raw = (b"From: \xff\xfe\x00 <a\x00b@x.example>\r\nSubject: =?utf-8?Q?a=00b?= \xff\r\n"
           b"Content-Type: text/plain; name=\"\xff\x00.txt\"\r\n \x80\r\n\r\n\x00\xff")
    assert_db_safe(parse_mail(raw))
