"""Why a mail was refused or cut down: a code and its parameters (data), and
the Chinese wording admins read (kept here, in one place).

A leaf module: everything may import it, it imports nothing of ours.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from dataclasses import field as _field

ELLIPSIS = "…"

# code -> Chinese wording; ``{name}`` fields come from the reason's params.
MESSAGES: dict[str, str] = {
    "mime_too_deep": "邮件结构嵌套过深（超过 {limit} 层），无法安全解析，正文和附件未处理",
    "mime_depth_cut": "邮件结构嵌套超过 {limit} 层，更深的部分已忽略",
    "mime_too_many_parts": "邮件包含的 MIME 部分过多（约 {count} 个，上限 {limit} 个），正文和附件未处理",
    "mime_parts_cut": "邮件的 MIME 部分超过 {limit} 个，其余部分已忽略",
    "decoded_size_cut": "邮件解码后的内容超过 {limit} 字节，其余部分已忽略",
    "attachment_too_large": "附件《{name}》解码后 {size} 字节，超过单个附件上限 {limit} 字节，内容未保留",
    "attachments_total_cut": "附件总大小超过每封邮件 {limit} 字节的上限，附件《{name}》内容未保留",
    "text_truncated": "正文过长（{size} 字符），只保留前 {limit} 字符",
    "subject_truncated": "主题过长（{size} 字符），只保留前 {limit} 字符",
    "headers_cut": "邮件头过多（{count} 个），只保留前 {limit} 个",
    "no_from": "邮件格式有误：没有可用的 From 发件人地址",
    "parse_failed": "解析邮件时出错：{error}",
    "too_large": "邮件过大：{size} 字节，超过上限 {limit} 字节；只保存了邮件头",
    "crashed_repeatedly": "处理这封邮件时进程已 {deaths} 次意外终止（例如内存耗尽被系统杀掉），为保护后面的邮件已隔离，未再次解析",
    "processing_failed": "处理失败 {attempts} 次，已隔离：{error}",
    "unreadable_charset": "正文的字符编码（{charset}）无法识别，解码后大多是乱码",
    "unreadable_mime": "邮件的格式（MIME 结构）已损坏，取不出正文",
    "unreadable_tnef": "正文只在 Outlook 的 winmail.dat 附件里（{form}），系统无法读取",
    "unreadable_signature_only": "正文里只有签名，签名之上没有内容",
    "date_before_arrival": "邮件头的日期 {date} 比到达时间 {arrived} 早 {days} 天（发件人电脑的时钟可能不对），已按到达时间记录",
    "date_zone_unknown": "邮件头的日期 {date} 的时区写作 -0000（未说明发件人所在时区），按 UTC 时间读取",
    "date_zone_inferred": "邮件头的日期 {date} 没有写时区，按{source}（{reference}）推断为 UTC{zone}",
    "date_zone_missing": "邮件头的日期 {date} 没有写时区，且与{source}（{reference}）推断不出整点时区，已按到达时间 {arrived} 记录",
}


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    params: dict = field(default_factory=dict)

    def text(self) -> str:
        template = MESSAGES.get(self.code)
        if template is None:
            return self.code
        try:
            return template.format(**self.params)
        except (KeyError, IndexError, ValueError):
            return f"{template}（{self.params}）"

    def as_dict(self) -> dict:
        return {"code": self.code, **self.params}

    def __str__(self) -> str:
        return self.text()


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a submitted mail: a code of ``templates/messages.toml``
    ([problem]), the rule field it is about ("" for none) and the parameters
    its wording uses. ``messages.Messages`` renders it in Chinese."""
    code: str
    field: str = ""
    params: dict = _field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"code": self.code, "field": self.field, "params": dict(self.params)}


@dataclass(frozen=True, slots=True)
class Decision:
    """What became of a mail (an outcome) or why a rule matched: a code of
    ``templates/messages.toml`` ([outcome] / [why]) and its parameters."""
    code: str
    params: dict = _field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"code": self.code, "params": dict(self.params)}


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, visibly (ends with …)."""
    if text is None:
        return text
    if len(text) <= limit:
        return text
    if limit <= 1:
        return ELLIPSIS[:limit]
    return text[: limit - 1] + ELLIPSIS
