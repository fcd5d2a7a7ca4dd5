"""A bad config is refused, naming the file, the key and what is wrong."""
from __future__ import annotations

import shutil

import pytest

from support import ROOT, run, write_config


def check_output(cfg, capsys) -> tuple[int, str]:
    code = run(cfg, "check")
    out = capsys.readouterr()
    return code, out.out + out.err


def test_good_config_passes(tmp_path, capsys):
    cfg = write_config(tmp_path)
    code, out = check_output(cfg, capsys)
    assert code == 0, out
    assert "配置检查通过" in out


def test_shipped_example_config_is_valid(capsys, monkeypatch):
    monkeypatch.setenv("PROCESSOR_IMAP_PASSWORD", "x")
    monkeypatch.setenv("PROCESSOR_SMTP_PASSWORD", "x")
    code = run(ROOT / "config.example.toml", "check")
    out = capsys.readouterr()
    assert code == 0, out.err


@pytest.mark.parametrize("extra, key, words", [
    ("[smtp]\nport = 99999\n", "smtp.port", "必须小于或等于 65535，现为 99999"),
    ("[limits]\nmax_attachment_size = 30000000\n", "limits",
     "max_attachment_size（30000000）不能大于 max_attachments_total（26214400，每封邮件保留的附件总大小）"),
    ("[limits]\nmax_mime_depth = 0\n", "limits.max_mime_depth", "必须大于或等于 1，现为 0"),
    ("[limits]\nmax_crashes = 0\n", "limits.max_crashes", "必须大于或等于 1，现为 0"),
    ("[limits]\nreplies_per_recipient_per_day = -1\n", "limits.replies_per_recipient_per_day", "必须大于或等于 0，现为 -1"),
    ("[outbox]\nmax_attemps = 3\n", "outbox.max_attemps", "未知的键（拼写错误？）：是不是 max_attempts？"),
    ('[[accounts]]\nname = "a"\nhost = "h"\nusername = "u"\npassword_env = "X"\nfetch_bytes = 1000\n',
     "accounts[0].fetch_bytes", "必须大于或等于 1048576，现为 1000"),
    ('[[accounts]]\nname = "a"\nhost = "h"\nusername = "u"\npassword_env = "X"\n' * 2, "accounts",
     "[[accounts]] 的 name 不能重复，重复的有：a"),
    ("[smtp]\nport = \"abc\"\n", "smtp.port", "必须是整数，现为 \"abc\""),
    ("[smtp]\nssl = \"maybe\"\n", "smtp.ssl", "必须是 true 或 false（小写，不加引号），现为 \"maybe\""),
    ("[smtp]\nhost = 5\n", "smtp.host", "必须是字符串"),
    ("[smtp]\nssl = true\nstarttls = true\n", "smtp", "ssl 和 starttls 不能同时为 true"),
    ("[[accounts]]\nname = \"a\"\n", "accounts[0].host", "缺少必填的键"),
    ("[[accounts]]\nname = \"a\"\nhost = \"h\"\nusername = \"u\"\npassword_env = \"X\"\nfolders = \"INBOX\"\n",
     "accounts[0].folders", "必须是数组"),
    ("[[accounts]]\nname = \"a\"\nhost = \"h\"\nusername = \"u\"\npassword_env = \"X\"\nzzz = 1\n",
     "accounts[0].zzz", "未知的键（拼写错误？）；这里可以写的键：after、auth、"),
    ("[daemon]\nretry_interval = 0\n", "daemon.retry_interval", "必须大于 0，现为 0"),
    ("[system]\naddress = \"not-an-address\"\n", "system.address", "“not-an-address”不是合法的邮件地址：缺少 @（应写工单系统邮箱的地址"),
    ("[[accounts]]\nname = \"a\"\nhost = \"h\"\nusername = \"u\"\n", "accounts[0]", "时必须设置 password_env"),
    ("[[accounts]]\nname = \"a\"\nhost = \"h\"\nusername = \"u\"\npassword_env = \"X\"\nafter = \"delete\"\n",
     "accounts[0].after", '只能是以下之一："keep"、"flag"、"move"，现为 "delete"'),
    ("[[accounts]]\nname = \"a\"\nhost = \"h\"\nusername = \"u\"\npassword_env = \"X\"\nidle_renew = 3600\n",
     "accounts[0].idle_renew", "必须小于或等于 1740"),
    ("[system]\nrequire_dmarc = true\n", "system", "时必须设置 authserv_id"),
])
def test_bad_values_name_file_key_and_reason(tmp_path, capsys, extra, key, words):
    cfg = tmp_path / "config.toml"
    cfg.write_text(extra, encoding="utf-8")
    code, out = check_output(cfg, capsys)
    assert code == 1
    line = next(l for l in out.splitlines() if str(cfg) in l)
    assert f"{cfg}: {key}" in line and words in line, out


def test_toml_syntax_error_names_the_line(tmp_path, capsys):
    cfg = tmp_path / "config.toml"
    cfg.write_text("[smtp]\nport = \n", encoding="utf-8")
    code, out = check_output(cfg, capsys)
    assert code == 1
    assert f"{cfg}: -: TOML 语法错误：第 2 行第 8 列：值缺失或不合法" in out, out


def test_missing_config_file(tmp_path, capsys):
    code, out = check_output(tmp_path / "nope.toml", capsys)
    assert code == 1 and "找不到配置文件" in out


