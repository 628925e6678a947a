"""The inbox flow: drain stored webhooks into transitions, in batches, and take over a dead drainer's entries."""
from __future__ import annotations

import logging

from lifecycle.inbox import DrainReport

from .names import TaskName
from .runtime import Runtime

log = logging.getLogger("otpflow.flows")


def drain_inbox(rt: Runtime, *, batch: int = 100, max_batches: int = 50) -> DrainReport:
    """Drain webhook entries in batches: transition each, ack after; finish at once under AUTO_FINISH."""
    total = DrainReport()
    rt.inbox.begin_drain()
    pending = rt.inbox.read_own_pending(rt.consumer_name, count=batch)
    for _ in range(max_batches):
        entries = pending or rt.inbox.read_batch(rt.consumer_name, count=batch)
        pending = []
        if not entries:
            break
        report = rt.consumer.handle_batch(entries)
        rt.inbox.ack(report.processed)
        _merge(total, report)
        auto_finish(rt, report)
    else:
        rt.publish(TaskName.DRAIN_INBOX, {})  # more left than one task should take: hand over to a fresh task
    return total


def redrain(rt: Runtime) -> int:
    """Take over inbox entries of dead drainers, and publish a drain when the inbox is not empty."""
    entries = rt.inbox.claim_stale(rt.consumer_name, min_idle_ms=60_000, count=100)
    if entries:
        report = rt.consumer.handle_batch(entries)
        rt.inbox.ack(report.processed)
        auto_finish(rt, report)
    if rt.inbox.pending_count() > 0:
        rt.publish(TaskName.DRAIN_INBOX, {})
    return len(entries)


def _merge(total: DrainReport, report: DrainReport) -> None:
    total.processed += report.processed
    total.coded += report.coded
    total.duplicates += report.duplicates
    total.unknown += report.unknown
    total.stale += report.stale
    total.invalid += report.invalid


def auto_finish(rt: Runtime, report: DrainReport) -> None:
    """Under AUTO_FINISH, hand a batch's coded orders to one ``otpflow.finish_coded`` task.

    The drain itself never waits on the provider: measured, finishing inline (one setStatus after another) took
    83% of the drain's time and made every later code wait for the provider's round trips.
    """
    if not rt.activation_config.auto_finish or not report.coded:
        return
    try:
        rt.publish(TaskName.FINISH_CODED, {"order_ids": list(report.coded)})
    except Exception:  # their deadlines are due now: the sweeper finishes them
        log.warning("could not publish %s for %d orders; the sweeper will finish them", TaskName.FINISH_CODED,
                    len(report.coded))
