"""XOAUTH2 sign-in end to end, against real servers: a local OAuth2 identity
provider (tests/oauth_server.py) issues short-lived tokens; Dovecot checks
them through its oauth2 passdb (token introspection at that provider);
aiosmtpd checks them in AUTH XOAUTH2. Nothing is mocked at a protocol layer.
"""
from __future__ import annotations

import os
import re
import time

import pytest

from oauth_server import IdentityServer
from processor.devservers.imap import DOVECOT_INSTALL_HINT, DovecotServer, dovecot_available
from processor.devservers.smtp import CaptureSMTPServer
from support import make_mail, run, start_serve, stop_serve, wait_until_all_done, write_config

SECRET_ENV = "TEST_OAUTH_CLIENT_SECRET"

# The test SMTP server takes AUTH over plain TCP on loopback, which aiosmtpd warns about.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


@pytest.fixture
def idp():
    srv = IdentityServer(lifetime=3600).start()
    os.environ[SECRET_ENV] = srv.secret
    try:
        yield srv
    finally:
        srv.stop()


def oauth_dovecot(workdir, idp: IdentityServer) -> DovecotServer:
    """Dovecot that takes XOAUTH2 / OAUTHBEARER and asks ``idp`` whether a
    token is active (RFC 7662 introspection, POST)."""
    if not dovecot_available():
        pytest.fail(DOVECOT_INSTALL_HINT, pytrace=False)
    workdir.mkdir(parents=True, exist_ok=True)
    srv = DovecotServer(workdir)
    ext = srv.root / "dovecot-oauth2.conf.ext"  # root is readable by Dovecot's own users
    ext.write_text(f"""\
introspection_mode = post
introspection_url = http://127.0.0.1:{idp.port}/introspect
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
""")
    os.chmod(ext, 0o644)
    srv.extra_conf = f"""\
auth_mechanisms = plain login xoauth2 oauthbearer
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {ext}
}}
"""
    srv.start()
    return srv


@pytest.fixture
def imap(tmp_path, idp):
    srv = oauth_dovecot(tmp_path / "imap", idp)
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture
def smtp(idp):
    """aiosmtpd that requires AUTH XOAUTH2 and asks ``idp`` about each token."""
    srv = CaptureSMTPServer(xoauth2=lambda user, token: user == "tracking@company.example" and idp.active(token))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def oauth_table(idp: IdentityServer, scope: str) -> str:
    return (f'provider = "generic"\ntoken_url = "{idp.base}/token"\nclient_id = "{idp.client_id}"\n'
            f'secret_env = "{SECRET_ENV}"\nscope = "{scope}"\n')


def oauth_config(tmp_path, imap, smtp, idp, *, account: dict | None = None, smtp_scope: str = "imap smtp"):
    """A config whose IMAP account and [smtp] both sign in with tokens from
    the generic provider (separate tables when the scopes differ)."""
    cfg = write_config(tmp_path / "cfg", imap=imap, smtp=smtp, account={"auth": "xoauth2", **(account or {})})
    text = cfg.read_text(encoding="utf-8")
    text = text.replace("[smtp]\n", '[smtp]\nauth = "xoauth2"\nusername = "tracking@company.example"\n', 1)
    text += "\n[accounts.oauth]\n" + oauth_table(idp, "imap smtp") + "\n[smtp.oauth]\n" + oauth_table(idp, smtp_scope)
    cfg.write_text(text, encoding="utf-8")
    return cfg


def test_generic_provider_token_signs_in_to_dovecot_and_smtp_and_the_mail_is_answered(tmp_path, idp, imap, smtp, capsys):
    cfg = oauth_config(tmp_path, imap, smtp, idp)
    assert run(cfg, "check", "--connect") == 0
    out = capsys.readouterr().out
    assert "用 OAuth2 令牌（XOAUTH2）登录成功，文件夹 INBOX" in out
    assert "发信服务器 SMTP" in out and "用 OAuth2 令牌（XOAUTH2）登录成功，没有发送邮件" in out
    assert smtp.messages == []  # check --connect sends nothing

    imap.append(make_mail(subject="工单测试", message_id="<oauth-1@client.example>"))
    assert run(cfg, "once") == 0
    (reply,) = smtp.wait_for(1)
    assert reply.header("In-Reply-To") == "<oauth-1@client.example>"
    assert reply.rcpt_tos == ["zhangsan@company.example"]
    # Dovecot and the SMTP server both had the token checked at the provider ...
    assert any(ok for _tok, ok in idp.introspections)
    assert ("tracking@company.example", True) in smtp.auth_log
    # ... and the provider was asked for a token with the client's credentials.
    forms = idp.token_requests
    assert forms and all(f["grant_type"] == "client_credentials" and f["client_id"] == idp.client_id for f in forms)
    assert {f["scope"] for f in forms} == {"imap smtp"}
    # One cached token served every sign-in (IMAP twice, SMTP twice) of this process.
    assert idp.issued() == 1


