"""XOAUTH2 settings and token providers without a network: the config's
Chinese errors naming the key, identity-provider errors mapped to our codes,
and the file and command providers (real files, real processes)."""
from __future__ import annotations

import json
import os
import sys
import time

import pytest

from processor.config import ConfigError, OAuthConfig, load_config
from processor.oauth import CommandProvider, FileProvider, TokenError, problems, provider_error

ACCOUNT = '''
[[accounts]]
name = "m365"
host = "outlook.office365.com"
username = "tracking@contoso.example"
auth = "xoauth2"
'''


def errors(tmp_path, text: str) -> list[tuple[str, str, str]]:
    p = tmp_path / "config.toml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    return e.value.problems


@pytest.mark.parametrize("table, key, words", [
    ("", "accounts[0]", "auth = \"xoauth2\" 时必须有 [accounts.oauth] 表"),
    ('[accounts.oauth]\nprovider = "microsoft"\nclient_id = "c"\nsecret_env = "S"\n', "accounts[0].oauth", "必须设置 tenant"),
    ('[accounts.oauth]\nprovider = "microsoft"\ntenant = "t"\nsecret_env = "S"\n', "accounts[0].oauth", "必须设置 client_id"),
    ('[accounts.oauth]\nprovider = "microsoft"\ntenant = "t"\nclient_id = "c"\n', "accounts[0].oauth",
     "必须且只能用 secret_env、secret_file 或 certificate_file 之一"),
    ('[accounts.oauth]\nprovider = "microsoft"\ntenant = "t"\nclient_id = "c"\nsecret_env = "S"\nsecret_file = "f"\n',
     "accounts[0].oauth", "现在设置了 secret_env、secret_file"),
    ('[accounts.oauth]\nprovider = "generic"\nclient_id = "c"\nsecret_env = "S"\n', "accounts[0].oauth", "必须设置 token_url"),
    ('[accounts.oauth]\nprovider = "generic"\nclient_id = "c"\nsecret_env = "S"\ntoken_url = "token.example/x"\n',
     "accounts[0].oauth.token_url", "应写成 https://主机/路径"),
    ('[accounts.oauth]\nprovider = "file"\n', "accounts[0].oauth", "必须设置 token_file"),
    ('[accounts.oauth]\nprovider = "command"\n', "accounts[0].oauth", "必须设置 command"),
    ('[accounts.oauth]\nprovider = "google"\n', "accounts[0].oauth.provider", "只能是以下之一"),
    ('[accounts.oauth]\nprovider = "file"\ntoken_file = "t"\nclient_secret = "x"\n', "accounts[0].oauth.client_secret",
     "未知的键（拼写错误？）：是不是 client_id？"),
])
def test_oauth_table_errors_name_the_key_in_chinese(tmp_path, table, key, words):
    probs = errors(tmp_path, ACCOUNT + table)
    assert any(k == key and words in why for _f, k, why in probs), probs


def test_smtp_xoauth2_needs_a_username_and_a_table(tmp_path):
    probs = errors(tmp_path, '[smtp]\nauth = "xoauth2"\n')
    assert any(k == "smtp" and "必须设置 username" in why for _f, k, why in probs), probs
    probs = errors(tmp_path, '[smtp]\nauth = "xoauth2"\nusername = "a@b.example"\n')
    assert any(k == "smtp" and "[smtp.oauth]" in why for _f, k, why in probs), probs


def test_a_valid_microsoft_table_gets_the_exchange_scope_and_files_relative_to_the_config(tmp_path):
    p = tmp_path / "config.toml"
    p.write_text(ACCOUNT + '[accounts.oauth]\nprovider = "microsoft"\ntenant = "contoso.onmicrosoft.com"\n'
                           'client_id = "c"\ncertificate_file = "app.pem"\n', encoding="utf-8")
    o = load_config(p).accounts[0].oauth
    assert o.scope == "https://outlook.office365.com/.default"
    assert o.authority == "https://login.microsoftonline.com"
    assert o.certificate_file == str(tmp_path / "app.pem")
    assert problems(o) == [("certificate_file", f"文件 {tmp_path / 'app.pem'} 不存在")]


def test_check_problems_name_unset_variables_and_missing_commands():
    o = OAuthConfig(provider="generic", token_url="https://t.example/token", client_id="c", secret_env="NO_SUCH_VAR_FOR_TEST")
    assert problems(o) == [("secret_env", "环境变量 NO_SUCH_VAR_FOR_TEST 没有设置（应保存客户端密码 client secret）")]
    o = OAuthConfig(provider="command", command=["/no/such/get-token"])
    assert problems(o) == [("command", "找不到命令 /no/such/get-token（请写完整路径，并确认它可以执行）")]


