"""The demo's sample mails: realistic, in the shapes real clients send.

Each :class:`Step` is one mail put into the mailbox before one processing
pass. Replies to mail the system sent (a corrected report answering a
rejection, 已解决 answering a receipt, an out-of-office answer, a bounce) are
built when their step comes, from what the capture server received in earlier
steps: their In-Reply-To / References / [#记录号] are the real ones.

The people and projects are those of the shipped ``directory.toml``:

* 华夏银行: 责任销售 李四, 第一售前 张三, 第二售前 王五
* 东方电网: 责任销售 周七, 第一售前 王五, 第二售前 张三
* 恒通证券: 责任销售 李四, 第一售前 张三, 第二售前 赵六
* 赵六 售前经理, 钱经理 技术支持部经理, 孙总监 技术总监
* 郑经理 研发经理, 冯工 研发 (the 故障处理工作单)
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.utils import getaddresses, parsedate_to_datetime
from typing import Callable, Union
from zoneinfo import ZoneInfo

SYSTEM = ("工单系统", "tracking@company.example")
ZHANG = ("张三", "zhangsan@company.example")
WANG = ("王五", "wangwu@company.example")
LI = ("李四", "lisi@company.example")
ZHOU = ("周七", "zhouqi@company.example")
ZHAO = ("赵六", "zhaoliu@company.example")
QIAN = ("钱经理", "qian@company.example")
SUN = ("孙总监", "sun@company.example")
ZHENG = ("郑经理", "zheng@company.example")
FENG = ("冯工", "feng@company.example")

FOXMAIL = {"X-Mailer": "Foxmail 7.2.25.228[cn]"}
OUTLOOK = {"X-Mailer": "Microsoft Outlook 16.0", "Content-Language": "zh-cn"}

SIG_ZHANG = "\n--\n张三\n华信科技有限公司 技术支持部\n手机：138-0000-1234\n"
SIG_WANG = "\n王五\n华信科技有限公司 技术支持部\n电话：010-8888 6602  手机：139-0000-5678\n"
SIG_LI = "\n李四\n华信科技有限公司 销售部 行业客户组\n"

#: What earlier steps produced: step key -> mails the system sent in that step
#: (``processor.devservers.smtp.Captured``).
History = dict
Builder = Union[bytes, Callable[[History], bytes]]


@dataclass
class Step:
    key: str
    title: str  # what this mail shows, printed as the step's heading
    build: Builder


def pick(history: History, key: str, *, to: str, subject: str = ""):
    """The mail the system sent To ``to`` in step ``key`` (subject containing ``subject``)."""
    for c in history.get(key, []):
        addrs = [a.lower() for _, a in getaddresses([c.header("To") or ""])]
        if to.lower() in addrs and subject in (c.subject or ""):
            return c
    raise LookupError(f"这封邮件要回复系统在前面（{key}）发给 {to}、主题含“{subject}”的邮件，但系统没有发出那封邮件")


def _sent_at(c) -> datetime:
    try:
        return parsedate_to_datetime(c.header("Date")).astimezone(ZoneInfo("Asia/Shanghai"))
    except (TypeError, ValueError):
        return datetime.now(ZoneInfo("Asia/Shanghai"))


def _text(c) -> str:
    return (c.text or "").replace("\r\n", "\n").rstrip()


def foxmail_quote(c) -> str:
    """What Foxmail puts under a reply."""
    d = _sent_at(c)
    week = "一二三四五六日"[d.weekday()]
    half = "上午" if d.hour < 12 else "下午"
    to = "; ".join(f'"{n}"<{a}>' for n, a in getaddresses([c.header("To") or ""]))
    return ("\n\n------------------ 原始邮件 ------------------\n"
            f'发件人: "{SYSTEM[0]}"<{SYSTEM[1]}>;\n'
            f"发送时间: {d.year}年{d.month}月{d.day}日(星期{week}) {half}{(d.hour - 1) % 12 + 1}:{d.minute:02d}\n"
            f"收件人: {to};\n"
            f"主题: {c.subject}\n\n" + _text(c) + "\n")


def outlook_quote(c) -> str:
    """What Outlook (desktop, Chinese) puts under a reply in plain text."""
    d = _sent_at(c)
    to = "; ".join(n or a for n, a in getaddresses([c.header("To") or ""]))
    return ("\n\n-----原始邮件-----\n"
            f"发件人: {SYSTEM[0]} [mailto:{SYSTEM[1]}] \n"
            f"发送时间: {d.year}年{d.month}月{d.day}日 {d.hour}:{d.minute:02d}\n"
            f"收件人: {to}\n"
            f"主题: {c.subject}\n\n" + _text(c) + "\n")


def _thread(c) -> dict:
    """In-Reply-To / References for an answer to the captured mail ``c``."""
    refs = " ".join(x for x in ((c.header("References") or "").split() + [c.message_id or ""]) if x)
    return {"in_reply_to": c.message_id, "references": refs}


OUTLOOK_TABLE = """<html xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-com:office:office" \
xmlns:w="urn:schemas-microsoft-com:office:word" xmlns:m="http://schemas.microsoft.com/office/2004/12/omml" \
xmlns="http://www.w3.org/TR/REC-html40"><head>
<meta http-equiv="Content-Type" content="text/html; charset=gb2312">
<meta name="Generator" content="Microsoft Word 15 (filtered medium)">
<style><!--
/* Font Definitions */
@font-face {font-family:等线; panose-1:2 1 6 0 3 1 1 1 1 1;}
p.MsoNormal, li.MsoNormal, div.MsoNormal {margin:0cm; text-align:justify; font-size:10.5pt; font-family:等线;}
span.EmailStyle17 {mso-style-type:personal-compose; font-family:等线; color:windowtext;}
--></style><!--[if gte mso 9]><xml>
<o:shapedefaults v:ext="edit" spidmax="1026" />
</xml><![endif]--></head>
<body lang="ZH-CN" link="#0563C1" vlink="#954F72" style="text-justify-trim:punctuation">
<div class="WordSection1">
<p class="MsoNormal">周七：<o:p></o:p></p>
<p class="MsoNormal"><o:p>&nbsp;</o:p></p>
<p class="MsoNormal">今天到东方电网3号厂站现场处理，情况如下：<o:p></o:p></p>
<p class="MsoNormal"><o:p>&nbsp;</o:p></p>
<table class="MsoTableGrid" border="1" cellspacing="0" cellpadding="0" style="border-collapse:collapse;border:none">
<tr><td width="142" valign="top" style="width:106.5pt;border:solid windowtext 1.0pt;padding:0cm 5.4pt 0cm 5.4pt">
<p class="MsoNormal"><b>沟通结果<o:p></o:p></b></p></td>
<td width="411" valign="top" style="width:308.25pt;border:solid windowtext 1.0pt;border-left:none;padding:0cm 5.4pt 0cm 5.4pt">
<p class="MsoNormal">成功<o:p></o:p></p></td></tr>
<tr><td width="142" valign="top" style="width:106.5pt;border:solid windowtext 1.0pt;border-top:none;padding:0cm 5.4pt 0cm 5.4pt">
<p class="MsoNormal"><b>项目名称<o:p></o:p></b></p></td>
<td width="411" valign="top" style="width:308.25pt;border-top:none;border-left:none;border-bottom:solid windowtext 1.0pt;border-right:solid windowtext 1.0pt;padding:0cm 5.4pt 0cm 5.4pt">
<p class="MsoNormal">东方电网<o:p></o:p></p></td></tr>
<tr><td width="142" valign="top" style="width:106.5pt;border:solid windowtext 1.0pt;border-top:none;padding:0cm 5.4pt 0cm 5.4pt">
<p class="MsoNormal"><b>沟通人<o:p></o:p></b></p></td>
<td width="411" valign="top" style="width:308.25pt;border-top:none;border-left:none;border-bottom:solid windowtext 1.0pt;border-right:solid windowtext 1.0pt;padding:0cm 5.4pt 0cm 5.4pt">
<p class="MsoNormal">陈喆（3号厂站站长）<o:p></o:p></p></td></tr>
<tr><td width="142" valign="top" style="width:106.5pt;border:solid windowtext 1.0pt;border-top:none;padding:0cm 5.4pt 0cm 5.4pt">
<p class="MsoNormal"><b>沟通方式<o:p></o:p></b></p></td>
<td width="411" valign="top" style="width:308.25pt;border-top:none;border-left:none;border-bottom:solid windowtext 1.0pt;border-right:solid windowtext 1.0pt;padding:0cm 5.4pt 0cm 5.4pt">
<p class="MsoNormal">现场<o:p></o:p></p></td></tr>
<tr><td width="142" valign="top" style="width:106.5pt;border:solid windowtext 1.0pt;border-top:none;padding:0cm 5.4pt 0cm 5.4pt">
<p class="MsoNormal"><b>沟通的具体问题<o:p></o:p></b></p></td>
<td width="411" valign="top" style="width:308.25pt;border-top:none;border-left:none;border-bottom:solid windowtext 1.0pt;border-right:solid windowtext 1.0pt;padding:0cm 5.4pt 0cm 5.4pt">
<p class="MsoNormal">1. 更换3号厂站通信管理机电源板<o:p></o:p></p>
<p class="MsoNormal">2. 核对遥测数据与主站一致<o:p></o:p></p></td></tr>
</table>
<p class="MsoNormal"><o:p>&nbsp;</o:p></p>
<p class="MsoNormal">王五<o:p></o:p></p>
<p class="MsoNormal">华信科技有限公司 技术支持部<o:p></o:p></p>
</div></body></html>"""


def samples(mail) -> list[Step]:
    """The demo's mails, in order. ``mail`` is :func:`processor.demo.mail`."""
    steps: list[Step] = []

    def add(key: str, title: str, build: Builder) -> None:
        steps.append(Step(key, title, build))

    # --- the engine ---------------------------------------------------------
    add("ping", "张三发“工单测试”，确认系统在工作",
        mail(ZHANG, "工单测试", "测试一下工单系统是否正常，收到请回复。\n" + SIG_ZHANG, to=[SYSTEM], headers=FOXMAIL))

    # --- 汇报邮件 -------------------------------------------------------------
    add("report_ok", "张三汇报华夏银行项目（Foxmail，全角冒号，带签名）：格式正确，记入跟踪表",
        mail(ZHANG, "客户沟通-华夏银行项目-张三",
             "李四：\n\n今天上午远程处理了华夏银行数据中心的问题，汇报如下：\n\n"
             "沟通结果：成功\n项目名称：华夏银行\n沟通人：王经理（信息科技部）\n沟通方式：远程（向日葵）+电话\n"
             "沟通的具体问题：解决vista下远程控制网络参数设置，办公网终端可正常远程接入\n\n"
             "客户已确认，无遗留问题。\n" + SIG_ZHANG,
             to=[LI], cc=[SYSTEM], headers=FOXMAIL))

    add("report_vague", "王五汇报东方电网项目，“沟通的具体问题”只写了“解决了技术问题”：退回",
        mail(WANG, "客户沟通-东方电网调度中心-王五",
             "周七你好，\n\n调度中心昨天反映的问题已处理，汇报如下：\n\n"
             "沟通结果: 成功\n项目名称: 东方电网\n沟通人: 刘工（调度中心自动化科）\n沟通方式: 远程\n"
             "沟通的具体问题: 解决了技术问题\n" + SIG_WANG,
             to=[ZHOU], cc=[SYSTEM], headers=OUTLOOK))

    def resubmit(h: History) -> bytes:
        rej = pick(h, "report_vague", to=WANG[1], subject="未通过检查")
        return mail(WANG, "答复: " + rej.subject,
                    "沟通结果：成功\n项目名称：东方电网\n沟通人：刘工（调度中心自动化科）\n沟通方式：远程\n"
                    "沟通的具体问题：调度主站前置机与3号厂站通信中断，重新配置104规约通道参数后数据恢复上送\n"
                    + SIG_WANG + outlook_quote(rej),
                    to=[SYSTEM, ZHOU], headers=OUTLOOK, **_thread(rej))
    add("report_fixed", "王五直接回复退回邮件，补写具体问题（Outlook，引用原邮件）：重新提交，记入跟踪表", resubmit)

    add("report_second", "王五以第二售前身份汇报华夏银行项目（张三出差）：记入第一售前张三的跟踪表，并通知张三、抄送售前经理",
        mail(WANG, "客户沟通—华夏银行项目—王五",
             "李四：\n\n张三今天在外地出差，华夏银行晚上核心交换机告警，由我临时电话和远程支持，情况如下：\n\n"
             "1. 沟通结果：成功\n2. 项目名称：华夏银行\n3. 沟通人：值班工程师小陈（信息科技部）\n4. 沟通方式：电话+远程\n"
             "5. 沟通的具体问题：核心交换机2号电源模块告警，指导客户更换备用电源模块后告警消除\n\n"
             "后续仍由张三负责。\n" + SIG_WANG,
             to=[LI], cc=[SYSTEM], headers=OUTLOOK))

    add("report_no_sales", "张三汇报恒通证券项目，只发给了售前经理赵六（工单系统在密送中）：系统转发给责任销售李四",
        mail(ZHANG, "客户沟通-恒通证券-张三",
             "赵六：\n\n恒通证券信息技术部下午来电，处理情况如下：\n\n"
             "沟通结果：成功\n项目名称：恒通证券\n沟通人：孙科长（信息技术部）\n沟通方式：电话\n"
             "沟通的具体问题：交易网段防火墙策略误拦截行情推送端口，协助客户恢复9101端口的放行策略\n" + SIG_ZHANG,
             to=[ZHAO], headers=FOXMAIL))

    add("report_outlook", "王五用 Outlook 发来 HTML 表格形式的汇报（GB2312 编码）：表格被识别，记入跟踪表",
        mail(WANG, "客户沟通-东方电网-王五", html=OUTLOOK_TABLE, charset="gb2312", cte="base64",
             to=[ZHOU], cc=[SYSTEM], headers={**OUTLOOK, "Thread-Index": "AdmzOa7Ql1bXG3hzTW6N3pX0pLqRkw=="}))

    add("report_open", "张三汇报华夏银行项目，沟通结果“问题遗留”：记入跟踪表，并开《遗留问题跟进单》",
        mail(ZHANG, "客户沟通-华夏银行-张三",
             "李四：\n\n今天到华夏银行数据中心现场巡检，汇报如下：\n\n"
             "沟通结果：问题遗留\n项目名称：华夏银行\n沟通人：王经理（信息科技部）\n沟通方式：现场\n"
             "沟通的具体问题：日志审计服务器磁盘使用率告警（92%），清理过期日志后降至78%\n"
             "遗留的问题描述：日志轮转策略未生效，需调整保存周期并观察一周，可能需要研发确认补丁\n" + SIG_ZHANG,
             to=[LI], cc=[SYSTEM], headers=FOXMAIL))

    def solved(h: History) -> bytes:
        ack = pick(h, "report_open", to=ZHANG[1], subject="回执")
        return mail(ZHANG, "回复：" + ack.subject,
                    "已解决。\n日志轮转策略改为保留90天并重启日志服务，连续观察三天磁盘使用率稳定在60%以下，王经理已确认。\n"
                    + SIG_ZHANG + foxmail_quote(ack),
                    to=[SYSTEM], headers=FOXMAIL, **_thread(ack))
    add("followup_solved", "问题处理完后，张三回复那封回执，第一行写“已解决”：关闭跟进单，通知责任销售李四", solved)

    # --- 投诉邮件 -------------------------------------------------------------
    add("complaint_1", "李四投诉华夏银行项目沟通问题（发给钱经理，抄送孙总监）：计入张三名下，本月第1次",
        mail(LI, "投诉-华夏银行项目沟通问题",
             "钱经理：\n\n华夏银行信息科技部王经理今天跟我说，上周四张三到现场调整了核心交换机的配置，"
             "我事先不知道，事后也没有收到汇报邮件或电话，客户问我变更情况我答不上来。\n\n"
             "被投诉人：张三\n投诉原因：与客户沟通后既没有发汇报邮件，也没有电话说明\n\n请部门关注。\n" + SIG_LI,
             to=[QIAN], cc=[SUN, SYSTEM], headers=OUTLOOK))

    add("complaint_2", "李四又投诉恒通证券项目沟通问题（只发给了钱经理）：转给孙总监；张三本月第2次，触发处罚",
        mail(LI, "投诉－恒通证券项目沟通问题",
             "钱经理：\n\n恒通证券信息技术部孙科长反映，本周二张三远程给客户升级了防火墙版本，"
             "没有发汇报邮件，也没有电话告诉我。\n" + SIG_LI,
             to=[QIAN], headers=OUTLOOK))

    # --- mail the system must not answer -------------------------------------------
    def out_of_office(h: History) -> bytes:
        pen = pick(h, "complaint_2", to=QIAN[1], subject="投诉处罚")
        return mail(SUN, "自动答复: " + pen.subject,
                    "您好，我本周在外地出差，邮件回复可能不及时。紧急事务请联系钱经理（qian@company.example）。\n\n孙总监\n",
                    to=[SYSTEM], headers={**OUTLOOK, "Auto-Submitted": "auto-replied", "X-Auto-Response-Suppress": "All"},
                    **_thread(pen))
    add("auto_reply", "孙总监的外出自动答复（回复系统发出的处罚通知）：机器发的邮件，不回复", out_of_office)

    add("unknown", "张三用私人邮箱发来的汇报（地址不在通讯录中）：只记录，不回复，也不记入跟踪表",
        mail(("张三", "zhangsan1988@personal.example"), "客户沟通-华夏银行-张三",
             "沟通结果：成功\n项目名称：华夏银行\n沟通人：王经理\n沟通方式：电话\n"
             "沟通的具体问题：确认核心交换机备件到货时间和更换窗口\n\n张三（手机发送）\n",
             to=[LI], cc=[SYSTEM], headers={"X-Mailer": "iPhone Mail (20H240)"}))

    def bounce(h: History) -> bytes:
        ack = pick(h, "report_outlook", to=WANG[1], subject="回执")
        return postfix_bounce(mail, ack, WANG[1], "552 5.2.2 Mailbox full: quota exceeded")
    add("bounce", "王五邮箱已满，系统发给他的回执被退回（退信）：机器发的邮件，不回复", bounce)

    workorder_steps(mail, add)
    document_steps(mail, add)
    return steps


