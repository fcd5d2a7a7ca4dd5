"""The named effects of lifecycle transitions (``workflows.effects``), in
process on a SQLite store: every effect a shipped lifecycle names is
registered, ``states.change`` runs it with the step, ``notify`` resolves to
people in one place, and ``check`` refuses an effect nobody registered."""
from __future__ import annotations

import re
import shutil
import tomllib

import pytest

from processor.directory import ROLES
from processor.lifecycles import LifecycleError, parse
from processor.rules.engine import EFFECT_NAMES
from processor.workflows import effects, states
from processor.workflows.effects import EFFECTS, Step, effect, lookup, told
from support import ROOT, run, write_config

from .test_lifecycles import GOOD, SHIPPED
from .test_transitions import PARTY, ctx_for, record, rt, session  # noqa: F401 (fixtures)


def test_every_effect_a_shipped_lifecycle_names_is_registered():
    named = {(lc.kind, t.effect) for lc in SHIPPED for t in lc.transitions if t.effect}
    assert ("workorder", "approve") in named and ("followup", "close") in named
    assert [k for k in named if lookup(*k) is None] == []
    # A kind's own effect is not another kind's: both kinds register their `close`.
    assert lookup("workorder", "close") is not lookup("followup", "close")
    assert lookup("workorder", "survey_reopen") is lookup("followup", "survey_reopen") is EFFECTS[("*", "survey_reopen")]
    assert {("workorder", "approve"), ("*", "survey_reopen")} <= EFFECT_NAMES


def test_the_workflows_do_not_branch_on_effect_names():
    for path in (ROOT / "processor" / "workflows").glob("*.py"):
        assert not re.search(r"\b(?:if|elif)\s+(?:\w+\.)?effect\s*==", path.read_text(encoding="utf-8")), path.name


def test_an_effect_is_registered_once():
    @effect("unit_probe", "unit_kind")
    def probe(ctx, ticket, step):
        pass
    try:
        assert lookup("unit_kind", "unit_probe") is probe and lookup("workorder", "unit_probe") is None
        with pytest.raises(ValueError):
            effect("unit_probe", "unit_kind")(lambda ctx, ticket, step: None)
    finally:
        del EFFECTS[("unit_kind", "unit_probe")]
        EFFECT_NAMES.discard(("unit_kind", "unit_probe"))


def test_a_state_change_runs_the_declared_effect_with_the_step(rt, session, monkeypatch):  # noqa: F811
    seen = []
    monkeypatch.setitem(EFFECTS, ("workorder", "resubmit"), lambda ctx, t, step: seen.append((t.state, step)))
    ctx = ctx_for(rt, session, "workorder", sender=PARTY, body="")
    t = record(ctx, "workorder", "rejected")
    tr = states.apply(ctx, t, "重新提交", "pending_approval", arg="补充日志", extra={"kept": ["a.log"]})
    assert seen == [("pending_approval", Step(tr, "rejected", "补充日志", {"kept": ["a.log"]}))]
    # The state change is a record event for the clocks, in order.
    assert [e[0] for e in ctx.repo.events] == ["opened", "state"]
    assert ctx.repo.events[-1] == ("state", t, "rejected", "pending_approval")


def test_an_unregistered_effect_is_a_bug_not_a_silent_no_op(rt, session, monkeypatch):  # noqa: F811
    monkeypatch.delitem(EFFECTS, ("workorder", "resubmit"))
    ctx = ctx_for(rt, session, "workorder", sender=PARTY, body="")
    t = record(ctx, "workorder", "rejected")
    with pytest.raises(LifecycleError):
        states.apply(ctx, t, "重新提交", "pending_approval")


def test_notify_resolves_roles_parties_owner_and_settings_to_people(rt, session):  # noqa: F811
    ctx = ctx_for(rt, session, "workorder", sender=PARTY, body="")
    t = record(ctx, "workorder", "assigned")
    t.data = {**t.data, "raiser": "张三", "rd_owner": "冯工"}
    t.owner = "王五"
    names = [p.name for p in told(ctx, t, ["rd_owner", "settings.rd_manager_roles", "raiser", "owner", "system",
                                           "rd_owner"])]
    managers = [p.name for p in rt.directory.with_role("研发经理")]
    assert managers and names == ["冯工", *managers, "张三", "王五"]
    assert [p.name for p in told(ctx, t, ["售前经理"])] == [p.name for p in rt.directory.with_role("售前经理")]


def test_parse_refuses_an_effect_nobody_registered():
    text = GOOD.replace('who = ["raiser", "settings.approver_roles"]',
                        'who = ["raiser", "settings.approver_roles"]\neffect = "closse"', 1)
    settings = {"approver_roles": ["售前经理"]}
    lc, probs = parse("wo", tomllib.loads(text), settings=settings, roles=ROLES, effects={("wo", "close")})
    assert lc is None
    assert probs == [("lifecycle.wo.transitions[0].effect",
                      "未知的效果 'closse'：程序中没有为“wo”记录登记这个效果，是不是 close？")]
    assert parse("wo", tomllib.loads(text), settings=settings, roles=ROLES, effects={("*", "closse")})[1] == []
    assert parse("wo", tomllib.loads(text), settings=settings, roles=ROLES)[1] == []  # no registry given: not checked


def test_check_refuses_a_rule_file_naming_an_unknown_effect_or_person(tmp_path, capsys):
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    wo = (rules / "workorder.toml").read_text(encoding="utf-8")
    wo = wo.replace('effect = "approve"', 'effect = "aprove"', 1)
    wo = wo.replace('notify = ["rd_owner", "售前经理"]', 'notify = ["rd_owner", "售前经里"]', 1)
    (rules / "workorder.toml").write_text(wo, encoding="utf-8")
    assert run(write_config(tmp_path, rules_dir=rules), "check") == 1
    err = capsys.readouterr().err
    f = rules / "workorder.toml"
    assert (f"{f}: lifecycle.workorder.transitions[0].effect: 未知的效果 'aprove'：程序中没有为“workorder”记录登记"
            "这个效果，是不是 approve？") in err
    assert (f"{f}: lifecycle.workorder.transitions[12].notify[1]: 既不是通讯录中的角色，也不是本记录的当事人（parties）、"
            "owner、system 或 settings.键名：'售前经里'，是不是 售前经理？") in err


def test_effects_module_is_the_registry_the_engine_checks_against():
    assert effects.EFFECT_NAMES is EFFECT_NAMES
