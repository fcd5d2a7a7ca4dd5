from processor.mail.html import html_to_text

OUTLOOK = """<html xmlns:o="urn:schemas-microsoft-com:office:office"><head>
<meta http-equiv=Content-Type content="text/html; charset=gb2312">
<style><!--
p.MsoNormal {margin:0cm; font-size:10.5pt;}
--></style><!--[if gte mso 9]><xml>
<o:shapedefaults v:ext="edit" spidmax="1026" />
</xml><![endif]--></head>
<body lang=ZH-CN><div class=WordSection1>
<p class=MsoNormal>您好：<span lang=EN-US><o:p></o:p></span></p>
<p class=MsoNormal><span lang=EN-US><o:p>&nbsp;</o:p></span></p>
<table class=MsoTableGrid border=1 cellspacing=0 cellpadding=0>
<tr><td width=142 valign=top><p class=MsoNormal>沟通结果<o:p></o:p></p></td>
<td width=142 valign=top><p class=MsoNormal><span>成功</span><o:p></o:p></p></td></tr>
<tr><td><p class=MsoNormal>客户&nbsp;名称<o:p></o:p></p></td><td><p class=MsoNormal>镕喆&amp;科技<o:p></o:p></p></td></tr>
</table>
<p class=MsoNormal><![if !supportLists]>1.&nbsp;<![endif]>后续跟进<o:p></o:p></p>
<p class=MsoNormal>谢谢<br>张三<o:p></o:p></p>
</div></body></html>"""


def test_outlook_html_table_rows_are_tab_joined():
    text = html_to_text(OUTLOOK)
    lines = text.split("\n")
    assert "沟通结果\t成功" in lines
    assert "客户 名称\t镕喆&科技" in lines
    assert lines[0] == "您好："
    assert "1. 后续跟进" in lines
    assert text.endswith("谢谢\n张三")
    for junk in ("MsoNormal", "shapedefaults", "font-size", "<", "&nbsp;", "endif"):
        assert junk not in text


def test_foxmail_html():
    html = (
        '<meta http-equiv="Content-Type" content="text/html; charset=GB18030">'
        "<div>沟通已完成。</div><div><br></div><div>张三</div>"
        '<div style="font-size:12px">------------------&nbsp;原始邮件&nbsp;------------------</div>'
        "<div><b>发件人:</b>&nbsp;\"李四\"&lt;lisi@customer.example&gt;;</div>"
    )
    assert html_to_text(html) == (
        "沟通已完成。\n\n张三\n------------------ 原始邮件 ------------------\n"
        '发件人: "李四"<lisi@customer.example>;'
    )


def test_script_style_comments_head_dropped():
    html = ("<html><head><title>T</title><script>var a = '<p>x</p>';</script></head>"
            "<body><!-- hidden --><style>.a{}</style><p>可见</p><script>alert(1)</script></body></html>")
    assert html_to_text(html) == "可见"


def test_blocks_and_breaks():
    assert html_to_text("<p>a</p><p>b</p>") == "a\nb"
    assert html_to_text("a<br>b<br/>c") == "a\nb\nc"
    assert html_to_text("<div>a</div><div><br></div><div>b</div>") == "a\n\nb"
    assert html_to_text("a<br><br><br><br><br>b") == "a\n\nb"


def test_entities_and_whitespace():
    assert html_to_text("x&nbsp;&nbsp;y &lt;z&gt; &#20013;&#x6587; &amp;") == "x y <z> 中文 &"
    assert html_to_text("  多个   空格\n换行  ") == "多个 空格 换行"


def test_nested_and_unclosed_tables():
    assert html_to_text("<table><tr><td>k<td>v<tr><td>k2<td>v2</table>") == "k\tv\nk2\tv2"
    nested = ("<table><tr><td><table><tr><td>k</td><td>v</td></tr>"
              "<tr><td>k2</td><td>v2</td></tr></table></td></tr></table>")
    assert html_to_text(nested) == "k\tv\nk2\tv2"
    # a layout table with a single cell keeps its inner line structure
    assert html_to_text("<table><tr><td><p>第一行</p><p>第二行</p></td></tr></table>") == "第一行\n第二行"


def test_garbage_never_raises():
    for html in ["", "<", "<<<>>>", "<p", "<!--", "<style>unclosed", "<table><td>x",
                 "</td></tr></table>", "<![if x]>", "\x00<p>\x00a", "<a href='>'>x</a>"]:
        assert isinstance(html_to_text(html), str)


def _excel(rows: list[list[str]]) -> str:
    """A range pasted from Excel: every cell a <td class=xl..>, empty cells
    as they are (Excel writes no colspan for an empty neighbour)."""
    def td(x):
        return f"<td class=xl65 style='border:.5pt solid windowtext'>{x}</td>"
    return ("<table border=0 cellpadding=0 cellspacing=0 style='border-collapse:collapse'>"
            + "".join("<tr height=19>" + "".join(td(c) for c in r) + "</tr>" for r in rows) + "</table>")


def test_excel_row_with_one_filled_cell_keeps_its_column():
    text = html_to_text(_excel([["沟通结果", "项目名称", "沟通的具体问题"],
                                ["成功", "华夏银行", "端口闪断"],
                                ["", "", "更换光模块后仍偶发"],
                                ["补充", "", ""]]))
    assert text.split("\n") == ["沟通结果\t项目名称\t沟通的具体问题", "成功\t华夏银行\t端口闪断",
                                "\t\t更换光模块后仍偶发", "补充\t"]


def test_a_layout_table_with_one_cell_per_row_stays_plain_text():
    text = html_to_text("<table><tr><td></td><td>张三</td></tr><tr><td>技术支持部</td></tr></table>")
    assert text.split("\n") == ["张三", "技术支持部"]
