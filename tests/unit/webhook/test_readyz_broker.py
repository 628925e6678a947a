"""/readyz and a CELERY_BROKER_URL of its own: 503 naming the broker (never its credentials) when it cannot be
reached; its answer is cached (worker/broker_probe.py)."""
from __future__ import annotations

from typing import Any

from config.settings import Settings
from worker.broker_probe import BrokerCheck, BrokerStatus

from .conftest import MakeHarness

SECRET = "s3cret-broker-password"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _check(reachable: bool, clock: Clock, calls: list[str]) -> BrokerCheck:
    def prober(settings: Settings, url: str, **_: Any) -> BrokerStatus:
        calls.append(url)
        return BrokerStatus("amqp://mq.example:5672/otp", reachable, "" if reachable else "ConnectionRefusedError")

    return BrokerCheck(Settings(), f"amqp://otp:{SECRET}@mq.example:5672/otp", clock=clock, prober=prober)


def test_no_broker_of_its_own_means_no_broker_check(make_harness: MakeHarness) -> None:
    for url in ("", "redis://127.0.0.1:6379/0"):  # unset, or REDIS_URL itself: the Redis check covers it
        harness = make_harness(celery_broker_url=url)
        assert harness.ctx.broker is None
        rv = harness.client.get("/readyz")
        assert rv.status_code == 200 and "broker" not in rv.get_json()


def test_an_unreachable_broker_makes_the_web_unready_naming_it_without_its_password(
        make_harness: MakeHarness, closed_port: int) -> None:
    harness = make_harness(celery_broker_url=f"amqp://otp:{SECRET}@127.0.0.1:{closed_port}/otp")
    rv = harness.client.get("/readyz")
    assert rv.status_code == 503 and rv.headers["Retry-After"]
    body = rv.get_json()
    assert body["error"] == "unavailable"
    assert body["reason"].startswith(f"broker unreachable: amqp://127.0.0.1:{closed_port}/otp (ConnectionRefused")
    assert body["broker"]["reachable"] is False and body["broker"]["where"] == f"amqp://127.0.0.1:{closed_port}/otp"
    assert "inbox" in body and "heartbeats" in body  # the rest of the report is still there
    assert SECRET not in rv.get_data(as_text=True) and "otp:" not in body["reason"]


def test_a_reachable_broker_is_reported_and_the_answer_reused(make_harness: MakeHarness) -> None:
    harness = make_harness(celery_broker_url="amqp://otp:pw@mq.example:5672/otp")
    clock, calls = Clock(), []
    harness.ctx.broker = _check(True, clock, calls)
    first = harness.client.get("/readyz")
    assert first.status_code == 200, first.get_json()
    assert first.get_json()["broker"] == {"where": "amqp://mq.example:5672/otp", "reachable": True,
                                          "checked_seconds_ago": 0.0}
    clock.now += 4.0
    again = harness.client.get("/readyz").get_json()
    assert len(calls) == 1 and again["broker"]["checked_seconds_ago"] == 4.0
    clock.now += 1.5  # past CACHE_SECONDS: probed again
    harness.client.get("/readyz")
    assert len(calls) == 2


def test_a_broker_gone_since_the_last_probe_is_seen_once_the_answer_is_stale(make_harness: MakeHarness) -> None:
    harness = make_harness(celery_broker_url="amqp://otp:pw@mq.example:5672/otp")
    clock, calls = Clock(), []
    harness.ctx.broker = _check(True, clock, calls)
    assert harness.client.get("/readyz").status_code == 200
    down = _check(False, clock, calls)
    down._last = harness.ctx.broker._last  # the same cache, now with a broker that refuses
    harness.ctx.broker = down
    assert harness.client.get("/readyz").status_code == 200  # still the cached answer
    clock.now += 5.0
    rv = harness.client.get("/readyz")
    assert rv.status_code == 503 and "broker unreachable: amqp://mq.example:5672/otp" in rv.get_json()["reason"]


def test_redis_down_is_said_before_the_broker(make_harness: MakeHarness, closed_port: int) -> None:
    from config.redis_client import make_redis

    harness = make_harness(redis_client=make_redis(Settings(redis_url=f"redis://127.0.0.1:{closed_port}/0")),
                           celery_broker_url=f"amqp://otp:pw@127.0.0.1:{closed_port}/otp")
    rv = harness.client.get("/readyz")
    assert rv.status_code == 503 and rv.get_json()["reason"].startswith("redis unreachable")
