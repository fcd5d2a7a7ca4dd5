"""What each template is rendered with: one declared context per template.

A template ``NAME`` (``templates/NAME.txt.j2``) is rendered with the variables
its caller passes: the workflows (``ctx.reply`` / ``ctx.send`` add the mail's
``sender``, ``sender_name``, ``subject``, ``topic``, ``mail_date``, ``now``,
``system`` and ``ticket``), ``sla.py``, ``surveys.py``, ``reports/scheduled.py``
and ``pipeline.py`` (``too_large``). ``CONTEXTS`` below declares, per template,
exactly those variables with realistic sample values; ``check`` renders every
template in strict mode against them (``template_problems``), so a misspelt
variable, attribute or filter is reported, with the variables available, before
any mail arrives.

The declaration lives here, in code, rather than beside the templates: what a
template receives is decided by the program, not by the template, so a file an
admin could edit would only hide a mismatch. An admin needs no more than the
list of variables, which ``check`` prints with every problem. The test suite
checks that the callers pass exactly the declared variables
(tests/test_template_contexts.py and the recorder in tests/conftest.py).

A rule may point a purpose at another template (``[do.templates]``, e.g.
``ack = "my_report_ack"``); that template gets the variables of the purpose's
default template (``default_template``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .config import ConfigError, SystemConfig
from .directory import Person, Project
from .render import Renderer
from .rules.engine import Rule
from .store.models import Penalty, Survey, Ticket


ABSENT = object()  # in a variant: this caller does not pass the variable at all


@dataclass(frozen=True)
class Declared:
    """The variables a template gets: ``sample`` holds every one with a
    realistic value; each of ``variants`` overrides a few of them as another
    caller or situation does (no record yet, nothing forwarded...), so strict
    rendering takes the template's other branches too. A variant marks a
    variable that caller leaves out as ``ABSENT``."""
    sample: dict
    variants: tuple[dict, ...] = field(default=())

    @property
    def names(self) -> set[str]:
        return set(self.sample)

    @property
    def optional(self) -> set[str]:
        return {k for v in self.variants for k, x in v.items() if x is ABSENT}

    def samples(self) -> list[dict]:
        return [self.sample, *({k: x for k, x in {**self.sample, **v}.items() if x is not ABSENT} for v in self.variants)]


# --- sample data (what a real mail of each kind carries) ---

TZ = timezone(timedelta(hours=8))
NOW = datetime(2026, 11, 5, 14, 30, tzinfo=TZ)
SYSTEM = SystemConfig(address="tracking@company.example", name="工单系统")


def _person(name: str, email: str, *roles: str) -> Person:
    return Person(name=name, emails=(email,), roles=frozenset(roles))


ZHANG = _person("张三", "zhangsan@company.example", "售前")
WANG = _person("王五", "wangwu@company.example", "售前")
LI = _person("李四", "lisi@company.example", "销售")
QIAN = _person("钱经理", "qian@company.example", "技术支持部经理")
SUN = _person("孙总监", "sun@company.example", "技术总监")
PROJECT = Project(name="华夏银行", aliases=("华夏",), sales="李四", presales1="张三", presales2="王五",
                  customer="华夏银行股份有限公司")


def _ticket(kind: str, number: str, state: str, *, owner: str = "张三", **data) -> Ticket:
    return Ticket(id=1, token=number, kind=kind, number=number, project="华夏银行", owner=owner, state=state,
                  opened_at=NOW - timedelta(days=3), due_at=NOW + timedelta(days=2), closed_at=None, data=data)


REPORT = _ticket("report", "HB2026-0012", "recorded")
FOLLOWUP = _ticket("followup", "GJ2026-0003", "open", remaining="等待运营商回复专线故障原因")
COMPLAINT = _ticket("complaint", "TS2026-0002", "counted")
IMPROVEMENT = _ticket("improvement", "GJSQ2026-0004", "accepted", owner="郑经理")
BUG = _ticket("bug", "BUG2026-0007", "recorded")
LIXIANG = _ticket("project", "LX2026-0005", "recorded", owner="李四")
SUPPORT = _ticket("support_record", "ZC2026-0003", "recorded")
WORKORDER = _ticket("workorder", "GD2026-0009", "assigned", owner="冯工")
DOCUMENT = _ticket("document", "WD2026-0002", "returned")
SURVEY = Survey(id=1, ticket_id=1, to_addr="lisi@company.example", engineer="张三", status="sent",
                due_at=NOW - timedelta(days=1), sent_at=NOW - timedelta(days=1), score=None)


PING_RULE = Rule(name="ping", description="连通测试：回复一封回执", priority=0, subject=re.compile("^测试"),
                 sender_roles=(), recipient_roles=(), fields=[], required=(), allowed={}, require_when=[], specific=None,
                 validate_sender_roles=(), action="acknowledge", templates={"ack": "ping_ack"}, settings={},
                 source="rules/ping.toml")


def _mail(*, ticket, **variables) -> dict:
    """What ``ctx.reply`` / ``ctx.send`` add to a workflow's variables."""
    return {"sender": ZHANG, "sender_name": "张三", "subject": "客户沟通-华夏银行-张三", "topic": "客户沟通-华夏银行-张三",
            "mail_date": NOW, "now": NOW, "system": SYSTEM, **variables, "ticket": ticket}


LOGIN_CODE = "042917"  # a web login code (web_login_code)

# Values several templates share.
REPORT_LABELS = {"result": "沟通结果", "project": "项目名称", "contact": "沟通人", "method": "沟通方式",
                 "issue": "沟通的具体问题", "remaining": "遗留的问题描述", "followup": "跟进单编号"}
REPORT_VALUES = {"result": "问题遗留", "project": "华夏银行", "contact": "王经理（信息科）", "method": "电话",
                 "issue": "排查核心交换机端口告警", "remaining": "等待运营商回复专线故障原因"}
