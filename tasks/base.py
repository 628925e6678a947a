"""One task base class and one decorator hold every cross-cutting policy (Sentry's ``instrumented_task`` style):
naming, ack/retry behaviour as data, logging with the task id, and metrics counters (``tasks.metrics``: counted in
memory, flushed to Redis for the web ``/metrics``, since a worker dyno cannot be scraped).

Retries here are only for *our* infrastructure hiccups (a Redis blip); provider outcomes are handled by the
domain (deadlines with backoff), never by re-running a purchase. Countdowns stay short (no long ETAs: the
broker's visibility timeout would re-deliver them).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import redis
from celery import Task, shared_task
from celery.exceptions import Retry

from tasks.metrics import TASK_METRICS, flush_task_metrics, outcome_of

log = logging.getLogger("otpflow.tasks")

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class RetryPolicy:
    """Which exceptions re-run a task, how often, and how long to wait (capped well under the visibility timeout)."""

    retry_on: tuple[type[BaseException], ...] = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
    max_retries: int = 5
    backoff: int = 2
    backoff_max: int = 30
    jitter: bool = True


DEFAULT_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(retry_on=(), max_retries=0)


class OtpflowTask(Task):
    """Base of every otpflow task: logs start/end with the task id, counts outcomes, times runs."""

    abstract = True
    ignore_result = True
    acks_late = True
    reject_on_worker_lost = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        task_id = getattr(self.request, "id", None)
        extra = {"task_id": task_id, "task_name": self.name}
        outcome = "ok"
        try:
            result = super().__call__(*args, **kwargs)
            outcome = outcome_of(result)
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
            flush_task_metrics()  # at most once per METRICS_FLUSH_INTERVAL; never raises
            log.debug("task %s[%s] %s in %.1f ms", self.name, task_id, outcome, elapsed * 1000, extra=extra)


def instrumented_task(name: str, *, retry: RetryPolicy = DEFAULT_RETRY, **options: Any) -> Callable[[F], F]:
    """Register ``fn`` as a shared Celery task named ``name`` with the otpflow base class and retry policy."""

    def decorator(fn: F) -> F:
        return shared_task(
            name=name, bind=True, base=OtpflowTask, autoretry_for=retry.retry_on, max_retries=retry.max_retries,
            retry_backoff=retry.backoff, retry_backoff_max=retry.backoff_max, retry_jitter=retry.jitter,
            **options,
        )(fn)

    return decorator
