"""Fail fast while Redis is hung: one time-out opens the breaker, and requests answer 503 at once until a probe works.

A stopped (not dead) Redis accepts connections and never answers, so every request would wait out its own socket
time-out (1.5 s) and the threads of a worker would fill with waiting requests; the next ones would then queue
behind them past the provider's patience (HeroSMS: 3 s). After a time-out or a lost connection the breaker opens
for :data:`COOL_OFF` seconds: requests answer 503 with Retry-After at once (the provider retries; nothing was
stored, nothing is lost). The first request after the cool-off probes Redis for real while the others keep the fast
answer; its success closes the breaker, its failure opens it again.

Errors Redis answers quickly (OOM, READONLY, a script error) do not open it: they cost no waiting.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

import redis

#: seconds requests are answered 503 without trying Redis, after a time-out or a lost connection
COOL_OFF = 1.0


def trips(exc: BaseException) -> bool:
    """Whether ``exc`` (or the Redis error it wraps) means "Redis is not answering" rather than a quick refusal."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (redis.exceptions.TimeoutError, redis.exceptions.ConnectionError, TimeoutError)):
            return True
        seen = seen.__cause__
    return False


class RedisBreaker:
    """Per-process breaker shared by the threads of a gunicorn worker."""

    def __init__(self, cool_off: float = COOL_OFF, clock: Callable[[], float] = time.monotonic) -> None:
        self.cool_off = cool_off
        self._clock = clock
        self._open_until = 0.0
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self._open_until != 0.0

    def allow(self) -> bool:
        """True when the caller may use Redis: the breaker is closed, or the cool-off is over and it probes."""
        if self._open_until == 0.0:  # the hot path: no lock
            return True
        now = self._clock()
        with self._lock:
            if self._open_until == 0.0:
                return True
            if now < self._open_until:
                return False
            self._open_until = now + self.cool_off  # this caller probes; the others keep the fast answer
            return True

    def failed(self, exc: BaseException) -> None:
        """Record a failed Redis call; opens the breaker when Redis did not answer."""
        if trips(exc):
            with self._lock:
                self._open_until = self._clock() + self.cool_off

    def succeeded(self) -> None:
        """Record a Redis call that worked: close the breaker."""
        if self._open_until != 0.0:
            with self._lock:
                self._open_until = 0.0
