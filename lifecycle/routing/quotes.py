"""Cached prices and stock per provider, service and country, for cheapest routing (PRICE_CACHE_TTL).

Written by the ``otpflow.refresh_quotes`` task (getPrices or the dialect's variant), read by routing in one
MGET. An entry expires with its TTL, so a stale price is simply absent: routing never waits for a refresh.
"""
from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Sequence, cast

import redis

from ..keys import Keys
from .choose import Candidate, Quote


class QuoteCache:
    """Quotes of every provider, by (provider, service, country)."""

    def __init__(self, redis_client: redis.Redis, keys: Keys, *, ttl: float = 300.0) -> None:
        self.redis = redis_client
        self.keys = keys
        self.ttl = ttl

    def get_many(self, service: str, pairs: Sequence[Candidate]) -> dict[Candidate, Quote | None]:
        if not pairs:
            return {}
        raw = cast("list[str | None]", self.redis.mget([self.keys.quote(c.provider, service, c.country)
                                                        for c in pairs]))
        return {c: _load(r) for c, r in zip(pairs, raw)}

    def put(self, provider: str, service: str, country: int | None, quote: Quote) -> None:
        body = json.dumps({"cost": str(quote.cost), "count": quote.count, "physical": quote.physical})
        self.redis.set(self.keys.quote(provider, service, country), body, px=int(self.ttl * 1000))

    def claim_refresh(self, service: str, country: int | None) -> bool:
        """True for the one caller that should schedule a refresh now (at most one per TTL per service+country)."""
        return bool(self.redis.set(self.keys.quote_refresh(service, country), "1", nx=True,
                                   px=int(max(1.0, self.ttl / 2) * 1000)))


def _load(raw: str | None) -> Quote | None:
    if not raw:
        return None
    try:
        data = json.loads(raw)
        physical = data.get("physical")
        return Quote(Decimal(str(data["cost"])), int(data["count"]), int(physical) if physical is not None else None)
    except (ValueError, KeyError, TypeError, InvalidOperation):
        return None
