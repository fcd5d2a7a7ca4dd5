"""Rules: the mail conventions as data.

A rule file (``rules/*.toml``) says how to recognise a convention (``match``),
which body fields to read (``fields``), what the regulation demands of them
(``validate``) and which named actions and templates to use (``do``).
``rules/README.md`` documents the format.

Classification is pure: it reads a parsed mail and the directory, and records
*why* a rule matched or which checks failed.
"""
from __future__ import annotations

import difflib
import functools
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..directory import ROLES, Directory, Person
from ..errors import ConfigError, not_utf8_reason, toml_error_reason, unknown_key_reason
from ..lifecycles import Lifecycle, Lifecycles
from ..lifecycles import parse as parse_lifecycle
from ..mail.hanzi import to_simplified
from ..mail.subject import fold, remove_ticket_token
from ..reasons import Decision, Problem
from .fields import FieldExtractor, FieldSpec

_RULE_KEYS = {"name", "description", "priority", "match", "fields", "validate", "do", "settings", "lifecycle"}
_MATCH_KEYS = {"subject", "sender_roles", "recipient_roles"}
_VALIDATE_KEYS = {"required", "allowed", "require_when", "specific", "sender_roles"}
_DO_KEYS = {"action", "templates"}
_FIELD_KEYS = ("label", "synonyms", "multiline")

# Settings checks registered by the workflows' typed settings models
# (processor/workflows/settings.py): action name -> fn(settings) returning
# (key, Chinese reason) problems, so `check` reports bad [settings] values.
SETTINGS_CHECKS: dict = {}
# The record kinds an action opens, registered by workflow modules: action
# name -> kinds, so a rule whose records have no lifecycle is refused.
ACTION_KINDS: dict[str, tuple[str, ...]] = {}
# The named effects registered by workflow modules (``workflows.effects``),
# as (record kind or "*", name), so a lifecycle naming an unknown effect is refused.
EFFECT_NAMES: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Specific:
    fields: tuple[str, ...]
    vague: tuple[str, ...]
    min_length: int

    @functools.cached_property
    def cores(self) -> tuple[str, ...]:
        """The vague phrases without their spaces, as field values are compared."""
        return tuple(re.sub(r"\s", "", p) for p in self.vague)


@dataclass(frozen=True)
class RequireWhen:
    field: str
    equals: str
    require: tuple[str, ...]


@dataclass
class Rule:
    name: str
    description: str
    priority: int
    subject: re.Pattern
    sender_roles: tuple[str, ...]
    recipient_roles: tuple[str, ...]
    fields: list[FieldSpec]
    required: tuple[str, ...]
    allowed: dict[str, tuple[str, ...]]
    require_when: list[RequireWhen]
    specific: Specific | None
    validate_sender_roles: tuple[str, ...]
    action: str
    templates: dict[str, str]
    settings: dict
    source: str
    # The lifecycles of the record kinds this rule's convention opens ([lifecycle.<kind>]).
    lifecycles: tuple[Lifecycle, ...] = ()
    extractor: FieldExtractor = field(init=False)

    def __post_init__(self):
        self.extractor = FieldExtractor(self.fields)

    def label(self, name: str) -> str:
        for f in self.fields:
            if f.name == name:
                return f.label
        return name

    def check(self, subject: str, sender: Person | None, recipients: list[Person]) -> tuple[dict, list[Decision]] | None:
        """If this rule matches, return (captures, why); else None. ``why``
        is data: [why] codes of templates/messages.toml."""
        m = self.subject.search(subject)
        if not m:
            return None
        why = [Decision("subject_matched", {"rule": self.description or self.name, "pattern": self.subject.pattern})]
        if self.sender_roles:
            if sender is None or not (sender.roles & set(self.sender_roles)):
                return None
            why.append(Decision("sender_has_role", {"roles": sorted(sender.roles & set(self.sender_roles))}))
        if self.recipient_roles:
            if not any(p.roles & set(self.recipient_roles) for p in recipients):
                return None
            why.append(Decision("recipient_has_role", {"roles": list(self.recipient_roles)}))
        caps = {k: (v or "").strip() for k, v in m.groupdict().items()}
        return caps, why

    def validate(self, values: dict[str, str], sender: Person | None) -> list[Problem]:
        """What the regulation finds wrong with the fields, as data; the
        wording is in templates/messages.toml ([problem])."""
        problems: list[Problem] = []
        if self.validate_sender_roles and (sender is None or not (sender.roles & set(self.validate_sender_roles))):
            problems.append(Problem("sender_role", "", {"who": sender.name if sender else "发件人",
                                                        "roles": list(self.validate_sender_roles)}))
        for name in self.required:
            if not values.get(name):
                problems.append(Problem("missing_field", name, {"label": self.label(name)}))
        for name, allowed in self.allowed.items():
            v = values.get(name)
            if v and to_simplified(fold(v)) not in allowed:
                problems.append(Problem("not_allowed_value", name,
                                        {"label": self.label(name), "value": v, "allowed": list(allowed)}))
        for rw in self.require_when:
            if to_simplified(fold(values.get(rw.field, ""))) == rw.equals:
                for name in rw.require:
                    if not values.get(name):
                        problems.append(Problem("required_when", name, {"label": self.label(rw.field),
                                                                        "equals": rw.equals,
                                                                        "required": self.label(name)}))
        if self.specific:
            for name in self.specific.fields:
                v = values.get(name, "")
                if not v:
                    continue
                core = _PUNCT_SPACE.sub("", v)
                # A vague phrase, or the start of one ("正常" of "正常使用").
                vague = self.specific.cores
                vague_hit = core in vague or (core and any(p.startswith(core) for p in vague))
                if vague_hit:
                    problems.append(Problem("too_vague", name, {"label": self.label(name), "value": v}))
                elif len(core) < self.specific.min_length:
                    problems.append(Problem("too_short", name, {"label": self.label(name), "value": v,
                                                                "min_length": self.specific.min_length}))
        return problems