def postfix_bounce(mail, original, rcpt: str, status: str) -> bytes:
    """A Postfix non-delivery report (multipart/report) for the captured mail ``original``."""
    boundary = "7C2B81A3F4.1720595432/mail.company.example"
    # The original's header block as it was sent (encoded words keep it ASCII).
    raw_head = original.data.split(b"\r\n\r\n", 1)[0].decode("ascii", "replace").replace("\r\n", "\n")
    body = (
        "This is a MIME-encapsulated message.\n\n"
        f"--{boundary}\nContent-Description: Notification\nContent-Type: text/plain; charset=us-ascii\n\n"
        "This is the mail system at host mail.company.example.\n\n"
        "I'm sorry to have to inform you that your message could not\n"
        "be delivered to one or more recipients. It's attached below.\n\n"
        "For further assistance, please send mail to postmaster.\n\n"
        "                   The mail system\n\n"
        f"<{rcpt}>: host mailstore.company.example[10.0.8.21] said: {status} (in reply to\n"
        "    end of DATA command)\n\n"
        f"--{boundary}\nContent-Description: Delivery report\nContent-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; mail.company.example\n\n"
        f"Final-Recipient: rfc822; {rcpt}\nOriginal-Recipient: rfc822;{rcpt}\nAction: failed\n"
        f"Status: 5.2.2\nDiagnostic-Code: smtp; {status}\n\n"
        f"--{boundary}\nContent-Description: Undelivered Message Headers\nContent-Type: text/rfc822-headers\n\n"
        f"{raw_head}\n\n--{boundary}--\n")
    return mail(("Mail Delivery System", "MAILER-DAEMON@mail.company.example"), "Undelivered Mail Returned to Sender",
                body, to=[SYSTEM], content_type=f'multipart/report; report-type=delivery-status;\n\tboundary="{boundary}"',
                headers={"Return-Path": "<>"})


