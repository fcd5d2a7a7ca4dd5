"""The Chinese wording of problems, outcomes and rule matches, in one file an
admin can edit: ``templates/messages.toml``.

The program says *what* happened as data -- a ``Problem`` (code, field,
params) or a ``Decision`` (code, params), see ``processor.reasons`` -- and
this module turns it into the sentence people read (replies, ``report
messages``, ``once -v``, logs). ``CODES`` declares every code the program
uses and the parameters it passes, so ``check`` can tell an admin which code
has no wording, or which ``{placeholder}`` names nothing.

In a wording, ``{name}`` is a parameter; a list parameter is joined with 、
or with the separator written after a colon: ``{allowed:”或“}``.
"""
from __future__ import annotations

import logging
import string
import tomllib
from functools import lru_cache
from pathlib import Path

from .errors import ConfigError, not_utf8_reason, toml_error_reason
from .reasons import Decision, Problem

log = logging.getLogger(__name__)

FILE_NAME = "messages.toml"
BUNDLED = Path(__file__).resolve().parent.parent / "templates" / FILE_NAME

# section -> code -> the parameters the program passes ("name[]": a list).
CODES: dict[str, dict[str, str]] = {
    # What is wrong with a submitted mail (validation and the conventions' own checks).
    "problem": {
        "sender_role": "who roles[]",
        "missing_field": "label",
        "not_allowed_value": "label value allowed[]",
        "required_when": "label equals required",
        "too_vague": "label value",
        "too_vague_request": "label value",
        "too_short": "label value min_length",
        "report_project_mismatch": "project label value other",
        "improvement_project_mismatch": "project label value other",
        "lixiang_project_mismatch": "project label value",
        "lixiang_project_missing": "label",
        "lixiang_ambiguous_project": "name candidates[]",
        "presales_unknown": "label value known[]",
        "presales_not_presales": "label name known[]",
        "presales_same": "label other_label name",
        "support_date_unreadable": "label value today",
        "support_date_ahead": "label date today",
        "complaint_presales1_missing": "project name",
        "complaint_target_unknown": "label name known[]",
        "workorder_no_summary": "",
        "workorder_project_unknown": "project",
        "workorder_project_unknown_near": "project candidates[]",
        "workorder_not_responsible": "who project allowed[]",
        "workorder_logs_missing": "label",
        "workorder_logs_no_attachment": "label value",
        "workorder_attempts_missing": "label need severity_label",
        "workorder_attempts_bad": "label need value",
        "workorder_attempts_too_few": "label count need severity_label",
        "assignee_unknown": "name",
        "assignee_wrong_role": "name roles[] allowed[]",
        # 文档审核
        "document_project_unknown": "project",
        "document_project_unknown_near": "project candidates[]",
        "document_not_author": "who roles[]",
        "document_no_reviewer": "project",
        "document_no_attachment": "doc",
        # 项目实施工作单
        "implementation_not_sales": "who project sales",
        "implementation_no_engineer": "project",
        "implementation_not_engineer": "who engineer",
    },
    # Why a rule matched a mail.
    "why": {
        "subject_matched": "rule pattern",
        "sender_has_role": "roles[]",
        "recipient_has_role": "roles[]",
        "resubmission": "number",
        "new_report_in_thread": "number",
        "reply_in_thread": "number",
        "fields_from_attached_message": "subject",
        "project_confirmation": "number answer",
    },
    # A line the system adds to a mail it sends.
    "notice": {
        "internal_withheld": "files[] outside[]",
    },
    # What became of a mail (``messages.outcome_code``).
    "outcome": {
        # the engine
        "processed": "",
        "already_seen": "",
        "no_sender": "",
        "too_large": "size limit",
        "unreadable": "why form charset",
        "project_did_you_mean": "number project suggested",
        "processing_failed": "attempts error",
        "reply_recorded": "number",
        "duplicate": "first",
        "machine": "why",
        "stranger": "address",
        "not_authenticated": "verdict",
        "no_rule": "",
        "ambiguous_project": "name candidates[]",
        "acknowledged": "",
        # shared by the conventions
        "noted_in_thread": "number",
        "same_message_in_thread": "number",
        "same_message_recorded": "number",
        "not_a_new_record": "number",
        "wrong_state": "command state",
        "not_permitted": "who command",
        "missing_argument": "command needs",
        "state_changed": "number before after command",
        "rejected": "number count",
        "unregistered": "number project candidates[]",
        # 客户沟通 reports
        "report_not_counted": "number roles[]",
        "report_accepted": "number owner",
        "followup_opened": "number",
        "followups_closed": "numbers[]",
        "followups_left_open": "count numbers[]",
        "forwarded_to_sales": "",
        "first_presales_notified": "name",
        "lixiang_reminder_skipped_ambiguous": "",
        "lixiang_reminder_no_sales": "",
        "lixiang_reminder_sent": "ordinal names[]",
        "lixiang_stop_notice_sent": "threshold",
        # 遗留问题跟进单
        "followup_already_closed": "number",
        "followup_close_refused": "number who",
        "followup_closed": "number",
        # bug feedback
        "bug_recorded": "number product",
        "sent_on_to": "names[]",
        "routing_complete": "",
        # complaints
        "complaint_unregistered": "number project",
        "complaint_not_sales": "number",
        "complaint_not_project_sales": "number",
        "complaint_bad_target": "number",
        "complaint_counted": "number target",
        "penalty_fired": "penalty ordinal",
        "penalty_rebased": "penalty ordinal",
        "penalty_revoked": "penalty ordinal",
        "withdraw_refused": "number complainant",
        "already_withdrawn": "number",
        "withdrawn_not_counted": "number",
        "withdrawn": "number owner",
        # 产品改进申请单
        "improvement_invalid": "number ordinal project",
        "improvement_accepted": "number ordinal project role names[]",
        "rd_time_refused": "number who roles[]",
        "rd_time_wrong_state": "number state",
        "rd_time_bad_value": "number value",
        "rd_time_recorded": "number days request_total project project_total",
        "rd_time_over_limit": "limit told",
        # 立项单
        "lixiang_not_allowed_role": "number roles[]",
        "lixiang_not_allowed_other_sales": "number filed_by record_number",
        "lixiang_directory_wins": "number project",
        "lixiang_differences": "labels[]",
        "lixiang_created": "number project presales1",
        "lixiang_updated": "number project presales1",
        "second_presales": "name",
        # 满意度回访
        "survey_not_party": "number who party",
        "survey_already_answered": "number score",
        "survey_invalid_score": "number value",
        "survey_recorded": "number score engineer",
        "reopened": "state",
        "manager_notified": "",
        # replies that do nothing (workflows/hints.py)
        "command_hint": "keywords[]",
        "reply_does_nothing": "original",
        # 支持记录
        "support_unregistered": "number project candidates[]",
        "support_not_allowed": "number who project",
        "support_recorded": "number owner mark",
        "forwarded_to": "names[]",
        # 故障处理工作单
        "workorder_forward_noted": "number",
        "workorder_rejected": "count",
        "workorder_submitted": "number project raiser approvers[]",
        "attachments_kept": "count",
        "workorder_noted": "number",
        "assign_refused": "problem",
        "workorder_resubmit_refused": "number count",
        "workorder_resubmitted": "number who",
        # 文档审核
        "document_rejected": "count",
        "document_submitted": "number project doc reviewer",
        "document_noted": "number",
        "deadline_restated": "number deadline",
        "document_resubmitted": "number round who before",
        # 内部文档外发
        "internal_outside": "outside[] files[]",
        "draft_outside": "number outside[]",
        # 项目实施工作单
        "implementation_rejected": "count",
        "implementation_recorded": "number project engineer",
        "implementation_noted": "number",
        "implementation_tech_refused": "number",
        "implementation_tech_incomplete": "number count",
        "implementation_complete": "number",
    },
}

