"""Liveness, readiness and metrics endpoints.

``/healthz`` does no I/O (a dyno whose Redis is down must not be restarted for it); ``/readyz`` asks Redis, the
one thing the web process cannot work without, whether it answers and has room to write, asks the broker too when
``CELERY_BROKER_URL`` names one of its own (worker/broker_probe.py: one connection of at most about a second, its
answer reused for 5 s), and reports how long ago the workers and the beat were last heard of; ``/metrics`` is the
Prometheus text exposition.

Heartbeats: every worker process scores its node name in ``Keys.worker_heartbeats`` after a task (the beat's sweep
is one every SWEEP_INTERVAL), and every completed sweep writes ``Keys.beat_heartbeat``. A stale heartbeat does not
make this process unready by default: it still stores webhooks, and a platform that stopped routing to it would
lose them. ``/readyz?require=worker,beat`` (for an uptime monitor) also fails on a stale or missing one.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis
from flask import Blueprint, Response, jsonify, request

from config.settings import Settings
from lifecycle.keys import Keys
from webhook.context import current_context
from webhook.errors import error_response, unavailable
from webhook.metrics import render
from webhook.redis_state import entry_age, redis_memory

health = Blueprint("health", __name__)

#: what ``/readyz?require=`` may name
HEARTBEAT_NAMES = ("worker", "beat")
#: worker nodes listed (the freshest first)
MAX_WORKERS_LISTED = 20


def stale_after(settings: Settings) -> float:
    """Seconds after which a heartbeat counts as stale: ten sweep periods, and at least a minute."""
    return max(60.0, 10 * settings.sweep_interval)


@dataclass(frozen=True)
class Heartbeat:
    """When ``name`` was last heard of: ``age`` seconds ago (None: never), ``stale`` past the threshold."""

    name: str
    age: float | None
    stale: bool

    def public(self) -> dict[str, object]:
        return {"age_seconds": None if self.age is None else round(self.age, 1), "stale": self.stale}


@dataclass(frozen=True)
class Heartbeats:
    """The beat's heartbeat, the freshest worker's, and every worker node's (freshest first)."""

    beat: Heartbeat
    worker: Heartbeat
    workers: tuple[Heartbeat, ...]
    stale_after: float

    def named(self, name: str) -> Heartbeat:
        return self.beat if name == "beat" else self.worker

    def public(self) -> dict[str, object]:
        return {"stale_after_seconds": self.stale_after, "beat": self.beat.public(), "worker": self.worker.public(),
                "workers": {w.name: w.public() for w in self.workers}}


def queue_heartbeat_reads(pipe: Any, keys: Keys) -> None:
    """Queue the two reads :func:`read_heartbeats` turns into :class:`Heartbeats` (beat, then workers)."""
    pipe.get(keys.beat_heartbeat)
    pipe.zrevrange(keys.worker_heartbeats, 0, MAX_WORKERS_LISTED - 1, withscores=True)


def _beat(name: str, at: float | None, now: float, limit: float) -> Heartbeat:
    age = None if at is None else max(0.0, now - at)
    return Heartbeat(name, age, age is None or age > limit)


def read_heartbeats(beat_raw: Any, workers_raw: Any, *, now: float, limit: float) -> Heartbeats:
    """From the replies of :func:`queue_heartbeat_reads` (an unreadable value counts as never seen)."""
    try:
        beat_at: float | None = float(beat_raw) if beat_raw not in (None, "", b"") else None
    except (TypeError, ValueError):
        beat_at = None
    workers: list[Heartbeat] = []
    for member, score in workers_raw if isinstance(workers_raw, list) else []:
        name = member.decode() if isinstance(member, bytes) else str(member)
        workers.append(_beat(name, float(score), now, limit))
    freshest = workers[0].age if workers else None
    worker = Heartbeat("worker", freshest, freshest is None or freshest > limit)
    return Heartbeats(_beat("beat", beat_at, now, limit), worker, tuple(workers), limit)


def _required() -> list[str] | str:
    """The heartbeats ``?require=`` names, or the message for a bad value."""
    raw = request.args.get("require", "")
    names = [n.strip() for n in raw.split(",") if n.strip()]
    bad = [n for n in names if n not in HEARTBEAT_NAMES]
    if bad:
        return f"require: unknown heartbeat {', '.join(bad)} (known: {', '.join(HEARTBEAT_NAMES)})"
    return names


@health.get("/healthz")
def healthz() -> Response:
    """The process is up and serving requests."""
    return jsonify({"status": "ok"})


@health.get("/readyz")
def readyz() -> Response:
    """Ready when Redis answers and accepts writes, and a ``CELERY_BROKER_URL`` of its own accepts a connection;
    503 (with Retry-After) when Redis is unreachable or full, or that broker is unreachable (the reason names it by
    scheme, host, port and vhost, never with its credentials: webhooks and orders would still be stored, but no
    task could be published to work on them).

    The body also says how Redis memory stands, how long the oldest stored webhook has waited for a drain
    (``inbox.oldest_age_seconds``: it grows while no worker drains, stopped or paused on a full Redis), and the
    worker and beat heartbeats' ages. Neither stops this process from taking webhooks, so neither makes it
    unready, unless ``?require=worker,beat`` names the heartbeats that must be fresh (then 503 when one is stale
    or was never written).
    """
    ctx = current_context()
    required = _required()
    if isinstance(required, str):
        return error_response(400, "invalid_request", required)
    try:
        pipe = ctx.redis.pipeline(transaction=False)
        pipe.ping()
        pipe.info("memory")
        pipe.xrange(ctx.keys.inbox, count=1)
        pipe.xlen(ctx.keys.inbox)
        queue_heartbeat_reads(pipe, ctx.keys)
        pong, memory, oldest, pending, beat_raw, workers_raw = pipe.execute(raise_on_error=False)
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
    beats = read_heartbeats(beat_raw, workers_raw, now=time.time(), limit=stale_after(ctx.settings))
    body["heartbeats"] = beats.public()
    broker = None
    if ctx.broker is not None:
        broker = ctx.broker.status()
        body["broker"] = broker.public(ctx.broker.clock())
    if state is not None and state.full:
        return _unready("redis is out of memory (maxmemory reached): webhooks are refused until it is freed", body)
    if broker is not None and not broker.reachable:
        return _unready(f"broker unreachable: {broker.where} ({broker.error}); tasks cannot be published", body)
    stale = [name for name in required if beats.named(name).stale]
    if stale:
        return _unready(f"stale heartbeat: {', '.join(stale)} (none within {beats.stale_after:g} s)", body)
    return jsonify({"status": "ready", **body})


def _unready(reason: str, body: dict[str, object]) -> Response:
    response = unavailable(reason)
    response.set_data(json.dumps({**json.loads(response.get_data()), **body}))
    return response


@health.get("/metrics")
def metrics() -> Response:
    """Prometheus text format; queue gauges and worker task counters are read from Redis now, in one round trip
    (omitted, redis_up 0, when it is down)."""
    body, content_type = render(current_context())
    return Response(body, status=200, content_type=content_type)
