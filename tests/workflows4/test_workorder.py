"""Convention 6, 故障处理工作单 ``故障处理-<项目>-<简述>`` (art. 43-47), end to end:
mails go into a real Dovecot mailbox, ``run.py once`` processes them and
delivers to a real aiosmtpd server; the tests read the delivered mails and
the store (tickets, audit, attachments)."""
from __future__ import annotations

from datetime import datetime, timezone
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, make_msgid

import pytest

from conventions.helpers import LI, SYSTEM, WANG, ZHANG, ZHAO, Flow, Sent, one, shape

ZHENG = "zheng@company.example"  # 郑经理 研发经理
FENG = "feng@company.example"  # 冯工 研发
CHEN = "chen@company.example"  # 陈工 研发
WEI = "wei@company.example"  # 卫测试 测试组
NAMES = {ZHANG: "张三", WANG: "王五", LI: "李四", ZHAO: "赵六", ZHENG: "郑经理", FENG: "冯工", CHEN: "陈工", WEI: "卫测试"}
YEAR = datetime.now().year
GD1 = f"GD{YEAR}-0001"
GD2 = f"GD{YEAR}-0002"

LOG = ("2026-11-20 10:01:02 ERROR vrrp: state MASTER -> BACKUP (priority 100)\n"
       "2026-11-20 10:01:03 WARN  vrrp: advert timeout on vlan10\n").encode()


def fields(*, env="S5720 核心交换机 V200R019C10SPC500，双机 VRRP", steps="升级 V200R019 补丁后重启备机",
           symptom="VRRP 主备每 5 分钟切换一次，业务丢包", logs="见附件 vrrp.log", attempts="3", severity=None,
           extra: str = "") -> str:
    lines = []
    for label, value in (("环境", env), ("操作过程", steps), ("现象", symptom), ("日志", logs), ("尝试次数", attempts),
                         ("严重程度", severity)):
        if value is not None:
            lines.append(f"{label}：{value}")
    return extra + "\n".join(lines) + "\n\n谢谢！\n"


def build(*, sender: str, subject: str, body: str, to=(ZHAO,), cc=(SYSTEM,), files=(), in_reply_to: str | None = None,
          message_id: str | None = None) -> bytes:
    """A mail as a client sends it, with attachments (name, type, bytes)."""
    msg = EmailMessage()
    msg["From"] = formataddr((NAMES.get(sender, ""), sender))
    msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(timezone.utc))
    msg["Message-ID"] = message_id or make_msgid(domain="client.example")
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    msg.set_content(body)
    for name, ctype, data in files:
        maintype, subtype = ctype.split("/", 1)
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes(policy=SMTP)


class WO:
    """The flow plus the work-order specific helpers."""

    def __init__(self, flow: Flow):
        self.flow = flow

    def submit(self, *, sender=ZHANG, subject="故障处理-华夏银行-核心交换机VRRP主备频繁切换", body=None,
               files=(("vrrp.log", "text/plain", LOG),), **kw) -> list[Sent]:
        return self.flow.deliver(build(sender=sender, subject=subject, body=fields() if body is None else body,
                                       files=files, **kw))

    def reply(self, sent: Sent, *, sender: str, body: str, files=(), to=(SYSTEM,), cc=()) -> list[Sent]:
        """Answer a mail the system sent, as a mail client does (In-Reply-To + 回复： + the [#token] subject)."""
        return self.flow.deliver(build(sender=sender, subject="回复：" + sent.subject, body=body, to=to, cc=cc,
                                       files=files, in_reply_to=sent.message_id))

    def state(self, number: str = GD1) -> str:
        return self.flow.ticket(number)["state"]

    def data(self, number: str = GD1) -> dict:
        return self.flow.ticket(number)["data"]

    def transitions(self, number: str = GD1) -> list[tuple[str, str, str]]:
        """(action, actor, subject of the mail that caused it) of the order's state changes."""
        return [(a, actor, subj) for a, actor, subj in self.flow.db(
            "select a.action, a.actor, m.subject from audit a left join messages m on m.id = a.message "
            "where a.entity = 'workorder' and a.entity_id = :n and (a.action like 'state:%' or a.action = 'workorder_submitted') "
            "order by a.id", n=number)]

    def refusals(self, number: str = GD1) -> list[tuple[str, str]]:
        return [(d["command"], d["reason"]) for (d,) in self.flow.db(
            "select detail from audit where entity = 'workorder' and entity_id = :n and action = 'command_refused' "
            "order by id", n=number)]

    def orders(self) -> int:
        return self.flow.db("select count(*) from tickets where kind = 'workorder'")[0][0]


