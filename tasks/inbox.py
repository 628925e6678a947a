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


@instrumented_task("otpflow.finish_coded")
def finish_coded(self: Any, order_ids: list[str]) -> str:
    """AUTO_FINISH: setStatus 6 for the orders a drain batch gave a code (published once per batch)."""
    rt = get_runtime()
    outcomes = flows.finish_coded(rt, order_ids)
    flows.kick_relay(rt)
    return ",".join(f"{k}:{v}" for k, v in sorted(outcomes.items()))
