"""A rule's [settings] (overlaid by the config's [workflows.<rule>]), read
with their defaults: a wrong value falls back to the default here, and the
workflows' ``check_settings`` report it (with the Chinese unknown-key text
``check`` uses)."""
from __future__ import annotations

from ..errors import unknown_key_reason


def unknown_settings(settings: dict, known) -> list[tuple[str, str]]:
    """(key, reason) for each [settings] key the workflow does not know, for `check`."""
    return [(k, unknown_key_reason(k, known)) for k in settings if k not in known]


def as_int(settings: dict, key: str, default: int) -> int:
    v = settings.get(key, default)
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else default


def as_bool(settings: dict, key: str, default: bool) -> bool:
    v = settings.get(key, default)
    return v if isinstance(v, bool) else default


def as_str(settings: dict, key: str, default: str) -> str:
    v = settings.get(key, default)
    return v if isinstance(v, str) and v else default


def as_words(settings: dict, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    v = settings.get(key, default)
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) and x for x in v):
        return default
    return tuple(v)
