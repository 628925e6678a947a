"""The external-id index: a live entry is a field of a small bucket hash; an ended order's entry is a key of its
own that expires with the record; an entry written before the buckets existed (a key of its own, no expiry) is
still found, and expires with its record too."""
from __future__ import annotations

from typing import Any

import pytest

from config import domain
from config.settings import Settings
from lifecycle.activation import OrderService
from lifecycle.activation.record import OrderRequest
from lifecycle.keys import IndexEntry, external

from .conftest import FakeClock, make_held, make_orders

AID = "4200000000777"


@pytest.fixture
def svc(fake_redis: Any, settings: Settings, clock: FakeClock) -> OrderService:
    return make_orders(fake_redis, settings, clock=clock)


@pytest.fixture
def entry(settings: Settings) -> IndexEntry:
    return domain.keys(settings).activation_index(external("sms-activate", AID))


def waiting(svc: OrderService, order_id: str = "o1") -> None:
    svc.submit(OrderRequest("tg", country=0, order_id=order_id))
    assert svc.store.start_buying(order_id).ok
    assert svc.store.assign_number(order_id, provider="sms-activate", activation_id=AID, phone="7999", cost="0.5").ok


def test_a_live_entry_is_a_bucket_field_until_its_order_ends(svc: OrderService, entry: IndexEntry, fake_redis: Any,
                                                             settings: Settings) -> None:
    waiting(svc)
    assert fake_redis.hget(entry.bucket, entry.field) == "o1" and not fake_redis.exists(entry.retired)
    assert svc.store.order_for_activation("sms-activate", AID) == "o1"
    assert svc.store.cancel("o1", activation_id=AID, reason="timeout").ok
    assert not fake_redis.exists(entry.bucket)                     # the bucket's last field: the hash is gone
    assert fake_redis.get(entry.retired) == "o1"
    assert 0 < fake_redis.ttl(entry.retired) <= settings.order_retention_seconds
    assert svc.store.order_for_activation("sms-activate", AID) == "o1"   # a late webhook still finds its order


def test_an_entry_from_before_the_buckets_is_found_and_expires_with_its_record(
        svc: OrderService, entry: IndexEntry, fake_redis: Any, settings: Settings) -> None:
    waiting(svc)
    fake_redis.hdel(entry.bucket, entry.field)                       # as an earlier release wrote it
    fake_redis.set(entry.retired, "o1")
    assert svc.store.orders_for_activations("sms-activate", [AID, "1"]) == {AID: "o1", "1": None}
    assert make_held(fake_redis, settings).hold("activation", external("sms-activate", AID), {"code": "1"}) == "o1"
    assert svc.store.cancel("o1", activation_id=AID, reason="timeout").ok
    assert fake_redis.get(entry.retired) == "o1" and 0 < fake_redis.ttl(entry.retired)
    assert not fake_redis.exists(entry.bucket)


def test_entries_spread_over_the_buckets(settings: Settings) -> None:
    keys = domain.keys(settings)
    entries = [keys.activation_index(external("sms-activate", str(3_900_000_000 + i))) for i in range(3000)]
    assert len({e.bucket for e in entries}) > 900                     # crc32 of sequential ids: spread evenly
    assert {e.field for e in entries} == {str(3_900_000_000 + i) for i in range(3000)}
