"""The placeholder convention: a staff member mails 工单测试 and gets a
receipt. Admins use it to check the system end to end."""
from __future__ import annotations

from .base import Context, action
from .settings import Settings, settings_for


@settings_for("acknowledge")
class PingSettings(Settings):
    """工单测试 has no settings: a [settings] key in its rule is a mistake."""


@action("acknowledge")
def acknowledge(ctx: Context) -> None:
    ctx.reply(ctx.template("ack", "ping_ack"), rule=ctx.match.rule, why=ctx.messages.why(ctx.match.why))
    ctx.decide("acknowledged")
