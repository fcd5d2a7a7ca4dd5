"""Record lifecycles: per record kind, its states, transitions and clocks, as data.

Each record kind's lifecycle is declared once, in the ``[lifecycle.<kind>]``
table of the rule file of the convention that opens such records (see
``rules/README.md``)::

    [lifecycle.workorder]
    prefix = "GD"                 # record numbers: GD2026-0001
    label = "故障处理工作单"
    reopen = "assigned"           # where a low 回访 score puts a closed record back
    parties = { raiser = "故障提出人", rd_owner = "研发负责人" }

    [lifecycle.workorder.states]  # grouped; each state with its Chinese name
    initial = { pending_approval = "待审批" }
    active = { rd_review = "待研发审核", assigned = "已指派" }
    final = { closed = "已关闭" }

    [[lifecycle.workorder.transitions]]
    command = "同意"              # the keyword of the reply (or an event: 重新提交, 满意度 ...)
    from = ["pending_approval"]
    to = "rd_review"
    who = ["settings.approver_roles"]   # roles, parties of the record, or settings holding roles
    needs = ""                    # what the command's argument is, when one is required (原因)
    effect = "approved"           # the named effect the workflow runs
    notify = ["settings.rd_manager_roles", "raiser"]

    [lifecycle.workorder.clocks]
    start = ["response", "update", "resolution"]
    steps = ["pending_approval"]

``who`` entries are a role (销售, 售前经理 ...), a party of the record (a key of
``parties``: the record's data holds the person's name; ``owner`` is the
record's owner), ``settings.<key>`` (the roles listed in that key of the
rule's settings, overlaid by the config's ``[workflows.<rule>]``), or
``system`` (the system decides: a rule checked by the workflow, e.g. the
surveyed party's 回访 score, or a later 成功 report).

Clocks (durations are the config's ``[sla]`` profiles):

- ``start``: the record clocks (response, update, resolution) started when
  the record is opened in a state that is not final, and again when it is
  reopened; entering a final state stops every clock;
- ``stop_on_reply`` / ``restart_on_reply``: what a staff reply in the
  record's thread does to them (stops them; stops and starts them again);
  a started clock in neither is stopped only by entering a final state;
- ``pause``: states in which the record clocks are paused;
- ``steps``: states with a step clock (running while the record waits in the
  state, stopped only by leaving it: by the transitions out of the state),
  owned by whoever may leave the state.

``Lifecycle.stop(clock)`` says what stops a clock, from these declarations;
the reminder and escalation mails say exactly that.

This module is pure: it parses tables (as ``tomllib`` gives them) into
frozen objects and answers questions about them; it reads no file and knows
no workflow, store or mail.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

GROUPS = ("initial", "active", "final")
GROUP_NAMES = {"initial": "初始", "active": "处理中", "final": "结束"}
SYSTEM = "system"
OWNER = "owner"
RECORD_CLOCKS = ("response", "update", "resolution")
SETTINGS_PREFIX = "settings."

_KEYS = {"prefix", "label", "reopen", "parties", "states", "transitions", "clocks"}
_TRANSITION_KEYS = {"command", "from", "to", "who", "needs", "effect", "notify"}
_CLOCK_KEYS = {"start", "stop_on_reply", "restart_on_reply", "pause", "steps"}
_KIND = re.compile(r"^[a-z][a-z0-9_]*$")
_PREFIX = re.compile(r"^[A-Z][A-Z0-9]{0,7}$")


class LifecycleError(Exception):
    """A state change the record's lifecycle does not declare (a bug in a
    workflow, not a user's mistake: users get the standard refusals)."""


@dataclass(frozen=True)
class Transition:
    command: str
    sources: tuple[str, ...]
    target: str
    who: tuple[str, ...]
    needs: str = ""
    effect: str = ""
    notify: tuple[str, ...] = ()


@dataclass(frozen=True)
class Clocks:
    start: tuple[str, ...] = ()
    stop_on_reply: tuple[str, ...] = ()
    restart_on_reply: tuple[str, ...] = ()
    pause: tuple[str, ...] = ()
    steps: tuple[str, ...] = ()


