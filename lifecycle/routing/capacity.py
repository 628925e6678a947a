"""How many numbers may be open at a provider at once (PROVIDER_<N>_MAX_ACTIVE): a provider answers
CHANNELS_LIMIT past its own limit, and an account may want fewer open than that.

A purchase first claims a slot in one atomic step (``lua/capacity.lua``); the number it buys keeps the slot
(``open``, set in the same transition that records the number), and ending the number gives it back in the same
transition that ends it, so the count is exact however many workers buy at once. A refused purchase gives its slot
back; a claim whose worker died expires.
"""
from __future__ import annotations

from typing import cast

import redis

from ..cas import Side
from ..keys import Keys
from ..scripts import script

OPEN = "open"


class Capacity:
    """Purchase slots per provider."""

    def __init__(self, redis_client: redis.Redis, keys: Keys) -> None:
        self.redis = redis_client
        self.keys = keys
        self._claim = script(redis_client, "capacity")

    def claim(self, provider: str, order_id: str, limit: int, *, now: float, hold_for: float) -> bool:
        """True when ``order_id`` holds a slot at ``provider`` (claimed now, or already); False: it is full."""
        return bool(self._claim(keys=[self.keys.open_numbers(provider)],
                                args=[f"{now:.3f}", order_id, limit, f"{now + hold_for:.3f}"]))

    def release(self, provider: str, order_id: str) -> None:
        """A purchase that bought nothing gives its claimed slot back (an open number keeps its own)."""
        key = self.keys.open_numbers(provider)
        if self.redis.hget(key, order_id) != OPEN:
            self.redis.hdel(key, order_id)

    def opened(self, provider: str, order_id: str) -> Side:
        """With ``number.assigned``: the claim becomes the open number's slot."""
        return Side("hset", self.keys.open_numbers(provider), order_id, value=OPEN)

    def closed(self, provider: str, order_id: str) -> Side:
        """With the end of a number: its slot is free."""
        return Side("hdel", self.keys.open_numbers(provider), order_id)

    def open_count(self, provider: str) -> int:
        return int(cast(int, self.redis.hlen(self.keys.open_numbers(provider))))
