"""Each provider's health, shared by every worker through Redis: a circuit breaker per provider.

A transient failure (an outage, a 5xx, a time-out) adds to the provider's failure count; at ``threshold``
consecutive failures the breaker opens for ``cooldown`` seconds and routing skips the provider. After the
cool-down it is half-open: exactly one caller (a SET NX probe) may try it; a success closes the breaker, a
failure opens it again. A rate limit opens it at once for the provider's ``Retry-After``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, cast

import redis

from ..clock import Clock, system_clock
from ..keys import Keys
from ..scripts import script


@dataclass(frozen=True)
class HealthConfig:
    """When a provider counts as down (consecutive failures) and for how long it is skipped (PROVIDER_COOLDOWN)."""

    threshold: int = 3
    cooldown: float = 30.0
    #: how long one half-open probe may take before another caller may probe
    probe_ttl: float = 30.0


class ProviderHealth:
    """The breakers of every provider."""

    def __init__(self, redis_client: redis.Redis, keys: Keys, config: HealthConfig = HealthConfig(), *,
                 clock: Clock = system_clock) -> None:
        self.redis = redis_client
        self.keys = keys
        self.config = config
        self.clock = clock
        self._failed = script(redis_client, "breaker_failed")

    def allow(self, provider: str) -> bool:
        """May a call go to ``provider`` now? Closed: yes; open: no; half-open: yes for exactly one caller."""
        raw = cast("list[str | None]", self.redis.hmget(self.keys.breaker(provider), ["fails", "open_until"]))
        fails, open_until = int(raw[0] or 0), float(raw[1] or 0)
        if fails < self.config.threshold and open_until == 0:
            return True
        if self.clock() < open_until:
            return False
        return bool(self.redis.set(self.keys.breaker_probe(provider), "1", nx=True,
                                   px=int(self.config.probe_ttl * 1000)))

    def open_providers(self, providers: Iterable[str]) -> set[str]:
        """The providers whose breaker is open now (for display: routing asks :meth:`allow`)."""
        names = list(providers)
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.hget(self.keys.breaker(name), "open_until")
        now = self.clock()
        return {n for n, v in zip(names, pipe.execute()) if v and float(v) > now}

    def failed(self, provider: str, *, retry_after: float | None = None) -> float:
        """Count one transient failure (or a rate limit); returns the time the breaker is open until (0: closed)."""
        now = self.clock()
        raw = self._failed(keys=[self.keys.breaker(provider), self.keys.breaker_probe(provider)],
                           args=[f"{now:.3f}", self.config.threshold, f"{self.config.cooldown:.3f}",
                                 f"{retry_after or 0:.3f}"])
        return float(raw or 0)

    def succeeded(self, provider: str) -> None:
        """A call went through: close the breaker."""
        self.redis.delete(self.keys.breaker(provider), self.keys.breaker_probe(provider))
