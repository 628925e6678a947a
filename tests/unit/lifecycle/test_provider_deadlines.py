"""The provider's own deadlines of an activation on our clock, per-service timeouts, and the caps they put on
waiting (docs/handler-api.md, Timing rules)."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from config.settings import ConfigError, Settings
from lifecycle.activation import ActivationConfig, OrderRequest, State
from lifecycle.activation.lifetime import NO_TIMES, ProviderTimes, on_our_clock, provider_times
from lifecycle.activation.record import Order
from provider.models import Activation

from .conftest import FakeClock, make_orders

NOW = 1_750_000_000.0


# ---------------------------------------------------------------- the provider's dates on our clock
def test_a_naive_date_is_measured_from_the_purchase_time_the_provider_states() -> None:
    """Zone and clock cancel out: the provider is three hours ahead of UTC and its clock runs 40 s fast."""
    bought = datetime(2025, 6, 1, 20, 0, 40)
    assert on_our_clock(bought + timedelta(minutes=20), bought=bought, received=NOW) == NOW + 1200


def test_aware_dates_are_measured_alike_and_alone_used_as_stated() -> None:
    bought = datetime(2025, 6, 1, 17, 0, 0, tzinfo=timezone.utc)
    assert on_our_clock(bought + timedelta(seconds=600), bought=bought, received=NOW) == NOW + 600
    stated = datetime.fromtimestamp(NOW + 900, tz=timezone.utc)
    assert on_our_clock(stated, bought=None, received=NOW) == pytest.approx(NOW + 900, abs=0.01)


@pytest.mark.parametrize("moment, bought", [
    (None, datetime(2025, 6, 1, 17, 0, 0)),
    (datetime(2025, 6, 1, 17, 20, 0), None),                             # naive, nothing to measure it from
    (datetime(2025, 6, 1, 16, 0, 0), datetime(2025, 6, 1, 17, 0, 0)),    # before the purchase: nonsense
    (datetime(2025, 6, 1, 17, 0, 0), datetime(2025, 6, 1, 17, 0, 0)),    # at the purchase
    (datetime(2025, 6, 1, 17, 20, 0), datetime(2025, 6, 1, 17, 0, 0, tzinfo=timezone.utc)),  # naive vs aware
    (datetime.fromtimestamp(NOW - 5, tz=timezone.utc), None),            # already past as stated
])
def test_dates_that_cannot_be_placed_are_ignored(moment: datetime | None, bought: datetime | None) -> None:
    assert on_our_clock(moment, bought=bought, received=NOW) is None


def test_provider_times_of_a_purchase_answer() -> None:
    bought = datetime(2025, 6, 1, 17, 0, 0)
    act = Activation("1", "79990000000", activation_time=bought, end_time=bought + timedelta(minutes=20),
                     cancel_time=bought + timedelta(minutes=15))
    assert provider_times(act, received=NOW) == ProviderTimes(end_at=NOW + 1200, cancel_by=NOW + 900)
    assert provider_times(Activation("1", "7999"), received=NOW) == NO_TIMES


# ---------------------------------------------------------------- the caps on waiting
CONFIG = ActivationConfig(activation_timeout=1200, cancel_margin=60, service_timeouts=(("ya", 2400.0),
                                                                                        ("ig", 300.0)))


def waiting_order(service: str = "tg", **fields: Any) -> Order:
    return Order(order_id="o1", state=State.WAITING, service=service, activation_id="1", number_at=NOW,
                 created_at=NOW, **fields)


def test_per_service_timeouts_and_the_shortest_for_an_unknown_service() -> None:
    assert CONFIG.wait_for("ya") == 2400 and CONFIG.wait_for("ig") == 300 and CONFIG.wait_for("tg") == 1200
    assert CONFIG.wait_for(None) == 300
    assert CONFIG.timeout_at(waiting_order("ya")) == NOW + 2400
    assert CONFIG.timeout_at(waiting_order("tg")) == NOW + 1200


@pytest.mark.parametrize("service, end, cancel, expected", [
    ("tg", None, None, NOW + 1200),
    ("tg", NOW + 1200, None, NOW + 1140),           # the provider's end, less the margin
    ("tg", NOW + 1200, NOW + 600, NOW + 540),        # the free-cancel time comes first
    ("ya", NOW + 1800, None, NOW + 1740),            # a long service timeout is capped by the lifetime
    ("ig", NOW + 1800, NOW + 1200, NOW + 300),       # a short one stays short
    ("tg", NOW + 30, None, NOW - 30),                # a window shorter than the margin: due at once
])
def test_waiting_stops_before_the_providers_own_times(service: str, end: float | None, cancel: float | None,
                                                       expected: float) -> None:
    assert CONFIG.timeout_at(waiting_order(service, end_at=end, cancel_by=cancel)) == expected


def test_after_a_code_only_the_end_caps_the_finish() -> None:
    config = replace(CONFIG, finish_timeout=1200)
    coded = replace(waiting_order(end_at=NOW + 900, cancel_by=NOW + 300), state=State.CODE_RECEIVED, code_at=NOW)
    assert config.timeout_at(coded) == NOW + 840
    assert config.timeout_at(replace(coded, end_at=None)) == NOW + 1200
    retry = replace(coded, state=State.WAITING_RETRY, retry_at=NOW + 100)
    assert config.timeout_at(retry) == NOW + 840


def test_polls_never_go_past_the_capped_timeout() -> None:
    order = waiting_order(cancel_by=NOW + 600)
    assert CONFIG.after_poll(order, NOW + 530) == NOW + 540
    assert CONFIG.next_due(waiting_order(cancel_by=NOW + 80), NOW) == NOW + 20      # before the first poll


# ---------------------------------------------------------------- the record
def test_assign_number_stores_the_providers_times_and_arms_the_first_deadline_before_them(
        fake_redis: Any, settings: Settings) -> None:
    clock = FakeClock(NOW)
    svc = make_orders(fake_redis, replace(settings, cancel_margin=60.0), clock=clock)
    svc.submit(OrderRequest("tg", country=0, order_id="o1"))
    svc.store.start_buying("o1")
    assert svc.store.assign_number("o1", provider="sms-activate", activation_id="1", phone="7999",
                                   end_at=NOW + 1200, cancel_by=NOW + 75).ok
    order = svc.store.get("o1")
    assert order is not None and (order.end_at, order.cancel_by) == (NOW + 1200, NOW + 75)
    assert fake_redis.zscore(svc.store.keys.deadlines, "o1") == NOW + 15    # not POLL_AFTER (30 s): earlier


def test_a_replaced_number_takes_its_times_with_it(fake_redis: Any, settings: Settings) -> None:
    clock = FakeClock(NOW)
    svc = make_orders(fake_redis, replace(settings, order_max_numbers=2), clock=clock)
    svc.submit(OrderRequest("tg", country=0, order_id="o1"))
    svc.store.start_buying("o1")
    svc.store.assign_number("o1", provider="sms-activate", activation_id="1", phone="7999", end_at=NOW + 1200,
                            cancel_by=NOW + 600)
    assert svc.store.replace_number("o1", state=State.WAITING, provider="sms-activate", activation_id="1",
                                    phone="7999", finished=False, reason="timeout", bad_phones=frozenset()).ok
    order = svc.store.get("o1")
    assert order is not None and order.end_at is None and order.cancel_by is None


# ---------------------------------------------------------------- settings
def test_service_timeouts_and_cancel_margin_settings() -> None:
    s = Settings.from_env({"SERVICE_TIMEOUTS": " ya:2400, ig:3600 ,", "CANCEL_MARGIN": "30"})
    assert s.service_timeouts == (("ya", 2400.0), ("ig", 3600.0)) and s.cancel_margin == 30.0
    assert Settings.from_env({}).service_timeouts == () and Settings.from_env({}).cancel_margin == 60.0
    from config import domain
    config = domain.activation_config(s)
    assert config.wait_for("ig") == 3600 and config.cancel_margin == 30.0


@pytest.mark.parametrize("raw", ["ya", "ya:0", "ya:x", ":10", "ya:10,ya:20"])
def test_bad_service_timeouts_are_named(raw: str) -> None:
    with pytest.raises(ConfigError, match="SERVICE_TIMEOUTS"):
        Settings.from_env({"SERVICE_TIMEOUTS": raw})


def test_an_activation_timeout_shorter_than_the_early_cancel_window_is_valid() -> None:
    s = Settings.from_env({"ACTIVATION_TIMEOUT": "60", "EARLY_CANCEL_SECONDS": "120", "PROVIDER_API_KEY": "k",
                           "WEBHOOK_TOKEN": "t" * 20})
    assert s.require("worker") is s and s.activation_timeout == 60


def test_the_balance_settings() -> None:
    from config import domain

    env = {"PROVIDERS": "hero,grizzly", "PROVIDER_HERO_BALANCE_LOW": "5.5", "BALANCE_LOW": "10",
           "BALANCE_CHECK_INTERVAL": "60"}
    s = Settings.from_env(env)
    assert s.balance_check_interval == 60 and s.balance_low == Decimal("10")
    assert domain.balance_low(s, "hero") == Decimal("5.5") and domain.balance_low(s, "grizzly") == Decimal("10")
    assert domain.balance_low(Settings.from_env({}), "sms-activate") is None
    assert domain.balance_low(Settings.from_env({"BALANCE_LOW": "3"}), "sms-activate") == Decimal("3")
    with pytest.raises(ConfigError, match="PROVIDER_HERO_BALANCE_LOW"):
        Settings.from_env({"PROVIDERS": "hero", "PROVIDER_HERO_BALANCE_LOW": "lots"})
    with pytest.raises(ConfigError, match="BALANCE_LOW"):
        Settings.from_env({"BALANCE_LOW": "-1"})
