"""Prometheus metrics of the web process.

Counters and the latency histogram live in this process (or, under gunicorn with several workers, in
``PROMETHEUS_MULTIPROC_DIR`` mmap files that every worker writes and any worker can aggregate at scrape time).
Queue depths are read from Redis at scrape time instead: they are facts about Redis, not about one worker, and a
gauge kept in-process would be wrong in every worker but the one that last touched it.

Worker task counters come from Redis too: a worker dyno cannot be scraped, so each worker process adds its counts
to a few hashes now and then (``telemetry/worker_counters.py``, which owns their format) and this process exposes
their sums as counters. They outlive worker restarts (they live in Redis) and are read in the same round trip as
the gauges.

Business counters (orders and numbers by outcome, service, country and provider; codes by how they came; time to
code) are counted from the events stream itself, the record of every fact (:class:`EventCounts`): a scrape (or a
dashboard refresh) counts the events added since the last one into a Redis hash, so the cost of a scrape is the
events since the previous scrape, and several web processes never count one event twice (the hash's cursor is
advanced with WATCH/MULTI). Events trimmed from the stream before they were counted are not counted.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

import redis
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from lifecycle.keys import Keys
from lifecycle.outbox.events import EventType
from telemetry.worker_counters import queue_reads, read_counters, split_field
from webhook.context import WebContext
from webhook.redis_state import MemoryState, entry_age, redis_memory
from webhook.spend_metrics import SpendMetrics

log = logging.getLogger("otpflow.metrics")

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


# ------------------------------------------------------------------------------------------ business counters
#: joins the labels of one count in its hash field (a label's own ``|`` becomes ``/``)
LABEL_SEP = "|"
CURSOR_FIELD = "_cursor"
#: time-to-code histogram buckets (seconds): webhooks bring codes in seconds, polls in tens of seconds
CODE_BUCKETS = (5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0)
#: events counted per read, and reads per advance (a scrape after a long pause catches up over several scrapes)
COUNT_BATCH = 1000
COUNT_BATCHES = 10

#: count kinds: the first label of a field
ORDER, NUMBER, ACTIVATION, CODE, RENT, RENT_SMS, FAILURE = "order", "number", "activation", "code", "rent", \
    "rent_sms", "failure"
TTC_BUCKET, TTC_SUM, TTC_COUNT = "ttc", "ttc_sum", "ttc_count"

_ORDER_END = {EventType.ORDER_COMPLETED: "completed", EventType.ORDER_CANCELLED: "cancelled",
              EventType.ORDER_FAILED: "failed"}
_NUMBER_END = {EventType.ACTIVATION_FINISHED: "finished", EventType.ACTIVATION_CANCELLED: "cancelled"}
_RENT_END = {EventType.RENT_STARTED: "started", EventType.RENT_FINISHED: "finished",
             EventType.RENT_CANCELLED: "cancelled"}


def _label(value: Any) -> str:
    return "" if value is None else str(value).replace(LABEL_SEP, "/")[:64]


def count_field(*labels: Any) -> str:
    return LABEL_SEP.join(_label(v) for v in labels)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _iso_seconds(at: Any) -> float | None:
    """An event's ``at`` (ISO 8601 UTC with a Z) as unix seconds."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(at).replace("Z", "+00:00")).timestamp()
    except (TypeError, ValueError):
        return None


@dataclass
class _Batch:
    """What one batch of events adds: increments, and the numbers awaiting a code that change."""

    incr: dict[str, int | float]
    waiting_set: dict[str, str]
    waiting_del: set[str]

    def add(self, field: str, amount: int | float = 1) -> None:
        self.incr[field] = self.incr.get(field, 0) + amount

    def observe_code(self, provider: str, service: str, seconds: float) -> None:
        for bound in CODE_BUCKETS:
            if seconds <= bound:
                self.add(count_field(TTC_BUCKET, provider, service, bound))
        self.add(count_field(TTC_BUCKET, provider, service, "+Inf"))
        self.add(count_field(TTC_SUM, provider, service), round(seconds, 3))
        self.add(count_field(TTC_COUNT, provider, service))


