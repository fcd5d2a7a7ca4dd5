"""Issue 11, "mail the processor misreads today": report mails laid out the
way people really write them, built as their clients build them, through a
real Dovecot mailbox and a real SMTP server."""
from __future__ import annotations

import pytest

from conventions.clients import outlook
from conventions.helpers import LI, SYSTEM, ZHANG, ZHAO, Flow, report_body, shape


@pytest.fixture
def flow(tmp_path, imap_server, smtp_server, capsys):
    return Flow(tmp_path, imap_server, smtp_server, capsys)


def _row(row: dict) -> tuple:
    return tuple(row[k] for k in ("项目", "沟通结果", "沟通人", "沟通方式", "沟通的具体问题"))


def test_outlook_numbered_list_with_an_image_and_an_unknown_label(flow):
    items = ["沟通结果：成功", "项目名称：华夏银行", "沟通人：王经理", "沟通方式：远程",
             "沟通的具体问题：核心交换机端口闪断，更换光模块后恢复[cid:image001.png@01DA1B2C.3D4E5F60]",
             "下次回访：12月10日前电话回访"]
    text = "李四：\n\n" + "".join(f"{i}.\t{t}\n" for i, t in enumerate(items, 1)) + "\n张三\n"
    html = "<html><body><p>李四：</p>" + "".join(
        f"<p class=MsoListParagraph style='mso-list:l0 level1 lfo1'><![if !supportLists]><span>{i}.<span "
        f"style='font:7.0pt \"Times New Roman\"'>&nbsp;&nbsp;&nbsp; </span></span><![endif]>{t}</p>"
        for i, t in enumerate(items, 1)) + "<p>张三</p></body></html>"
    sent = flow.deliver(outlook(text=text, html=html, sender=ZHANG, to=(LI,), subject="客户沟通-华夏银行-张三"))
    assert shape(sent) == [((ZHANG,), ())]
    ack = sent[0]
    assert ack.subject.startswith("回执：汇报邮件已记录 HB2026-0001（华夏银行）")
    assert "沟通的具体问题：核心交换机端口闪断，更换光模块后恢复\n" in ack.text
    assert "cid:" not in ack.text
    assert "以下几行不是汇报的栏目，没有记入任何字段" in ack.text and "下次回访：12月10日前电话回访" in ack.text
    [row] = flow.tracking()
    assert _row(row) == ("华夏银行", "成功", "王经理", "远程", "核心交换机端口闪断，更换光模块后恢复")


def test_all_fields_on_one_line_in_traditional_characters(flow):
    body = "溝通結果：成功；項目名稱：華夏銀行；溝通人：王經理；溝通方式：電話；溝通的具體問題：更換電源模組後告警消除\n\n張三\n"
    sent = flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="客戶溝通-華夏銀行-張三", body=body, charset="big5")
    assert shape(sent) == [((ZHANG,), ())]
    assert "回执：汇报邮件已记录" in sent[0].subject
    assert "以下几行不是汇报的栏目" not in sent[0].text
    [row] = flow.tracking()
    assert _row(row) == ("华夏银行", "成功", "王經理", "電話", "更換電源模組後告警消除")


def test_excel_table_with_a_merged_label_cell_keeps_both_rows(flow):
    def td(x, attrs=""):
        return f"<td class=xl65 {attrs} style='border:.5pt solid windowtext'>{x}</td>"
    rows = [td("项目") + td("内容"), td("沟通结果") + td("问题遗留"), td("项目名称") + td("华夏银行"),
            td("沟通人") + td("王经理"), td("沟通方式") + td("现场"),
            td("沟通的具体问题", "rowspan=2") + td("1号机房核心交换机端口闪断"), td("更换光模块后仍偶发"),
            td("遗留的问题描述") + td("需厂商返修板卡")]
    html = ("<html><body><p>李四：</p><table border=0 cellpadding=0 cellspacing=0 style='border-collapse:collapse'>"
            "<col width=144><col width=288>" + "".join(f"<tr height=19>{r}</tr>" for r in rows) +
            "</table><p>张三</p></body></html>")
    from processor.mail.html import html_to_text
    sent = flow.deliver(outlook(text=html_to_text(html), html=html, sender=ZHANG, to=(LI,),
                                subject="客户沟通-华夏银行-张三"))
    assert shape(sent) == [((ZHANG,), ())]
    assert "沟通的具体问题：1号机房核心交换机端口闪断\n更换光模块后仍偶发" in sent[0].text
    [row] = flow.tracking()
    assert _row(row) == ("华夏银行", "问题遗留", "王经理", "现场", "1号机房核心交换机端口闪断\n更换光模块后仍偶发")
    assert row["遗留的问题描述"] == "需厂商返修板卡"