@dataclass(frozen=True)
class Stop:
    """What stops a clock: ``by`` is ``reply`` (a staff reply in the
    record's thread), ``restart`` (a reply starts it again; it ends with the
    record), ``leave`` (a step clock: the record leaving ``state``) or
    ``final`` (only the record entering a final state). ``transitions``: the
    declared steps that stop it (for ``leave`` the ones out of the state;
    otherwise the ones into a final state)."""
    by: str
    transitions: tuple[Transition, ...] = ()
    state: str = ""

    @property
    def by_reply(self) -> bool:
        return self.by == "reply"


@dataclass(frozen=True)
class Lifecycle:
    kind: str
    prefix: str
    label: str
    states: dict[str, str]  # state -> Chinese name, in declaration order
    groups: dict[str, str]  # state -> initial | active | final
    transitions: tuple[Transition, ...]
    clocks: Clocks = Clocks()
    reopen: str = ""
    parties: dict[str, str] = field(default_factory=dict)  # party key -> Chinese name
    rule: str = ""  # the rule that declares it (its settings resolve ``settings.<key>``)
    settings: dict = field(default_factory=dict)  # that rule's [settings]
    source: str = ""

    # -- states -------------------------------------------------------------
    def name(self, state: str) -> str:
        return self.states.get(state, state)

    def in_group(self, group: str) -> tuple[str, ...]:
        return tuple(s for s, g in self.groups.items() if g == group)

    @property
    def initial(self) -> tuple[str, ...]:
        return self.in_group("initial")

    @property
    def final(self) -> tuple[str, ...]:
        return self.in_group("final")

    @property
    def open_states(self) -> tuple[str, ...]:
        return tuple(s for s, g in self.groups.items() if g != "final")

    def is_final(self, state: str) -> bool:
        return self.groups.get(state) == "final"

    # -- transitions --------------------------------------------------------
    def commands(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t.command for t in self.transitions))

    def possible(self, state: str) -> list[Transition]:
        return [t for t in self.transitions if state in t.sources]

    def find(self, command: str, source: str, target: str | None = None) -> Transition | None:
        """The declared transition for ``command`` from ``source`` (to ``target``)."""
        for t in self.transitions:
            if t.command == command and source in t.sources and (target is None or t.target == target):
                return t
        return None

    def reopen_step(self) -> Transition | None:
        """The declared way back from a final state to ``reopen``, if any."""
        if not self.reopen:
            return None
        return next((t for t in self.transitions if t.target == self.reopen
                     and any(self.is_final(s) for s in t.sources)), None)

    def finishing(self) -> tuple[Transition, ...]:
        """The transitions that end an open record (into a final state)."""
        return tuple(t for t in self.transitions if self.is_final(t.target)
                     and any(not self.is_final(s) for s in t.sources))

    def stop(self, clock: str) -> Stop:
        """What stops ``clock`` (``response``, ``update``, ``resolution`` or
        ``step:<state>``), as declared in ``clocks``."""
        if clock.startswith("step:"):
            state = clock[5:]
            return Stop("leave", tuple(t for t in self.possible(state) if t.target != state), state)
        if clock in self.clocks.stop_on_reply:
            return Stop("reply", self.finishing())
        if clock in self.clocks.restart_on_reply:
            return Stop("restart", self.finishing())
        return Stop("final", self.finishing())

    def reopen_transition(self, state: str) -> Transition | None:
        """The declared way back from ``state`` to the reopen target, if any."""
        if not self.reopen:
            return None
        return next((t for t in self.transitions if state in t.sources and t.target == self.reopen), None)

    # -- people -------------------------------------------------------------
    def settings_in(self, workflows: dict) -> dict:
        """The declaring rule's settings overlaid by the config's
        ``[workflows.<rule>]`` (``workflows``: the config's whole table)."""
        return {**self.settings, **(workflows.get(self.rule, {}) or {})}

    def resolve(self, entries, settings: dict | None = None) -> tuple[str, ...]:
        """``who``/``notify`` entries with ``settings.<key>`` replaced by the
        roles that setting lists (``settings``: the rule's settings overlaid
        by the config's; the declaring rule's when None)."""
        st = self.settings if settings is None else settings
        out: list[str] = []
        for e in entries:
            if e.startswith(SETTINGS_PREFIX):
                v = st.get(e[len(SETTINGS_PREFIX):], self.settings.get(e[len(SETTINGS_PREFIX):], ()))
                vals = [v] if isinstance(v, str) else list(v) if isinstance(v, (list, tuple)) else []
                out += [x for x in vals if isinstance(x, str) and x and x not in out]
            elif e not in out:
                out.append(e)
        return tuple(out)

    def step_owner(self, state: str, settings: dict | None = None) -> str:
        """Who must act while a record waits in ``state``: the first role or
        party allowed to take a transition out of it ("" if none)."""
        for t in self.possible(state):
            for w in self.resolve(t.who, settings):
                if w != SYSTEM:
                    return w
        return ""

    def party_name(self, who: str) -> str:
        return self.parties.get(who, "负责人" if who == OWNER else who)


