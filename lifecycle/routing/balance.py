"""Each provider's last balance, shared through Redis, and the crossings of its low-balance threshold.

Every beat schedules a balance check, so several may read the same provider at once; :meth:`BalanceStore.record`
stores a reading and detects a crossing in one Lua step (``lua/balance.lua``): a reading older than the stored one
is ignored, and a crossing is a compare-and-set on the count of crossings, so ``balance.low`` and ``balance.ok`` are
each written exactly once per crossing, with an id made of the provider and the crossing's number.

Routing reads the last balance to skip a provider that cannot pay a purchase (:func:`can_pay`), instead of asking
it and collecting ``NO_BALANCE``; a reading older than ``max_age`` says nothing.
"""
from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Sequence, cast

import redis

from ..clock import Clock, system_clock, ts
from ..keys import Keys
from ..outbox.events import EventType, OutboxConfig, make_provider_event
from ..scripts import script

#: compare-and-set rounds before a reading gives up (each lost round means another reading crossed meanwhile)
MAX_ROUNDS = 8


class Crossing(enum.StrEnum):
    """What recording a balance did."""

    NONE = "none"    # stored; on the same side of the threshold as before (or no threshold)
    LOW = "low"      # it fell below the threshold: balance.low was written
    OK = "ok"        # it came back to the threshold or above: balance.ok was written
    OLD = "old"      # a newer reading was stored already: this one was ignored


@dataclass(frozen=True)
class BalanceReading:
    """A provider's balance as last read (getBalance), in the account's currency, and when."""

    amount: Decimal
    at: float
    low: bool = False


class BalanceError(RuntimeError):
    """The balance script answered something unexpected, or kept losing its compare-and-set (a bug)."""


class BalanceStore:
    """The last balance of every provider, and its threshold crossings as events."""

    def __init__(self, redis_client: redis.Redis, keys: Keys, outbox: OutboxConfig = OutboxConfig(), *,
                 clock: Clock = system_clock) -> None:
        self.redis = redis_client
        self.keys = keys
        self.outbox = outbox
        self.clock = clock
        self._record = script(redis_client, "balance")

    def record(self, provider: str, amount: Decimal, *, threshold: Decimal | None, currency: int | None,
               at: float | None = None) -> Crossing:
        """Store ``amount`` as read at ``at`` (default: now); write ``balance.low`` / ``balance.ok`` when it
        crossed ``threshold`` (None: no threshold, only stored)."""
        at = self.clock() if at is None else at
        below = "" if threshold is None else ("1" if amount < threshold else "0")
        key = self.keys.balance(provider)
        for _ in range(MAX_ROUNDS):
            seen = cast("str | None", self.redis.hget(key, "crossings")) or "0"
            nxt = str(int(seen) + 1)
            fields = {"balance": str(amount), "currency": currency,
                      "threshold": None if threshold is None else str(threshold)}
            low = make_provider_event(EventType.BALANCE_LOW, provider, at, discriminator=nxt, **fields)
            ok = make_provider_event(EventType.BALANCE_OK, provider, at, discriminator=nxt, **fields)
            raw = cast("list[str]", self._record(
                keys=[key, self.keys.events],
                args=[ts(at), str(amount), below, seen, _event(low.type.value, low.to_json()),
                      _event(ok.type.value, ok.to_json()), self.outbox.maxlen]))
            status = raw[0]
            if status == "recorded":
                return Crossing.NONE
            if status == "old":
                return Crossing.OLD
            if status == "crossed":
                return Crossing.LOW if below == "1" else Crossing.OK
            if status != "retry":
                raise BalanceError(f"balance script answered {raw!r}")
        raise BalanceError(f"balance of {provider}: compare-and-set lost {MAX_ROUNDS} times in a row")

    def last(self, provider: str) -> BalanceReading | None:
        """The last reading of ``provider`` (None: never read, or unreadable)."""
        return self.last_many([provider])[provider]

    def last_many(self, providers: Sequence[str]) -> dict[str, BalanceReading | None]:
        pipe = self.redis.pipeline(transaction=False)
        for name in providers:
            pipe.hmget(self.keys.balance(name), ["amount", "at", "low"])
        return {name: _reading(raw) for name, raw in zip(providers, pipe.execute())}


def _event(event_type: str, data: str) -> str:
    return json.dumps({"type": event_type, "data": data}, separators=(",", ":"))


def _reading(raw: list[str | None]) -> BalanceReading | None:
    amount, at, low = raw
    if amount is None or at is None:
        return None
    try:
        return BalanceReading(Decimal(amount), float(at), low == "1")
    except (InvalidOperation, ValueError):
        return None


def purchase_price(max_price: Decimal | None, quoted: Decimal | None) -> Decimal | None:
    """The least a purchase is known to need: the quoted price, never more than the order's cap (``max_price``);
    None when neither is known."""
    known = [p for p in (max_price, quoted) if p is not None]
    return min(known) if known else None


def can_pay(reading: BalanceReading | None, price: Decimal | None, *, now: float, max_age: float) -> bool:
    """May a purchase of ``price`` be sent to a provider whose last balance is ``reading``? Only a fresh reading
    (at most ``max_age`` seconds old) below a known price says no: anything unknown lets the provider decide."""
    if reading is None or price is None or now - reading.at > max_age:
        return True
    return reading.amount >= price