@pytest.fixture
def wo(tmp_path, imap_server, smtp_server, capsys, db_url):
    """Runs once on SQLite and once on PostgreSQL."""
    return WO(Flow(tmp_path, imap_server, smtp_server, capsys, db_url=db_url))


@pytest.fixture
def wo_small(tmp_path, imap_server, smtp_server, capsys, db_url):
    """Attachments over 2,000 bytes are recorded by name and size only."""
    return WO(Flow(tmp_path, imap_server, smtp_server, capsys, db_url=db_url,
                   extra="[limits]\nmax_attachment_size = 2000\n"))


# ---------------------------------------------------------------------------
# the main path, with the permission and wrong-state refusals along it
# ---------------------------------------------------------------------------


def test_submission_to_confirmed_closure_with_every_refusal_on_the_way(wo):
    flow = wo.flow
    sent = wo.submit()
    # Receipt to the raiser; approval request to the 售前经理 with the log attached.
    assert shape(sent) == [((ZHANG,), ()), ((ZHAO,), ())]
    ack = one(sent, to=ZHANG)
    assert ack.subject == f"回执：故障处理工作单已登记 {GD1}（华夏银行），等待售前经理审批 [#{GD1}]"
    assert "当前状态“待审批”" in ack.text and "售前经理赵六审批" in ack.text and "研发经理郑经理审核" in ack.text
    assert "现象：VRRP 主备每 5 分钟切换一次，业务丢包" in ack.text
    assert "提交依据：已尝试3次仍无法解决" in ack.text
    assert "vrrp.log（" in ack.text and "超过" not in ack.text
    approve = one(sent, to=ZHAO)
    assert approve.subject == f"请审批故障处理工作单 {GD1}：华夏银行-核心交换机VRRP主备频繁切换 [#{GD1}]"
    assert "同意" in approve.text and "驳回：原因和建议" in approve.text
    assert approve.attachments == ["vrrp.log"]
    t = flow.ticket(GD1)
    assert (t["kind"], t["state"], t["project"], t["owner"]) == ("workorder", "pending_approval", "华夏银行", "张三")
    assert (t["data"]["raiser"], t["data"]["raiser_role"], t["data"]["rd_owner"]) == ("张三", "第一售前", "")
    assert t["data"]["attempts"] == 3 and t["data"]["serious"] == ""
    # The log is kept: an Attachment row, its bytes content-addressed in raw_mails.
    rows = flow.db("select a.filename, a.size, a.sha256, r.data from attachments a join tickets t on t.id = a.ticket_id "
                   "left join raw_mails r on r.sha256 = a.sha256 where t.number = :n", n=GD1)
    assert [(r[0], r[1], bytes(r[3])) for r in rows] == [("vrrp.log", len(LOG), LOG)]

    # 张三 cannot approve his own order; 冯工 cannot 指派 yet (wrong state).
    sent = wo.reply(approve, sender=ZHANG, body="同意")
    assert shape(sent) == [((ZHANG,), ())]
    assert sent[0].subject == f"操作未执行：{GD1} 的“同意”只能由售前经理（赵六）操作 [#{GD1}]"
    sent = wo.reply(approve, sender=ZHENG, body="指派：冯工")
    assert shape(sent) == [((ZHENG,), ())]
    assert "当前状态为“待审批”" in sent[0].subject
    assert "同意（由售前经理（赵六）操作）" in sent[0].text and "驳回（由售前经理（赵六）操作）" in sent[0].text
    assert wo.state() == "pending_approval"

    # 赵六 同意 -> 待研发审核: the 研发经理 is asked, CC 售前经理 and the raiser.
    sent = wo.reply(approve, sender=ZHAO, body="同意，请研发尽快看一下\n\n赵六")
    assert shape(sent) == [((ZHENG,), (ZHANG, ZHAO))]
    review = sent[0]
    assert review.subject == f"请审核故障处理工作单 {GD1}：华夏银行-核心交换机VRRP主备频繁切换（售前经理已同意） [#{GD1}]"
    assert "售前经理赵六已同意张三提交的" in review.text and "赵六的意见：请研发尽快看一下" in review.text
    assert "指派：姓名" in review.text and review.attachments == ["vrrp.log"]
    assert wo.state() == "rd_review"

    # 冯工 (研发) may not assign; 郑经理 must name someone, and someone in R&D.
    sent = wo.reply(review, sender=FENG, body="指派：冯工")
    assert shape(sent) == [((FENG,), ())] and "只能由研发经理（郑经理）操作" in sent[0].subject
    sent = wo.reply(review, sender=ZHENG, body="指派")
    assert shape(sent) == [((ZHENG,), ())]
    assert sent[0].subject == f"操作未执行：“指派”需要写明研发负责人姓名 [#{GD1}]"
    sent = wo.reply(review, sender=ZHENG, body="指派：卫测试")
    assert shape(sent) == [((ZHENG,), ())]
    assert "卫测试的角色是测试组，不是研发或研发经理" in sent[0].text and "冯工" in sent[0].text
    sent = wo.reply(review, sender=ZHENG, body="指派：王小二")
    assert "通讯录中没有“王小二”" in sent[0].text
    assert wo.state() == "rd_review"

    # 郑经理 指派：冯工 -> 已指派: the 研发负责人 and the raiser, CC 售前经理 and 郑经理.
    sent = wo.reply(review, sender=ZHENG, body="指派：冯工，今天内联系张三")
    assert shape(sent) == [((FENG, ZHANG), (ZHAO, ZHENG))]
    assigned = sent[0]
    assert assigned.subject == f"故障处理工作单 {GD1} 已指派研发负责人冯工：华夏银行-核心交换机VRRP主备频繁切换 [#{GD1}]"
    assert "郑经理的说明：今天内联系张三" in assigned.text and "申请关闭" in assigned.text
    assert assigned.attachments == ["vrrp.log"]
    t = flow.ticket(GD1)
    assert (t["state"], t["owner"], t["data"]["rd_owner"]) == ("assigned", "冯工", "冯工")

    # Wrong state for the raiser; only the 研发负责人 may ask to close.
    sent = wo.reply(assigned, sender=ZHANG, body="确认关闭")
    assert shape(sent) == [((ZHANG,), ())] and "当前状态为“已指派”" in sent[0].subject
    assert "申请关闭（由研发负责人（冯工）操作）" in sent[0].text
    sent = wo.reply(assigned, sender=ZHANG, body="申请关闭")
    assert sent[0].subject == f"操作未执行：{GD1} 的“申请关闭”只能由研发负责人（冯工）操作 [#{GD1}]"
    # A reply without a keyword is recorded on the thread, unanswered.
    assert wo.reply(assigned, sender=LI, body="客户那边催得比较急，辛苦各位。") == []

    # 冯工 申请关闭 -> the raiser is asked to confirm, CC 售前经理 and 冯工.
    sent = wo.reply(assigned, sender=FENG, body="申请关闭\n补丁 V200R019SPH007 修复了 VRRP 报文优先级问题，已在现场升级验证。\n")
    assert shape(sent) == [((ZHANG,), (FENG, ZHAO))]
    close_req = sent[0]
    assert close_req.subject == f"请确认关闭故障处理工作单 {GD1}：华夏银行-核心交换机VRRP主备频繁切换 [#{GD1}]"
    assert "补丁 V200R019SPH007 修复了 VRRP 报文优先级问题" in close_req.text
    assert "确认关闭" in close_req.text and "重新打开：原因" in close_req.text
    assert wo.state() == "close_requested"

    # Only the raiser confirms closure.
    sent = wo.reply(close_req, sender=FENG, body="确认关闭")
    assert sent[0].subject == f"操作未执行：{GD1} 的“确认关闭”只能由故障提出人（张三）操作 [#{GD1}]"
    sent = wo.reply(close_req, sender=ZHAO, body="确认关闭")
    assert "只能由故障提出人（张三）操作" in sent[0].subject
    assert wo.state() == "close_requested"

    sent = wo.reply(close_req, sender=ZHANG, body="确认关闭，客户已验证一晚没有再切换。")
    assert shape(sent) == [((FENG, ZHENG), (ZHANG, ZHAO))]
    assert sent[0].subject == f"故障处理工作单 {GD1} 已关闭：华夏银行-核心交换机VRRP主备频繁切换 [#{GD1}]"
    assert "故障提出人张三已确认问题解决" in sent[0].text
    t = flow.ticket(GD1)
    assert t["state"] == "closed" and t["closed_at"] is not None

    # Closed is final.
    sent = wo.reply(close_req, sender=ZHANG, body="重新打开")
    assert "当前状态为“已关闭”" in sent[0].subject and "该记录已结束" in sent[0].text

    # Every step audited with the mail that caused it.
    assert wo.transitions() == [
        ("workorder_submitted", "张三", "故障处理-华夏银行-核心交换机VRRP主备频繁切换"),
        ("state:pending_approval->rd_review", "赵六", "回复：" + approve.subject),
        ("state:rd_review->assigned", "郑经理", "回复：" + review.subject),
        ("state:assigned->close_requested", "冯工", "回复：" + assigned.subject),
        ("state:close_requested->closed", "张三", "回复：" + close_req.subject),
    ]
    assert wo.refusals() == [("同意", "not_allowed"), ("指派", "wrong_state"), ("指派", "not_allowed"),
                             ("指派", "missing_arg"), ("指派", "bad_assignee"), ("指派", "bad_assignee"),
                             ("确认关闭", "wrong_state"), ("申请关闭", "not_allowed"), ("确认关闭", "not_allowed"),
                             ("确认关闭", "not_allowed"), ("重新打开", "wrong_state")]
    notes = wo.data()["thread"]
    assert [(n["from"], n["first_line"]) for n in notes] == [("李四", "客户那边催得比较急,辛苦各位。")]
    assert [h["command"] for h in wo.data()["history"]] == ["提交", "同意", "指派", "申请关闭", "确认关闭"]

    report = flow.report("workorders")
    assert len(report) == 1
    r = report[0]
    assert {k: r[k] for k in ("编号", "项目", "简述", "故障提出人", "状态", "研发负责人", "附件数")} == {
        "编号": GD1, "项目": "华夏银行", "简述": "核心交换机VRRP主备频繁切换", "故障提出人": "张三", "状态": "已关闭",
        "研发负责人": "冯工", "附件数": "1"}
    assert r["开单时间"] and r["最后变更"] >= r["开单时间"]
    assert flow.report("workorders", "--open") == []
    assert GD1 in flow.report_text("workorders")
    assert flow.report("tickets")[0]["类型"] == "故障处理工作单"


