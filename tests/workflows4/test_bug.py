"""Convention 7, internal bug feedback BUG反馈-<产品>-<简述> (art. 8): fields,
numbering, and routing repair (To 测试组, CC 全体售前; whoever is missing gets
it sent on), end to end through real Dovecot and SMTP servers, on SQLite and
PostgreSQL."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conventions.helpers import LI, NAMES, SYSTEM, WANG, ZHANG, ZHAO, Flow, Sent, one, shape
from support import ROOT, make_mail, write_config

WEI = "wei@company.example"  # 卫测试 测试组
FENG = "feng@company.example"  # 冯工 研发
ALL_NAMES = {**NAMES, WEI: "卫测试", FENG: "冯工"}
SUBJECT = "BUG反馈-安全审计系统-导出报表中文文件名乱码"


# -- set-up ------------------------------------------------------------------

def loadable_rules(tmp_path: Path) -> Path:
    """A copy of the shipped rules with every rule that loads on its own: the
    convention under test runs beside all the others, and a sibling rule still
    being written (reported by ``check`` and its own tests) cannot stop the
    daemon here."""
    from processor.rules.engine import load_rule
    from processor.workflows import ACTIONS

    out = tmp_path / "rules"
    out.mkdir()
    for p in sorted((ROOT / "rules").glob("*.toml")):
        rule, probs = load_rule(p, set(ACTIONS))
        if rule is not None and not probs:
            shutil.copy(p, out / p.name)
    assert (out / "bug.toml").is_file()
    return out


@pytest.fixture
def flow(tmp_path, imap_server, smtp_server, capsys, db_url):
    f = Flow(tmp_path, imap_server, smtp_server, capsys, db_url=db_url)
    f.cfg = write_config(tmp_path, imap=imap_server, smtp=smtp_server, db_url=db_url, rules_dir=loadable_rules(tmp_path))
    return f


def bug_body(*, version="V5.2.1", description="导出报表时中文文件名变成乱码", steps="1. 登录管理界面\n2. 报表→导出Excel\n3. 打开下载的文件",
             kind=None, product=None) -> str:
    lines = []
    if product is not None:
        lines.append(f"产品：{product}")
    if version is not None:
        lines.append(f"版本：{version}")
    if kind is not None:
        lines.append(f"问题类型：{kind}")
    if description is not None:
        lines.append(f"问题描述：{description}")
    if steps is not None:
        lines.append(f"重现步骤：{steps}")
    lines.append("环境：Windows 10 + Chrome 120")
    lines.append("项目名称：华夏银行")
    return "\n".join(lines) + "\n\n张三\n"


def feedback(flow, *, sender=ZHANG, to=(WEI,), cc=(WANG, ZHAO, SYSTEM), subject=SUBJECT, body=None, **kw) -> list[Sent]:
    return flow.deliver(make_mail(sender=sender, sender_name=ALL_NAMES.get(sender, sender), to=to, cc=cc,
                                  subject=subject, body=body if body is not None else bug_body(), **kw))


# -- routing ---------------------------------------------------------------------

def test_complete_routing_is_recorded_without_forwards(flow):
    sent = feedback(flow)
    assert shape(sent) == [((ZHANG,), ())]  # the receipt only
    ack = sent[0]
    assert ack.subject == "回执：BUG反馈已登记 BUG2026-0001（安全审计系统） [#BUG2026-0001]"
    assert "您的BUG反馈《BUG反馈-安全审计系统-导出报表中文文件名乱码》已登记，编号 BUG2026-0001" in ack.text
    assert "产品：安全审计系统" in ack.text and "问题类型：缺陷" in ack.text
    assert "  重现步骤：1. 登录管理界面\n    2. 报表→导出Excel\n    3. 打开下载的文件\n" in ack.text
    assert "收件人和抄送符合制度第八条（发给测试组，抄送全体售前），无需转发" in ack.text
    t = flow.ticket("BUG2026-0001")
    assert (t["kind"], t["state"], t["owner"], t["project"]) == ("bug", "recorded", "张三", "华夏银行")
    d = t["data"]
    assert (d["product"], d["summary"], d["version"], d["type"]) == ("安全审计系统", "导出报表中文文件名乱码", "V5.2.1", "缺陷")
    assert (d["routing_repaired"], d["forwarded_to"], d["forwarded_cc"]) == (False, [], [])
    assert d["values"]["description"] == "导出报表时中文文件名变成乱码"


def test_system_in_bcc_and_testers_in_cc_count_as_routed(flow):
    # The tracking address is in neither To nor CC (BCC / server copy); a tester in CC is addressed.
    sent = feedback(flow, to=(WANG, ZHAO), cc=(WEI,))
    assert shape(sent) == [((ZHANG,), ())]


def test_missing_test_group_gets_it_sent_on(flow):
    sent = feedback(flow, to=(WANG, ZHAO), cc=(SYSTEM,))
    assert shape(sent) == [((WEI,), ()), ((ZHANG,), ())]
    fwd = one(sent, to=WEI)
    assert fwd.subject == "转发BUG反馈 BUG2026-0001：BUG反馈-安全审计系统-导出报表中文文件名乱码 [#BUG2026-0001]"
    assert fwd.reply_to == ZHANG and fwd.attachments == ["original.eml"]
    assert "张三提交了内部BUG反馈，但没有发给您。按制度第八条，BUG反馈应发给测试组成员，并抄送全体售前人员" in fwd.text
    assert "问题描述：导出报表时中文文件名变成乱码" in fwd.text and f"发件人：{ZHANG}" in fwd.text
    ack = one(sent, to=ZHANG)
    assert "以下人员不在这封邮件的收件人或抄送中，系统已把反馈转给他们" in ack.text
    assert "收件人（测试组）：卫测试" in ack.text and "抄送（售前）" not in ack.text
    d = flow.ticket("BUG2026-0001")["data"]
    assert (d["routing_repaired"], d["forwarded_to"], d["forwarded_cc"]) == (True, ["卫测试"], [])


def test_missing_presales_get_it_sent_on(flow):
    sent = feedback(flow, to=(WEI,), cc=(WANG,))
    assert shape(sent) == [((ZHANG,), ()), ((ZHAO,), ())]
    fwd = one(sent, to=ZHAO)
    assert fwd.reply_to == ZHANG and fwd.attachments == ["original.eml"]
    ack = one(sent, to=ZHANG)
    assert "抄送（售前）：赵六" in ack.text and "收件人（测试组）" not in ack.text
    d = flow.ticket("BUG2026-0001")["data"]
    assert (d["routing_repaired"], d["forwarded_to"], d["forwarded_cc"]) == (True, [], ["赵六"])


def test_missing_everyone_gets_one_forward_to_testers_cc_presales(flow):
    sent = feedback(flow, to=(SYSTEM,), cc=(LI,))  # a salesperson in CC is neither
    assert shape(sent) == [((WEI,), (WANG, ZHAO)), ((ZHANG,), ())]
    ack = one(sent, to=ZHANG)
    assert "收件人（测试组）：卫测试" in ack.text and "抄送（售前）：王五、赵六" in ack.text
    d = flow.ticket("BUG2026-0001")["data"]
    assert (d["forwarded_to"], d["forwarded_cc"]) == (["卫测试"], ["王五", "赵六"])
    assert flow.report("bugs") == [{"编号": "BUG2026-0001", "产品": "安全审计系统", "简述": "导出报表中文文件名乱码",
                                    "发件人": "张三", "日期": flow.report("bugs")[0]["日期"], "状态": "已登记",
                                    "问题类型": "缺陷", "补发": "是", "补发给": "卫测试、王五、赵六"}]


def test_the_same_mail_twice_is_recorded_and_forwarded_once(flow):
    raw = make_mail(sender=ZHANG, sender_name="张三", to=(SYSTEM,), subject=SUBJECT, body=bug_body())
    sent = flow.deliver(raw)
    assert shape(sent) == [((WEI,), (WANG, ZHAO)), ((ZHANG,), ())]
    assert flow.deliver(raw) == []
    assert flow.deliver(b"X-Journal: copy\r\n" + raw) == []
    assert flow.db("select number from tickets where kind = 'bug'") == [("BUG2026-0001",)]


# -- fields ----------------------------------------------------------------------

def test_missing_fields_are_rejected_not_forwarded_and_a_reply_resubmits(flow):
    sent = feedback(flow, to=(SYSTEM,), cc=(), body=bug_body(version=None, steps=None))
    assert shape(sent) == [((ZHANG,), ())]  # nothing sent on while the form is incomplete
    rej = sent[0]
    assert rej.subject == f"BUG反馈未通过检查，请修改后重发：{SUBJECT} [#BUG2026-0001]"
    assert "缺少“版本”：请写一行“版本：……”。" in rej.text
    assert "“问题类型”为“缺陷”时，必须填写“重现步骤”。" in rej.text
    assert "产品：安全审计系统\n版本：\n问题类型：缺陷\n问题描述：导出报表时中文文件名变成乱码\n重现步骤：\n" in rej.text
    assert flow.ticket("BUG2026-0001")["state"] == "rejected"

    sent = flow.deliver(make_mail(sender=ZHANG, sender_name="张三", to=(SYSTEM,), subject="回复：" + rej.subject,
                                  body=bug_body(), in_reply_to=rej.message_id))
    # The reply went To the system only: it is sent on to the whole test group and all presales.
    assert shape(sent) == [((WEI,), (WANG, ZHAO)), ((ZHANG,), ())]
    assert "BUG2026-0002" in one(sent, to=ZHANG).subject
    t = flow.ticket("BUG2026-0002")
    assert (t["state"], t["data"]["resubmits"], t["data"]["product"]) == ("recorded", "BUG2026-0001", "安全审计系统")
    rows = flow.report("bugs")
    assert [(r["编号"], r["状态"], r["补发"]) for r in rows] == [("BUG2026-0001", "退回", ""), ("BUG2026-0002", "已登记", "是")]


def test_vague_description_and_wrong_type_are_rejected(flow):
    sent = feedback(flow, body=bug_body(description="有问题", kind="严重"))
    assert shape(sent) == [((ZHANG,), ())]
    assert "“问题描述”写得太笼统（“有问题”）" in sent[0].text
    assert "“问题类型”只能填写“缺陷”或“易用性”或“建议”，而不是“严重”。" in sent[0].text
    assert "问题类型：缺陷/易用性/建议\n" in sent[0].text


def test_a_suggestion_needs_no_steps_and_the_body_product_wins(flow):
    sent = feedback(flow, subject="bug反馈－审计－建议增加批量导出", body=bug_body(kind="建议", steps=None, product="安全审计系统"))
    assert shape(sent) == [((ZHANG,), ())]
    assert sent[0].subject == "回执：BUG反馈已登记 BUG2026-0001（安全审计系统） [#BUG2026-0001]"
    d = flow.ticket("BUG2026-0001")["data"]
    assert (d["type"], d["summary"]) == ("建议", "建议增加批量导出")


def test_replies_in_the_thread_are_logged_only(flow):
    ack = feedback(flow)[0]
    sent = flow.deliver(make_mail(sender=WEI, sender_name="卫测试", to=(ZHANG,), cc=(SYSTEM,),
                                  subject="回复：" + ack.subject, body="已复现，转研发处理。", in_reply_to=ack.message_id))
    assert sent == []
    notes = flow.ticket("BUG2026-0001")["data"]["thread"]
    assert [(n["from"], n["first_line"]) for n in notes] == [("卫测试", "已复现,转研发处理。")]
