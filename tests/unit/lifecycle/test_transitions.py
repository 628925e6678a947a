"""Every transition writes its event once, atomically; stale/backward moves are rejected."""
from __future__ import annotations

from typing import Any

import pytest

from config.settings import Settings
from lifecycle.outbox import events as ev
from lifecycle.activation import OrderService
from lifecycle.activation.machine import COMMANDS, State, TRANSITIONS, allowed
from lifecycle.activation.record import OrderRequest
from lifecycle.activation import ActivationStore

from .conftest import FakeClock, make_orders, stream_events

AID = "12345678901"  # > 2**31: ids stay strings


@pytest.fixture
def svc(fake_redis: Any, settings: Settings, clock: FakeClock) -> OrderService:
    return make_orders(fake_redis, settings, clock=clock)


@pytest.fixture
def tr(svc: OrderService) -> ActivationStore:
    return svc.store


def waiting_order(svc: OrderService, order_id: str = "o1") -> None:
    svc.submit(OrderRequest("tg", country=0, order_id=order_id))
    assert svc.store.start_buying(order_id).ok
    assert svc.store.assign_number(order_id, provider="sms-activate", activation_id=AID, phone="79990001122",
                                   cost="0.5").ok


def test_happy_path_events_and_history(svc: OrderService, tr: ActivationStore, fake_redis: Any,
                                       settings: Settings) -> None:
    waiting_order(svc)
    assert tr.receive_code("o1", code="4321", via="webhook", text="code 4321", activation_id=AID).ok
    assert tr.finish("o1", activation_id=AID).ok
    events = stream_events(fake_redis, settings)
    assert [e["type"] for e in events] == [ev.NUMBER_ASSIGNED, ev.CODE_RECEIVED, ev.ACTIVATION_FINISHED,
                                           ev.ORDER_COMPLETED]
    for e in events[:-1]:
        assert e["order_id"] == "o1" and e["activation_id"] == AID and e["service"] == "tg" and e["country"] == 0
        assert e["at"].endswith("Z") and len(e["event_id"]) == 32
    assert events[0]["phone"] == "79990001122"
    assert events[1]["code"] == "4321" and events[1]["via"] == "webhook" and events[1]["text"] == "code 4321"
    order = svc.get("o1")
    assert order is not None and order.state is State.FINISHED
    assert [h.label for h in order.history] == ["pending", "buying", "waiting", "code_received:webhook", "finished"]
    assert fake_redis.zscore(settings.key("deadlines"), "o1") is None
    assert 0 < fake_redis.ttl(settings.key("order", "o1")) <= settings.order_retention_seconds
    assert 0 < fake_redis.ttl(settings.key("aid", "sms-activate", AID)) <= settings.order_retention_seconds


def test_event_ids_are_deterministic() -> None:
    a = ev.make_event(ev.CODE_RECEIVED, "o1", 1.0, discriminator="1234", code="1234")
    b = ev.make_event(ev.CODE_RECEIVED, "o1", 99.0, discriminator="1234", code="1234")
    c = ev.make_event(ev.CODE_RECEIVED, "o1", 1.0, discriminator="9999", code="9999")
    assert a.data["event_id"] == b.data["event_id"] != c.data["event_id"]


def test_same_code_by_webhook_and_poll_and_eight_retries_gives_one_event(
        svc: OrderService, tr: ActivationStore, fake_redis: Any, settings: Settings) -> None:
    waiting_order(svc)
    results = [tr.receive_code("o1", code="1111", via="webhook", activation_id=AID) for _ in range(8)]
    results.append(tr.receive_code("o1", code="1111", via="poll", activation_id=AID))
    assert [r.status for r in results] == ["ok"] + ["dup"] * 8
    assert [e["type"] for e in stream_events(fake_redis, settings)].count(ev.CODE_RECEIVED) == 1


def test_retry_then_second_code_gives_second_event(svc: OrderService, tr: ActivationStore, fake_redis: Any,
                                                   settings: Settings) -> None:
    waiting_order(svc)
    tr.receive_code("o1", code="1111", via="webhook", activation_id=AID)
    assert tr.retry_requested("o1").state is State.WAITING_RETRY
    assert tr.receive_code("o1", code="1111", via="poll", activation_id=AID).status == "dup"
    assert tr.receive_code("o1", code="2222", via="webhook", activation_id=AID).ok
    codes = [e["code"] for e in stream_events(fake_redis, settings) if e["type"] == ev.CODE_RECEIVED]
    assert codes == ["1111", "2222"]
    assert svc.get("o1").codes == ("1111", "2222")  # type: ignore[union-attr]


