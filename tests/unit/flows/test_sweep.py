"""Sweeper decisions: bulk reconcile coverage, timeouts, EarlyCancelDenied, finish, commands, outages."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from lifecycle.outbox import events as ev
from lifecycle.activation.machine import State
from lifecycle.activation.record import OrderRequest
from lifecycle.activation.reconcile import STILL_WAITING, Observation, Seen
from provider import errors as perr
from flows import activation, inbox as inbox_flow, relay, sweep as sweeping
from flows.report import SweepReport
from flows.runtime import Runtime

from .conftest import stream_events
from .fakes import FakeProvider


def waiting(rt: Runtime, order_id: str, **kw: Any) -> str:
    rt.orders.submit(OrderRequest("tg", country=0, order_id=order_id, **kw))
    assert activation.place_order(rt, order_id) == "waiting"
    aid = rt.activations.get(order_id).activation_id  # type: ignore[union-attr]
    assert aid
    return aid


def types(rt: Runtime) -> list[str]:
    return [e["type"] for e in stream_events(rt.redis, rt.settings)]


def test_nothing_due_nothing_called(rt: Runtime, provider: FakeProvider) -> None:
    waiting(rt, "o1")
    provider.calls.clear()
    assert sweeping.sweep(rt).claimed == 0 and provider.calls == []


def test_bulk_listing_covers_many_and_getstatus_only_for_uncovered(rt: Runtime, provider: FakeProvider,
                                                                   clock: Any) -> None:
    aids = [waiting(rt, f"o{i}") for i in range(5)]
    provider.deliver(aids[1], "1111")
    provider.activations[aids[4]].state = "CANCELLED"     # not listed any more: needs its own getStatus
    provider.calls.clear()
    clock.advance(31)
    report = sweeping.sweep(rt)
    assert report.claimed == 5
    assert provider.count("get_active_activations") == 1
    assert provider.count("get_status") == 1 and provider.calls[-1] == ("get_status", (aids[4],))
    assert rt.activations.get("o1").state is State.CODE_RECEIVED  # type: ignore[union-attr]
    assert rt.activations.get("o4").state is State.CANCELLED      # type: ignore[union-attr]
    code_events = [e for e in stream_events(rt.redis, rt.settings) if e["type"] == ev.CODE_RECEIVED]
    assert len(code_events) == 1 and code_events[0]["via"] == "poll"
    # the rest are re-armed every POLL_INTERVAL
    assert rt.deadlines.score("o0") == pytest.approx(clock.now + 15, abs=0.01)


def test_the_listing_a_sweep_holds_is_what_each_row_says_not_the_row(rt: Runtime, provider: FakeProvider) -> None:
    """A sweep keeps its listing until it ends: per row only the observation (the rows without a code all share
    one), not the parsed row with its raw JSON (``bench/sweep.py`` prints the bytes)."""
    aids = [waiting(rt, f"o{i}") for i in range(4)]
    provider.deliver(aids[2], "2222")
    orders = rt.activations.get_many(f"o{i}" for i in range(4))
    held = activation.bulk_listing(rt, orders.values(), SweepReport())
    name = rt.default_provider
    assert held[(name, aids[2])] == Observation(Seen.CODE, ("2222",))
    assert all(held[(name, a)] is STILL_WAITING for a in (aids[0], aids[1], aids[3]))


def test_single_due_uses_getstatus_and_call_uses_v2(rt: Runtime, provider: FakeProvider, clock: Any) -> None:
    aid = waiting(rt, "o1")
    waiting(rt, "call", activation_type=1)
    provider.deliver(aid, "777")
    provider.calls.clear()
    clock.advance(31)
    sweeping.sweep(rt)
    assert provider.count("get_active_activations") == 0   # only one SMS activation due: no bulk call
    assert provider.count("get_status") == 1 and provider.count("get_status_v2") == 1
    assert rt.activations.get("o1").code == "777"  # type: ignore[union-attr]


def test_listing_not_supported_falls_back(rt: Runtime, provider: FakeProvider, clock: Any) -> None:
    for i in range(3):
        waiting(rt, f"o{i}")
    provider.listing = False
    provider.calls.clear()
    clock.advance(31)
    sweeping.sweep(rt)
    assert provider.count("get_status") == 3


def with_settings(rt: Runtime, **changes: Any) -> Runtime:
    return Runtime(settings=replace(rt.settings, **changes), redis=rt.redis, provider=rt.provider,
                   publish=rt.publish, clock=rt.clock, consumer_name="test")


def test_timeout_cancels_and_early_cancel_denied_rearms(rt: Runtime, provider: FakeProvider, clock: Any) -> None:
    rt = with_settings(rt, activation_timeout=60.0)
    waiting(rt, "o1")
    clock.advance(61)                                       # timed out, but inside the provider's 2 minutes
    assert sweeping.sweep(rt).actions.get("early_cancel_denied") == 1
    order = rt.activations.get("o1")
    assert order.state is State.WAITING                     # type: ignore[union-attr]
    assert rt.deadlines.score("o1") == pytest.approx(order.number_at + 120 + 5, abs=0.01)  # type: ignore[union-attr]
    clock.advance(70)
    sweeping.sweep(rt)
    assert rt.activations.get("o1").state is State.CANCELLED     # type: ignore[union-attr]
    events = stream_events(rt.redis, rt.settings)
    assert events[-2]["type"] == ev.ACTIVATION_CANCELLED and events[-2]["reason"] == "timeout"
    assert events[-1]["type"] == ev.ORDER_FAILED and events[-1]["reason"] == "timeout"   # no number left
    assert rt.deadlines.score("o1") is None


def test_cancel_answer_no_activation_means_cancelled(rt: Runtime, provider: FakeProvider, clock: Any) -> None:
    waiting(rt, "o1")
    rt.orders.cancel("o1")
    provider.fail["cancel_activation"] = [perr.NoActivation()]
    assert activation.command(rt, "o1", "cancel") == "cancelled"
    assert types(rt)[-2:] == [ev.ACTIVATION_CANCELLED, ev.ORDER_CANCELLED]


def test_cancel_refused_because_code_arrived_reconciles(rt: Runtime, provider: FakeProvider, clock: Any) -> None:
    aid = waiting(rt, "o1")
    provider.deliver(aid, "4242")                          # webhook lost
    clock.advance(1300)
    sweeping.sweep(rt)
    order = rt.activations.get("o1")
    assert order.state is State.CODE_RECEIVED and order.code == "4242"  # type: ignore[union-attr]


def test_auto_finish(rt: Runtime, provider: FakeProvider, clock: Any) -> None:
    rt = with_settings(rt, auto_finish=True)
    aid = waiting(rt, "o1")
    provider.deliver(aid, "1")
    clock.advance(31)
    sweeping.sweep(rt)
    assert rt.activations.get("o1").state is State.FINISHED       # type: ignore[union-attr]
    assert provider.activations[aid].state == "FINISHED"
    assert types(rt) == [ev.NUMBER_ASSIGNED, ev.CODE_RECEIVED, ev.ACTIVATION_FINISHED, ev.ORDER_COMPLETED]


def test_finish_timeout_without_auto_finish(rt: Runtime, provider: FakeProvider, clock: Any) -> None:
    aid = waiting(rt, "o1")
    rt.activations.receive_code("o1", code="1", via="webhook", activation_id=aid)
    clock.advance(599)
    sweeping.sweep(rt)
    assert rt.activations.get("o1").state is State.CODE_RECEIVED  # type: ignore[union-attr]
    clock.advance(2)
    sweeping.sweep(rt)
    assert rt.activations.get("o1").state is State.FINISHED       # type: ignore[union-attr]
    assert provider.count("finish_activation") == 1


def test_retry_command_then_second_code_then_finish(rt: Runtime, provider: FakeProvider, clock: Any) -> None:
    aid = waiting(rt, "o1")
    provider.deliver(aid, "1111")
    rt.activations.receive_code("o1", code="1111", via="webhook", activation_id=aid)
    rt.orders.retry("o1")
    assert activation.command(rt, "o1", "retry") == "waiting_retry"
    assert provider.activations[aid].state == "WAIT_RETRY"
    clock.advance(31)
    sweeping.sweep(rt)                                        # WAIT_RETRY still shows 1111: nothing new
    assert rt.activations.get("o1").state is State.WAITING_RETRY  # type: ignore[union-attr]
    provider.deliver(aid, "2222")
    clock.advance(16)
    sweeping.sweep(rt)
    assert rt.activations.get("o1").code == "2222"               # type: ignore[union-attr]
    rt.orders.finish("o1")
    assert activation.command(rt, "o1", "finish") == "finished"
    assert types(rt) == [ev.NUMBER_ASSIGNED, ev.CODE_RECEIVED, ev.CODE_RECEIVED, ev.ACTIVATION_FINISHED,
                         ev.ORDER_COMPLETED]


def test_outage_rearms_with_backoff_never_loses(rt: Runtime, provider: FakeProvider, clock: Any) -> None:
    for i in range(4):
        waiting(rt, f"o{i}")
    provider.outage = True
    provider.calls.clear()
    clock.advance(31)
    report = sweeping.sweep(rt)
    assert report.actions.get("backoff") == 4
    # breaker: one failing bulk call + one failing getStatus, the rest not called at all
    assert len(provider.calls) == 2
    for i in range(4):
        due = rt.deadlines.score(f"o{i}")
        assert due is not None and due > clock.now
        assert rt.activations.get(f"o{i}").state is State.WAITING  # type: ignore[union-attr]
    provider.outage = False
    clock.advance(400)
    sweeping.sweep(rt)
    assert all(rt.deadlines.score(f"o{i}") == pytest.approx(clock.now + 15, abs=0.01) for i in range(4))


def test_two_sweeps_at_once_are_harmless(rt: Runtime, provider: FakeProvider, clock: Any) -> None:
    aids = [waiting(rt, f"o{i}") for i in range(3)]
    for a in aids:
        provider.deliver(a, "9")
    clock.advance(31)
    first = rt.deadlines.claim(100)
    second = sweeping.sweep(rt)                               # a second beat while the first holds the leases
    assert len(first) == 3 and second.claimed == 0
    for d in first:
        activation.advance(rt, d.order_id)
    activation.advance(rt, "o0")                                # and a duplicate run of the same step
    assert types(rt).count(ev.CODE_RECEIVED) == 3


def test_terminal_or_missing_deadline_is_dropped(rt: Runtime, clock: Any) -> None:
    rt.redis.zadd(rt.keys.deadlines, {"ghost": clock.now - 1})
    sweeping.sweep(rt)
    assert rt.deadlines.score("ghost") is None


def test_lost_place_order_task_is_republished(rt: Runtime, clock: Any, published: Any) -> None:
    rt.orders.submit(OrderRequest("tg", order_id="o1"))
    clock.advance(61)
    sweeping.sweep(rt)
    assert published == [("otpflow.place_order", {"order_id": "o1"})]


def test_one_sweep_covers_every_due_batch_with_one_listing(rt: Runtime, provider: FakeProvider, clock: Any) -> None:
    """SWEEP_BATCH bounds each batch, not the sweep: 7 due at a batch of 3 are 3 batches, one bulk listing."""
    small = with_settings(rt, sweep_batch=3)
    aids = [waiting(small, f"o{i}") for i in range(7)]
    provider.deliver(aids[5], "5555")                       # a code found through the first batch's listing
    provider.calls.clear()
    clock.advance(31)
    report = sweeping.sweep(small)
    assert report.claimed == 7 and report.batches == 3
    assert provider.count("get_active_activations") == 1 and provider.count("get_status") == 0
    assert small.activations.get("o5").state is State.CODE_RECEIVED  # type: ignore[union-attr]
    assert all(small.deadlines.score(f"o{i}") == pytest.approx(clock.now + 15, abs=0.01) for i in range(7) if i != 5)


def test_sweep_does_not_take_again_what_it_rearmed_to_now(rt: Runtime, clock: Any) -> None:
    """An entry re-armed to "now" during a sweep (the clock stands still here) waits for the next sweep."""
    from flows.report import SweepReport

    small = with_settings(rt, sweep_batch=1)
    small.redis.zadd(small.keys.deadlines, {"a": clock.now - 2, "b": clock.now - 1})
    handled: list[str] = []

    def handle(due: list[Any]) -> None:
        for d in due:
            handled.append(d.order_id)
            small.redis.zadd(small.keys.deadlines, {d.order_id: clock.now})  # due again at once

    report = SweepReport()
    assert sweeping.in_batches(small, small.deadlines, handle, report, lease=120) == 2
    assert handled == ["a", "b"] and report.batches == 2


def test_the_collector_is_paused_while_a_sweep_runs_and_restored_after(rt: Runtime, provider: FakeProvider,
                                                                         clock: Any, monkeypatch: Any) -> None:
    """A sweep's long-lived bulk rows would trigger full collections that grow faster than the sweep."""
    import gc

    for i in range(3):
        waiting(rt, f"o{i}")
    seen: list[bool] = []
    listing = provider.get_active_activations
    monkeypatch.setattr(provider, "get_active_activations", lambda: (seen.append(gc.isenabled()), listing())[1])
    clock.advance(31)
    assert gc.isenabled()
    assert sweeping.sweep(rt).claimed == 3
    assert seen == [False] and gc.isenabled()
    gc.disable()  # a caller that had it off keeps it off
    try:
        clock.advance(31)
        sweeping.sweep(rt)
        assert len(seen) == 2 and not gc.isenabled()
    finally:
        gc.enable()
