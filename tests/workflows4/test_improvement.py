"""Convention 5, 产品改进申请单 产品改进-<项目>-<简述> (art. 19-22): who may
send the n-th request of a project, numbering, the notice to R&D, 研发用时
entries and the one-time over-limit notice, end to end through real Dovecot
and SMTP servers, on SQLite and PostgreSQL."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conventions.helpers import LI, NAMES, SYSTEM, WANG, ZHANG, ZHAO, ZHOU, Flow, Sent, one, shape
from support import ROOT, make_mail, run, write_config

ZHENG = "zheng@company.example"  # 郑经理 研发经理
FENG = "feng@company.example"  # 冯工 研发
CHEN = "chen@company.example"  # 陈工 研发
ALL_NAMES = {**NAMES, ZHENG: "郑经理", FENG: "冯工", CHEN: "陈工"}


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
    assert (out / "improvement.toml").is_file()
    return out


def make_flow(tmp_path, imap_server, smtp_server, capsys, db_url, extra: str = "") -> Flow:
    f = Flow(tmp_path, imap_server, smtp_server, capsys, db_url=db_url, extra=extra)
    f.cfg = write_config(tmp_path, imap=imap_server, smtp=smtp_server, db_url=db_url, extra=extra,
                         rules_dir=loadable_rules(tmp_path))
    return f


@pytest.fixture
def flow(tmp_path, imap_server, smtp_server, capsys, db_url):
    return make_flow(tmp_path, imap_server, smtp_server, capsys, db_url)


def request_body(*, project="华夏银行", requirement="报表模块增加按分行批量导出Excel", version="V5.2.1",
                 expected="2026年12月底前的定制版本", reason="客户每月需向总行报送分行报表") -> str:
    lines = [f"项目名称：{project}", "产品名称：安全审计系统"]
    if version is not None:
        lines.append(f"当前版本：{version}")
    if requirement is not None:
        lines.append(f"需求描述：{requirement}")
    lines.append(f"申请原因：{reason}")
    if expected is not None:
        lines.append(f"期望版本/时间：{expected}")
    return "\n".join(lines) + "\n\n谢谢！\n"


def submit(flow, *, sender=ZHANG, project="华夏银行", summary="批量导出", body=None, **kw) -> list[Sent]:
    raw = make_mail(sender=sender, sender_name=ALL_NAMES.get(sender, sender), to=kw.pop("to", (SYSTEM,)),
                    cc=kw.pop("cc", ()), subject=f"产品改进-{project}-{summary}",
                    body=body if body is not None else request_body(project=project), **kw)
    return flow.deliver(raw)


def answer_raw(mail: Sent, *, sender: str, body: str, **kw) -> bytes:
    """A reply in the thread of a mail the system sent, To the system."""
    return make_mail(sender=sender, sender_name=ALL_NAMES.get(sender, sender), to=(SYSTEM,),
                     subject="回复：" + mail.subject, body=body, in_reply_to=mail.message_id, **kw)


def answer(flow, mail: Sent, *, sender: str, body: str, **kw) -> list[Sent]:
    return flow.deliver(answer_raw(mail, sender=sender, body=body, **kw))


def improvements(flow) -> list[dict]:
    return flow.report("improvements")


# -- who may send it (art. 21) -------------------------------------------------

def test_first_from_first_presales_and_second_from_second_presales_are_accepted(flow):
    sent = submit(flow, sender=ZHANG, summary="批量导出")
    # The receipt to the sender; the request To the 研发经理, CC 售前经理 + 责任销售.
    assert shape(sent) == [((ZHANG,), ()), ((ZHENG,), (LI, ZHAO))]
    ack = one(sent, to=ZHANG)
    assert ack.subject == "回执：产品改进申请单已受理 GJSQ2026-0001（华夏银行第1次申请） [#GJSQ2026-0001]"
    assert "这是华夏银行项目第 1 次有效的产品改进申请（发送人：张三，第一售前）" in ack.text
    assert "需求描述：报表模块增加按分行批量导出Excel" in ack.text
    assert "系统已把申请单发给郑经理，并抄送赵六、李四" in ack.text
    assert "第二十一条" not in ack.text  # the remark about the 3rd request comes with the 2nd
    notice = one(sent, to=ZHENG)
    assert notice.subject == "产品改进申请单 GJSQ2026-0001：华夏银行-批量导出（第1次申请） [#GJSQ2026-0001]"
    assert notice.reply_to == f"{ZHANG}, {SYSTEM}"
    assert notice.attachments == ["original.eml"]
    assert "张三（华夏银行项目第一售前）提交了产品改进申请单" in notice.text
    assert "责任销售：李四" in notice.text and "当前版本：V5.2.1" in notice.text
    assert "期望版本/时间：2026年12月底前的定制版本" in notice.text
    assert "第一行写净研发用时，例如“研发用时：2天”" in notice.text
    assert "研发用时只能由研发或研发经理填写" in notice.text

    sent = submit(flow, sender=WANG, summary="单点登录")
    assert shape(sent) == [((WANG,), ()), ((ZHENG,), (LI, ZHAO))]
    ack = one(sent, to=WANG)
    assert ack.subject == "回执：产品改进申请单已受理 GJSQ2026-0002（华夏银行第2次申请） [#GJSQ2026-0002]"
    assert "第 2 次有效的产品改进申请（发送人：王五，第二售前）" in ack.text
    assert "第 3 次及以后），须由销售、责任售前与售前经理沟通，由售前经理（赵六）发出申请单；售前发出的无效" in ack.text
    assert "王五（华夏银行项目第二售前）" in one(sent, to=ZHENG).text

    t1, t2 = flow.ticket("GJSQ2026-0001"), flow.ticket("GJSQ2026-0002")
    assert (t1["kind"], t1["state"], t1["project"], t1["owner"]) == ("improvement", "accepted", "华夏银行", "张三")
    assert (t1["data"]["ordinal"], t1["data"]["sender_role"], t1["data"]["summary"]) == (1, "第一售前", "批量导出")
    assert t1["data"]["values"]["requirement"] == "报表模块增加按分行批量导出Excel"
    assert t1["data"]["rd_entries"] == [] and t1["data"]["notified"] == ["郑经理", "赵六", "李四"]
    assert (t2["state"], t2["data"]["ordinal"], t2["data"]["sender_role"]) == ("accepted", 2, "第二售前")


def test_third_from_presales_is_invalid_and_third_from_manager_is_accepted(flow):
    submit(flow, sender=ZHANG, summary="批量导出")
    submit(flow, sender=WANG, summary="单点登录")

    sent = submit(flow, sender=ZHANG, summary="审计日志")
    assert shape(sent) == [((ZHANG,), ())]  # only the sender hears of it: nothing goes to R&D
    inv = sent[0]
    assert inv.subject == "产品改进申请单无效：产品改进-华夏银行-审计日志 [#GJSQ2026-0003]"
    assert "已登记为“无效”：没有发给研发，也不计入华夏银行项目的申请次数" in inv.text
    assert "华夏银行项目已有 2 次有效的产品改进申请" in inv.text
    assert "第 3 次及以后的申请须由销售、责任售前与售前经理沟通，由售前经理发出；售前发出的无效" in inv.text
    assert "可以发送的人：售前经理赵六" in inv.text
    t = flow.ticket("GJSQ2026-0003")
    assert (t["state"], t["project"], t["data"]["reason"], t["data"]["ordinal_requested"]) == (
        "invalid", "华夏银行", "needs_manager", 3)

    # The invalid one is not counted: the manager's request is the 3rd.
    sent = submit(flow, sender=ZHAO, summary="审计日志")
    assert shape(sent) == [((ZHAO,), ()), ((ZHENG,), (LI,))]  # the manager sent it: not CC'd again
    ack = one(sent, to=ZHAO)
    assert ack.subject == "回执：产品改进申请单已受理 GJSQ2026-0004（华夏银行第3次申请） [#GJSQ2026-0004]"
    assert "（发送人：赵六，售前经理）" in ack.text
    assert "赵六（华夏银行项目售前经理）提交了产品改进申请单" in one(sent, to=ZHENG).text
    assert flow.ticket("GJSQ2026-0004")["data"]["ordinal"] == 3

    # A 研发用时 on the invalid request is not recorded.
    sent = answer(flow, inv, sender=FENG, body="研发用时：1天")
    assert shape(sent) == [((FENG,), ())]
    assert sent[0].subject.startswith("研发用时未记录：申请单 GJSQ2026-0003 为“无效”")
    assert flow.ticket("GJSQ2026-0003")["data"].get("rd_entries") is None

    rows = improvements(flow)
    assert rows == [{"项目": "华夏银行", "有效申请": "3", "无效申请": "1", "退回": "0", "未立项": "0",
                     "研发用时（天）": "0", "上限（天）": "7", "超过上限": "", "已通知销售": "",
                     "有效申请单": "GJSQ2026-0001、GJSQ2026-0002、GJSQ2026-0004"}]


def test_request_from_sales_is_invalid_and_not_counted(flow):
    sent = submit(flow, sender=LI, summary="批量导出")
    assert shape(sent) == [((LI,), ())]
    inv = sent[0]
    assert inv.subject == "产品改进申请单无效：产品改进-华夏银行-批量导出 [#GJSQ2026-0001]"
    assert "项目的前 2 次产品改进申请由本项目的第一售前或第二售前与销售沟通后发出，也可以由售前经理发出" in inv.text
    assert "您不是华夏银行项目的第一售前或第二售前" in inv.text
    assert "可以发送的人：张三、王五，或售前经理赵六" in inv.text
    assert flow.ticket("GJSQ2026-0001")["state"] == "invalid"
    assert flow.ticket("GJSQ2026-0001")["data"]["reason"] == "not_engineer"

    # 张三 of 东方电网 is only its 第二售前 and 周七 its sales: 王五's request there is its first.
    sent = submit(flow, sender=WANG, project="东方电网", summary="告警推送")
    assert shape(sent) == [((WANG,), ()), ((ZHENG,), (ZHAO, ZHOU))]
    assert "东方电网项目第 1 次有效的产品改进申请（发送人：王五，第一售前）" in one(sent, to=WANG).text
    # The sales' invalid request did not use up one of 华夏银行's two.
    sent = submit(flow, sender=ZHANG, summary="批量导出")
    assert "GJSQ2026-0003（华夏银行第1次申请）" in one(sent, to=ZHANG).subject
    assert improvements(flow) == [
        {"项目": "东方电网", "有效申请": "1", "无效申请": "0", "退回": "0", "未立项": "0", "研发用时（天）": "0",
         "上限（天）": "7", "超过上限": "", "已通知销售": "", "有效申请单": "GJSQ2026-0002"},
        {"项目": "华夏银行", "有效申请": "1", "无效申请": "1", "退回": "0", "未立项": "0", "研发用时（天）": "0",
         "上限（天）": "7", "超过上限": "", "已通知销售": "", "有效申请单": "GJSQ2026-0003"}]


def test_missing_fields_are_rejected_with_a_fill_in_body_and_a_reply_resubmits(flow):
    sent = submit(flow, body=request_body(requirement=None, expected=None))
    assert shape(sent) == [((ZHANG,), ())]
    rej = sent[0]
    assert rej.subject == "产品改进申请单未通过检查，请修改后重发：产品改进-华夏银行-批量导出 [#GJSQ2026-0001]"
    assert "缺少“需求描述”：请写一行“需求描述：……”。" in rej.text
    assert "缺少“期望版本/时间”：请写一行“期望版本/时间：……”。" in rej.text
    assert "当前版本：V5.2.1\n" in rej.text and "需求描述：\n" in rej.text and "项目名称：华夏银行\n" in rej.text
    assert flow.ticket("GJSQ2026-0001")["state"] == "rejected"

    # Vague requirement: rejected too, and it still does not count.
    sent = submit(flow, body=request_body(requirement="如题"))
    assert "“需求描述”写得太笼统（“如题”）" in sent[0].text

    sent = answer(flow, rej, sender=ZHANG, body=request_body())
    assert shape(sent) == [((ZHANG,), ()), ((ZHENG,), (LI, ZHAO))]
    assert "GJSQ2026-0003（华夏银行第1次申请）" in one(sent, to=ZHANG).subject
    t = flow.ticket("GJSQ2026-0003")
    assert (t["state"], t["data"]["resubmits"]) == ("accepted", "GJSQ2026-0001")
    assert flow.ticket("GJSQ2026-0001")["data"]["resubmitted_as"] == "GJSQ2026-0003"
    assert improvements(flow)[0]["退回"] == "2"


def test_unknown_project_is_unregistered(flow):
    sent = submit(flow, project="南方航空", summary="批量导出", body=request_body(project="南方航空"))
    assert shape(sent) == [((ZHANG,), ())]
    assert sent[0].subject == "项目不存在，产品改进申请单未记录：产品改进-南方航空-批量导出 [#GJSQ2026-0001]"
    assert flow.ticket("GJSQ2026-0001")["state"] == "unregistered"


def test_mistyped_project_is_asked_about_and_recorded_on_yes(flow):
    sent = submit(flow, project="华夏银", summary="批量导出")
    assert shape(sent) == [((ZHANG,), ())]  # only the question: R&D hears nothing yet
    q = sent[0]
    assert q.subject == "您是不是指“华夏银行”？产品改进申请单暂未记录：产品改进-华夏银-批量导出 [#GJSQ2026-0001]"
    assert "项目“华夏银”在项目通讯录中找不到。您是不是指“华夏银行”？" in q.text
    assert flow.ticket("GJSQ2026-0001")["state"] == "unconfirmed"
    # Only the sender can answer it: 李四's 是 is a note.
    assert answer(flow, q, sender=LI, body="是") == []
    assert flow.ticket("GJSQ2026-0001")["state"] == "unconfirmed"
    sent = answer(flow, q, sender=ZHANG, body="是")
    assert one(sent, to=ZHENG).subject.startswith("产品改进申请单")
    t = flow.ticket("GJSQ2026-0002")
    assert (t["state"], t["project"], t["data"]["resubmits"]) == ("accepted", "华夏银行", "GJSQ2026-0001")
    assert [(r["项目"], r["有效申请"], r["未立项"]) for r in improvements(flow)] == [("华夏银行", "1", "0")]


def test_mistyped_project_answered_no_is_unregistered(flow):
    q = submit(flow, project="华夏银", summary="批量导出")[0]
    sent = answer(flow, q, sender=ZHANG, body="不是")
    assert shape(sent) == [((ZHANG,), ())]
    assert sent[0].subject.startswith("项目不存在，产品改进申请单未记录")
    assert flow.ticket("GJSQ2026-0002")["state"] == "unregistered"


# -- R&D time (art. 22) ----------------------------------------------------------

def test_rd_time_accumulates_over_a_projects_requests_and_crossing_7_days_notifies_once(flow, tmp_path):
    n1 = one(submit(flow, sender=ZHANG, summary="批量导出"), to=ZHENG)
    n2 = one(submit(flow, sender=WANG, summary="单点登录"), to=ZHENG)

    sent = answer(flow, n1, sender=ZHENG, body="研发用时：3天\n\n定制版本已出。")
    assert shape(sent) == [((ZHENG,), ())]
    assert sent[0].subject == "研发用时已记录：GJSQ2026-0001 本次 3 天，华夏银行项目累计 3 天 [#GJSQ2026-0001]"
    assert "本申请单累计：3 天" in sent[0].text and "华夏银行项目累计：3 天（上限 7 天）" in sent[0].text

    sent = answer(flow, n2, sender=FENG, body="研发用时：2.5")
    assert [s.subject for s in sent] == ["研发用时已记录：GJSQ2026-0002 本次 2.5 天，华夏银行项目累计 5.5 天 [#GJSQ2026-0002]"]
    assert sent[0].to == [FENG]

    # Exactly 7 days is not "超过一周": no notice.
    sent = answer(flow, n1, sender=CHEN, body="研发用时：1.5 天")
    assert shape(sent) == [((CHEN,), ())]
    assert "华夏银行项目累计：7 天（上限 7 天）" in sent[0].text and "超过" not in sent[0].text

    crossing = answer_raw(n2, sender=FENG, body="研发用时：半天")
    sent = flow.deliver(crossing)
    assert shape(sent) == [((FENG,), ()), ((LI,), (ZHAO,))]
    notice = one(sent, to=LI)
    assert notice.subject == "研发用时超过7天：华夏银行项目的研发成本将从销售奖金中扣除 [#GJSQ2026-0002]"
    assert "华夏银行项目的产品改进申请单累计净研发用时已达 7.5 天，超过 7 天" in notice.text
    assert "此项目的销售奖金将把研发成本扣除后再计算" in notice.text
    assert "GJSQ2026-0001 批量导出（张三）：4.5 天" in notice.text
    assert "GJSQ2026-0002 单点登录（王五）：3 天" in notice.text
    assert "郑经理：3 天" in notice.text and "冯工：0.5 天" in notice.text
    ack = one(sent, to=FENG)
    assert "华夏银行项目累计：7.5 天（上限 7 天）" in ack.text
    assert "系统已通知责任销售李四，并抄送赵六" in ack.text

    # The same mail again (a second copy in the mailbox, a replay, a journal
    # copy with other bytes): nothing is recorded or sent twice.
    assert flow.deliver(crossing) == []
    eml = tmp_path / "crossing.eml"
    eml.write_bytes(crossing)
    assert run(flow.cfg, "replay", str(eml)) == 0
    assert flow.deliver(b"X-Journal: copy\r\n" + crossing) == []
    assert flow.smtp.messages[flow.seen:] == []

    # A later entry: recorded, and the notice is not sent again.
    sent = answer(flow, n1, sender=ZHENG, body="研发用时：2天")
    assert shape(sent) == [((ZHENG,), ())]
    assert "华夏银行项目累计：9.5 天（上限 7 天）" in sent[0].text
    assert "此前已通知责任销售" in sent[0].text

    t1, t2 = flow.ticket("GJSQ2026-0001"), flow.ticket("GJSQ2026-0002")
    assert [(e["days"], e["by"]) for e in t1["data"]["rd_entries"]] == [(3.0, "郑经理"), (1.5, "陈工"), (2.0, "郑经理")]
    assert [(e["days"], e["by"]) for e in t2["data"]["rd_entries"]] == [(2.5, "冯工"), (0.5, "冯工")]
    assert (t1["data"]["rd_days"], t2["data"]["rd_days"]) == (6.5, 3.0)
    assert t2["data"]["over_limit_notice"]["total"] == 7.5 and "over_limit_notice" not in t1["data"]
    audit = flow.db("select entity_id, action, actor from audit where action in ('rd_time_recorded', 'rd_over_limit') "
                    "order by id")
    assert audit == [("GJSQ2026-0001", "rd_time_recorded", "郑经理"), ("GJSQ2026-0002", "rd_time_recorded", "冯工"),
                     ("GJSQ2026-0001", "rd_time_recorded", "陈工"), ("GJSQ2026-0002", "rd_time_recorded", "冯工"),
                     ("GJSQ2026-0002", "rd_over_limit", "冯工"), ("GJSQ2026-0001", "rd_time_recorded", "郑经理")]
    assert improvements(flow) == [{"项目": "华夏银行", "有效申请": "2", "无效申请": "0", "退回": "0", "未立项": "0",
                                   "研发用时（天）": "9.5", "上限（天）": "7", "超过上限": "是",
                                   "已通知销售": "GJSQ2026-0002", "有效申请单": "GJSQ2026-0001、GJSQ2026-0002"}]


def test_other_projects_time_does_not_count_and_the_limit_is_configurable(tmp_path, imap_server, smtp_server, capsys,
                                                                          db_url):
    f = make_flow(tmp_path, imap_server, smtp_server, capsys, db_url, extra="[workflows.improvement]\nrd_days_limit = 3\n")
    n1 = one(submit(f, sender=ZHANG, summary="批量导出"), to=ZHENG)
    n2 = one(submit(f, sender=WANG, project="东方电网", summary="告警推送"), to=ZHENG)
    sent = answer(f, n2, sender=FENG, body="研发用时：3天")
    assert shape(sent) == [((FENG,), ())]  # 3 is not more than 3
    sent = answer(f, n1, sender=FENG, body="研发用时：2天")
    assert shape(sent) == [((FENG,), ())]  # 华夏银行 has 2: the other project's days do not count
    sent = answer(f, n2, sender=FENG, body="研发用时：0.5天")
    assert shape(sent) == [((FENG,), ()), ((ZHOU,), (ZHAO,))]
    assert one(sent, to=ZHOU).subject == "研发用时超过3天：东方电网项目的研发成本将从销售奖金中扣除 [#GJSQ2026-0002]"


def test_bad_rd_time_values_are_refused(flow):
    n1 = one(submit(flow, sender=ZHANG), to=ZHENG)
    for bad in ("三天", "2小时", "0", "大约两周", ""):
        sent = answer(flow, n1, sender=FENG, body=f"研发用时：{bad}\n")
        assert shape(sent) == [((FENG,), ())], bad
        if bad:
            assert sent[0].subject == f"研发用时未记录：无法识别“{bad}” [#GJSQ2026-0001]"
            assert f"无法识别研发用时“{bad}”" in sent[0].text
        else:
            assert "没有写天数" in sent[0].text
        assert "研发用时：2.5天" in sent[0].text and "研发用时：半天" in sent[0].text
    t = flow.ticket("GJSQ2026-0001")
    assert t["data"]["rd_entries"] == [] and t["data"]["rd_days"] == 0
    # The accepted spellings.
    for good, total in (("2", "2"), ("2.5", "4.5"), ("半天", "5"), ("3天", "8"), ("1.5 天", "9.5"), ("１天（联调）", "10.5")):
        sent = answer(flow, n1, sender=FENG, body=f"研发用时：{good}")
        assert f"华夏银行项目累计：{total} 天" in one(sent, to=FENG).text, good
    assert flow.ticket("GJSQ2026-0001")["data"]["rd_days"] == 10.5


def test_rd_time_from_someone_without_an_rd_role_is_refused(flow):
    n1 = one(submit(flow, sender=ZHANG), to=ZHENG)
    for who in (ZHANG, LI, ZHAO):
        sent = answer(flow, n1, sender=who, body="研发用时：2天")
        assert shape(sent) == [((who,), ())]
        assert sent[0].subject == "研发用时未记录：GJSQ2026-0001 的研发用时只能由研发人员填写 [#GJSQ2026-0001]"
        assert "研发：冯工、陈工" in sent[0].text and "研发经理：郑经理" in sent[0].text
    assert flow.ticket("GJSQ2026-0001")["data"]["rd_entries"] == []
    # Other replies in the thread are only logged.
    assert answer(flow, n1, sender=LI, body="收到，谢谢。") == []
    notes = flow.ticket("GJSQ2026-0001")["data"]["thread"]
    assert [n["kind"] for n in notes] == ["rd_denied", "rd_denied", "rd_denied", "reply"]


def test_check_reports_bad_improvement_settings(tmp_path, capsys):
    cfg = write_config(tmp_path, rules_dir=loadable_rules(tmp_path), extra=(
        "[workflows.improvement]\nrd_days_limit = \"一周\"\nengineer_parties = [\"第三售前\"]\nrd_roles = [\"研发部\"]\n"))
    capsys.readouterr()
    assert run(cfg, "check") != 0
    err = capsys.readouterr().err
    assert "workflows.improvement.rd_days_limit: 必须是 ≥ 0 的天数（第二十二条：一周 = 7），现为 \"一周\"" in err
    assert "workflows.improvement.engineer_parties: 必须是列表，可写 第一售前 和/或 第二售前，现为 \"第三售前\"" in err
    assert "workflows.improvement.rd_roles: 未知的角色“研发部”；可用的角色：" in err
    assert "improvement.toml" not in err and "bug.toml" not in err  # the shipped files themselves are fine