# ---------------------------------------------------------------------------
# 重新打开, re-assignment and 转定制 (art. 47)
# ---------------------------------------------------------------------------


def _assigned(wo: WO, to_name="陈工", **submit) -> Sent:
    sent = wo.submit(**submit)
    approve = one(sent, to=ZHAO)
    review = wo.reply(approve, sender=ZHAO, body="同意")[0]
    return wo.reply(review, sender=ZHENG, body=f"指派：{to_name}")[0]


def test_reopen_reassign_and_conversion_to_custom_development(wo):
    flow = wo.flow
    # Serious: no 尝试次数 needed. 王五 (第二售前) submits.
    assigned = _assigned(wo, sender=WANG, subject="故障处理-华夏-双活数据库切换后数据不一致",
                         body=fields(attempts=None, severity="严重，核心账务数据不一致", logs="ORA-00600 [kcratr_nab_less_than_odr]"),
                         files=())
    t = flow.ticket(GD1)
    assert (t["state"], t["data"]["raiser"], t["data"]["raiser_role"], t["data"]["rd_owner"]) == (
        "assigned", "王五", "第二售前", "陈工")
    assert t["data"]["serious"] == "“严重程度”为“严重，核心账务数据不一致”"

    close_req = wo.reply(assigned, sender=CHEN, body="申请关闭\n已给出规避方案。")[0]
    # The raiser reopens: back to 已指派, the 研发负责人 told, CC 售前经理 and the raiser.
    sent = wo.reply(close_req, sender=WANG, body="重新打开：规避方案在客户环境无效，切换后仍有差异")
    assert shape(sent) == [((CHEN,), (WANG, ZHAO))]
    assert sent[0].subject == f"故障处理工作单 {GD1} 被重新打开：华夏银行-双活数据库切换后数据不一致 [#{GD1}]"
    assert "规避方案在客户环境无效" in sent[0].text
    assert wo.state() == "assigned"

    # The 研发经理 re-assigns: the new owner and the raiser; the old owner in CC.
    sent = wo.reply(assigned, sender=ZHENG, body="指派：冯工")
    assert shape(sent) == [((FENG, WANG), (CHEN, ZHAO, ZHENG))]
    assert "原研发负责人陈工" in sent[0].text
    assigned = sent[0]
    assert wo.data()["rd_owner"] == "冯工"

    # 转定制: only the 研发负责人, and not by the raiser.
    sent = wo.reply(assigned, sender=CHEN, body="转定制")
    assert "只能由研发负责人（冯工）操作" in sent[0].subject
    sent = wo.reply(assigned, sender=WANG, body="转定制")
    assert "只能由研发负责人（冯工）操作" in sent[0].subject
    sent = wo.reply(assigned, sender=FENG, body="转定制：需要改双活同步协议，预计两个月")
    assert shape(sent) == [((WANG,), (FENG, ZHAO))]
    custom_req = sent[0]
    assert custom_req.subject.startswith(f"征求意见：故障处理工作单 {GD1} 拟转定制研发")
    assert "需要改双活同步协议，预计两个月" in custom_req.text
    assert wo.state() == "custom_pending"

    # The raiser may say no (重新打开 or 驳回): back to 已指派.
    sent = wo.reply(custom_req, sender=WANG, body="重新打开：客户不接受两个月")
    assert shape(sent) == [((FENG,), (WANG, ZHAO))]
    assert sent[0].subject == f"故障提出人不同意转定制：故障处理工作单 {GD1} 仍由您处理 [#{GD1}]"
    assert wo.state() == "assigned"
    custom_req = wo.reply(assigned, sender=FENG, body="转定制：只能在新版本中修复")[0]
    sent = wo.reply(custom_req, sender=WANG, body="驳回：先出临时补丁")
    assert shape(sent) == [((FENG,), (WANG, ZHAO))] and "先出临时补丁" in sent[0].text
    assert wo.state() == "assigned"

    # Third time: the 售前经理 cannot agree for the raiser; the raiser agrees -> 已转定制.
    custom_req = wo.reply(assigned, sender=FENG, body="转定制：临时补丁无法覆盖所有场景")[0]
    sent = wo.reply(custom_req, sender=ZHAO, body="同意")
    assert "只能由故障提出人（王五）操作" in sent[0].subject
    sent = wo.reply(custom_req, sender=FENG, body="确认关闭")
    assert "当前状态为“待确认转定制”" in sent[0].subject
    sent = wo.reply(custom_req, sender=WANG, body="同意")
    # 研发负责人 + 研发经理; CC 售前经理, the raiser and the 责任销售 (the project's plan changes).
    assert shape(sent) == [((FENG, ZHENG), (LI, WANG, ZHAO))]
    assert sent[0].subject == f"故障处理工作单 {GD1} 已转定制研发：华夏银行-双活数据库切换后数据不一致 [#{GD1}]"
    t = flow.ticket(GD1)
    assert t["state"] == "custom" and t["closed_at"] is not None

    assert [a for a, _, _ in wo.transitions()] == [
        "workorder_submitted", "state:pending_approval->rd_review", "state:rd_review->assigned",
        "state:assigned->close_requested", "state:close_requested->assigned", "state:assigned->assigned",
        "state:assigned->custom_pending", "state:custom_pending->assigned", "state:assigned->custom_pending",
        "state:custom_pending->assigned", "state:assigned->custom_pending", "state:custom_pending->custom"]
    assert [r["状态"] for r in flow.report("workorders")] == ["已转定制"]
    assert flow.report("workorders", "--open") == []


