"""``otpflow.relay_events``: forward the events stream to DOWNSTREAM_TASK (at least once)."""
from __future__ import annotations

from typing import Any

from flows import relay
from flows.names import TaskName

from .base import instrumented_task
from .runtime import get_runtime


@instrumented_task(TaskName.RELAY_EVENTS, kicks_relay=False)
def relay_events(self: Any) -> int:
    return relay.relay_events(get_runtime())
