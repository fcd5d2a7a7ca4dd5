"""The running directory (``Runtime.directory``) after a 立项 whose transaction
is rolled back, in process on SQLite: the project is seen at once by the mails
after it, and nothing of it survives the rollback -- in a batch, in the
one-mail retry, and when a failed mail is retried by a process that has just
started (whose directory is still the one loaded from directory.toml)."""
from __future__ import annotations

import pytest

from processor.config import load_config
from processor.pipeline import Incoming, Pipeline, Runtime
from processor.workflows import ACTIONS
from support import make_mail, write_config

LI, ZHAO, SYSTEM = "lisi@company.example", "zhaoliu@company.example", "tracking@company.example"
FORM = ("项目名称：西部物流\n客户：西部物流集团信息部\n第一售前：张三\n第二售前：王五\n"
        "支持内容要求：核心网络改造的方案交流与测试环境搭建，11月底前完成POC\n\n李四\n")


def lixiang() -> Incoming:
    return Incoming(make_mail(sender=LI, sender_name="李四", to=(ZHAO,), cc=(SYSTEM,), subject="立项-西部物流", body=FORM))


def _lixiang_then_boom(ctx):
    ACTIONS["record_lixiang"](ctx)
    assert ctx.directory.project("西部物流") is not None  # seen at once, in the same transaction
    raise RuntimeError("模拟的处理错误")


@pytest.fixture
def boom():
    """Make the 立项 rule of the given Runtimes fail after accepting the 立项单."""
    changed = []

    def arm(rt: Runtime, on: bool = True) -> None:
        rule = rt.rules.by_name["lixiang"]
        changed.append((rule, rule.action))
        rule.action = "test_lixiang_then_boom" if on else "record_lixiang"

    ACTIONS["test_lixiang_then_boom"] = _lixiang_then_boom
    yield arm
    for rule, action in reversed(changed):
        rule.action = action
    ACTIONS.pop("test_lixiang_then_boom", None)


def file_projects(rt: Runtime) -> list[str]:
    return [p.name for p in rt.file_directory.projects]


def test_a_rolled_back_lixiang_leaves_nothing_in_the_running_directory(tmp_path, boom):
    cfg = load_config(write_config(tmp_path))
    first = Runtime(cfg)
    loaded = file_projects(first)
    assert "西部物流" not in loaded
    boom(first)
    (out,) = Pipeline(first).process([lixiang()])  # the batch, then the mail alone: both roll back
    assert out.status == "failed"
    assert first.directory.project("西部物流") is None
    assert file_projects(first) == loaded

    # A process that has just started retries it: the 立项 fails again.
    second = Runtime(cfg)
    boom(second)
    (out,) = Pipeline(second).retry_failed()
    assert out.status == "failed"
    assert second.directory.project("西部物流") is None
    assert file_projects(second) == loaded

    # Fixed: the retry commits, and the running directory has the project (from the store).
    boom(second, on=False)
    (out,) = Pipeline(second).retry_failed()
    assert out.status == "processed"
    assert second.directory.project("西部物流").presales1 == "张三"
    assert file_projects(second) == loaded
    second.store.dispose()
    first.store.dispose()
