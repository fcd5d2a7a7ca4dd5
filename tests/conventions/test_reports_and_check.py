"""The report commands (tracking, reports, complaints, tickets) and `check`
for the convention rules, with mails sent through real servers."""
from __future__ import annotations

import shutil
from datetime import datetime, timezone

import pytest

from conventions.helpers import LI, QIAN, SUN, SYSTEM, WANG, ZHANG, ZHOU, Flow, report_body
from support import ROOT, run, write_config


@pytest.fixture
def flow(tmp_path, imap_server, smtp_server, capsys, db_url):
    f = Flow(tmp_path, imap_server, smtp_server, capsys, db_url=db_url)
    oct_, nov = datetime(2026, 10, 15, 2, tzinfo=timezone.utc), datetime(2026, 11, 3, 2, tzinfo=timezone.utc)
    f.deliver(
        f.mail(sender=ZHANG, sender_name="张三", to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行-张三", date=oct_,
               body=report_body(issue="升级核心交换机固件")),
        f.mail(sender=WANG, sender_name="王五", to=(ZHOU,), cc=(SYSTEM,), subject="客户沟通-东方电网-王五", date=nov,
               body=report_body(project="东方电网", result="问题遗留", issue="排查调度网VPN断线",
                                remaining="等待运营商回复")),
        f.mail(sender=WANG, sender_name="王五", to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行-王五", date=nov,
               body=report_body(issue="已处理")),
        f.mail(sender=LI, sender_name="李四", to=(QIAN,), cc=(SUN,), subject="投诉-华夏银行沟通问题", date=nov, body="没有汇报"),
    )
    return f


def test_tracking_report_per_presales_and_month(flow):
    rows = flow.tracking()
    assert [(r["第一售前"], r["项目"], r["汇报人"], r["日期"][:10]) for r in rows] == [
        ("张三", "华夏银行", "张三", "2026-10-15"), ("王五", "东方电网", "王五", "2026-11-03")]
    assert [r["项目"] for r in flow.tracking("--presales", "张三")] == ["华夏银行"]
    assert [r["项目"] for r in flow.tracking("--presales", "王五", "--month", "2026-11")] == ["东方电网"]
    assert flow.tracking("--presales", "王五", "--month", "2026-10") == []
    assert flow.tracking("--month", "2026-12") == []


def test_tracking_table_is_aligned_for_chinese_and_csv_is_plain(flow):
    text = flow.report_text("tracking", "--presales", "王五", "--wide")
    lines = text.rstrip("\n").split("\n")
    assert lines[0].startswith("第一售前  日期")
    from wcwidth import wcswidth
    # Every column starts at the same display column in the header and in the row.
    header, row = lines[0], lines[2]
    col = wcswidth(header[: header.index("项目  ")])
    assert wcswidth(row[: row.index("东方电网")]) == col
    csv_text = flow.report_text("tracking", "--format", "csv")
    assert csv_text.splitlines()[0] == "第一售前,日期,项目,汇报人,沟通人,沟通方式,沟通结果,沟通的具体问题,遗留的问题描述,记录号,邮件"
    assert "王五,2026-11-03 10:00,东方电网,王五,王经理（信息科）,电话,问题遗留,排查调度网VPN断线,等待运营商回复,HB2026-0002," in csv_text


def _columns(text: str) -> list[list[str]]:
    """The cells of a terminal table, each column's wrapped lines joined
    again: the column spans are those of the dashes under the header."""
    from wcwidth import wcwidth

    lines = text.rstrip("\n").split("\n")
    rule = next(i for i, line in enumerate(lines) if set(line) <= {"-", " "} and line)
    spans, col = [], 0
    for part in lines[rule].split("  "):
        spans.append((col, col + len(part)))
        col += len(part) + 2

    def cut(line: str) -> list[str]:
        out, pos = [""] * len(spans), 0
        for ch in line:
            for k, (a, b) in enumerate(spans):
                if a <= pos < b:
                    out[k] += ch
            pos += max(wcwidth(ch), 0)
        return [c.strip() for c in out]

    rows: list[list[str]] = []
    for line in lines[rule + 1:]:
        cells = cut(line)
        if cells[0] or not rows:  # a new row starts with its first cell; other lines continue it
            rows.append(cells)
        else:
            rows[-1] = [a + (" " if a and b and a[-1].isascii() and b[0].isascii() and a[-1].isdigit() else "") + b
                        for a, b in zip(rows[-1], cells)]
    return rows


