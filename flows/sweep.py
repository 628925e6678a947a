"""The sweep: claim due deadlines (leased), read them in one pipeline, reconcile many with one bulk call."""
from __future__ import annotations

import logging

from .activation import advance, bulk_listing, settle_unconfirmed
from .inbox import redrain
from .rent import advance_rent
from .report import Breaker, SweepReport
from .runtime import Runtime

log = logging.getLogger("otpflow.flows.sweep")


def sweep(rt: Runtime, *, lease: float = 120.0, batched: bool = True) -> SweepReport:
    """One beat: activations, then rents, then the inbox entries of dead drainers; counts itself when done.

    ``batched=False`` does the same work one Redis command and one getStatus at a time (the benchmark's
    baseline)."""
    report = SweepReport()
    due = rt.deadlines.claim(rt.settings.sweep_batch, lease=lease)
    report.claimed = len(due)
    if due:
        ids = [d.order_id for d in due]
        store = rt.activations
        orders = store.get_many(ids) if batched else {i: store.get(i) for i in ids}
        bulk = bulk_listing(rt, orders.values(), report) if batched else None
        breaker = Breaker()
        report.pipe = rt.redis.pipeline(transaction=False) if batched else None
        try:
            for d in due:
                try:
                    advance(rt, d.order_id, order=orders.get(d.order_id), bulk=bulk, breaker=breaker, report=report)
                except Exception:  # one bad order must not stop the sweep; its lease expires and it comes back
                    log.exception("sweep: order %s failed", d.order_id)
        finally:
            pipe, report.pipe = report.pipe, None
            if pipe is not None:
                pipe.execute()  # the queued re-arms (each still a compare-and-set on the state)
    report.rents = sweep_rents(rt, report, lease=lease)
    report.drained = redrain(rt)
    settle_unconfirmed(rt)
    rt.redis.incr(rt.keys.sweep_runs)
    rt.redis.set(rt.keys.beat_heartbeat, f"{rt.clock():.3f}")  # the beat's heartbeat (/readyz, the dashboard)
    return report


def sweep_rents(rt: Runtime, report: SweepReport, *, lease: float = 120.0) -> int:
    """Claim due rent deadlines (leased, like activations) and advance each; returns how many were claimed."""
    due = rt.rent_deadlines.claim(rt.settings.sweep_batch, lease=lease)
    if not due:
        return 0
    orders = rt.rents.get_many(d.order_id for d in due)
    breaker = Breaker()
    for d in due:
        try:
            advance_rent(rt, d.order_id, order=orders.get(d.order_id), breaker=breaker, report=report)
        except Exception:  # one bad rent must not stop the sweep; its lease expires and it comes back
            log.exception("sweep: rent order %s failed", d.order_id)
    return len(due)
