"""Domain workflows: one module per convention. Importing this package
registers every action."""
from . import ping  # noqa: F401
from . import complaint, followup, report  # noqa: F401  (conventions, issue 3)
from .base import ACTIONS, REPLY_HANDLERS, Context, action, on_reply  # noqa: F401
