"""Bodies that cannot be read (issue 11): Outlook TNEF, broken MIME, unknown
charsets. The parser reads what can be read and says why the rest cannot."""
from __future__ import annotations

from conventions.tnef import REPORT_HTML, REPORT_LINES, RTF_ONLY, SIG, outlook_rtf, outlook_tnef, tnef
from processor.mail.parse import parse_mail
from processor.mail.tnef import read_tnef


def test_tnef_html_body_is_read():
    got = read_tnef(tnef(html=REPORT_HTML))
    assert got.readable and "沟通结果：成功" in got.html
    assert read_tnef(tnef(text="沟通结果：成功")).text == "沟通结果：成功"


def test_an_outlook_tnef_mail_has_the_tnef_body_as_its_text():
    pm = parse_mail(outlook_tnef(tnef(html=REPORT_HTML)))
    assert pm.unreadable is None
    assert "沟通的具体问题：调整防火墙策略开放8443端口" in pm.body
    assert "手机" not in pm.body


def test_an_rtf_only_tnef_with_a_signature_text_part_is_unreadable():
    pm = parse_mail(outlook_tnef(tnef(rtf=RTF_ONLY)))
    assert pm.unreadable is not None and pm.unreadable.code == "unreadable_tnef"
    assert "RTF" in pm.unreadable.text()


def test_an_rtf_only_tnef_body_is_converted_to_text():
    got = read_tnef(tnef(rtf=outlook_rtf(REPORT_LINES)))
    assert got.readable and not got.rtf_only
    assert got.text.splitlines()[:2] == ["沟通结果：成功", "项目名称：华夏银行"]
    pm = parse_mail(outlook_tnef(tnef(rtf=outlook_rtf(REPORT_LINES))))
    assert pm.unreadable is None
    assert "沟通的具体问题：调整防火墙策略开放8443端口" in pm.body
    assert "手机" not in pm.body and "Calibri" not in pm.body and "rtf" not in pm.body


def test_a_damaged_tnef_blob_is_unreadable_and_never_raises():
    pm = parse_mail(outlook_tnef(b"\x78\x9f\x3e\x22garbage" * 3))
    assert pm.unreadable is not None and pm.unreadable.code == "unreadable_tnef"


def test_a_tnef_part_beside_a_real_text_body_keeps_the_text():
    pm = parse_mail(outlook_tnef(tnef(rtf=RTF_ONLY), text="沟通结果：成功\n项目名称：华夏银行\n\n" + SIG))
    assert pm.unreadable is None and "项目名称：华夏银行" in pm.body


def test_an_unknown_charset_that_decodes_to_garbage_is_unreadable():
    raw = (b"From: zhangsan@company.example\r\nTo: lisi@company.example\r\nSubject: test\r\n"
           b"Date: Mon, 30 Nov 2026 10:00:00 +0800\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: text/plain; charset=\"x-unknown-cjk\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
           + bytes(range(0x80, 0x100)) * 3 + b"\r\n")
    pm = parse_mail(raw)
    assert pm.unreadable is not None and pm.unreadable.code == "unreadable_charset"
    assert "x-unknown-cjk" in pm.unreadable.text()


def test_a_known_charset_is_readable_even_with_a_stray_byte():
    raw = (b"From: zhangsan@company.example\r\nSubject: test\r\nContent-Type: text/plain; charset=gbk\r\n\r\n"
           + "沟通结果：成功，项目名称：华夏银行，沟通的具体问题：更换电源模块".encode("gbk") + b"\xff\r\n")
    assert parse_mail(raw).unreadable is None


def test_broken_mime_whose_body_cannot_be_found_is_unreadable():
    raw = (b"From: zhangsan@company.example\r\nTo: lisi@company.example\r\nSubject: test\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative\r\n\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           + b"5rKf6YCa57uT5p6c77ya5oiQ5Yqf5rKf6YCa57uT5p6c77ya5oiQ5Yqf5rKf6YCa57uT5p6c77ya5oiQ5Yqf\r\n" * 4)
    pm = parse_mail(raw)
    assert pm.unreadable is not None and pm.unreadable.code == "unreadable_mime"


def test_a_mail_that_is_only_a_signature_is_unreadable():
    from conventions.clients import outlook, plain
    from conventions.helpers import LI, ZHANG
    html = ("<html><body><div class=WordSection1><p class=MsoNormal><o:p>&nbsp;</o:p></p>"
            "<p class=MsoNormal>张三</p><p class=MsoNormal>华信科技有限公司 技术支持部</p>"
            "<p class=MsoNormal>手机：138-0000-1234</p></div></body></html>")
    for raw in (outlook(text="\n" + SIG, html=html, sender=ZHANG, to=(LI,), subject="客户沟通-华夏银行-张三"),
                plain(text="\n-- \n" + SIG, sender=ZHANG, to=(LI,), subject="客户沟通-华夏银行-张三")):
        pm = parse_mail(raw)
        assert pm.unreadable is not None and pm.unreadable.code == "unreadable_signature_only"
    # Content above the signature, a courtesy line, or a file attached: not unreadable.
    for text in ("沟通结果：成功\n\n-- \n" + SIG, "谢谢！\n", "同意\n\n" + SIG, "张三已处理完毕\n"):
        assert parse_mail(plain(text=text, sender=ZHANG, to=(LI,), subject="客户沟通-华夏银行-张三")).unreadable is None
    from conventions.clients import attachment
    raw = outlook(text="\n" + SIG, html=html, sender=ZHANG, to=(LI,), subject="文档审核-华夏银行-测试预案",
                  attachments=[attachment("application/pdf", b"%PDF-1.4", "测试预案.pdf")])
    assert parse_mail(raw).unreadable is None