CLOSE_WORDS = ("已解决", "问题已解决")
# Unknown 标签：值 lines of a report, kept apart from its fields.
REPORT_EXTRAS = [("下次回访", "12月10日前电话回访王经理")]
BUG_LABELS = {"product": "产品", "version": "版本", "type": "问题类型", "description": "问题描述", "steps": "重现步骤",
              "environment": "环境", "project": "项目名称", "severity": "严重程度"}
BUG_VALUES = {"product": "安全审计系统", "version": "V5.2.1", "type": "缺陷", "description": "导出报表时中文文件名变成乱码",
              "steps": "1. 登录管理界面\n2. 报表→导出Excel\n3. 打开下载的文件", "environment": "Windows 10 + Chrome 120",
              "project": "华夏银行"}
IMPROVEMENT_LABELS = {"project": "项目名称", "product": "产品名称", "version": "当前版本", "requirement": "需求描述",
                      "reason": "申请原因", "expected": "期望版本/时间"}
IMPROVEMENT_VALUES = {"project": "华夏银行", "product": "安全审计系统", "version": "V5.2.1",
                      "requirement": "报表模块增加按分行批量导出Excel", "reason": "客户每月需向总行报送分行报表",
                      "expected": "2026年12月底前的定制版本"}
LIXIANG_LABELS = {"project": "项目名称", "customer": "客户", "presales1": "第一售前", "presales2": "第二售前",
                  "content": "支持内容要求"}
LIXIANG_VALUES = {"name": "华夏银行", "customer": "华夏银行股份有限公司", "sales": "李四", "presales1": "张三",
                  "presales2": "王五", "content": "核心网络改造的方案交流与测试环境搭建，11月底前完成POC"}
SUPPORT_LABELS = {"date": "支持日期", "content": "支持内容", "method": "支持方式", "contact": "沟通人",
                  "result": "处理结果", "remaining": "遗留的问题描述"}
SUPPORT_VALUES = {"date": "2026年11月5日", "method": "远程", "content": "核心交换机主控板故障，远程切换到备用主控并恢复业务",
                  "contact": "王经理（信息科）", "remaining": "等待厂商寄送备件"}
FILE = {"name": "switch.log", "size": "120 KB", "bytes": 122880, "kept": True, "limit": "10 MB"}
BIG_FILE = {"name": "抓包.pcap", "size": "35 MB", "bytes": 36700160, "kept": False, "limit": "10 MB"}
COUNTS = [{"rule": "monthly", "window": "2026年11月", "count": 2, "every": 2, "penalty": "当月绩效工资扣发1级"},
          {"rule": "permanent", "window": "累计", "count": 2, "every": 4, "penalty": "绩效工资永久降1级"}]
PENALTY_COMPLAINTS = [{"number": "TS2026-0001", "date": "2026-11-02 10:15", "project": "华夏银行", "complainant": "李四"},
                      {"number": "TS2026-0002", "date": "2026-11-05 14:30", "project": "东方电网", "complainant": "周七"}]
EVENTS = [{"event": "revoked", "penalty": "当月绩效工资扣发1级", "window": "2026年11月", "ordinal": 1}]
FILL_IN_REPORT = [("沟通结果", "问题遗留"), ("项目名称", "华夏银行"), ("沟通人", "王经理（信息科）"), ("沟通方式", "电话"),
                  ("沟通的具体问题", ""), ("遗留的问题描述", "")]
WORKORDER_VALUES = {"environment": "CentOS 7.9，安全审计系统 V5.2.1", "steps": "1. 导入审计策略\n2. 重启服务",
                    "symptom": "重启后策略丢失", "logs": "见附件 switch.log"}
WORKORDER_LABELS = {"project": "项目名称", "summary": "简述", "environment": "环境", "steps": "操作过程", "symptom": "现象",
                    "logs": "日志", "attempts": "尝试次数", "serious": "严重程度"}
SLA_ITEM = {"ticket": WORKORDER, "number": "GD2026-0009", "project": "华夏银行", "state": "已指派", "owner": "冯工",
            "clock": "“研发处理”环节", "kind": "escalation", "step": 1, "role": "研发经理", "target_hours": "16",
            "elapsed_hours": "18.5", "overdue_hours": "2.5", "started": "2026-11-03 09:00", "due": "2026-11-05 09:00",
            "working": True, "greeting": "郑经理", "person": "冯工", "level": 1, "levels": 3, "earlier": "",
            "unit": "个工作小时",
            # What stops the clock (sla.Sla.stop_words): here a step clock, left by two reply commands.
            "stop": {"by": "leave", "state": "已指派", "finals": "已关闭、已转定制",
                     "groups": [{"who": "研发负责人（冯工）", "commands": [{"text": "申请关闭", "when": ""},
                                                                   {"text": "转定制", "when": ""}]}],
                     "events": []}}
# The other ways a clock stops, for the templates' other branches.
SLA_STOPS = (
    {"by": "reply", "state": "", "finals": "已关闭", "groups": [], "events": []},
    {"by": "restart", "state": "", "finals": "已关闭", "groups": [], "events": []},
    {"by": "final", "state": "", "finals": "已关闭",
     "groups": [{"who": "负责人（张三）", "commands": [{"text": "已解决", "when": "处理中"}]}],
     "events": [{"text": "成功", "who": "系统"}]},
    {"by": "leave", "state": "待审批", "finals": "已关闭", "groups": [], "events": [{"text": "重新提交", "who": "故障提出人"}]},
)


def _workorder(**extra) -> dict:
    """What every workorder_* template gets (workflows/workorder.py ``_vars``)."""
    return _mail(ticket=WORKORDER, **{
        "record": WORKORDER, "project": "华夏银行", "summary": "重启后审计策略丢失", "raiser": "张三", "raiser_role": "第一售前",
        "rd_owner": "冯工", "values": WORKORDER_VALUES, "labels": WORKORDER_LABELS, "basis": "已尝试3次仍无法解决",
        "files": [FILE, BIG_FILE], "kept_files": [FILE], "over_limit": [BIG_FILE], "forward_files": True,
        "new_files": [FILE], "state": "已指派", "approvers": "赵六", "rd_managers": "郑经理", "opened": "2026-11-02 10:15",
        "actor": "郑经理", "rejection": {"by": "赵六", "role": "售前经理", "reason": "请先按手册检查策略文件权限",
                                        "detail": "检查 /etc/audit 目录属主"},
        "resolution": "修复策略持久化缺陷，已发布补丁 V5.2.1-p3", "custom_reason": "涉及存储结构调整，需按定制流程排期",
        "fill_in": [("项目名称", "华夏银行"), ("简述", "重启后审计策略丢失"), ("环境", ""), ("尝试次数", "3")],
        **extra})


