"""Typed settings per workflow action.

Each action declares its settings once, as a pydantic model beside the
workflow (``@settings_for("record_report") class ReportSettings(Settings)``):
every key with its type, default and constraints; other keys are refused.
The model is the rule's ``[settings]`` overlaid by the config's
``[workflows.<rule>]``, validated once per rule and cached (``for_rule``);
workflows read it as ``ctx.settings.<key>``.

``check`` reports what the model refuses as (key, reason) lines in Chinese
(``Settings.problems``): the key as ``penalties[0].every``, the reason from
the field's ``description`` (what the value must be) and the value found. A
rule file with bad settings does not load; a bad override in the config is
reported by ``check`` and, at run time, falls back to the rule's value (or
the default), with a warning in the log.
"""
from __future__ import annotations

import json
import logging
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from pydantic_core import PydanticCustomError

from ..directory import ROLES
from ..errors import unknown_key_reason
from ..rules.engine import SETTINGS_CHECKS

log = logging.getLogger(__name__)

S = TypeVar("S", bound="Settings")

# action name -> its settings model
MODELS: dict[str, type["Settings"]] = {}


class Settings(BaseModel):
    """Base of the settings models: strict types (TOML gives real ones: no
    "3" for 3), unknown keys refused, immutable (one instance serves every
    mail of the rule). ``get``/``[]``/``keys`` let code that looks settings
    up by name (a lifecycle's ``settings.<key>``) read the model."""
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    def get(self, key: str, default: Any = None) -> Any:
        if key in type(self).model_fields or key in (self.__pydantic_extra__ or {}):
            return getattr(self, key)
        return default

    def __getitem__(self, key: str) -> Any:
        if key in type(self).model_fields or key in (self.__pydantic_extra__ or {}):
            return getattr(self, key)
        raise KeyError(key)

    def keys(self):
        return [*type(self).model_fields, *(self.__pydantic_extra__ or {})]

    @classmethod
    def problems(cls, settings: dict) -> list[tuple[str, str]]:
        """(key, Chinese reason) for each thing wrong in ``settings``, for `check`."""
        if not isinstance(settings, dict):
            return [("", "必须是表")]
        try:
            cls.model_validate(settings)
        except ValidationError as e:
            out: list[tuple[str, str]] = []
            for err in e.errors():
                p = (_key(err["loc"]), _reason(cls, err))
                if p not in out:
                    out.append(p)
            return out
        return []


class FreeSettings(Settings):
    """For an action without a declared model: any key, as written."""
    model_config = ConfigDict(extra="allow", strict=True, frozen=True)


def settings_for(action: str):
    """Class decorator: ``cls`` is the settings model of ``action``; `check`
    validates the rules of that action (and their config overrides) with it."""
    def deco(cls: type[S]) -> type[S]:
        MODELS[action] = cls
        SETTINGS_CHECKS[action] = cls.problems
        return cls
    return deco


# -- field types, each with what `check` says it must be ---------------------------


def _known_role(r: str) -> str:
    if r not in ROLES:
        raise PydanticCustomError("cn", "未知的角色“{role}”；可用的角色：{roles}", {"role": r, "roles": "、".join(ROLES)})
    return r


Text = Annotated[str, StringConstraints(min_length=1), Field(description="非空的字符串")]
Flag = Annotated[bool, Field(description="true 或 false")]
Words = Annotated[tuple[Annotated[str, StringConstraints(min_length=1)], ...],
                  Field(strict=False, description="非空字符串的列表，例如 [\"已解决\"]")]
SomeWords = Annotated[tuple[Annotated[str, StringConstraints(min_length=1)], ...],
                      Field(strict=False, min_length=1, description="至少含一项的列表，每项是非空的字符串，例如 [\"已解决\"]")]
Role = Annotated[str, AfterValidator(_known_role)]
Roles = Annotated[tuple[Role, ...], Field(strict=False, description="角色名称的列表，例如 [\"售前经理\"]")]
SomeRoles = Annotated[tuple[Role, ...], Field(strict=False, min_length=1,
                                               description="至少含一个角色名称的列表，例如 [\"售前经理\"]")]


# -- building the model for a rule ----------------------------------------------------

_CACHE: dict = {}
_CACHE_SIZE = 64


