"""The trust decision (processor/trust.py) on its own: which marks make a
sender trusted, and every forgery that must not. The same cases run through
the real servers in test_trust_e2e.py."""
from __future__ import annotations

import pytest

from processor import trust
from processor.config import Config, ConfigError, load_config
from processor.mail.parse import parse_mail

OURS = "mx.company.example"
DATE = "Mon, 30 Nov 2026 10:00:00 +0800"
ZHAO = "赵六 <zhaoliu@company.example>"


def config(**trust_keys) -> Config:
    system = {"address": "tracking@company.example"}
    for k in ("authserv_id", "require_dmarc"):
        if k in trust_keys:
            system[k] = trust_keys.pop(k)
    return Config.model_validate({"system": system, "trust": trust_keys})


def mail(*headers: tuple[str, str], frm: str | list[str] | None = ZHAO) -> bytes:
    """Headers in order (top first), then the From header(s)."""
    lines = [f"{k}: {v}" for k, v in headers]
    for f in ([frm] if isinstance(frm, str) else frm or []):
        lines.append(f"From: {f}")
    lines += ["To: tracking@company.example", "Subject: =?utf-8?b?5ZCM5oSP?=", f"Date: {DATE}",
              "Message-ID: <1@client.example>", "Content-Type: text/plain; charset=utf-8"]
    return ("\r\n".join(lines) + "\r\n\r\n同意\r\n").encode("utf-8")


def decide(raw: bytes, cfg: Config | None = None) -> trust.Verdict:
    """As the pipeline calls it: with the address the mail parser took."""
    return trust.decide(raw, parse_mail(raw).from_addr, cfg or config())


def received(frm: str, proto: str = "ESMTP", by: str = "mail.company.example (Postfix)", extra: str = "") -> tuple[str, str]:
    return ("Received", f"from {frm}{extra} by {by} with {proto} id 4Dabc; {DATE}")


AR = lambda v: ("Authentication-Results", v)  # noqa: E731
SUBMITTED = received("[192.168.10.23] (unknown [192.168.10.23])", "ESMTPSA")
FROM_OUTSIDE = received("mx.evil.example (mx.evil.example [203.0.113.5])", "ESMTPS")
LMTP = ("Received", f"from mail.company.example by mail.company.example (Dovecot) with LMTP id 9x; {DATE}")


# ---------------------------------------------------------------------------
# default config: the Received chain
# ---------------------------------------------------------------------------

def test_default_config_does_not_trust_a_bare_from():
    v = decide(mail())
    assert not v.trusted and v.code == "no_received"
    assert v.text == "没有 Received 头，看不出邮件经过了本组织的邮件系统"


def test_default_config_trusts_authenticated_submission_to_our_server():
    v = decide(mail(SUBMITTED))
    assert v.trusted and v.code == "authenticated_submission"
    assert v.text == "我方服务器 mail.company.example (Postfix) 收到的是经过登录认证的提交（with ESMTPSA）"


def test_local_delivery_and_content_filter_hops_lead_to_the_submission():
    # Dovecot LMTP over a socket (no address), amavis re-injection over loopback.
    amavis = received("localhost (localhost [127.0.0.1])", "ESMTP")
    assert decide(mail(LMTP, amavis, SUBMITTED)).trusted


def test_mail_from_outside_is_not_trusted_whatever_it_says_below():
    # The sender wrote a submission hop of "ours" below the hop our server wrote.
    v = decide(mail(LMTP, FROM_OUTSIDE, SUBMITTED))
    assert not v.trusted and v.code == "external_hop"
    assert v.text == "邮件来自外部：mail.company.example (Postfix) 从 203.0.113.5 收到，未经登录认证"


def test_the_client_address_is_the_one_our_server_wrote_not_the_helo():
    # HELO claims an internal literal; the TCP-info says outside.
    hop = received("[10.0.0.5] (unknown [203.0.113.5])", "ESMTP")
    assert not decide(mail(hop), config(internal_networks=["10.0.0.0/8"])).trusted


def test_internal_network_and_relay():
    office = received("pc17.corp (unknown [10.1.2.3])", "ESMTP")
    assert decide(mail(office), config(internal_networks=["10.0.0.0/8"])).code == "internal_network"
    assert decide(mail(office)).code == "external_hop"  # not configured: outside
    # Our relay 192.0.2.25 forwarded it; the relay's own hop shows where it came from.
    via_relay = received("relay.company.example (relay.company.example [192.0.2.25])", "ESMTP")
    cfg = config(internal_networks=["10.0.0.0/8", "192.0.2.25"])
    assert decide(mail(via_relay, office), cfg).trusted
    outside_at_relay = received("mx.evil.example (mx.evil.example [203.0.113.5])", "ESMTP", by="relay.company.example")
    v = decide(mail(via_relay, outside_at_relay), cfg)
    assert not v.trusted and v.params["client"] == "203.0.113.5"


def test_authenticated_submission_can_be_switched_off():
    v = decide(mail(SUBMITTED), config(authenticated_submission=False))
    assert not v.trusted and v.code == "external_hop"