DOC_ROUNDS = [{"n": 1, "at": "2026-11-03 10:00", "by": "张三", "files": "测试预案V1.docx", "decision": "驳回",
               "comment": "请补充性能测试的环境准备", "decided_by": "李四", "note": ""},
              {"n": 2, "at": "2026-11-05 14:30", "by": "张三", "files": "测试预案V2.docx", "decision": "", "comment": "",
               "decided_by": "", "note": "已补充性能测试环境"}]


def _document(**extra) -> dict:
    """What every document_* template gets (workflows/document.py ``_vars``)."""
    return _mail(ticket=DOCUMENT, **{
        "record": DOCUMENT, "project": "华夏银行", "doc": "测试预案", "doc_type": "测试预案", "deadline": "11月20日前完成",
        "author": "张三", "reviewer": "李四", "state": "驳回待重写", "holder": "张三", "version": 2, "rounds": DOC_ROUNDS,
        "files": [{"name": "测试预案V2.docx", "size": "120.0 KB", "kept": True}],
        "comment": "请补充性能测试的环境准备", "actor": "李四", "opened": "2026-11-03 10:00",
        "kind_label": "文档审核单", "verb": "审核", "yes": "通过", **extra})


IMPLEMENTATION = _ticket("implementation", "SS2026-0001", "tech_missing")


def _implementation(**extra) -> dict:
    """What every implementation_* template gets (workflows/implementation.py ``_vars``)."""
    return _mail(ticket=IMPLEMENTATION, **{
        "record": IMPLEMENTATION, "project": "华夏银行", "summary": "核心交换机割接", "sales": "李四", "engineer": "张三",
        "state": "待填写技术部分", "sales_part": [("实施内容", "核心交换机割接"), ("计划时间", "12月10日")],
        "tech_part": [("实施方案", "双机热备，分两次割接"), ("实施环境", ""), ("产品版本", ""), ("实施人员", "")],
        "tech_missing": ["实施环境", "产品版本"], "opened": "2026-11-03 10:00", **extra})


def _survey(**extra) -> dict:
    """A reply to a 回访 (workflows/survey.py ``common``)."""
    return _mail(ticket=FOLLOWUP, survey=SURVEY, kind_name="遗留问题跟进单", engineer="张三", party_name="李四", **extra)


# An open item of the scheduled report mails (processor/reports/scheduled.py _item).
REPORT_ITEM = {"number": "GJ2026-0003", "kind": "遗留问题跟进单", "project": "华夏银行", "owner": "张三",
               "summary": "等待运营商回复专线故障原因", "state": "处理中", "opened": "2026-11-02 10:15",
               "due": "2026-11-05 10:15", "due_at": None, "overdue": True, "overdue_text": "已逾期 3 天 2 小时",
               "as": "负责人"}


