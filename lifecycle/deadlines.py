"""Deadline sets: a record id scored by the unix time its next step is due.

This replaces long Celery ETA tasks (re-delivered after the broker's visibility timeout). Claiming is atomic
with a lease (``lua/claim.lua``): due members get their score pushed to now + lease, so two beats or two
sweepers never handle the same entry at once, and a sweeper that dies lets the lease expire. Setting a deadline
is part of each transition (atomic with the state, :mod:`lifecycle.cas`); this module only claims and counts.
"""
from __future__ import annotations

from dataclasses import dataclass

import redis

from .clock import Clock, system_clock
from .scripts import script

#: default lease: longer than a sweep's batch of provider calls may take
DEFAULT_LEASE = 120.0


@dataclass(frozen=True)
class Due:
    """A claimed deadline: the record and the score it was due at."""

    order_id: str
    due_at: float


class Deadlines:
    """Claim and inspect the due entries of one deadline set (activation orders or rent orders)."""

    def __init__(self, redis_client: redis.Redis, key: str, *, clock: Clock = system_clock) -> None:
        self.redis = redis_client
        self.key = key
        self.clock = clock
        self._claim = script(redis_client, "claim")

    def claim(self, limit: int, *, lease: float = DEFAULT_LEASE, now: float | None = None,
              due_by: float | None = None) -> list[Due]:
        """Atomically take up to ``limit`` entries due by ``due_by`` (default: now) and lease them for ``lease``
        seconds from now."""
        now = self.clock() if now is None else now
        due_by = now if due_by is None else due_by
        raw = self._claim(keys=[self.key], args=[f"{due_by:.3f}", f"{now + lease:.3f}", int(limit)])
        return [Due(str(raw[i]), float(raw[i + 1])) for i in range(0, len(raw), 2)]

    def score(self, order_id: str) -> float | None:
        value = self.redis.zscore(self.key, order_id)
        return float(value) if value is not None else None

    def count(self) -> int:
        return int(self.redis.zcard(self.key))

    def due_count(self, now: float | None = None) -> int:
        now = self.clock() if now is None else now
        return int(self.redis.zcount(self.key, "-inf", now))
