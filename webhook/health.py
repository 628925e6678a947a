"""Liveness, readiness and metrics endpoints.

``/healthz`` does no I/O (a dyno whose Redis is down must not be restarted for it); ``/readyz`` pings Redis, the
one thing the web process cannot work without; ``/metrics`` is the Prometheus text exposition.
"""
from __future__ import annotations

import redis
from flask import Blueprint, Response, jsonify

from webhook.context import current_context
from webhook.errors import unavailable
from webhook.metrics import render

health = Blueprint("health", __name__)


@health.get("/healthz")
def healthz() -> Response:
    """The process is up and serving requests."""
    return jsonify({"status": "ok"})


@health.get("/readyz")
def readyz() -> Response:
    """Ready when Redis answers PING; 503 (with Retry-After) otherwise."""
    try:
        current_context().redis.ping()
    except redis.RedisError as exc:
        return unavailable(f"redis unreachable ({type(exc).__name__})")
    return jsonify({"status": "ready"})


@health.get("/metrics")
def metrics() -> Response:
    """Prometheus text format; queue gauges and worker task counters are read from Redis now, in one round trip
    (omitted, redis_up 0, when it is down)."""
    body, content_type = render(current_context())
    return Response(body, status=200, content_type=content_type)