def test_a_refused_token_is_dropped_and_a_fresh_one_signs_in_imap_and_smtp(tmp_path, idp, imap, smtp):
    # IMAP and SMTP use separate tables (scopes), hence separate cached tokens.
    cfg = oauth_config(tmp_path, imap, smtp, idp, smtp_scope="smtp")
    imap.append(make_mail(subject="工单测试", message_id="<oauth-a@client.example>"))
    assert run(cfg, "once") == 0
    smtp.wait_for(1)
    assert idp.issued() == 2
    # The provider revokes every token it issued; the processor still holds them
    # as valid (their lifetime has not run out).
    idp.revoke_tokens()
    imap.append(make_mail(subject="工单测试", message_id="<oauth-b@client.example>"))
    assert run(cfg, "once") == 0
    got = smtp.wait_for(2)
    assert {m.header("In-Reply-To") for m in got} == {"<oauth-a@client.example>", "<oauth-b@client.example>"}
    # Each refused once, then signed in with a fresh token: IMAP's refusal seen
    # by Dovecot, SMTP's by the SMTP server.
    assert idp.issued() == 4
    assert [ok for _u, ok in smtp.auth_log].count(False) == 1
    assert sum(1 for _t, ok in idp.introspections if not ok) >= 2


def test_token_expires_mid_run_is_refreshed_and_nothing_is_lost(tmp_path, idp, imap, smtp):
    idp.lifetime = 3  # seconds; the processor refreshes in the second half
    cfg = oauth_config(tmp_path, imap, smtp, idp, account={"idle": False})
    log = tmp_path / "serve.log"
    proc = start_serve(cfg, log)
    try:
        imap.append(make_mail(subject="工单测试 一", message_id="<exp-1@client.example>"))
        msgs, out = wait_until_all_done(cfg, 1)
        assert [o.status for o in out] == ["sent"], log.read_text("utf-8")
        first_tokens = idp.issued()
        # Outlive every token issued so far, then cut the IMAP connection: the
        # daemon must sign in again, which needs a token it does not have yet.
        time.sleep(idp.lifetime + 0.5)
        imap.restart()
        imap.append(make_mail(subject="工单测试 二", message_id="<exp-2@client.example>"))
        imap.append(make_mail(subject="工单测试 三", message_id="<exp-3@client.example>"))
        msgs, out = wait_until_all_done(cfg, 3)
    finally:
        stop_serve(proc)
    text = log.read_text("utf-8")
    assert sorted(m.message_id for m in msgs) == ["<exp-1@client.example>", "<exp-2@client.example>", "<exp-3@client.example>"]
    assert [m.status for m in msgs] == ["processed"] * 3, text
    assert [o.status for o in out] == ["sent"] * 3, text
    answered = sorted(m.header("In-Reply-To") for m in smtp.messages)
    assert answered == ["<exp-1@client.example>", "<exp-2@client.example>", "<exp-3@client.example>"]
    assert idp.issued() > first_tokens  # new tokens were fetched ...
    # ... before the old ones ran out: no server ever saw an expired token.
    assert all(ok for _t, ok in idp.introspections), text
    assert all(ok for _u, ok in smtp.auth_log), text
    assert "Traceback" not in text


