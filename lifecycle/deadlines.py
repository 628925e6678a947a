"""The deadlines sorted set: order id scored by the unix time its next step is due.

This replaces long Celery ETA tasks (re-delivered after the broker's visibility timeout). Claiming is atomic
with a lease (``lua/claim.lua``): due members get their score pushed to now + lease, so two beats or two
sweepers never handle the same entry at once, and a sweeper that dies lets the lease expire.
"""
from __future__ import annotations

from dataclasses import dataclass

import redis

from config.settings import Settings

from .keys import Keys
from .scripts import script
from .store import Clock, system_clock

#: default lease: longer than a sweep's batch of provider calls may take
DEFAULT_LEASE = 120.0


@dataclass(frozen=True)
class Due:
    """A claimed deadline: the order and the score it was due at."""

    order_id: str
    due_at: float


class Deadlines:
    """Claim and inspect due deadlines; setting them is part of each transition (atomic with the state)."""

    def __init__(self, redis_client: redis.Redis, settings: Settings, *, clock: Clock = system_clock) -> None:
        self.redis = redis_client
        self.keys = Keys(settings)
        self.clock = clock
        self._claim = script(redis_client, "claim")

    def claim(self, limit: int, *, lease: float = DEFAULT_LEASE, now: float | None = None,
              key: str | None = None) -> list[Due]:
        """Atomically take up to ``limit`` due entries and lease them for ``lease`` seconds.

        ``key``: another deadline set (rents keep theirs apart, so their ids never mix with order ids)."""
        now = self.clock() if now is None else now
        raw = self._claim(keys=[key or self.keys.deadlines], args=[f"{now:.3f}", f"{now + lease:.3f}", int(limit)])
        return [Due(str(raw[i]), float(raw[i + 1])) for i in range(0, len(raw), 2)]

    def score(self, order_id: str) -> float | None:
        value = self.redis.zscore(self.keys.deadlines, order_id)
        return float(value) if value is not None else None

    def count(self) -> int:
        return int(self.redis.zcard(self.keys.deadlines))

    def due_count(self, now: float | None = None) -> int:
        now = self.clock() if now is None else now
        return int(self.redis.zcount(self.keys.deadlines, "-inf", now))