def for_rule(rule, cfg, model: type[S] | None = None) -> S:
    """The typed settings of ``rule`` (its [settings] overlaid by the
    config's [workflows.<rule name>]), validated once per (rule, config)."""
    model = model or MODELS.get(rule.action, FreeSettings)
    return _memo((id(rule), id(cfg), model), (rule, cfg), lambda: build(
        model, rule.settings, cfg.workflows.get(rule.name) or {}, name=rule.name))


def for_name(name: str, cfg, model: type[S], rule=None) -> S:
    """``model`` for the rule ``name`` (None when it is not loaded: the
    defaults overlaid by the config's [workflows.<name>])."""
    if rule is not None:
        return for_rule(rule, cfg, model)
    return _memo((name, id(cfg), model), (cfg,), lambda: build(model, {}, cfg.workflows.get(name) or {}, name=name))


def typed(ctx, model: type[S], rule_name: str) -> S:
    """``ctx.settings`` when the bound rule's action declares ``model``;
    otherwise (a reply whose rule is no longer loaded, or code shared with
    another convention) ``model`` for the rule ``rule_name``."""
    st = ctx.settings
    if isinstance(st, model):
        return st
    rule = ctx.rules.by_name.get(rule_name) if ctx.rules is not None else None
    return for_name(rule_name, ctx.cfg, model, rule)


def _memo(key, keep: tuple, make):
    hit = _CACHE.get(key)
    if hit is not None and all(a is b for a, b in zip(hit[0], keep)):
        return hit[1]
    value = make()
    _CACHE[key] = (keep, value)  # the objects are kept so that their ids are not reused meanwhile
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE), None), None)
    return value


def build(model: type[S], base: dict, over: dict, *, name: str = "") -> S:
    """``model`` from ``base`` (a rule's [settings], validated when the rule
    was loaded) overlaid by ``over`` (the config's [workflows.<name>]). A key
    of ``over`` that is wrong keeps the rule's value (or the default): `check`
    reports it, and the log says so."""
    base = dict(base) if isinstance(base, dict) else {}
    over = dict(over) if isinstance(over, dict) else {}
    for _ in range(3):
        try:
            return model.model_validate({**base, **over})
        except ValidationError as e:
            bad = {err["loc"][0] for err in e.errors() if err["loc"]} or set(base) | set(over)
            wrong = sorted(str(k) for k in bad if k in over)
            if wrong:
                log.warning("配置文件 [workflows.%s] 中的设置 %s 不正确，按规则文件的值或默认值处理（运行 check 查看原因）",
                            name, "、".join(wrong))
                over = {k: v for k, v in over.items() if k not in bad}
            else:
                base = {k: v for k, v in base.items() if k not in bad}
    return model()


# -- Chinese reasons ---------------------------------------------------------------------


def _key(loc) -> str:
    """('penalties', 0, 'every') -> penalties[0].every; an item of a list of
    words or roles is reported at the list (the reason names the item)."""
    parts = list(loc)
    while parts and isinstance(parts[-1], int):
        parts.pop()
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _field_at(model: type[BaseModel], loc):
    """(the field at ``loc``, the model that declares it)."""
    info, owner = None, model
    for p in loc:
        if isinstance(p, int):
            continue
        fields = getattr(owner, "model_fields", None)
        if not fields or p not in fields:
            break
        info = fields[p]
        nested = _model_in(info.annotation)
        if nested is not None:
            owner = nested
    return info, owner


def _model_in(annotation):
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for a in getattr(annotation, "__args__", ()) or ():
        m = _model_in(a)
        if m is not None:
            return m
    return None


def show(v: Any) -> str:
    """A value as written in TOML: "文字", 3, true, ["a", "b"]."""
    try:
        return json.dumps(v, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(v)


def _reason(model: type[BaseModel], err: dict) -> str:
    kind, loc = err["type"], err["loc"]
    if kind == "extra_forbidden":
        _, owner = _field_at(model, loc[:-1])
        return unknown_key_reason(loc[-1], getattr(owner, "model_fields", {}))
    if kind == "cn":
        return err["msg"]
    info, _ = _field_at(model, loc)
    want = (info.description if info is not None else "") or "正确的值"
    if kind == "missing":
        return f"必填：{want}"
    return f"必须是{_spaced(want)}，现为 {show(err.get('input'))}"


def _spaced(text: str) -> str:
    """A space between 必须是 and a word or sign that is not Chinese."""
    return text if "\u4e00" <= text[:1] <= "\u9fff" else " " + text
