"""Worker counters: the one owner of their Redis format, written by worker processes and read by the web /metrics.

Task counters of one worker process are accumulated in memory and flushed to Redis now and then.

On Heroku only the web dyno is reachable, so a worker cannot be scraped: each worker process adds its counts into
a few Redis hashes (``Keys.worker_task_runs`` / ``worker_task_seconds`` / ``worker_provider_calls`` /
``worker_provider_seconds``) and the web ``/metrics`` reads them at
scrape time. Counting is in memory (a dict update per task); a flush is ONE pipelined round trip, at most once
per ``METRICS_FLUSH_INTERVAL`` seconds per process (after a task) and once more at process shutdown. A flush that
fails keeps its counts for the next one: metrics never fail a task.

Labels are bounded: registered task names and outcome values (``flows.outcomes.Outcome``), provider actions and
error class names, never ids or secrets. :func:`split_field` and :func:`read_counters` are the reading side.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import redis

from lifecycle.keys import Keys

log = logging.getLogger("otpflow.telemetry")

#: joins two labels in one hash field (``<task>|<outcome>``, ``<action>|<result>``)
FIELD_SEP = "|"


def join_field(first: str, second: str) -> str:
    return f"{first}{FIELD_SEP}{second}"


def split_field(field: str) -> tuple[str, str] | None:
    """The two labels of a two-label field (split on the last separator), or None when it is malformed."""
    first, sep, second = field.rpartition(FIELD_SEP)
    return (first, second) if sep and first and second else None


@dataclass(frozen=True)
class CounterHashes:
    """The four worker hashes as read back from Redis, decoded to text."""

    task_runs: dict[str, str]
    task_seconds: dict[str, str]
    provider_calls: dict[str, str]
    provider_seconds: dict[str, str]


def queue_reads(pipe: Any, keys: Keys) -> None:
    """Queue the HGETALLs of the four worker hashes on ``pipe`` (the web reads them with its gauges)."""
    for key in (keys.worker_task_runs, keys.worker_task_seconds, keys.worker_provider_calls,
                keys.worker_provider_seconds):
        pipe.hgetall(key)


def read_counters(replies: Iterable[Mapping[Any, Any]]) -> CounterHashes:
    """The four HGETALL replies queued by :func:`queue_reads`, in order."""
    runs, seconds, calls, call_seconds = (_text(r) for r in replies)
    return CounterHashes(runs, seconds, calls, call_seconds)


def _text(mapping: Mapping[Any, Any]) -> dict[str, str]:
    """HGETALL answers as text, whether or not the client decodes responses."""
    return {(k.decode() if isinstance(k, bytes) else str(k)): (v.decode() if isinstance(v, bytes) else str(v))
            for k, v in mapping.items()}


class TaskMetrics:
    """Per-process counters flushed to Redis: task runs (by task and outcome) and run seconds (by task), provider
    calls (by action and result) and the seconds spent waiting on them (by action).

    Thread-safe: a flush takes the pending counts out under the lock, so each count goes into exactly one
    successful flush (a failed flush puts its counts back).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._runs: Counter[tuple[str, str]] = Counter()
        self._seconds: defaultdict[str, float] = defaultdict(float)
        self._calls: Counter[tuple[str, str]] = Counter()
        self._call_seconds: defaultdict[str, float] = defaultdict(float)
        self._last_flush = clock()

    def record(self, task: str, outcome: str, seconds: float) -> None:
        """Count one run of ``task`` that ended with ``outcome`` after ``seconds``."""
        with self._lock:
            self._runs[(task, outcome)] += 1
            self._seconds[task] += seconds

    def record_call(self, action: str, result: str, seconds: float) -> None:
        """Count one provider call attempt (the client's observer): ``result`` is ``ok`` or the error class."""
        with self._lock:
            self._calls[(action, result)] += 1
            self._call_seconds[action] += seconds

    @property
    def pending(self) -> bool:
        """Counts not yet in Redis."""
        return bool(self._runs or self._seconds or self._calls or self._call_seconds)

    def reset(self) -> None:
        """Forget pending counts (a forked child: what it inherited is its parent's to flush)."""
        with self._lock:
            self._runs.clear()
            self._seconds.clear()
            self._calls.clear()
            self._call_seconds.clear()
            self._last_flush = self._clock()

    def due(self, interval: float) -> bool:
        """Whether there is something to flush and ``interval`` seconds passed since the last flush (or try)."""
        return self.pending and self._clock() - self._last_flush >= interval

    def maybe_flush(self, client: redis.Redis, keys: Keys, interval: float) -> bool:
        """Flush when ``due(interval)``; True when nothing is left pending."""
        if not self.due(interval):
            return not self.pending
        return self.flush(client, keys)

    def flush(self, client: redis.Redis, keys: Keys) -> bool:
        """Add the pending counts to the Redis hashes in one MULTI/EXEC round trip; never raises.

        On failure the counts are put back (and the next try waits a full interval), so a Redis outage only delays
        them. MULTI/EXEC means a connection lost while sending applies nothing (a plain pipeline could apply half,
        then count it twice on the retry); only a reply lost after EXEC can count a batch twice.
        """
        with self._lock:
            taken = _Pending(self._runs, self._seconds, self._calls, self._call_seconds)
            self._runs, self._seconds = Counter(), defaultdict(float)
            self._calls, self._call_seconds = Counter(), defaultdict(float)
            self._last_flush = self._clock()
        increments = taken.increments(keys)
        if not increments:
            return True
        try:
            pipe = client.pipeline(transaction=True)
            for inc in increments:
                if isinstance(inc.amount, int):
                    pipe.hincrby(inc.key, inc.field, inc.amount)
                else:
                    pipe.hincrbyfloat(inc.key, inc.field, inc.amount)
            results = pipe.execute(raise_on_error=False)
        except Exception as exc:  # metrics must never fail a task
            self._put_back(increments)
            log.warning("task metrics flush failed (%s); counts kept for the next try", type(exc).__name__)
            return False
        # EXEC applies every command it can: keep (for the next try) only the increments Redis refused, e.g. WRONGTYPE
        refused = [inc for inc, result in zip(increments, results) if isinstance(result, Exception)]
        if refused:
            self._put_back(refused)
            log.warning("task metrics flush: Redis refused %d of %d increments; kept for the next try",
                        len(refused), len(results))
            return False
        return True

    def _put_back(self, increments: list["_Increment"]) -> None:
        with self._lock:
            for inc in increments:
                inc.restore(self)