def test_excel_rows_with_one_filled_cell_stay_in_their_column(flow):
    # Labels across the top; the problem wraps onto a row where only its column is filled.
    def td(x):
        return f"<td class=xl65 style='border:.5pt solid windowtext'>{x}</td>"
    rows = [["沟通结果", "项目名称", "沟通人", "沟通方式", "沟通的具体问题", "遗留的问题描述"],
            ["问题遗留", "华夏银行", "王经理", "现场", "1号机房核心交换机端口闪断", "需厂商返修板卡"],
            ["", "", "", "", "更换光模块后仍偶发", ""],
            ["", "", "", "", "", "预计两周到货"]]
    html = ("<html><body><p>李四：</p><table border=0 cellpadding=0 cellspacing=0>"
            + "".join("<tr height=19>" + "".join(td(c) for c in r) + "</tr>" for r in rows)
            + "</table><p>张三</p></body></html>")
    from processor.mail.html import html_to_text
    sent = flow.deliver(outlook(text=html_to_text(html), html=html, sender=ZHANG, to=(LI,),
                                subject="客户沟通-华夏银行-张三"))
    assert shape(sent) == [((ZHANG,), ())]
    [row] = flow.tracking()
    assert _row(row) == ("华夏银行", "问题遗留", "王经理", "现场", "1号机房核心交换机端口闪断\n更换光模块后仍偶发")
    assert row["遗留的问题描述"] == "需厂商返修板卡\n预计两周到货"


def test_two_column_table_row_with_an_empty_label_cell_continues_the_field(flow):
    def tr(a, b):
        return f"<tr><td class=xl65>{a}</td><td class=xl65>{b}</td></tr>"
    html = ("<html><body><table>" + tr("沟通结果", "成功") + tr("项目名称", "华夏银行") + tr("沟通人", "王经理")
            + tr("沟通方式", "电话") + tr("沟通的具体问题", "调整防火墙策略") + tr("", "开放8443端口")
            + "</table><p>张三</p></body></html>")
    from processor.mail.html import html_to_text
    sent = flow.deliver(outlook(text=html_to_text(html), html=html, sender=ZHANG, to=(LI,),
                                subject="客户沟通-华夏银行-张三"))
    assert shape(sent) == [((ZHANG,), ())]
    [row] = flow.tracking()
    assert row["沟通的具体问题"] == "调整防火墙策略\n开放8443端口"


# --- dates ------------------------------------------------------------------


def test_a_report_from_a_client_with_a_reset_clock_is_dated_by_its_arrival(flow):
    from datetime import datetime, timezone
    from processor.mail.parse import CHINA_TZ
    sent = flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行-张三", body=report_body(),
                     date=datetime(2000, 1, 1, 8, 0, tzinfo=CHINA_TZ))
    assert shape(sent) == [((ZHANG,), ())]
    month = datetime.now(CHINA_TZ).strftime("%Y-%m")
    [row] = flow.tracking("--month", month)
    assert row["日期"].startswith(datetime.now(CHINA_TZ).strftime("%Y-%m-%d"))
    [(defects,)] = flow.db("select defects from messages")
    assert any("2000-01-01 08:00" in d and "已按到达时间记录" in d for d in defects)


