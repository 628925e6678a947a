"""OrderService: idempotent submit, reads, commands."""
from __future__ import annotations

from typing import Any, Collection

import pytest

from config.settings import Settings
from lifecycle.activation import CommandConflict, OrderError, OrderService, UnknownOrder
from lifecycle.activation.machine import State
from lifecycle.activation.record import OrderRequest

from .conftest import FakeClock, make_orders


@pytest.fixture
def svc(fake_redis: Any, settings: Settings, clock: FakeClock) -> OrderService:
    return make_orders(fake_redis, settings, clock=clock)


def test_submit_is_idempotent(svc: OrderService, fake_redis: Any, settings: Settings, clock: FakeClock) -> None:
    order, created = svc.submit(OrderRequest("tg", country=6, max_price=None, order_id="abc"))
    assert created and order.state is State.PENDING and order.country == 6
    again, created2 = svc.submit(OrderRequest("wa", country=1, order_id="abc"))
    assert not created2 and again.service == "tg"
    # a first deadline makes the sweeper publish place_order if the task is lost
    assert fake_redis.zscore(settings.key("deadlines"), "abc") == pytest.approx(clock.now + 60, abs=0.01)


def test_submit_generates_an_id(svc: OrderService) -> None:
    a, _ = svc.submit(OrderRequest("tg"))
    b, _ = svc.submit(OrderRequest("tg"))
    assert a.order_id != b.order_id and len(a.order_id) == 32


@pytest.mark.parametrize("bad", ["", "a b", "x" * 200, "a/b"])
def test_bad_order_ids(svc: OrderService, bad: str) -> None:
    with pytest.raises(OrderError):
        svc.submit(OrderRequest("tg", order_id=bad) if bad else OrderRequest("", order_id="ok"))


def test_commands(svc: OrderService) -> None:
    svc.submit(OrderRequest("tg", order_id="o1"))
    with pytest.raises(UnknownOrder):
        svc.cancel("nope")
    with pytest.raises(CommandConflict) as info:
        svc.finish("o1")
    assert info.value.state is State.PENDING
    assert svc.cancel("o1").state is State.PENDING
    assert [h.label for h in svc.history("o1")] == ["pending", "cmd:cancel"]


def test_get_unknown(svc: OrderService) -> None:
    assert svc.get("none") is None


def test_recent_orders_newest_first_by_state_and_page(fake_redis: Any, settings: Settings, clock: FakeClock) -> None:
    svc = make_orders(fake_redis, settings, clock=clock)
    for i in range(5):
        svc.submit(OrderRequest("tg", order_id=f"r{i}"))
        clock.advance(1)
    svc.store.start_buying("r4")
    assert [o.order_id for o in svc.recent(limit=3)] == ["r4", "r3", "r2"]
    assert [o.order_id for o in svc.recent(states=frozenset({State.BUYING}))] == ["r4"]
    page2 = svc.recent(limit=3, before=svc.get("r2").created_at)  # type: ignore[union-attr]
    assert [o.order_id for o in page2] == ["r1", "r0"]
    svc.submit(OrderRequest("tg", order_id="r0"))  # a repeat is not listed twice
    assert len(svc.recent(limit=10)) == 5


def _same_millisecond(svc: OrderService, ids: list[str], *, buying: Collection[str] = ()) -> None:
    for order_id in ids:
        svc.submit(OrderRequest("tg", order_id=order_id))
        if order_id in buying:
            svc.store.start_buying(order_id)


def test_recent_reads_past_a_chunk_boundary_inside_one_millisecond(svc: OrderService) -> None:
    """130 orders placed at the same moment, every other one buying: a filtered listing reads the index in chunks,
    and the orders of the boundary's millisecond after the first chunk must still be found (ties by id,
    descending)."""
    ids = [f"o{i:03d}" for i in range(130)]
    buying = set(ids[::2])
    _same_millisecond(svc, ids, buying=buying)
    listed = [o.order_id for o in svc.recent(states=frozenset({State.BUYING}), limit=65)]
    assert listed == sorted(buying, reverse=True)
    assert [o.order_id for o in svc.recent(limit=130)] == sorted(ids, reverse=True)


def test_recent_reads_whole_chunks_of_one_millisecond(svc: OrderService, clock: FakeClock) -> None:
    """Chunks made only of orders of one millisecond, between older and newer ones: every order once, in order."""
    older, tied, newer = ([f"{p}{i:03d}" for i in range(n)] for p, n in (("a", 10), ("b", 120), ("c", 10)))
    _same_millisecond(svc, older, buying=set(older[:7]))
    clock.advance(0.001)
    _same_millisecond(svc, tied, buying=set(tied[::3]))
    clock.advance(0.001)
    _same_millisecond(svc, newer)
    wanted = frozenset({State.BUYING})
    assert [o.order_id for o in svc.recent(states=wanted, limit=5)] == sorted(tied[::3], reverse=True)[:5]
    assert [o.order_id for o in svc.recent(states=wanted, limit=100)] == \
        sorted(tied[::3], reverse=True) + sorted(older[:7], reverse=True)
    everything = [o.order_id for o in svc.recent(limit=140)]
    assert everything == sorted(newer, reverse=True) + sorted(tied, reverse=True) + sorted(older, reverse=True)
