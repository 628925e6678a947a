"""Replacement numbers: an order wants a code, not one number. A number without a code in time (cancelled, so
refunded) or whose code did not work (finished) is replaced by the next one, by the order's routing, until a code
is accepted, ``max_numbers`` is reached or the order's deadline passes; exactly one order-level terminal event."""
from __future__ import annotations

from typing import Any

import pytest

from config.settings import Settings
from flows import activation
from flows import sweep as sweeping
from flows.names import TaskName
from flows.runtime import Runtime
from lifecycle.activation import OrderRequest, State
from lifecycle.outbox import events as ev

from .conftest import Published, stream_events
from .fakes import FakeProvider

ENV = {"PROVIDERS": "alpha,beta", "PROVIDER_ALPHA_DIALECT": "sms-activate", "PROVIDER_ALPHA_API_KEY": "ka",
       "PROVIDER_BETA_DIALECT": "sms-activate", "PROVIDER_BETA_API_KEY": "kb", "AUTO_FINISH": "false",
       "POLL_AFTER": "30", "POLL_INTERVAL": "15", "ACTIVATION_TIMEOUT": "300", "FINISH_TIMEOUT": "600",
       "ORDER_MAX_NUMBERS": "3"}


@pytest.fixture
def two(fake_redis: Any, clock: Any, published: Published) -> tuple[Runtime, FakeProvider, FakeProvider]:
    alpha, beta = FakeProvider(clock), FakeProvider(clock)
    beta._next = 20_000_005_000  # ids and phones differ here (test_providers.py shows colliding ids)
    rt = Runtime(settings=Settings.from_env(ENV), redis=fake_redis, provider={"alpha": alpha, "beta": beta},
                 publish=published, clock=clock, consumer_name="test")
    return rt, alpha, beta


def types(rt: Runtime, order_id: str = "o1") -> list[str]:
    return [e["type"] for e in stream_events(rt.redis, rt.settings) if e["order_id"] == order_id]


def drive(rt: Runtime, published: Published) -> None:
    """Run what the sweeper and the published purchases would, until nothing is published any more."""
    for _ in range(10):
        sweeping.sweep(rt)
        names = [kw["order_id"] for n, kw in published if n == TaskName.PLACE_ORDER]
        published.clear()
        if not names:
            return
        for order_id in names:
            activation.place_order(rt, order_id)


def test_a_number_without_a_code_is_replaced_at_the_next_provider(two: Any, clock: Any, published: Published) -> None:
    rt, alpha, beta = two
    rt.orders.submit(OrderRequest("tg", country=0, order_id="o1"))
    assert activation.place_order(rt, "o1") == "waiting"
    first = rt.activations.get("o1")
    assert first.provider == "alpha"  # type: ignore[union-attr]
    alpha.fail["get_number_v2"] = [__import__("provider.errors", fromlist=["NoNumbers"]).NoNumbers()]
    clock.advance(301)                       # past ACTIVATION_TIMEOUT (and the provider's two-minute rule)
    drive(rt, published)
    order = rt.activations.get("o1")
    assert order is not None and order.state is State.WAITING and order.provider == "beta"
    assert order.numbers == 2 and first.phone in order.bad_phones  # type: ignore[union-attr]
    assert alpha.activations[first.activation_id].state == "CANCELLED"  # type: ignore[union-attr]
    assert types(rt) == [ev.NUMBER_ASSIGNED, ev.ACTIVATION_CANCELLED, ev.NUMBER_ASSIGNED]
    assigned = [e for e in stream_events(rt.redis, rt.settings) if e["type"] == ev.NUMBER_ASSIGNED]
    assert [(e["provider"], e["attempt"]) for e in assigned] == [("alpha", 1), ("beta", 2)]
    assert len({e["event_id"] for e in stream_events(rt.redis, rt.settings)}) == 3
    # a late code for the replaced number is stale: it never reaches the order
    late = rt.activations.receive_code("o1", code="1234", via=ev.Via.WEBHOOK, activation_id=first.activation_id)
    assert late.status == "stale"                                                           # type: ignore[union-attr]


def test_replace_command_after_a_code_finishes_the_number_and_buys_another(two: Any, clock: Any,
                                                                          published: Published) -> None:
    rt, alpha, beta = two
    rt.orders.submit(OrderRequest("tg", country=0, order_id="o1"))
    activation.place_order(rt, "o1")
    aid = rt.activations.get("o1").activation_id  # type: ignore[union-attr]
    alpha.deliver(aid, "1111")
    rt.activations.receive_code("o1", code="1111", via=ev.Via.WEBHOOK, activation_id=aid)
    rt.orders.replace("o1")
    assert activation.command(rt, "o1", "replace") == "replaced"
    assert alpha.activations[aid].state == "FINISHED"          # a code came: finished, not cancelled
    drive(rt, published)
    order = rt.activations.get("o1")
    assert order is not None and order.state is State.WAITING and order.numbers == 2
    assert types(rt) == [ev.NUMBER_ASSIGNED, ev.CODE_RECEIVED, ev.ACTIVATION_FINISHED, ev.NUMBER_ASSIGNED]
    # the second number's code is accepted: the order completes, with exactly one terminal event
    aid2 = order.activation_id or ""
    assert rt.activations.receive_code("o1", code="2222", via=ev.Via.WEBHOOK, activation_id=aid2).ok
    rt.orders.finish("o1")
    activation.command(rt, "o1", "finish")
    events = types(rt)
    assert events[-2:] == [ev.ACTIVATION_FINISHED, ev.ORDER_COMPLETED]
    assert sum(t in ev.ORDER_TERMINAL for t in events) == 1


def test_max_numbers_ends_the_order_with_one_failure(two: Any, clock: Any, published: Published) -> None:
    rt, alpha, beta = two
    rt.orders.submit(OrderRequest("tg", country=0, order_id="o1", max_numbers=2))
    activation.place_order(rt, "o1")
    for _ in range(2):
        clock.advance(301)
        drive(rt, published)
    order = rt.activations.get("o1")
    assert order is not None and order.state is State.CANCELLED and order.numbers == 2
    events = [e for e in stream_events(rt.redis, rt.settings) if e["order_id"] == "o1"]
    assert [e["type"] for e in events] == [ev.NUMBER_ASSIGNED, ev.ACTIVATION_CANCELLED, ev.NUMBER_ASSIGNED,
                                           ev.ACTIVATION_CANCELLED, ev.ORDER_FAILED]
    assert events[-1]["reason"] == "timeout"
    assert len({e["event_id"] for e in events}) == len(events)


def test_a_repeated_number_is_not_used(two: Any, clock: Any, published: Published) -> None:
    """A provider that hands back a number that already failed for this order: it is replaced, not used."""
    rt, alpha, beta = two
    rt.orders.submit(OrderRequest("tg", country=0, order_id="o1", providers=("alpha",)))
    activation.place_order(rt, "o1")
    first = rt.activations.get("o1")
    clock.advance(301)
    real_add = alpha.add

    def same_phone(*args: Any, **kwargs: Any) -> Any:
        act = real_add(*args, **kwargs)
        act.phone = first.phone  # type: ignore[union-attr]
        return act

    alpha.add = same_phone  # type: ignore[method-assign]
    drive(rt, published)
    order = rt.activations.get("o1")
    assigned = [e for e in stream_events(rt.redis, rt.settings) if e["type"] == ev.NUMBER_ASSIGNED]
    assert assigned[-1].get("repeated") is True
    assert order is not None and order.command is not None and order.command.value == "replace"
