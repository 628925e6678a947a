"""Policy mapping of every provider error class we act on, and the timing rules."""
from __future__ import annotations

from decimal import Decimal

import pytest

from config.settings import Settings
from config import domain
from lifecycle.activation.config import PROVIDER_BACKOFF, ActivationConfig
from lifecycle.activation.decisions import Verdict, provider_order_id, purchase_decision
from lifecycle.activation.machine import State
from lifecycle.activation.record import Order
from provider import errors as perr

S = domain.activation_config(Settings(order_max_attempts=3, order_retry_delay=30.0))


def order(**kw: object) -> Order:
    base = dict(order_id="o1", state=State.BUYING, service="tg", created_at=1000.0)
    base.update(kw)
    return Order(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("exc,verdict,reason", [
    (perr.NoNumbers(), Verdict.RETRY_LATER, "no_numbers"),
    (perr.NoBalance(), Verdict.FAIL, "no_balance"),
    (perr.WrongMaxPrice(argument="0.8"), Verdict.FAIL, "wrong_max_price"),
    (perr.Banned(argument="2030-1-1 00-00-00"), Verdict.FAIL, "banned"),
    (perr.BadKey(), Verdict.FAIL, "bad_key"),
    (perr.NoKey(), Verdict.FAIL, "bad_key"),
    (perr.BadService(), Verdict.FAIL, "bad_service"),
    (perr.OrderAlreadyExists(), Verdict.RECOVER, "order_already_exists"),
    (perr.SqlError(), Verdict.BACKOFF, "error_sql"),
    (perr.ServerError(http_status=500), Verdict.BACKOFF, "server_error"),
    (perr.ReadTimeout(possibly_processed=True), Verdict.BACKOFF, "read_timeout"),
    (perr.ChannelsLimit(), Verdict.BACKOFF, "channels_limit"),
    (perr.UnexpectedAnswer(body="<html>"), Verdict.BACKOFF, "unexpected_answer"),
])
def test_purchase_error_mapping(exc: perr.ProviderError, verdict: Verdict, reason: str) -> None:
    d = purchase_decision(exc, order(), S)
    assert (d.verdict, d.reason) == (verdict, reason)


def test_no_numbers_bounded_by_max_attempts() -> None:
    assert purchase_decision(perr.NoNumbers(), order(attempts=1), S).verdict is Verdict.RETRY_LATER
    d = purchase_decision(perr.NoNumbers(), order(attempts=2), S)
    assert d.verdict is Verdict.FAIL and d.reason == "no_numbers"
    assert purchase_decision(perr.NoNumbers(), order(), S).delay == 30.0


def test_transient_bounded() -> None:
    assert purchase_decision(perr.SqlError(), order(fails=7), S).verdict is Verdict.FAIL


def test_rate_limit_honours_retry_after() -> None:
    d = purchase_decision(perr.RateLimited(retry_after=90.0), order(), S)
    assert d.verdict is Verdict.BACKOFF and d.delay >= 90.0


def test_backoff_grows_with_jitter_and_cap() -> None:
    def backoff(fails: int, rng: object) -> float:
        return PROVIDER_BACKOFF.delay(fails, rng=rng)  # type: ignore[arg-type]

    assert backoff(0, rng=lambda: 0.0) == 2.5 and backoff(0, rng=lambda: 1.0) == 5.0
    assert backoff(3, rng=lambda: 1.0) == 40.0
    assert backoff(30, rng=lambda: 1.0) == 300.0


def test_provider_order_id_is_stable_per_attempt() -> None:
    assert provider_order_id(order(calls=1)) == provider_order_id(order(calls=1, fails=3)) == "o1-1"
    assert provider_order_id(order(calls=2)) == "o1-2"
    long = provider_order_id(order(order_id="x" * 100))
    assert len(long) <= 40


def test_timing() -> None:
    t = ActivationConfig(poll_after=30, poll_interval=15, activation_timeout=1200, early_cancel_seconds=120,
                         auto_finish=False, finish_timeout=600)
    w = order(state=State.WAITING, number_at=1000.0)
    assert t.next_due(w, 1000.0) == 1030.0
    assert t.after_poll(w, 1100.0) == 1115.0
    assert t.after_poll(w, 2199.0) == 2200.0            # never past the timeout
    assert t.timeout_at(w) == 2200.0
    assert t.after_early_cancel_denied(w, 1001.0) == 1125.0
    c = order(state=State.CODE_RECEIVED, number_at=1000.0, code_at=1100.0)
    assert t.next_due(c, 1100.0) == 1700.0
    assert t.next_due(order(state=State.FAILED), 5.0) is None
    assert Decimal("1")
