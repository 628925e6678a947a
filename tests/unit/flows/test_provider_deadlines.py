"""The activation flow with the provider's own deadlines: a number without a code is cancelled CANCEL_MARGIN before
the free-cancel time the provider stated (after it, HeroSMS answers FREE_CANCELLATION_EXPIRED and keeps the money),
per-service timeouts, and an ACTIVATION_TIMEOUT shorter than the early-cancel window."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from config.settings import Settings
from flows import activation
from flows import sweep as sweeping
from flows.runtime import Runtime
from lifecycle.activation import OrderRequest, State
from lifecycle.outbox import events as ev
from provider import errors as perr
from provider.models import Activation

from .conftest import Published, stream_events
from .fakes import FakeProvider


class TimedProvider(FakeProvider):
    """States each activation's end and free-cancel time in getNumberV2 (naive dates, on a clock three hours ahead
    of ours: its zone), and refuses a cancel after the free-cancel time as HeroSMS does."""

    def __init__(self, clock: Any, *, window: float = 600.0, lifetime: float = 1200.0) -> None:
        super().__init__(clock)
        self.window = window
        self.lifetime = lifetime

    def _theirs(self, at: float) -> datetime:
        return datetime.fromtimestamp(at + 3 * 3600, tz=timezone.utc).replace(tzinfo=None)

    def get_number_v2(self, service: str, country: int | None = None, order_id: str | None = None,
                      **kw: Any) -> Activation:
        act = super().get_number_v2(service, country, order_id, **kw)
        bought = self._theirs(self.activations[act.activation_id].created)
        return replace(act, activation_time=bought, end_time=bought + timedelta(seconds=self.lifetime),
                       cancel_time=bought + timedelta(seconds=self.window))

    def cancel_activation(self, activation_id: str) -> str:
        act = self.activations.get(str(activation_id))
        if act is not None and act.state == "WAIT_CODE" and self.clock() - act.created > self.window:
            self.calls.append(("cancel_activation", (activation_id,)))
            raise perr.FreeCancellationExpired()
        return super().cancel_activation(activation_id)


def runtime(fake_redis: Any, clock: Any, provider: FakeProvider, **env: str) -> Runtime:
    base = {"ACTIVATION_TIMEOUT": "1200", "CANCEL_MARGIN": "60", "POLL_AFTER": "30", "POLL_INTERVAL": "15",
            "ORDER_MAX_NUMBERS": "1"}
    return Runtime(settings=Settings.from_env({**base, **env}), redis=fake_redis, provider=provider,
                   publish=Published(), clock=clock, consumer_name="test")


def cancelled(rt: Runtime) -> list[dict[str, Any]]:
    return [e for e in stream_events(rt.redis, rt.settings) if e["type"] == ev.ACTIVATION_CANCELLED]


def sweep_at(rt: Runtime, clock: Any, offset: float, start: float) -> None:
    clock.now = start + offset
    sweeping.sweep(rt)


def test_cancelled_before_the_free_cancel_time_not_at_activation_timeout(fake_redis: Any, clock: Any) -> None:
    provider = TimedProvider(clock, window=600)
    rt = runtime(fake_redis, clock, provider)
    start = clock.now
    rt.orders.submit(OrderRequest("tg", country=0, order_id="o1"))
    assert activation.place_order(rt, "o1") == "waiting"
    order = rt.activations.get("o1")
    assert order is not None and order.cancel_by == pytest.approx(start + 600, abs=0.01)
    assert order.end_at == pytest.approx(start + 1200, abs=0.01)
    for offset in range(30, 540, 15):           # the polls of the first nine minutes cancel nothing
        sweep_at(rt, clock, offset, start)
    assert provider.count("cancel_activation") == 0
    assert rt.activations.get("o1").state is State.WAITING  # type: ignore[union-attr]
    sweep_at(rt, clock, 540, start)             # the free-cancel time less CANCEL_MARGIN
    assert provider.count("cancel_activation") == 1
    (event,) = cancelled(rt)
    assert event["reason"] == "timeout"         # refunded, not free_cancellation_expired
    assert provider.activations[order.activation_id].state == "CANCELLED"  # type: ignore[index]


def test_without_the_providers_times_the_cancel_comes_too_late(fake_redis: Any, clock: Any) -> None:
    """The same provider rules, but the purchase answer states no times: ACTIVATION_TIMEOUT (1200 s) is past the
    free-cancel window and the cancel is refused (what the provider's times prevent)."""
    class Silent(TimedProvider):
        def get_number_v2(self, service: str, country: int | None = None, order_id: str | None = None,
                          **kw: Any) -> Activation:
            return replace(super().get_number_v2(service, country, order_id, **kw), end_time=None,
                           cancel_time=None)

    provider = Silent(clock, window=600)
    rt = runtime(fake_redis, clock, provider)
    start = clock.now
    rt.orders.submit(OrderRequest("tg", country=0, order_id="o1"))
    activation.place_order(rt, "o1")
    sweep_at(rt, clock, 1200, start)
    assert [e["reason"] for e in cancelled(rt)] == ["free_cancellation_expired"]


def test_a_service_timeout_waits_longer_but_not_past_the_providers_end(fake_redis: Any, clock: Any) -> None:
    provider = TimedProvider(clock, window=3000, lifetime=1800)
    rt = runtime(fake_redis, clock, provider, SERVICE_TIMEOUTS="ya:2400")
    start = clock.now
    rt.orders.submit(OrderRequest("ya", country=0, order_id="o1"))
    activation.place_order(rt, "o1")
    sweep_at(rt, clock, 1300, start)            # past ACTIVATION_TIMEOUT: ya waits longer
    assert cancelled(rt) == []
    sweep_at(rt, clock, 1739, start)
    assert cancelled(rt) == []
    sweep_at(rt, clock, 1740, start)            # the activation's end (1800 s) less the margin, before 2400 s
    assert [e["reason"] for e in cancelled(rt)] == ["timeout"]


def test_other_services_keep_the_activation_timeout(fake_redis: Any, clock: Any) -> None:
    provider = FakeProvider(clock)
    rt = runtime(fake_redis, clock, provider, SERVICE_TIMEOUTS="ya:2400")
    start = clock.now
    rt.orders.submit(OrderRequest("tg", country=0, order_id="o1"))
    activation.place_order(rt, "o1")
    sweep_at(rt, clock, 1199, start)
    assert cancelled(rt) == []
    sweep_at(rt, clock, 1200, start)
    assert [e["reason"] for e in cancelled(rt)] == ["timeout"]


def test_an_activation_timeout_inside_the_early_cancel_window_cancels_at_the_first_allowed_moment(
        fake_redis: Any, clock: Any) -> None:
    """ACTIVATION_TIMEOUT=60 with EARLY_CANCEL_SECONDS=120 is a valid setting: waiting stops at 60 s, the cancel
    the provider denies then is sent again just after the two-minute mark, and goes through."""
    provider = FakeProvider(clock)
    rt = runtime(fake_redis, clock, provider, ACTIVATION_TIMEOUT="60", EARLY_CANCEL_SECONDS="120",
                 PROVIDER_API_KEY="k", WEBHOOK_TOKEN="t" * 20)
    rt.settings.require("worker")
    start = clock.now
    rt.orders.submit(OrderRequest("tg", country=0, order_id="o1"))
    activation.place_order(rt, "o1")
    sweep_at(rt, clock, 30, start)              # the first poll, nothing yet
    assert provider.count("cancel_activation") == 0
    sweep_at(rt, clock, 60, start)              # waiting stops: the provider says too early
    assert provider.count("cancel_activation") == 1 and cancelled(rt) == []
    assert rt.deadlines.score("o1") == pytest.approx(start + 125, abs=0.01)
    sweep_at(rt, clock, 124, start)             # nothing is due before the mark
    assert provider.count("cancel_activation") == 1
    sweep_at(rt, clock, 125, start)
    assert provider.count("cancel_activation") == 2
    assert [e["reason"] for e in cancelled(rt)] == ["timeout"]
