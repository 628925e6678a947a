"""``otpflow.sweep``: the beat-driven sweeper (deadlines, reconciliation, timeouts, stale inbox entries)."""
from __future__ import annotations

import logging
from typing import Any

from flows import sweep as flow
from flows.names import TaskName

from .base import instrumented_task
from .runtime import get_runtime

log = logging.getLogger("otpflow.sweep")


@instrumented_task(TaskName.SWEEP)
def sweep(self: Any) -> int:
    """One sweep; two at once are harmless (claims are leased). Returns how many deadlines it claimed."""
    report = flow.sweep(get_runtime())
    if report.claimed or report.rents:
        log.info("sweep: %d due (%d rents) in %d batches, calls %s, actions %s", report.claimed, report.rents,
                 report.batches, report.provider_calls, report.actions)
    return report.claimed