# ---------------------------------------------------------------------------
# 驳回 by the 售前经理 and by the 研发经理, and resubmission
# ---------------------------------------------------------------------------


def test_rejections_with_advice_and_resubmission(wo):
    sent = wo.submit(files=(), body=fields(logs="vrrp 日志：advert timeout on vlan10"))
    approve = one(sent, to=ZHAO)

    # 驳回 needs a reason; 李四 (销售) may not.
    sent = wo.reply(approve, sender=ZHAO, body="驳回")
    assert sent[0].subject == f"操作未执行：“驳回”需要写明原因 [#{GD1}]"
    sent = wo.reply(approve, sender=LI, body="驳回：不急")
    assert "只能由售前经理（赵六）操作" in sent[0].subject
    assert wo.state() == "pending_approval"

    sent = wo.reply(approve, sender=ZHAO, body="驳回：先按华为案例库 HW-2231 检查 VRRP 抢占延时配置\n检查后仍有问题再提交。")
    assert shape(sent) == [((ZHANG,), (ZHAO,))]
    returned = sent[0]
    assert returned.subject == f"故障处理工作单 {GD1} 被驳回：华夏银行-核心交换机VRRP主备频繁切换 [#{GD1}]"
    assert "被售前经理赵六驳回" in returned.text
    assert "驳回原因：先按华为案例库 HW-2231 检查 VRRP 抢占延时配置" in returned.text
    assert "建议：检查后仍有问题再提交。" in returned.text
    assert "环境：S5720 核心交换机" in returned.text  # the fill-in for the resubmission
    assert wo.state() == "rejected"
    assert wo.data()["rejection"]["reason"] == "先按华为案例库 HW-2231 检查 VRRP 抢占延时配置"

    # 驳回 is not a state anyone can approve from.
    sent = wo.reply(approve, sender=ZHAO, body="同意")
    assert "当前状态为“驳回”" in sent[0].subject

    # A resubmission that still fails the checks: told why, still 驳回.
    sent = wo.reply(returned, sender=ZHANG, body="尝试次数：2\n操作过程：已按 HW-2231 把抢占延时改为 60 秒\n")
    assert shape(sent) == [((ZHANG,), ())]
    assert sent[0].subject == f"故障处理工作单 {GD1} 重新提交未通过检查，请修改后再回复 [#{GD1}]"
    assert "“尝试次数”为2次，不足3次" in sent[0].text
    assert wo.state() == "rejected"

    # Corrected: back to 待审批, the 售前经理 asked again (CC the raiser).
    sent = wo.reply(returned, sender=ZHANG, body="操作过程：已按 HW-2231 把抢占延时改为 60 秒，问题依旧\n尝试次数：4\n")
    assert shape(sent) == [((ZHAO,), (ZHANG,))]
    approve2 = sent[0]
    assert approve2.subject.endswith(f"（重新提交） [#{GD1}]") and "重新提交，请重新审批" in approve2.text
    assert "操作过程：已按 HW-2231 把抢占延时改为 60 秒，问题依旧" in approve2.text
    d = wo.data()
    assert wo.state() == "pending_approval" and d["attempts"] == 4 and d["resubmissions"] == 1

    # Now the 研发经理 rejects with advice: the raiser, CC 售前经理 and 郑经理.
    review = wo.reply(approve2, sender=ZHAO, body="同意")[0]
    sent = wo.reply(review, sender=LI, body="驳回：不需要研发")
    assert "只能由研发经理（郑经理）操作" in sent[0].subject
    sent = wo.reply(review, sender=ZHENG, body="驳回：现场版本混用，先统一为 V200R019C10SPC500 再观察")
    assert shape(sent) == [((ZHANG,), (ZHAO, ZHENG))]
    assert "被研发经理郑经理驳回" in sent[0].text and "先统一为 V200R019C10SPC500" in sent[0].text
    assert wo.state() == "rejected"
    assert [a for a, _, _ in wo.transitions()] == [
        "workorder_submitted", "state:pending_approval->rejected", "state:rejected->pending_approval",
        "state:pending_approval->rd_review", "state:rd_review->rejected"]
    # Only the raiser resubmits: 王五's corrected body is just a note.
    assert wo.reply(sent[0], sender=WANG, body="尝试次数：5\n") == []
    assert wo.state() == "rejected"


