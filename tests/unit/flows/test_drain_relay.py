"""Drain task flow (webhook inbox -> transitions, auto-finish) and the outbox relay to DOWNSTREAM_TASK."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from lifecycle.outbox import events as ev
from lifecycle.activation.machine import State
from lifecycle.activation.record import OrderRequest
from flows import activation, inbox as inbox_flow, relay, sweep as sweeping
from flows.names import TaskName
from flows.runtime import Runtime

from .conftest import stream_events
from .fakes import FakeProvider


def payload(aid: str, code: str = "5555") -> dict[str, Any]:
    return {"activationId": aid, "service": "tg", "text": f"code {code}", "code": code, "country": 0,
            "receivedAt": "2024-01-01 00:00:00"}


def test_drain_webhook_then_poll_gives_one_code_event(rt: Runtime, provider: FakeProvider, clock: Any) -> None:
    rt.orders.submit(OrderRequest("tg", order_id="o1"))
    activation.place_order(rt, "o1")
    aid = rt.activations.get("o1").activation_id  # type: ignore[union-attr]
    provider.deliver(aid, "5555")
    for i in range(8):                       # eight provider retries that got past the fingerprint dedupe
        rt.inbox.append("activation", payload(aid), f"fp{i}")
    rt.inbox.append("activation", payload("404"), "unknown")
    report = inbox_flow.drain_inbox(rt)
    assert len(report.processed) == 9 and report.coded == ["o1"] and report.unknown == 1
    assert rt.inbox.pending_count() == 0 and rt.inbox.unknown_count() == 1
    clock.advance(10_000)
    sweeping.sweep(rt)                          # the poll sees the same code: no second event
    assert [e["type"] for e in stream_events(rt.redis, rt.settings)].count(ev.CODE_RECEIVED) == 1


def test_drain_hands_auto_finish_to_one_task_per_batch(rt: Runtime, provider: FakeProvider, published: Any) -> None:
    rt = Runtime(settings=replace(rt.settings, auto_finish=True), redis=rt.redis, provider=provider,
                 publish=rt.publish, clock=rt.clock, consumer_name="test")
    aids = {}
    for oid in ("o1", "o2", "o3"):
        rt.orders.submit(OrderRequest("tg", order_id=oid))
        activation.place_order(rt, oid)
        aids[oid] = rt.activations.get(oid).activation_id  # type: ignore[union-attr]
        provider.deliver(aids[oid], "1")
        rt.inbox.append("activation", payload(aids[oid], "1"), f"fp-{oid}")
    inbox_flow.drain_inbox(rt)
    # the drain does not wait on the provider: no setStatus yet, one finish task for the whole batch
    assert provider.count("finish_activation") == 0
    finish_calls = [kw for name, kw in published if name == TaskName.FINISH_CODED]
    assert finish_calls == [{"order_ids": ["o1", "o2", "o3"]}]
    outcomes = activation.finish_coded(rt, finish_calls[0]["order_ids"])
    assert outcomes == {"finished": 3}
    assert all(rt.activations.get(o).state is State.FINISHED for o in aids)  # type: ignore[union-attr]
    assert provider.count("finish_activation") == 3
    # a re-delivered task finishes nothing twice
    assert activation.finish_coded(rt, ["o1", "o2", "o3"]) == {"dropped": 3}
    assert provider.count("finish_activation") == 3


def test_drain_without_auto_finish_publishes_no_finish(rt: Runtime, provider: FakeProvider, published: Any) -> None:
    rt.orders.submit(OrderRequest("tg", order_id="o1"))
    activation.place_order(rt, "o1")
    aid = rt.activations.get("o1").activation_id  # type: ignore[union-attr]
    rt.inbox.append("activation", payload(aid, "1"), "fp")
    inbox_flow.drain_inbox(rt)
    assert TaskName.FINISH_CODED not in published.names()
    assert rt.activations.get("o1").state is State.CODE_RECEIVED  # type: ignore[union-attr]


def test_sweep_publishes_drain_when_inbox_not_empty(rt: Runtime, published: Any) -> None:
    rt.inbox.append("activation", payload("1"), "fp")
    sweeping.sweep(rt)
    assert "otpflow.drain_inbox" in published.names()


def test_relay_sends_each_event_to_downstream_task(rt: Runtime, published: Any) -> None:
    rt = Runtime(settings=replace(rt.settings, downstream_task="consumer.handle", downstream_queue="down"),
                 redis=rt.redis, provider=rt.provider, publish=rt.publish, clock=rt.clock, consumer_name="test")
    rt.orders.submit(OrderRequest("tg", order_id="o1"))
    activation.place_order(rt, "o1")
    relay.kick_relay(rt)
    assert published.names() == ["otpflow.relay_events"]
    assert relay.relay_events(rt) == 1
    name, kwargs = published[-1]
    assert name == "consumer.handle" and kwargs["type"] == ev.NUMBER_ASSIGNED and kwargs["order_id"] == "o1"
    assert relay.relay_events(rt) == 0


def test_a_drain_that_is_behind_asks_for_one_helper_which_leaves_the_flag_alone(
        rt: Runtime, provider: FakeProvider, published: Any) -> None:
    rt = Runtime(settings=replace(rt.settings, drain_linger=0.05), redis=rt.redis, provider=provider,
                 publish=rt.publish, clock=rt.clock, consumer_name="holder")
    for i in range(250):
        rt.inbox.append("activation", payload(f"9{i:04d}", "1"), f"fp-{i}")
    report = inbox_flow.drain_inbox(rt, batch=100)
    assert len(report.processed) == 250
    helpers = [kw for name, kw in published if name == TaskName.DRAIN_INBOX and kw.get("helper")]
    assert helpers == [{"helper": True}]  # full batches seen, but at most one helper a second
    assert rt.redis.get(rt.inbox.drain_flag_key) is None  # the holder let the flag go
    rt.inbox.hold_drain()
    for i in range(3):
        rt.inbox.append("activation", payload(f"8{i:04d}", "1"), f"fq-{i}")
    helper = Runtime(settings=rt.settings, redis=rt.redis, provider=provider, publish=rt.publish, clock=rt.clock,
                     consumer_name="helper")
    assert len(inbox_flow.drain_inbox(helper, helper=True).processed) == 3
    assert rt.redis.get(rt.inbox.drain_flag_key) == "draining"  # a helper never touches the flag
