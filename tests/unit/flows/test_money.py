"""Spend limits hold under concurrency: a purchase reserves its price first, settles to what was charged, and a
cancelled number is refunded; past a limit the order moves to a provider with room, or fails budget_exceeded
before any purchase. The accounting follows what the provider reported."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from config.settings import Settings
from flows import activation
from flows import sweep as sweeping
from flows.runtime import Runtime
from lifecycle.activation import OrderRequest, State
from lifecycle.money import Ledger, SpendLimits
from lifecycle.outbox import events as ev

from .conftest import Published, stream_events
from .fakes import FakeProvider

BASE = {"AUTO_FINISH": "false", "ACTIVATION_TIMEOUT": "300", "ORDER_MAX_NUMBERS": "1"}


def runtime(fake_redis: Any, clock: Any, published: Published, env: dict[str, str],
            providers: dict[str, FakeProvider] | FakeProvider) -> Runtime:
    return Runtime(settings=Settings.from_env({**BASE, **env}), redis=fake_redis, provider=providers,
                   publish=published, clock=clock, consumer_name="test")


def test_a_daily_limit_pays_for_four_and_fails_the_rest_before_buying(fake_redis: Any, clock: Any,
                                                                      published: Published) -> None:
    provider = FakeProvider(clock)  # charges 0.5 a number
    rt = runtime(fake_redis, clock, published, {"PROVIDER_API_KEY": "k", "SPEND_LIMIT_DAILY": "2.00",
                                                "MAX_PRICE": "0.50"}, provider)
    outcomes = []
    for i in range(6):
        rt.orders.submit(OrderRequest("tg", order_id=f"o{i}"))
        outcomes.append(activation.place_order(rt, f"o{i}"))
    assert outcomes == ["waiting"] * 4 + ["failed"] * 2
    assert provider.count("get_number_v2") == 4
    failed = [e for e in stream_events(rt.redis, rt.settings) if e["type"] == ev.ORDER_FAILED]
    assert [e["reason"] for e in failed] == ["budget_exceeded", "budget_exceeded"]
    hour, day = rt.ledger.spent("sms-activate", clock())
    assert day == Decimal("2") and rt.ledger.reserved_total("sms-activate") == 0
    (acct,) = rt.ledger.accounts()
    assert (acct["charged"], acct["refunded"], acct["numbers"]) == ("2", "0", 4)


def test_a_cancelled_number_is_refunded_and_frees_room(fake_redis: Any, clock: Any, published: Published) -> None:
    provider = FakeProvider(clock)
    rt = runtime(fake_redis, clock, published, {"PROVIDER_API_KEY": "k", "SPEND_LIMIT_HOURLY": "0.50",
                                                "MAX_PRICE": "0.50"}, provider)
    rt.orders.submit(OrderRequest("tg", order_id="a"))
    assert activation.place_order(rt, "a") == "waiting"
    rt.orders.submit(OrderRequest("tg", order_id="b"))
    assert activation.place_order(rt, "b") == "failed"          # the hour's room is taken
    clock.advance(301)                                           # no code: cancelled, so refunded
    sweeping.sweep(rt)
    assert rt.activations.get("a").state is State.CANCELLED  # type: ignore[union-attr]
    assert rt.ledger.spent("sms-activate", clock())[0] == 0
    (acct,) = rt.ledger.accounts()
    assert (acct["charged"], acct["refunded"], acct["net"]) == ("0.5", "0.5", "0.0")
    rt.orders.submit(OrderRequest("tg", order_id="c"))
    assert activation.place_order(rt, "c") == "waiting"


def test_past_one_providers_limit_the_order_goes_to_another(fake_redis: Any, clock: Any,
                                                           published: Published) -> None:
    alpha, beta = FakeProvider(clock), FakeProvider(clock)
    beta._next = 20_000_005_000
    env = {"PROVIDERS": "alpha,beta", "PROVIDER_ALPHA_DIALECT": "sms-activate", "PROVIDER_ALPHA_API_KEY": "a",
           "PROVIDER_ALPHA_SPEND_LIMIT_DAILY": "1.00", "PROVIDER_BETA_DIALECT": "sms-activate",
           "PROVIDER_BETA_API_KEY": "b", "MAX_PRICE": "0.50"}
    rt = runtime(fake_redis, clock, published, env, {"alpha": alpha, "beta": beta})
    providers = []
    for i in range(4):
        rt.orders.submit(OrderRequest("tg", order_id=f"o{i}"))
        activation.place_order(rt, f"o{i}")
        providers.append(rt.activations.get(f"o{i}").provider)  # type: ignore[union-attr]
    assert providers == ["alpha", "alpha", "beta", "beta"]
    assert alpha.count("get_number_v2") == 2


def test_reservations_hold_under_concurrency_and_expire(fake_redis: Any) -> None:
    from lifecycle.keys import Keys

    ledger = Ledger(fake_redis, Keys())
    limits = SpendLimits(daily=Decimal("1.00"))
    assert ledger.reserve("p", "r1", Decimal("0.40"), limits, now=1000.0, hold_for=60) == ""
    assert ledger.reserve("p", "r1", Decimal("0.40"), limits, now=1001.0, hold_for=60) == ""   # idempotent
    assert ledger.reserve("p", "r2", Decimal("0.40"), limits, now=1002.0, hold_for=120) == ""
    assert ledger.reserve("p", "r3", Decimal("0.40"), limits, now=1003.0, hold_for=60) == "daily"
    # a worker that died holding r1: its reservation expires, the room comes back (r2 still held)
    assert ledger.reserve("p", "r3", Decimal("0.40"), limits, now=1070.0, hold_for=60) == ""
    assert ledger.reserved_total("p") == Decimal("0.8")


@pytest.mark.parametrize("raw", ["-1", "abc", "1e999999", "0.1234567"])
def test_amounts_are_validated_at_start_up(raw: str) -> None:
    from config.settings import ConfigError

    with pytest.raises(ConfigError) as info:
        Settings.from_env({"SPEND_LIMIT_DAILY": raw})
    assert "SPEND_LIMIT_DAILY" in str(info.value)


def test_max_active_holds_orders_in_redis_until_a_number_ends(fake_redis: Any, clock: Any,
                                                              published: Published) -> None:
    provider = FakeProvider(clock)
    rt = runtime(fake_redis, clock, published, {"PROVIDER_API_KEY": "k", "MAX_ACTIVE": "2"}, provider)
    outcomes = []
    for i in range(3):
        rt.orders.submit(OrderRequest("tg", order_id=f"o{i}"))
        outcomes.append(activation.place_order(rt, f"o{i}"))
    assert outcomes == ["waiting", "waiting", "backoff"]
    waiting = rt.activations.get("o2")
    assert waiting.state is State.BUYING and waiting.reason == "providers_full"  # type: ignore[union-attr]
    assert provider.count("get_number_v2") == 2 and rt.capacity.open_count("sms-activate") == 2
    clock.advance(301)                    # o0 and o1 get no code: cancelled, their slots free
    sweeping.sweep(rt)
    assert rt.activations.get("o0").state is State.CANCELLED  # type: ignore[union-attr]
    assert activation.place_order(rt, "o2") == "waiting"
    assert provider.count("get_number_v2") == 3 and rt.capacity.open_count("sms-activate") == 1


def test_a_full_provider_sends_the_order_to_another(fake_redis: Any, clock: Any, published: Published) -> None:
    alpha, beta = FakeProvider(clock), FakeProvider(clock)
    beta._next = 20_000_005_000
    env = {"PROVIDERS": "alpha,beta", "PROVIDER_ALPHA_DIALECT": "sms-activate", "PROVIDER_ALPHA_API_KEY": "a",
           "PROVIDER_ALPHA_MAX_ACTIVE": "1", "PROVIDER_BETA_DIALECT": "sms-activate", "PROVIDER_BETA_API_KEY": "b"}
    rt = runtime(fake_redis, clock, published, env, {"alpha": alpha, "beta": beta})
    for i in range(3):
        rt.orders.submit(OrderRequest("tg", order_id=f"o{i}"))
        assert activation.place_order(rt, f"o{i}") == "waiting"
    providers = [rt.activations.get(f"o{i}").provider for i in range(3)]  # type: ignore[union-attr]
    assert providers == ["alpha", "beta", "beta"]


def test_a_bad_max_active_is_named_at_start_up() -> None:
    from config.settings import ConfigError

    with pytest.raises(ConfigError, match="PROVIDER_ALPHA_MAX_ACTIVE"):
        Settings.from_env({"PROVIDERS": "alpha", "PROVIDER_ALPHA_DIALECT": "sms-activate",
                           "PROVIDER_ALPHA_MAX_ACTIVE": "0"})


def test_an_order_waiting_for_a_slot_fails_at_its_order_timeout(fake_redis: Any, clock: Any,
                                                                 published: Published) -> None:
    provider = FakeProvider(clock)
    rt = runtime(fake_redis, clock, published, {"PROVIDER_API_KEY": "k", "MAX_ACTIVE": "1",
                                                "ACTIVATION_TIMEOUT": "7200", "ORDER_TIMEOUT": "600"}, provider)
    rt.orders.submit(OrderRequest("tg", order_id="a"))
    assert activation.place_order(rt, "a") == "waiting"
    rt.orders.submit(OrderRequest("tg", order_id="b"))
    assert activation.place_order(rt, "b") == "backoff"
    clock.advance(601)
    assert activation.place_order(rt, "b") == "failed"
    assert rt.activations.get("b").reason == "providers_full"  # type: ignore[union-attr]
    assert provider.count("get_number_v2") == 1


def test_a_cancel_too_late_to_be_free_is_not_refunded_in_the_books(fake_redis: Any, clock: Any,
                                                                    published: Published) -> None:
    from provider import errors as perr

    provider = FakeProvider(clock)
    rt = runtime(fake_redis, clock, published, {"PROVIDER_API_KEY": "k", "MAX_PRICE": "0.50"}, provider)
    rt.orders.submit(OrderRequest("tg", order_id="late"))
    assert activation.place_order(rt, "late") == "waiting"
    rt.orders.submit(OrderRequest("tg", order_id="in-time"))
    assert activation.place_order(rt, "in-time") == "waiting"
    provider.fail["cancel_activation"] = [perr.FreeCancellationExpired()]
    clock.advance(301)
    sweeping.sweep(rt)
    orders = {o: rt.activations.get(o) for o in ("late", "in-time")}
    assert {o.state for o in orders.values()} == {State.CANCELLED}  # type: ignore[union-attr]
    refunded = {o: r.refunded for o, r in orders.items()}  # type: ignore[union-attr]
    assert sorted(refunded.values()) == [False, True]
    late = next(o for o, r in refunded.items() if not r)
    cancelled = {e["order_id"]: e for e in stream_events(rt.redis, rt.settings) if e["type"] == ev.ACTIVATION_CANCELLED}
    assert cancelled[late]["refunded"] is False and cancelled[late]["reason"] == "free_cancellation_expired"
    assert rt.activations.get(late).public()["refunded"] is False  # type: ignore[union-attr]
    (acct,) = rt.ledger.accounts()
    assert (acct["charged"], acct["refunded"], acct["net"]) == ("1", "0.5", "0.5")


def test_a_profile_that_reads_max_price_only_with_its_currency_gets_both(fake_redis: Any, clock: Any,
                                                                          published: Published) -> None:
    hub = FakeProvider(clock)
    env = {"PROVIDERS": "hub", "PROVIDER_HUB_DIALECT": "smshub", "PROVIDER_HUB_API_KEY": "h", "MAX_PRICE": "12"}
    rt = runtime(fake_redis, clock, published, env, {"hub": hub})
    rt.orders.submit(OrderRequest("tg", order_id="h1"))
    assert activation.place_order(rt, "h1") == "waiting"
    [(_, (_service, _country, params))] = [c for c in hub.calls if c[0] == "get_number"]
    assert params["max_price"] == Decimal("12") and params["currency"] == rt.dialect("hub").default_currency


def test_a_cancel_while_waiting_between_attempts_ends_the_order_without_a_purchase(
        fake_redis: Any, clock: Any, published: Published) -> None:
    provider = FakeProvider(clock)
    rt = runtime(fake_redis, clock, published, {"PROVIDER_API_KEY": "k", "MAX_ACTIVE": "1",
                                                "ACTIVATION_TIMEOUT": "7200"}, provider)
    rt.orders.submit(OrderRequest("tg", order_id="a"))
    assert activation.place_order(rt, "a") == "waiting"
    rt.orders.submit(OrderRequest("tg", order_id="b"))
    assert activation.place_order(rt, "b") == "backoff"          # waits for a slot
    rt.orders.request("b", "cancel")
    assert activation.advance(rt, "b") == "cancelled"
    assert rt.activations.get("b").state is State.CANCELLED  # type: ignore[union-attr]
    assert activation.place_order(rt, "b") != "waiting"          # a late re-delivery buys nothing
    assert provider.count("get_number_v2") == 1
    kinds = [e["type"] for e in stream_events(rt.redis, rt.settings) if e.get("order_id") == "b"]
    assert kinds == [ev.ACTIVATION_CANCELLED, ev.ORDER_CANCELLED]


def test_a_limit_full_only_of_reservations_in_flight_waits_for_them_instead_of_failing(
        fake_redis: Any, clock: Any, published: Published) -> None:
    """A racing driver of another order holds a reservation for a moment (it then loses its compare-and-set and
    gives it back): an order that meets the limit meanwhile backs off and buys once it is given back, instead of
    failing budget_exceeded on a transient figure."""
    provider = FakeProvider(clock)
    rt = runtime(fake_redis, clock, published, {"PROVIDER_API_KEY": "k", "SPEND_LIMIT_DAILY": "0.50",
                                                "MAX_PRICE": "0.50", "ORDER_RETRY_DELAY": "5"}, provider)
    limits = SpendLimits(daily=Decimal("0.50"))
    assert rt.ledger.reserve("sms-activate", "racer-1", Decimal("0.50"), limits, now=clock(), hold_for=60) == ""
    rt.orders.submit(OrderRequest("tg", order_id="b"))
    assert activation.place_order(rt, "b") == "backoff"
    assert rt.activations.get("b").state is State.BUYING  # type: ignore[union-attr]
    assert provider.count("get_number_v2") == 0
    rt.ledger.release("sms-activate", "racer-1")
    clock.advance(6)                                   # its backoff is due: the sweeper drives it again
    assert activation.place_order(rt, "b") == "waiting"
    assert provider.count("get_number_v2") == 1
    rt.orders.submit(OrderRequest("tg", order_id="c"))  # the day's room is really spent now: that fails at once
    assert activation.place_order(rt, "c") == "failed"
