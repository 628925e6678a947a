"""``otpflow.drain_inbox``: turn stored webhooks into transitions, in batches."""
from __future__ import annotations

from typing import Any

from . import flows
from .base import instrumented_task
from .runtime import get_runtime


@instrumented_task("otpflow.drain_inbox")
def drain_inbox(self: Any) -> str:
    rt = get_runtime()
    report = flows.drain_inbox(rt)
    flows.kick_relay(rt)
    return f"drained:{len(report.processed)}"