# --- 故障处理工作单 (art. 43-47) -----------------------------------------------

VRRP_LOG = """<HX-CORE-01>display vrrp brief
Total:3     Master:1     Backup:2     Non-active:0
VRID  State        Interface                Type     Virtual IP
----------------------------------------------------------------
10    Backup       Vlanif10                 Normal   10.10.10.254
20    Master       Vlanif20                 Normal   10.10.20.254
30    Backup       Vlanif30                 Normal   10.10.30.254

<HX-CORE-01>display logbuffer | include VRRP
Nov 20 2026 10:01:02 HX-CORE-01 %%01VRRP/4/STATEWARNINGEXTEND(l)[12]:Virtual Router state MASTER changed to BACKUP, because of priority calculation. (Interface=Vlanif10, VrId=10, InetType=IPv4)
Nov 20 2026 10:06:05 HX-CORE-01 %%01VRRP/4/STATEWARNINGEXTEND(l)[13]:Virtual Router state BACKUP changed to MASTER, because of protocol timer expired. (Interface=Vlanif10, VrId=10, InetType=IPv4)
Nov 20 2026 10:11:07 HX-CORE-01 %%01VRRP/4/STATEWARNINGEXTEND(l)[14]:Virtual Router state MASTER changed to BACKUP, because of priority calculation. (Interface=Vlanif10, VrId=10, InetType=IPv4)
"""


