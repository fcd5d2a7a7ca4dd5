"""The body field extractor (``processor/rules/fields.py``): ``字段：值`` lines
as staff write them, in process. Labels and synonyms are those of the shipped
客户沟通 rule."""
from __future__ import annotations

from pathlib import Path

import pytest

from processor.mail.html import html_to_text
from processor.mail.parse import parse_mail
from processor.rules.fields import MAX_FIELD_CHARS, FieldExtractor, FieldSpec
from support import make_mail

SPECS = [
    FieldSpec("result", "沟通结果", ("结果", "溝通結果", "結果")),
    FieldSpec("project", "项目名称", ("项目", "项目名", "項目名稱", "項目")),
    FieldSpec("contact", "沟通人", ("客户沟通人", "客户联系人", "联系人", "沟通对象", "溝通人", "聯繫人")),
    FieldSpec("method", "沟通方式", ("方式", "支持方式", "溝通方式")),
    FieldSpec("issue", "沟通的具体问题", ("具体问题", "沟通具体问题", "沟通的问题", "沟通内容", "具體問題")),
    FieldSpec("remaining", "遗留的问题描述", ("遗留问题描述", "遗留问题", "遗留的问题")),
]
X = FieldExtractor(SPECS)

REPORT = ("李四：\n\n今天上午远程处理了华夏银行数据中心的问题，汇报如下：\n\n"
          "沟通结果：成功\n项目名称：华夏银行\n沟通人：王经理（信息科技部）\n沟通方式：远程（向日葵）+电话\n"
          "沟通的具体问题：解决vista下远程控制网络参数设置，办公网终端可正常远程接入\n")


def test_each_label_gives_its_value_and_prose_around_them_is_not_a_field():
    assert X.extract(REPORT) == {"result": "成功", "project": "华夏银行", "contact": "王经理（信息科技部）",
                                 "method": "远程（向日葵）+电话",
                                 "issue": "解决vista下远程控制网络参数设置，办公网终端可正常远程接入"}


@pytest.mark.parametrize("sep", ["：", ":", " ： ", " : ", "\uff1a  "])
def test_full_width_and_half_width_colons_with_any_spacing(sep):
    assert X.extract(f"沟通结果{sep}成功\n项目名称{sep}华夏银行") == {"result": "成功", "project": "华夏银行"}


def test_synonyms_and_traditional_characters_fill_the_same_field():
    got = X.extract("結果：成功\n項目名稱：華夏銀行\n联系人：王经理\n方式：电话\n具体问题：更换电源模块\n遗留问题：无")
    assert got == {"result": "成功", "project": "華夏銀行", "contact": "王经理", "method": "电话",
                   "issue": "更换电源模块", "remaining": "无"}


def test_the_longest_label_wins_over_a_shorter_synonym_it_contains():
    # 沟通的具体问题 must not be read as the label 沟通人 or 方式, nor 遗留的问题描述 as 遗留问题.
    got = X.extract("遗留的问题描述：客户要求下周复测\n沟通的具体问题：调整防火墙策略")
    assert got == {"remaining": "客户要求下周复测", "issue": "调整防火墙策略"}


@pytest.mark.parametrize("line", ["1. 沟通结果：成功", "1、沟通结果：成功", "1）沟通结果：成功",
                                  "【沟通结果】：成功", "一、沟通结果：成功", "  沟通 结果 ：成功", "[沟通结果]: 成功"])
def test_numbering_brackets_and_spaces_around_a_label_are_ignored(line):
    assert X.extract(line) == {"result": "成功"}


def test_a_line_that_only_mentions_a_label_is_not_a_field():
    # The label must be the whole text before the colon.
    assert X.extract("关于沟通结果：稍后补充\n本次项目名称暂定：华夏") == {}


def test_a_value_runs_over_following_lines_until_a_blank_line_or_the_next_label():
    body = ("沟通的具体问题：核心交换机2号电源模块告警，\n"
            "  指导客户更换备用电源模块后\n"
            "告警消除\n"
            "沟通方式：电话\n"
            "遗留的问题描述：\n"
            "\n"
            "客户要求下周复测，\n"
            "复测前需准备割接方案\n"
            "\n"
            "后续仍由张三负责。\n")
    assert X.extract(body) == {
        "issue": "核心交换机2号电源模块告警，\n指导客户更换备用电源模块后\n告警消除",
        "method": "电话",
        # A blank line right after an empty label does not end it: the value is below.
        "remaining": "客户要求下周复测，\n复测前需准备割接方案",
    }


