import base64
import email
from email.header import Header
from email.policy import compat32

import pytest

from processor.mail.charset import decode_bytes, decode_header, normalize_charset


@pytest.mark.parametrize(
    "label, codec",
    [
        ("gb2312", "gb18030"), ("GB2312", "gb18030"), ('"gb2312"', "gb18030"),
        ("euc-cn", "gb18030"), ("gbk", "gb18030"), ("cp936", "gb18030"), ("x-gbk", "gb18030"),
        ("gb_2312-80", "gb18030"), ("GB18030", "gb18030"), ("csGB2312", "gb18030"),
        ("big5", "big5hkscs"), ("Big5-HKSCS", "big5hkscs"), ("x-big5", "big5hkscs"),
        ("ks_c_5601-1987", "cp949"), ("euc-kr", "cp949"),
        ("unicode-1-1-utf-7", "utf-7"), ("utf-7", "utf-7"),
        ("utf-8", "utf-8"), ("UTF8", "utf-8"), ("utf-8*zh-cn", "utf-8"),
        ("us-ascii", "cp1252"), ("iso-8859-1", "cp1252"), ("latin1", "cp1252"),
        ("windows-874", "cp874"), ("shift_jis", "cp932"), ("iso-8859-2", "iso8859-2"),
        (None, "utf-8"), ("", "utf-8"), ("unknown-8bit", "utf-8"), ("x-no-such-charset", "utf-8"),
        ("base64", "utf-8"), ("rot13", "utf-8"), ("中文", "utf-8"), ("gb2312\x00", "utf-8"),
    ],
)
def test_normalize_charset(label, codec):
    assert normalize_charset(label) == codec


def test_decode_bytes_gbk_under_gb2312_label():
    truth = "朱镕基、王喆、李堃——ＸＸ项目"
    with pytest.raises(UnicodeDecodeError):
        truth.encode("gbk").decode("gb2312")
    text, defects = decode_bytes(truth.encode("gbk"), "gb2312")
    assert text == truth
    assert defects == []


def test_decode_bytes_big5_hkscs_under_big5_label():
    truth = "客戶問題已經處理咗"
    text, defects = decode_bytes(truth.encode("big5hkscs"), "big5")
    assert (text, defects) == (truth, [])


def test_decode_bytes_mislabelled_utf8_falls_back():
    truth = "服务器故障"
    text, defects = decode_bytes(truth.encode("utf-8") + b"\n", "us-ascii")
    assert text == truth + "\n"
    assert defects and "utf-8" in defects[0]


def test_decode_bytes_no_label_gbk():
    truth = "没有声明字符集的正文"
    text, defects = decode_bytes(truth.encode("gbk"), None)
    assert text == truth
    assert len(defects) == 1


def test_decode_bytes_undecodable_uses_replacement():
    data = b"\xff\xfe\xfa\xfb\x80\x80\xff"
    text, defects = decode_bytes(data, "utf-8")
    assert "\ufffd" in text
    assert defects and "replacement" in defects[0]


def test_decode_bytes_empty_and_ascii():
    assert decode_bytes(b"", "gb2312") == ("", [])
    assert decode_bytes(b"plain", "gb2312") == ("plain", [])
    assert decode_bytes(b"+ZeVnLA-", "utf-7") == ("日本", [])


def _b(data: bytes, cs: str) -> str:
    return f"=?{cs}?B?{base64.b64encode(data).decode()}?="


def _q(data: bytes, cs: str) -> str:
    return f"=?{cs}?Q?" + "".join(f"={b:02X}" for b in data) + "?="


def test_decode_header_b_split_inside_gbk_char():
    truth = "镕喆项目进展"
    raw = truth.encode("gbk")
    value = _b(raw[:3], "gb2312") + "\r\n " + _b(raw[3:], "GB2312")
    assert decode_header(value) == truth


def test_decode_header_q_split_inside_utf8_char():
    truth = "服务器故障"
    raw = truth.encode("utf-8")
    value = _q(raw[:4], "utf-8") + " " + _q(raw[4:], "UTF-8")
    assert decode_header(value) == truth


def test_decode_header_mixed_charsets_gb2312_gbk_join():
    raw = "镕喆".encode("gbk")
    # different labels of the same superset still join at byte level
    assert decode_header(_b(raw[:1], "gb2312") + " " + _b(raw[1:], "gbk")) == "镕喆"


def test_decode_header_whitespace_rules():
    a, b = _b("回复".encode("gbk"), "gb2312"), _b("问题".encode("utf-8"), "utf-8")
    assert decode_header(f"{a} {b}") == "回复问题"          # between encoded: dropped
    assert decode_header(f"Re: {a} x {b}") == "Re: 回复 x 问题"  # next to plain: kept
    assert decode_header(f"{a}\r\n\t{b}") == "回复问题"


def test_decode_header_raw_8bit_utf8_and_gbk():
    for codec in ("utf-8", "gbk"):
        raw = "Subject: 镕喆网络设备巡检\r\n\r\n".encode(codec)
        msg = email.message_from_bytes(raw, policy=compat32)
        # compat32 hands back a Header object for 8-bit headers...
        assert decode_header(msg["Subject"]) == "镕喆网络设备巡检"
        # ... and a surrogate-escaped str in raw_items()
        (_, value), = list(msg.raw_items())
        assert decode_header(value) == "镕喆网络设备巡检"
        assert decode_header("镕喆网络设备巡检".encode(codec)) == "镕喆网络设备巡检"


def test_decode_header_raw_8bit_big5_with_hint():
    raw = "粵港客戶問題".encode("big5")
    assert decode_header(raw, "big5") == "粵港客戶問題"


def test_decode_header_header_object():
    assert decode_header(Header("镕喆", "utf-8")) == "镕喆"
    assert decode_header(Header("镕喆".encode("gbk"), "gb18030")) == "镕喆"
    h2 = Header("plain text")
    assert decode_header(h2) == "plain text"


@pytest.mark.parametrize(
    "value",
    [
        "=?utf-8?B?not base64!!?=",
        "=?utf-8?X?abc?=",
        "=?utf-8?B?",
        "=??B?5Lit?=",
        "=?no-such-charset?B?5Lit5paH?=",
        "=?utf-8?Q?=ZZ=?=",
        "=?gb2312?B?1cXI?=",  # truncated multibyte
        "\udcff\udcfe",
        "",
        None,
        12345,
    ],
)
def test_decode_header_never_raises(value):
    out = decode_header(value)
    assert isinstance(out, str)


def test_decode_header_malformed_left_literal():
    assert decode_header("=?utf-8?X?abc?= tail") == "=?utf-8?X?abc?= tail"
    assert decode_header("=?utf-8?B") == "=?utf-8?B"


def test_decode_header_unknown_charset_bytes_fallback():
    assert decode_header(_b("中文".encode("utf-8"), "x-unknown")) == "中文"
    assert decode_header(_b("中文".encode("gbk"), "x-unknown")) == "中文"


def test_decode_header_unfolds_plain_text():
    assert decode_header("a long\r\n subject\r\n\tline") == "a long subject line"