def test_authenticated_user_must_be_the_from_address():
    hop = received("[192.168.10.23] (unknown [192.168.10.23])", "ESMTPSA",
                   extra=" (Authenticated sender: zhangsan@company.example)")
    v = decide(mail(hop))
    assert not v.trusted and v.code == "auth_sender_mismatch"
    same = received("[192.168.10.23] (unknown [192.168.10.23])", "ESMTPSA",
                    extra=" (Authenticated sender: zhaoliu@company.example)")
    assert decide(mail(same)).trusted


def test_local_pickup_and_broken_received_are_not_trusted():
    pickup = ("Received", f"by mail.company.example (Postfix, from userid 1000) id 4A; {DATE}")
    assert decide(mail(pickup)).code == "external_hop"
    assert decide(mail(("Received", "from x ((((( by y"))).code == "received_unparseable"
    assert decide(mail(*[LMTP] * 31 + [SUBMITTED])).code == "received_too_many"


def test_exchange_internal_mark_only_when_the_server_is_exchange():
    mark = ("X-MS-Exchange-Organization-AuthAs", "Internal")
    assert decide(mail(mark), config(server="exchange")).code == "exchange_internal"
    assert not decide(mail(mark)).trusted
    anon = ("X-MS-Exchange-Organization-AuthAs", "Anonymous")
    assert not decide(mail(anon), config(server="exchange")).trusted
    assert not decide(mail(mark, anon), config(server="exchange")).trusted


def test_from_domain_must_be_ours():
    v = decide(mail(SUBMITTED, frm="someone@gmail.example"))
    assert not v.trusted and v.code == "from_domain_external"
    assert decide(mail(SUBMITTED, frm="a@sub.example"), config(domains=["company.example", "sub.example"])).trusted


def test_trust_from_header_is_the_unsafe_test_switch():
    assert decide(mail(), config(trust_from_header=True)).trusted


# ---------------------------------------------------------------------------
# Authentication-Results and the DMARC gate
# ---------------------------------------------------------------------------

GATE = dict(authserv_id=OURS, require_dmarc=True)


def test_dmarc_pass_for_the_from_domain_is_trusted():
    v = decide(mail(AR(f"{OURS}; dmarc=pass (p=reject dis=none) header.from=company.example")), config(**GATE))
    assert v.trusted and v.text == "mx.company.example 的 Authentication-Results 头显示 company.example 的 DMARC 通过"


def test_spf_dkim_and_dmarc_in_separate_headers_are_trusted():
    raw = mail(AR(f"{OURS}; dmarc=pass header.from=company.example"),
               AR(f"{OURS}; dkim=pass header.d=company.example header.s=s1"),
               AR(f"{OURS}; spf=pass smtp.mailfrom=zhaoliu@company.example"))
    assert decide(raw, config(**GATE)).trusted
    raw = mail(AR(f"{OURS}; spf=pass smtp.mailfrom=company.example"),
               AR(f"{OURS.upper()} 1; dmarc=pass header.from=Company.Example"))
    assert decide(raw, config(**GATE)).trusted


FORGERIES = {
    "other_authserv_id": (mail(AR("mx.evil.example; dmarc=pass header.from=company.example")), "dmarc_missing"),
    "dmarc_pass_for_another_domain": (mail(AR(f"{OURS}; dmarc=pass header.from=x.example")), "dmarc_other_domain"),
    "quoted_local_part": (mail(AR(f"{OURS}; dmarc=pass header.from=x.example"),
                               frm='"zhaoliu@company.example"@x.example'), "from_quoted"),
    "second_angle_address": (mail(AR(f"{OURS}; dmarc=pass header.from=x.example"),
                                  frm="赵六 <zhaoliu@company.example> <evil@x.example>"), "from_unparseable"),
    "two_from_addresses": (mail(AR(f"{OURS}; dmarc=pass header.from=x.example"),
                                frm=f"{ZHAO}, 坏人 <evil@x.example>"), "several_from_addresses"),
    "two_from_headers": (mail(AR(f"{OURS}; dmarc=pass header.from=x.example"),
                              frm=[ZHAO, "坏人 <evil@x.example>"]), "several_from_headers"),
    "dmarc_pass_in_a_property_next_to_our_fail": (
        mail(AR(f"{OURS}; spf=pass smtp.mailfrom=dmarc=pass@x.example; dmarc=fail header.from=company.example")),
        "dmarc_fail"),
    "dmarc_pass_in_a_comment": (mail(AR(f"{OURS}; dmarc=fail (dmarc=pass) header.from=company.example")), "dmarc_fail"),
    "forged_pass_below_our_fail": (mail(AR(f"{OURS}; dmarc=fail header.from=company.example"),
                                        AR(f"{OURS}; dmarc=pass header.from=company.example")), "dmarc_fail"),
    "dmarc_pass_without_domain": (mail(AR(f"{OURS}; dmarc=pass")), "dmarc_other_domain"),
    "unparseable_own_header": (mail(AR(f"{OURS}; dmarc=pass header.from=company.example; ((")), "ar_unparseable"),
    "encoded_word_display_name": (mail(AR(f"{OURS}; dmarc=pass header.from=x.example"),
                                       frm="=?utf-8?q?=22zhaoliu=40company=2Eexample=22?= <evil@x.example>"),
                                  "from_domain_external"),
    "no_from": (mail(AR(f"{OURS}; dmarc=pass header.from=company.example"), frm=None), "no_from"),
}