@pytest.mark.parametrize("sig", [
    "\n--\n张三\n华信科技有限公司 技术支持部\n手机：138-0000-1234\n",
    "\n王五\n华信科技有限公司 技术支持部\n电话：010-8888 6602  手机：139-0000-5678\n",
])
def test_a_signature_after_a_blank_line_is_not_swallowed_into_the_last_value(sig):
    got = X.extract("沟通结果：成功\n沟通的具体问题：调度主站前置机通信中断，重新配置104规约通道参数后恢复\n" + sig)
    assert got["issue"] == "调度主站前置机通信中断，重新配置104规约通道参数后恢复"
    assert set(got) == {"result", "issue"}  # 手机 / 电话 are not fields


def test_the_first_occurrence_wins_and_a_repeat_further_down_is_ignored():
    # e.g. the earlier report quoted below a resubmission, without quote markers
    body = ("沟通结果：成功\n沟通的具体问题：重新配置通道参数\n\n"
            "王五\n\n发件人：王五\n沟通结果：失败\n沟通的具体问题：解决了技术问题\n遗留问题：待定\n")
    assert X.extract(body) == {"result": "成功", "issue": "重新配置通道参数", "remaining": "待定"}


def test_lines_quoted_with_a_marker_are_not_fields_nor_part_of_a_value():
    # The extractor reads the parsed body, whose trailing quoted history is gone.
    pm = parse_mail(make_mail(body="沟通结果：成功\n沟通方式：远程\n> 沟通方式：电话\n> 沟通的具体问题：解决了技术问题\n"))
    assert X.extract(pm.body) == {"result": "成功", "method": "远程"}
    # Quoted lines are not labels even when they reach the extractor.
    assert X.extract("沟通结果：成功\n\n> 沟通方式：电话\n> 沟通的具体问题：解决了技术问题\n") == {"result": "成功"}


def test_an_html_table_gives_one_field_per_row_and_a_cell_holds_the_whole_value():
    html = ("<html><body><p>李四：</p><table border=1>"
            "<tr><td>沟通结果</td><td>成功</td></tr>"
            "<tr><td>项目名称</td><td>华夏&nbsp;银行</td></tr>"
            "<tr><td><b>沟通的具体问题</b></td><td>更换备用电源模块<br>告警消除</td></tr>"
            "</table><p>张三<br>手机：138-0000-1234</p></body></html>")
    text = html_to_text(html)
    assert "沟通结果\t成功" in text  # what the extractor reads: TAB-separated cells
    got = X.extract(text)
    assert got["result"] == "成功"
    assert got["project"] == "华夏 银行"
    assert got["issue"].startswith("更换备用电源模块")
    assert "张三" not in got["issue"] and "手机" not in "".join(got.values())


def test_html_paragraphs_with_full_width_colons_through_the_mail_parser():
    html = ("<html><body><div>沟通结果：成功</div><div>项目名称：<span style='color:red'>东方电网</span></div>"
            "<p>沟通的具体问题：调度主站前置机与3号厂站通信中断，</p><p>重新配置后数据恢复上送</p>"
            "<p><br></p><p>王五<br>电话：010-8888 6602</p></body></html>")
    pm = parse_mail(make_mail(subject="客户沟通-东方电网-王五", body="", html=html))
    got = X.extract(pm.body)
    assert got["result"] == "成功" and got["project"] == "东方电网"
    assert got["issue"].startswith("调度主站前置机与3号厂站通信中断，")
    assert "王五" not in got["issue"]


def test_a_no_break_space_is_an_ordinary_space():
    assert X.extract("沟通方式：\u00a0远程\u00a0+\u00a0电话") == {"method": "远程 + 电话"}


def test_an_overlong_value_is_cut_visibly():
    got = X.extract("沟通的具体问题：" + "很长" * MAX_FIELD_CHARS)["issue"]
    assert len(got) <= MAX_FIELD_CHARS and got.endswith("…")