_SECTION_NAMES = {"problem": "问题", "why": "匹配原因", "notice": "附注", "outcome": "处理结果"}


def declared(section: str, code: str) -> dict[str, bool]:
    """The parameters of ``code``: name -> is a list."""
    spec = CODES.get(section, {}).get(code)
    if spec is None:
        return {}
    return {p.rstrip("[]"): p.endswith("[]") for p in spec.split()}


class _Formatter(string.Formatter):
    def format_field(self, value, format_spec):
        if isinstance(value, (list, tuple)):
            return (format_spec or "、").join(str(v) for v in value) or "无"
        return str(value)


class _Params(dict):
    def __missing__(self, key):
        return "{" + key + "}"


_FMT = _Formatter()


def placeholders(text: str) -> list[tuple[str, str]]:
    """(field, spec) of each ``{...}`` in ``text``; raises ValueError on bad braces."""
    return [(f, spec or "") for _lit, f, spec, _conv in _FMT.parse(text) if f is not None]


class Messages:
    """The wording, loaded once (``Runtime.reload``); renders problems and outcomes."""

    def __init__(self, texts: dict[str, dict[str, str]], source: str = "", fallback: "Messages | None" = None):
        self.texts = texts
        self.source = source
        self.fallback = fallback

    @classmethod
    def load(cls, folder: str | Path) -> "Messages":
        """``folder``/messages.toml, with the bundled wording for what it lacks.
        Raises ConfigError if the file is not valid TOML."""
        path = Path(folder) / FILE_NAME
        bundled = default()
        if path.resolve() == BUNDLED:
            return bundled
        if not path.is_file():
            return bundled
        texts, probs = _read(path)
        if probs:
            raise ConfigError(probs)
        return cls(texts, str(path), bundled)

    def text(self, section: str, code: str, params: dict | None = None) -> str:
        template = self.texts.get(section, {}).get(code)
        if template is None:
            if self.fallback is not None:
                return self.fallback.text(section, code, params)
            log.warning("%s 中没有 [%s] %s 的文字", self.source or FILE_NAME, section, code)
            return code + (f"（{params}）" if params else "")
        try:
            return _FMT.vformat(template, (), _Params(params or {}))
        except (ValueError, IndexError, AttributeError, TypeError, KeyError):
            return f"{template}（{params}）"

    def problem(self, p: Problem) -> str:
        return self.text("problem", p.code, p.params)

    def problems(self, problems) -> list[str]:
        """The Chinese sentence of each problem, for a reply or a record's data."""
        return [self.problem(p) for p in problems]

    def decision(self, d: Decision, section: str = "outcome") -> str:
        return self.text(section, d.code, d.params)

    def why(self, clauses) -> str:
        return "；".join(self.decision(c, "why") for c in clauses)

    def outcome(self, code: str, params: dict | None) -> str:
        """A message row's outcome (``outcome_code``, ``outcome_params``) in Chinese:
        the outcome, what else was done, the problems found, and why the rule matched."""
        params = dict(params or {})
        also = params.pop("_also", None) or []
        why = params.pop("_why", None) or []
        problems = params.pop("_problems", None) or []
        text = self.text("outcome", code, params)
        for a in also:
            text += "；" + self.text("outcome", a.get("code", ""), a.get("params"))
        if problems:
            text += "：" + " ".join(self.text("problem", p.get("code", ""), p.get("params")) for p in problems)
        if why:
            text += "（" + "；".join(self.text("why", w.get("code", ""), w.get("params")) for w in why) + "）"
        return text