def test_unset_password_env_is_reported(tmp_path, capsys, monkeypatch):
    class Imap:
        host, port, user, password = "127.0.0.1", 143, "u", "p"
    cfg = write_config(tmp_path, imap=Imap())
    monkeypatch.delenv("TEST_IMAP_PASSWORD")
    code, out = check_output(cfg, capsys)
    assert code == 1 and "accounts.support.password_env: 环境变量 TEST_IMAP_PASSWORD 没有设置" in out, out


@pytest.mark.parametrize("directory, key, words", [
    ('[[people]]\nname = "甲"\nemails = ["a@x.cn"]\nroles = ["售後"]\n', "people[0].roles[0]", "甲：未知的角色“售後”"),
    ('[[people]]\nname = "甲"\nemails = ["a@x.cn"]\nroles = ["销售"]\n[[people]]\nname = "乙"\nemails = ["A@x.cn"]\nroles = ["售前"]\n',
     "people[1].emails", "地址 a@x.cn 已经登记给了 甲"),
    ('[[people]]\nname = "甲"\nemails = ["a@x.cn"]\nroles = ["销售"]\n[[people]]\nname = "乙"\nemails = ["b@x.cn"]\nroles = ["销售"]\n'
     '[[projects]]\nname = "P"\nsales = "甲"\npresales1 = "乙"\n', "projects[0].presales1", "第一售前 乙 没有“售前”角色"),
    ('[[people]]\nname = "甲"\nemails = ["a@x.cn"]\nroles = ["销售", "售前"]\n'
     '[[projects]]\nname = "P"\nsales = "甲"\npresales1 = "丙"\n', "projects[0].presales1", "第一售前“丙”不在 [[people]] 中"),
    ('[[people]]\nname = "甲"\nemails = ["a@x.cn"]\nroles = ["销售", "售前"]\n'
     '[[projects]]\nname = "华夏银行"\nsales = "甲"\npresales1 = "甲"\n[[projects]]\nname = "华夏银行项目"\nsales = "甲"\npresales1 = "甲"\n',
     "projects[1].name", "会同时匹配项目 华夏银行 和 华夏银行项目"),
    ('[[people]]\nname = "甲"\nemails = ["not an address"]\n', "people[0].emails[0]", "甲：“not an address”不是合法的邮件地址：缺少 @"),
    ('[[peoples]]\nname = "甲"\n', "peoples", "未知的键（拼写错误？）：是不是 people？"),
])
def test_bad_directory(tmp_path, capsys, directory, key, words):
    cfg = write_config(tmp_path, directory=directory)
    code, out = check_output(cfg, capsys)
    assert code == 1
    d = tmp_path / "directory.toml"
    assert any(f"{d}: {key}" in l and words in l for l in out.splitlines()), out


@pytest.mark.parametrize("rule, key, words", [
    ('name = "x"\n[match]\nsubject = "(["\n[do]\naction = "acknowledge"\n', "match.subject", "正则表达式不合法"),
    ('name = "x"\n[match]\nsubject = "^a"\n[do]\naction = "no_such_action"\n', "do.action", "未知的动作 'no_such_action'；可用的动作："),
    ('name = "x"\n[match]\nsubject = "^a"\nsender_roles = ["老板"]\n[do]\naction = "acknowledge"\n', "match.sender_roles", "未知的角色“老板”"),
    ('name = "x"\n[match]\nsubject = "^a"\n[validate]\nrequired = ["result"]\n[do]\naction = "acknowledge"\n',
     "validate.required[0]", "引用的字段 'result' 没有在 [fields] 中定义"),
    ('name = "x"\n[match]\nsubject = "^a"\n[do]\naction = "acknowledge"\ntemplates = { ack = "nope" }\n',
     "do.templates.ack", "找不到模板 'nope'"),
    ('name = "x"\n[macth]\nsubject = "^a"\n', "macth", "未知的键（拼写错误？）：是不是 match？"),
])
def test_bad_rule(tmp_path, capsys, rule, key, words):
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    (rules / "zz_bad.toml").write_text(rule, encoding="utf-8")
    cfg = write_config(tmp_path, rules_dir=rules)
    code, out = check_output(cfg, capsys)
    assert code == 1
    bad = rules / "zz_bad.toml"
    assert any(f"{bad}: {key}" in l and words in l for l in out.splitlines()), out


def test_bad_template(tmp_path, capsys):
    tpl = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", tpl)
    (tpl / "broken.txt.j2").write_text("Subject: x\n\n{% if %}\n", encoding="utf-8")
    (tpl / "nosubject.txt.j2").write_text("hello\n", encoding="utf-8")
    cfg = write_config(tmp_path, templates_dir=tpl)
    code, out = check_output(cfg, capsys)
    assert code == 1
    assert f"{tpl / 'broken.txt.j2'}: 第 3 行: 模板语法错误" in out, out
    assert f"{tpl / 'nosubject.txt.j2'}: 第 1 行: 必须以 “Subject: 邮件主题” 开头" in out, out


def test_daemon_refuses_bad_config(tmp_path, capsys):
    cfg = tmp_path / "config.toml"
    cfg.write_text("[store]\nurl = 5\n", encoding="utf-8")
    assert run(cfg, "once") == 1
    assert f"{cfg}: store.url: 必须是字符串（用双引号括起来），现为 5" in capsys.readouterr().err