def test_the_shipped_report_rule_reads_its_own_labels():
    from processor.rules.engine import load_rules
    from processor.workflows import ACTIONS

    rules = load_rules(Path(__file__).resolve().parents[2] / "rules", set(ACTIONS))
    rule = rules.by_name["customer_report"]
    got = rule.extractor.extract("溝通結果：成功\n項目名稱：華夏銀行\n溝通的具體問題：更換電源模組\n跟进单编号：GJ2026-0001")
    assert got["result"] == "成功" and got["project"] == "華夏銀行" and got["issue"] == "更換電源模組"
    assert got["followup"] == "GJ2026-0001"


# --- layouts real people write (issue 11) ---------------------------------


@pytest.mark.parametrize("sep", ["；", ";", "； ", " ; "])
def test_all_fields_on_one_line_separated_by_semicolons(sep):
    line = sep.join(["沟通结果：成功", "项目名称：华夏银行", "沟通人：王经理", "沟通方式：电话",
                     "沟通的具体问题：调整防火墙策略;开放8443端口"])
    assert X.extract(line) == {"result": "成功", "project": "华夏银行", "contact": "王经理", "method": "电话",
                               # a semicolon not followed by a label stays in the value
                               "issue": "调整防火墙策略;开放8443端口"}


def test_outlook_numbered_list_in_plain_text_with_a_tab_after_the_number():
    # What Outlook writes into text/plain for a Word numbered list.
    body = ("李四：\n\n1.\t沟通结果：成功\n2.\t项目名称：华夏银行\n3.\t沟通人：王经理\n4.\t沟通方式：远程\n"
            "5.\t沟通的具体问题：重新配置核心交换机的VLAN\n\n张三\n")
    assert X.extract(body) == {"result": "成功", "project": "华夏银行", "contact": "王经理", "method": "远程",
                               "issue": "重新配置核心交换机的VLAN"}


@pytest.mark.parametrize("mark", ["·\t", "•\t", "o\t", "- ", "* ", "（1）", "(1) ", "①", "●  "])
def test_bulleted_list_marks(mark):
    assert X.extract(f"{mark}沟通结果：成功\n{mark}沟通方式：电话") == {"result": "成功", "method": "电话"}


def test_outlook_html_numbered_list_through_the_parser():
    # Word's HTML for a numbered list: the number sits in a conditional span.
    items = ["沟通结果：问题遗留", "项目名称：华夏银行", "沟通的具体问题：核心交换机板卡更换后端口仍闪断",
             "遗留的问题描述：需厂商返修"]
    html = "<html><body>" + "".join(
        f"<p class=MsoListParagraph style='margin-left:18.0pt;text-indent:-18.0pt;mso-list:l0 level1 lfo1'>"
        f"<![if !supportLists]><span lang=EN-US>{i}.<span style='font:7.0pt \"Times New Roman\"'>"
        f"&nbsp;&nbsp;&nbsp;&nbsp;&nbsp; </span></span><![endif]><span>{t}<o:p></o:p></span></p>"
        for i, t in enumerate(items, 1)) + "</body></html>"
    pm = parse_mail(make_mail(subject="客户沟通-华夏银行-张三", html=html))
    assert X.extract(pm.body) == {"result": "问题遗留", "project": "华夏银行",
                                  "issue": "核心交换机板卡更换后端口仍闪断", "remaining": "需厂商返修"}


# Excel's clipboard HTML, as pasted into Outlook/Foxmail: classes, heights, <col>.
def _excel_table(rows: str) -> str:
    return ("<html><body><p>李四：</p><table border=0 cellpadding=0 cellspacing=0 width=432 "
            "style='border-collapse:collapse;width:324pt'><col width=144 style='width:108pt'>"
            "<col width=288 style='width:216pt'>" + rows + "</table><p>张三</p></body></html>")


def _td(text: str, attrs: str = "") -> str:
    return f"<td class=xl65 {attrs} style='border:.5pt solid windowtext'>{text}</td>"


