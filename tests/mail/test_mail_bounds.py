"""What parsing one mail may cost (MailLimits): each bound cuts visibly and
says so (ParsedMail.cuts, as codes with parameters), and nothing raises."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/ for fuzzmail and support

from fuzzmail import deep_multipart, long_mail, nested_rfc822  # noqa: E402
from processor.mail.parse import MailLimits, parse_mail  # noqa: E402


def codes(pm) -> list[str]:
    return [c.code for c in pm.cuts]


def test_nested_rfc822_becomes_one_attachment_not_one_per_level():
    pm = parse_mail(nested_rfc822(38, payload=b"x" * 200_000))
    assert pm.from_addr == "zhangsan@company.example"
    assert len(pm.attachments) == 1  # the outermost forwarded mail holds the others
    assert pm.attachments[0].kept and pm.attachments[0].size < 400_000
    assert "mime_depth_cut" in codes(pm)
    assert "环境：" in pm.text


def test_attachment_limits_keep_name_and_size_only():
    lim = MailLimits(max_attachment=1000, max_attachments_total=1500)
    pm = parse_mail(nested_rfc822(1, payload=b"y" * 5000), lim)
    (a,) = pm.attachments
    assert a.data == b"" and a.size > 5000 and not a.kept
    (cut,) = pm.cuts
    assert cut.code == "attachment_too_large" and cut.params["limit"] == 1000
    assert "超过单个附件上限 1000 字节" in pm.defects[-1]


def test_decoded_size_budget_stops_decoding():
    pm = parse_mail(nested_rfc822(2, payload=b"z" * 300_000), MailLimits(max_decoded=100_000))
    assert "decoded_size_cut" in codes(pm)
    assert pm.attachments == []  # the forwarded mail alone is over the budget
    assert "环境：" in pm.text  # what came before is kept


def test_too_many_parts_is_refused_before_the_stdlib_parser():
    pm = parse_mail(deep_multipart(1500))
    assert pm.refusal is not None and pm.refusal.code == "mime_too_many_parts"
    assert pm.refusal.params == {"count": 1501, "limit": 500}
    assert pm.from_addr == "zhangsan@company.example" and pm.subject == "工单测试 深嵌套"


def test_parser_recursion_becomes_a_refusal():
    pm = parse_mail(deep_multipart(3000), MailLimits(max_parts=100_000))
    assert pm.refusal is not None and pm.refusal.code == "mime_too_deep"
    assert pm.refusal.text().startswith("邮件结构嵌套过深")
    assert pm.from_addr == "zhangsan@company.example"


def test_depth_is_cut_not_refused_within_the_part_bound():
    pm = parse_mail(deep_multipart(60))
    assert pm.refusal is None and codes(pm) == ["mime_depth_cut"]


def test_subject_and_text_are_cut_visibly():
    pm = parse_mail(long_mail("工单测试 " + "长" * 100_000, "正" * 50_000), MailLimits(max_text_chars=10_000))
    assert len(pm.subject) == 500 and pm.subject.endswith("…")
    assert pm.subject_norm.startswith("工单测试")
    assert len(pm.text) == 10_000 and pm.text.endswith("…")
    assert codes(pm) == ["subject_truncated", "text_truncated"]
    assert pm.cuts[0].params["limit"] == 500 and pm.cuts[0].params["size"] > 500


def test_header_flood_keeps_the_essential_headers():
    flood = b"".join(b"X-Flood: %d\r\n" % i for i in range(5000))
    raw = flood + long_mail("工单测试 洪水", "你好")
    pm = parse_mail(raw, MailLimits(max_headers=100))
    assert len(pm.headers) <= 100 + 20
    assert pm.from_addr == "zhangsan@company.example" and pm.subject == "工单测试 洪水" and pm.message_id
    assert codes(pm) == ["headers_cut"]
