"""Worker and beat heartbeats: written by the task base and the sweep, reported by /readyz (and the dashboard)."""
from __future__ import annotations

import socket
import time

import fakeredis
import pytest

from config.settings import Settings
from webhook.health import read_heartbeats, stale_after

from .conftest import Harness


def test_readyz_reports_missing_heartbeats_without_failing(harness: Harness) -> None:
    rv = harness.client.get("/readyz")
    assert rv.status_code == 200
    beats = rv.get_json()["heartbeats"]
    assert beats["beat"] == {"age_seconds": None, "stale": True}
    assert beats["worker"] == {"age_seconds": None, "stale": True}
    assert beats["workers"] == {} and beats["stale_after_seconds"] == 60.0


def test_readyz_reports_ages_and_require_fails_on_a_stale_one(harness: Harness) -> None:
    keys = harness.ctx.keys
    now = time.time()
    harness.redis.set(keys.beat_heartbeat, f"{now - 2:.3f}")
    harness.redis.zadd(keys.worker_heartbeats, {"worker@a": now - 1, "worker@b": now - 500})
    body = harness.client.get("/readyz").get_json()
    beats = body["heartbeats"]
    assert body["status"] == "ready"
    assert 1.5 <= beats["beat"]["age_seconds"] <= 10 and beats["beat"]["stale"] is False
    assert beats["worker"]["stale"] is False and beats["worker"]["age_seconds"] < 10
    assert list(beats["workers"]) == ["worker@a", "worker@b"] and beats["workers"]["worker@b"]["stale"] is True

    assert harness.client.get("/readyz?require=worker,beat").status_code == 200
    harness.redis.set(keys.beat_heartbeat, f"{now - 600:.3f}")
    rv = harness.client.get("/readyz?require=beat")
    assert rv.status_code == 503 and rv.headers["Retry-After"]
    assert "stale heartbeat: beat" in rv.get_json()["reason"] and rv.get_json()["heartbeats"]["beat"]["stale"]
    assert harness.client.get("/readyz?require=worker").status_code == 200


def test_readyz_require_names_only_known_heartbeats(harness: Harness) -> None:
    rv = harness.client.get("/readyz?require=flower")
    assert rv.status_code == 400 and "unknown heartbeat flower" in rv.get_json()["reason"]


def test_stale_after_follows_the_sweep_interval() -> None:
    assert stale_after(Settings()) == 60.0
    assert stale_after(Settings(sweep_interval=30.0)) == 300.0


def test_unreadable_heartbeats_count_as_never_seen() -> None:
    beats = read_heartbeats("garbage", ValueError("boom"), now=100.0, limit=60.0)
    assert beats.beat.age is None and beats.beat.stale and beats.worker.stale and beats.workers == ()


@pytest.fixture
def runtime_redis(monkeypatch: pytest.MonkeyPatch) -> fakeredis.FakeRedis:
    """The task base writes through the worker's runtime: give it one on fakeredis."""
    from tasks import base

    client = fakeredis.FakeRedis(decode_responses=True)

    class Runtime:
        redis = client
        keys = __import__("config.domain", fromlist=["keys"]).keys(Settings())

    monkeypatch.setattr(base, "get_runtime", lambda: Runtime())
    monkeypatch.setattr(base, "_last_heartbeat", 0.0)
    return client


def test_the_task_base_writes_a_throttled_worker_heartbeat(runtime_redis: fakeredis.FakeRedis) -> None:
    from tasks import base

    base.write_heartbeat("worker@here")
    first = runtime_redis.zscore("otpflow:heartbeat:workers", "worker@here")
    assert first is not None and abs(first - time.time()) < 5
    runtime_redis.zadd("otpflow:heartbeat:workers", {"worker@here": 1.0, "worker@gone": time.time() - 2 * 86400})
    base.write_heartbeat("worker@here")  # within HEARTBEAT_EVERY: nothing written
    assert runtime_redis.zscore("otpflow:heartbeat:workers", "worker@here") == 1.0
    base._last_heartbeat = 0.0
    base.write_heartbeat(None)  # no node name (an eager call): the host name
    # nodes not heard of for a day are forgotten (worker@here's score was set to 1970 above)
    assert runtime_redis.zrange("otpflow:heartbeat:workers", 0, -1) == [socket.gethostname()]


def test_the_sweep_writes_the_beat_heartbeat() -> None:
    from flows import sweep
    from flows.runtime import Runtime

    client = fakeredis.FakeRedis(decode_responses=True)
    rt = Runtime(settings=Settings(provider_api_key="k"), redis=client, provider={}, publish=lambda *a: None,
                 clock=lambda: 1234.5)
    sweep.sweep(rt)
    assert client.get("otpflow:heartbeat:beat") == "1234.500" and client.get("otpflow:sweep:runs") == "1"
