"""Exponential backoff with jitter: the one backoff type of otpflow.

The client's transport retries, the domain's re-armed deadlines and the Celery task base all wait with it. It
lives here because the provider package imports nothing of otpflow, while everything else may import provider.

``step(n) = min(cap, base * 2**n)`` for attempt ``n`` (0 for the first retry). Jitter spreads clients that failed
together so they do not come back together: FULL draws from the whole step (the widest spread, the shortest
mean wait), HALF keeps at least half of it (the wait still grows with every attempt). ``floor`` is a lower
bound on the jittered delay.
"""

from __future__ import annotations

import enum
import math
import random
from dataclasses import dataclass
from typing import Callable

__all__ = ["Backoff", "Jitter"]


class Jitter(enum.Enum):
    """How a step is randomised; ``u`` is a uniform draw from [0, 1)."""

    #: ``uniform(0, step)``: ``step * u``
    FULL = "full"
    #: ``step * uniform(0.5, 1)``: ``step * (0.5 + 0.5 * u)``
    HALF = "half"


@dataclass(frozen=True)
class Backoff:
    """Delays that double with each attempt up to ``cap``, jittered, never below ``floor`` (all in seconds)."""

    base: float
    cap: float
    jitter: Jitter = Jitter.FULL
    floor: float = 0.0

    def __post_init__(self) -> None:
        for name in ("base", "cap", "floor"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"Backoff.{name} must be a finite number >= 0, not {value!r}")

    def step(self, attempt: int) -> float:
        """The un-jittered delay of ``attempt``: ``min(cap, base * 2**max(0, attempt))``."""
        exponent = max(0, attempt)
        try:
            raw = self.base * 2.0 ** exponent
        except OverflowError:  # 2.0**exponent beyond a float: far past any cap
            raw = math.inf if self.base > 0 else 0.0
        return min(self.cap, raw)

    def delay(self, attempt: int, *, rng: Callable[[], float] = random.random) -> float:
        """The jittered delay of ``attempt``, at least ``floor``; ``rng`` returns a uniform draw from [0, 1)."""
        step = self.step(attempt)
        u = rng()
        jittered = step * u if self.jitter is Jitter.FULL else step * (0.5 + 0.5 * u)
        return max(self.floor, jittered)
