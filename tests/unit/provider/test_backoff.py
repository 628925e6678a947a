"""Backoff: the step doubles up to the cap, jitter stays inside its bounds, the floor holds, and the domain's
purchase backoff (5 s base, 300 s cap, half jitter, 1 s floor) is one of its instances."""
from __future__ import annotations

import random
from typing import Callable

import pytest

from provider import Backoff, Jitter
from provider.transport import RetryPolicy

LOW, MID, HIGH = 0.0, 0.5, 1.0 - 2 ** -53   # the extremes random.random() can return, and the middle


def fixed(u: float) -> Callable[[], float]:
    return lambda: u


def test_step_doubles_from_base_up_to_cap() -> None:
    b = Backoff(0.5, 8.0)
    assert [b.step(n) for n in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert b.step(-3) == 0.5                    # a negative attempt counts as the first
    assert b.step(10_000) == 8.0                # no overflow however many attempts


@pytest.mark.parametrize("attempt", [0, 1, 3, 4, 12])
def test_full_jitter_bounds(attempt: int) -> None:
    b = Backoff(0.5, 8.0, Jitter.FULL)
    step = b.step(attempt)
    assert b.delay(attempt, rng=fixed(LOW)) == 0.0
    assert b.delay(attempt, rng=fixed(MID)) == step / 2
    assert step * 0.99 < b.delay(attempt, rng=fixed(HIGH)) <= step


@pytest.mark.parametrize("attempt", [0, 1, 3, 6, 12])
def test_half_jitter_bounds(attempt: int) -> None:
    b = Backoff(5.0, 300.0, Jitter.HALF)
    step = b.step(attempt)
    assert b.delay(attempt, rng=fixed(LOW)) == step / 2
    assert b.delay(attempt, rng=fixed(MID)) == step * 0.75
    assert step * 0.99 < b.delay(attempt, rng=fixed(HIGH)) <= step


def test_floor_is_a_lower_bound_on_the_jittered_delay() -> None:
    b = Backoff(0.5, 8.0, Jitter.FULL, floor=1.0)
    assert b.delay(0, rng=fixed(LOW)) == 1.0
    assert b.delay(4, rng=fixed(MID)) == 4.0    # above the floor: untouched
    tiny = Backoff(0.1, 0.2, Jitter.HALF, floor=1.0)
    assert tiny.delay(5, rng=fixed(HIGH)) == 1.0   # a floor above the cap wins


def test_cap_bounds_every_delay() -> None:
    draws = random.Random(7)
    for jitter in Jitter:
        b = Backoff(1.0, 30.0, jitter)
        assert all(b.delay(n, rng=draws.random) <= 30.0 for n in range(40))


@pytest.mark.parametrize("field,value", [("base", -1.0), ("cap", float("inf")), ("floor", float("nan"))])
def test_invalid_parameters_are_refused(field: str, value: float) -> None:
    kwargs = {"base": 1.0, "cap": 2.0, field: value}
    with pytest.raises(ValueError, match=field):
        Backoff(**kwargs)  # type: ignore[arg-type]


def _domain_formula(fails: int, rng: Callable[[], float]) -> float:
    """The domain's purchase backoff as it is written there: 5 s base, 300 s cap, half jitter, 1 s floor."""
    step = min(300.0, 5.0 * (2 ** max(0, fails)))
    return max(1.0, step * (0.5 + 0.5 * rng()))


def test_the_domain_policy_is_a_backoff_instance() -> None:
    ours = Backoff(5.0, 300.0, Jitter.HALF, floor=1.0)
    draws = [LOW, MID, HIGH, *random.Random(11).sample(range(1, 10_000), 40)]
    for raw in draws:
        u = raw / 10_000 if isinstance(raw, int) else raw
        for fails in range(-1, 20):
            assert ours.delay(fails, rng=fixed(u)) == _domain_formula(fails, fixed(u)), (fails, u)


def test_retry_policy_waits_with_its_backoff_and_honours_retry_after() -> None:
    policy = RetryPolicy(max_retries=2, backoff=Backoff(1.0, 4.0, Jitter.FULL))
    assert policy.delay(1, rng=fixed(MID)) == 1.0
    assert policy.delay(0, 7.0, rng=fixed(MID)) == 7.0          # never less than the server asked
    assert policy.delay(0, 3600.0, rng=fixed(MID)) == 60.0      # ... capped at max(cap, 60)
    wide = RetryPolicy(backoff=Backoff(1.0, 120.0))
    assert wide.delay(0, 3600.0, rng=fixed(LOW)) == 120.0


def test_retry_policy_default_is_half_a_second_to_eight_with_full_jitter() -> None:
    assert RetryPolicy() == RetryPolicy(3, Backoff(0.5, 8.0, Jitter.FULL))