def test_late_webhook_after_finish_never_moves_back(svc: OrderService, tr: ActivationStore, fake_redis: Any,
                                                    settings: Settings) -> None:
    waiting_order(svc)
    tr.receive_code("o1", code="1111", via="webhook", activation_id=AID)
    tr.finish("o1", activation_id=AID)
    before = len(stream_events(fake_redis, settings))
    res = tr.receive_code("o1", code="7777", via="webhook", activation_id=AID)
    assert res.status == "stale" and res.state is State.FINISHED
    assert tr.cancel("o1", activation_id=AID, reason="timeout").status == "stale"
    assert tr.assign_number("o1", provider="sms-activate", activation_id="1", phone="2").status == "stale"
    assert len(stream_events(fake_redis, settings)) == before


def test_rerun_transition_gives_no_second_event(svc: OrderService, tr: ActivationStore, fake_redis: Any,
                                                settings: Settings) -> None:
    waiting_order(svc)
    again = tr.assign_number("o1", provider="sms-activate", activation_id=AID, phone="79990001122")
    assert again.status == "stale" and again.state is State.WAITING
    tr.receive_code("o1", code="5", via="poll", activation_id=AID)
    assert tr.finish("o1", activation_id=AID).ok
    assert tr.finish("o1", activation_id=AID).status == "stale"
    types = [e["type"] for e in stream_events(fake_redis, settings)]
    assert types.count(ev.NUMBER_ASSIGNED) == 1 and types.count(ev.ACTIVATION_FINISHED) == 1


def test_cancel_and_fail_events(svc: OrderService, tr: ActivationStore, fake_redis: Any, settings: Settings) -> None:
    waiting_order(svc)
    assert tr.cancel("o1", activation_id=AID, reason="timeout").ok
    svc.submit(OrderRequest("tg", order_id="o2"))
    tr.start_buying("o2")
    assert tr.fail("o2", reason="no_balance").ok
    events = stream_events(fake_redis, settings)
    assert events[-3]["type"] == ev.ACTIVATION_CANCELLED and events[-3]["reason"] == "timeout"
    assert events[-2]["type"] == ev.ORDER_CANCELLED and events[-2]["order_id"] == "o1"   # the order's own end
    assert events[-1]["type"] == ev.ORDER_FAILED and events[-1]["reason"] == "no_balance"
    assert "activation_id" not in events[-1]


def test_failed_only_from_pre_number_states(svc: OrderService, tr: ActivationStore) -> None:
    waiting_order(svc)
    assert tr.fail("o1", reason="x").status == "stale"


def test_missing_order(tr: ActivationStore) -> None:
    assert tr.receive_code("nope", code="1", via="poll").status == "missing"


def test_retry_purchase_later_counts_attempts(svc: OrderService, tr: ActivationStore, fake_redis: Any,
                                              settings: Settings, clock: FakeClock) -> None:
    svc.submit(OrderRequest("tg", order_id="o1"))
    tr.start_buying("o1")
    assert tr.retry_purchase_later("o1", reason="no_numbers", delay=30).state is State.PENDING
    order = svc.get("o1")
    assert order is not None and order.attempts == 1 and order.reason == "no_numbers"
    assert fake_redis.zscore(settings.key("deadlines"), "o1") == pytest.approx(clock.now + 30, abs=0.01)


def test_commands_allowed_by_state(svc: OrderService, tr: ActivationStore) -> None:
    waiting_order(svc)
    assert tr.request_command("o1", "finish").status == "stale"
    assert tr.request_command("o1", "cancel").ok
    assert svc.get("o1").command == "cancel"  # type: ignore[union-attr]


def test_state_table_is_consistent() -> None:
    for target, srcs in TRANSITIONS.items():
        for s in srcs:
            assert allowed(s, target)
            assert not s.terminal
    assert not allowed(State.FINISHED, State.CODE_RECEIVED)
    assert not allowed(State.CODE_RECEIVED, State.WAITING)
    assert COMMANDS["retry"] == {State.CODE_RECEIVED}


def test_events_stream_is_trimmed(fake_redis: Any, clock: FakeClock) -> None:
    settings = Settings(events_maxlen=10)
    svc = make_orders(fake_redis, settings, clock=clock)
    for i in range(60):
        svc.submit(OrderRequest("tg", order_id=f"o{i}"))
        svc.store.start_buying(f"o{i}")
        svc.store.fail(f"o{i}", reason="x")
    assert fake_redis.xlen(settings.events_stream) < 60
