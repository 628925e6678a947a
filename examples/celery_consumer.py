"""A downstream consumer of otpflow's events as a Celery task: otpflow's relay sends each event as the task
``DOWNSTREAM_TASK`` (keyword arguments: ``type`` and the event's data) to the queue ``DOWNSTREAM_QUEUE``, on the
same broker (``REDIS_URL``).

    # otpflow's worker:
    DOWNSTREAM_TASK=examples.celery_consumer.handle_otp_event DOWNSTREAM_QUEUE=otp-events ...
    # this consumer, from the repository's root:
    REDIS_URL=redis://127.0.0.1:6379/0 celery -A examples.celery_consumer worker -Q otp-events

The relay delivers at least once (it acknowledges an event after publishing it, and a task is redelivered when a
worker dies), so the task skips an ``event_id`` it has handled (a marker per id, kept for a week, written after
the effects) and each effect is idempotent, for a worker that dies between the two.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any

import redis
from celery import Celery

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
PREFIX = os.environ.get("EXAMPLE_PREFIX", "example-celery")
SEEN_TTL = 7 * 24 * 3600

app = Celery("otp_consumer", broker=REDIS_URL)
app.conf.update(task_serializer="json", accept_content=["json"], task_acks_late=True,
                task_reject_on_worker_lost=True, worker_prefetch_multiplier=1, task_ignore_result=True)
log = logging.getLogger(__name__)
_redis: redis.Redis | None = None


def store() -> redis.Redis:
    """Where the task keeps its markers and effects (one client per worker process)."""
    global _redis
    if _redis is None:
        _redis = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    return _redis


@app.task(name="examples.celery_consumer.handle_otp_event")
def handle_otp_event(**event: Any) -> str:
    """One event: ``type`` plus its data fields (``event_id``, ``order_id``, ``at``, and the type's own)."""
    r = store()
    event_id = event.get("event_id")
    seen = f"{PREFIX}:seen:{event_id}"
    if not event_id or r.exists(seen):
        log.info("duplicate %s skipped", event_id)
        return "duplicate"
    # the business effects, each idempotent: a worker that dies before the marker below runs them again
    if event.get("type") == "code.received":
        r.hset(f"{PREFIX}:codes", event["order_id"], event["code"])
    r.hset(f"{PREFIX}:handled", event_id, json.dumps({"type": event.get("type"), "order_id": event.get("order_id")}))
    r.set(seen, "1", ex=SEEN_TTL)
    log.info("handled %s %s", event.get("type"), event_id)
    return "handled"
