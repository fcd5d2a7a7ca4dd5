"""The work order's steps follow the roles the rule and the config set
(``approver_roles``), not a hard-coded 售前经理: in process, on SQLite."""
from __future__ import annotations

from processor.config import load_config
from processor.pipeline import Runtime
from processor.workflows.workorder import workorder_reply
from support import write_config

from .test_transitions import ctx_for, record

OTHER_APPROVER = '[workflows.workorder]\napprover_roles = ["技术支持部经理"]\n'


def test_approval_and_rejection_follow_the_configured_approver_role(tmp_path):
    rt = Runtime(load_config(write_config(tmp_path, extra=OTHER_APPROVER)))
    try:
        with rt.store.session() as s, s.begin():
            # The 售前经理 is no longer the approver: refused, naming who may.
            ctx = ctx_for(rt, s, "workorder", sender="赵六", body="同意")
            t = record(ctx, "workorder", "pending_approval")
            workorder_reply(ctx, t)
            assert t.state == "pending_approval"
            (denied,) = ctx.outgoing
            assert denied.template == "command_denied" and denied.variables["who"] == "技术支持部经理（钱经理）"
            # The 技术支持部经理 rejects: the raiser is told who, in which role.
            ctx = ctx_for(rt, s, "workorder", sender="钱经理", body="驳回：日志不全，请补充 debug 输出")
            t = record(ctx, "workorder", "pending_approval")
            workorder_reply(ctx, t)
            assert t.state == "rejected"
            assert (t.data["rejection"]["by"], t.data["rejection"]["role"]) == ("钱经理", "技术支持部经理")
            (returned,) = [o for o in ctx.outgoing if o.template == "workorder_returned"]
            assert returned.to == ["wangwu@company.example"]
            assert returned.variables["rejection"]["role"] == "技术支持部经理"
            s.rollback()
    finally:
        rt.store.dispose()
