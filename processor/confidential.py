"""Internal documents must not leave the organisation (art. 31, 39: 《测试预案》
and 《实施预案》 "此文档为内部文档，不对外发布").

The policy, as data (``[workflows.confidential]`` in the config)::

    [workflows.confidential]
    enabled = true
    patterns = ["测试预案", "实施预案"]   # what is internal, by attachment name or subject
    internal = []                         # more documents an admin marks internal (names or parts of names)
    domains = []                          # the organisation's mail domains; empty: the directory's
    notify_roles = ["售前经理"]            # told, with the sender, when such a mail goes outside

A name matches a pattern when it contains it, compared after folding
(full-width to half-width, case ignored). This module is pure: the pipeline
(``workflows.confidential``) and the queueing edge (``queueing.MailQueue``)
use it on what they hold.
"""
from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass

from .mail.subject import fold

DEFAULT_PATTERNS = ("测试预案", "实施预案")
KEYS = {"enabled", "patterns", "internal", "domains", "notify_roles"}


@dataclass(frozen=True)
class Policy:
    enabled: bool
    patterns: tuple[str, ...]  # folded
    domains: frozenset[str]  # lower case
    notify_roles: tuple[str, ...]

    def is_internal_name(self, name: str) -> str:
        """The pattern ``name`` matches ("" if none)."""
        f = fold(name or "").lower()
        return next((p for p in self.patterns if p and p in f), "")

    def internal_files(self, subject: str, names: list[str]) -> list[str]:
        """The files of a mail that are internal documents: those whose name
        matches, or every file when the subject names an internal document."""
        if not self.enabled:
            return []
        if names and self.is_internal_name(subject):
            return list(names)
        return [n for n in names if self.is_internal_name(n)]

    def outside(self, addresses) -> list[str]:
        """The addresses (lower case, once each, in order) outside the
        organisation's domains."""
        out: list[str] = []
        for a in addresses:
            a = (a or "").strip().lower()
            if "@" in a and a.rsplit("@", 1)[1] not in self.domains and a not in out:
                out.append(a)
        return out


def _strings(v, default: tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list):
        return default
    return tuple(x for x in v if isinstance(x, str) and x.strip())


def policy(cfg, directory) -> Policy:
    """The policy of the config, the organisation's domains from the
    directory (and the system's own address) unless configured."""
    c = (cfg.workflows.get("confidential") or {}) if isinstance(cfg.workflows, dict) else {}
    patterns = _strings(c.get("patterns"), DEFAULT_PATTERNS) + _strings(c.get("internal"), ())
    domains = _strings(c.get("domains"), ())
    if not domains:
        found = {e.rsplit("@", 1)[1].lower() for p in directory.people for e in p.emails if "@" in e}
        found.add(cfg.system.address.rsplit("@", 1)[-1].lower())
        domains = tuple(sorted(found))
    return Policy(enabled=c.get("enabled", True) is not False,
                  patterns=tuple(dict.fromkeys(fold(p).lower() for p in patterns)),
                  domains=frozenset(d.lower().lstrip("@") for d in domains),
                  notify_roles=_strings(c.get("notify_roles"), ("售前经理",)))


def problems(cfg) -> list[tuple[str, str]]:
    """(key, reason) for ``check``."""
    c = cfg.workflows.get("confidential") or {}
    probs = []
    for k, v in c.items():
        if k not in KEYS:
            probs.append((k, f"未知的键（拼写错误？）；这里可以写的键：{'、'.join(sorted(KEYS))}"))
        elif k == "enabled" and not isinstance(v, bool):
            probs.append((k, "必须是 true 或 false"))
        elif k != "enabled" and not (isinstance(v, list) and all(isinstance(x, str) and x.strip() for x in v)):
            probs.append((k, "必须是非空字符串的数组，例如 [\"测试预案\"]"))
    return probs


def embedded(data: bytes) -> tuple[str, list[str]]:
    """(subject, attachment names) of a message/rfc822 attachment."""
    try:
        msg = email.message_from_bytes(data, policy=email.policy.default)
        names = [p.get_filename() or "" for p in msg.walk() if p.get_filename()]
        return str(msg.get("Subject", "") or ""), names
    except Exception:  # a broken forward: judged by its bytes below
        return "", []


def withheld(pol: Policy, attachments: list[tuple[str, str, bytes]]) -> list[str]:
    """The names of the attachments of an outgoing mail that carry an
    internal document: by name, or a forwarded original (message/rfc822)
    whose subject or files name one."""
    if not pol.enabled:
        return []
    out = []
    for name, ctype, data in attachments:
        if pol.is_internal_name(name):
            out.append(name)
        elif ctype == "message/rfc822":
            subject, names = embedded(data)
            if pol.internal_files(subject, names):
                out.append(name)
    return out
