"""The admins' directory: people (addresses, roles) and projects.

Loaded from a TOML file; every mistake is reported with file, key and reason.
"""
from __future__ import annotations

import difflib
import tomllib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from .config import ConfigError

ROLES = ("销售", "售前", "售前经理", "技术支持部经理", "技术总监", "总经理", "研发经理", "研发", "测试组")
PROJECT_STATUSES = ("active", "closed", "suspended")


@dataclass(frozen=True)
class Person:
    name: str
    emails: tuple[str, ...]
    roles: frozenset[str]

    @property
    def email(self) -> str:
        return self.emails[0]

    def has(self, role: str) -> bool:
        return role in self.roles


@dataclass(frozen=True)
class Project:
    name: str
    aliases: tuple[str, ...] = ()
    sales: str = ""  # 责任销售 (person name)
    presales1: str = ""  # 第一售前
    presales2: str = ""  # 第二售前
    status: str = "active"
    customer: str = ""
    source: str = "directory"  # directory | 立项 mail


class AmbiguousProject(Exception):
    def __init__(self, name: str, candidates: list[str]):
        self.name = name
        self.candidates = candidates
        super().__init__(f"{name!r} matches several projects: {', '.join(candidates)}")


def project_key(name: str) -> str:
    """Normalise a project name for matching: NFKC (full-width folded),
    whitespace removed, lower-case, a trailing 项目 dropped."""
    s = unicodedata.normalize("NFKC", name or "")
    s = "".join(s.split()).lower()
    if s.endswith("项目") and len(s) > 2:
        s = s[:-2]
    return s


@dataclass
class Directory:
    people: list[Person] = field(default_factory=list)
    projects: list[Project] = field(default_factory=list)
    source: str = "<empty>"

    def __post_init__(self):
        self._reindex()

    def _reindex(self):
        self._by_email = {e: p for p in self.people for e in p.emails}
        self._by_name = {p.name: p for p in self.people}
        self._project_keys: dict[str, set[str]] = {}
        self._projects = {p.name: p for p in self.projects}
        for p in self.projects:
            for n in (p.name, *p.aliases):
                self._project_keys.setdefault(project_key(n), set()).add(p.name)

    # people -------------------------------------------------------------
    def by_email(self, addr: str) -> Person | None:
        return self._by_email.get((addr or "").lower())

    def by_name(self, name: str) -> Person | None:
        return self._by_name.get((name or "").strip())

    def with_role(self, role: str) -> list[Person]:
        return [p for p in self.people if role in p.roles]

    def is_known(self, addr: str) -> bool:
        return (addr or "").lower() in self._by_email

    # projects -----------------------------------------------------------
    def project(self, name: str) -> Project | None:
        """Deterministic match after normalisation; raises AmbiguousProject."""
        hits = self._project_keys.get(project_key(name), set())
        if len(hits) > 1:
            raise AmbiguousProject(name, sorted(hits))
        return self._projects[next(iter(hits))] if hits else None

    def closest_projects(self, name: str, n: int = 3) -> list[str]:
        key = project_key(name)
        keys = list(self._project_keys)
        scored = difflib.get_close_matches(key, keys, n=n * 2, cutoff=0.3)
        out: list[str] = []
        for k in scored:
            for pname in sorted(self._project_keys[k]):
                if pname not in out:
                    out.append(pname)
        return out[:n]

    def with_projects(self, extra: list[Project]) -> "Directory":
        """A copy where projects from 立项 mails fill in what the file lacks.

        The directory file wins for a project it defines (admins' word is final)."""
        have = {project_key(p.name) for p in self.projects}
        merged = list(self.projects) + [p for p in extra if project_key(p.name) not in have]
        return Directory(self.people, merged, self.source)


def _problems_person(i: int, raw: dict, file: str) -> tuple[Person | None, list]:
    probs = []
    key = f"people[{i}]"
    allowed = {"name", "emails", "roles"}
    for k in raw:
        if k not in allowed:
            probs.append((file, f"{key}.{k}", "unknown key (misspelt?)"))
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        probs.append((file, f"{key}.name", "missing or empty"))
        return None, probs
    emails = raw.get("emails")
    if isinstance(emails, str):
        emails = [emails]
    if not isinstance(emails, list) or not emails:
        probs.append((file, f"{key}.emails", f"{name}: at least one address is needed"))
        emails = []
    clean = []
    for j, e in enumerate(emails):
        if not isinstance(e, str) or "@" not in e or " " in e.strip():
            probs.append((file, f"{key}.emails[{j}]", f"{name}: {e!r} is not an email address"))
        else:
            clean.append(e.strip().lower())
    roles = raw.get("roles", [])
    if isinstance(roles, str):
        roles = [roles]
    for j, r in enumerate(roles):
        if r not in ROLES:
            hint = difflib.get_close_matches(str(r), ROLES, n=1)
            probs.append((file, f"{key}.roles[{j}]", f"{name}: unknown role {r!r}" + (f" (did you mean {hint[0]}?)" if hint else f"; known roles: {'、'.join(ROLES)}")))
    return Person(name.strip(), tuple(clean), frozenset(r for r in roles if r in ROLES)), probs