@lru_cache(maxsize=1)
def default() -> Messages:
    """The wording shipped with the program (templates/messages.toml)."""
    texts, probs = _read(BUNDLED)
    if probs:
        raise ConfigError(probs)
    return Messages(texts, str(BUNDLED))


def _read(path: Path) -> tuple[dict[str, dict[str, str]], list[tuple[str, str, str]]]:
    file = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        return {}, [(file, "", not_utf8_reason(e))]
    except tomllib.TOMLDecodeError as e:
        return {}, [(file, "", toml_error_reason(e))]
    except OSError as e:
        return {}, [(file, "", f"无法读取：{e.strerror or e}")]
    texts: dict[str, dict[str, str]] = {}
    probs = []
    for section, table in data.items():
        if section not in CODES:
            probs.append((file, section, f"未知的表；这里可以写的表：{'、'.join(f'[{s}]' for s in CODES)}"))
            continue
        if not isinstance(table, dict):
            probs.append((file, section, f"必须是表（[{section}]），每行写 代码 = \"中文文字\""))
            continue
        for code, text in table.items():
            if not isinstance(text, str):
                probs.append((file, f"{section}.{code}", "必须是字符串，例如 code = \"中文文字 {参数}\""))
                continue
            texts.setdefault(section, {})[code] = text
    return texts, probs


def check(folder: str | Path) -> list[tuple[str, str, str]]:
    """Problems of ``folder``/messages.toml as (file, key, reason): a code the
    program uses without wording, a code it never uses, a placeholder that
    names no parameter, a list separator on a parameter that is not a list."""
    path = Path(folder) / FILE_NAME
    file = str(path)
    if not path.is_file():
        return [(file, "", f"找不到这个文件：问题和处理结果的中文文字都写在这里。请从程序自带的 templates/ 中复制 {FILE_NAME}")]
    texts, probs = _read(path)
    if probs:
        return probs
    for section, codes in CODES.items():
        have = texts.get(section, {})
        for code in codes:
            if code not in have:
                params = "、".join(declared(section, code)) or "无"
                probs.append((file, f"{section}.{code}",
                              f"缺少这条{_SECTION_NAMES[section]}的中文文字：请写 {code} = \"……\"（可用的参数：{params}）"))
        for code, text in have.items():
            key = f"{section}.{code}"
            if code not in codes:
                probs.append((file, key, f"系统不会用到这个代码；[{section}] 中可用的代码见程序自带的 templates/{FILE_NAME}"))
                continue
            params = declared(section, code)
            try:
                fields = placeholders(text)
            except ValueError:
                probs.append((file, key, "花括号不成对：参数写成 {参数名}，文字中的花括号写成 {{ 和 }}"))
                continue
            for name, spec in fields:
                if name not in params:
                    avail = "、".join(params) or "无"
                    probs.append((file, key, f"占位符 {{{name}}} 不存在；这条文字可用的参数：{avail}"))
                elif spec and not params[name]:
                    probs.append((file, key, f"占位符 {{{name}:{spec}}}：只有列表参数可以在冒号后写分隔符，{name} 不是列表"))
    return probs
