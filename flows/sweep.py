"""The sweep: claim due deadlines (leased) in batches, read each batch in one pipeline, reconcile them with one
bulk listing per provider per sweep.

A sweep covers the entries that were due when it started, SWEEP_BATCH at a time (claim, read in one pipeline,
advance, flush the queued re-arms), so its pipelines stay bounded while its cost grows linearly with the entries
due. The bulk listing (``getActiveActivations``) a provider answered for an earlier batch serves the later ones:
a code that arrived after it is found by the next poll (or by its webhook), and an activation it does not list
gets its own ``getStatus``. An entry re-armed during the sweep waits for the next one.

Python's cyclic garbage collector is paused while a sweep runs: the bulk listing keeps one row per active
activation alive for the whole sweep, and those survivors trigger full collections that rescan every object the
worker holds, a cost that grows faster than the sweep (``bench/sweep.py``: none in a sweep of 3,000, 3-4 in one of
30,000, GC 3.5 % then 5-6 % of its CPU). Pausing costs no memory: after a paused sweep of 30,000, ``gc.collect()``
found no cyclic garbage, and whatever a logged exception's traceback might leave is collected once it is back on.
"""
from __future__ import annotations

import contextlib
import gc
import logging
import time
from typing import Callable, Iterator

from lifecycle.activation.reconcile import Observation
from lifecycle.deadlines import Deadlines, Due
from lifecycle.scripts import ScriptPipeline

from .activation import advance, bulk_listing, settle_unconfirmed
from .inbox import redrain
from .rent import advance_rent
from .report import Breaker, SweepReport
from .runtime import Runtime

log = logging.getLogger("otpflow.flows.sweep")


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the block, then as it was (see the module doc)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def sweep(rt: Runtime, *, lease: float = 120.0, batched: bool = True) -> SweepReport:
    """One beat: activations, then rents, then the inbox entries of dead drainers; counts itself when done.

    ``batched=False`` does the same work one Redis command and one getStatus at a time (the benchmark's
    baseline)."""
    with collector_paused():
        return _sweep(rt, lease=lease, batched=batched)


def _sweep(rt: Runtime, *, lease: float, batched: bool) -> SweepReport:
    report = SweepReport()
    bulk: dict[tuple[str, str], Observation] | None = {} if batched else None
    listed: set[str] = set()   # providers whose listing this sweep already has
    breaker = Breaker()

    def activations(due: list[Due]) -> None:
        ids = [d.order_id for d in due]
        store = rt.activations
        orders = store.get_many(ids) if batched else {i: store.get(i) for i in ids}
        if bulk is not None:
            bulk.update(bulk_listing(rt, orders.values(), report, listed))
        report.pipe = ScriptPipeline(rt.redis) if batched else None
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

    report.claimed = in_batches(rt, rt.deadlines, activations, report, lease=lease)
    report.rents = sweep_rents(rt, report, lease=lease)
    report.drained = redrain(rt)
    settle_unconfirmed(rt)
    rt.redis.incr(rt.keys.sweep_runs)
    rt.redis.set(rt.keys.beat_heartbeat, f"{rt.clock():.3f}")  # the beat's heartbeat (/readyz, the dashboard)
    return report


def in_batches(rt: Runtime, deadlines: Deadlines, handle: Callable[[list[Due]], None], report: SweepReport, *,
               lease: float) -> int:
    """Claim and ``handle`` SWEEP_BATCH due entries at a time until the ones due when the sweep started are done
    (at most that many: an entry re-armed to "now" meanwhile waits for the next sweep), or ``lease`` seconds
    have gone (the rest stay due for the next sweep). Returns how many were claimed."""
    start = rt.clock()
    due_now = deadlines.due_count(start)
    batch = max(1, rt.settings.sweep_batch)
    stop_at = time.monotonic() + lease
    claimed = 0
    while claimed < due_now and time.monotonic() < stop_at:
        due = deadlines.claim(min(batch, due_now - claimed), lease=lease, due_by=start)
        if not due:
            break
        claimed += len(due)
        report.batches += 1
        handle(due)
        if len(due) < batch:
            break
    return claimed


def sweep_rents(rt: Runtime, report: SweepReport, *, lease: float = 120.0) -> int:
    """Claim due rent deadlines (leased, like activations, SWEEP_BATCH at a time) and advance each; returns how
    many were claimed."""
    breaker = Breaker()

    def rents(due: list[Due]) -> None:
        orders = rt.rents.get_many(d.order_id for d in due)
        for d in due:
            try:
                advance_rent(rt, d.order_id, order=orders.get(d.order_id), breaker=breaker, report=report)
            except Exception:  # one bad rent must not stop the sweep; its lease expires and it comes back
                log.exception("sweep: rent order %s failed", d.order_id)

    return in_batches(rt, rt.rent_deadlines, rents, report, lease=lease)
