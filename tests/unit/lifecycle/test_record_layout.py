"""Order records in the layout before the field renames (long names, history of unix times): they read as they
are, and their next compare-and-set renames them and carries on as with any record (match, fill, expiry)."""
from __future__ import annotations

from typing import Any

import pytest

from config.settings import Settings
from lifecycle.activation import OrderService
from lifecycle.activation.machine import State
from lifecycle.activation.record import F_AID, F_SERVICE, LEGACY_NAMES, OrderRequest
from lifecycle.outbox import events as ev

from .conftest import FakeClock, make_orders, stream_events

AID = "3936040359"
T = 1_750_000_000


def legacy_waiting(fake_redis: Any, settings: Settings, order_id: str = "o1") -> None:
    """A waiting order as the layout before wrote it (field for field what bench/sweep.py found then)."""
    ts = f"{T}.420"
    fake_redis.hset(settings.key("order", order_id), mapping={
        "h": f"pending@{T},buying@{T},waiting@{T}", "service": "tg", "country": "0", "state": "waiting",
        "created": ts, "updated": ts, "until": f"{T + 3600}.420", "buying_at": ts, "calls": "1",
        "prov": "sms-activate", "numbers": "1", "phone": "79577010552", "cost": "0.25", "aid": AID,
        "number_at": ts, "currency": "840"})
    fake_redis.set(settings.key("aid", "sms-activate", AID), order_id)
    fake_redis.zadd(settings.key("deadlines"), {order_id: T + 30})


@pytest.fixture
def svc(fake_redis: Any, settings: Settings) -> OrderService:
    return make_orders(fake_redis, settings, clock=FakeClock(T + 40.0))


def test_a_legacy_record_reads_as_it_is(svc: OrderService, fake_redis: Any, settings: Settings) -> None:
    legacy_waiting(fake_redis, settings)
    order = svc.get("o1")
    assert order is not None and order.state is State.WAITING
    assert (order.service, order.country, order.activation_id, order.phone, order.provider, order.cost) == \
        ("tg", 0, AID, "79577010552", "sms-activate", "0.25")
    assert (order.created_at, order.number_at, order.numbers, order.currency) == (T + 0.42, T + 0.42, 1, 840)
    assert [(h.label, h.at) for h in order.history] == [("pending", T), ("buying", T), ("waiting", T)]


def test_its_next_change_renames_it_and_carries_on(svc: OrderService, fake_redis: Any, settings: Settings) -> None:
    legacy_waiting(fake_redis, settings)
    # a field-level CAS on the activation id (its old name, "aid"): it must still hold
    assert svc.store.receive_code("o1", code="4321", via="webhook", activation_id=AID).ok
    rec = fake_redis.hgetall(settings.key("order", "o1"))
    assert not set(rec) & set(LEGACY_NAMES) and rec[F_AID] == AID and rec[F_SERVICE] == "tg"
    assert rec["h"] == "pending@0,buying@0,waiting@0,code_received:webhook@40"
    # the event's fields filled from the record, under its new names
    event = stream_events(fake_redis, settings)[-1]
    assert event["type"] == ev.CODE_RECEIVED
    assert (event["service"], event["country"], event["provider"], event["activation_id"], event["phone"]) == \
        ("tg", 0, "sms-activate", AID, "79577010552")
    order = svc.get("o1")
    assert order is not None and order.state is State.CODE_RECEIVED and order.code == "4321"
    assert order.history[-1].label == "code_received:webhook" and order.history[-1].at == T + 40


def test_an_ending_finds_a_legacy_records_provider_for_its_index(svc: OrderService, fake_redis: Any,
                                                                  settings: Settings) -> None:
    legacy_waiting(fake_redis, settings)
    assert svc.store.cancel("o1", activation_id=AID, reason="timeout").ok  # no provider given: the record's (old name)
    assert 0 < fake_redis.ttl(settings.key("aid", "sms-activate", AID)) <= settings.order_retention_seconds
    assert 0 < fake_redis.ttl(settings.key("order", "o1")) <= settings.order_retention_seconds


def test_new_records_use_the_short_names(svc: OrderService, fake_redis: Any, settings: Settings) -> None:
    svc.submit(OrderRequest("tg", country=0, order_id="o2"))
    assert svc.store.start_buying("o2").ok
    assert svc.store.assign_number("o2", provider="sms-activate", activation_id=AID, phone="79990001122").ok
    rec = fake_redis.hgetall(settings.key("order", "o2"))
    assert not set(rec) & set(LEGACY_NAMES)
    assert all(len(name) <= 2 for name in rec if name not in ("state", "codes"))


def test_new_records_keep_their_times_in_whole_seconds_rounded_down(fake_redis: Any, settings: Settings) -> None:
    """Digits Redis stores as an integer in the listpack; a deadline derived from one only comes earlier."""
    svc = make_orders(fake_redis, settings, clock=FakeClock(T + 0.875))
    svc.submit(OrderRequest("tg", country=0, order_id="o3"))
    assert svc.store.start_buying("o3").ok
    assert svc.store.assign_number("o3", provider="sms-activate", activation_id=AID, phone="79990001122",
                                   cancel_by=T + 1200.999).ok
    rec = fake_redis.hgetall(settings.key("order", "o3"))
    times = {name: rec[name] for name in ("u", "un", "ba", "na", "cb") if name in rec}
    assert times == {"u": str(T), "un": str(T + 3600), "na": str(T), "cb": str(T + 1200)}
    order = svc.get("o3")
    assert order is not None and (order.number_at, order.cancel_by, order.until) == (T, T + 1200, T + 3600)
    assert order.created_at == T + 0.875      # the listing's score: pagination hands it back exactly
