"""Shared set-up for the web view tests: a scripted run of mails through a
real Dovecot + aiosmtpd (``run.py once``), then the web view on a real uvicorn
server in this process, and login with the code the system mailed."""
from __future__ import annotations

import re
import time

import httpx

from conventions.helpers import LI, SYSTEM, ZHANG, ZHAO, Flow, report_body
from workflows4.test_workorder import LOG, build, fields

QIAN = "qian@company.example"  # 钱经理 技术支持部经理 (sees all)
SUN = "sun@company.example"  # 孙总监 技术总监
ZHOU = "zhouqi@company.example"  # 周七 销售 of 东方电网 only
WEB = "\n[web]\ncookie_secure = false\ncode_minutes = 10\ncodes_per_hour = 5\n"
CODE = re.compile(r"验证码：(\d{6})")


def scripted_mails(flow: Flow) -> dict:
    """A 问题遗留 report on 华夏银行 (a 遗留问题跟进单 opens), a 故障处理工作单 with a log, approved by the
    售前经理; a 成功 report on 东方电网; a complaint; a report on a project with no 立项.
    Returns the record numbers."""
    flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-华夏银行-张三",
              body=report_body(result="问题遗留", remaining="核心交换机割接后专线时断时续，等待运营商排查"))
    sent = flow.deliver(build(sender=ZHANG, subject="故障处理-华夏银行-核心交换机VRRP主备频繁切换", body=fields(),
                              files=(("vrrp.log", "text/plain", LOG),)))
    approval = next(m for m in sent if m.to == [ZHAO])
    flow.deliver(build(sender=ZHAO, subject="回复：" + approval.subject, body="同意\n", to=(SYSTEM,),
                       in_reply_to=approval.message_id))
    flow.send(sender="wangwu@company.example", to=("zhouqi@company.example",), cc=(SYSTEM,),
              subject="客户沟通-东方电网-王五", body=report_body(project="东方电网", issue="调整东方电网防火墙策略的日志外发端口"))
    # 李四 complains about 华夏银行 (counted against 张三); 张三 reports on a project nobody filed (未立项).
    flow.send(sender=LI, to=(QIAN,), cc=(SUN, SYSTEM), subject="投诉-华夏银行项目沟通问题",
              body="技术支持与客户沟通后既没有汇报邮件也没有电话说明。")
    flow.send(sender=ZHANG, to=(LI,), cc=(SYSTEM,), subject="客户沟通-南方航空-张三",
              body=report_body(project="南方航空"))
    nums = {k: v for (k, v) in flow.db("select kind, number from tickets where kind in ('workorder', 'followup', 'complaint')")}
    nums["dongfang"] = flow.db("select number from tickets where project = '东方电网' and kind = 'report'")[0][0]
    return nums


def wait_code(smtp, addr: str, seen: int = 0) -> str:
    """The code in the newest login mail to ``addr`` after the ``seen`` first mails (bounded wait)."""
    for _ in range(400):
        for m in reversed(smtp.messages[seen:]):
            if addr in (m.header("To") or "") and "验证码" in (m.subject or ""):
                return CODE.search(m.subject).group(1)
        time.sleep(0.05)
    raise AssertionError(f"no login code mailed to {addr}")


def login(base: str, smtp, addr: str) -> httpx.Client:
    c = httpx.Client(base_url=base, follow_redirects=False)
    seen = len(smtp.messages)
    r = c.post("/login", data={"address": addr})
    assert r.status_code == 200 and "验证码已发到该邮箱" in r.text
    code = wait_code(smtp, addr, seen)
    r = c.post("/login", data={"address": addr, "code": code})
    assert r.status_code == 303 and r.headers["location"] == "/", r.text
    return c