def test_a_minus_zero_date_is_utc(flow):
    from datetime import datetime, timedelta, timezone
    from email.utils import format_datetime
    from processor.mail.parse import CHINA_TZ
    written = (datetime.now(timezone.utc) - timedelta(hours=1)).replace(second=0, microsecond=0)
    header = format_datetime(written.replace(tzinfo=None))  # "... -0000", as some servers write it
    assert header.endswith("-0000")
    raw = flow.mail(sender=ZHANG, sender_name="张三", to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行-张三",
                    body=report_body())
    head, body = raw.split(b"\r\n\r\n", 1)
    head = b"\r\n".join(ln for ln in head.split(b"\r\n") if not ln.startswith(b"Date:")) + b"\r\nDate: " + header.encode()
    assert shape(flow.deliver(head + b"\r\n\r\n" + body)) == [((ZHANG,), ())]
    [row] = flow.tracking()
    assert row["日期"].startswith(written.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M"))


def test_a_date_with_no_zone_from_a_client_abroad_takes_the_arrival_offset(flow):
    # A client in UTC-5 writes its wall clock with no zone; read as China time it would be 13 hours off.
    from datetime import datetime, timedelta, timezone
    from processor.mail.parse import CHINA_TZ
    written = (datetime.now(timezone.utc) - timedelta(minutes=3)).replace(second=0, microsecond=0)
    header = written.astimezone(timezone(timedelta(hours=-5))).strftime("%a, %d %b %Y %H:%M:%S")
    raw = flow.mail(sender=ZHANG, sender_name="张三", to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行-张三",
                    body=report_body())
    head, body = raw.split(b"\r\n\r\n", 1)
    head = b"\r\n".join(ln for ln in head.split(b"\r\n") if not ln.startswith(b"Date:")) + b"\r\nDate: " + header.encode()
    assert shape(flow.deliver(head + b"\r\n\r\n" + body)) == [((ZHANG,), ())]
    [row] = flow.tracking()
    assert row["日期"].startswith(written.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M"))
    [(defects,)] = flow.db("select defects from messages")
    assert any("没有写时区" in d and "UTC-05:00" in d for d in defects)


# --- forward as attachment ----------------------------------------------------


def _forward_as_attachment(original: bytes, *, sender, to, cc=(), body="请登记，谢谢。\n\n张三\n"):
    """Outlook's 「以附件形式转发」: the original as a message/rfc822 part."""
    from email import message_from_bytes
    from email.mime.message import MIMEMessage
    from conventions.clients import outlook
    part = MIMEMessage(message_from_bytes(original))
    part.add_header("Content-Disposition", "attachment", filename="客户沟通-华夏银行-张三.eml")
    return outlook(text=body, html="<html><body><p>" + body.replace("\n", "<br>") + "</p></body></html>",
                   sender=sender, to=to, cc=cc, subject="FW: 客户沟通-华夏银行-张三", attachments=[part])


def test_report_forwarded_as_an_attachment_is_read_from_the_attached_mail(flow):
    # The report went to the 责任销售 only; 张三 forwards it to the system as an attachment.
    original = flow.mail(sender=ZHANG, sender_name="张三", to=(LI,), cc=(), subject="客户沟通-华夏银行-张三",
                         body=report_body(issue="更换核心交换机电源模块"), message_id="<orig-1@client.example>")
    sent = flow.deliver(_forward_as_attachment(original, sender=ZHANG, to=(SYSTEM,)))
    # Only the receipt: 李四 already had the report, it is not forwarded to him again.
    assert shape(sent) == [((ZHANG,), ())]
    assert "回执：汇报邮件已记录 HB2026-0001（华夏银行）" in sent[0].subject
    assert "系统已把汇报转发给" not in sent[0].text
    [row] = flow.tracking()
    assert _row(row) == ("华夏银行", "成功", "王经理（信息科）", "电话", "更换核心交换机电源模块")
    [(params,)] = flow.db("select outcome_params from messages")
    assert {"code": "fields_from_attached_message", "params": {"subject": "客户沟通-华夏银行-张三"}} in params["_why"]


def test_a_report_forwarded_as_an_attachment_is_dated_by_the_original(flow):
    from datetime import datetime, timedelta
    from processor.mail.parse import CHINA_TZ
    written = (datetime.now(CHINA_TZ) - timedelta(days=2)).replace(second=0, microsecond=0)
    original = flow.mail(sender=ZHANG, sender_name="张三", to=(LI,), cc=(), subject="客户沟通-华夏银行-张三",
                         body=report_body(), date=written)
    assert shape(flow.deliver(_forward_as_attachment(original, sender=ZHANG, to=(SYSTEM,)))) == [((ZHANG,), ())]
    [row] = flow.tracking("--month", written.strftime("%Y-%m"))
    assert row["日期"].startswith(written.strftime("%Y-%m-%d %H:%M"))


def test_an_attached_report_with_a_reset_clock_is_dated_by_the_forward(flow):
    from datetime import datetime
    from processor.mail.parse import CHINA_TZ
    original = flow.mail(sender=ZHANG, sender_name="张三", to=(LI,), cc=(), subject="客户沟通-华夏银行-张三",
                         body=report_body(), date=datetime(2000, 1, 1, 8, 0, tzinfo=CHINA_TZ))
    assert shape(flow.deliver(_forward_as_attachment(original, sender=ZHANG, to=(SYSTEM,)))) == [((ZHANG,), ())]
    today = datetime.now(CHINA_TZ)
    [row] = flow.tracking("--month", today.strftime("%Y-%m"))
    assert row["日期"].startswith(today.strftime("%Y-%m-%d"))


def test_forwarded_as_an_attachment_to_someone_else_still_reaches_the_sales(flow):
    # The attached report never went to 李四: he gets it forwarded, as usual.
    original = flow.mail(sender=ZHANG, sender_name="张三", to=(ZHAO,), cc=(), subject="客户沟通-华夏银行-张三",
                         body=report_body())
    sent = flow.deliver(_forward_as_attachment(original, sender=ZHANG, to=(SYSTEM,)))
    assert shape(sent) == [((LI,), ()), ((ZHANG,), ())]
