"""Domain workflows: one module per convention. Importing this package
registers every action."""
from . import ping  # noqa: F401
from .base import ACTIONS, REPLY_HANDLERS, Context, action, on_reply  # noqa: F401