@dataclass
class Match:
    rule: Rule
    captures: dict[str, str]
    why: list[Decision]  # [why] codes of templates/messages.toml
    values: dict[str, str]
    problems: list[Problem]
    # Unknown ``标签：值`` lines kept apart from the fields (shown in receipts).
    extras: list[tuple[str, str]] = field(default_factory=list)


_PUNCT_SPACE = re.compile(r"[\s，。、,.;；!！:：]")


class RuleSet:
    def __init__(self, rules: list[Rule]):
        self.rules = sorted(rules, key=lambda r: (r.priority, r.name))
        self.by_name = {r.name: r for r in self.rules}
        self.lifecycles = Lifecycles(lc for r in self.rules for lc in r.lifecycles)

    def classify(self, subject_norm: str, body: str, sender: Person | None, directory: Directory,
                 recipients: list[str], attached: tuple[str, str] | None = None) -> Match | None:
        """``attached``: (subject, body) of a message forwarded as an
        attachment, whose fields are read when ``body`` has none."""
        subject = remove_ticket_token(subject_norm).strip()
        rcpt_people = [p for p in (directory.by_email(a) for a in recipients) if p]
        for rule in self.rules:
            hit = rule.check(subject, sender, rcpt_people)
            if hit is None:
                continue
            caps, why = hit
            got = rule.extractor.extract_all(body)
            if not got.values and attached is not None and rule.fields:
                inner = rule.extractor.extract_all(attached[1])
                if inner.values:
                    got = inner
                    why = [*why, Decision("fields_from_attached_message", {"subject": attached[0]})]
            return Match(rule, caps, why, got.values, rule.validate(got.values, sender), got.extras)
        return None


def _field_hint(name: str, names) -> str:
    hint = difflib.get_close_matches(name, sorted(names), n=1, cutoff=0.6)
    return f"，是不是 {hint[0]}？" if hint else (f"；已定义的字段：{'、'.join(sorted(names))}" if names else "")


def _tuple_of_str(v, file, key, probs) -> tuple[str, ...]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        probs.append((file, key, "必须是字符串数组，例如 [\"a\", \"b\"]"))
        return ()
    return tuple(v)