@pytest.mark.parametrize("case", sorted(FORGERIES))
def test_dmarc_gate_refuses_forgery(case):
    raw, code = FORGERIES[case]
    v = decide(raw, config(**GATE))
    assert not v.trusted and v.code == code, v
    assert v.text and not v.text.startswith(code)  # worded in Chinese for the admin


def test_gate_means_only_dmarc_counts_and_our_fail_vetoes_the_received_marks():
    assert not decide(mail(SUBMITTED), config(**GATE)).trusted
    cfg = config(authserv_id=OURS)  # DMARC read, Received marks still count
    assert decide(mail(SUBMITTED), cfg).trusted
    v = decide(mail(AR(f"{OURS}; dmarc=fail header.from=company.example"), SUBMITTED), cfg)
    assert not v.trusted and v.code == "dmarc_fail"
    v = decide(mail(FROM_OUTSIDE), cfg)
    assert not v.trusted and v.code == "external_hop"
    v = decide(mail(), cfg)
    assert v.code == "no_internal_mark" and "DMARC" in v.text and "Received" in v.text


@pytest.mark.parametrize("frm", ["J. Smith <zhaoliu@company.example>", '"赵六, 售前经理" <zhaoliu@company.example>',
                                 "zhaoliu@company.example (赵六)", "=?utf-8?b?6LW15YWt?= <zhaoliu@company.example>",
                                 "<@relay.example:zhaoliu@company.example>", "ZhaoLiu@Company.Example"])
def test_unusual_but_single_from_addresses_are_accepted(frm):
    v = decide(mail(SUBMITTED, frm=frm))
    assert v.trusted, v


def test_from_as_the_parser_took_it_must_be_the_strict_one():
    v = trust.decide(mail(SUBMITTED), "zhangsan@company.example", config())
    assert not v.trusted and v.code == "from_mismatch"


def test_huge_header_block_is_not_trusted():
    raw = mail(SUBMITTED, *[("X-Filler", "a" * 1000)] * 300)
    assert decide(raw).code == "headers_too_large"


# ---------------------------------------------------------------------------
# config
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("body, key, reason", [
    ('[trust]\ninternal_networks = ["10.0.0.0/33"]\n', "trust.internal_networks", "不是 IP 地址或网段"),
    ('[trust]\ndomains = ["not a domain"]\n', "trust.domains", "不是域名"),
    ('[trust]\nserver = "lotus"\n', "trust.server", ""),
])
def test_bad_trust_config_is_reported_in_chinese(tmp_path, body, key, reason):
    p = tmp_path / "config.toml"
    p.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert any(k.startswith(key) and reason in r for _f, k, r in e.value.problems), e.value.problems


def test_shipped_config_is_safe():
    from support import ROOT
    cfg = load_config(ROOT / "config.example.toml")
    assert not cfg.trust.trust_from_header
    assert not decide(mail(), cfg).trusted
    assert not decide(mail(FROM_OUTSIDE), cfg).trusted


# ---------------------------------------------------------------------------
# run.py trust FILE: the admin checks the settings against real mail
# ---------------------------------------------------------------------------

def test_trust_command_judges_saved_mails(tmp_path, capsys):
    from support import run, write_config
    cfg = write_config(tmp_path, trust=None)
    (tmp_path / "a.eml").write_bytes(mail(SUBMITTED))
    (tmp_path / "b.eml").write_bytes(mail(FROM_OUTSIDE))
    capsys.readouterr()
    assert run(cfg, "trust", str(tmp_path / "a.eml"), str(tmp_path / "b.eml")) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{tmp_path / 'a.eml'}：发件人 zhaoliu@company.example —— 可信：我方服务器 mail.company.example (Postfix) "
        "收到的是经过登录认证的提交（with ESMTPSA）",
        f"{tmp_path / 'b.eml'}：发件人 zhaoliu@company.example —— 不可信：邮件来自外部：mail.company.example (Postfix) "
        "从 203.0.113.5 收到，未经登录认证"]


def test_check_warns_about_trusting_the_from_header(tmp_path, capsys):
    from support import run, write_config
    cfg = write_config(tmp_path)  # the test setting: trust_from_header = true
    assert run(cfg, "check") == 0
    assert "trust.trust_from_header = true" in capsys.readouterr().err


def test_reason_text_is_one_bounded_line_whatever_the_mail_holds():
    long = "x" * 3000 + ".example"
    v = decide(mail(AR(f"{OURS}; dmarc=pass header.from={long}")), config(**GATE))
    assert v.code == "dmarc_other_domain" and len(v.text) < 400 and "…" in v.text
    v = decide(mail(frm='"a\tb  c"@x.example ' + "y" * 3000), config(**GATE))
    assert not v.trusted and "\n" not in v.text and len(v.text) < 400
