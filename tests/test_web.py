"""The read-only web view over HTTP, against a real uvicorn server: login by a
code mailed through the outbox (captured by aiosmtpd), access per role, no
page without a session, attachment downloads checked against access,
/healthz and /metrics. Runs on SQLite and on PostgreSQL."""
from __future__ import annotations

import json
import re
from html import unescape

import httpx
import pytest

from conventions.helpers import LI, ZHANG, Flow
from web_support import QIAN, WEB, ZHOU, login, scripted_mails, wait_code

from support import run


def this_month_of(rt) -> str:
    from processor.web.pages import this_month
    return this_month(rt, rt.clock())


def table_rows(html: str) -> list[list[str]]:
    """The cells of the page's report table as text (links and tags dropped)."""
    part = html.split('id="table"')[1].split("</section>")[0]
    rows = []
    for tr in re.findall(r"<tr>(.*?)</tr>", part, re.S):
        cells = re.findall(r"<t[hd]>(.*?)</t[hd]>", tr, re.S)
        rows.append([unescape(re.sub(r"<[^>]+>", "", c)) for c in cells])
    return rows


@pytest.fixture
def site(tmp_path, imap_server, smtp_server, capsys, db_url):
    from processor.config import load_config
    from processor.pipeline import Runtime
    from processor.web.app import Server

    flow = Flow(tmp_path, imap_server, smtp_server, capsys, db_url=db_url, extra=WEB)
    nums = scripted_mails(flow)
    rt = Runtime(load_config(flow.cfg))
    srv = Server(rt, host="127.0.0.1", port=0).start()
    flow.web = srv.web  # the running app's state (its code book)
    try:
        yield flow, f"http://127.0.0.1:{srv.port}", nums, rt
    finally:
        srv.stop()
        rt.store.dispose()


def test_login_code_is_mailed_through_the_outbox_and_works_once(site):
    flow, base, _nums, _rt = site
    smtp = flow.smtp
    c = httpx.Client(base_url=base, follow_redirects=False)
    seen = len(smtp.messages)
    assert c.post("/login", data={"address": QIAN}).status_code == 200
    code = wait_code(smtp, QIAN, seen)
    mail = next(m for m in smtp.messages[seen:] if QIAN in m.header("To"))
    assert mail.subject == f"网页登录验证码：{code}" and "钱经理，您好" in mail.text and "只能使用一次" in mail.text
    # Queued like every other mail: an outbox row, marked sent once the server took it (the
    # delivery thread records that just after the server's answer: a bounded wait).
    import time
    for _ in range(200):
        rows = flow.db("select status, template from outbox where subject = :s", s=mail.subject)
        if rows == [("sent", "web_login_code")]:
            break
        time.sleep(0.05)
    assert rows == [("sent", "web_login_code")]
    # A wrong code is refused; the right one logs in once; the same code again is refused.
    assert c.post("/login", data={"address": QIAN, "code": "000000" if code != "000000" else "111111"}).status_code == 403
    r = c.post("/login", data={"address": QIAN, "code": code})
    assert r.status_code == 303
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie  # cookie_secure = false here
    again = httpx.Client(base_url=base, follow_redirects=False)
    r = again.post("/login", data={"address": QIAN, "code": code})
    assert r.status_code == 403 and "验证码不正确、已过期或已使用" in r.text
    assert again.get("/").status_code == 303


def test_a_stranger_gets_the_same_answer_and_no_mail(site):
    flow, base, _nums, _rt = site
    c = httpx.Client(base_url=base)
    seen = len(flow.smtp.messages)
    r = c.post("/login", data={"address": "mallory@evil.example"})
    assert r.status_code == 200 and "如果该地址在通讯录中，验证码已发到该邮箱" in r.text
    assert flow.db("select count(*) from outbox where template = 'web_login_code'") == [(0,)]
    assert len(flow.smtp.messages) == seen


def test_expired_code_refused(site):
    flow, base, _nums, _rt = site
    c = httpx.Client(base_url=base, follow_redirects=False)
    clock = [1000.0]
    flow.web.codes.clock = lambda: clock[0]  # the code book's clock, moved past the code's lifetime below
    seen = len(flow.smtp.messages)
    c.post("/login", data={"address": LI})
    code = wait_code(flow.smtp, LI, seen)
    clock[0] += 10 * 60 + 1  # code_minutes = 10
    r = c.post("/login", data={"address": LI, "code": code})
    assert r.status_code == 403 and c.get("/").status_code == 303


def test_codes_are_rate_limited_per_address(site):
    flow, base, _nums, _rt = site
    c = httpx.Client(base_url=base)
    for _ in range(5):  # codes_per_hour = 5
        assert "验证码已发到该邮箱" in c.post("/login", data={"address": ZHOU}).text
    r = c.post("/login", data={"address": ZHOU})
    assert "获取验证码过于频繁" in r.text
    assert flow.db("select count(*) from outbox where template = 'web_login_code'") == [(5,)]


