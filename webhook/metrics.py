"""Prometheus metrics of the web process.

Counters and the latency histogram live in this process (or, under gunicorn with several workers, in
``PROMETHEUS_MULTIPROC_DIR`` mmap files that every worker writes and any worker can aggregate at scrape time).
Queue depths are read from Redis at scrape time instead: they are facts about Redis, not about one worker, and a
gauge kept in-process would be wrong in every worker but the one that last touched it.

Worker task counters come from Redis too: a worker dyno cannot be scraped, so each worker process adds its counts
to a few hashes now and then (``telemetry/worker_counters.py``, which owns their format) and this process exposes
their sums as counters. They outlive worker restarts (they live in Redis) and are read in the same round trip as
the gauges.
"""
from __future__ import annotations

import os
import time
from typing import Any, Iterator, Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from telemetry.worker_counters import queue_reads, read_counters, split_field
from webhook.context import WebContext
from webhook.redis_state import MemoryState, entry_age, redis_memory

OUTCOMES = ("accepted", "duplicate", "malformed", "unauthorized", "forbidden", "too_large", "unavailable", "error")

WEBHOOKS = Counter("otpflow_webhooks", "Provider webhooks received, by outcome.", ["outcome"], registry=None)
WEBHOOK_SECONDS = Histogram(
    "otpflow_webhook_duration_seconds", "Time to answer a provider webhook (parse, validate, store).",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0), registry=None,
)
DRAIN_PUBLISH_FAILURES = Counter(
    "otpflow_drain_publish_failures", "Drain task publishes that failed after the webhook was stored.", registry=None)
DIRECT_PEERS = Counter(
    "otpflow_webhook_direct_peers",
    "Webhooks whose socket peer was a public address although TRUSTED_PROXIES is set (X-Forwarded-For forgeable).",
    registry=None)

for _outcome in OUTCOMES:
    WEBHOOKS.labels(outcome=_outcome)


def multiprocess_dir() -> str | None:
    """The gunicorn multi-worker metrics directory, when configured."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir") or None


def _counter(name: str, doc: str, labels: list[str], values: Mapping[str, str]) -> CounterMetricFamily:
    """One counter family from a worker hash: a field is one label, or two (``split_field``).

    Malformed fields are skipped: a scrape never fails on them.
    """
    family = CounterMetricFamily(name, doc, labels=labels)
    for field, value in sorted(values.items()):
        parts: list[str] | None = [field] if len(labels) == 1 and field else None
        if len(labels) == 2:
            pair = split_field(field)
            parts = list(pair) if pair else None
        number = _number(value)
        if parts and number is not None:
            family.add_metric(parts, number)
    return family


def worker_counters(runs: Mapping[str, str], seconds: Mapping[str, str]) -> Iterator[Metric]:
    """Task runs by task and outcome, and the seconds they took, summed over every worker process."""
    yield _counter("otpflow_worker_tasks", "Tasks run by otpflow workers (all processes, from Redis).",
                   ["task", "outcome"], runs)
    yield _counter("otpflow_worker_task_seconds",
                   "Seconds otpflow workers spent running tasks (all processes, from Redis).", ["task"], seconds)


def provider_counters(calls: Mapping[str, str], seconds: Mapping[str, str]) -> Iterator[Metric]:
    """Provider calls made by workers, by action and result (``ok`` or the error class), and time spent on them."""
    yield _counter("otpflow_worker_provider_calls",
                   "handler_api call attempts made by otpflow workers (all processes, from Redis).",
                   ["action", "result"], calls)
    yield _counter("otpflow_worker_provider_seconds",
                   "Seconds otpflow workers waited on handler_api calls (all processes, from Redis).", ["action"],
                   seconds)


def memory_gauges(state: MemoryState) -> Iterator[Metric]:
    """Redis memory against maxmemory, and whether it refuses writes now."""
    yield GaugeMetricFamily("otpflow_redis_used_memory_bytes", "Memory Redis counts against maxmemory.",
                            value=state.used)
    yield GaugeMetricFamily("otpflow_redis_maxmemory_bytes", "Redis maxmemory (0: no limit).", value=state.limit)
    yield GaugeMetricFamily("otpflow_redis_oom", "1 while Redis refuses writes for lack of memory (noeviction).",
                            value=1 if state.full else 0)


def _number(value: str) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class RedisMetrics(Collector):
    """Queue depths and worker counters read from Redis at scrape time, in one pipelined round trip."""

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[Metric]:
        keys = self.ctx.keys
        up = GaugeMetricFamily("otpflow_redis_up", "1 if Redis answered the metrics scrape.")
        try:
            pipe = self.ctx.redis.pipeline(transaction=False)
            pipe.xlen(keys.inbox)
            pipe.xlen(keys.dead_letters)
            pipe.xlen(keys.unknown_webhooks)
            pipe.zcount(keys.deadlines, "-inf", time.time())
            pipe.xrange(keys.inbox, count=1)
            pipe.info("memory")  # may be refused (a renamed command on some hosted plans): then left out
            queue_reads(pipe, keys)
            pending, dead, unknown, due, oldest, memory, *hashes = pipe.execute(raise_on_error=False)
            failed = [r for r in (pending, dead, unknown, due, oldest, *hashes) if isinstance(r, Exception)]
            if failed:
                raise failed[0]
            counters = read_counters(hashes)
        except Exception:  # a scrape must never fail because Redis is down
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        if not isinstance(memory, Exception):
            yield from memory_gauges(redis_memory(memory))
        yield GaugeMetricFamily("otpflow_inbox_oldest_age_seconds",
                                "Age of the oldest webhook not yet drained (0: none); grows while no worker drains.",
                                value=entry_age(oldest, time.time()))
        yield from self._queues(pending, dead, unknown, due, counters)

    def _queues(self, pending: int, dead: int, unknown: int, due: int, counters: Any) -> Iterator[Metric]:
        yield GaugeMetricFamily("otpflow_inbox_pending", "Webhooks stored but not yet drained.", value=int(pending))
        yield GaugeMetricFamily("otpflow_dead_letters", "Entries in the dead-letter stream.", value=int(dead))
        yield GaugeMetricFamily("otpflow_unknown_webhooks", "Webhooks recorded for unknown activations/rents.",
                                value=int(unknown))
        yield GaugeMetricFamily("otpflow_deadlines_due", "Lifecycle deadlines already due (sweeper backlog).",
                                value=int(due))
        yield from worker_counters(counters.task_runs, counters.task_seconds)
        yield from provider_counters(counters.provider_calls, counters.provider_seconds)


def render(ctx: WebContext) -> tuple[bytes, str]:
    """The text exposition for one scrape: process or multi-process counters plus what Redis holds."""
    registry = CollectorRegistry(auto_describe=False)
    directory = multiprocess_dir()
    if directory:
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry, path=directory)
    else:
        registry.register(WEBHOOKS)
        registry.register(WEBHOOK_SECONDS)
        registry.register(DRAIN_PUBLISH_FAILURES)
        registry.register(DIRECT_PEERS)
    registry.register(RedisMetrics(ctx))
    return generate_latest(registry), CONTENT_TYPE_LATEST