def load_rule(path: Path, known_actions: set[str] | None = None) -> tuple[Rule | None, list]:
    file = str(path)
    probs: list[tuple[str, str, str]] = []
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        return None, [(file, "", not_utf8_reason(e))]
    except tomllib.TOMLDecodeError as e:
        return None, [(file, "", toml_error_reason(e))]
    for k in data:
        if k not in _RULE_KEYS:
            probs.append((file, k, unknown_key_reason(k, _RULE_KEYS)))
    name = data.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name or ""):
        probs.append((file, "name", "必填：只能用小写字母、数字和 _，并以字母开头，例如 name = \"customer_report\""))
        name = path.stem
    match = data.get("match", {})
    for k in match:
        if k not in _MATCH_KEYS:
            probs.append((file, f"match.{k}", unknown_key_reason(k, _MATCH_KEYS)))
    pattern = match.get("subject")
    regex = None
    if not isinstance(pattern, str) or not pattern:
        probs.append((file, "match.subject", "必填：匹配（规范化后的）邮件主题的正则表达式"))
    else:
        try:
            regex = re.compile(pattern)
        except re.error as e:
            probs.append((file, "match.subject", f"正则表达式不合法：{e}"))
    sender_roles = _tuple_of_str(match.get("sender_roles", []), file, "match.sender_roles", probs)
    recipient_roles = _tuple_of_str(match.get("recipient_roles", []), file, "match.recipient_roles", probs)
    specs: list[FieldSpec] = []
    fields = data.get("fields", {})
    if not isinstance(fields, dict):
        probs.append((file, "fields", "必须是表，每个字段写成 [fields.字段名]"))
        fields = {}
    for fname, spec in fields.items():
        key = f"fields.{fname}"
        if not isinstance(spec, dict) or not isinstance(spec.get("label"), str) or not spec.get("label"):
            probs.append((file, f"{key}.label", "必填：员工在邮件正文里写的字段名（如 label = \"沟通结果\"）"))
            continue
        for k in spec:
            if k not in _FIELD_KEYS:
                probs.append((file, f"{key}.{k}", unknown_key_reason(k, _FIELD_KEYS)))
        specs.append(FieldSpec(fname, spec["label"], _tuple_of_str(spec.get("synonyms", []), file, f"{key}.synonyms", probs),
                               bool(spec.get("multiline", True))))
    names = {s.name for s in specs}
    v = data.get("validate", {})
    for k in v:
        if k not in _VALIDATE_KEYS:
            probs.append((file, f"validate.{k}", unknown_key_reason(k, _VALIDATE_KEYS)))

    def known(field_name: str, key: str):
        if field_name not in names:
            probs.append((file, key, f"引用的字段 {field_name!r} 没有在 [fields] 中定义" + _field_hint(field_name, names)))

    required = _tuple_of_str(v.get("required", []), file, "validate.required", probs)
    for i, f in enumerate(required):
        known(f, f"validate.required[{i}]")
    allowed = {}
    for f, vals in v.get("allowed", {}).items():
        known(f, f"validate.allowed.{f}")
        allowed[f] = _tuple_of_str(vals, file, f"validate.allowed.{f}", probs)
    rws = []
    for i, rw in enumerate(v.get("require_when", [])):
        key = f"validate.require_when[{i}]"
        if not isinstance(rw, dict) or not {"field", "equals", "require"} <= set(rw):
            probs.append((file, key, "必须同时写 field、equals 和 require"))
            continue
        known(rw["field"], f"{key}.field")
        req = _tuple_of_str(rw["require"], file, f"{key}.require", probs)
        for f in req:
            known(f, f"{key}.require")
        rws.append(RequireWhen(rw["field"], rw["equals"], req))
    specific = None
    if "specific" in v:
        s = v["specific"]
        sf = _tuple_of_str(s.get("fields", []), file, "validate.specific.fields", probs)
        for f in sf:
            known(f, "validate.specific.fields")
        ml = s.get("min_length", 6)
        if not isinstance(ml, int) or ml < 0:
            probs.append((file, "validate.specific.min_length", "必须是大于或等于 0 的整数"))
            ml = 6
        specific = Specific(sf, _tuple_of_str(s.get("vague", []), file, "validate.specific.vague", probs), ml)
    vsr = _tuple_of_str(v.get("sender_roles", []), file, "validate.sender_roles", probs)
    for key, roles in (("match.sender_roles", sender_roles), ("match.recipient_roles", recipient_roles),
                       ("validate.sender_roles", vsr)):
        for r in roles:
            if r not in ROLES:
                probs.append((file, key, f"未知的角色“{r}”；可用的角色：{'、'.join(ROLES)}"))
    do = data.get("do", {})
    for k in do:
        if k not in _DO_KEYS:
            probs.append((file, f"do.{k}", unknown_key_reason(k, _DO_KEYS)))
    action = do.get("action")
    if not isinstance(action, str) or not action:
        probs.append((file, "do.action", "必填：要执行的动作名称"))
    elif known_actions is not None and action not in known_actions:
        probs.append((file, "do.action", f"未知的动作 {action!r}；可用的动作：{'、'.join(sorted(known_actions))}"))
    templates = do.get("templates", {})
    if not isinstance(templates, dict) or not all(isinstance(t, str) for t in templates.values()):
        probs.append((file, "do.templates", "必须是表：用途 = \"模板名\"，例如 { ack = \"report_ack\" }"))
        templates = {}
    settings = data.get("settings", {})
    if not isinstance(settings, dict):
        probs.append((file, "settings", "必须是表（[settings]）"))
        settings = {}
    elif isinstance(action, str) and action in SETTINGS_CHECKS:
        probs += [(file, f"settings.{k}", r) for k, r in SETTINGS_CHECKS[action](settings)]
    lifecycles = []
    lc_tables = data.get("lifecycle", {})
    if not isinstance(lc_tables, dict):
        probs.append((file, "lifecycle", "必须是表，每种记录写成 [lifecycle.记录类型]"))
        lc_tables = {}
    for kind, table in lc_tables.items():
        lc, p = parse_lifecycle(kind, table, rule=name, settings=settings, roles=ROLES, source=file,
                                effects=EFFECT_NAMES if known_actions is not None else None)
        probs += [(file, k, r) for k, r in p]
        if lc is not None:
            lifecycles.append(lc)
    priority = data.get("priority", 100)
    if not isinstance(priority, int):
        probs.append((file, "priority", "必须是整数"))
        priority = 100
    if probs or regex is None:
        return None, probs
    return Rule(name, str(data.get("description", "")), priority, regex, sender_roles, recipient_roles, specs,
                required, allowed, rws, specific, vsr, action, dict(templates), dict(settings), file,
                tuple(lifecycles)), []