def test_no_page_without_a_session(site):
    _flow, base, nums, _rt = site
    c = httpx.Client(base_url=base, follow_redirects=False)
    for path in ["/", f"/r/{nums['workorder']}", "/search?q=华夏", "/report/tracking", "/report/sla",
                 "/report/complaints", "/tracking.xlsx", f"/r/{nums['workorder']}/files/1"]:
        r = c.get(path)
        assert r.status_code == 303 and r.headers["location"] == "/login", path
    # A forged cookie is no session either.
    c.cookies.set("tp_session", "eyJhIjoicWlhbkBjb21wYW55LmV4YW1wbGUifQ.forged.sig")
    assert c.get("/").status_code == 303


def test_access_per_role_and_attachment_download(site):
    flow, base, nums, _rt = site
    wo, fu, df = nums["workorder"], nums["followup"], nums["dongfang"]
    att = flow.db("select a.id from attachments a join tickets t on t.id = a.ticket_id where t.number = :n", n=wo)[0][0]
    # 钱经理 (技术支持部经理) sees everything, the log included.
    qian = login(base, flow.smtp, QIAN)
    for n in (wo, fu, df):
        r = qian.get(f"/r/{n}")
        assert r.status_code == 200 and n in r.text
    r = qian.get(f"/r/{wo}/files/{att}")
    assert r.status_code == 200 and r.content.startswith(b"2026-11-20 10:01:02 ERROR vrrp")
    assert r.headers["content-disposition"] == "attachment; filename*=UTF-8''vrrp.log"
    # 李四 (销售 of 华夏银行) sees the 华夏银行 records and their files, not 东方电网's.
    li = login(base, flow.smtp, LI)
    assert li.get(f"/r/{wo}").status_code == 200 and li.get(f"/r/{wo}/files/{att}").status_code == 200
    r = li.get(f"/r/{df}")
    assert r.status_code == 404 and "东方电网" not in r.text
    # 周七 (销售 of 东方电网) the other way round: no 华夏银行 record, no log.
    zhou = login(base, flow.smtp, ZHOU)
    assert zhou.get(f"/r/{df}").status_code == 200
    for path in (f"/r/{wo}", f"/r/{fu}", f"/r/{wo}/files/{att}"):
        r = zhou.get(path)
        assert r.status_code == 404 and b"vrrp" not in r.content, path
    assert "华夏银行" not in zhou.get("/search?q=华夏").text.split("<h1>搜索</h1>")[1]
    assert wo not in zhou.get("/").text
    # Per-person tables: 周七 sees no one else's complaints or 项目跟踪表 rows.
    assert "张三" not in zhou.get("/report/tracking").text.split('id="table"')[1]
    # 张三 (第一售前 of 华夏银行) sees his table; the manager sees it too.
    zhang = login(base, flow.smtp, ZHANG)
    assert "核心交换机割接后专线时断时续" in zhang.get("/report/tracking").text
    assert "核心交换机割接后专线时断时续" in qian.get("/report/tracking?presales=张三").text


def test_record_page_shows_state_history_clocks_and_mails(site):
    flow, base, nums, _rt = site
    wo = nums["workorder"]
    qian = login(base, flow.smtp, QIAN)
    html = qian.get(f"/r/{wo}").text
    assert '<td id="state">待研发审核</td>' in html
    assert "待审批 → 待研发审核（同意）" in html and "赵六" in html  # who, and the mail that caused it
    assert "回复：请审批故障处理工作单" in html
    assert "故障处理-华夏银行-核心交换机VRRP主备频繁切换" in html  # the mail in
    assert "回执：故障处理工作单已登记" in html  # a mail out
    assert "VRRP 主备每 5 分钟切换一次" in html  # a field
    assert "“待研发审核”环节" in html  # its step clock, named from the lifecycle
    clocks = html.split('id="clocks"')[1].split("</section>")[0]
    approval = next(r for r in clocks.split("<tr") if "“待审批”环节" in r)
    assert "<td>已停止</td>" in approval and "售前经理：赵六" in approval  # left 待审批 when 赵六 approved
    review = next(r for r in clocks.split("<tr") if "“待研发审核”环节" in r)
    assert "<td>计时中</td>" in review and "研发经理：郑经理" in review