# ---------------------------------------------------------------------------
# submissions that are not recorded
# ---------------------------------------------------------------------------


def test_missing_fields_few_attempts_and_wrong_sender_are_rejected_without_a_record(wo):
    flow = wo.flow
    sent = wo.submit(subject="故障处理-华夏银行-缺现象", body=fields(symptom=None), files=())
    assert shape(sent) == [((ZHANG,), ())]
    rej = sent[0]
    assert rej.subject == "故障处理-华夏银行-缺现象（未提交，请补充后回复本邮件）"
    assert "没有登记" in rej.text and "缺少“现象”：请写一行“现象：……”" in rej.text
    # The fill-in keeps what was usable and leaves the missing field empty.
    assert "环境：S5720 核心交换机 V200R019C10SPC500，双机 VRRP" in rej.text and "\n现象：\n" in rej.text
    # 日志 says 见附件 but nothing is attached.
    assert "“日志”写的是“见附件 vrrp.log”，但邮件没有附件" in rej.text

    sent = wo.submit(subject="故障处理-华夏银行-两次", body=fields(attempts="两次"))
    assert "“尝试次数”为2次，不足3次" in sent[0].text and "内部bug反馈流程" in sent[0].text
    assert "这封邮件的附件没有保存（工作单没有登记）：vrrp.log" in sent[0].text
    sent = wo.submit(subject="故障处理-华夏银行-没写次数", body=fields(attempts=None, severity="一般"))
    assert "缺少“尝试次数”" in sent[0].text and "严重程度：严重" in sent[0].text
    sent = wo.submit(subject="故障处理-华夏银行-不严重的问题", body=fields(attempts="多次"))
    assert "“尝试次数”应写次数，例如“尝试次数：3”，而不是“多次”" in sent[0].text
    sent = wo.submit(subject="故障处理-华夏银行", body=fields())
    assert "标题缺少简述" in sent[0].text
    sent = wo.submit(subject="故障处理-华夏银行-无日志", body=fields(logs=None), files=())
    assert "缺少“日志”：请写一行“日志：……”贴出相关日志，或把日志文件作为附件一起发送" in sent[0].text

    # Not the project's 第一/第二售前 (李四 is the 责任销售; 赵六 not on this project).
    sent = wo.submit(sender=LI, subject="故障处理-华夏银行-销售代提")
    assert shape(sent) == [((LI,), ())]
    assert "李四不是华夏银行项目的责任售前" in sent[0].text and "第一售前张三或第二售前王五" in sent[0].text
    assert "环境：" not in sent[0].text  # no fill-in: someone else must submit
    sent = wo.submit(sender=ZHAO, subject="故障处理-华夏银行-经理代提")
    assert "赵六不是华夏银行项目的责任售前" in sent[0].text
    # Unknown project.
    sent = wo.submit(subject="故障处理-华厦银行-项目名写错")
    assert "项目“华厦银行”在通讯录中找不到" in sent[0].text and "华夏银行" in sent[0].text

    assert wo.orders() == 0
    assert len(flow.db("select id from audit where action = 'workorder_rejected'")) == 9

    # A plain reply to the rejection with the completed body is a new submission.
    sent = wo.reply(rej, sender=ZHANG, body=fields(logs="advert timeout on vlan10"))
    assert shape(sent) == [((ZHANG,), ()), ((ZHAO,), ())]
    assert wo.orders() == 1
    assert wo.data()["summary"] == "缺现象"


