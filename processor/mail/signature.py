"""Signature removal for mail bodies, as careful as quoted-history removal.

Marked signatures are cut where their marker starts:

* plain text: the RFC 3676 delimiter ``-- `` (and a bare ``--``), QQ Mail's
  ``------------------`` line above a short block, and the lines mobile and
  webmail clients append (``发自我的iPhone``, ``Sent from my …``,
  ``发自网易邮箱大师``, ``Get Outlook for iOS`` …);
* HTML: Foxmail's ``<hr … color="#b5c4df">`` above the signature, Outlook's
  ``<a name="_MailAutoSig">`` bookmark, Outlook on the web's
  ``<div id="Signature">``, QQ Mail's ``<sign>``.

Unmarked sign-offs at the end (a closing line such as ``谢谢！``, and a last
paragraph that starts with the sender's own name: name, company, phone) are
removed by :func:`strip_signoff`."""
from __future__ import annotations

import re

__all__ = ["html_signature_start", "is_signoff_only", "strip_signature", "strip_signoff"]

_DEVICE = (r"(?:iPhone|iPad|Mac|Android|安卓|手机|手機|平板|华为|華為|HUAWEI|荣耀|Honor|小米|Xiaomi|Redmi|OPPO|vivo"
           r"|三星|Samsung|Galaxy|魅族|一加|OnePlus|realme|诺基亚|联想)")
# Lines a client appends below the text; the signature starts at the line.
_MOBILE = re.compile(
    r"^[ \t]*(?:"
    r"(?:发自|發自)我的\s*" + _DEVICE + r"\S{0,15}|(?:从|從)我的\s*" + _DEVICE + r"\S{0,15}\s*(?:发送|傳送)"
    r"|来自\s*\S{0,12}\s*(?:手机|客户端|邮箱|iPhone|iPad|Android)\S{0,8}"
    r"|发自\s*(?:网易邮箱大师|网易邮箱|QQ邮箱|腾讯企业邮|企业微信|钉钉|WPS邮箱|Foxmail|Outlook)\S{0,10}"
    r"|Sent from my \S.{0,40}|Sent from (?:Mail|Outlook|Yahoo Mail|Samsung|Huawei)\b.{0,40}"
    r"|Get Outlook for (?:iOS|Android)|获取\s*Outlook\s*for\s*(?:iOS|Android)"
    r")[ \t]*$",
    re.M | re.I,
)
_DELIM = re.compile(r"^-- ?$", re.M)
_QQ_RULE = re.compile(r"^[ \t]*-{10,30}[ \t]*$", re.M)
_SHORT_BLOCK = 8  # a QQ rule counts as a signature delimiter only above this many lines

# HTML markers; the signature starts at the match start.
_HTML_MARKERS = re.compile(
    r"<hr\b[^>]*(?:b5c4df|210px)[^>]*>"          # Foxmail
    r"|<a\s+name=[\"']?_MailAutoSig\b"           # Outlook desktop auto-signature
    r"|<div\b[^>]*\bid=[\"']?Signature[\"'\s>]"   # Outlook on the web / new Outlook
    r"|<sign\b",                                 # QQ Mail
    re.I,
)
# Closing lines above the name.
_CLOSING = re.compile(
    r"^[ \t]*(?:谢谢|謝謝|多谢|感谢|此致|敬礼|敬禮|祝好|顺祝商祺|顺颂商祺|best regards|regards|thanks|thank you"
    r"|br)[!！。.,，\s]*$", re.I)


# After the name on a signature's first line: a title or company, set apart.
_NAME_TAIL = re.compile(r"[ \t\u3000]*(?:[|｜/／,，(（]|[ \t\u3000])")


def html_signature_start(html: str) -> int:
    """Offset of the first signature marker in ``html``, or -1."""
    if not html:
        return -1
    m = _HTML_MARKERS.search(html)
    return m.start() if m else -1


def strip_signature(text: str) -> str:
    """``text`` without a marked signature and what follows it."""
    if not text:
        return text or ""
    cut = len(text)
    for rx in (_DELIM, _MOBILE):
        m = rx.search(text)
        if m is not None and m.start() < cut:
            cut = m.start()
    for m in _QQ_RULE.finditer(text, 0, cut):
        rest = [ln for ln in text[m.end():cut].splitlines() if ln.strip()]
        if len(rest) <= _SHORT_BLOCK:
            cut = m.start()
            break
    return text[:cut].rstrip() if cut < len(text) else text


def strip_signoff(text: str, names: tuple[str, ...] | list[str]) -> str:
    """``text`` without an unmarked sign-off at its end: closing lines
    (``谢谢！``) and a last paragraph (at most eight lines) that starts with
    one of ``names`` (the sender's), as long as something else remains."""
    names = [n.strip() for n in names if n and n.strip()]
    lines = text.rstrip().split("\n")
    end = len(lines)
    while end > 1:
        # the last paragraph: lines[start:end]
        start = end
        while start > 0 and lines[start - 1].strip():
            start -= 1
        para = [ln.strip() for ln in lines[start:end]]
        if start == 0:
            break
        k = 0
        while k < len(para) - 1 and _CLOSING.match(para[k]):
            k += 1  # "谢谢！" above the name in the same paragraph
        head = para[k]
        if len(para) <= _SHORT_BLOCK and names and any(
                head == n or (len(para) - k >= 2 and _NAME_TAIL.match(head, len(n)) and head.startswith(n))
                for n in names):
            # name (+ company, phone …); closing lines right above it go too
            end = start
        elif all(_CLOSING.match(p) for p in para):
            end = start
        else:
            break
        while end > 0 and not lines[end - 1].strip():
            end -= 1
    # "…内容\n谢谢！\n张三" with no blank line: the name and closing lines at the end.
    while end > 1 and lines[end - 1].strip() in names and _CLOSING.match(lines[end - 2].strip()):
        end -= 2
    out = "\n".join(lines[:end]).rstrip()
    return out if out.strip() else text


def is_signoff_only(text: str, names: tuple[str, ...] | list[str]) -> bool:
    """Is ``text`` nothing but a sign-off block that starts with one of
    ``names`` (``张三\\n华信科技 技术支持部\\n手机：…``), as
    :func:`strip_signoff` would cut below other text? Closing lines alone
    (``谢谢！``) are a message, not a signature."""
    body = text.strip()
    if not body or all(_CLOSING.match(ln.strip()) for ln in body.splitlines() if ln.strip()):
        return False
    return strip_signoff("\x00\n\n" + body, names) == "\x00"