def with_attachments(mail, sender, subject: str, text: str, files, **kw) -> bytes:
    """A multipart/mixed mail as Foxmail sends it: the text, then each
    (filename, content type, bytes) as a base64 attachment."""
    import base64

    boundary = "----=_NextPart_6745A1B2_0C3D_4E5F_A6B7"
    parts = [f"--{boundary}\nContent-Type: text/plain; charset=\"utf-8\"\nContent-Transfer-Encoding: 8bit\n\n{text}\n"]
    for name, ctype, data in files:
        b64 = base64.b64encode(data).decode()
        b64 = "\n".join(b64[i:i + 76] for i in range(0, len(b64), 76))
        parts.append(f"--{boundary}\nContent-Type: {ctype}; name=\"{name}\"\nContent-Transfer-Encoding: base64\n"
                     f"Content-Disposition: attachment; filename=\"{name}\"\n\n{b64}\n")
    body = "This is a multi-part message in MIME format.\n\n" + "".join(parts) + f"--{boundary}--\n"
    return mail(sender, subject, body, content_type=f'multipart/mixed; boundary="{boundary}"', **kw)


def workorder_steps(mail, add) -> None:
    """One 故障处理工作单 from submission to the raiser's confirmation, every
    step a reply to the mail the system sent the step before."""
    add("wo_submit", "张三提交《故障处理工作单》（华夏银行，已尝试3次，日志作为附件）：登记，请售前经理赵六审批",
        with_attachments(
            mail, ZHANG, "故障处理-华夏银行-核心交换机升级后VRRP主备频繁切换",
            "赵六：\n\n华夏银行核心交换机升级补丁后的问题，我和王五前后处理了三次都没有解决，申请提交故障处理工作单，请审批。\n\n"
            "环境：华为 S12708 核心交换机两台，V200R019C10SPC500，VRRP 双机热备（VLAN 10/20/30）\n"
            "操作过程：1. 按厂商指导升级补丁 V200R019SPH005；2. 先升级备机并重启；3. 再升级主机并重启\n"
            "现象：升级后 VRRP 主备约每5分钟切换一次，切换时业务中断2~3秒，核心账务系统告警\n"
            "日志：见附件 vrrp-switch.log（display vrrp 和 logbuffer 输出）\n"
            "尝试次数：3\n" + SIG_ZHANG,
            [("vrrp-switch.log", "text/plain", VRRP_LOG.encode())],
            to=[ZHAO], cc=[SYSTEM], headers=FOXMAIL))

    def approve(h: History) -> bytes:
        req = pick(h, "wo_submit", to=ZHAO[1], subject="请审批")
        return mail(ZHAO, "回复：" + req.subject, "同意。客户是重点行，请研发优先处理。\n\n赵六\n" + foxmail_quote(req),
                    to=[SYSTEM], headers=FOXMAIL, **_thread(req))
    add("wo_approve", "售前经理赵六回复审批邮件“同意”：交研发经理郑经理审核", approve)

    def assign(h: History) -> bytes:
        req = pick(h, "wo_approve", to=ZHENG[1], subject="请审核")
        return mail(ZHENG, "答复: " + req.subject, "指派：冯工，冯工负责交换机协议栈，请今天联系张三。\n\n郑经理\n"
                    + outlook_quote(req), to=[SYSTEM], headers=OUTLOOK, **_thread(req))
    add("wo_assign", "研发经理郑经理回复“指派：冯工”：冯工成为研发负责人，通知冯工和张三", assign)

    def close_request(h: History) -> bytes:
        note = pick(h, "wo_assign", to=FENG[1], subject="已指派")
        return mail(FENG, "答复: " + note.subject,
                    "申请关闭\n原因：SPH005 补丁把 VRRP 通告报文的优先级错误重置为默认值，备机因此抢占。\n"
                    "处理：已发布补丁 SPH007，现场两台设备已升级，连续观察24小时未再切换。\n--\n冯工\n研发中心 网络产品部\n"
                    + outlook_quote(note), to=[SYSTEM], headers=OUTLOOK, **_thread(note))
    add("wo_close_request", "研发负责人冯工回复“申请关闭”并写明处理结果：请故障提出人张三确认", close_request)

    def confirm(h: History) -> bytes:
        req = pick(h, "wo_close_request", to=ZHANG[1], subject="请确认关闭")
        return mail(ZHANG, "回复：" + req.subject, "确认关闭，客户确认已稳定运行一天，谢谢冯工。\n" + SIG_ZHANG
                    + foxmail_quote(req), to=[SYSTEM], headers=FOXMAIL, **_thread(req))
    add("wo_confirm", "张三回复“确认关闭”：工作单关闭，通知冯工和郑经理，抄送赵六", confirm)


