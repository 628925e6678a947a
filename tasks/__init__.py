"""Celery tasks, wrappers of a few lines around ``flows``; every name is in :class:`flows.names.TaskName`.

Importing this package registers every task as a shared task (the worker app imports it).
"""
from flows.names import TaskName

from . import balance, inbox, orders, relay, rents, sweep

TASK_NAMES = tuple(name.value for name in TaskName)

__all__ = ["TASK_NAMES", "balance", "inbox", "orders", "relay", "rents", "sweep"]
