"""Liveness, readiness and metrics endpoints.

``/healthz`` does no I/O (a dyno whose Redis is down must not be restarted for it); ``/readyz`` asks Redis, the
one thing the web process cannot work without, whether it answers and has room to write; ``/metrics`` is the
Prometheus text exposition.
"""
from __future__ import annotations

import json
import time

import redis
from flask import Blueprint, Response, jsonify

from webhook.context import current_context
from webhook.errors import unavailable
from webhook.metrics import render
from webhook.redis_state import entry_age, redis_memory

health = Blueprint("health", __name__)


@health.get("/healthz")
def healthz() -> Response:
    """The process is up and serving requests."""
    return jsonify({"status": "ok"})


@health.get("/readyz")
def readyz() -> Response:
    """Ready when Redis answers and accepts writes; 503 (with Retry-After) when it is unreachable or full.

    The body also says how Redis memory stands and how long the oldest stored webhook has waited for a drain
    (``inbox.oldest_age_seconds``): it grows while no worker drains (stopped, or paused on a full Redis), which
    does not stop this process from taking webhooks, so it does not make it unready.
    """
    ctx = current_context()
    try:
        pipe = ctx.redis.pipeline(transaction=False)
        pipe.ping()
        pipe.info("memory")
        pipe.xrange(ctx.keys.inbox, count=1)
        pipe.xlen(ctx.keys.inbox)
        pong, memory, oldest, pending = pipe.execute(raise_on_error=False)
    except redis.RedisError as exc:
        return unavailable(f"redis unreachable ({type(exc).__name__})")
    if isinstance(pong, Exception):
        return unavailable(f"redis unreachable ({type(pong).__name__})")
    # INFO may be refused (a renamed command on some hosted plans): then memory is simply not reported
    state = None if isinstance(memory, Exception) else redis_memory(memory)
    body: dict[str, object] = {"inbox": {
        "pending": 0 if isinstance(pending, Exception) else int(pending),
        "oldest_age_seconds": 0.0 if isinstance(oldest, Exception) else round(entry_age(oldest, time.time()), 3)}}
    if state is not None:
        body["redis"] = {"used_memory": state.used, "maxmemory": state.limit, "policy": state.policy,
                         "full": state.full}
    if state is not None and state.full:
        response = unavailable("redis is out of memory (maxmemory reached): webhooks are refused until it is freed")
        response.set_data(json.dumps({**json.loads(response.get_data()), **body}))
        return response
    return jsonify({"status": "ready", **body})


@health.get("/metrics")
def metrics() -> Response:
    """Prometheus text format; queue gauges and worker task counters are read from Redis now, in one round trip
    (omitted, redis_up 0, when it is down)."""
    body, content_type = render(current_context())
    return Response(body, status=200, content_type=content_type)
