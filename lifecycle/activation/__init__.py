"""Activation orders: one number bought for one code, from ``pending`` to ``finished`` or ``cancelled``.

``machine`` (states, edges, commands as data), ``record`` (the typed record), ``config`` (its settings and
deadlines), ``decisions`` and ``reconcile`` (pure), ``store`` (reads and atomic transitions), ``orders`` (where
orders enter and take commands).
"""
from .config import ActivationConfig
from .machine import COMMANDS, TERMINAL, Command, State
from .orders import (ORDER_ID_RULE, CommandAccepted, CommandConflict, OrderError, OrderService, UnknownOrder,
                     valid_order_id)
from .record import HistoryEntry, Order, OrderRequest
from .store import ActivationStore, CodeArrival, state_of

__all__ = ["ActivationConfig", "ActivationStore", "COMMANDS", "Command", "CommandAccepted", "CommandConflict",
           "HistoryEntry", "ORDER_ID_RULE", "Order", "OrderError", "OrderRequest", "OrderService", "State", "TERMINAL",
           "UnknownOrder", "state_of", "valid_order_id"]
