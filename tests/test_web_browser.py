"""The web view in a real headless browser: Debian's chromium driven by
Selenium through Debian's chromedriver (nothing downloaded). A scripted run of
mails goes through Dovecot + aiosmtpd first; then a 技术支持部经理 logs in with
the code aiosmtpd captured, sees the records on the dashboard, opens the work
order's page (its whole history) and finds it by number and by a word of its
text. Screenshots are saved under test-artifacts/web/ (gitignored)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conventions.helpers import Flow
from web_support import QIAN, WEB, scripted_mails, wait_code

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "web"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path, pkg in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not Path(path).exists() and not shutil.which(Path(path).name):
            pytest.fail(f"{path} is missing: apt-get install -y {pkg}", pytrace=False)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=412,915",
              "--lang=zh-CN"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    drv.implicitly_wait(10)  # element lookups wait for the page a click loads
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield drv
    finally:
        drv.quit()


def shot(drv, name: str) -> None:
    drv.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def test_manager_logs_in_sees_the_dashboard_a_work_order_and_finds_it(tmp_path, imap_server, smtp_server, capsys, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    def lands_on(url: str) -> None:
        # A click that navigates returns before the next page has loaded.
        WebDriverWait(drv, 10).until(EC.url_to_be(url))

    from processor.config import load_config
    from processor.pipeline import Runtime
    from processor.web.app import Server

    flow = Flow(tmp_path, imap_server, smtp_server, capsys, extra=WEB)
    nums = scripted_mails(flow)
    wo = nums["workorder"]
    rt = Runtime(load_config(flow.cfg))
    srv = Server(rt, host="127.0.0.1", port=0).start()
    base = f"http://127.0.0.1:{srv.port}"
    drv = browser
    try:
        # Any page sends a visitor without a session to the login page.
        drv.get(base + "/")
        lands_on(base + "/login")
        seen = len(smtp_server.messages)
        drv.find_element(By.ID, "address").send_keys(QIAN)
        drv.find_element(By.ID, "send").click()
        WebDriverWait(drv, 10).until(EC.text_to_be_present_in_element((By.ID, "message"), "验证码已发到该邮箱"))
        code = wait_code(smtp_server, QIAN, seen)
        shot(drv, "1-login-code")
        drv.find_element(By.ID, "code").send_keys(code)
        drv.find_element(By.ID, "enter").click()
        lands_on(base + "/")
        shot(drv, "2-dashboard")
        opened = drv.find_element(By.ID, "open").text
        # Each record kind the mails opened, with its declared state names.
        assert "故障处理工作单 待研发审核 1" in opened
        assert "遗留问题跟进单" in opened
        assert "钱经理" in drv.find_element(By.TAG_NAME, "header").text

        # Search by number, then open the work order from the results.
        drv.get(base + "/search")
        drv.find_element(By.ID, "q").send_keys(wo)
        drv.find_element(By.ID, "go").click()
        drv.find_element(By.LINK_TEXT, wo).click()
        lands_on(f"{base}/r/{wo}")
        shot(drv, "3-work-order")
        assert drv.find_element(By.ID, "state").text == "待研发审核"
        history = drv.find_element(By.ID, "history").text
        lines = [l for l in history.splitlines() if "→" in l or "workorder" in l]
        assert any("待审批 → 待研发审核（同意）" in l and "赵六" in l and "回复：请审批故障处理工作单" in l for l in lines), history
        assert "张三" in history  # the submission
        drv.execute_script("document.getElementById('history').scrollIntoView()")
        shot(drv, "3b-work-order-history")
        assert "vrrp.log" in drv.find_element(By.ID, "files").text
        mails = drv.find_element(By.ID, "mails").text
        assert "故障处理-华夏银行-核心交换机VRRP主备频繁切换" in mails and "回执：故障处理工作单已登记" in mails

        # Search by a word of its text.
        drv.get(base + "/search?q=VRRP")
        shot(drv, "4-search-word")
        assert wo in drv.find_element(By.ID, "results").text
    finally:
        srv.stop()
        rt.store.dispose()