PLAN_V1 = "《华夏银行核心交换机测试预案》V1\n一、环境准备\n二、功能项目\n".encode()
PLAN_V2 = "《华夏银行核心交换机测试预案》V2\n一、环境准备（含性能测试仪表）\n二、功能项目\n三、性能项目\n".encode()
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def document_steps(mail, add) -> None:
    """One 文档审核 (art. 28, 31) in two rounds: the sales returns the first
    version with comments, the engineer replies with the second, the sales
    passes it."""
    add("doc_submit", "张三把《测试预案》发给责任销售李四审核（附件，时间要求12月5日前）：登记为文档审核单，请李四审核",
        with_attachments(
            mail, ZHANG, "文档审核-华夏银行-测试预案",
            "李四：\n\n华夏银行核心交换机测试的《测试预案》已完成，请审核。\n时间要求：12月5日前\n" + SIG_ZHANG,
            [("华夏银行测试预案V1.docx", DOCX, PLAN_V1)], to=[LI], cc=[SYSTEM], headers=FOXMAIL))

    def reject(h: History) -> bytes:
        req = pick(h, "doc_submit", to=LI[1], subject="请审核文档")
        return mail(LI, "答复: " + req.subject, "驳回：客户这次最关注性能，请补充性能测试项目和所需仪表。\n\n李四\n"
                    + outlook_quote(req), to=[SYSTEM], headers=OUTLOOK, **_thread(req))
    add("doc_reject", "李四回复“驳回：意见”：退回张三重新编写，意见转告张三", reject)

    def resubmit(h: History) -> bytes:
        note = pick(h, "doc_reject", to=ZHANG[1], subject="被驳回")
        raw = with_attachments(mail, ZHANG, "回复：" + note.subject,
                               "说明：已补充性能测试项目和仪表清单。\n" + SIG_ZHANG,
                               [("华夏银行测试预案V2.docx", DOCX, PLAN_V2)], to=[SYSTEM], headers=FOXMAIL,
                               **_thread(note))
        return raw
    add("doc_resubmit", "张三回复驳回通知并附上第2版：第二轮审核，请李四重新审核", resubmit)

    def approve(h: History) -> bytes:
        req = pick(h, "doc_resubmit", to=LI[1], subject="请审核文档")
        return mail(LI, "答复: " + req.subject, "通过\n\n李四\n" + outlook_quote(req), to=[SYSTEM], headers=OUTLOOK,
                    **_thread(req))
    add("doc_approve", "李四回复“通过”：文档审核单已通过，两轮的版本和意见都保存在记录中", approve)

