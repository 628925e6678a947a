"""The lifecycle domain and task flows against a real Redis and the sandbox provider over real HTTP.

Tasks are invoked directly (their flows, with a real ProviderClient); the multi-process pipeline (web + worker +
beat) is the lead's test_pipeline.py. The sandbox has a simulated clock; our runtime clock is a FakeClock we
advance together with it, so timeouts run in milliseconds.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterator

import pytest
import redis
import requests

from config.settings import Settings
from lifecycle.outbox import events as ev
from lifecycle.activation.machine import State
from lifecycle.activation.record import OrderRequest
from flows import activation, inbox as inbox_flow, relay, sweep as sweeping
from flows.runtime import Runtime
from tests.unit.lifecycle.conftest import FakeClock, stream_events

pytestmark = [pytest.mark.redis, pytest.mark.http]

API_KEY = "integration-key-123"


@pytest.fixture
def sandbox() -> Iterator[Any]:
    from sandbox import SandboxConfig, create_app
    from sandbox.server import serve_in_thread

    server = serve_in_thread(create_app(SandboxConfig(api_key=API_KEY, seed=7)))
    try:
        yield server
    finally:
        server.stop()


def control(server: Any, path: str, body: dict[str, Any] | None = None) -> Any:
    r = requests.post(f"{server.url}/control/{path}", json=body or {}, timeout=5)
    r.raise_for_status()
    return r.json()


@pytest.fixture
def rt(real_redis: redis.Redis, sandbox: Any) -> Iterator[Runtime]:
    from provider import ProviderClient

    settings = Settings(auto_finish=True, poll_after=30, poll_interval=15, activation_timeout=60.0,
                        early_cancel_seconds=120.0, provider_api_key=API_KEY, key_prefix="itest",
                        events_stream="itest:events", order_max_numbers=1)  # one number: no replacements
    client = ProviderClient(api_key=API_KEY, base_url=sandbox.handler_url, read_timeout=5, max_retries=0)
    published: list[tuple[str, dict[str, Any]]] = []
    runtime = Runtime(settings=settings, redis=real_redis, provider=client,
                      publish=lambda n, k: published.append((n, dict(k))), clock=FakeClock(1_750_000_000.0),
                      consumer_name="itest")
    yield runtime
    client.close()


def advance(rt: Runtime, sandbox: Any, seconds: float) -> None:
    rt.clock.advance(seconds)  # type: ignore[attr-defined]
    control(sandbox, "clock/advance", {"seconds": seconds})


def types(rt: Runtime) -> list[str]:
    return [e["type"] for e in stream_events(rt.redis, rt.settings)]


def test_order_poll_code_auto_finish(rt: Runtime, sandbox: Any) -> None:
    rt.orders.submit(OrderRequest("tg", country=0, order_id="i1"))
    assert activation.place_order(rt, "i1") == "waiting"
    order = rt.activations.get("i1")
    assert order is not None and order.activation_id and order.phone
    control(sandbox, "sms", {"activation_id": order.activation_id, "code": "482913", "text": "code 482913"})
    advance(rt, sandbox, 31)
    sweeping.sweep(rt)
    assert rt.activations.get("i1").state is State.FINISHED  # type: ignore[union-attr]
    assert types(rt) == [ev.NUMBER_ASSIGNED, ev.CODE_RECEIVED, ev.ACTIVATION_FINISHED, ev.ORDER_COMPLETED]
    code = stream_events(rt.redis, rt.settings)[1]
    assert code["code"] == "482913" and code["via"] == "poll" and code["activation_id"] == order.activation_id
    state = requests.get(f"{sandbox.url}/control/state", timeout=5).json()
    assert API_KEY not in str(stream_events(rt.redis, rt.settings))
    assert state  # the sandbox agrees the activation is closed (STATUS after finish is not WAIT_CODE)
    assert rt.provider.get_status(order.activation_id).state.value != "WAIT_CODE"


def test_webhook_and_poll_same_code_one_event(rt: Runtime, sandbox: Any) -> None:
    rt = Runtime(settings=replace(rt.settings, auto_finish=False), redis=rt.redis, provider=rt.provider,
                 publish=rt.publish, clock=rt.clock, consumer_name="itest")
    rt.orders.submit(OrderRequest("tg", country=0, order_id="i2"))
    activation.place_order(rt, "i2")
    aid = rt.activations.get("i2").activation_id  # type: ignore[union-attr]
    control(sandbox, "sms", {"activation_id": aid, "code": "1111", "text": "code 1111"})
    payload = {"activationId": aid, "service": "tg", "text": "code 1111", "code": "1111", "country": 0,
               "receivedAt": "2025-01-01 00:00:00"}
    for i in range(3):
        rt.inbox.append("activation", payload, f"fp-{i}")
    inbox_flow.drain_inbox(rt)
    advance(rt, sandbox, 31)
    sweeping.sweep(rt)
    assert types(rt).count(ev.CODE_RECEIVED) == 1
    rt.orders.retry("i2")
    assert activation.command(rt, "i2", "retry") == "waiting_retry"
    control(sandbox, "sms", {"activation_id": aid, "code": "2222", "text": "code 2222"})
    advance(rt, sandbox, 31)
    sweeping.sweep(rt)
    codes = [e.get("code") for e in stream_events(rt.redis, rt.settings) if e["type"] == ev.CODE_RECEIVED]
    assert codes == ["1111", "2222"]


def test_timeout_early_cancel_denied_then_cancelled(rt: Runtime, sandbox: Any) -> None:
    rt.orders.submit(OrderRequest("tg", country=0, order_id="i3"))
    activation.place_order(rt, "i3")
    rt.clock.advance(61)  # type: ignore[attr-defined]   # our timeout passed; the provider's 2 minutes did not
    report = sweeping.sweep(rt)
    assert report.actions.get("early_cancel_denied") == 1
    assert rt.activations.get("i3").state is State.WAITING  # type: ignore[union-attr]
    advance(rt, sandbox, 130)
    sweeping.sweep(rt)
    assert rt.activations.get("i3").state is State.CANCELLED  # type: ignore[union-attr]
    assert types(rt)[-2:] == [ev.ACTIVATION_CANCELLED, ev.ORDER_FAILED]   # no code came, no number left


def test_redelivery_while_buying_recovers_same_activation(rt: Runtime, sandbox: Any) -> None:
    from lifecycle.activation.decisions import provider_order_id

    rt.orders.submit(OrderRequest("tg", country=0, order_id="i4"))
    rt.activations.start_buying("i4")
    order = rt.activations.get("i4")
    bought = rt.provider.get_number_v2("tg", country=0, order_id=provider_order_id(order))  # then the worker "dies"
    assert activation.place_order(rt, "i4") == "waiting"
    assert rt.activations.get("i4").activation_id == bought.activation_id  # type: ignore[union-attr]
    acts = requests.get(f"{sandbox.url}/control/state", timeout=5).json()["activations"]
    assert len(acts) == 1


def test_no_numbers_then_fail(rt: Runtime, sandbox: Any) -> None:
    control(sandbox, "settings", {"stock": 0})
    rt = Runtime(settings=replace(rt.settings, order_max_attempts=2), redis=rt.redis, provider=rt.provider,
                 publish=rt.publish, clock=rt.clock, consumer_name="itest")
    rt.orders.submit(OrderRequest("tg", country=0, order_id="i5"))
    assert activation.place_order(rt, "i5") == "retry_later"
    assert activation.place_order(rt, "i5") == "failed"
    assert stream_events(rt.redis, rt.settings)[-1]["reason"] == "no_numbers"


def test_provider_outage_rearms(rt: Runtime, sandbox: Any) -> None:
    for i in range(3):
        rt.orders.submit(OrderRequest("tg", country=0, order_id=f"o{i}"))
        activation.place_order(rt, f"o{i}")
    control(sandbox, "settings", {"fail_mode": "500"})
    rt.clock.advance(31)  # type: ignore[attr-defined]
    report = sweeping.sweep(rt)
    assert report.actions.get("backoff") == 3
    assert all(rt.deadlines.score(f"o{i}") for i in range(3))
    control(sandbox, "settings", {"fail_mode": None})
    rt.clock.advance(10)  # type: ignore[attr-defined]   # past the first backoff step (≤ 5 s), before the timeout
    report = sweeping.sweep(rt)
    assert report.actions.get("poll") == 3 and report.provider_calls == {"getActiveActivations": 1}


def test_a_lingering_drain_reads_what_arrives_while_it_waits_then_lets_the_flag_go(rt: Runtime) -> None:
    """DRAIN_LINGER: a drain that emptied the inbox holds the drain flag and waits; a webhook stored meanwhile
    publishes no drain of its own and is read by the waiting one; once it ends the flag is free again."""
    import threading

    from tests.support.waiting import wait_until

    published: list[tuple[str, dict[str, Any]]] = []
    rt = Runtime(settings=replace(rt.settings, auto_finish=False, drain_linger=3.0), redis=rt.redis,
                 provider=rt.provider, publish=lambda n, k: published.append((n, dict(k))), clock=rt.clock,
                 consumer_name="itest")
    rt.orders.submit(OrderRequest("tg", country=0, order_id="i9"))
    activation.place_order(rt, "i9")
    aid = rt.activations.get("i9").activation_id  # type: ignore[union-attr]
    payload = {"activationId": aid, "service": "tg", "text": "code 4321", "code": "4321", "country": 0,
               "receivedAt": "2025-01-01 00:00:00"}
    reports: list[Any] = []
    drain = threading.Thread(target=lambda: reports.append(inbox_flow.drain_inbox(rt)), daemon=True)
    drain.start()
    flag = rt.inbox.drain_flag_key
    wait_until(lambda: rt.redis.get(flag) == "draining", message="the drain never held the flag to wait")
    stored = rt.inbox.append("activation", payload, "fp-linger")
    assert not stored.schedule_drain  # the waiting drain reads it: no task published for it
    drain.join(30)
    assert not drain.is_alive() and reports
    assert len(reports[0].processed) == 1 and reports[0].coded == ["i9"]
    assert types(rt).count(ev.CODE_RECEIVED) == 1
    assert rt.redis.get(flag) is None  # released on the way out
    assert rt.inbox.append("activation", {**payload, "code": "5555"}, "fp-after").schedule_drain
    assert not [name for name, _ in published if "drain" in name]
