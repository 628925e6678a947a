"""``otpflow.drain_inbox`` (stored webhooks into transitions) and ``otpflow.finish_coded`` (AUTO_FINISH)."""
from __future__ import annotations

from typing import Any

from flows import activation, inbox
from flows.names import TaskName

from .base import instrumented_task
from .runtime import get_runtime


@instrumented_task(TaskName.DRAIN_INBOX)
def drain_inbox(self: Any, helper: bool = False) -> int:
    """Drain the webhook inbox in batches (``helper``: beside a running drain); returns how many were processed."""
    return len(inbox.drain_inbox(get_runtime(), helper=helper).processed)


@instrumented_task(TaskName.FINISH_CODED)
def finish_coded(self: Any, order_ids: list[str]) -> int:
    """AUTO_FINISH: setStatus 6 for the orders a drain batch gave a code (published once per batch)."""
    return sum(activation.finish_coded(get_runtime(), order_ids).values())
