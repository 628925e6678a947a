"""The balance store: readings shared through Redis, and exactly one event per threshold crossing."""
from __future__ import annotations

import json
import threading
from decimal import Decimal
from typing import Any

import pytest

from lifecycle.keys import Keys
from lifecycle.outbox.events import event_id
from lifecycle.routing.balance import BalanceReading, BalanceStore, Crossing, can_pay, purchase_price

KEYS = Keys()


def events(client: Any) -> list[dict[str, Any]]:
    return [{**json.loads(f["data"]), "type": f["type"]} for _id, f in client.xrange(KEYS.events)]


@pytest.fixture
def store(fake_redis: Any) -> BalanceStore:
    return BalanceStore(fake_redis, KEYS, clock=lambda: 1000.0)


def test_a_fall_below_and_a_recovery_each_write_one_event(store: BalanceStore, fake_redis: Any) -> None:
    limit = Decimal("10")
    assert store.record("hero", Decimal("50"), threshold=limit, currency=840, at=1) is Crossing.NONE
    assert store.record("hero", Decimal("9.99"), threshold=limit, currency=840, at=2) is Crossing.LOW
    assert store.record("hero", Decimal("5"), threshold=limit, currency=840, at=3) is Crossing.NONE
    assert store.record("hero", Decimal("10"), threshold=limit, currency=840, at=4) is Crossing.OK
    assert store.record("hero", Decimal("12"), threshold=limit, currency=840, at=5) is Crossing.NONE
    low, ok = events(fake_redis)
    assert low["type"] == "balance.low" and ok["type"] == "balance.ok"
    assert low == {"event_id": event_id("provider:hero", "balance.low", "1"), "type": "balance.low",
                   "provider": "hero", "balance": "9.99", "currency": 840, "threshold": "10",
                   "at": "1970-01-01T00:00:02.000Z"}
    assert ok["event_id"] == event_id("provider:hero", "balance.ok", "2") and ok["balance"] == "10"
    assert "order_id" not in low
    assert store.last("hero") == BalanceReading(Decimal("12"), 5.0, False)


def test_the_first_reading_below_the_threshold_is_a_crossing_and_one_above_is_not(store: BalanceStore,
                                                                                 fake_redis: Any) -> None:
    assert store.record("a", Decimal("1"), threshold=Decimal("5"), currency=None, at=1) is Crossing.LOW
    assert store.record("b", Decimal("9"), threshold=Decimal("5"), currency=None, at=1) is Crossing.NONE
    assert [e["provider"] for e in events(fake_redis)] == ["a"]
    assert "currency" not in events(fake_redis)[0]


def test_without_a_threshold_the_reading_is_only_stored(store: BalanceStore, fake_redis: Any) -> None:
    assert store.record("hero", Decimal("0"), threshold=None, currency=840, at=1) is Crossing.NONE
    assert events(fake_redis) == []
    assert store.last("hero") == BalanceReading(Decimal("0"), 1.0, False)


def test_an_older_reading_never_overwrites_a_newer_one(store: BalanceStore, fake_redis: Any) -> None:
    """Two beats read at once: the one whose answer is older loses, whatever order their writes arrive in."""
    limit = Decimal("10")
    assert store.record("hero", Decimal("50"), threshold=limit, currency=840, at=20) is Crossing.NONE
    assert store.record("hero", Decimal("1"), threshold=limit, currency=840, at=19) is Crossing.OLD
    assert events(fake_redis) == []
    assert store.last("hero") == BalanceReading(Decimal("50"), 20.0, False)


def test_repeated_readings_of_one_crossing_give_one_event(store: BalanceStore, fake_redis: Any) -> None:
    """What several beats do: each reads the same low balance and records it; one event."""
    results = [store.record("hero", Decimal("3"), threshold=Decimal("10"), currency=840, at=1 + i * 0.1)
               for i in range(5)]
    assert results.count(Crossing.LOW) == 1
    assert [e["type"] for e in events(fake_redis)] == ["balance.low"]


