"""``otpflow.sweep``: the beat-driven sweeper (deadlines, reconciliation, timeouts, stale inbox entries)."""
from __future__ import annotations

import logging
from typing import Any

from . import flows
from .base import instrumented_task
from .runtime import get_runtime

log = logging.getLogger("otpflow.sweep")


@instrumented_task("otpflow.sweep")
def sweep(self: Any) -> str:
    """One sweep; two at once are harmless (claims are leased)."""
    rt = get_runtime()
    report = flows.sweep(rt)
    if report.claimed or report.rents:
        log.info("sweep: %d due (%d rents), calls %s, actions %s", report.claimed, report.rents,
                 report.provider_calls, report.actions)
    flows.kick_relay(rt)
    return f"claimed:{report.claimed}"
