"""``otpflow.check_balances``: the beat-driven balance watch (getBalance at every provider, balance.low / ok)."""
from __future__ import annotations

from typing import Any

from flows import balance as flow
from flows.names import TaskName

from .base import instrumented_task
from .runtime import get_runtime


@instrumented_task(TaskName.CHECK_BALANCES)
def check_balances(self: Any) -> int:
    """One round of balance reads; several at once are harmless (each crossing is written once). Returns how many
    providers answered."""
    return sum(1 for crossing in flow.check_balances(get_runtime()).values() if crossing is not None)