CONTEXTS: dict[str, Declared] = {
    "implementation_ack": Declared(_implementation(missed=["赵六"]), variants=({"missed": [], "summary": ""},)),
    "implementation_complete": Declared(_implementation(), variants=({"summary": "", "tech_missing": []},)),
    "implementation_rejected": Declared(_mail(ticket=None, problems=["缺少“实施地点”：请写一行“实施地点：……”。"],
                                              fill_in=[("实施内容", "核心交换机割接"), ("实施地点", "")])),
    "implementation_request": Declared(_implementation(), variants=({"summary": ""},)),
    "implementation_tech_missing": Declared(_implementation(problems=["缺少“产品版本”：请写一行“产品版本：……”。"]),
                                            variants=({"tech_missing": []},)),
    "confidential_outside": Declared(_mail(ticket=None, outside=["wang@huaxia-bank.example"],
                                           files=["华夏银行测试预案V2.docx"], managers="赵六"),
                                     variants=({"managers": ""},)),
    "document_outside": Declared(_document(outside=["wang@huaxia-bank.example"], doc="进场准备单",
                                               kind_label="实施文档确认单", verb="确认", yes="确认")),
    "document_ack": Declared(_document(resubmitted=False),
                             variants=({"resubmitted": True, "rounds": DOC_ROUNDS[:1], "deadline": "",
                                        "files": [{"name": "a.docx", "size": "30.0 MB", "kept": False}]},
                                       {"verb": "确认", "yes": "确认", "kind_label": "实施文档确认单"})),
    "document_approved": Declared(_document(), variants=({"rounds": [], "files": [], "doc_type": "技术文档"},
                                                         {"verb": "确认", "yes": "确认", "kind_label": "实施文档确认单"})),
    "document_rejected": Declared(_mail(ticket=None, problems=["邮件没有附件：请把要审核的文档“测试预案”作为附件一起发送。"],
                                        core="文档审核-华夏银行-测试预案", project="华夏银行", kind_label="文档审核单"),
                                  variants=({"project": "", "kind_label": "实施文档确认单"},)),
    "document_returned": Declared(_document()),
    "document_review": Declared(_document(resubmitted=True), variants=({"resubmitted": False, "files": []},
                                                                       {"resubmitted": False, "yes": "确认", "verb": "确认"})),
    "bug_ack": Declared(_mail(
        ticket=BUG, record=BUG, added_to=["卫测试"], added_cc=["王五"], to_roles="测试组", cc_roles="售前",
        values=BUG_VALUES, labels=BUG_LABELS, product="安全审计系统", summary="导出报表中文文件名乱码",
        date="2026-11-05 14:30"), variants=({"added_to": [], "added_cc": []},)),
    "bug_forward": Declared(_mail(
        ticket=BUG, record=BUG, body="版本：V5.2.1\n问题描述：导出报表时中文文件名变成乱码\n\n张三",
        original_subject="BUG反馈-安全审计系统-导出报表中文文件名乱码", original_from="张三 <zhangsan@company.example>",
        to_roles="测试组", cc_roles="售前", values=BUG_VALUES, labels=BUG_LABELS, product="安全审计系统",
        summary="导出报表中文文件名乱码", date="2026-11-05 14:30")),
    "bug_rejected": Declared(_mail(
        ticket=BUG, record=BUG, problems=["缺少“版本”：请写一行“版本：……”。", "“问题类型”为“缺陷”时，必须填写“重现步骤”。"],
        fill_in=[("产品", "安全审计系统"), ("版本", ""), ("问题类型", "缺陷")], product="安全审计系统",
        summary="导出报表中文文件名乱码")),
    "command_denied": Declared(_mail(
        ticket=WORKORDER, command="同意", state="待审批", who="售前经理（赵六）")),
    "command_hint": Declared(_mail(
        ticket=FOLLOWUP, line="已经解决了", state="处理中",
        hints=[{"text": "已解决", "who": "负责人（张三）"}, {"text": "驳回：原因", "who": "售前经理（赵六）"}])),
    "reply_does_nothing": Declared(_mail(ticket=None, original="月度汇总：2026年10月")),
    "command_needs_arg": Declared(_mail(ticket=WORKORDER, command="指派", what="研发人员的姓名")),
    "command_wrong_state": Declared(_mail(
        ticket=WORKORDER, command="同意", state="已指派",
        possible=[("申请关闭", "研发负责人"), ("转定制", "研发负责人")]), variants=({"possible": []},)),
    "complaint_ack": Declared(_mail(
        ticket=COMPLAINT, record=COMPLAINT, project=PROJECT, target=ZHANG, by_field=False, counts=COUNTS,
        forwarded_to=[QIAN, SUN], withdraw_words=("撤回", "撤回投诉")),
        variants=({"forwarded_to": [SUN], "by_field": True}, {"forwarded_to": []})),
    "complaint_forward": Declared(_mail(
        ticket=COMPLAINT, record=COMPLAINT, project=PROJECT, target=ZHANG, date="2026-11-05 14:30",
        body="张三与客户沟通后没有发送汇报邮件。\n\n李四", original_subject="投诉-华夏银行沟通问题",
        original_from="李四 <lisi@company.example>")),
    "complaint_not_counted": Declared(_mail(
        ticket=COMPLAINT, record=COMPLAINT, project=PROJECT, roles="销售", why="bad_target",
        problem="正文中的“被投诉人：张3”不在通讯录中"),
        variants=({"why": "not_sales", "problem": ABSENT}, {"why": "not_project_sales", "problem": ABSENT})),
    "complaint_notice": Declared(_mail(
        ticket=COMPLAINT, record=COMPLAINT, project=PROJECT, target=ZHANG, complainant=LI, counts=COUNTS,
        fired=[Penalty(engineer="张三", rule="monthly", window="2026-11", ordinal=1, threshold=2,
                       penalty="当月绩效工资扣发1级")],
        detail="11月3日现场调试后没有汇报", date="2026-11-05 14:30")),
    "complaint_penalty": Declared(_mail(
        ticket=COMPLAINT, engineer="张三", event="fired", penalty="当月绩效工资扣发1级", ordinal=1, threshold=2, every=2,
        window="2026年11月", complaints=PENALTY_COMPLAINTS, earlier=0, withdrawn=None),
        variants=({"earlier": 4},)),
    "complaint_penalty_corrected": Declared(_mail(
        ticket=COMPLAINT, engineer="张三", event="revoked", penalty="当月绩效工资扣发1级", ordinal=1, threshold=2, every=2,
        window="2026年11月", complaints=PENALTY_COMPLAINTS[:1], earlier=0, withdrawn=COMPLAINT),
        variants=({"event": "rebased"},)),
    "complaint_withdraw_denied": Declared(_mail(ticket=COMPLAINT, record=COMPLAINT, complainant="李四")),
    "complaint_withdrawn": Declared(_mail(
        ticket=COMPLAINT, record=COMPLAINT, target=ZHANG, complainant="李四", date="2026-11-05 14:30", counts=COUNTS,
        events=EVENTS + [{"event": "rebased", "penalty": "绩效工资永久降1级", "window": "累计", "ordinal": 1}])),
    "complaint_withdrawn_ack": Declared(_mail(
        ticket=COMPLAINT, record=COMPLAINT, target=ZHANG, counted=True, counts=COUNTS, events=EVENTS),
        variants=({"target": None}, {"counted": False, "target": None, "counts": [], "events": []})),
    "followup_done": Declared(_mail(
        ticket=FOLLOWUP, followup=FOLLOWUP, sales=LI, owner_name="张三", closer="张三", how="reply",
        report_number="HB2026-0012", report_date="2026-11-02", remaining="等待运营商回复专线故障原因",
        resolution="运营商更换光模块后专线恢复，连续观察两天无告警。", closing_report=None,
        opened="2026-11-02 10:15", closed="2026-11-05 14:30"),
        variants=({"closing_report": REPORT, "how": "report"},)),
    "followup_not_owner": Declared(_mail(
        ticket=FOLLOWUP, followup=FOLLOWUP, owner_name="张三", remaining="等待运营商回复专线故障原因")),
    "improvement_ack": Declared(_mail(
        ticket=IMPROVEMENT, record=IMPROVEMENT, project=PROJECT, notified_to="郑经理", notified_cc="赵六、李四", ordinal=2,
        sender_role="第一售前", values=IMPROVEMENT_VALUES, labels=IMPROVEMENT_LABELS, summary="批量导出",
        date="2026-11-05 14:30", quota={"count": 2, "managers": "赵六"}, rd_roles="研发或研发经理", limit="7",
        project_days="3.5")),
    "improvement_invalid": Declared(_mail(
        ticket=IMPROVEMENT, record=IMPROVEMENT, project=PROJECT, ordinal=3, quota=2, why="needs_manager", managers="赵六",
        manager_roles="售前经理", engineers="张三、王五", parties="第一售前或第二售前", manager_early=True, valid_count=2),
        variants=({"why": "not_party"},)),
    "improvement_notice": Declared(_mail(
        ticket=IMPROVEMENT, record=IMPROVEMENT, project=PROJECT, ordinal=1, sender_role="第一售前",
        body="项目名称：华夏银行\n需求描述：报表模块增加按分行批量导出Excel\n\n谢谢！", original_subject="产品改进-华夏银行-批量导出",
        original_from="张三 <zhangsan@company.example>", values=IMPROVEMENT_VALUES, labels=IMPROVEMENT_LABELS,
        summary="批量导出", date="2026-11-05 14:30", quota={"count": 2, "managers": "赵六"}, rd_roles="研发或研发经理",
        limit="7", project_days="0")),
    "improvement_over_limit": Declared(_mail(
        ticket=IMPROVEMENT, record=IMPROVEMENT, project_name="华夏银行", sales_name="李四", total="7.5", limit="7",
        requests=[{"number": "GJSQ2026-0001", "summary": "批量导出", "sender": "张三", "days": "4.5",
                   "entries": [{"days": "3", "by": "郑经理", "at": "2026-11-03"}, {"days": "1.5", "by": "陈工", "at": "2026-11-04"}]},
                  {"number": "GJSQ2026-0004", "summary": "单点登录", "sender": "王五", "days": "3",
                   "entries": [{"days": "3", "by": "冯工", "at": "2026-11-05"}]}])),
    "improvement_rd_ack": Declared(_mail(
        ticket=IMPROVEMENT, record=IMPROVEMENT, days="2.5", request_total="3", project_total="7.5", limit="7", over=True,
        notice={"to": "李四", "cc": "赵六"},
        requests=[{"number": "GJSQ2026-0001", "summary": "批量导出", "days": "4.5"},
                  {"number": "GJSQ2026-0004", "summary": "单点登录", "days": "3"}]),
        variants=({"notice": None}, {"notice": None, "over": False})),
    "improvement_rd_bad_value": Declared(_mail(
        ticket=IMPROVEMENT, record=IMPROVEMENT, arg="三天", line="研发用时：三天"), variants=({"arg": ""},)),
    "improvement_rd_denied": Declared(_mail(
        ticket=IMPROVEMENT, record=IMPROVEMENT, command="研发用时", arg="2天",
        allowed=[{"role": "研发", "names": "冯工、陈工"}, {"role": "研发经理", "names": ""}])),
    "improvement_rd_not_valid": Declared(_mail(ticket=IMPROVEMENT, record=IMPROVEMENT, state="无效", arg="1天")),
    "improvement_rejected": Declared(_mail(
        ticket=IMPROVEMENT, record=IMPROVEMENT, project=PROJECT, labels=IMPROVEMENT_LABELS,
        problems=["缺少“需求描述”：请写一行“需求描述：……”。"],
        fill_in=[("项目名称", "华夏银行"), ("产品名称", "安全审计系统"), ("需求描述", "")])),
    "lixiang_ack": Declared(_mail(
        ticket=LIXIANG, record=LIXIANG, project=PROJECT, values=LIXIANG_VALUES, labels=LIXIANG_LABELS, created=True,
        changes=[], previous_number="", sales=LI, presales1=ZHANG, presales2=WANG, dropped=[], reminders=2,
        date="2026-11-05 14:30"),
        variants=({"created": False, "previous_number": "LX2026-0001", "presales2": None, "dropped": ["王五"],
                   "values": {**LIXIANG_VALUES, "presales2": ""},
                   "changes": [{"label": "第二售前", "before": "王五", "after": "无"}]},
                  {"created": False, "previous_number": "LX2026-0001"})),
    "lixiang_directory": Declared(_mail(
        ticket=LIXIANG, record=LIXIANG, project=PROJECT, values=LIXIANG_VALUES, directory_file="directory.toml",
        differences=[{"label": "责任销售", "directory": "李四", "lixiang": "周七"}]), variants=({"differences": []},)),
    "lixiang_not_allowed": Declared(_mail(
        ticket=LIXIANG, record=LIXIANG, reason="role", project_name="华夏银行", roles="销售", filed_by="李四",
        record_number="LX2026-0001"),
        variants=({"reason": "role", "filed_by": ABSENT, "record_number": ABSENT},
                  {"reason": "other_sales", "roles": ABSENT})),
    "lixiang_notice": Declared(_mail(
        ticket=LIXIANG, record=LIXIANG, project=PROJECT, values=LIXIANG_VALUES, labels=LIXIANG_LABELS, created=True,
        changes=[], previous_number="", sales=LI, presales1=ZHANG, presales2=WANG, dropped=[], date="2026-11-05 14:30"),
        variants=({"created": False, "previous_number": "LX2026-0001", "presales2": None, "dropped": ["王五"],
                   "values": {**LIXIANG_VALUES, "presales2": ""},
                   "changes": [{"label": "第二售前", "before": "王五", "after": "无"}]},)),
    "lixiang_rejected": Declared(_mail(
        ticket=LIXIANG, record=LIXIANG, project_name="华夏银行",
        problems=["“第一售前”填写的“张3”不在通讯录中：请写通讯录中售前的姓名（张三、王五、赵六），每格只写一个人。"],
        fill_in=[("项目名称", "华夏银行"), ("客户", "华夏银行股份有限公司"), ("第一售前", "")])),
    "lixiang_reminder": Declared(_mail(
        ticket=REPORT, record=REPORT, project_name="南方航空", engineer=ZHANG, sales_names="李四", ordinal=1, threshold=3,
        fill_in=[("项目名称", "南方航空"), ("客户", ""), ("第一售前", "")]), variants=({"ordinal": 3},)),
    "lixiang_stop": Declared(_mail(
        ticket=REPORT, record=REPORT, project_name="南方航空", count=3, threshold=3, sales_names="李四",
        reminders=[{"ordinal": 1, "date": "2026-11-02 10:15", "to": "李四", "engineer": "张三"},
                   {"ordinal": 2, "date": "2026-11-04 09:40", "to": "李四", "engineer": "王五"}])),
    "ping_ack": Declared(_mail(
        ticket=None, rule=PING_RULE, why="主题以“测试”开头")),
    "report_ack": Declared(_mail(
        ticket=REPORT, record=REPORT, project=PROJECT, engineer=ZHANG, values=REPORT_VALUES, labels=REPORT_LABELS,
        result="问题遗留", date="2026-11-05 14:30", owner_name="张三", reporter_role="第一售前", is_open=True,
        followup=FOLLOWUP, followup_due="2026-11-08 14:30", close_words=CLOSE_WORDS, handover=False,
        forwarded_to=LI, mismatch={"kind": "other", "name": "王五", "sender": "张三", "recorded": "王五"},
        closed_followups=[FOLLOWUP], open_followups=[FOLLOWUP], more_open=12, extras=REPORT_EXTRAS),
        variants=({"mismatch": {"kind": "unknown", "name": "张3", "sender": "张三", "recorded": "张三"}, "handover": True},
                  {"mismatch": {"kind": "missing", "name": "", "sender": "张三", "recorded": "张三"}},
                  {"mismatch": None, "forwarded_to": None, "followup": None, "is_open": False, "closed_followups": [],
                   "open_followups": [], "more_open": 0, "result": "成功"})),
    "report_forward": Declared(_mail(
        ticket=REPORT, record=REPORT, project=PROJECT, engineer=ZHANG, sales=LI, values=REPORT_VALUES,
        labels=REPORT_LABELS, result="问题遗留", date="2026-11-05 14:30", owner_name="张三", reporter_role="第一售前",
        is_open=True, followup_due="2026-11-08 14:30", close_words=CLOSE_WORDS,
        body="沟通结果：问题遗留\n项目名称：华夏银行\n\n张三", original_subject="客户沟通-华夏银行-张三",
        original_from="张三 <zhangsan@company.example>", extras=REPORT_EXTRAS)),
    "report_handover": Declared(_mail(
        ticket=REPORT, record=REPORT, project=PROJECT, engineer=WANG, values=REPORT_VALUES, labels=REPORT_LABELS,
        result="问题遗留", date="2026-11-05 14:30", owner_name="张三", reporter_role="非本项目售前", is_open=True,
        followup=FOLLOWUP, followup_due="2026-11-08 14:30", close_words=CLOSE_WORDS, extras=REPORT_EXTRAS),
        variants=({"followup": None, "is_open": False, "result": "成功", "reporter_role": "第二售前"},)),
    "report_monthly": Declared(dict(
        system=SYSTEM, now="2026-12-01 08:00", month="2026-11", month_label="2026年11月", first_day="2026-11-01",
        last_day="2026-11-30", period="统计期间：2026年11月（2026-11-01 至 2026-11-30）",
        filename="项目跟踪表-2026-11.xlsx", pdf_filename="月度报表-2026-11.pdf",
        attached=["项目跟踪表-2026-11.xlsx", "月度报表-2026-11.pdf"], recipients=["钱经理", "孙总监"],
        engineer_sheets=["张三", "王五"], extra_sheets=["投诉", "超时"], tracking_total=12,
        figures={"reports": 12, "left": 2, "followups": 1, "followups_overdue": 1, "workorders": 1,
                 "workorders_overdue": 0, "complaints": 2, "breaches": 1, "surveys": 3, "satisfaction": "4.33",
                 "unregistered": 1},
        most_overdue=[REPORT_ITEM],
        tracking=[{"name": "张三", "rows": 8, "ok": 6, "open": 2}, {"name": "王五", "rows": 0, "ok": 0, "open": 0}],
        complaints=[{"name": "张三", "counted": 2, "withdrawn": 1, "other": 1, "numbers": "TS2026-0001、TS2026-0002",
                     "penalties": "当月绩效工资扣发1级"}],
        sla_breaches=[{"name": "冯工", "count": 1, "detail": "研发处理 1"}],
        lixiang=[{"date": "2026-11-04", "project": "南方航空", "engineer": "张三", "ordinal": 1}],
        unregistered=[{"project": "南方航空", "engineer": "张三", "count": 1, "last": 1}],
        satisfaction=[{"name": "张三", "count": 3, "average": "4.33", "lowest": 3}],
        followups=[REPORT_ITEM],
        workorders=[{**REPORT_ITEM, "number": "GD2026-0009", "kind": "故障处理工作单", "summary": "重启后审计策略丢失",
                     "state": "已指派", "raiser": "张三", "rd_owner": "冯工", "overdue": False, "overdue_text": "还剩 3 小时"}],
        confidential=[{"date": "2026-11-05 14:30", "sender": "张三", "outside": "wang@huaxia-bank.example",
                       "files": "华夏银行实施预案V1.docx", "subject": "文档审核-华夏银行-实施预案"}],
        summary={"headers": ["售前"], "rows": [["张三"]], "totals": ["合计"]},
        trend={"headers": ["月份"], "rows": [["2026年11月"]]}),
        variants=({"tracking": [], "complaints": [], "sla_breaches": [], "lixiang": [], "satisfaction": [], "workorders": [],
                   "followups": [], "most_overdue": [], "unregistered": [], "confidential": [], "figures": {
                       "reports": 0, "left": 0, "followups": 0, "followups_overdue": 0, "workorders": 0,
                       "workorders_overdue": 0, "complaints": 0, "breaches": 0, "surveys": 0, "satisfaction": "",
                       "unregistered": 0}},
                  {"followups": [REPORT_ITEM] * 11, "workorders": [{**REPORT_ITEM, "raiser": "张三", "rd_owner": ""}] * 11})),
    "report_not_counted": Declared(_mail(ticket=REPORT, record=REPORT, roles="售前")),
    "report_rejected": Declared(_mail(
        ticket=REPORT, record=REPORT, project=PROJECT,
        problems=["“沟通的具体问题”太笼统（“已处理”）：请写明解决了什么。"], fill_in=FILL_IN_REPORT)),
    "report_weekly": Declared(dict(
        system=SYSTEM, now="2026-11-09 08:00", name="张三", week="2026-W46", week_label="11月9日那一周", count=2,
        items=[REPORT_ITEM, {**REPORT_ITEM, "number": "GD2026-0009", "kind": "故障处理工作单",
                                                  "as": "故障提出人", "due": "", "overdue": False, "overdue_text": ""}],
        followups=[REPORT_ITEM],
        workorders=[{**REPORT_ITEM, "number": "GD2026-0009", "kind": "故障处理工作单", "as": "故障提出人"}],
        surveys=[{"number": "GJ2026-0001", "project": "东方电网", "sent": "2026-11-06 09:00", "to": "lisi@company.example"}]),
        variants=({"items": [], "followups": [], "workorders": [], "surveys": []},)),
    "sla_digest": Declared(dict(
        system=SYSTEM, now=NOW, count=2, greeting="郑经理",
        items=[SLA_ITEM, {**SLA_ITEM, "number": "GJ2026-0003", "kind": "prebreach", "clock": "遗留问题处理"}]),
        variants=tuple({"items": [{**SLA_ITEM, "stop": stop}]} for stop in SLA_STOPS)),
    "sla_escalation": Declared(dict(system=SYSTEM, **SLA_ITEM), variants=(
        {"step": 2, "level": 2, "earlier": "售前经理", "working": False, "project": ""}, {"step": 12, "level": 3},
        *({"stop": stop} for stop in SLA_STOPS))),
    "sla_prebreach": Declared(dict(system=SYSTEM, **{**SLA_ITEM, "kind": "prebreach", "overdue_hours": "0"}),
                              variants=tuple({"stop": stop} for stop in SLA_STOPS)),
    "support_record_ack": Declared(_mail(
        ticket=SUPPORT, record=SUPPORT, project=PROJECT, engineer=WANG, values=SUPPORT_VALUES, labels=SUPPORT_LABELS,
        support_date="2026-11-05", method="第二售前支持记录（远程）", result="问题遗留", owner_name="张三",
        forwarded="赵六", mismatch="王5"), variants=({"forwarded": "", "mismatch": "", "result": ""},)),
    "support_record_forward": Declared(_mail(
        ticket=SUPPORT, record=SUPPORT, project=PROJECT, engineer=WANG, values=SUPPORT_VALUES, labels=SUPPORT_LABELS,
        support_date="2026-11-05", method="第二售前支持记录（远程）", result="", owner_name="张三", mismatch="",
        body="支持日期：2026年11月5日\n支持方式：远程\n\n王五", original_subject="支持记录-华夏银行-王五",
        original_from="王五 <wangwu@company.example>")),
    "support_record_not_allowed": Declared(_mail(ticket=SUPPORT, record=SUPPORT, project=PROJECT, reason="presales1"),
                                           variants=({"reason": "no_presales2"}, {"reason": "not_presales2"})),
    "support_record_notice": Declared(_mail(
        ticket=SUPPORT, record=SUPPORT, project=PROJECT, engineer=WANG, values=SUPPORT_VALUES, labels=SUPPORT_LABELS,
        support_date="2026-11-05", method="第二售前支持记录（远程）", result="问题遗留", owner_name="张三", mismatch="")),
    "support_record_rejected": Declared(_mail(
        ticket=SUPPORT, record=SUPPORT, project=PROJECT, problems=["缺少“支持日期”：请写一行“支持日期：……”。"],
        fill_in=[("支持日期", ""), ("支持内容", "核心交换机主控板故障，远程切换到备用主控并恢复业务")])),
    "survey_already": Declared(_survey(answered="2026-11-06 09:30", score=5, managers="赵六"),
                               variants=({"managers": ""},)),
    "survey_invalid": Declared(_survey(given="6")),
    "survey_low": Declared(_survey(
        score=1, comment="补丁装完后告警又出现了，希望尽快处理。", reopened="处理中", owner_name="王五",
        summary="等待运营商回复专线故障原因", threshold=2, sent="2026-11-06 09:00"),
        variants=({"reopened": "", "comment": "", "summary": "", "owner_name": "张三"},)),
    "survey_not_party": Declared(_survey()),
    "survey_request": Declared(dict(
        system=SYSTEM, now=NOW, ticket=FOLLOWUP, survey=SURVEY, kind_name="遗留问题跟进单", to_name="李四", engineer="张三",
        summary="等待运营商回复专线故障原因", closed="2026-11-05 14:30", threshold=2, reopen=True,
        party_role="责任销售", opened_by="张三", opened="2026-11-03"),
        variants=({"closed": "", "summary": "", "reopen": False, "opened_by": "", "opened": ""},)),
    "survey_thanks": Declared(_survey(score=5, comment="处理很及时，谢谢张工。", low=False, reopened=""),
                              variants=({"score": 2, "low": True, "reopened": "处理中"}, {"score": 2, "low": True})),
    "too_large": Declared(dict(system=SYSTEM, subject="日志-华夏银行-核心交换机", size=52428800, limit=26214400)),
    "did_you_mean": Declared(_mail(
        ticket=REPORT, record=REPORT, kind_label="汇报邮件", project_name="华夏银", suggested="华夏银行",
        yes_word="是", no_word="不是", problems=["缺少“沟通方式”：请写一行“沟通方式：……”。"], reminds_sales=True),
        variants=({"problems": []}, {"kind_label": "投诉邮件", "reminds_sales": False})),
    "unreadable": Declared(dict(system=SYSTEM, sender_name="张三", subject="客户沟通-华夏银行-张三",
                                why="正文只在 Outlook 的 winmail.dat 附件里（RTF 格式），系统无法读取", rule_label="客户沟通汇报",
                                **{"code": "unreadable_tnef"}),
                           variants=({"rule_label": ""},
                                     {"code": "unreadable_signature_only", "why": "正文里只有签名，签名之上没有内容"})),
    "unknown_project": Declared(_mail(
        ticket=REPORT, record=REPORT, kind_label="汇报邮件", project_name="华夏银", candidates=["华夏银行", "华夏证券"],
        problems=["缺少“沟通方式”：请写一行“沟通方式：……”。"], fill_in=FILL_IN_REPORT),
        variants=({"candidates": [], "problems": [], "fill_in": []},)),
    "workorder_ack": Declared(_workorder(), variants=({"over_limit": [], "files": [], "rd_owner": "", "basis": ""},)),
    "workorder_approve": Declared(_workorder(resubmitted=False), variants=({"resubmitted": True},)),
    "workorder_assigned": Declared(_workorder(note="优先处理，客户下周验收", previous_owner="陈工"),
                                   variants=({"note": "", "previous_owner": ""},)),
    "workorder_bad_assignee": Declared(_workorder(problem="“指派：小冯”不是通讯录中的研发人员", candidates=["冯工", "陈工"]),
                                       variants=({"candidates": []},)),
    "workorder_close_request": Declared(_workorder()),
    "workorder_closed": Declared(_workorder(closed="2026-11-05 14:30")),
    "workorder_custom": Declared(_workorder()),
    "workorder_custom_declined": Declared(_workorder(reason="客户不接受定制排期，请继续排查")),
    "workorder_custom_request": Declared(_workorder()),
    "workorder_rejected": Declared(_mail(
        ticket=WORKORDER, record=WORKORDER, core="故障处理-华夏银行-重启后审计策略丢失", project="华夏银行", new_mail=False,
        min_attempts=3, problems=["缺少“现象”：请写一行“现象：……”。"], files=[FILE],
        fill_in=[("项目名称", "华夏银行"), ("现象", "")]),
        variants=({"record": None, "ticket": None, "new_mail": True, "files": []},)),
    "workorder_reopened": Declared(_workorder(reason="客户现场重启后策略仍然丢失")),
    "workorder_returned": Declared(_workorder()),
    "workorder_review": Declared(_workorder(note="已确认售前检查过配置")),
    # The web view's login code (processor/web/app.py) and the daemon's health alerts (processor/alerts.py).
    "web_login_code": Declared(dict(system=SYSTEM, now=NOW, name="钱经理", login_code=LOGIN_CODE, minutes="10",
                                    expires="2026-11-05 14:40", url="https://tickets.company.example")),
    "health_alert": Declared(dict(system=SYSTEM, now=NOW, problem="stall", recovered=False, since="2026-11-05 14:00",
                                  lines=["邮箱 support：30 分钟没有成功收取邮件（IMAP 服务器连接失败）"],
                                  url="https://tickets.company.example"),
                             variants=({"problem": "backlog", "recovered": True, "lines": []},)),
}