class EventCounts:
    """Counts of the events stream's facts in one Redis hash (``Keys.event_counts``), advanced on demand."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys

    def advance(self, *, batch: int = COUNT_BATCH, batches: int = COUNT_BATCHES) -> int | None:
        """Count the events added since the last advance (at most ``batch`` × ``batches``); returns how many, or
        None when Redis failed (full or unreachable: the counts stay as they are, the next advance catches up).
        Never raises."""
        done = 0
        try:
            for _ in range(batches):
                counted = self._advance_once(batch)
                if counted is None:  # another process counted meanwhile: its counts are ours too
                    continue
                done += counted
                if counted < batch:
                    break
        except redis.ResponseError as exc:  # OOM, READONLY: counting waits, reading still works
            log.debug("event counts not advanced (%s)", exc)
        except redis.RedisError as exc:
            log.debug("event counts not advanced (%s)", type(exc).__name__)
            return None
        return done

    def _advance_once(self, batch: int) -> int | None:
        with self.redis.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(self.keys.event_counts)
                cursor = _text(pipe.hget(self.keys.event_counts, CURSOR_FIELD) or "0")
                rows: Any = pipe.xrange(self.keys.events, min=f"({cursor}" if cursor != "0" else "-", count=batch)
                if not rows:
                    pipe.unwatch()
                    return 0
                events = [(_text(i), {_text(k): _text(v) for k, v in f.items()}) for i, f in rows]
                coded = sorted({_order_of(f) for _i, f in events if f.get("type") == EventType.CODE_RECEIVED})
                waiting = dict(zip(coded, pipe.hmget(self.keys.event_numbers, coded))) if coded else {}
                result = count_events(events, {k: _text(v) for k, v in waiting.items() if v is not None})
                pipe.multi()
                for field, amount in result.incr.items():
                    if isinstance(amount, float):  # the time-to-code sums; every count is an int
                        pipe.hincrbyfloat(self.keys.event_counts, field, amount)
                    else:
                        pipe.hincrby(self.keys.event_counts, field, amount)
                pipe.hset(self.keys.event_counts, CURSOR_FIELD, events[-1][0])
                if result.waiting_set:
                    pipe.hset(self.keys.event_numbers, mapping=dict[Any, Any](result.waiting_set))
                if result.waiting_del:
                    pipe.hdel(self.keys.event_numbers, *sorted(result.waiting_del))
                pipe.execute()
                return len(events)
            except redis.WatchError:
                return None

    def read(self) -> dict[str, float]:
        """Every count (the cursor left out); empty when Redis does not answer."""
        try:
            raw: Any = self.redis.hgetall(self.keys.event_counts)
        except redis.RedisError:
            return {}
        out: dict[str, float] = {}
        for k, v in raw.items():
            key = _text(k)
            if key == CURSOR_FIELD:
                continue
            try:
                out[key] = float(_text(v))
            except ValueError:
                continue
        return out


def _order_of(fields: Mapping[str, str]) -> str:
    try:
        data = json.loads(fields.get("data") or "{}")
    except ValueError:
        return ""
    return str(data.get("order_id", "")) if isinstance(data, dict) else ""


def count_events(events: Sequence[tuple[str, Mapping[str, str]]], waiting: Mapping[str, str]) -> _Batch:
    """What ``events`` (stream id, fields) add to the counts; ``waiting``: order id -> ``<activation>|<time>`` of
    the numbers bought earlier and still awaiting their first code. Unreadable entries are skipped."""
    out = _Batch({}, {}, set())
    pending = dict(waiting)
    for _entry_id, fields in events:
        try:
            data = json.loads(fields.get("data") or "")
        except ValueError:
            continue
        if not isinstance(data, dict):
            continue
        kind, order_id = fields.get("type", ""), str(data.get("order_id", ""))
        service, country, provider = data.get("service"), data.get("country"), data.get("provider")
        if kind == EventType.NUMBER_ASSIGNED:
            out.add(count_field(NUMBER, service, country, provider))
            at = _iso_seconds(data.get("at"))
            if order_id and at is not None:
                pending[order_id] = value = f"{data.get('activation_id', '')}{LABEL_SEP}{at:.3f}"
                out.waiting_set[order_id] = value
                out.waiting_del.discard(order_id)
        elif kind == EventType.CODE_RECEIVED:
            out.add(count_field(CODE, data.get("via"), service, provider))
            aid, _, since = pending.get(order_id, "").rpartition(LABEL_SEP)
            at = _iso_seconds(data.get("at"))
            if since and aid == str(data.get("activation_id", "")) and at is not None:
                out.observe_code(_label(provider), _label(service), max(0.0, at - float(since)))
                pending.pop(order_id, None)
                out.waiting_set.pop(order_id, None)
                out.waiting_del.add(order_id)
        elif kind in _NUMBER_END:
            outcome = "replaced" if data.get("replaced") else _NUMBER_END[EventType(kind)]
            out.add(count_field(ACTIVATION, outcome, service, country, provider))
        elif kind in _ORDER_END and data.get("kind") == "rent":
            out.add(count_field(RENT, "failed", service, country, provider))
        elif kind in _ORDER_END:
            out.add(count_field(ORDER, _ORDER_END[EventType(kind)], service, country, provider))
            if kind == EventType.ORDER_FAILED:
                out.add(count_field(FAILURE, str(data.get("reason", "")).split(":", 1)[0], provider))
            pending.pop(order_id, None)
            out.waiting_set.pop(order_id, None)
            out.waiting_del.add(order_id)
        elif kind in _RENT_END:
            out.add(count_field(RENT, _RENT_END[EventType(kind)], service, country, provider))
        elif kind == EventType.RENT_SMS:
            out.add(count_field(RENT_SMS, data.get("via"), provider))
    out.waiting_del -= set(out.waiting_set)
    return out


#: the counter families, by kind: (name, help, label names after the kind)
BUSINESS_FAMILIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    ORDER: ("otpflow_orders", "Orders ended, by outcome (completed, cancelled, failed).",
            ("outcome", "service", "country", "provider")),
    NUMBER: ("otpflow_numbers", "Numbers bought (number.assigned).", ("service", "country", "provider")),
    ACTIVATION: ("otpflow_activations", "Numbers closed, by outcome (finished: charged; cancelled: refunded; "
                 "replaced: closed so the order could buy another).", ("outcome", "service", "country", "provider")),
    CODE: ("otpflow_codes", "Codes received, by how they came (webhook or poll).", ("via", "service", "provider")),
    RENT: ("otpflow_rents", "Rents by outcome (started, finished, cancelled, failed).",
           ("outcome", "service", "country", "provider")),
    RENT_SMS: ("otpflow_rent_sms", "SMS on rented numbers, by how they came.", ("via", "provider")),
    FAILURE: ("otpflow_order_failures", "Failed orders by reason (order.failed).", ("reason", "provider")),
}


def business_metrics(counts: Mapping[str, float]) -> Iterator[Metric]:
    """The counter families and the time-to-code histogram from :meth:`EventCounts.read`."""
    families = {kind: CounterMetricFamily(name, doc, labels=list(labels))
                for kind, (name, doc, labels) in BUSINESS_FAMILIES.items()}
    histogram: dict[tuple[str, str], dict[str, float]] = {}
    for field, value in sorted(counts.items()):
        kind, *labels = field.split(LABEL_SEP)
        if kind in families and len(labels) == len(BUSINESS_FAMILIES[kind][2]):
            families[kind].add_metric(labels, value)
        elif kind == TTC_BUCKET and len(labels) == 3:
            histogram.setdefault((labels[0], labels[1]), {})[labels[2]] = value
        elif kind in (TTC_SUM, TTC_COUNT) and len(labels) == 2:
            histogram.setdefault((labels[0], labels[1]), {})[kind] = value
    yield from families.values()
    ttc = HistogramMetricFamily("otpflow_time_to_code_seconds",
                                "Seconds from a number's purchase to its first code.", labels=["provider", "service"])
    for (provider, service), values in sorted(histogram.items()):
        buckets = [(_bound(b), values.get(_bound(b), 0.0)) for b in (*CODE_BUCKETS, "+Inf")]
        ttc.add_metric([provider, service], buckets, values.get(TTC_SUM, 0.0))
    yield ttc


def _bound(bound: float | str) -> str:
    return str(bound) if isinstance(bound, str) else str(float(bound))


class BusinessMetrics(Collector):
    """The business counters, counted from the events stream up to now at scrape time (nothing when Redis is
    down: ``otpflow_redis_up`` says so)."""

    def __init__(self, ctx: WebContext) -> None:
        self.counts = EventCounts(ctx.redis, ctx.keys)

    def collect(self) -> Iterator[Metric]:
        if self.counts.advance() is None:
            return
        yield from business_metrics(self.counts.read())


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
    registry.register(BusinessMetrics(ctx))
    registry.register(SpendMetrics(ctx))
    return generate_latest(registry), CONTENT_TYPE_LATEST
