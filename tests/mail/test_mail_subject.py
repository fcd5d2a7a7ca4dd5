import pytest

from processor.mail.subject import (
    find_ticket_token,
    fold,
    normalize_subject,
    remove_ticket_token,
    strip_prefixes,
)

PREFIXES = ["回复", "答复", "转发", "回覆", "Re", "RE", "re", "Fw", "FW", "Fwd", "FWD", "AW", "WG",
            "SV", "VS", "TR", "RV", "转"]


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("colon", [":", "：", " :", " ： "])
def test_single_prefix(prefix, colon):
    assert strip_prefixes(f"{prefix}{colon}客户沟通-XX项目") == "客户沟通-XX项目"
    assert normalize_subject(f"{prefix}{colon} 客户沟通-XX项目") == "客户沟通-XX项目"


@pytest.mark.parametrize(
    "subject",
    [
        "回复：RE: 答复: 客户沟通",
        "Re: Re: Re: 客户沟通",
        "FW: 回复: Fwd: AW: WG: 客户沟通",
        "Re[2]: 客户沟通",
        "RE^2: re(3): 客户沟通",
        "回复 ： 转发：回覆:SV:VS: 客户沟通",
        "[EXT] RE: 客户沟通",
        "【外部邮件】回复：客户沟通",
        "回复：[外部]客户沟通",
        "  答复:  [EXT]  【外部】  Re:客户沟通 ",
    ],
)
def test_mixed_and_repeated_prefixes(subject):
    assert normalize_subject(subject) == "客户沟通"


def test_spec_example():
    assert normalize_subject("回复：RE: 答复: [外部]客户沟通—XX项目－张三 ") == "客户沟通-XX项目-张三"


def test_prefix_words_inside_subject_are_kept():
    assert normalize_subject("Report: 月报") == "Report: 月报"
    assert normalize_subject("Review of 回复率") == "Review of 回复率"
    assert normalize_subject("客户回复：已解决") == "客户回复:已解决"


def test_ticket_token_kept_and_later_brackets_kept():
    assert normalize_subject("RE: [#K3F9-12] 客户沟通") == "[#K3F9-12] 客户沟通"
    assert normalize_subject("[EXT] 回复: [#K3F9-12] [内部]客户沟通") == "[#K3F9-12] [内部]客户沟通"
    assert normalize_subject("回复：客户沟通 [备注]") == "客户沟通 [备注]"


@pytest.mark.parametrize("dash", list("-‐‑‒–—―－") + ["\u2212", "\ufe58", "\ufe63"])
def test_dash_variants(dash):
    assert fold(f"客户沟通{dash}XX项目{dash}张三") == "客户沟通-XX项目-张三"
    assert normalize_subject(f"回复：客户沟通{dash}XX项目") == "客户沟通-XX项目"


def test_chinese_ime_double_dash_folds_to_one():
    assert fold("客户沟通——XX项目") == "客户沟通-XX项目"


def test_fold_fullwidth_and_spaces():
    assert fold("ＸＸ项目：Ａ１　　ｂ２ \t\n x") == "XX项目:A1 b2 x"
    assert fold("\u200b零宽\ufeff字符") == "零宽字符"
    assert fold("") == ""
    assert fold("  a  ") == "a"


def test_find_and_remove_ticket_token():
    assert find_ticket_token("RE: [#K3F9-12] 客户沟通") == "K3F9-12"
    assert find_ticket_token("客户沟通 [#T-000123]") == "T-000123"
    assert find_ticket_token("客户沟通［＃Ｋ３Ｆ９－１２］") == "K3F9-12"
    assert find_ticket_token("[EXT] 客户沟通") is None
    assert find_ticket_token("[#] 空") is None
    assert find_ticket_token("") is None
    assert remove_ticket_token("RE: [#K3F9-12] 客户沟通") == "RE: 客户沟通"
    assert remove_ticket_token("客户沟通") == "客户沟通"