def load_rules(folder: str | Path, known_actions: set[str] | None = None) -> RuleSet:
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError([(str(folder), "", "找不到规则文件夹（路径由配置文件中的 paths.rules 指定）")])
    rules, probs = [], []
    for path in sorted(folder.glob("*.toml")):
        rule, p = load_rule(path, known_actions)
        probs += p
        if rule:
            rules.append(rule)
    names = [r.name for r in rules]
    for r in rules:
        if names.count(r.name) > 1:
            probs.append((r.source, "name", f"规则名 {r.name!r} 被多个文件使用，每个规则的 name 必须唯一"))
    declared: dict[str, str] = {}
    prefixes: dict[str, str] = {}
    for r in rules:
        for lc in r.lifecycles:
            if lc.kind in declared:
                probs.append((r.source, f"lifecycle.{lc.kind}",
                              f"记录类型 {lc.kind!r} 的生命周期已在 {declared[lc.kind]} 中声明，每种记录只能声明一次"))
            elif lc.prefix in prefixes:
                probs.append((r.source, f"lifecycle.{lc.kind}.prefix",
                              f"编号前缀 {lc.prefix!r} 已被记录类型 {prefixes[lc.prefix]!r} 使用，每种记录的前缀必须不同"))
            declared.setdefault(lc.kind, r.source)
            prefixes.setdefault(lc.prefix, lc.kind)
    for r in rules:
        for kind in ACTION_KINDS.get(r.action, ()):
            if kind not in declared:
                probs.append((r.source, "lifecycle", f"动作 {r.action!r} 会建立“{kind}”记录，但没有规则文件声明它的"
                                                     f"生命周期：请加上 [lifecycle.{kind}]（格式见 rules/README.md）"))
    if probs:
        raise ConfigError(probs)
    return RuleSet(rules)
