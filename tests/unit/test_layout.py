"""The HTML part laid out from the text part (render.layout_vars and
templates/_layout.html.j2): what a reader's client shows."""
from __future__ import annotations

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
    v = layout_vars("主题", TEXT, {"ticket": {"number": "GD2026-0009"}})
    kinds = [b["kind"] for b in v["blocks"]]
    assert kinds == ["para", "para", "fields", "para", "action", "action", "sign"]
    assert v["blocks"][2]["rows"] == [("项目", "华夏银行"), ("操作过程", "1. 导入审计策略\n2. 重启服务"),
                                      ("附件", "- switch.log（120 KB）")]
    # A list item carrying a colon is not a field.
    assert v["blocks"][3]["lines"][1] == "- GJ2026-0003（负责人：张三）：等待运营商回复"
    assert (v["number"], v["replies"]) == ("GD2026-0009", True)
    assert layout_vars("主题", TEXT, {})["replies"] is False


def test_the_layout_uses_tables_and_inline_styles_only():
    r = Renderer(ROOT / "templates")
    for name in ("report_ack", "sla_escalation", "survey_request", "report_monthly"):
        html = r.render(name, CONTEXTS[name].sample).html
        assert "<table" in html and "class=" not in html and "<style" not in html
        assert "flex" not in html and "grid" not in html and "pre-wrap" not in html
    ack = r.render("report_ack", CONTEXTS["report_ack"].sample).html
    assert ">HB2026-0012</div>" in ack and "直接回复本邮件即可，回复会记入 HB2026-0012 的记录" in ack
    monthly = r.render("report_monthly", CONTEXTS["report_monthly"].sample).html
    assert "直接回复本邮件即可" not in monthly and "回复本邮件不会被处理" in monthly