def test_revoked_client_secret_is_a_clear_chinese_error_with_backoff(tmp_path, idp, imap, smtp, capsys):
    cfg = oauth_config(tmp_path, imap, smtp, idp)
    log = tmp_path / "serve.log"
    proc = start_serve(cfg, log)
    try:
        imap.append(make_mail(subject="工单测试", message_id="<rev-1@client.example>"))
        _msgs, out = wait_until_all_done(cfg, 1)
        assert [o.status for o in out] == ["sent"], log.read_text("utf-8")
        # The admin revokes the client secret in the identity provider: tokens
        # issued with it stop working, and no new one is given.
        idp.secret = "a-new-secret-the-processor-does-not-know"
        idp.revoke_tokens()
        before = len(idp.token_requests)
        imap.restart()  # the daemon must sign in again
        pattern = re.compile(r"客户端 ID 或密码被令牌服务拒绝.*秒后重连")
        lines: list[str] = []
        for _ in range(120):  # a bound on polls of the log, not a speed check
            lines = [ln for ln in log.read_text("utf-8").splitlines() if pattern.search(ln)]
            if len(lines) >= 6:  # two sources (intake, IDLE): one has three, so its wait has grown
                break
            time.sleep(0.5)
        requests_seen = len(idp.token_requests) - before
        attempts = [ln for ln in log.read_text("utf-8").splitlines() if "秒后重连" in ln]
    finally:
        stop_serve(proc)
    text = log.read_text("utf-8")
    assert len(lines) >= 6, text
    # The line names the account, the table and the provider's own error code.
    assert "IMAP 账号 support" in lines[0] and "[accounts.oauth]" in lines[0] and "invalid_client" in lines[0]
    # Backoff, not a tight loop: one token request per logged sign-in attempt
    # (plus one that may be under way), and the waits grow.
    assert requests_seen <= len(attempts) + 2, (requests_seen, len(attempts))
    waits = [float(m.group(1)) for ln in attempts if (m := re.search(r"；([\d.]+) 秒后重连", ln))]
    assert max(waits) > min(waits), waits
    assert "Traceback" not in text

    # check --connect says the same, in Chinese, and exits non-zero.
    capsys.readouterr()
    assert run(cfg, "check", "--connect") != 0
    said = capsys.readouterr()
    assert "取不到 OAuth2 访问令牌" in said.out + said.err and "invalid_client" in said.out + said.err


def test_msal_client_credentials_against_a_local_entra_shaped_endpoint(tmp_path, idp, imap, smtp, capsys):
    """MSAL does OIDC discovery and the token request over HTTPS at a local
    endpoint shaped like Entra ID; its token then signs in to Dovecot and to
    SMTP through check --connect. A wrong tenant and a wrong secret come back
    as Entra ID words them, with their AADSTS codes."""
    from processor.config import load_config
    from processor.oauth import TokenError, provider_for

    # The HTTPS face MSAL talks to shares its tokens with the HTTP one Dovecot asks.
    ms = IdentityServer(lifetime=3600, tls_dir=tmp_path / "tls", twin_of=idp).start()
    try:
        cfg = write_config(tmp_path / "cfg", imap=imap, smtp=smtp, account={"auth": "xoauth2"})
        table = (f'provider = "microsoft"\ntenant = "{ms.tenant}"\nclient_id = "{ms.client_id}"\n'
                 f'secret_env = "{SECRET_ENV}"\nauthority = "{ms.base}"\nca_file = "{ms.cafile}"\n')
        text = cfg.read_text(encoding="utf-8")
        text = text.replace("[smtp]\n", '[smtp]\nauth = "xoauth2"\nusername = "tracking@company.example"\n', 1)
        cfg.write_text(text + "\n[accounts.oauth]\n" + table + "\n[smtp.oauth]\n" + table, encoding="utf-8")
        assert run(cfg, "check", "--connect") == 0
        out = capsys.readouterr().out
        assert "用 OAuth2 令牌（XOAUTH2）登录成功，文件夹 INBOX" in out
        assert "用 OAuth2 令牌（XOAUTH2）登录成功，没有发送邮件" in out
        assert ("tracking@company.example", True) in smtp.auth_log
        assert ms.discoveries >= 1
        form = ms.token_requests[-1]
        assert form["grant_type"] == "client_credentials" and form["client_id"] == ms.client_id
        assert form["client_secret"] == ms.secret and form["scope"] == "https://outlook.office365.com/.default"

        oauth = load_config(cfg).accounts[0].oauth
        wrong_tenant = oauth.model_copy(update={"tenant": "nosuch.example"})
        with pytest.raises(TokenError) as e:
            provider_for(wrong_tenant).token()
        assert e.value.code == "tenant_not_found" and "AADSTS90002" in str(e.value) and "nosuch.example" in str(e.value)
        wrong_client = oauth.model_copy(update={"client_id": "someone-else"})
        with pytest.raises(TokenError) as e:
            provider_for(wrong_client).token()
        assert e.value.code == "client_not_found" and "AADSTS700016" in str(e.value)
        os.environ[SECRET_ENV] = "wrong"
        wrong_secret = oauth.model_copy(update={"timeout": 29})  # other settings: no cached token
        with pytest.raises(TokenError) as e:
            provider_for(wrong_secret).token()
        assert e.value.code == "secret_invalid" and "AADSTS7000215" in str(e.value)
    finally:
        ms.stop()


