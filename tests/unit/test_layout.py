"""The HTML part laid out from the text part (render.layout_vars and
templates/_layout.html.j2): what a reader's client shows."""
from __future__ import annotations

import re
from html import unescape

from processor.render import Renderer, layout_vars
from processor.template_contexts import CONTEXTS
from support import ROOT

TEXT = """张三，您好：

已开单，请审批：

  项目：华夏银行
  操作过程：1. 导入审计策略
    2. 重启服务
  附件：
    - switch.log（120 KB）

本次汇报没有指明以下遗留问题跟进单：
  - GJ2026-0003（负责人：张三）：等待运营商回复

请直接回复本邮件，第一行写：

满意度：N

—— 工单系统
"""


def test_fields_lists_and_the_action_are_told_apart():
    v = layout_vars("主题", TEXT, "GD2026-0009")
    kinds = [b["kind"] for b in v["blocks"]]
    assert kinds == ["para", "para", "fields", "para", "action", "action", "sign"]
    assert v["blocks"][2]["rows"] == [("项目", "华夏银行"), ("操作过程", "1. 导入审计策略\n2. 重启服务"),
                                      ("附件", "- switch.log（120 KB）")]
    # A list item carrying a colon is not a field.
    assert v["blocks"][3]["lines"][1] == "- GJ2026-0003（负责人：张三）：等待运营商回复"
    assert (v["number"], v["replies"]) == ("GD2026-0009", True)
    assert layout_vars("主题", TEXT)["replies"] is False


def test_the_layout_uses_tables_and_inline_styles_only():
    r = Renderer(ROOT / "templates")
    for name in ("report_ack", "sla_escalation", "survey_request", "report_monthly"):
        html = r.render(name, CONTEXTS[name].sample).html
        assert "<table" in html and "class=" not in html and "<style" not in html
        assert "flex" not in html and "grid" not in html and "pre-wrap" not in html
    ack = r.render("report_ack", CONTEXTS["report_ack"].sample).html
    assert ">HB2026-0012</th>" in ack and "直接回复本邮件即可，回复会记入 HB2026-0012 的记录" in ack
    monthly = r.render("report_monthly", CONTEXTS["report_monthly"].sample).html
    assert "直接回复本邮件即可" not in monthly and "回复本邮件不会被处理" in monthly


KINDS = {"report": "汇报", "workorder": "故障处理工作单", "complaint": "投诉"}


def _rows(html: str) -> dict[str, str]:
    """The two-cell rows of the HTML's fields tables: label -> value (lines joined by \\n)."""
    found = re.findall(r"<tr>\s*<td[^>]*>([^<]*)</td>\s*<td[^>]*>(.*?)</td>\s*</tr>", html, re.S)
    return {unescape(k): unescape(v.replace("<br>", "\n")) for k, v in found}


def _action(html: str) -> str:
    """The text of the 「需要您做的」 boxes."""
    boxes = [part.split("</table>", 1)[0] for part in html.split(">需要您做的</th>")[1:]]
    return unescape(re.sub(r"<[^>]+>", " ", " ".join(boxes)))


def test_each_kind_of_mail_shows_its_number_fields_and_action_the_way_outlook_renders():
    r = Renderer(ROOT / "templates", KINDS)
    cases = {
        "report_ack": ("HB2026-0012", "汇报", {"沟通人": "王经理（信息科）", "沟通方式": "电话", "沟通结果": "问题遗留",
                                              "沟通的具体问题": "排查核心交换机端口告警"}, "已解决"),
        "workorder_approve": ("GD2026-0009", "故障处理工作单", {"环境": "CentOS 7.9，安全审计系统 V5.2.1", "现象": "重启后策略丢失",
                                                          "操作过程": "1. 导入审计策略\n2. 重启服务"}, "驳回：原因和建议"),
        "complaint_notice": ("TS2026-0002", "投诉", {}, "请尽快补发汇报邮件"),
    }
    for name, (number, kind, fields, action) in cases.items():
        out = r.render(name, CONTEXTS[name].sample)
        html = out.html
        # The record number in a heading cell of the header band, with the record's kind above it.
        assert re.search(r"<th [^>]*>" + number + "</th>", html), name
        assert f"工单系统 · {kind}</td>" in html
        # Word-engine rules: tables with widths, inline styles, no classes, no <style>, no divs.
        assert "<style" not in html and "class=" not in html and "<div" not in html
        assert "flex" not in html and "grid" not in html
        assert all("width=" in t for t in re.findall(r"<table[^>]*>", html))
        assert "bgcolor=" in html and "mso-fareast-font-family: 'Microsoft YaHei'" in html
        # Every 「  标签：值」 line of the text part is a row of a fields table ...
        rows = _rows(html)
        for label, value in re.findall(r"^  ([^：\s\-（][^：]{0,19})：(.+)$", out.text, re.M):
            if "——" in value:
                continue  # a keyword to reply with and what it does: the action, not a field
            assert rows.get(label, "").split("\n")[0] == value.strip(), (name, label)
        for label, value in fields.items():
            assert rows[label] == value
            # ... and the text part, complete on its own, has every field.
            assert f"{label}：{value.splitlines()[0]}" in out.text
        # The action to take is in its own box.
        assert action in _action(html), name


def test_the_layouts_own_tags_share_the_lines_of_what_they_frame():
    """A mail server reads a mail line by line: the layout's tags are joined
    to the lines of the words they frame (a field row is two lines, not
    four), and no line comes near the 998-octet limit that would send the
    part in base64."""
    r = Renderer(ROOT / "templates")
    rows = [f"  字段{i}：{'内容' * 20}" for i in range(7)]
    html = r.layout("回执：汇报邮件已记录 HB2026-0002（华夏银行）", "张三，您好：\n\n" + "\n".join(rows) + "\n\n—— 工单系统\n",
                    "HB2026-0002", "汇报", system={"name": "工单系统"})
    lines = html.split("\n")
    assert len(_rows(html)) == 7
    assert len(lines) <= 2 * 7 + 14, lines  # (the tags a line each: 56)
    assert max(len(ln.encode()) for ln in lines) < 900
    assert html.startswith("<!DOCTYPE html><html lang=\"zh-CN\"><head>") and html.rstrip().endswith("</body></html>")