def test_tables_fit_the_terminal_wide_shows_all_and_empty_says_so(flow, monkeypatch):
    from wcwidth import wcswidth

    monkeypatch.setenv("COLUMNS", "100")
    rows = flow.tracking()
    assert all(r["邮件"].startswith("<") for r in rows)
    text = flow.report_text("tracking")
    assert max(wcswidth(line) for line in text.rstrip("\n").split("\n")) <= 100
    # Long cells wrap inside their column; nothing is lost but the Message-ID column (an internal identifier).
    assert "<" not in text
    shown = _columns(text)
    assert [c[:9] for c in shown] == [[r[k] for k in list(r)[:9]] for r in rows]
    # --wide: one line per row, every column, however wide.
    wide = flow.report_text("tracking", "--wide").rstrip("\n").split("\n")
    assert len(wide) == 2 + len(rows) and all(r["邮件"] in wide[2 + i] for i, r in enumerate(rows))
    assert max(wcswidth(line) for line in wide) > 100
    # An empty result says so, rather than printing a lone header.
    assert flow.report_text("tracking", "--month", "2026-12").strip() == "无记录"
    assert flow.report_text("tickets", "--presales", "无此人").strip() == "无记录"


def test_reports_report_counts_rejections(flow):
    assert flow.report("reports") == [
        {"汇报人": "张三", "已记录": "1", "退回": "0", "未立项": "0", "未计入": "0", "待确认项目": "0", "合计": "1"},
        {"汇报人": "王五", "已记录": "1", "退回": "1", "未立项": "0", "未计入": "0", "待确认项目": "0", "合计": "2"}]
    assert flow.report("reports", "--month", "2026-10") == [
        {"汇报人": "张三", "已记录": "1", "退回": "0", "未立项": "0", "未计入": "0", "待确认项目": "0", "合计": "1"}]


def test_tickets_report_and_open_filter(flow):
    rows = flow.report("tickets")
    assert [(r["编号"], r["类型"], r["项目"], r["负责人"], r["状态"]) for r in rows] == [
        ("HB2026-0001", "汇报", "华夏银行", "张三", "已记录"),
        ("HB2026-0002", "汇报", "东方电网", "王五", "已记录"),
        ("GJ2026-0001", "遗留问题跟进单", "东方电网", "王五", "处理中"),
        ("HB2026-0003", "汇报", "华夏银行", "张三", "退回"),
        ("TS2026-0001", "投诉", "华夏银行", "张三", "已计入")]
    open_ = flow.report("tickets", "--open")
    assert [(r["编号"], r["逾期"]) for r in open_] == [("GJ2026-0001", "")]
    assert open_[0]["到期时间"] > open_[0]["开单时间"]


def test_complaints_report_table(flow):
    lines = flow.report_text("complaints").rstrip("\n").split("\n")
    assert lines[0].split() == ["售前", "有效投诉", "已撤回", "未计入", "投诉记录", "已触发的处罚"]
    assert lines[2].split() == ["张三", "1", "0", "0", "TS2026-0001"]