def test_search_dashboard_reports_and_xlsx(site):
    flow, base, nums, rt = site
    qian = login(base, flow.smtp, QIAN)
    wo = nums["workorder"]
    for q in (wo, "VRRP", "核心交换机割接后专线"):
        assert 'href="/r/' in qian.get("/search", params={"q": q}).text
    assert wo in qian.get("/search", params={"q": wo}).text
    assert nums["followup"] in qian.get("/search", params={"q": "核心交换机割接后专线"}).text
    dash = qian.get("/").text
    assert "故障处理工作单" in dash and "待研发审核" in dash and "遗留问题跟进单" in dash
    assert 'id="quarantine">0<' in dash
    # The SLA and complaint pages hold exactly the rows `report sla` / `report complaints` print.
    month = this_month_of(rt)
    for kind in ("sla", "complaints"):
        assert run(flow.cfg, "report", kind, "--month", month, "--format", "json") == 0
        printed = json.loads(flow.capsys.readouterr().out)
        page = table_rows(qian.get(f"/report/{kind}", params={"month": month}).text)
        if printed:
            assert page[0] == list(printed[0]) and page[1:] == [list(r.values()) for r in printed], kind
        else:
            assert page == [], kind
    assert len(printed) == 1 and printed[0]["有效投诉"] == "1"  # the complaints table is not empty
    r = qian.get("/tracking.xlsx", params={"month": month, "presales": "张三"})
    assert r.headers["content-disposition"].startswith("attachment; filename*=UTF-8''")
    assert r.status_code == 200 and r.content[:2] == b"PK"
    import io
    import openpyxl
    ws = openpyxl.load_workbook(io.BytesIO(r.content)).worksheets[0]
    cells = {str(c.value) for row in ws.iter_rows() for c in row if c.value is not None}
    assert "核心交换机割接后专线时断时续，等待运营商排查" in cells


def test_metrics_count_the_mails(site):
    flow, base, _nums, _rt = site
    text = httpx.get(base + "/metrics").text
    n_in = flow.db("select count(*) from messages where status = 'processed'")[0][0]
    n_out = flow.db("select count(*) from outbox where status = 'sent'")[0][0]
    assert f'ticket_mails_total{{status="processed"}} {float(n_in)}' in text
    assert f'ticket_replies_total{{status="sent"}} {float(n_out)}' in text
    assert f"ticket_reply_latency_seconds_count {float(n_out)}" in text
    assert "ticket_quarantine_size 0.0" in text


def test_dashboard_complaints_unregistered_and_per_person_limits(site):
    flow, base, nums, _rt = site
    qian = login(base, flow.smtp, QIAN)
    dash = qian.get("/").text
    complaints = dash.split('id="complaints"')[1].split("</section>")[0]
    assert "<td>张三</td><td>1</td>" in complaints and nums["complaint"] in complaints
    unregistered = dash.split('id="unregistered"')[1].split("</section>")[0]
    assert "南方航空" in unregistered and "<td>1</td>" in unregistered  # one 立项 reminder
    # 周七 sees neither 张三's complaints nor 张三's 未立项 project, nor the quarantine count.
    zhou = login(base, flow.smtp, ZHOU).get("/").text
    assert "张三" not in zhou.split('id="complaints"')[1] and "南方航空" not in zhou and 'id="quarantine"' not in zhou
    # 张三 sees his own 未立项 project.
    assert "南方航空" in login(base, flow.smtp, ZHANG).get("/").text


def test_overdue_clocks_on_the_dashboard_with_their_owners(site):
    """Seen a week later (the view's clock moved on), the work order's 待研发审核 step clock
    (1 working day, owned by the 研发经理) is overdue."""
    from datetime import timedelta

    from processor.config import load_config
    from processor.pipeline import Runtime
    from processor.web.app import Server

    flow, _base, nums, _rt = site
    later = Runtime(load_config(flow.cfg))
    real = later.clock
    later.clock = lambda: real() + timedelta(days=7)
    srv = Server(later, host="127.0.0.1", port=0).start()
    try:
        qian = login(f"http://127.0.0.1:{srv.port}", flow.smtp, QIAN)
        clocks = qian.get("/").text.split('id="clocks"')[1].split("</section>")[0]
        row = next(r for r in clocks.split("<tr") if nums["workorder"] in r and "待研发审核" in r)
        assert 'class="overdue"' in row and "郑经理" in row and "（已超时）" in row
        # The follow-up's clocks too, owned by 张三.
        assert any(nums["followup"] in r and "张三" in r and "overdue" in r for r in clocks.split("<tr"))
        # Today, nothing is overdue yet.
        now = login(_base, flow.smtp, QIAN).get("/").text.split('id="clocks"')[1].split("</section>")[0]
        assert "（已超时）" not in now
    finally:
        srv.stop()
        later.store.dispose()


def test_web_config_problems_in_chinese(tmp_path):
    from processor.config import ConfigError, load_config

    p = tmp_path / "config.toml"
    p.write_text('[web]\nlisten = "8080"\nroles_see_all = ["总经"]\nalert_to = ["admin"]\n', encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    got = {k: why for _f, k, why in e.value.problems}
    assert got["web.listen"] == "应写成 主机:端口，例如 \"127.0.0.1:8080\"，现为 '8080'"
    assert got["web.roles_see_all"] == "未知的角色 '总经'，是不是 '总经理'？"
    assert got["web.alert_to"].startswith("第 1 项：")


def test_web_command_names_a_busy_port_in_chinese(tmp_path, capsys):
    import socket

    from support import run, write_config

    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        cfg = write_config(tmp_path, extra=f'\n[web]\nlisten = "127.0.0.1:{port}"\n')
        assert run(cfg, "web") == 2
    err = capsys.readouterr().err
    assert f"错误：网页视图无法监听 127.0.0.1:{port}：端口已被占用" in err and "[web] listen" in err
