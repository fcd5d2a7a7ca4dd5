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
    ("[smtp]\nport = 99999\n", "smtp.port", "less than or equal to 65535"),
    ("[limits]\nreplies_per_recipient_per_day = -1\n", "limits.replies_per_recipient_per_day", "greater than or equal to 0"),
    ("[outbox]\nmax_attemps = 3\n", "outbox.max_attemps", "unknown key"),
    ("[system]\naddress = \"not-an-address\"\n", "system.address", "must be an email address"),
    ("[[accounts]]\nname = \"a\"\nhost = \"h\"\nusername = \"u\"\n", "accounts[0]", "password_env"),
    ("[[accounts]]\nname = \"a\"\nhost = \"h\"\nusername = \"u\"\npassword_env = \"X\"\nafter = \"delete\"\n",
     "accounts[0].after", "'keep', 'flag' or 'move'"),
    ("[[accounts]]\nname = \"a\"\nhost = \"h\"\nusername = \"u\"\npassword_env = \"X\"\nidle_renew = 3600\n",
     "accounts[0].idle_renew", "less than or equal to 1740"),
    ("[system]\nrequire_dmarc = true\n", "system", "authserv_id"),
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
    assert str(cfg) in out and "TOML syntax error" in out and "line 2" in out


def test_missing_config_file(tmp_path, capsys):
    code, out = check_output(tmp_path / "nope.toml", capsys)
    assert code == 1 and "file not found" in out


def test_unset_password_env_is_reported(tmp_path, capsys, monkeypatch):
    class Imap:
        host, port, user, password = "127.0.0.1", 143, "u", "p"
    cfg = write_config(tmp_path, imap=Imap())
    monkeypatch.delenv("TEST_IMAP_PASSWORD")
    code, out = check_output(cfg, capsys)
    assert code == 1 and "accounts.support.password_env" in out and "TEST_IMAP_PASSWORD" in out


@pytest.mark.parametrize("directory, key, words", [
    ('[[people]]\nname = "甲"\nemails = ["a@x.cn"]\nroles = ["售後"]\n', "people[0].roles[0]", "unknown role"),
    ('[[people]]\nname = "甲"\nemails = ["a@x.cn"]\nroles = ["销售"]\n[[people]]\nname = "乙"\nemails = ["A@x.cn"]\nroles = ["售前"]\n',
     "people[1].emails", "also listed for 甲"),
    ('[[people]]\nname = "甲"\nemails = ["a@x.cn"]\nroles = ["销售"]\n[[people]]\nname = "乙"\nemails = ["b@x.cn"]\nroles = ["销售"]\n'
     '[[projects]]\nname = "P"\nsales = "甲"\npresales1 = "乙"\n', "projects[0].presales1", "does not have the role 售前"),
    ('[[people]]\nname = "甲"\nemails = ["a@x.cn"]\nroles = ["销售", "售前"]\n'
     '[[projects]]\nname = "P"\nsales = "甲"\npresales1 = "丙"\n', "projects[0].presales1", "not in [[people]]"),
    ('[[people]]\nname = "甲"\nemails = ["a@x.cn"]\nroles = ["销售", "售前"]\n'
     '[[projects]]\nname = "华夏银行"\nsales = "甲"\npresales1 = "甲"\n[[projects]]\nname = "华夏银行项目"\nsales = "甲"\npresales1 = "甲"\n',
     "projects[1].name", "would match both"),
    ('[[people]]\nname = "甲"\nemails = ["not an address"]\n', "people[0].emails[0]", "not an email address"),
    ('[[peoples]]\nname = "甲"\n', "peoples", "unknown key"),
])
def test_bad_directory(tmp_path, capsys, directory, key, words):
    cfg = write_config(tmp_path, directory=directory)
    code, out = check_output(cfg, capsys)
    assert code == 1
    d = tmp_path / "directory.toml"
    assert any(f"{d}: {key}" in l and words in l for l in out.splitlines()), out


@pytest.mark.parametrize("rule, key, words", [
    ('name = "x"\n[match]\nsubject = "(["\n[do]\naction = "acknowledge"\n', "match.subject", "invalid regular expression"),
    ('name = "x"\n[match]\nsubject = "^a"\n[do]\naction = "no_such_action"\n', "do.action", "unknown action"),
    ('name = "x"\n[match]\nsubject = "^a"\nsender_roles = ["老板"]\n[do]\naction = "acknowledge"\n', "match.sender_roles", "unknown role"),
    ('name = "x"\n[match]\nsubject = "^a"\n[validate]\nrequired = ["result"]\n[do]\naction = "acknowledge"\n',
     "validate.required[0]", "not defined under [fields]"),
    ('name = "x"\n[match]\nsubject = "^a"\n[do]\naction = "acknowledge"\ntemplates = { ack = "nope" }\n',
     "do.templates.ack", "template 'nope' not found"),
    ('name = "x"\n[macth]\nsubject = "^a"\n', "macth", "unknown key"),
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
    assert f"{tpl / 'broken.txt.j2'}: line 3: template syntax error" in out, out
    assert f"{tpl / 'nosubject.txt.j2'}: line 1: must start with 'Subject:" in out, out


def test_daemon_refuses_bad_config(tmp_path, capsys):
    cfg = tmp_path / "config.toml"
    cfg.write_text("[store]\nurl = 5\n", encoding="utf-8")
    assert run(cfg, "once") == 1
    assert f"{cfg}: store.url" in capsys.readouterr().err
