"""One task base class and one decorator hold every cross-cutting policy (Sentry's ``instrumented_task`` style):
naming, ack/retry behaviour as data, logging with the task id, metrics counters, and what follows every task
(kick the outbox relay, flush the counters), so the tasks themselves are wrappers of a few lines.

Retries here are only for *our* infrastructure hiccups (a Redis blip); provider outcomes are handled by the
domain (deadlines with backoff), never by re-running a purchase. Countdowns stay short (no long ETAs: the
broker's visibility timeout would re-deliver them).
"""
from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

import redis
from celery import Task, shared_task
from celery.exceptions import Retry

from config import log_context
from config.log_context import LogId
from flows.names import TaskName
from flows.outcomes import Outcome
from flows.relay import kick_relay
from provider.backoff import Backoff, Jitter
from telemetry.worker_counters import TASK_METRICS

from .runtime import current_runtime, get_runtime

log = logging.getLogger("otpflow.tasks")

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class RetryPolicy:
    """Which exceptions re-run a task, how often, and how long to wait (capped well under the visibility
    timeout). Celery computes the waits; the numbers come from the project's one backoff type."""

    retry_on: tuple[type[BaseException], ...] = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
    max_retries: int = 5
    backoff: Backoff = field(default=Backoff(base=2.0, cap=30.0, jitter=Jitter.FULL))


DEFAULT_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(retry_on=(), max_retries=0)


def outcome_label(result: Any) -> str:
    """The metrics label of a task's return value: an :class:`Outcome`'s value, else ``ok``."""
    return result.value if isinstance(result, Outcome) else Outcome.OK.value


class OtpflowTask(Task):
    """Base of every otpflow task: logs with the task id, counts outcomes and run time, then kicks the relay
    and flushes the counters (at most every METRICS_FLUSH_INTERVAL; never raises)."""

    abstract = True
    ignore_result = True
    acks_late = True
    reject_on_worker_lost = True
    #: publish the outbox relay after the run (when DOWNSTREAM_TASK is set); off for the relay task itself
    kicks_relay = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # every line the task writes carries its ids (and its order's, for the tasks of one order or rent), and
        # the id of the web request that published it, when one did
        task_id = getattr(self.request, "id", None)
        with log_context.bind({LogId.TASK_ID: task_id, LogId.TASK_NAME: self.name,
                               LogId.ORDER_ID: kwargs.get("order_id"),
                               LogId.REQUEST_ID: published_request_id(self.request)}):
            return self._run(task_id, args, kwargs)

    def _run(self, task_id: str | None, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        started = time.perf_counter()
        extra = {"task_id": task_id, "task_name": self.name}
        outcome = Outcome.OK.value
        try:
            result = super().__call__(*args, **kwargs)
            outcome = outcome_label(result)
            if self.kicks_relay:
                kick_relay(get_runtime())
            return result
        except Retry:
            outcome = "retry"  # autoretry_for: an infrastructure hiccup, the task runs again
            raise
        except Exception as exc:
            outcome = "error"
            log.warning("task %s[%s] raised %s", self.name, task_id, type(exc).__name__, extra=extra)
            raise
        finally:
            elapsed = time.perf_counter() - started
            TASK_METRICS.record(self.name, outcome, elapsed)
            flush_task_metrics()
            write_heartbeat(getattr(self.request, "hostname", None))
            log.debug("task %s[%s] %s in %.1f ms", self.name, task_id, outcome, elapsed * 1000, extra=extra)


def published_request_id(request: Any) -> str | None:
    """The request id a task's message carries (``config.log_context.TASK_HEADER``), when sane.

    A worker's request has its message's custom headers as attributes (and in ``headers``); ``apply()`` puts the
    ``headers=`` it was given in ``headers`` only. Any Celery client may publish, so an id that is not a sane
    token is dropped, as the web drops such an ``X-Request-Id``."""
    headers = getattr(request, "headers", None)
    value = getattr(request, log_context.TASK_HEADER, None)
    if value is None and isinstance(headers, dict):
        value = headers.get(log_context.TASK_HEADER)
    return log_context.sane_request_id(value)


def flush_task_metrics(*, force: bool = False) -> bool:
    """Flush the process's counters through its runtime when due (or now with ``force``); never raises.

    Builds no runtime (no Redis connection) when nothing is pending or none exists, e.g. in the prefork parent.
    """
    if not TASK_METRICS.pending:
        return True
    try:
        rt = current_runtime() if force else get_runtime()
        if rt is None:
            return False
        if force:
            return TASK_METRICS.flush(rt.redis, rt.keys)
        return TASK_METRICS.maybe_flush(rt.redis, rt.keys, rt.settings.metrics_flush_interval)
    except Exception as exc:  # no runtime configured, or a broken one: keep the counts
        log.debug("task metrics not flushed (%s)", type(exc).__name__)
        return False


#: a worker process writes its heartbeat at most this often (seconds), after a task
HEARTBEAT_EVERY = 1.0
#: a node that has not beaten for this long is dropped from the heartbeat set (a dyno replaced under a new name)
HEARTBEAT_FORGET = 24 * 3600.0
_last_heartbeat = 0.0


def write_heartbeat(node: str | None) -> None:
    """Score this worker's node name with now in ``Keys.worker_heartbeats`` (/readyz and the dashboard read it).

    After a task, at most every HEARTBEAT_EVERY per process; the beat's sweep is a task every SWEEP_INTERVAL, so an
    idle worker beats that often too. Never raises: a heartbeat must not fail a task.
    """
    global _last_heartbeat
    now = time.time()
    if now - _last_heartbeat < HEARTBEAT_EVERY:
        return
    _last_heartbeat = now
    try:
        rt = get_runtime()
        pipe = rt.redis.pipeline(transaction=False)
        pipe.zadd(rt.keys.worker_heartbeats, {node or socket.gethostname(): now})
        pipe.zremrangebyscore(rt.keys.worker_heartbeats, "-inf", now - HEARTBEAT_FORGET)
        pipe.execute()
    except Exception as exc:  # no runtime, or Redis down: the next task tries again
        log.debug("worker heartbeat not written (%s)", type(exc).__name__)


def instrumented_task(name: TaskName, *, retry: RetryPolicy = DEFAULT_RETRY, kicks_relay: bool = True,
                      **options: Any) -> Callable[[F], F]:
    """Register ``fn`` as a shared Celery task named ``name`` with the otpflow base class and retry policy."""

    def decorator(fn: F) -> F:
        return shared_task(
            name=name.value, bind=True, base=OtpflowTask, autoretry_for=retry.retry_on,
            max_retries=retry.max_retries, retry_backoff=retry.backoff.base, retry_backoff_max=retry.backoff.cap,
            retry_jitter=retry.backoff.jitter is Jitter.FULL, kicks_relay=kicks_relay, **options,
        )(fn)

    return decorator