# --- checking ---

def default_template(action: str, role: str) -> str | None:
    """The template an action uses for ``role`` when its rule does not name
    one: ``<kind>_<role>`` (record_report's ``ack`` is ``report_ack``), or the
    role itself for the shared ones (``unknown_project``, ``followup_done``)."""
    kind = "ping" if action == "acknowledge" else action.removeprefix("record_")
    for name in (f"{kind}_{role}", role):
        if name in CONTEXTS:
            return name
    return None


def mismatch(name: str, passed: set[str]) -> tuple[set[str], set[str]]:
    """(passed but not declared, declared but not passed) for one render call."""
    d = CONTEXTS[name]
    return passed - d.names, d.names - d.optional - passed


def _rule_templates(rules_folder) -> dict[str, set[str]]:
    """Template named by a rule's [do.templates] -> the declared templates
    whose variables it gets. Rule errors are reported by the rules check."""
    from .rules.engine import load_rules
    from .workflows import ACTIONS
    try:
        rules = load_rules(Path(rules_folder), set(ACTIONS))
    except ConfigError:
        return {}
    out: dict[str, set[str]] = {}
    for rule in rules.rules:
        for role, name in rule.templates.items():
            default = default_template(rule.action, role)
            if default is not None and name != default:
                out.setdefault(name, set()).add(default)
    return out


