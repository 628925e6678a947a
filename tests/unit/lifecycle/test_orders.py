"""OrderService: idempotent submit, reads, commands."""
from __future__ import annotations

from typing import Any

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