def test_a_crossing_that_happened_meanwhile_makes_the_writer_read_again(store: BalanceStore, fake_redis: Any) -> None:
    """The compare-and-set on the crossings count: a writer that read the count before another crossing is told
    to retry, so the next crossing gets the next number (ids never repeat)."""
    limit = Decimal("10")
    real_hget = fake_redis.hget
    calls = {"n": 0}

    def hget_then_cross(key: str, field: str) -> Any:
        value = real_hget(key, field)
        calls["n"] += 1
        if calls["n"] == 1:  # between our read and our write, another beat records a crossing
            BalanceStore(fake_redis, KEYS).record("hero", Decimal("1"), threshold=limit, currency=840, at=5)
        return value

    fake_redis.hget = hget_then_cross  # type: ignore[method-assign]
    try:
        assert store.record("hero", Decimal("20"), threshold=limit, currency=840, at=6) is Crossing.OK
    finally:
        fake_redis.hget = real_hget  # type: ignore[method-assign]
    low, ok = events(fake_redis)
    assert (low["type"], ok["type"]) == ("balance.low", "balance.ok")
    assert ok["event_id"] == event_id("provider:hero", "balance.ok", "2")


def _race(store: BalanceStore, readings: list[tuple[float, Decimal]], threads: int = 6) -> None:
    barrier = threading.Barrier(threads)

    def worker(part: list[tuple[float, Decimal]]) -> None:
        barrier.wait()
        for at, amount in part:
            store.record("hero", amount, threshold=Decimal("10"), currency=840, at=at)

    pool = [threading.Thread(target=worker, args=(readings[k::threads],)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


@pytest.mark.redis
def test_many_readers_of_one_crossing_on_a_real_redis_write_one_event_each_way(real_redis: Any) -> None:
    """Six threads (beats) record the same low balance many times, then the same recovered one: one balance.low,
    then one balance.ok."""
    store = BalanceStore(real_redis, KEYS)
    store.record("hero", Decimal("50"), threshold=Decimal("10"), currency=840, at=0)
    _race(store, [(1 + i / 100, Decimal("3")) for i in range(60)])
    assert [e["type"] for e in events(real_redis)] == ["balance.low"]
    _race(store, [(2 + i / 100, Decimal("30")) for i in range(60)])
    assert [e["type"] for e in events(real_redis)] == ["balance.low", "balance.ok"]


@pytest.mark.redis
def test_racing_readings_on_a_real_redis_alternate_and_end_on_the_newest(real_redis: Any) -> None:
    """Threads record readings that cross back and forth, in any interleaving: the events alternate (never two of a
    kind in a row), their ids are distinct, their count is the stored count of crossings, and the stored reading is
    the newest one."""
    store = BalanceStore(real_redis, KEYS)
    _race(store, [(float(i), Decimal("1") if (i // 3) % 2 == 0 else Decimal("20")) for i in range(60)])
    written = events(real_redis)
    kinds = [e["type"] for e in written]
    assert all(a != b for a, b in zip(kinds, kinds[1:])), kinds
    assert not kinds or kinds[0] == "balance.low"
    assert len({e["event_id"] for e in written}) == len(written)
    assert int(real_redis.hget(KEYS.balance("hero"), "crossings") or 0) == len(written)
    last = store.last("hero")
    assert last is not None and last.at == 59.0 and last.amount == Decimal("20")
    assert last.low is False and (not kinds or kinds[-1] == "balance.ok")


def test_purchase_price_is_the_quote_capped_by_the_order() -> None:
    assert purchase_price(None, None) is None
    assert purchase_price(Decimal("2"), None) == Decimal("2")
    assert purchase_price(None, Decimal("0.5")) == Decimal("0.5")
    assert purchase_price(Decimal("0.3"), Decimal("0.5")) == Decimal("0.3")
    assert purchase_price(Decimal("2"), Decimal("0.5")) == Decimal("0.5")


@pytest.mark.parametrize(("reading", "price", "expected"), [
    (None, Decimal("1"), True),                                    # never read: the provider decides
    (BalanceReading(Decimal("0.5"), 1000.0), None, True),          # price unknown
    (BalanceReading(Decimal("0.5"), 1000.0), Decimal("1"), False),  # fresh and too low
    (BalanceReading(Decimal("1"), 1000.0), Decimal("1"), True),    # exactly enough
    (BalanceReading(Decimal("0.5"), 1000.0 - 601), Decimal("1"), True),  # stale: says nothing
])
def test_can_pay(reading: BalanceReading | None, price: Decimal | None, expected: bool) -> None:
    assert can_pay(reading, price, now=1000.0, max_age=600.0) is expected