def load_directory(path: str | Path) -> Directory:
    path = Path(path)
    file = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([(file, "", "directory file not found (paths.directory in the config)")])
    except UnicodeDecodeError as e:
        raise ConfigError([(file, "", f"not UTF-8 text ({e.reason} at byte {e.start})")])
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([(file, "", f"TOML syntax error: {e}")])
    probs: list[tuple[str, str, str]] = []
    for k in data:
        if k not in ("people", "projects"):
            probs.append((file, k, "unknown key; the directory has [[people]] and [[projects]]"))
    people: list[Person] = []
    seen_email: dict[str, str] = {}
    seen_name: set[str] = set()
    for i, raw in enumerate(data.get("people", [])):
        if not isinstance(raw, dict):
            probs.append((file, f"people[{i}]", "must be a table ([[people]])"))
            continue
        person, p = _problems_person(i, raw, file)
        probs += p
        if person is None:
            continue
        if person.name in seen_name:
            probs.append((file, f"people[{i}].name", f"duplicate person name {person.name!r}"))
        seen_name.add(person.name)
        for e in person.emails:
            if e in seen_email:
                probs.append((file, f"people[{i}].emails", f"address {e} is also listed for {seen_email[e]}"))
            seen_email[e] = person.name
        people.append(person)
    by_name = {p.name: p for p in people}
    projects: list[Project] = []
    seen_keys: dict[str, str] = {}
    role_of = {"sales": ("销售", "责任销售"), "presales1": ("售前", "第一售前"), "presales2": ("售前", "第二售前")}
    for i, raw in enumerate(data.get("projects", [])):
        key = f"projects[{i}]"
        if not isinstance(raw, dict):
            probs.append((file, key, "must be a table ([[projects]])"))
            continue
        for k in raw:
            if k not in ("name", "aliases", "sales", "presales1", "presales2", "status", "customer"):
                probs.append((file, f"{key}.{k}", "unknown key (misspelt?)"))
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            probs.append((file, f"{key}.name", "missing or empty"))
            continue
        aliases = raw.get("aliases", [])
        if isinstance(aliases, str):
            aliases = [aliases]
        for field_, (role, label) in role_of.items():
            who = raw.get(field_, "")
            if not who:
                if field_ != "presales2":
                    probs.append((file, f"{key}.{field_}", f"project {name}: {label} is required"))
                continue
            person = by_name.get(who)
            if person is None:
                probs.append((file, f"{key}.{field_}", f"project {name}: {label} {who!r} is not in [[people]]"))
            elif role not in person.roles:
                probs.append((file, f"{key}.{field_}", f"project {name}: {label} {who} does not have the role {role}"))
        if raw.get("presales2") and raw.get("presales2") == raw.get("presales1"):
            probs.append((file, f"{key}.presales2", f"project {name}: 第二售前 must differ from 第一售前"))
        status = raw.get("status", "active")
        if status not in PROJECT_STATUSES:
            probs.append((file, f"{key}.status", f"project {name}: status must be one of {', '.join(PROJECT_STATUSES)}"))
        for n in (name, *aliases):
            k = project_key(n)
            if not k:
                probs.append((file, f"{key}.aliases", f"project {name}: empty alias"))
            elif k in seen_keys and seen_keys[k] != name:
                probs.append((file, f"{key}.aliases" if n != name else f"{key}.name",
                              f"{n!r} would match both {seen_keys[k]} and {name}; names and aliases must be unambiguous"))
            seen_keys[k] = name
        projects.append(Project(name.strip(), tuple(a.strip() for a in aliases), raw.get("sales", ""),
                                raw.get("presales1", ""), raw.get("presales2", ""), status, raw.get("customer", "")))
    if probs:
        raise ConfigError(probs)
    return Directory(people, projects, file)
