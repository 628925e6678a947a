"""Purchase flow: getNumberV2 with a stable orderId, policy on errors, ORDER_ALREADY_EXISTS recovery."""
from __future__ import annotations

from typing import Any

import pytest

from lifecycle.outbox import events as ev
from lifecycle.activation.machine import State
from lifecycle.activation.record import OrderRequest
from provider import errors as perr
from flows import activation, inbox as inbox_flow, relay, sweep as sweeping
from flows.runtime import Runtime

from .conftest import stream_events
from .fakes import FakeProvider


def submit(rt: Runtime, order_id: str = "o1", **kw: Any) -> None:
    rt.orders.submit(OrderRequest("tg", country=0, order_id=order_id, **kw))


def test_buys_with_stable_order_id(rt: Runtime, provider: FakeProvider) -> None:
    submit(rt)
    assert activation.place_order(rt, "o1") == "waiting"
    assert provider.calls[0] == ("get_number_v2", ("tg", 0, "o1-1"))
    order = rt.activations.get("o1")
    assert order is not None and order.state is State.WAITING and order.activation_id in provider.activations
    assert rt.activations.order_for_activation("sms-activate", order.activation_id) == "o1"
    assert [e["type"] for e in stream_events(rt.redis, rt.settings)] == [ev.NUMBER_ASSIGNED]


def test_redelivery_after_success_does_not_buy_again(rt: Runtime, provider: FakeProvider) -> None:
    submit(rt)
    activation.place_order(rt, "o1")
    assert activation.place_order(rt, "o1") == "stale"     # already bought: nothing to do
    assert rt.activations.get("o1").state is State.WAITING  # type: ignore[union-attr]
    assert provider.count("get_number_v2") == 1


def test_redelivery_while_buying_recovers_by_order_id(rt: Runtime, provider: FakeProvider) -> None:
    """The worker died after the provider sold the number but before we stored it."""
    submit(rt)
    rt.activations.start_buying("o1")
    act = provider.add("tg", 0, order_id="o1-1")          # the purchase that happened before the crash
    assert activation.place_order(rt, "o1") == "waiting"
    assert provider.calls[0] == ("get_number_v2", ("tg", 0, "o1-1"))  # the SAME orderId
    assert rt.activations.get("o1").activation_id == act.activation_id      # type: ignore[union-attr]
    assert len(provider.activations) == 1
    assert [e["type"] for e in stream_events(rt.redis, rt.settings)] == [ev.NUMBER_ASSIGNED]


def test_a_purchase_recovered_late_waits_no_longer_than_the_number_lives(rt: Runtime, provider: FakeProvider,
                                                                        clock: Any) -> None:
    """The listing states no end: a number found long after the crash is dated from when its purchase was sent,
    so waiting for its code ends when it would have had the worker not died, not a crash's length later."""
    submit(rt)
    rt.activations.start_buying("o1")
    sent = clock.now
    provider.add("tg", 0, order_id="o1-1")
    clock.advance(600)                                       # found ten minutes later
    assert activation.place_order(rt, "o1") == "waiting"
    order = rt.activations.get("o1")
    assert order is not None and order.number_at == pytest.approx(sent, abs=0.01)
    wait = rt.activation_config.activation_timeout
    assert rt.activation_config.timeout_at(order) == pytest.approx(sent + wait, abs=0.01)


def test_a_recovered_purchase_keeps_the_cost_and_currency_the_listing_states(rt: Runtime,
                                                                             provider: FakeProvider) -> None:
    submit(rt)
    rt.activations.start_buying("o1")
    provider.add("tg", 0, order_id="o1-1")
    provider.listing_currency = 643                           # RUB, not the dialect's default (USD)
    assert activation.place_order(rt, "o1") == "waiting"
    [assigned] = stream_events(rt.redis, rt.settings)
    assert (assigned["cost"], assigned["currency"]) == ("0.5", 643)
    assert rt.activations.get("o1").currency == 643            # type: ignore[union-attr]


def test_recovery_without_order_id_in_listing_uses_unique_unclaimed_match(rt: Runtime, clock: Any) -> None:
    provider = FakeProvider(clock, report_order_id=False)
    rt.provider = provider
    submit(rt, "o1")
    submit(rt, "o2")
    activation.place_order(rt, "o1")                           # claimed locally: not a candidate
    rt.activations.start_buying("o2")
    act = provider.add("tg", 0, order_id="o2-1")
    assert activation.place_order(rt, "o2") == "waiting"
    assert rt.activations.get("o2").activation_id == act.activation_id  # type: ignore[union-attr]


def test_recovery_ambiguous_fails_unrecoverable(rt: Runtime, clock: Any) -> None:
    provider = FakeProvider(clock, report_order_id=False)
    rt.provider = provider
    submit(rt)
    rt.activations.start_buying("o1")
    provider.add("tg", 0, order_id="o1-1")
    provider.add("tg", 0, order_id="someone-else")
    assert activation.place_order(rt, "o1") == "failed"
    events = stream_events(rt.redis, rt.settings)
    assert events[-1]["type"] == ev.ORDER_FAILED and events[-1]["reason"] == "order_unrecoverable"


