"""Sender trust end to end: forged and genuine mails go into a real Dovecot
mailbox, ``run.py once`` processes them and delivers to a real aiosmtpd
server. A forged 售前经理 approval must change nothing and mail nobody; the
admin sees it in ``report messages`` and in the log."""
from __future__ import annotations

import logging
import re
from datetime import datetime, timezone
from email.utils import format_datetime

import pytest

from conventions.helpers import SYSTEM, ZHANG, ZHAO, Flow, one, shape
from workflows4.test_workorder import GD1, LOG, build, fields

ZHENG = "zheng@company.example"  # 郑经理 研发经理
OURS = "mx.company.example"
SUBJECT = "故障处理-华夏银行-核心交换机VRRP主备频繁切换"


def hop(proto: str, client: str) -> str:
    """A Received line our server writes on top of the mail."""
    return (f"Received: from {client} by mail.company.example (Postfix) with {proto} id 4Dx1; "
            f"{format_datetime(datetime.now(timezone.utc))}")


SUBMITTED = hop("ESMTPSA", "[192.168.10.23] (unknown [192.168.10.23])")
FROM_OUTSIDE = hop("ESMTPS", "mx.evil.example (mx.evil.example [203.0.113.5])")


def on_top(raw: bytes, *lines: str) -> bytes:
    """Headers our servers add above the mail (in this order, top first)."""
    return "".join(line + "\r\n" for line in lines).encode("utf-8") + raw


def with_from(raw: bytes, *froms: str) -> bytes:
    """The mail with its From header replaced by ``froms`` (one header each)."""
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"from:")]
    return b"\r\n".join([*(f"From: {f}".encode("utf-8") for f in froms), *lines]) + b"\r\n\r\n" + body


def submission() -> bytes:
    """张三's 故障处理工作单, as his mail client writes it."""
    return build(sender=ZHANG, subject=SUBJECT, body=fields(), files=(("vrrp.log", "text/plain", LOG),))


class Orders:
    def __init__(self, flow: Flow, *marks: str):
        self.flow = flow
        self.marks = marks  # what makes a genuine mail genuine in this config

    def submit(self):
        sent = self.flow.deliver(on_top(submission(), *self.marks))
        assert shape(sent) == [((ZHANG,), ()), ((ZHAO,), ())]
        assert self.state() == "pending_approval"
        return one(sent, to=ZHAO)

    def approval(self, request, *, sender: str = ZHAO) -> bytes:
        return build(sender=sender, subject="回复：" + request.subject, body="同意", to=(SYSTEM,), cc=(),
                     in_reply_to=request.message_id)

    def state(self) -> str:
        return self.flow.ticket(GD1)["state"]

    def last_message(self) -> tuple:
        return self.flow.messages()[-1]


def gate(flow: Flow) -> None:
    """Turn on the DMARC gate with our authserv-id."""
    text = flow.cfg.read_text(encoding="utf-8")
    text = text.replace('name = "工单系统"\n', f'name = "工单系统"\nrequire_dmarc = true\nauthserv_id = "{OURS}"\n', 1)
    flow.cfg.write_text(text, encoding="utf-8")


# ---------------------------------------------------------------------------
# the shipped defaults
# ---------------------------------------------------------------------------

def test_default_config_forged_manager_approval_changes_nothing(tmp_path, imap_server, smtp_server, capsys, caplog,
                                                                db_url):
    flow = Flow(tmp_path, imap_server, smtp_server, capsys, db_url=db_url, trust=None)  # no [trust]: the defaults
    orders = Orders(flow, SUBMITTED)
    request = orders.submit()

    # From outside, claiming to be 赵六 (售前经理): no mark at all, then a hop from outside.
    caplog.set_level(logging.WARNING, logger="processor.pipeline")
    forged = orders.approval(request)
    assert flow.deliver(forged, on_top(forged.replace(b"Message-ID: <", b"Message-ID: <2"), FROM_OUTSIDE)) == []
    assert orders.state() == "pending_approval"
    assert flow.db("select count(*) from audit where action like 'state:%'") == [(0,)]
    assert flow.db("select count(*) from outbox where caused_by in (select id from messages where status = 'untrusted')") == [(0,)]
    rows = flow.messages()[-2:]
    assert [r[1] for r in rows] == ["untrusted", "untrusted"]
    assert rows[0][3] == ("发件人未通过认证：没有 Received 头，看不出邮件经过了本组织的邮件系统；未做任何更改，也不回复")
    assert rows[1][3] == ("发件人未通过认证：邮件来自外部：mail.company.example (Postfix) 从 203.0.113.5 收到，"
                          "未经登录认证；未做任何更改，也不回复")
    # The admin sees both: report messages and the log, with today's count.
    report = flow.report_text("messages")
    assert report.count("发件人未通过认证") == 2 and "203.0.113.5" in report
    log = caplog.text
    assert f"不受信任的邮件 #{rows[0][0]}（发件人 {ZHAO}）" in log
    assert re.search(r"今天（\d{4}-\d\d-\d\d）共收到 2 封不受信任的邮件", log), log

    # The real 赵六, submitting through our server, is obeyed.
    sent = flow.deliver(on_top(orders.approval(request), SUBMITTED))
    assert shape(sent) == [((ZHENG,), (ZHANG, ZHAO))]
    assert orders.state() == "rd_review"


