"""The 文档审核单's lifecycle as rules/document.toml declares it: each
transition allowed from its states and refused from the others, and who may
take it (the project's 责任销售 reviews, the engineer resubmits). In process."""
from __future__ import annotations

import pytest

from processor.directory import Person
from processor.rules.engine import load_rules
from processor.store.models import Ticket
from processor.workflows import ACTIONS
from processor.workflows.commands import DEFAULT_KEYWORDS, StateMachine
from support import ROOT

LC = load_rules(ROOT / "rules", set(ACTIONS)).lifecycles["document"]
SALES = Person(name="李四", emails=("lisi@company.example",), roles=frozenset({"销售"}))
OTHER_SALES = Person(name="周七", emails=("zhouqi@company.example",), roles=frozenset({"销售"}))
AUTHOR = Person(name="张三", emails=("zhangsan@company.example",), roles=frozenset({"售前"}))
MANAGER = Person(name="赵六", emails=("zhaoliu@company.example",), roles=frozenset({"售前经理", "售前"}))


def ticket(state: str) -> Ticket:
    return Ticket(kind="document", number="WD2026-0001", state=state, owner="李四",
                  data={"author": "张三", "reviewer": "李四"})


def test_states_grouped_with_chinese_names_and_the_prefix():
    assert (LC.prefix, LC.label) == ("WD", "文档审核单")
    assert (LC.initial, LC.final) == (("in_review",), ("approved",))
    assert [LC.name(s) for s in ("in_review", "returned", "approved")] == ["待审核", "驳回待重写", "已通过"]
    assert LC.parties == {"author": "编写售前", "reviewer": "责任销售"}
    assert LC.clocks.steps == ("in_review", "returned")


@pytest.mark.parametrize("command,source,target", [
    ("通过", "in_review", "approved"), ("驳回", "in_review", "returned"),
    ("重新提交", "returned", "in_review"), ("重新提交", "in_review", "in_review")])
def test_each_transition_is_declared_from_its_states_only(command, source, target):
    assert LC.find(command, source).target == target
    for other in set(LC.states) - {s for t in LC.transitions if t.command == command for s in t.sources}:
        assert LC.find(command, other) is None, (command, other)


def test_nothing_leaves_an_approved_document():
    assert LC.possible("approved") == []


def test_only_the_reviewer_passes_or_returns_and_only_the_author_resubmits():
    sm = StateMachine(LC, [t for t in LC.transitions if t.command in DEFAULT_KEYWORDS])
    assert sm.commands() == ("通过", "驳回")  # 重新提交 is the new version, not a keyword
    t = ticket("in_review")
    for tr in sm.possible("in_review"):
        assert sm.may(tr, t, SALES)
        for person in (OTHER_SALES, AUTHOR, MANAGER, None):
            assert not sm.may(tr, t, person), (tr.command, person)
    assert LC.find("驳回", "in_review").needs == "意见"
    resubmit = LC.find("重新提交", "returned")
    assert resubmit.who == ("author",) and resubmit.notify == ("reviewer",)
    assert sm.may(resubmit, ticket("returned"), AUTHOR) and not sm.may(resubmit, ticket("returned"), SALES)


def test_who_holds_the_document_in_each_waiting_state():
    assert LC.step_owner("in_review") == "reviewer"
    assert LC.step_owner("returned") == "author"


def test_the_implementation_order_waits_for_its_technical_part_held_by_the_engineer():
    lc = load_rules(ROOT / "rules", set(ACTIONS)).lifecycles["implementation"]
    assert (lc.prefix, lc.initial, lc.final) == ("SS", ("tech_missing",), ("complete",))
    assert lc.name("tech_missing") == "待填写技术部分" and lc.name("complete") == "已填写完整"
    t = lc.find("填写技术部分", "tech_missing")
    assert t.target == "complete" and t.who == ("engineer",) and lc.find("填写技术部分", "complete") is None
    assert lc.step_owner("tech_missing") == "engineer" and lc.clocks.steps == ("tech_missing",)
    sm = StateMachine(lc, [x for x in lc.transitions if x.command in DEFAULT_KEYWORDS])
    assert sm.commands() == ()  # the technical part is fields, not a keyword
    order = Ticket(kind="implementation", number="SS2026-0001", state="tech_missing", owner="张三",
                   data={"sales": "李四", "engineer": "张三"})
    assert sm.may(t, order, AUTHOR) and not sm.may(t, order, SALES) and not sm.may(t, order, MANAGER)
