"""Validating the mail addresses admins write (config, directory).

A malformed address in the directory silently turns that person into a
stranger, so `check` refuses it with a Chinese reason. Syntax is checked by
email-validator (RFC 5321/5322 with internationalised addresses); DNS is not
consulted, and special-use domains (``corp.local``) are allowed because
internal mail systems use them.
"""
from __future__ import annotations

import re

from email_validator import EmailNotValidError, validate_email

_REASONS = (
    (re.compile(r"must have an @-sign"), "缺少 @"),
    (re.compile(r"something after the @-sign"), "@ 后面缺少域名"),
    (re.compile(r"something before the @-sign"), "@ 前面缺少用户名"),
    (re.compile(r"after the @-sign contains invalid characters: (.+)\.$"), "域名中有不允许的字符 {0}"),
    (re.compile(r"before the @-sign: (.+)\.$"), "@ 前面有不允许的字符 {0}"),
    (re.compile(r"contains invalid characters before the @-sign: (.+)\.$"), "@ 前面有不允许的字符 {0}"),
    (re.compile(r"should have a period"), "域名里应有点，例如 company.example"),
    (re.compile(r"too long"), "地址太长"),
    (re.compile(r"cannot end with a period|cannot have two periods|cannot start with a period"), "点的位置不对（不能在开头、结尾或连续出现）"),
    (re.compile(r"is not a valid top-level domain|after the @-sign is not valid"), "域名不合法"),
)


def address_problem(value: object) -> str | None:
    """Why ``value`` is not one usable mail address (Chinese), or None."""
    if not isinstance(value, str) or not value.strip():
        return "不是邮件地址（应写成 zhangsan@company.example 这样的字符串）"
    v = value.strip()
    several = len(re.findall(r"@", v)) > 1 or any(c in v for c in ",;，；")
    try:
        validate_email(v, check_deliverability=False, globally_deliverable=False)
        return None
    except EmailNotValidError as e:
        msg = str(e)
        if "special-use or reserved name" in msg:
            return None
        reason = next((cn.format(*m.groups()) for pat, cn in _REASONS if (m := pat.search(msg))), "格式不合法")
    hint = "；一项只写一个地址，几个地址请分开写成数组的几项，例如 [\"a@company.example\", \"b@company.example\"]" \
        if several else ""
    return f"“{v}”不是合法的邮件地址：{reason}{hint}"