@dataclass(frozen=True)
class _Increment:
    """One HINCRBY/HINCRBYFLOAT of a flush, and where its count came from (to put it back after a failure)."""

    key: str
    field: str
    amount: int | float
    counter: str
    label: tuple[str, str] | str

    def restore(self, metrics: TaskMetrics) -> None:
        getattr(metrics, self.counter)[self.label] += self.amount


@dataclass(frozen=True)
class _Pending:
    runs: Mapping[tuple[str, str], int]
    seconds: Mapping[str, float]
    calls: Mapping[tuple[str, str], int]
    call_seconds: Mapping[str, float]

    def increments(self, keys: Keys) -> list[_Increment]:
        out = [_Increment(keys.worker_task_runs, join_field(task, outcome), count, "_runs", (task, outcome))
               for (task, outcome), count in self.runs.items()]
        out += [_Increment(keys.worker_task_seconds, task, total, "_seconds", task)
                for task, total in self.seconds.items()]
        out += [_Increment(keys.worker_provider_calls, join_field(action, result), count, "_calls",
                           (action, result)) for (action, result), count in self.calls.items()]
        out += [_Increment(keys.worker_provider_seconds, action, total, "_call_seconds", action)
                for action, total in self.call_seconds.items()]
        return out


#: the worker process's accumulator (the task base class records into it; ``worker.signals`` resets and flushes it)
TASK_METRICS = TaskMetrics()