class Lifecycles:
    """Every loaded lifecycle, by record kind."""

    def __init__(self, items=()):
        self.by_kind: dict[str, Lifecycle] = {lc.kind: lc for lc in items}

    def __iter__(self):
        return iter(self.by_kind.values())

    def __contains__(self, kind: str) -> bool:
        return kind in self.by_kind

    def get(self, kind: str) -> Lifecycle | None:
        return self.by_kind.get(kind)

    def __getitem__(self, kind: str) -> Lifecycle:
        lc = self.by_kind.get(kind)
        if lc is None:
            raise LifecycleError(f"no lifecycle is declared for records of kind {kind!r}")
        return lc

    def label(self, kind: str) -> str:
        lc = self.get(kind)
        return lc.label if lc else kind

    def state_name(self, kind: str, state: str) -> str:
        lc = self.get(kind)
        return lc.name(state) if lc else state

    def is_final(self, kind: str, state: str) -> bool:
        lc = self.get(kind)
        return lc.is_final(state) if lc else False

    def names(self, kind: str) -> dict[str, str]:
        lc = self.get(kind)
        return dict(lc.states) if lc else {}


# ---------------------------------------------------------------------------
# parsing and validation
# ---------------------------------------------------------------------------


def _strings(v, key: str, probs: list, *, allow_str: bool = True) -> tuple[str, ...]:
    if allow_str and isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        probs.append((key, "必须是非空字符串的数组，例如 [\"a\", \"b\"]"))
        return ()
    return tuple(v)


