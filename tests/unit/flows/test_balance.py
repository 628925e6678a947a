"""The balance watch (otpflow.check_balances) and routing that skips a provider whose balance cannot pay."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from config.settings import Settings
from flows import activation
from flows.balance import check_balances
from flows.runtime import Runtime
from lifecycle.activation import OrderRequest, State
from lifecycle.routing import Quote
from lifecycle.routing.balance import Crossing
from provider import errors as perr
from provider.models import Balance

from .conftest import Published, stream_events
from .fakes import FakeProvider


class Funded(FakeProvider):
    """FakeProvider with an account balance (getBalance)."""

    def __init__(self, clock: Any, balance: str = "100") -> None:
        super().__init__(clock)
        self.balance = Decimal(balance)

    def get_balance(self) -> Balance:
        self._enter("get_balance")
        return Balance(self.balance)


ENV = {"PROVIDERS": "alpha,beta", "PROVIDER_ALPHA_DIALECT": "sms-activate", "PROVIDER_ALPHA_API_KEY": "ka",
       "PROVIDER_BETA_DIALECT": "grizzly", "PROVIDER_BETA_API_KEY": "kb", "BALANCE_LOW": "10",
       "PROVIDER_BETA_BALANCE_LOW": "50", "BALANCE_CHECK_INTERVAL": "300", "ORDER_MAX_NUMBERS": "1"}


@pytest.fixture
def two(fake_redis: Any, clock: Any) -> tuple[Runtime, Funded, Funded]:
    alpha, beta = Funded(clock), Funded(clock)
    beta._next = 20_000_005_000
    rt = Runtime(settings=Settings.from_env(ENV), redis=fake_redis, provider={"alpha": alpha, "beta": beta},
                 publish=Published(), clock=clock, consumer_name="test")
    return rt, alpha, beta


def balance_events(rt: Runtime) -> list[dict[str, Any]]:
    return [e for e in stream_events(rt.redis, rt.settings) if e["type"].startswith("balance.")]


def test_each_provider_is_read_and_crosses_its_own_threshold(two: Any, clock: Any) -> None:
    rt, alpha, beta = two
    assert check_balances(rt) == {"alpha": Crossing.NONE, "beta": Crossing.NONE}
    alpha.balance, beta.balance = Decimal("9.5"), Decimal("40")    # alpha < 10, beta < its own 50
    clock.advance(300)
    assert check_balances(rt) == {"alpha": Crossing.LOW, "beta": Crossing.LOW}
    clock.advance(300)
    assert check_balances(rt) == {"alpha": Crossing.NONE, "beta": Crossing.NONE}   # still low: no repeat
    beta.balance = Decimal("50")
    clock.advance(300)
    assert check_balances(rt)["beta"] is Crossing.OK
    got = [(e["type"], e["provider"], e["balance"], e["threshold"], e.get("currency")) for e in balance_events(rt)]
    assert got == [("balance.low", "alpha", "9.5", "10", 840), ("balance.low", "beta", "40", "50", 643),
                   ("balance.ok", "beta", "50", "50", 643)]


def test_a_provider_that_does_not_answer_is_skipped_and_keeps_its_last_reading(two: Any, clock: Any) -> None:
    rt, alpha, beta = two
    check_balances(rt)
    alpha.fail["get_balance"] = [perr.ServerError(code=None, http_status=500, action="getBalance")]
    clock.advance(300)
    assert check_balances(rt) == {"alpha": None, "beta": Crossing.NONE}
    reading = rt.balances.last("alpha")
    assert reading is not None and reading.at == clock.now - 300


def test_a_provider_whose_balance_read_keeps_failing_opens_its_breaker(two: Any, clock: Any) -> None:
    rt, alpha, beta = two
    alpha.fail["get_balance"] = [perr.ServerError(code=None, http_status=502, action="getBalance")] * 3
    beta.fail["get_balance"] = [perr.BadKey()] * 3                   # not an outage: the breaker is not told
    for _ in range(3):
        check_balances(rt)
        clock.advance(1)
    assert not rt.health.allow("alpha") and rt.health.allow("beta")
    assert rt.health.open_providers(["alpha", "beta"]) == {"alpha"}


def test_the_task_runs_the_check_and_the_beat_schedules_it(two: Any) -> None:
    from tasks import runtime as runtime_mod
    from tasks.balance import check_balances as task
    from worker.celery_app import celery_config

    rt, _alpha, _beta = two
    runtime_mod.set_runtime(rt)
    try:
        assert task.apply().get() == 2
    finally:
        runtime_mod.set_runtime(None)
    entry = celery_config(Settings(balance_check_interval=120.0))["beat_schedule"]["otpflow-check-balances"]
    assert entry == {"task": "otpflow.check_balances", "schedule": 120.0, "options": {"expires": 120.0}}


# ---------------------------------------------------------------- routing
def order(rt: Runtime, order_id: str = "o1", **kw: Any) -> str:
    rt.orders.submit(OrderRequest("tg", country=0, order_id=order_id, **kw))
    return activation.place_order(rt, order_id)


def test_a_provider_whose_balance_cannot_pay_the_cap_is_not_asked(two: Any, clock: Any) -> None:
    rt, alpha, beta = two
    rt.balances.record("alpha", Decimal("0.4"), threshold=None, currency=840, at=clock.now)
    assert order(rt, max_price=Decimal("0.5")) == "waiting"
    assert alpha.count("get_number_v2") == 0 and beta.count("get_number_v2") == 1
    assert rt.activations.get("o1").provider == "beta"  # type: ignore[union-attr]


def test_the_cached_quote_is_the_price_when_the_order_has_no_cap(two: Any, clock: Any) -> None:
    rt, alpha, beta = two
    rt.balances.record("alpha", Decimal("0.4"), threshold=None, currency=840, at=clock.now)
    rt.quotes.put("alpha", "tg", 0, Quote(Decimal("0.45"), 10))
    assert order(rt) == "waiting"
    assert alpha.count("get_number_v2") == 0
    assert rt.activations.get("o1").provider == "beta"  # type: ignore[union-attr]
    rt.quotes.put("alpha", "tg", 0, Quote(Decimal("0.35"), 10))        # now it can pay the quote
    assert order(rt, "o2", max_price=Decimal("1")) == "waiting"         # the cap is more, the quote is what it needs
    assert rt.activations.get("o2").provider == "alpha"  # type: ignore[union-attr]


@pytest.mark.parametrize("why", ["no price known", "stale balance", "enough money"])
def test_the_provider_decides_whenever_we_do_not_know(two: Any, clock: Any, why: str) -> None:
    rt, alpha, _beta = two
    amount = Decimal("5") if why == "enough money" else Decimal("0.1")
    rt.balances.record("alpha", amount, threshold=None, currency=840, at=clock.now)
    if why == "stale balance":
        clock.advance(2 * 300 + 1)
    cap = None if why == "no price known" else Decimal("0.5")
    assert order(rt, max_price=cap) == "waiting"
    assert alpha.count("get_number_v2") == 1


def test_when_no_provider_can_pay_the_order_fails_no_balance_without_a_purchase(two: Any, clock: Any) -> None:
    rt, alpha, beta = two
    for name in ("alpha", "beta"):
        rt.balances.record(name, Decimal("0.1"), threshold=None, currency=840, at=clock.now)
    assert order(rt, max_price=Decimal("0.5")) == "failed"
    assert alpha.count("get_number_v2") == 0 and beta.count("get_number_v2") == 0
    final = rt.activations.get("o1")
    assert final is not None and final.state is State.FAILED and final.reason == "no_balance"
    assert [e["reason"] for e in stream_events(rt.redis, rt.settings) if e["type"] == "order.failed"] == \
        ["no_balance"]


def test_the_orders_own_preference_still_holds_around_a_skipped_provider(two: Any, clock: Any) -> None:
    rt, alpha, beta = two
    rt.balances.record("beta", Decimal("0.1"), threshold=None, currency=643, at=clock.now)
    assert order(rt, max_price=Decimal("0.5"), providers=("beta", "alpha")) == "waiting"
    assert beta.count("get_number_v2") == 0
    assert rt.activations.get("o1").provider == "alpha"  # type: ignore[union-attr]