def test_an_activation_the_list_shows_late_is_still_recovered(rt: Runtime, provider: FakeProvider,
                                                               clock: Any) -> None:
    """ORDER_ALREADY_EXISTS while getActiveActivations does not list the purchase yet: look again, do not fail."""
    submit(rt)
    provider.fail["get_number_v2"] = [perr.OrderAlreadyExists()]
    assert activation.place_order(rt, "o1") == "backoff"
    order = rt.activations.get("o1")
    assert order is not None and order.state is State.BUYING and order.reason == "not_listed_yet"
    act = provider.add("tg", 0, order_id="o1-1")               # the list shows it now
    clock.advance(rt.deadlines.score("o1") - clock.now)
    assert activation.place_order(rt, "o1") == "waiting"
    assert rt.activations.get("o1").activation_id == act.activation_id  # type: ignore[union-attr]
    assert len(provider.activations) == 1
    assert [e["type"] for e in stream_events(rt.redis, rt.settings)] == [ev.NUMBER_ASSIGNED]


def test_recovery_none_found_fails_once_the_list_had_time(rt: Runtime, provider: FakeProvider, clock: Any) -> None:
    submit(rt)
    provider.fail["get_number_v2"] = [perr.OrderAlreadyExists()] * 20
    looks = 0
    while activation.place_order(rt, "o1") == "backoff":
        looks += 1
        clock.advance(rt.deadlines.score("o1") - clock.now)
    order = rt.activations.get("o1")
    assert order is not None and order.reason == "order_unrecoverable" and order.state is State.FAILED
    assert 1 <= looks < rt.activation_config.max_transient_fails - 1   # the window ended it, not the fails bound
    assert clock.now - order.purchase_began >= rt.activation_config.list_lag
    assert provider.activations == {}                        # nothing was bought meanwhile


def test_recovery_without_a_listing_fails_at_once(rt: Runtime, provider: FakeProvider) -> None:
    """A provider that cannot list activations: waiting would show nothing more."""
    submit(rt)
    provider.listing = False
    provider.fail["get_number_v2"] = [perr.OrderAlreadyExists()]
    assert activation.place_order(rt, "o1") == "failed"
    assert rt.activations.get("o1").reason == "order_unrecoverable"  # type: ignore[union-attr]


def test_no_numbers_retries_then_fails(rt: Runtime, provider: FakeProvider, clock: Any, published: Any) -> None:
    submit(rt)
    provider.fail["get_number_v2"] = [perr.NoNumbers(), perr.NoNumbers(), perr.NoNumbers()]
    assert activation.place_order(rt, "o1") == "retry_later"
    order = rt.activations.get("o1")
    assert order.state is State.PENDING and order.attempts == 1  # type: ignore[union-attr]
    assert rt.deadlines.score("o1") == pytest.approx(clock.now + 30, abs=0.01)
    clock.advance(31)
    sweeping.sweep(rt)                                      # the sweeper re-publishes the purchase
    assert published.names() == ["otpflow.place_order"]
    assert activation.place_order(rt, "o1") == "retry_later"
    assert provider.calls[1][1][2] == "o1-2"             # a new attempt gets a new orderId
    assert activation.place_order(rt, "o1") == "failed"
    assert stream_events(rt.redis, rt.settings)[-1]["reason"] == "no_numbers"


@pytest.mark.parametrize("exc,reason", [
    (perr.NoBalance(), "no_balance"),
    (perr.WrongMaxPrice(argument="0.81"), "wrong_max_price:0.81"),
    (perr.Banned(argument="2030-1-1 0-0-0"), "banned"),
    (perr.BadKey(), "bad_key"),
    (perr.BadService(), "bad_service"),
])
def test_final_errors_fail_with_reason(rt: Runtime, provider: FakeProvider, exc: Exception, reason: str) -> None:
    submit(rt)
    provider.fail["get_number_v2"] = [exc]
    assert activation.place_order(rt, "o1") == "failed"
    event = stream_events(rt.redis, rt.settings)[-1]
    assert event["type"] == ev.ORDER_FAILED and event["reason"] == reason and event["order_id"] == "o1"


def test_transient_keeps_buying_with_backoff_same_order_id(rt: Runtime, provider: FakeProvider, clock: Any,
                                                           published: Any) -> None:
    submit(rt)
    provider.fail["get_number_v2"] = [perr.ReadTimeout(possibly_processed=True)]
    assert activation.place_order(rt, "o1") == "backoff"
    order = rt.activations.get("o1")
    assert order.state is State.BUYING and order.fails == 1  # type: ignore[union-attr]
    due = rt.deadlines.score("o1")
    assert due is not None and clock.now < due <= clock.now + 5
    clock.advance(6)
    sweeping.sweep(rt)
    assert published.names() == ["otpflow.place_order"]
    assert activation.place_order(rt, "o1") == "waiting"
    assert [c[1][2] for c in provider.calls] == ["o1-1", "o1-1"]


def test_cancel_command_before_purchase(rt: Runtime, provider: FakeProvider) -> None:
    submit(rt)
    rt.orders.cancel("o1")
    assert activation.place_order(rt, "o1") == "cancelled"
    assert provider.count("get_number_v2") == 0
    assert [e["type"] for e in stream_events(rt.redis, rt.settings)][-2:] == [ev.ACTIVATION_CANCELLED,
                                                                              ev.ORDER_CANCELLED]
