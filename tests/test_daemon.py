"""The daemon as admins run it: a real `run.py serve` process."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

from support import DIRECTORY, ROOT, make_mail, write_config

NEWCOMER = '\n[[people]]\nname = "吴八"\nemails = ["wuba@company.example"]\nroles = ["售前"]\n'


def serve(cfg) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--config", str(cfg), "serve"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT, text=True)


def test_sighup_reloads_the_directory_and_keeps_the_old_one_if_the_new_is_bad(tmp_path, imap_server, smtp_server):
    cfg = write_config(tmp_path, imap=imap_server, smtp=smtp_server)
    directory = tmp_path / "directory.toml"
    proc = serve(cfg)
    try:
        imap_server.append(make_mail(subject="工单测试 一", sender="wuba@company.example", sender_name="吴八"))
        imap_server.append(make_mail(subject="工单测试 对照"))
        smtp_server.wait_for(1, timeout=60)
        time.sleep(1.5)
        assert [m.rcpt_tos for m in smtp_server.messages] == [["zhangsan@company.example"]]  # 吴八 unknown yet

        directory.write_text(DIRECTORY + NEWCOMER, encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.5)
        imap_server.append(make_mail(subject="工单测试 二", sender="wuba@company.example", sender_name="吴八"))
        got = smtp_server.wait_for(2, timeout=60)
        assert got[1].rcpt_tos == ["wuba@company.example"] and got[1].subject == "回执：工单测试 二"

        directory.write_text(DIRECTORY + NEWCOMER + '[[people]]\nname = "坏"\nroles = ["老板"]\n', encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.5)
        imap_server.append(make_mail(subject="工单测试 三", sender="wuba@company.example", sender_name="吴八"))
        got = smtp_server.wait_for(3, timeout=60)
        assert got[2].subject == "回执：工单测试 三"  # the previous directory is still in force
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert proc.returncode == 0
    assert "重新加载被拒绝" in err and "老板" in err  # the admin sees why in the log


def test_serve_refuses_a_bad_config_with_file_key_and_reason(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text("[smtp]\nport = 0\n", encoding="utf-8")
    res = subprocess.run([sys.executable, str(ROOT / "run.py"), "--config", str(cfg), "serve"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 1
    assert f"{cfg}: smtp.port" in res.stderr