def test_messages_and_outbox_reports_show_chinese_statuses_and_local_time(flow):
    from sqlalchemy import update

    from processor.config import load_config
    from processor.pipeline import Runtime
    from processor.store.models import Message, Outbox
    flow.imap.append(flow.mail(sender=ZHANG, sender_name="张三", subject="周末聚餐安排", body="随便聊聊"))
    flow.capsys.readouterr()
    assert run(flow.cfg, "once", "-v") == 0
    out = flow.capsys.readouterr().out
    assert "[未匹配规则] " + ZHANG in out and "ignored" not in out
    # 17:30 UTC is 01:30 the next day in the system time zone (Asia/Shanghai).
    late = datetime(2026, 11, 3, 17, 30, tzinfo=timezone.utc)
    with Runtime(load_config(flow.cfg)).store.session() as s:
        s.execute(update(Message).values(received_at=late))
        s.execute(update(Outbox).values(created_at=late))
        s.commit()
    msgs = flow.report("messages")
    assert {m["收到时间"] for m in msgs} == {"2026-11-04 01:30"}
    assert [m["状态"] for m in msgs] == ["已处理"] * 4 + ["未匹配规则"]
    # The outcome is data on the row, rendered in Chinese from templates/messages.toml.
    why = "（主题符合“客户沟通汇报邮件（第十二、十五、十六条）”的格式）"
    assert [m["说明"] for m in msgs[:2]] == [
        "HB2026-0001：已记入张三的项目跟踪表" + why,
        "HB2026-0002：已记入王五的项目跟踪表；已建立遗留问题跟进单 GJ2026-0001" + why]
    assert msgs[2]["说明"].startswith("HB2026-0003：已退回，1 个问题，已回复说明：“沟通的具体问题”写得太笼统（“已处理”）")
    assert msgs[3]["说明"].startswith("TS2026-0001：对张三的投诉已计入") and msgs[4]["说明"] == "主题没有匹配任何规则，只做记录"
    assert "原因：主题没有匹配任何规则，只做记录" in out  # once -v: the outcome in the same words
    with Runtime(load_config(flow.cfg)).store.session() as s:
        row = s.get(Message, 1)
        assert (row.outcome_code, row.outcome_params["number"], row.outcome_params["owner"]) == (
            "report_accepted", "HB2026-0001", "张三")
        assert row.reason == msgs[0]["说明"]
    sent = flow.report("outbox")
    assert sent and {o["生成时间"] for o in sent} == {"2026-11-04 01:30"}
    assert {o["状态"] for o in sent} == {"已发送"}


def test_check_accepts_the_shipped_rules_and_templates(tmp_path, capsys):
    cfg = write_config(tmp_path)
    assert run(cfg, "check") == 0
    assert "配置检查通过" in capsys.readouterr().out


def test_check_reports_a_missing_wording_and_a_bad_placeholder_in_messages_toml(tmp_path, capsys):
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    path = templates / "messages.toml"
    text = path.read_text(encoding="utf-8")
    text = text.replace('missing_field = "缺少“{label}”', 'missing_field = "缺少“{field}”')
    text = "\n".join(line for line in text.split("\n") if not line.startswith("report_accepted = "))
    path.write_text(text, encoding="utf-8")
    cfg = write_config(tmp_path, templates_dir=templates)
    assert run(cfg, "check") == 1
    err = capsys.readouterr().err
    assert f"{path}: problem.missing_field: 占位符 {{field}} 不存在；这条文字可用的参数：label" in err
    assert f"{path}: outcome.report_accepted: 缺少这条处理结果的中文文字" in err


def test_check_reports_rule_and_settings_errors_with_file_and_key(tmp_path, capsys):
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    c = (rules / "complaint.toml").read_text(encoding="utf-8")
    (rules / "complaint.toml").write_text(c.replace("every = 2", "every = 0").replace('window = "never"', 'window = "weekly"'),
                                          encoding="utf-8")
    r = (rules / "customer_report.toml").read_text(encoding="utf-8")
    (rules / "customer_report.toml").write_text(
        r.replace('required = ["result", "project", "contact"', 'required = ["result", "project", "contect"'),
        encoding="utf-8")
    cfg = write_config(tmp_path, rules_dir=rules)
    assert run(cfg, "check") == 1
    err = capsys.readouterr().err
    assert f"{rules / 'complaint.toml'}: settings.penalties[0].every: 必须是 ≥ 1 的整数（每 N 次投诉），现为 0" in err
    assert (f"{rules / 'complaint.toml'}: settings.penalties[1].window: "
            "必须是 month、quarter、year、never 之一，现为 \"weekly\"") in err
    assert (f"{rules / 'customer_report.toml'}: validate.required[2]: "
            "引用的字段 'contect' 没有在 [fields] 中定义，是不是 contact？") in err


def test_check_reports_missing_template_and_bad_override(tmp_path, capsys):
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    r = (rules / "customer_report.toml").read_text(encoding="utf-8")
    (rules / "customer_report.toml").write_text(r.replace('rejected = "report_rejected"', 'rejected = "report_refused"'),
                                                encoding="utf-8")
    cfg = write_config(tmp_path, rules_dir=rules, extra="[workflows.customer_report]\nfollowup_due_hours = \"3天\"\n")
    assert run(cfg, "check") == 1
    err = capsys.readouterr().err
    assert f"{rules / 'customer_report.toml'}: do.templates.rejected: 找不到模板 'report_refused'" in err
    assert (f"{cfg}: workflows.customer_report.followup_due_hours: "
            "必须是 ≥ 1 的整数（小时），现为 \"3天\"") in err
