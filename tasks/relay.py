"""``otpflow.relay_events``: forward the events stream to DOWNSTREAM_TASK (at least once)."""
from __future__ import annotations

from typing import Any

from . import flows
from .base import instrumented_task
from .runtime import get_runtime


@instrumented_task("otpflow.relay_events")
def relay_events(self: Any) -> str:
    return f"relayed:{flows.relay_events(get_runtime())}"
