"""``python run.py demo`` on this machine: it starts its own mail servers,
processes the sample mails with the shipped directory, rules and templates,
and prints what an admin should see. The assertions read that output."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STEP = re.compile(r"^第 (\d+) 步：(.*)$", re.M)
MAIL = re.compile(r"^\s*【\d+】", re.M)
NUMBER = r"[A-Z]{2}\d{4}-\d{4}"


@pytest.fixture(scope="module", params=["dovecot", "pymap"])
def out(request) -> str:
    """The demo's output. ``pymap``: as on a fresh machine without Dovecot,
    where the demo falls back to the pure-Python server."""
    env = {**os.environ, "PROCESSOR_DEMO_IMAP": request.param}
    p = subprocess.run([sys.executable, "run.py", "demo"], cwd=ROOT, capture_output=True, text=True,
                       encoding="utf-8", timeout=300, env=env)
    assert p.returncode == 0, f"demo failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    assert "Traceback" not in p.stderr, p.stderr
    assert f"收信（IMAP）：本地 {'Dovecot' if request.param == 'dovecot' else 'pymap'}" in p.stdout
    return p.stdout


class Step:
    def __init__(self, title: str, text: str):
        self.title = title
        self.text = text
        parts = MAIL.split(text)
        self.head = parts[0]
        self.mails = [_fields("收件人：" + p) for p in parts[1:]]

    def field(self, name: str) -> str:
        m = re.search(rf"^\s*{name}：(.*)$", self.head, re.M)
        return m.group(1) if m else ""

    def mail(self, *, to: str, subject: str) -> dict:
        hits = [m for m in self.mails if to in m["收件人"] and subject in m["主题"]]
        assert len(hits) == 1, f"expected one mail to {to} with {subject!r} in step {self.title!r}: {self.mails}"
        return hits[0]


def _fields(block: str) -> dict:
    """收件人 / 抄送 / 主题 / 正文 (正文 with its continuation lines) of one outgoing mail."""
    out = {"收件人": "", "抄送": "", "主题": "", "正文": "", "text": block}
    key = None
    for line in block.splitlines():
        m = re.match(r"^\s*(收件人|抄送|主题|正文|回复到|附件)：(.*)$", line)
        if m:
            key = m.group(1)
            out[key] = m.group(2)
        elif key == "正文" and line.strip():
            out["正文"] += "\n" + line.strip()
    return out


def steps(out: str) -> list[Step]:
    marks = list(STEP.finditer(out))
    assert marks, out[:2000]
    end = out.index("\n共处理 ")
    return [Step(m.group(2), out[m.end():(marks[k + 1].start() if k + 1 < len(marks) else end)])
            for k, m in enumerate(marks)]


def step(out: str, *words: str) -> Step:
    hits = [s for s in steps(out) if all(w in s.title for w in words)]
    assert len(hits) == 1, f"no single step titled with {words}: {[s.title for s in steps(out)]}"
    return hits[0]


def section(out: str, heading: str) -> str:
    start = out.index(heading)
    nxt = out.find("\n== ", start + len(heading))
    return out[start: nxt if nxt >= 0 else len(out)]


def number(subject: str) -> str:
    m = re.search(rf"\[#({NUMBER})\]", subject)
    assert m, subject
    return m.group(1)


def test_every_mail_is_shown_with_sender_subject_result_and_explanation(out):
    ss = steps(out)
    assert len(ss) >= 12
    for s in ss:
        assert s.field("发件人") and s.field("主题") and s.field("结果"), s.text
        assert "说明：" in s.head, s.text
        assert s.mails or "⇒ 系统没有发出邮件" in s.text
        for m in s.mails:
            assert m["收件人"] and m["主题"] and m["正文"], m
    assert re.search(r"共处理 \d+ 封邮件，系统发出 \d+ 封邮件", out)


def test_ping_gets_a_receipt(out):
    s = step(out, "工单测试")
    assert [m["主题"] for m in s.mails] == ["回执：工单测试"]
    assert "zhangsan@company.example" in s.mails[0]["收件人"]


def test_accepted_report_gets_a_receipt_with_its_record_number(out):
    s = step(out, "张三汇报华夏银行", "格式正确")
    assert len(s.mails) == 1
    ack = s.mail(to="张三", subject="回执：汇报邮件已记录")
    assert re.fullmatch(r"回执：汇报邮件已记录 (HB\d{4}-\d{4})（华夏银行） \[#\1\]", ack["主题"]), ack
    assert f"记录号 {number(ack['主题'])}" in ack["正文"]
    assert "记入第一售前张三的《项目跟踪表》" in s.field("说明")


def test_vague_report_is_rejected_naming_the_field(out):
    s = step(out, "解决了技术问题")
    assert len(s.mails) == 1
    rej = s.mail(to="王五", subject="汇报邮件未通过检查，请修改后重发")
    assert "“沟通的具体问题”写得太笼统（“解决了技术问题”）" in rej["正文"]
    assert "“沟通的具体问题”写得太笼统" in s.head


def test_answer_to_the_rejection_is_a_resubmission(out):
    s = step(out, "回复退回邮件")
    assert "对系统邮件的回复" in s.field("结果")
    ack = s.mail(to="王五", subject="回执：汇报邮件已记录")
    assert "（东方电网）" in ack["主题"]
    rejected = number(step(out, "解决了技术问题").mails[0]["主题"])
    assert "重新提交" in s.head and rejected in s.head


def test_second_presales_report_notifies_the_first_presales(out):
    s = step(out, "第二售前")
    note = s.mail(to="张三", subject="王五（第二售前）支持了华夏银行项目")
    assert "赵六" in note["抄送"]
    s.mail(to="王五", subject="回执：汇报邮件已记录")


def test_report_not_sent_to_the_sales_is_forwarded_to_lisi(out):
    s = step(out, "恒通证券", "转发")
    assert "密送：工单系统" in s.head
    fwd = s.mail(to="李四 <lisi@company.example>", subject="转发汇报：客户沟通-恒通证券-张三")
    assert "系统现将其转发给您" in fwd["正文"]
    assert "回复到：张三" in fwd["text"]
    s.mail(to="张三", subject="回执：汇报邮件已记录")


def test_outlook_html_table_in_gb2312_is_recorded(out):
    s = step(out, "Outlook", "HTML 表格")
    ack = s.mail(to="王五", subject="回执：汇报邮件已记录")
    assert "（东方电网）" in ack["主题"]


def test_remaining_problem_opens_a_followup_and_the_owner_closes_it(out):
    s = step(out, "问题遗留")
    m = re.search(r"开《遗留问题跟进单》(GJ\d{4}-\d{4})，负责人 张三", s.head)
    assert m, s.text
    fu = m.group(1)
    closed = step(out, "已解决")
    done = closed.mail(to="李四 <lisi@company.example>", subject=f"遗留问题已解决：华夏银行（跟进单 {fu}）")
    assert "张三" in done["抄送"]
    assert f"{fu} 已关闭" in closed.head
    tickets = section(out, "== 全部记录")
    assert re.search(rf"^{fu}\s+遗留问题跟进单\s+华夏银行\s+张三\s+已关闭", tickets, re.M), tickets


def test_second_complaint_crosses_the_threshold_and_is_escalated(out):
    first = step(out, "投诉华夏银行")
    assert not [m for m in first.mails if "投诉处罚" in m["主题"]]
    first.mail(to="李四", subject="回执：投诉已登记")
    first.mail(to="张三", subject="投诉通知")

    s = step(out, "投诉恒通证券")
    pen = s.mail(to="钱经理 <qian@company.example>", subject="投诉处罚：张三")
    assert "孙总监 <sun@company.example>" in pen["抄送"]
    assert "当月绩效工资扣发1级" in pen["主题"] and "当月绩效工资扣发1级" in pen["正文"]
    # 孙总监 was not in the complaint's CC: the system sent it on.
    s.mail(to="孙总监", subject="转发投诉")
    report = section(out, "== 投诉统计")
    assert re.search(r"^张三\s+2\s+0\s+0\s+.*当月绩效工资扣发1级", report, re.M), report


@pytest.mark.parametrize("words", [("外出自动答复",), ("私人邮箱",), ("退信",)])
def test_machines_and_unknown_senders_get_no_answer(out, words):
    s = step(out, *words)
    assert s.mails == [] and "⇒ 系统没有发出邮件" in s.text
    assert "不回复" in s.field("结果")


def test_tracking_tables_hold_the_accepted_reports_under_the_first_presales(out):
    def ack_number(*words):
        s = step(out, *words)
        return number(next(m for m in s.mails if "回执：汇报邮件已记录" in m["主题"])["主题"])

    zhang = section(out, "== 项目跟踪表：张三（第一售前）")
    wang = section(out, "== 项目跟踪表：王五（第一售前）")
    for n in (ack_number("张三汇报华夏银行", "格式正确"), ack_number("第二售前"), ack_number("恒通证券", "转发"),
              ack_number("问题遗留")):
        assert n in zhang and n not in wang
    for n in (ack_number("回复退回邮件"), ack_number("Outlook", "HTML 表格")):
        assert n in wang and n not in zhang
    rejected = number(step(out, "解决了技术问题").mails[0]["主题"])
    assert rejected not in zhang and rejected not in wang
    # The 第二售前's report is in the 第一售前's table, with the reporter named.
    assert re.search(r"华夏银行\s+王五\s+值班工程师小陈", zhang), zhang
    assert "东方电网" not in zhang
    # The Outlook table (GB2312, with the GBK-only 喆) came through intact.
    assert "陈喆（3号厂站站长）" in wang and "更换3号厂站通信管理机电源板" in wang
    # Mail from the unknown address was not recorded.
    assert "确认核心交换机备件到货时间" not in out.split("\n== 项目跟踪表", 1)[1]


def test_workorder_goes_from_submission_to_confirmed_closure(out):
    s = step(out, "提交《故障处理工作单》")
    ack = s.mail(to="张三", subject="回执：故障处理工作单已登记")
    gd = number(ack["主题"])
    assert gd.startswith("GD")
    req = s.mail(to="赵六 <zhaoliu@company.example>", subject=f"请审批故障处理工作单 {gd}")
    assert "附件：vrrp-switch.log" in req["text"]
    assert f"登记为 {gd}" in s.head and "vrrp-switch.log" in s.head and "已保存" in s.head

    s = step(out, "赵六回复审批邮件")
    assert "故障处理工作单的会话" in s.field("结果")
    review = s.mail(to="郑经理 <zheng@company.example>", subject=f"请审核故障处理工作单 {gd}")
    assert "赵六" in review["抄送"] and "张三" in review["抄送"]
    assert "附件：vrrp-switch.log" in review["text"]
    assert "待审批 → 待研发审核" in s.head

    s = step(out, "指派：冯工")
    assigned = s.mail(to="冯工 <feng@company.example>", subject=f"故障处理工作单 {gd} 已指派研发负责人冯工")
    assert "张三 <zhangsan@company.example>" in assigned["收件人"] and "赵六" in assigned["抄送"]
    assert "待研发审核 → 已指派" in s.head and "指派研发负责人 冯工（" in s.head

    s = step(out, "冯工回复“申请关闭”")
    ask = s.mail(to="张三 <zhangsan@company.example>", subject=f"请确认关闭故障处理工作单 {gd}")
    assert "赵六" in ask["抄送"] and "已指派 → 申请关闭" in s.head

    s = step(out, "张三回复“确认关闭”")
    done = s.mail(to="冯工 <feng@company.example>", subject=f"故障处理工作单 {gd} 已关闭")
    assert "郑经理 <zheng@company.example>" in done["收件人"] and "赵六" in done["抄送"]
    assert "申请关闭 → 已关闭" in s.head

    report = section(out, "== 故障处理工作单")
    assert re.search(rf"^{gd}\s+华夏银行\s+核心交换机升级后VRRP主备频繁切换\s+张三\s+已关闭\s+冯工\s+.*\s1$", report, re.M), report
    tickets = section(out, "== 全部记录")
    assert re.search(rf"^{gd}\s+故障处理工作单\s+华夏银行\s+冯工\s+已关闭", tickets, re.M), tickets


def test_demo_starts_the_web_view_and_gives_a_login_code(out):
    """The web view runs during the demo; at the end a manager's login code,
    mailed through the outbox to the local SMTP server, is printed with the address."""
    assert re.search(r"^网页视图：http://127\.0\.0\.1:\d+（只读；演示结束时给出登录验证码）$", out, re.M)
    m = re.search(r"^  登录：邮箱 (\S+)（(\S+)，(\S+)），验证码 (\d{6})（10 分钟内有效，只能用一次）$", out, re.M)
    assert m, out[-2000:]
    assert m.group(1) == "zhaoliu@company.example" and "售前经理" in m.group(3)


def test_a_document_review_in_two_rounds(out):
    submit = step(out, "张三把《测试预案》发给责任销售李四审核")
    review = submit.mail(to="lisi@company.example", subject="请审核文档")
    wd = number(review["主题"])
    assert "（第1版）" in review["主题"] and "华夏银行测试预案V1.docx" in review["text"]
    back = step(out, "李四回复“驳回：意见”")
    returned = back.mail(to="zhangsan@company.example", subject="被驳回")
    assert number(returned["主题"]) == wd and "待审核 → 驳回待重写" in back.head
    assert "客户这次最关注性能，请补充性能测试项目" in back.head  # the comment as written (full-width comma)
    again = step(out, "张三回复驳回通知并附上第2版").mail(to="lisi@company.example", subject="请审核文档")
    assert "（第2版）" in again["主题"] and "华夏银行测试预案V2.docx" in again["text"]
    done = step(out, "李四回复“通过”").mail(to="zhangsan@company.example", subject="已通过")
    assert number(done["主题"]) == wd and "第2版" in done["主题"]