def test_excel_table_with_a_header_row_and_a_label_merged_over_two_rows():
    rows = ("<tr height=19>" + _td("项目") + _td("内容") + "</tr>"
            "<tr height=19>" + _td("沟通结果") + _td("成功") + "</tr>"
            "<tr height=19>" + _td("项目名称") + _td("华夏银行") + "</tr>"
            "<tr height=38>" + _td("沟通的具体问题", "rowspan=2") + _td("1号机房核心交换机端口闪断") + "</tr>"
            "<tr height=19>" + _td("更换光模块后恢复") + "</tr>"
            "<tr height=19>" + _td("沟通方式") + _td("现场") + "</tr>")
    pm = parse_mail(make_mail(subject="客户沟通-华夏银行-张三", html=_excel_table(rows)))
    got = X.extract(pm.body)
    # The header row is not a value, and the merged cell's second row is kept.
    assert got == {"result": "成功", "project": "华夏银行", "issue": "1号机房核心交换机端口闪断\n更换光模块后恢复",
                   "method": "现场"}


def test_excel_table_with_labels_across_the_top_and_a_value_merged_across_columns():
    rows = ("<tr>" + "".join(_td(x) for x in ("沟通结果", "项目名称", "沟通人", "沟通方式", "沟通的具体问题")) + "</tr>"
            "<tr>" + _td("成功") + _td("华夏银行") + _td("王经理、刘工", "colspan=2") + _td("升级网管到V3.2") + "</tr>")
    got = X.extract(html_to_text(_excel_table(rows)))
    # The merged cell belongs to its first column (沟通方式 is left empty, so it
    # is asked for); the columns after it stay in place.
    assert got == {"result": "成功", "project": "华夏银行", "contact": "王经理、刘工", "method": "",
                   "issue": "升级网管到V3.2"}


def test_excel_table_with_labels_across_the_top_and_two_value_rows_keeps_both():
    rows = ("<tr>" + _td("沟通人") + _td("沟通的具体问题") + "</tr>"
            "<tr>" + _td("王经理") + _td("更换电源") + "</tr><tr>" + _td("刘工") + _td("复测告警") + "</tr>")
    got = X.extract(html_to_text(_excel_table(rows)))
    assert got == {"contact": "王经理\n刘工", "issue": "更换电源\n复测告警"}


@pytest.mark.parametrize("label,field", [("溝通結果", "result"), ("沟通結果", "result"), ("溝通结果", "result"),
                                         ("項目名稱", "project"), ("项目名稱", "project"), ("聯繫人", "contact"),
                                         ("遺留的問題描述", "remaining"), ("遗留的問題描述", "remaining")])
def test_traditional_and_half_converted_labels_fold_with_opencc(label, field):
    # The extractor's own lists have no traditional spelling of these labels.
    ex = FieldExtractor([FieldSpec("result", "沟通结果"), FieldSpec("project", "项目名称"),
                         FieldSpec("contact", "沟通人", ("联系人",)), FieldSpec("remaining", "遗留的问题描述")])
    assert ex.extract(f"{label}：值") == {field: "值"}


def test_the_shipped_rules_list_no_traditional_spellings():
    from processor.mail.hanzi import to_simplified
    from processor.rules.engine import load_rules
    from processor.workflows import ACTIONS

    rules = load_rules(Path(__file__).resolve().parents[2] / "rules", set(ACTIONS))
    for rule in rules.rules:
        for f in rule.fields:
            assert [to_simplified(x) for x in f.labels] == list(f.labels), (rule.name, f.name)


def test_outlook_cid_placeholders_never_end_up_in_a_field():
    body = ("沟通结果：成功\n沟通的具体问题：告警截图如下[cid:image001.png@01DA1B2C.3D4E5F60]\n"
            "[cid:image002.jpg@01DA1B2C.3D4E5F60]\n处理后告警消除\n沟通方式：远程<cid:image003.png@01DA1B2C.3D4E5F60>\n")
    got = X.extract(body)
    assert got == {"result": "成功", "issue": "告警截图如下\n处理后告警消除", "method": "远程"}


def test_an_unknown_label_line_under_a_field_is_kept_apart():
    got = X.extract_all("沟通结果：成功\n沟通的具体问题：更换电源模块\n下次回访：12月10日前电话回访\n"
                        "并确认备件\n沟通方式：电话\n")
    assert got.values == {"result": "成功", "issue": "更换电源模块", "method": "电话"}
    assert got.extras == [("下次回访", "12月10日前电话回访\n并确认备件")]


def test_sub_labels_of_a_value_written_below_an_empty_label_are_the_value():
    got = X.extract_all("沟通的具体问题：\n现象：端口闪断\n处理：更换光模块\n")
    assert got.values == {"issue": "现象：端口闪断\n处理：更换光模块"} and got.extras == []
