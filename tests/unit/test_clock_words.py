"""What the reminder and escalation mails say stops a clock is what stops it
(``Lifecycle.stop``, ``Sla.stop_words`` and ``templates/sla_stop.inc.j2``),
for every clock the shipped lifecycles declare: rendered in process, no
servers."""
from __future__ import annotations

import re

import pytest

from processor.config import load_config
from processor.render import Renderer
from processor.sla import Sla
from processor.store.models import Ticket
from processor.template_contexts import CONTEXTS
from support import ROOT, write_config

from .test_lifecycles import SHIPPED

REPLY_STOPS = "在本记录的邮件会话中回复（任何同事回复都可以）后，计时即停止"
ONLY_STEPS = "只回复其他内容不会停止计时"
STEPS = [pytest.param(lc.kind, st, id=f"{lc.kind}-{st}") for lc in SHIPPED for st in lc.clocks.steps]
RECORD_CLOCKS = [pytest.param(lc.kind, c, id=f"{lc.kind}-{c}") for lc in SHIPPED for c in lc.clocks.start]


@pytest.fixture(scope="module")
def sla(tmp_path_factory):
    return Sla(load_config(write_config(tmp_path_factory.mktemp("words"))), SHIPPED)


@pytest.fixture(scope="module")
def renderer():
    return Renderer(ROOT / "templates")


def mails(renderer, sla, kind: str, state: str, clock: str) -> list[str]:
    lc = SHIPPED[kind]
    t = Ticket(id=1, token="X2026-0001", number="X2026-0001", kind=kind, project="华夏银行", owner="王五", state=state,
               data={p: "张三" for p in lc.parties})
    stop = sla.stop_words(t, clock)
    out = []
    for name in ("sla_prebreach", "sla_escalation"):
        out.append(renderer.render(name, {**CONTEXTS[name].sample, "ticket": t, "stop": stop}).text)
    digest = CONTEXTS["sla_digest"].sample
    out.append(renderer.render("sla_digest", {**digest, "items": [{**digest["items"][0], "stop": stop}]}).text)
    return out


def quoted(text: str) -> list[str]:
    return re.findall(r"“([^”]+)”", text)


@pytest.mark.parametrize("kind,state", STEPS)
def test_a_step_clock_names_exactly_the_commands_that_leave_its_state(renderer, sla, kind, state):
    lc = SHIPPED[kind]
    leaving = [t for t in lc.possible(state) if t.target != state]
    assert leaving, "a step clock nobody can stop"
    want = {f"{t.command}：{t.needs}" if t.needs else t.command for t in leaving}
    for text in mails(renderer, sla, kind, state, f"step:{state}"):
        (line,) = [ln for ln in text.splitlines() if "计时在记录离开" in ln]
        sentence = line[line.index("计时在记录离开"):]
        assert quoted(sentence)[0] == lc.name(state)
        assert set(quoted(sentence)[1:]) == want, sentence
        assert ONLY_STEPS in sentence and REPLY_STOPS not in text and "回复后，计时即停止" not in text


def test_the_approval_clock_names_the_commands_and_who_may_send_them(renderer, sla):
    (prebreach, escalation, digest) = mails(renderer, sla, "workorder", "pending_approval", "step:pending_approval")
    says = "计时在记录离开“待审批”时停止：售前经理在本记录的邮件会话中回复“同意”或“驳回：原因”。只回复其他内容不会停止计时。"
    assert says in prebreach and says in escalation and says in digest
    (_, escalation, _) = mails(renderer, sla, "workorder", "close_requested", "step:close_requested")
    assert "故障提出人（张三）在本记录的邮件会话中回复“确认关闭”或“重新打开”" in escalation


def test_the_approval_clock_follows_the_configured_approver_role(renderer, tmp_path):
    cfg = load_config(write_config(tmp_path, extra='[workflows.workorder]\napprover_roles = ["技术支持部经理"]\n'))
    t = Ticket(id=1, kind="workorder", number="GD2026-0001", owner="张三", state="pending_approval", data={})
    stop = Sla(cfg, SHIPPED).stop_words(t, "step:pending_approval")
    assert [g["who"] for g in stop["groups"]] == ["技术支持部经理"]


@pytest.mark.parametrize("kind,clock", RECORD_CLOCKS)
def test_a_record_clock_says_whether_a_reply_stops_it(renderer, sla, kind, clock):
    lc = SHIPPED[kind]
    for text in mails(renderer, sla, kind, lc.initial[0], clock):
        if clock in lc.clocks.stop_on_reply:
            assert REPLY_STOPS in text and ONLY_STEPS not in text
        elif clock in lc.clocks.restart_on_reply:
            assert "回复进展后，计时重新开始" in text and "计时即停止" not in text
        else:  # only the record's end stops it: the steps into a final state, no reply
            finals = "、".join(lc.name(s) for s in lc.final)
            assert f"计时在记录结束（{finals}）时停止：" in text and ONLY_STEPS in text
            assert "计时即停止" not in text
            for t in lc.finishing():
                assert f"“{t.command}”" in text


def test_the_follow_up_resolution_clock_names_the_owner_and_the_system(renderer, sla):
    (prebreach, _, _) = mails(renderer, sla, "followup", "open", "resolution")
    assert ("计时在记录结束（已关闭）时停止：负责人（王五）在本记录的邮件会话中回复“已解决”（处理中时），"
            "或系统执行“成功”。只回复其他内容不会停止计时。") in prebreach