def test_servers_without_xoauth2_are_named_in_chinese(tmp_path, idp, imap_server, smtp_server, capsys):
    """A plain Dovecot (no AUTH=XOAUTH2) and an SMTP server without AUTH
    XOAUTH2 (e.g. before STARTTLS): check --connect says so, not "wrong token"."""
    cfg = oauth_config(tmp_path, imap_server, smtp_server, idp)
    assert run(cfg, "check", "--connect") != 0
    said = capsys.readouterr()
    text = said.out + said.err
    assert "服务器不提供 XOAUTH2 登录（能力列表里没有 AUTH=XOAUTH2）" in text
    assert "服务器不提供 XOAUTH2 登录（EHLO 的回答里没有 AUTH XOAUTH2）" in text
    assert "Traceback" not in text


def _rsa_certificate(d, name: str) -> tuple:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (d / f"{name}.crt").write_bytes(cert_pem)
    (d / f"{name}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
    return d / f"{name}.crt", d / f"{name}.key", cert_pem


def test_msal_with_a_certificate_signs_a_client_assertion_the_endpoint_verifies(tmp_path):
    """Certificate credentials: MSAL signs an RFC 7523 client assertion with
    the private key from private_key_file; the local Entra-shaped endpoint
    verifies it against the registered certificate. A key that does not
    belong to the registered certificate is AADSTS700027."""
    from processor.config import OAuthConfig
    from processor.oauth import TokenError, provider_for

    cert, key, cert_pem = _rsa_certificate(tmp_path, "app")
    _other_cert, other_key, _ = _rsa_certificate(tmp_path, "other")
    ms = IdentityServer(tls_dir=tmp_path / "tls", certificate=cert_pem).start()
    try:
        o = OAuthConfig(provider="microsoft", tenant=ms.tenant, client_id=ms.client_id, certificate_file=str(cert),
                        private_key_file=str(key), authority=ms.base, ca_file=ms.cafile)
        token = provider_for(o).token()
        assert ms.active(token)
        form = ms.token_requests[-1]
        assert "client_secret" not in form
        assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        assert form["scope"] == "https://outlook.office365.com/.default"

        wrong = o.model_copy(update={"private_key_file": str(other_key)})
        with pytest.raises(TokenError) as e:
            provider_for(wrong).token()
        assert e.value.code == "certificate_rejected" and "AADSTS700027" in str(e.value)
    finally:
        ms.stop()


def test_a_mailbox_that_refuses_the_apps_tokens_names_the_exchange_permissions(tmp_path, idp, imap, smtp_server, capsys):
    """The identity provider issues tokens, but the mailbox refuses them (in
    Exchange Online: no IMAP.AccessAsApp consent, no service principal, no
    mailbox permission). Refused twice (a fresh token is tried once), then one
    Chinese line that says what to check, and no more token requests."""
    ms = IdentityServer(tls_dir=tmp_path / "tls", twin_of=idp).start()
    try:
        idp.username = "somebody-else"  # the tokens are for another mailbox than Dovecot's user
        cfg = write_config(tmp_path / "cfg", imap=imap, smtp=smtp_server, account={"auth": "xoauth2"})
        table = (f'provider = "microsoft"\ntenant = "{ms.tenant}"\nclient_id = "{ms.client_id}"\n'
                 f'secret_env = "{SECRET_ENV}"\nauthority = "{ms.base}"\nca_file = "{ms.cafile}"\n')
        cfg.write_text(cfg.read_text(encoding="utf-8") + "\n[accounts.oauth]\n" + table, encoding="utf-8")
        assert run(cfg, "check", "--connect") != 0
        said = capsys.readouterr()
        text = said.out + said.err
        assert "服务器拒绝了刚取得的 OAuth2 访问令牌（重新取得后仍被拒绝" in text, text
        assert "IMAP.AccessAsApp" in text and "New-ServicePrincipal" in text and "Add-MailboxPermission" in text
        assert len(ms.token_requests) == 2  # the first token, and one fresh one: no loop
        # Both tokens were good at the provider: it is the mailbox that refused them.
        assert [ok for _t, ok in idp.introspections] == [True, True]
        assert "Traceback" not in text
    finally:
        ms.stop()
