"""The admins' directory: people (addresses, roles) and projects.

Loaded from a TOML file; every mistake is reported with file, key and reason.
"""
from __future__ import annotations

import difflib
import tomllib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from .addresses import address_problem
from .mail.hanzi import to_simplified
from .errors import ConfigError, not_utf8_reason, toml_error_reason, unknown_key_reason

ROLES = ("销售", "售前", "售前经理", "技术支持部经理", "技术总监", "总经理", "研发经理", "研发", "测试组", "销售负责人")
PROJECT_STATUSES = ("active", "closed", "suspended")
_PROJECT_KEYS = ("name", "aliases", "sales", "presales1", "presales2", "status", "customer")


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
        super().__init__(f"项目名“{name}”同时匹配多个项目：{'、'.join(candidates)}")


# difflib ratio a project name must reach to be offered as "did you mean".
NEAR_MATCH = 0.6


def project_key(name: str) -> str:
    """Normalise a project name for matching: NFKC (full-width folded),
    whitespace removed, lower-case, traditional characters folded to
    simplified (OpenCC), a trailing 项目 dropped."""
    s = unicodedata.normalize("NFKC", name or "")
    s = to_simplified("".join(s.split()).lower())
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
        """Projects whose name (or alias) is a real near match of ``name``: a
        typo, a missing or extra character (华能电场监控 → 华能电厂监控), not a
        name that merely shares a character (新华保险 is not near 华夏银行)."""
        key = project_key(name)
        keys = list(self._project_keys)
        scored = difflib.get_close_matches(key, keys, n=n * 2, cutoff=NEAR_MATCH)
        out: list[str] = []
        for k in scored:
            for pname in sorted(self._project_keys[k]):
                if pname not in out:
                    out.append(pname)
        return out[:n]

    def upsert_project(self, project: Project) -> Project:
        """Add or replace a project defined by a 立项 mail, in place, so the
        mails after it in the same batch see it. A project the directory file
        defines is kept as the file says (the file wins); returns the project
        now in force."""
        key = project_key(project.name)
        current = self._projects.get(next(iter(self._project_keys.get(key, ())), ""))
        if current is not None and current.source == "directory":
            return current
        self.projects = [p for p in self.projects if project_key(p.name) != key] + [project]
        self._reindex()
        return project

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
            probs.append((file, f"{key}.{k}", unknown_key_reason(k, allowed)))
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        probs.append((file, f"{key}.name", "缺少姓名或姓名为空，请写 name = \"姓名\""))
        return None, probs
    emails = raw.get("emails")
    if isinstance(emails, str):
        emails = [emails]
    if not isinstance(emails, list) or not emails:
        probs.append((file, f"{key}.emails", f"{name}：至少要有一个邮件地址，例如 emails = [\"zhangsan@company.example\"]"))
        emails = []
    clean = []
    for j, e in enumerate(emails):
        why = address_problem(e)
        if why:
            probs.append((file, f"{key}.emails[{j}]", f"{name}：{why}"))
        else:
            clean.append(e.strip().lower())
    roles = raw.get("roles", [])
    if isinstance(roles, str):
        roles = [roles]
    for j, r in enumerate(roles):
        if r not in ROLES:
            hint = difflib.get_close_matches(str(r), ROLES, n=1)
            probs.append((file, f"{key}.roles[{j}]", f"{name}：未知的角色“{r}”" + (f"，是不是“{hint[0]}”？" if hint else f"；可用的角色：{'、'.join(ROLES)}")))
    return Person(name.strip(), tuple(clean), frozenset(r for r in roles if r in ROLES)), probs


