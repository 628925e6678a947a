"""Ride out a full (or read-only, or loading) Redis instead of dying: the consumer waits at a gate until it can write.

Under ``noeviction`` a full Redis refuses every write. kombu's Redis transport then fails inside the worker's main
process (taking a task writes it to the unacked hash; restoring unacked tasks takes a lock), and those refusals
(``OutOfMemoryError``, ``ReadOnlyError``: ``ResponseError`` subclasses) are channel errors, which Celery treats as
unrecoverable unless ``broker_channel_error_retry`` is set: the worker logged ``Unrecoverable error`` and exited,
and the inbox stayed undrained until a person restarted it.

With ``broker_channel_error_retry`` (``worker/celery_app.py``) the consumer restarts instead, and this consumer
class (``worker_consumer``), before each (re)connect (connecting declares queues: a write too), holds it until
Redis accepts writes again: checking
``INFO memory`` with a backoff (0.5 s doubling to 2 s, so a SIGTERM is honoured within the platform's 30 s), one
log line when it starts waiting and one when it resumes. While it waits no task is taken, so none is popped from
the queue only to be lost when its bookkeeping write is refused. Nothing is lost meanwhile: webhooks stay in the
inbox stream (the web answers 503 to new ones), deadlines stay in their sorted sets, and tasks in their queue.
``/readyz`` and ``/metrics`` show the state from Redis itself (memory, the age of the oldest undrained webhook).
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

import redis
from celery.worker.consumer import Consumer
from celery.worker.state import maybe_shutdown

log = logging.getLogger("otpflow.worker")

FIRST_DELAY = 0.5
MAX_DELAY = 2.0


def refusal(client: redis.Redis) -> str | None:
    """Why Redis would refuse a write now (``"out of memory"``, ``"read-only replica"``, ...), or None.

    A server that refuses ``INFO`` itself (a renamed command on some hosted plans) is taken as writable: the
    consumer's own errors still restart it, it just is not held back.
    """
    try:
        memory = client.info("memory")
        replication = client.info("replication")
    except redis.exceptions.BusyLoadingError:
        return "loading its data"
    except redis.exceptions.ResponseError:
        return None
    except redis.RedisError as exc:
        return f"unreachable ({type(exc).__name__})"
    limit = int(memory.get("maxmemory") or 0)
    used = int(memory.get("used_memory") or 0) - int(memory.get("mem_not_counted_for_evict") or 0)
    if limit and used >= limit and memory.get("maxmemory_policy") == "noeviction":
        return f"out of memory ({used} of maxmemory {limit} bytes)"
    if replication.get("role") == "slave" and str(replication.get("slave_read_only", "1")) == "1":
        return "a read-only replica"
    return None


def wait_until_writable(check: Callable[[], str | None], *, sleep: Callable[[float], None] = time.sleep,
                        stop: Callable[[], None] = maybe_shutdown) -> float:
    """Block until ``check()`` finds nothing wrong; returns the seconds waited. ``stop`` may raise to end the
    wait (Celery's shutdown request)."""
    started = time.monotonic()
    reason = check()
    if reason is None:
        return 0.0
    log.warning("Redis refuses writes (%s): taking no tasks until it accepts writes again", reason)
    delay = FIRST_DELAY
    while reason is not None:
        stop()
        sleep(delay)
        delay = min(delay * 2, MAX_DELAY)
        reason = check()
    waited = time.monotonic() - started
    log.warning("Redis accepts writes again after %.1f s: taking tasks", waited)
    return waited


class GatedConsumer(Consumer):
    """Celery's consumer, waiting at each (re)connect until Redis accepts writes (``worker_consumer``)."""

    _gate_client: redis.Redis | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # kombu's Redis transport raises AttributeError ("'NoneType' object has no attribute 'hostname'") when an
        # ack or a restore runs on a channel whose connection a Redis restart took away: count it as the
        # connection error it is, so the ack is logged and left (the task comes back after the visibility
        # timeout, and tasks are idempotent) and the consumer reconnects, instead of the worker ending. A real bug
        # raising AttributeError in the consumer loop still ends the worker after Celery's five quick restarts.
        known: tuple[type[BaseException], ...] = tuple(getattr(self, "connection_errors", ()))
        self.connection_errors = (*known, AttributeError)

    def on_connection_error_after_connected(self, exc: BaseException) -> None:
        """Celery's clean-up of a lost connection, surviving kombu's Redis transport failing in it.

        When Redis restarts while a task is unacknowledged, kombu closes the channel after the connection was
        collected, and restoring the unacknowledged task then needs the connection's client, which is gone: an
        ``AttributeError`` ("'NoneType' object has no attribute 'hostname'") that Celery does not expect and that
        ends the worker ("Unrecoverable error"). The task is still in kombu's unacked hash, so it comes back after
        the visibility timeout; the consumer only has to carry on reconnecting.
        """
        try:
            super().on_connection_error_after_connected(exc)
        except AttributeError as err:
            log.warning("broker connection closed uncleanly (%s); reconnecting: an unacknowledged task comes back "
                        "after the visibility timeout", err)
            self.connection = None

    def connect(self) -> Any:
        if self._gate_client is None:
            from config.redis_client import make_redis

            self._gate_client = make_redis(self.app.conf.otpflow_settings, socket_timeout=2.0, retries=0)
        client = self._gate_client
        wait_until_writable(lambda: refusal(client))
        return super().connect()
