"""Domain workflows: one module per convention. Importing this package
imports every module in it, which registers their actions and reply
handlers; adding a workflow is adding a module."""
import importlib
import pkgutil

from .base import ACTIONS, REPLY_HANDLERS, REPLY_HOOKS, Context, action, on_reply, reply_hook  # noqa: F401

for _m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    importlib.import_module(f"{__name__}.{_m.name}")
