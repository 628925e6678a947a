"""Outbox relay: at-least-once, acked after publishing."""
from __future__ import annotations

from typing import Any

import pytest

from config import domain
from config.settings import Settings
from lifecycle.outbox.events import Event
from lifecycle.activation import OrderService
from lifecycle.outbox.relay import OutboxRelay
from lifecycle.activation.record import OrderRequest

from .conftest import FakeClock, make_orders


def make_events(fake_redis: Any, settings: Settings, clock: FakeClock, n: int) -> None:
    svc = make_orders(fake_redis, settings, clock=clock)
    for i in range(n):
        svc.submit(OrderRequest("tg", order_id=f"o{i}"))
        svc.store.start_buying(f"o{i}")
        svc.store.fail(f"o{i}", reason="no_balance")


def test_relay_publishes_then_acks(fake_redis: Any, settings: Settings, clock: FakeClock) -> None:
    make_events(fake_redis, settings, clock, 3)
    got: list[Event] = []
    relay = OutboxRelay(fake_redis, domain.keys(settings), got.append, consumer="r1")
    assert relay.run_once() == 3 and relay.run_once() == 0
    assert [e.type for e in got] == ["order.failed"] * 3 and got[0].as_kwargs()["order_id"] == "o0"
    assert relay.lag() == 0
    assert fake_redis.xlen(settings.events_stream) == 3   # never deletes: other groups read the same stream


def test_publish_failure_leaves_entries_pending(fake_redis: Any, settings: Settings, clock: FakeClock) -> None:
    make_events(fake_redis, settings, clock, 2)
    calls: list[str] = []

    def flaky(event: Event) -> None:
        calls.append(event.event_id)
        if len(calls) == 2:
            raise ConnectionError("broker down")

    relay = OutboxRelay(fake_redis, domain.keys(settings), flaky, consumer="r1")
    with pytest.raises(ConnectionError):
        relay.run_once()
    assert relay.lag() == 1                               # first acked, second still pending
    got: list[Event] = []
    assert OutboxRelay(fake_redis, domain.keys(settings), got.append, consumer="r1").run_once() == 1
    assert got[0].event_id == calls[1]                    # re-published (consumers dedupe by event_id)
