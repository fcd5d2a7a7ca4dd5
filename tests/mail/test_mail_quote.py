import pytest

from processor.mail.quote import strip_quoted

REPLY = "好的，已安排周三上门。\n\n张三\n技术支持部"


@pytest.mark.parametrize(
    "history",
    [
        # Outlook separators
        "-----原始邮件-----\n发件人: 李四\n发送时间: 2024年1月2日 9:00\n\n请安排。",
        "-----Original Message-----\nFrom: Li Si\nSent: Tuesday, January 2, 2024 9:00 AM\n\nPlease.",
        # Outlook header blocks (no separator line)
        "发件人: 李四 <lisi@customer.example>\n发送时间: 2024年1月2日 9:00\n收件人: tracking@company.example\n主题: 客户沟通\n\n请安排。",
        "发件人：李四 <lisi@customer.example>\n日期：2024年1月2日 9:00\n收件人：t@company.example\n\n请安排。",
        "From: Li Si <lisi@customer.example>\nSent: Tuesday, January 2, 2024 9:00 AM\nTo: tracking@company.example\nSubject: x\n\nPlease.",
        "From: Li Si <lisi@customer.example>\nDate: Tue, 2 Jan 2024 09:00\nTo: t@company.example\n\nPlease.",
        # Outlook web separator + header block
        "________________________________\n发件人: 李四 <lisi@customer.example>\n发送时间: 2024年1月2日 9:00\n\n请安排。",
        "________________________________\nFrom: Li Si\nSent: Tuesday\nTo: x\n\nPlease.",
        # Foxmail / QQ
        "------------------ Original ------------------\nFrom:  \"李四\"<lisi@customer.example>;\nDate:  Tue, Jan 2, 2024 09:00 AM\n\n请安排。",
        "------------------&nbsp;原始邮件&nbsp;------------------\n发件人: \"李四\"<lisi@customer.example>;\n\n请安排。",
        "------------------ 原始邮件 ------------------\n发件人: \"李四\"\n\n请安排。",
        # Gmail zh (one line and wrapped over two lines)
        "在 2024年1月2日周二 10:00，李四 <lisi@customer.example> 写道：\n\n> 请安排。\n>",
        "在 2024年1月2日周二 10:00，李四 <\nlisi@customer.example> 写道：\n\n> 请安排。",
        "在 2024年1月2日周二 上午10:00，李四 <lisi@customer.example>\n写道：\n> 请安排。",
        # Gmail en
        "On Tue, Jan 2, 2024 at 10:00 AM Li Si <lisi@customer.example> wrote:\n\n> Please.",
        "On Tue, Jan 2, 2024 at 10:00 AM Li Si <\nlisi@customer.example> wrote:\n> Please.",
        # plain '>' quote block
        "> 请安排上门时间。\n> 谢谢\n>\n> 李四",
    ],
)
def test_strip_quoted_markers(history):
    assert strip_quoted(REPLY + "\n\n" + history + "\n") == REPLY


def test_keeps_inline_quotes_followed_by_reply_text():
    text = "> 问题一\n回答一\n> 问题二\n回答二"
    assert strip_quoted(text) == text


def test_trailing_blank_lines_trimmed():
    assert strip_quoted("正文\n\n   \n") == "正文"


def test_nothing_left_returns_original():
    text = "-----原始邮件-----\n发件人: 李四\n请安排。"
    assert strip_quoted(text) == text
    quoted = "> only a quote\n> nothing else"
    assert strip_quoted(quoted) == quoted


def test_from_line_without_header_block_is_kept():
    text = "From: 我们在客户现场发现的问题如下\n1. 光模块老化\n2. 需要更换\n3. 已完成\n4. 无\n5. 无\n6. 无\n7. 无"
    assert strip_quoted(text) == text


def test_ordinary_zai_line_is_kept():
    text = "在现场排查了2小时，客户写道：没问题\n后续再跟进"
    assert strip_quoted(text) == text


def test_empty():
    assert strip_quoted("") == ""