@pytest.mark.parametrize("payload, code, shown", [
    ({"error": "invalid_request", "error_codes": [90002], "error_description": "AADSTS90002: Tenant 'x' not found."},
     "tenant_not_found", "AADSTS90002"),
    ({"error": "invalid_request", "error_description": "AADSTS900023: Specified tenant identifier 'x y' is neither a "
                                                      "valid DNS name, nor a valid external domain."},
     "tenant_invalid", "AADSTS900023"),
    ({"error": "invalid_client", "error_codes": [7000215], "error_description": "AADSTS7000215: Invalid client secret."},
     "secret_invalid", "AADSTS7000215"),
    ({"error": "invalid_client", "error_codes": [7000222], "error_description": "AADSTS7000222: expired"},
     "secret_expired", "AADSTS7000222"),
    ({"error": "invalid_grant", "error_codes": [65001], "error_description": "AADSTS65001: not consented"},
     "consent_missing", "AADSTS65001"),
    ({"error": "invalid_client", "error_codes": [700016], "error_description": "AADSTS700016: not found"},
     "client_not_found", "AADSTS700016"),
    ({"error": "invalid_client", "error_description": "Unauthorized"}, "invalid_client", "invalid_client"),
    ({"error": "unauthorized_client", "error_description": "Client is unauthorized for this grant"},
     "unauthorized_client", "unauthorized_client"),
    ({"error": "temporarily_unavailable"}, "provider_unavailable", "temporarily_unavailable"),
    ({"error": "access_denied", "error_description": "nope"}, "provider_refused", "access_denied"),
])
def test_identity_provider_errors_are_our_codes_naming_theirs(payload, code, shown):
    e = provider_error(payload, tenant="contoso.example", client_id="app", scope="s")
    assert e.code == code
    assert shown in str(e) and "{" not in str(e)
    assert e.transient == (code == "provider_unavailable")


def test_file_provider_rereads_a_changed_file_and_refuses_a_stale_refused_token(tmp_path):
    f = tmp_path / "token"
    f.write_text("tok-1\n", encoding="utf-8")
    p = FileProvider(OAuthConfig(provider="file", token_file=str(f)))
    assert p.token() == "tok-1"
    p.invalidate("tok-1")
    with pytest.raises(TokenError) as e:
        p.token()
    assert e.value.code == "token_file_stale" and str(f) in str(e.value)
    f.write_text(json.dumps({"access_token": "tok-2", "expires_in": 3600}), encoding="utf-8")
    os.utime(f, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))
    assert p.token() == "tok-2"
    f.unlink()
    with pytest.raises(TokenError) as e:
        p.token()
    assert e.value.code == "token_file_unreadable"


def test_command_provider_caches_for_the_lifetime_it_is_told_and_fetches_after_invalidate(tmp_path):
    counter = tmp_path / "n"
    script = tmp_path / "get-token.py"
    script.write_text(
        "import json, pathlib, sys\n"
        f"p = pathlib.Path({str(counter)!r})\n"
        "n = int(p.read_text()) + 1 if p.exists() else 1\n"
        "p.write_text(str(n))\n"
        "print(json.dumps({'access_token': f'tok-{n}', 'expires_in': 3600}))\n", encoding="utf-8")
    p = CommandProvider(OAuthConfig(provider="command", command=[sys.executable, str(script)]))
    assert p.token() == "tok-1"
    assert p.token() == "tok-1"  # cached: the command ran once
    p.invalidate("tok-0")  # not the current token: nothing happens
    assert p.token() == "tok-1"
    p.invalidate("tok-1")
    assert p.token() == "tok-2"
    assert p.fetches == 2


def test_command_provider_failure_is_a_chinese_error_with_the_commands_words(tmp_path):
    p = CommandProvider(OAuthConfig(provider="command",
                                    command=[sys.executable, "-c", "import sys; sys.exit('refresh token expired')"]))
    with pytest.raises(TokenError) as e:
        p.token()
    assert e.value.code == "command_failed" and "退出码 1" in str(e.value) and "refresh token expired" in str(e.value)
    p = CommandProvider(OAuthConfig(provider="command", command=[sys.executable, "-c", "pass"]))
    with pytest.raises(TokenError) as e:
        p.token()
    assert e.value.code == "command_empty"


def test_a_short_lived_token_is_fetched_again_in_the_second_half_of_its_life(tmp_path):
    script = tmp_path / "get-token.py"
    script.write_text("import json, time\nprint(json.dumps({'access_token': str(time.time_ns()), 'expires_in': 1}))\n",
                      encoding="utf-8")
    p = CommandProvider(OAuthConfig(provider="command", command=[sys.executable, str(script)], refresh_margin=300))
    first = p.token()
    time.sleep(0.6)  # past half of the 1 s lifetime (the margin is capped at half)
    assert p.token() != first