def test_default_config_forged_work_order_is_not_registered(tmp_path, imap_server, smtp_server, capsys):
    flow = Flow(tmp_path, imap_server, smtp_server, capsys, trust=None)
    assert flow.deliver(submission()) == []
    assert flow.db("select count(*) from tickets")[0][0] == 0
    assert flow.messages()[-1][1] == "untrusted"


def test_internal_network_from_the_config(tmp_path, imap_server, smtp_server, capsys):
    flow = Flow(tmp_path, imap_server, smtp_server, capsys, trust='internal_networks = ["10.20.0.0/16"]')
    office = hop("ESMTP", "pc17.corp.example (unknown [10.20.3.4])")
    request = Orders(flow, office).submit()
    # Outside the configured network: refused.
    guest = hop("ESMTP", "laptop (unknown [10.99.3.4])")
    assert flow.deliver(on_top(Orders(flow).approval(request), guest)) == []
    assert Orders(flow).state() == "pending_approval"
    sent = flow.deliver(on_top(Orders(flow).approval(request), office))
    assert shape(sent) == [((ZHENG,), (ZHANG, ZHAO))]


# ---------------------------------------------------------------------------
# the DMARC gate (require_dmarc = true)
# ---------------------------------------------------------------------------

PASS_X = f"Authentication-Results: {OURS}; dmarc=pass header.from=x.example"
FORGERIES = {
    "dmarc_pass_for_another_domain": lambda m: on_top(m, PASS_X),
    "quoted_local_part": lambda m: on_top(with_from(m, '"zhaoliu@company.example"@x.example'), PASS_X),
    "second_angle_address": lambda m: on_top(with_from(m, "赵六 <zhaoliu@company.example> <evil@x.example>"), PASS_X),
    "two_from_addresses": lambda m: on_top(with_from(m, "赵六 <zhaoliu@company.example>, 坏人 <evil@x.example>"),
                                           PASS_X),
    "two_from_headers": lambda m: on_top(with_from(m, "赵六 <zhaoliu@company.example>", "坏人 <evil@x.example>"),
                                         PASS_X),
    "envelope_dmarc_pass_next_to_our_fail": lambda m: on_top(
        m, f"Authentication-Results: {OURS}; spf=pass smtp.mailfrom=dmarc=pass@x.example; "
           f"dmarc=fail header.from=company.example"),
    "other_authserv_id": lambda m: on_top(m, "Authentication-Results: mx.evil.example; dmarc=pass header.from=company.example"),
}
GENUINE = f"Authentication-Results: {OURS}; dmarc=pass (p=reject dis=none) header.from=company.example"


@pytest.mark.parametrize("case", sorted(FORGERIES))
def test_dmarc_gate_refuses_forged_approval(tmp_path, imap_server, smtp_server, capsys, case):
    flow = Flow(tmp_path, imap_server, smtp_server, capsys, trust=None)
    gate(flow)
    orders = Orders(flow, GENUINE)
    request = orders.submit()
    assert flow.deliver(FORGERIES[case](orders.approval(request))) == []
    assert orders.state() == "pending_approval"
    _id, status, _rule, reason = orders.last_message()
    assert status == "untrusted" and reason.startswith("发件人未通过认证：") and reason.endswith("未做任何更改，也不回复")


def test_dmarc_gate_accepts_dmarc_pass_for_the_from_domain(tmp_path, imap_server, smtp_server, capsys):
    flow = Flow(tmp_path, imap_server, smtp_server, capsys, trust=None)
    gate(flow)
    orders = Orders(flow, GENUINE)
    request = orders.submit()
    sent = flow.deliver(on_top(orders.approval(request), GENUINE))
    assert shape(sent) == [((ZHENG,), (ZHANG, ZHAO))]
    assert orders.state() == "rd_review"


def test_dmarc_gate_accepts_spf_and_dmarc_in_separate_headers(tmp_path, imap_server, smtp_server, capsys):
    flow = Flow(tmp_path, imap_server, smtp_server, capsys, trust=None)
    gate(flow)
    separate = (f"Authentication-Results: {OURS}; spf=pass smtp.mailfrom=zhangsan@company.example",
                f"Authentication-Results: {OURS}; dkim=pass header.d=company.example header.s=s1",
                f"Authentication-Results: {OURS}; dmarc=pass header.from=company.example")
    orders = Orders(flow, *separate)
    request = orders.submit()
    sent = flow.deliver(on_top(orders.approval(request), *separate))
    assert shape(sent) == [((ZHENG,), (ZHANG, ZHAO))]
    assert orders.state() == "rd_review"