def test_serious_mark_in_subject_or_first_line_replaces_the_attempts(wo):
    sent = wo.submit(subject="【严重】故障处理-华夏银行-核心交换机宕机", body=fields(attempts=None))
    assert one(sent, to=ZHANG).subject.startswith("回执：故障处理工作单已登记")
    assert wo.data(GD1)["serious"] == "标题注明“严重”"
    assert "提交依据：明显严重的bug（标题注明“严重”）" in one(sent, to=ZHANG).text
    sent = wo.submit(subject="故障处理-华夏银行-全网断网", body=fields(attempts="1", extra="严重bug，全行业务中断！\n"))
    assert one(sent, to=ZHANG).subject.startswith("回执：故障处理工作单已登记")
    assert wo.data(GD2)["serious"] == "正文第一行注明“严重”"
    # 不严重 is not serious.
    sent = wo.submit(subject="故障处理-华夏银行-不严重的小问题", body=fields(attempts="1"))
    assert "不足3次" in sent[0].text
    sent = wo.submit(subject="故障处理-华夏银行-级别写否", body=fields(attempts=None, severity="否"))
    assert "缺少“尝试次数”" in sent[0].text
    assert wo.orders() == 2


# ---------------------------------------------------------------------------
# attachments
# ---------------------------------------------------------------------------