def load_directory(path: str | Path) -> Directory:
    path = Path(path)
    file = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([(file, "", "找不到通讯录文件（路径由配置文件中的 paths.directory 指定）")])
    except UnicodeDecodeError as e:
        raise ConfigError([(file, "", not_utf8_reason(e))])
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([(file, "", toml_error_reason(e))])
    probs: list[tuple[str, str, str]] = []
    for k in data:
        if k not in ("people", "projects"):
            probs.append((file, k, unknown_key_reason(k, ("people", "projects"))))
    people: list[Person] = []
    seen_email: dict[str, str] = {}
    seen_name: set[str] = set()
    for i, raw in enumerate(data.get("people", [])):
        if not isinstance(raw, dict):
            probs.append((file, f"people[{i}]", "必须是表：每个人以 [[people]] 开头"))
            continue
        person, p = _problems_person(i, raw, file)
        probs += p
        if person is None:
            continue
        if person.name in seen_name:
            probs.append((file, f"people[{i}].name", f"姓名“{person.name}”重复了：每个人只能登记一次（同一个人的多个地址都写在 emails 里）"))
        seen_name.add(person.name)
        for e in person.emails:
            if e in seen_email:
                probs.append((file, f"people[{i}].emails", f"地址 {e} 已经登记给了 {seen_email[e]}：一个地址只能属于一个人"))
            seen_email[e] = person.name
        people.append(person)
    by_name = {p.name: p for p in people}
    projects: list[Project] = []
    seen_keys: dict[str, str] = {}
    role_of = {"sales": ("销售", "责任销售"), "presales1": ("售前", "第一售前"), "presales2": ("售前", "第二售前")}
    for i, raw in enumerate(data.get("projects", [])):
        key = f"projects[{i}]"
        if not isinstance(raw, dict):
            probs.append((file, key, "必须是表：每个项目以 [[projects]] 开头"))
            continue
        for k in raw:
            if k not in _PROJECT_KEYS:
                probs.append((file, f"{key}.{k}", unknown_key_reason(k, _PROJECT_KEYS)))
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            probs.append((file, f"{key}.name", "缺少项目名称或名称为空，请写 name = \"项目名称\""))
            continue
        aliases = raw.get("aliases", [])
        if isinstance(aliases, str):
            aliases = [aliases]
        for field_, (role, label) in role_of.items():
            who = raw.get(field_, "")
            if not who:
                if field_ != "presales2":
                    probs.append((file, f"{key}.{field_}", f"项目 {name}：必须填写{label}（[[people]] 中的姓名）"))
                continue
            person = by_name.get(who)
            if person is None:
                probs.append((file, f"{key}.{field_}", f"项目 {name}：{label}“{who}”不在 [[people]] 中（姓名要与 [[people]] 的 name 完全一致）"))
            elif role not in person.roles:
                probs.append((file, f"{key}.{field_}", f"项目 {name}：{label} {who} 没有“{role}”角色（请在 [[people]] 中给此人加上该角色，或换一个人）"))
        if raw.get("presales2") and raw.get("presales2") == raw.get("presales1"):
            probs.append((file, f"{key}.presales2", f"项目 {name}：第二售前不能与第一售前是同一个人"))
        status = raw.get("status", "active")
        if status not in PROJECT_STATUSES:
            probs.append((file, f"{key}.status", f"项目 {name}：status 只能是以下之一：{'、'.join(PROJECT_STATUSES)}，现为“{status}”"))
        for n in (name, *aliases):
            k = project_key(n)
            if not k:
                probs.append((file, f"{key}.aliases", f"项目 {name}：别名不能为空"))
            elif k in seen_keys and seen_keys[k] != name:
                probs.append((file, f"{key}.aliases" if n != name else f"{key}.name",
                              f"“{n}”会同时匹配项目 {seen_keys[k]} 和 {name}：项目名称和别名必须能唯一区分"))
            seen_keys[k] = name
        projects.append(Project(name.strip(), tuple(a.strip() for a in aliases), raw.get("sales", ""),
                                raw.get("presales1", ""), raw.get("presales2", ""), status, raw.get("customer", "")))
    if probs:
        raise ConfigError(probs)
    return Directory(people, projects, file)