def parse(kind: str, table, *, rule: str = "", settings: dict | None = None, roles=None,
          source: str = "", effects=None) -> tuple[Lifecycle | None, list[tuple[str, str]]]:
    """The lifecycle of ``kind`` from its ``[lifecycle.<kind>]`` table, or
    None with the problems as (key, reason); keys are relative to the rule
    file (``lifecycle.<kind>.states.final`` ...), reasons are Chinese.
    ``roles``: the known role names (who/notify entries are checked against
    them, the parties and the settings). ``effects``: the registered effects
    as (record kind or "*", name); a transition naming another is refused."""
    base = f"lifecycle.{kind}"
    probs: list[tuple[str, str]] = []
    settings = settings or {}
    if not _KIND.match(kind):
        probs.append((base, "记录类型只能用小写字母、数字和 _，并以字母开头"))
    if not isinstance(table, dict):
        return None, [(base, "必须是表，写成 [lifecycle.记录类型]")]
    for k in table:
        if k not in _KEYS:
            probs.append((f"{base}.{k}", _unknown(k, _KEYS)))
    prefix = table.get("prefix")
    if not isinstance(prefix, str) or not _PREFIX.match(prefix):
        probs.append((f"{base}.prefix", "必填：记录编号的前缀，大写字母开头、最多 8 个大写字母或数字，例如 prefix = \"GD\""))
        prefix = ""
    label = table.get("label")
    if not isinstance(label, str) or not label.strip():
        probs.append((f"{base}.label", "必填：记录类型的中文名称，例如 label = \"故障处理工作单\""))
        label = kind
    parties = table.get("parties", {})
    if not isinstance(parties, dict) or not all(isinstance(v, str) and v for v in parties.values()):
        probs.append((f"{base}.parties", "必须是表：数据键 = \"中文名称\"，例如 { raiser = \"故障提出人\" }"))
        parties = {}

    states: dict[str, str] = {}
    groups: dict[str, str] = {}
    st = table.get("states")
    if not isinstance(st, dict) or not st:
        probs.append((f"{base}.states", "必填：按 initial / active / final 分组的状态表，例如 final = { closed = \"已关闭\" }"))
        st = {}
    for g, members in st.items():
        key = f"{base}.states.{g}"
        if g not in GROUPS:
            probs.append((key, _unknown(g, GROUPS)))
            continue
        if not isinstance(members, dict):
            probs.append((key, "必须是表：状态 = \"中文名称\""))
            continue
        for s, name in members.items():
            if not _KIND.match(s):
                probs.append((f"{key}.{s}", "状态名只能用小写字母、数字和 _，并以字母开头"))
            elif not isinstance(name, str) or not name.strip():
                probs.append((f"{key}.{s}", "必须写状态的中文名称，例如 closed = \"已关闭\""))
            elif s in states:
                probs.append((f"{key}.{s}", f"状态 {s!r} 已在 {groups[s]} 组中声明，每个状态只能属于一组"))
            else:
                states[s], groups[s] = name.strip(), g
    if st and not states:
        probs.append((f"{base}.states", "至少要声明一个状态"))
    elif states and not any(g == "final" for g in groups.values()):
        probs.append((f"{base}.states.final", "至少要有一个结束状态（final）"))

    def known_state(s: str, key: str) -> bool:
        if s in states or not states:
            return bool(states)
        probs.append((key, f"未声明的状态 {s!r}" + _hint(s, states)))
        return False

    known_roles = set(roles) if roles is not None else None

    def people(entries, key: str) -> None:
        for i, w in enumerate(entries):
            k = f"{key}[{i}]"
            if w == SYSTEM or w == OWNER or w in parties:
                continue
            if w.startswith(SETTINGS_PREFIX):
                name = w[len(SETTINGS_PREFIX):]
                if name not in settings:
                    probs.append((k, f"规则的 [settings] 中没有 {name!r}" + _hint(name, settings)))
                continue
            if known_roles is not None and w not in known_roles:
                probs.append((k, f"既不是通讯录中的角色，也不是本记录的当事人（parties）、owner、system 或 settings.键名：{w!r}"
                                 + "".join(f"，是不是 {h}？" for h in difflib.get_close_matches(w, [*roles, *parties], 1, 0.5))
                                 + f"；可用的角色：{'、'.join(roles)}"
                                 + (f"；当事人：{'、'.join(parties)}" if parties else "")))

    transitions: list[Transition] = []
    raw_tr = table.get("transitions", [])
    if not isinstance(raw_tr, list):
        probs.append((f"{base}.transitions", "必须是表数组，每条写成 [[lifecycle.记录类型.transitions]]"))
        raw_tr = []
    for i, tr in enumerate(raw_tr):
        key = f"{base}.transitions[{i}]"
        if not isinstance(tr, dict):
            probs.append((key, "必须是表"))
            continue
        for k in tr:
            if k not in _TRANSITION_KEYS:
                probs.append((f"{key}.{k}", _unknown(k, _TRANSITION_KEYS)))
        command = tr.get("command")
        if not isinstance(command, str) or not command.strip():
            probs.append((f"{key}.command", "必填：触发这一步的命令（回复第一行的关键词，如 \"同意\"）"))
            command = ""
        if "from" not in tr:
            probs.append((f"{key}.from", "必填：可以从哪些状态执行，例如 from = [\"assigned\"]"))
        sources = _strings(tr.get("from", []), f"{key}.from", probs)
        ok = all([known_state(s, f"{key}.from") for s in sources])
        target = tr.get("to")
        if not isinstance(target, str) or not target:
            probs.append((f"{key}.to", "必填：执行后的状态"))
            target, ok = "", False
        else:
            ok = known_state(target, f"{key}.to") and ok
        if "who" not in tr:
            probs.append((f"{key}.who", "必填：谁可以执行（角色、当事人、settings.键名 或 system）"))
        who = _strings(tr.get("who", []), f"{key}.who", probs)
        people(who, f"{key}.who")
        notify = _strings(tr.get("notify", []), f"{key}.notify", probs) if "notify" in tr else ()
        people(notify, f"{key}.notify")
        needs = tr.get("needs", "")
        if not isinstance(needs, str):
            probs.append((f"{key}.needs", "必须是字符串：命令必须带上的内容，例如 needs = \"原因\""))
            needs = ""
        effect = tr.get("effect", "")
        if not isinstance(effect, str) or (effect and not _KIND.match(effect)):
            probs.append((f"{key}.effect", "必须是效果名：小写字母、数字和 _，例如 effect = \"assign\""))
            effect = ""
        elif effect and effects is not None and (kind, effect) not in effects and ("*", effect) not in effects:
            known = sorted({n for k, n in effects if k in (kind, "*")})
            probs.append((f"{key}.effect", f"未知的效果 {effect!r}：程序中没有为“{kind}”记录登记这个效果"
                                           + (_hint(effect, known) if known else "；这种记录没有可用的效果，请删去 effect")))
        if ok and command:
            for prev in transitions:
                if prev.command == command and set(prev.sources) & set(sources) and prev.target != target:
                    probs.append((key, f"与第 {transitions.index(prev) + 1} 条转换冲突：同一命令“{command}”从同一状态"
                                       f"（{'、'.join(sorted(set(prev.sources) & set(sources)))}）到不同的状态"))
            transitions.append(Transition(command.strip(), sources, target, who, needs, effect, notify))

    reopen = table.get("reopen", "")
    if not isinstance(reopen, str):
        probs.append((f"{base}.reopen", "必须是状态名"))
        reopen = ""
    elif reopen and known_state(reopen, f"{base}.reopen"):
        if groups.get(reopen) == "final":
            probs.append((f"{base}.reopen", f"重新打开后的状态 {reopen!r} 不能是结束状态"))
        elif not any(t.target == reopen and set(t.sources) & set(s for s, g in groups.items() if g == "final")
                     for t in transitions):
            probs.append((f"{base}.reopen", f"没有从结束状态到 {reopen!r} 的转换：请声明这一步（例如 command = \"满意度\"）"))

    clocks = Clocks()
    ck = table.get("clocks", {})
    if not isinstance(ck, dict):
        probs.append((f"{base}.clocks", "必须是表"))
        ck = {}
    for k in ck:
        if k not in _CLOCK_KEYS:
            probs.append((f"{base}.clocks.{k}", _unknown(k, _CLOCK_KEYS)))
    vals: dict[str, tuple[str, ...]] = {}
    for k in _CLOCK_KEYS:
        key = f"{base}.clocks.{k}"
        v = _strings(ck.get(k, []), key, probs) if k in ck else ()
        if k in ("pause", "steps"):
            for s in v:
                if known_state(s, key) and groups.get(s) == "final":
                    probs.append((key, f"结束状态 {s!r} 不计时，不能写在这里"))
        else:
            for c in v:
                if c not in RECORD_CLOCKS:
                    probs.append((key, f"未知的计时 {c!r}；可用：{'、'.join(RECORD_CLOCKS)}"))
        vals[k] = v
    for k in ("stop_on_reply", "restart_on_reply"):
        for c in vals[k]:
            if c in RECORD_CLOCKS and c not in vals["start"]:
                probs.append((f"{base}.clocks.{k}", f"计时 {c!r} 没有写在 start 中，不会开始计时，回复对它没有作用"))
    for c in set(vals["stop_on_reply"]) & set(vals["restart_on_reply"]):
        probs.append((f"{base}.clocks.restart_on_reply", f"计时 {c!r} 已写在 stop_on_reply 中：回复要么停止它，要么重新计时，只能选一种"))
    for st in vals["steps"]:
        if st in states and not any(t.target != st for t in transitions if st in t.sources):
            probs.append((f"{base}.clocks.steps", f"状态 {st!r} 没有离开它的转换：这个环节的计时永远不会停止"))
    clocks = Clocks(**vals)

    if probs:
        return None, probs
    return Lifecycle(kind, prefix, label.strip(), states, groups, tuple(transitions), clocks, reopen,
                     dict(parties), rule, dict(settings), source), []


def _hint(name: str, known) -> str:
    hint = difflib.get_close_matches(str(name), sorted(known), n=1, cutoff=0.6)
    return f"，是不是 {hint[0]}？" if hint else (f"；已声明：{'、'.join(known)}" if known else "")


def _unknown(key: str, known) -> str:
    hint = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
    if hint:
        return f"未知的键（拼写错误？）：是不是 {hint[0]}？"
    return f"未知的键（拼写错误？）；这里可以写的键：{'、'.join(sorted(known))}"