def test_attachments_kept_and_over_limit_noted(wo_small):
    wo = wo_small
    flow = wo.flow
    big = b"x" * 5000
    sent = wo.submit(body=fields(logs=None), files=(("vrrp.log", "text/plain", LOG),
                                                    ("full-dump.tar.gz", "application/gzip", big)))
    # No 日志 field: the attached files are the logs.
    ack = one(sent, to=ZHANG)
    assert "vrrp.log（" in ack.text
    assert "full-dump.tar.gz（4.9 KB）：超过 2.0 KB 的大小上限，只记录了文件名和大小，没有保存内容" in ack.text
    assert "注意：full-dump.tar.gz 超过附件大小上限（2.0 KB）" in ack.text
    # Only the kept file goes on to the 售前经理.
    assert one(sent, to=ZHAO).attachments == ["vrrp.log"]
    rows = flow.db("select filename, size, sha256 from attachments order by id")
    assert [(r[0], r[1], r[2] is not None) for r in rows] == [("vrrp.log", len(LOG), True),
                                                              ("full-dump.tar.gz", 5000, False)]
    assert flow.db("select count(*) from raw_mails where size = 5000") == [(0,)]
    assert {a for (a,) in flow.db("select action from audit where entity_id = :n and action like 'attachment%'",
                                  n=GD1)} == {"attachment_kept", "attachment_over_limit"}

    # More logs in a reply without a keyword: kept, nothing sent; the same file again is not duplicated.
    more = b"2026-11-20 10:05:00 ERROR vrrp: priority mismatch\n"
    approve = one(sent, to=ZHAO)
    assert wo.reply(approve, sender=ZHANG, body="补充一份抓包时的日志。",
                    files=(("vrrp-2.log", "text/plain", more), ("vrrp.log", "text/plain", LOG))) == []
    names = [r[0] for r in flow.db("select filename from attachments order by id")]
    assert names == ["vrrp.log", "full-dump.tar.gz", "vrrp-2.log"]
    review = wo.reply(approve, sender=ZHAO, body="同意")[0]
    assert review.attachments == ["vrrp.log", "vrrp-2.log"]
    assert flow.report("workorders")[0]["附件数"] == "3（1个超限未保存）"

    # The 研发经理 forwarding the submission (转发:, no thread headers) is part of the order's thread.
    assert flow.deliver(build(sender=ZHENG, subject="转发：故障处理-华夏银行-核心交换机VRRP主备频繁切换",
                              body="冯工先看一下", to=(FENG,), cc=(SYSTEM,))) == []
    assert wo.orders() == 1
    assert [n["from"] for n in wo.data()["thread"]] == ["张三", "郑经理"]


def test_same_submission_seen_twice_is_recorded_once(wo):
    raw = build(sender=ZHANG, subject="故障处理-华夏银行-核心交换机VRRP主备频繁切换", body=fields(),
                files=(("vrrp.log", "text/plain", LOG),), message_id="<wo-dup@client.example>")
    sent = wo.flow.deliver(raw, raw)
    assert shape(sent) == [((ZHANG,), ()), ((ZHAO,), ())]
    assert wo.orders() == 1
    assert wo.flow.db("select count(*) from attachments") == [(1,)]
