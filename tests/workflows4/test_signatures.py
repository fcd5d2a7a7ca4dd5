"""Issue 11: signatures are stripped like quoted history, end to end. Replies
built as Foxmail, Outlook and phones build them; what the next reader is told
must not carry the sender's signature."""
from __future__ import annotations

import pytest

from conventions.clients import foxmail, outlook, plain
from conventions.helpers import LI, SYSTEM, ZHANG, ZHAO, Flow, one, report_body, shape
from workflows4.test_workorder import FENG, GD1, WO, ZHENG

FOXMAIL_QUOTE = ("<blockquote style=\"margin-Top: 0px; margin-Bottom: 0px; margin-Left: 0.5em; margin-Right: inherit\">"
                 "<div>&nbsp;</div><div style=\"border:none;border-top:solid #B5C4DF 1.0pt;padding:3.0pt 0cm 0cm 0cm\">"
                 "<div style=\"PADDING-RIGHT: 8px; PADDING-LEFT: 8px; FONT-SIZE: 12px;FONT-FAMILY:tahoma;"
                 "COLOR:#000000; BACKGROUND: #efefef\"><div><b>发件人：</b>&nbsp;工单系统</div>"
                 "<div><b>发送时间：</b>&nbsp;2026-11-30&nbsp;16:00</div><div><b>收件人：</b>&nbsp;赵六</div>"
                 "<div><b>主题：</b>&nbsp;请审批故障处理工作单</div></div></div><div><div>请审批……</div></div></blockquote>")


def foxmail_reply(text_html: str, signature_html: str) -> str:
    """Foxmail 7.2's HTML: the text, an <hr> 210px wide, the signature, the quote."""
    return ("<html><head><meta http-equiv=\"content-type\" content=\"text/html; charset=GB2312\">"
            "<style>body { line-height: 1.5; }</style></head><body>" + text_html +
            "<div><br></div><hr style=\"width: 210px; height: 1px;\" color=\"#b5c4df\" size=\"1\" align=\"left\">"
            "<div><span><div style=\"MARGIN: 10px; FONT-FAMILY: verdana; FONT-SIZE: 10pt\">" + signature_html +
            "</div></span></div>" + FOXMAIL_QUOTE + "</body></html>")


@pytest.fixture
def wo(tmp_path, imap_server, smtp_server, capsys):
    return WO(Flow(tmp_path, imap_server, smtp_server, capsys))


def _approve_request(wo):
    return one(wo.submit(), to=ZHAO)


def test_foxmail_agree_does_not_send_the_signature_as_the_managers_opinion(wo):
    approve = _approve_request(wo)
    html = foxmail_reply("<div><span></span>同意</div>",
                         "<div>赵六</div><div>华信科技有限公司&nbsp;售前部</div><div>手机：139-0000-5678</div>")
    sent = wo.flow.deliver(foxmail(html=html, sender=ZHAO, to=(SYSTEM,), subject="回复：" + approve.subject,
                                   in_reply_to=approve.message_id))
    assert shape(sent) == [((ZHENG,), (ZHANG, ZHAO))]
    review = sent[0]
    assert "售前经理赵六已同意张三提交的" in review.text
    assert "赵六的意见" not in review.text and "手机" not in review.text and "华信科技" not in review.text
    assert wo.state() == "rd_review"


def test_foxmail_agree_with_an_opinion_keeps_the_opinion_only(wo):
    approve = _approve_request(wo)
    html = foxmail_reply("<div>同意，请研发今天内联系客户</div>", "<div>赵六</div><div>手机：139-0000-5678</div>")
    sent = wo.flow.deliver(foxmail(html=html, sender=ZHAO, to=(SYSTEM,), subject="回复：" + approve.subject,
                                   in_reply_to=approve.message_id))
    review = one(sent, to=ZHENG)
    assert "赵六的意见：请研发今天内联系客户\n" in review.text and "手机" not in review.text


def _assigned(wo):
    approve = _approve_request(wo)
    review = one(wo.reply(approve, sender=ZHAO, body="同意"), to=ZHENG)
    return wo.reply(review, sender=ZHENG, body="指派：冯工")[0]


def test_close_request_with_a_result_label_and_an_iphone_signature(wo):
    assigned = _assigned(wo)
    body = ("申请关闭\n处理结果：升级补丁 V200R019SPH007 后 VRRP 不再切换\n\n发自我的iPhone\n\n"
            "> 在 2026年11月30日，16:00，工单系统 <tracking@company.example> 写道：\n> 故障处理工作单已指派\n")
    sent = wo.flow.deliver(plain(text=body, sender=FENG, to=(SYSTEM,), subject="回复：" + assigned.subject,
                                 in_reply_to=assigned.message_id))
    close_req = one(sent, to=ZHANG)
    assert "处理结果：\n  升级补丁 V200R019SPH007 后 VRRP 不再切换\n" in close_req.text
    assert "处理结果：处理结果" not in close_req.text and "iPhone" not in close_req.text
    assert wo.data()["resolution"] == "升级补丁 V200R019SPH007 后 VRRP 不再切换"


def test_outlook_auto_signature_is_not_part_of_the_close_request(wo):
    assigned = _assigned(wo)
    html = ("<html><body><div class=WordSection1><p class=MsoNormal>申请关闭<o:p></o:p></p>"
            "<p class=MsoNormal>已更换主控板，观察24小时无切换<o:p></o:p></p><p class=MsoNormal><o:p>&nbsp;</o:p></p>"
            "<p class=MsoNormal><a name=\"_MailAutoSig\"><span>冯工 | 研发中心 | 华信科技有限公司<o:p></o:p></span></a></p>"
            "<p class=MsoNormal><span>电话：010-8888 6603<o:p></o:p></span></p>"
            "<div style='border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm'><p class=MsoNormal>"
            "<b>发件人:</b> 工单系统 <br><b>发送时间:</b> 2026年11月30日 16:00<br><b>收件人:</b> 冯工<br>"
            "<b>主题:</b> 已指派</p></div><p>故障处理工作单已指派</p></div></body></html>")
    text = ("申请关闭\r\n已更换主控板，观察24小时无切换\r\n\r\n冯工 | 研发中心 | 华信科技有限公司\r\n电话：010-8888 6603\r\n\r\n"
            "发件人: 工单系统\r\n发送时间: 2026年11月30日 16:00\r\n收件人: 冯工\r\n主题: 已指派\r\n\r\n故障处理工作单已指派\r\n")
    sent = wo.flow.deliver(outlook(text=text, html=html, sender=FENG, to=(SYSTEM,), subject="答复: " + assigned.subject,
                                   in_reply_to=assigned.message_id))
    close_req = one(sent, to=ZHANG)
    assert "已更换主控板，观察24小时无切换" in close_req.text
    assert "研发中心" not in close_req.text and "010-8888 6603" not in close_req.text


def test_followup_result_sent_to_the_sales_carries_no_signature(tmp_path, imap_server, smtp_server, capsys):
    flow = Flow(tmp_path, imap_server, smtp_server, capsys)
    ack = flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行-张三",
                    body=report_body(result="问题遗留", remaining="客户要求V3.2补丁"))[0]
    body = ("已解决\n补丁V3.2已在现场安装，告警恢复\n\n谢谢！\n张三\n华信科技有限公司 技术支持部\n手机：138-0000-1234\n")
    sent = flow.reply_to(ack, sender=ZHANG, body=body)
    done = one(sent, to=LI)
    assert "补丁V3.2已在现场安装，告警恢复" in done.text
    assert "手机" not in done.text and "华信科技" not in done.text and "谢谢" not in done.text
