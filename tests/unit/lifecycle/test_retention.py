"""ORDER_RETENTION_SECONDS: how long an ended order or rent (its record, its index entries, its listing) is kept.

The setting reaches the stores through config/domain.py (the lifecycle package reads no environment)."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from config import domain
from config.settings import ConfigError, Settings
from lifecycle.activation.orders import LONGEST_LIFE, listed_for
from lifecycle.activation.record import OrderRequest
from lifecycle.cas import DEFAULT_RETENTION_SECONDS
from lifecycle.rent import RentRequest

from .conftest import FakeClock, make_orders, make_rents

AID = "12345678901"
HOUR = 3600


def test_the_default_is_seven_days_and_the_variable_sets_it() -> None:
    assert Settings().order_retention_seconds == DEFAULT_RETENTION_SECONDS == 7 * 24 * HOUR
    settings = Settings.from_env({"ORDER_RETENTION_SECONDS": "3600"})
    assert settings.order_retention_seconds == HOUR
    assert domain.activation_config(settings).retention == HOUR
    assert domain.rent_config(settings).retention == HOUR


@pytest.mark.parametrize("raw", ["0", "-5", "a week", "1.5"])
def test_a_bad_value_names_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match="ORDER_RETENTION_SECONDS"):
        Settings.from_env({"ORDER_RETENTION_SECONDS": raw})


def test_an_ended_order_and_its_number_expire_after_the_setting(fake_redis: Any, settings: Settings,
                                                                clock: FakeClock) -> None:
    short = replace(settings, order_retention_seconds=HOUR)
    svc = make_orders(fake_redis, short, clock=clock)
    svc.submit(OrderRequest("tg", country=0, order_id="o1"))
    assert svc.store.start_buying("o1").ok
    assert svc.store.assign_number("o1", provider="sms-activate", activation_id=AID, phone="79990001122",
                                   cost="0.5").ok
    assert fake_redis.ttl(short.key("order", "o1")) == -1  # live: no expiry
    assert svc.store.cancel("o1", activation_id=AID, reason="timeout").ok
    assert 0 < fake_redis.ttl(short.key("order", "o1")) <= HOUR
    assert 0 < fake_redis.ttl(short.key("aid", "sms-activate", AID)) <= HOUR


def test_an_ended_rent_expires_after_the_setting(fake_redis: Any, settings: Settings, clock: FakeClock) -> None:
    short = replace(settings, order_retention_seconds=HOUR)
    rents = make_rents(fake_redis, short, clock=clock)
    rents.submit(RentRequest("full", order_id="r1"))
    assert rents.store.start_buying("r1", provider="sms-activate").ok
    assert rents.store.fail("r1", reason="rent_unrecoverable").ok
    assert 0 < fake_redis.ttl(short.key("rent", "r1")) <= HOUR


def test_the_listing_keeps_an_order_as_long_as_its_record_can_live(fake_redis: Any, settings: Settings,
                                                                  clock: FakeClock) -> None:
    short = replace(settings, order_retention_seconds=HOUR)
    svc = make_orders(fake_redis, short, clock=clock)
    svc.submit(OrderRequest("tg", country=0, order_id="old"))
    clock.advance(listed_for(HOUR) - 1)
    svc.submit(OrderRequest("tg", country=0, order_id="mid"))
    assert {o.order_id for o in svc.recent()} == {"old", "mid"}
    clock.advance(2)  # "old" was placed longer ago than its record can live (its longest life + the retention)
    svc.submit(OrderRequest("tg", country=0, order_id="new"))
    assert fake_redis.zscore(short.key("orders"), "old") is None
    assert fake_redis.zscore(short.key("orders"), "mid") is not None
    assert listed_for(HOUR) == HOUR + LONGEST_LIFE
