"""The inbox flow: drain stored webhooks into transitions, in batches, and take over a dead drainer's entries."""
from __future__ import annotations

import logging
import time

from lifecycle.inbox import DrainReport, InboxUnavailable

from .names import TaskName
from .runtime import Runtime

log = logging.getLogger("otpflow.flows")


#: a drain that keeps finding webhooks hands over to a fresh task after this long (a task should stay short)
DRAIN_SECONDS_MAX = 10.0
#: a drain that is behind asks for at most one helper drain this often
HELPER_EVERY_SECONDS = 1.0
#: under AUTO_FINISH, a drain hands its coded orders to ``otpflow.finish_coded`` at least this often
FINISH_EVERY_SECONDS = 0.25


def drain_inbox(rt: Runtime, *, batch: int = 100, max_batches: int = 500, helper: bool = False) -> DrainReport:
    """Drain webhook entries in batches: transition each, ack after; finish them under AUTO_FINISH.

    With DRAIN_LINGER, a drain holds the drain flag while it runs, and when it empties the inbox it waits up to
    DRAIN_LINGER for the next webhook: the web stores webhooks meanwhile without publishing a drain, and this one
    reads them as they arrive. Under a steady stream one task takes them all, so a code does not wait for a
    Celery task of its own and the worker does not spend a task (and AUTO_FINISH a finish task) per webhook. It
    lets the flag go before its last read, so an append after that read schedules a new drain (no lost wake-up),
    and hands over to a fresh task after DRAIN_SECONDS_MAX or ``max_batches`` full batches' worth of entries.
    Without it, the flag is deleted at the start and the drain ends as soon as the inbox is empty.

    A holding drain that reads a full batch is behind: it asks for one ``helper`` drain (at most one per
    HELPER_EVERY_SECONDS), which reads beside it on another pool process, leaves the flag alone and ends as soon
    as the inbox is empty.
    """
    if helper:
        return _help(rt, batch, max_batches)
    total = DrainReport()
    linger_ms = int(rt.inbox.config.linger * 1000)
    started = time.monotonic()
    finishing = _Finishing(rt, batch)
    holding = linger_ms > 0
    if holding:
        rt.inbox.hold_drain()
    else:
        rt.inbox.begin_drain()
    more = False
    helped = float("-inf")
    pending = rt.inbox.read_own_pending(rt.consumer_name, count=batch)
    try:
        while True:
            if pending:
                entries, pending = pending, []
            else:
                entries = rt.inbox.read_batch(rt.consumer_name, count=batch,
                                              block_ms=linger_ms if holding else None)
            if not entries:
                if holding:
                    rt.inbox.begin_drain()
                    holding = False
                    entries = rt.inbox.read_batch(rt.consumer_name, count=batch)  # stored before the release
                if not entries:
                    break
            if holding and len(entries) >= batch and time.monotonic() - helped >= HELPER_EVERY_SECONDS:
                helped = time.monotonic()
                _ask_for_help(rt)
            report = rt.consumer.handle_batch(entries)
            rt.inbox.ack(report.processed)
            _merge(total, report)
            finishing.add(report.coded)
            if time.monotonic() - started >= DRAIN_SECONDS_MAX or len(total.processed) >= batch * max_batches:
                more = True
                break
        if more:
            if holding:
                rt.inbox.begin_drain()
                holding = False
            rt.publish(TaskName.DRAIN_INBOX, {})  # more left than one task should take: hand over
    finally:
        if holding:
            _release(rt)
        finishing.flush()
    return total


def _help(rt: Runtime, batch: int, max_batches: int) -> DrainReport:
    """A helper drain: read beside the holding one until the inbox is empty; never touches the drain flag."""
    total = DrainReport()
    finishing = _Finishing(rt, batch)
    started = time.monotonic()
    try:
        for _ in range(max_batches):
            entries = rt.inbox.read_batch(rt.consumer_name, count=batch)
            if not entries:
                break
            report = rt.consumer.handle_batch(entries)
            rt.inbox.ack(report.processed)
            _merge(total, report)
            finishing.add(report.coded)
            if time.monotonic() - started >= DRAIN_SECONDS_MAX:
                break
    finally:
        finishing.flush()
    return total


def _ask_for_help(rt: Runtime) -> None:
    """Publish one helper drain; failing to is only slower (the holding drain goes on)."""
    try:
        rt.publish(TaskName.DRAIN_INBOX, {"helper": True})
    except Exception:  # the broker is down: the holder drains alone
        log.warning("could not publish a helper drain; the running drain goes on alone")


def _release(rt: Runtime) -> None:
    """Let the drain flag go on the way out; if Redis is down its TTL does it (and the sweeper re-drains)."""
    try:
        rt.inbox.begin_drain()
    except InboxUnavailable:
        log.warning("drain flag not released (Redis unavailable); it expires on its own")


class _Finishing:
    """AUTO_FINISH's coded orders of one drain, handed to ``otpflow.finish_coded`` in groups: every ``batch``
    codes, at the first code after FINISH_EVERY_SECONDS, and when the drain ends (at most DRAIN_LINGER after its
    last code)."""

    def __init__(self, rt: Runtime, batch: int) -> None:
        self.rt = rt
        self.batch = batch
        self.coded: list[str] = []
        self.since = 0.0

    def add(self, order_ids: list[str]) -> None:
        if not order_ids:
            return
        if not self.coded:
            self.since = time.monotonic()
        self.coded.extend(order_ids)
        if len(self.coded) >= self.batch or time.monotonic() - self.since >= FINISH_EVERY_SECONDS:
            self.flush()

    def flush(self) -> None:
        coded, self.coded = self.coded, []
        finish_coded_orders(self.rt, coded)


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
    """Under AUTO_FINISH, hand a batch's coded orders to one ``otpflow.finish_coded`` task."""
    finish_coded_orders(rt, list(report.coded))


def finish_coded_orders(rt: Runtime, order_ids: list[str]) -> None:
    """Under AUTO_FINISH, hand coded orders to one ``otpflow.finish_coded`` task.

    The drain itself never waits on the provider: measured, finishing inline (one setStatus after another) took
    83% of the drain's time and made every later code wait for the provider's round trips.
    """
    if not rt.activation_config.auto_finish or not order_ids:
        return
    try:
        rt.publish(TaskName.FINISH_CODED, {"order_ids": order_ids})
    except Exception:  # their deadlines are due now: the sweeper finishes them
        log.warning("could not publish %s for %d orders; the sweeper will finish them", TaskName.FINISH_CODED,
                    len(order_ids))