def template_problems(folder, rules=None) -> list[tuple[str, str, str]]:
    """Every problem of the templates in ``folder``, as (file, key, reason):
    syntax errors, unknown filters, a variable, attribute or item a template
    uses that its callers do not pass (strict rendering of every template with
    its declared context), a template with no declared context and a declared
    one missing. ``rules``: the rules folder, for templates named in
    [do.templates]."""
    try:
        r = Renderer(folder)
    except ConfigError as e:
        return e.problems
    probs = r.check()
    broken = {f for f, _, _ in probs}
    used = _rule_templates(rules) if rules is not None else {}
    for name in r.names():
        declared = ([name] if name in CONTEXTS else []) + sorted(used.get(name, set()) - {name})
        if not declared:
            probs.append((str(r.folder / f"{name}.txt.j2"), "",
                          "系统不会用到这个模板（没有声明它的变量，也没有规则在 [do.templates] 中引用它）："
                          "如果是为某条规则新写的模板，请在该规则的 [do.templates] 中写上 用途 = \"" + name + "\"；否则删除这个文件"))
            continue
        if broken & {str(p) for p in r.files(name)}:
            continue  # one line per problem: the syntax error is reported already
        for d in declared:
            probs += r.strict_problems(name, CONTEXTS[d].samples(), passed=CONTEXTS[d].names)
    for name in sorted(CONTEXTS):
        if not r.exists(name):
            probs.append((str(r.folder / f"{name}.txt.j2"), "",
                          f"缺少这个模板：系统会用它发邮件。请从程序自带的 templates/ 中复制 {name}.txt.j2；"
                          f"可用的变量：{'、'.join(sorted(CONTEXTS[name].names))}"))
    return sorted(set(probs), key=lambda p: (p[0], _line(p[1]), p[2]))


def _line(key: str) -> int:
    m = re.search(r"\d+", key)
    return int(m.group()) if m else 0
