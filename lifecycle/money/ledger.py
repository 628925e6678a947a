"""Spend windows, reservations and accounting in Redis.

Spend limits are per provider, in that provider's currency, over calendar UTC windows: the current UTC hour and
the current UTC day (a window is one hash; it expires a while after it closes). Before a purchase its price is
reserved in one atomic step (``lua/reserve.lua``): only if what the window has spent, plus every live
reservation, plus this price stays within each limit. A purchase's reservation is settled to what the provider
charged in the same atomic step that records the number (a :class:`~lifecycle.cas.Side` of its transition), so it
counts exactly once; a refused purchase releases it; a cancelled number refunds its cost (the provider refunds a
number that got no code). A reservation whose worker died expires; the re-driven purchase settles when it finds
the number the provider sold.

Accounting, per provider, service and country (one hash each): ``charged``, ``refunded``, ``numbers`` (bought),
``codes`` (orders completed with a code) and ``code_ms`` (their total time from purchase to code), in the
provider's currency, from what the provider reported (the purchase's ``activationCost``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TypedDict, cast

import redis

from ..cas import Side
from ..keys import Keys
from ..scripts import script

SCALE = 1_000_000
#: a window's hash outlives its window by this much (late refunds of its purchases still find it)
WINDOW_GRACE = 2 * 24 * 3600


def micros(amount: Decimal | str | float | int | None) -> int:
    """An amount in millionths of the provider's currency unit (0 for none or garbage)."""
    if amount is None:
        return 0
    try:
        return int((Decimal(str(amount)) * SCALE).to_integral_value())
    except (InvalidOperation, ValueError):
        return 0


def parse_amount(value: object) -> Decimal | None:
    """An amount as stored or answered (a decimal string, a number), or None when absent or not a number."""
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def from_micros(value: int | str | None) -> Decimal:
    try:
        return (Decimal(int(value or 0)) / SCALE).normalize()
    except (InvalidOperation, ValueError):
        return Decimal(0)


@dataclass(frozen=True)
class SpendLimits:
    """A provider's limits (SPEND_LIMIT_HOURLY / _DAILY, or PROVIDER_<N>_SPEND_LIMIT_*); None: no limit."""

    hourly: Decimal | None = None
    daily: Decimal | None = None

    @property
    def any(self) -> bool:
        return self.hourly is not None or self.daily is not None


def hour_of(ts: float) -> str:
    return time.strftime("%Y%m%d%H", time.gmtime(ts))


def day_of(ts: float) -> str:
    return time.strftime("%Y%m%d", time.gmtime(ts))


class ProviderSpend(TypedDict):
    """One provider's windows (amounts as decimal strings, in its currency; a limit None: none)."""

    provider: str
    hour: str
    spent_hour: str
    limit_hourly: str | None
    day: str
    spent_day: str
    limit_daily: str | None
    reserved: str


class Account(TypedDict):
    """One accounting row: provider, service and country (amounts as decimal strings)."""

    provider: str
    service: str
    country: int | None
    charged: str
    refunded: str
    net: str
    numbers: int
    codes: int
    success_rate: float | None
    seconds_to_code: float | None


class SpendReport(TypedDict):
    providers: list[ProviderSpend]
    accounts: list[Account]


class Ledger:
    """Reservations against the spend windows, and the bookkeeping each transition carries."""

    def __init__(self, redis_client: redis.Redis, keys: Keys) -> None:
        self.redis = redis_client
        self.keys = keys
        self._reserve = script(redis_client, "reserve")

    # ---------------------------------------------------------------- reservations
    def reserve(self, provider: str, rid: str, amount: Decimal, limits: SpendLimits, *, now: float,
                hold_for: float) -> str:
        """Reserve ``amount`` for the purchase ``rid``; '' when it fits, else the window it exceeds
        (``hourly``/``daily``). Idempotent per ``rid``."""
        raw = self._reserve(
            keys=[self.keys.spend(provider, "h", hour_of(now)), self.keys.spend(provider, "d", day_of(now)),
                  self.keys.reservations(provider), self.keys.reserved(provider)],
            args=[f"{now:.3f}", rid, micros(amount), "" if limits.hourly is None else micros(limits.hourly),
                  "" if limits.daily is None else micros(limits.daily), f"{now + hold_for:.3f}"])
        return str(raw or "")

    def release(self, provider: str, rid: str) -> None:
        """A purchase that surely did not happen gives its reservation back."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.zrem(self.keys.reservations(provider), rid)
        pipe.hdel(self.keys.reserved(provider), rid)
        pipe.execute()

    def holds_others(self, provider: str, rid: str) -> bool:
        """Whether reservations of purchases other than ``rid`` are held at ``provider`` (in flight: each will be
        bought or given back)."""
        held = cast("list[str]", self.redis.hkeys(self.keys.reserved(provider)))
        return any(key != rid for key in held)

    def reserved_total(self, provider: str) -> Decimal:
        return from_micros(sum(int(v) for v in cast("list[str]", self.redis.hvals(self.keys.reserved(provider)))))

    def spent(self, provider: str, now: float) -> tuple[Decimal, Decimal]:
        """(this UTC hour's, this UTC day's) net spend at ``provider``."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hget(self.keys.spend(provider, "h", hour_of(now)), "spent")
        pipe.hget(self.keys.spend(provider, "d", day_of(now)), "spent")
        hour, day = pipe.execute()
        return from_micros(hour), from_micros(day)

    # ---------------------------------------------------------------- what transitions carry
    def bought(self, provider: str, rid: str, service: str, country: int | None, cost: Decimal | None,
               at: float) -> tuple[Side, ...]:
        """With ``number.assigned``: settle the reservation to the charged cost, count the number."""
        acct = self.keys.accounting(provider, service, country)
        return (*self.charged(provider, rid, service, country, cost, at), Side("hincrby", acct, "numbers", 1))

    def charged(self, provider: str, rid: str, service: str, country: int | None, cost: Decimal | None,
                at: float) -> tuple[Side, ...]:
        """A charge (a purchase, or a rent's prolongation): settle its reservation to what was charged."""
        amount = micros(cost)
        acct = self.keys.accounting(provider, service, country)
        return (Side("zrem", self.keys.reservations(provider), rid), Side("hdel", self.keys.reserved(provider), rid),
                *self._windows(provider, at, amount), Side("hincrby", acct, "charged", amount),
                Side("hset", self.keys.accounting_index, acct, value="1"))

    def refunded(self, provider: str, service: str, country: int | None, cost: Decimal | None,
                 bought_at: float) -> tuple[Side, ...]:
        """With a cancelled number (no code: the provider refunds it): its cost back, in the windows it was
        charged to."""
        amount = micros(cost)
        if not amount:
            return ()
        acct = self.keys.accounting(provider, service, country)
        return (*self._windows(provider, bought_at, -amount), Side("hincrby", acct, "refunded", amount))

    def completed(self, provider: str, service: str, country: int | None, seconds_to_code: float) -> tuple[Side, ...]:
        """With ``order.completed``: one more code, and how long it took from the purchase."""
        acct = self.keys.accounting(provider, service, country)
        return (Side("hincrby", acct, "codes", 1), Side("hincrby", acct, "code_ms", int(seconds_to_code * 1000)))

    def _windows(self, provider: str, at: float, amount: int) -> tuple[Side, ...]:
        ttl = WINDOW_GRACE
        return (Side("hincrby", self.keys.spend(provider, "h", hour_of(at)), "spent", amount, ttl=ttl),
                Side("hincrby", self.keys.spend(provider, "d", day_of(at)), "spent", amount, ttl=ttl))

    # ---------------------------------------------------------------- reading the accounting
    def report(self, limits: dict[str, SpendLimits], now: float) -> SpendReport:
        """What ``GET /api/spend``, ``otpflow spend`` and ``/metrics`` show: per provider this UTC hour's and day's
        spend against its limits and what is reserved, and every accounting row."""
        providers: list[ProviderSpend] = []
        at = time.gmtime(now)
        for name, lim in limits.items():
            hour, day = self.spent(name, now)
            providers.append({"provider": name, "hour": time.strftime("%Y-%m-%dT%H:00Z", at),
                              "spent_hour": str(hour), "limit_hourly": None if lim.hourly is None else str(lim.hourly),
                              "day": time.strftime("%Y-%m-%d", at), "spent_day": str(day),
                              "limit_daily": None if lim.daily is None else str(lim.daily),
                              "reserved": str(self.reserved_total(name))})
        return {"providers": providers, "accounts": self.accounts()}

    def accounts(self) -> list[Account]:
        """Every accounting hash: provider, service, country, charged, refunded, net, numbers, codes, success
        rate and mean seconds to code."""
        out: list[Account] = []
        for key in cast("list[str]", self.redis.hkeys(self.keys.accounting_index)):
            provider, service, country = key.rsplit(":", 3)[-3:]
            rec = cast(dict[str, str], self.redis.hgetall(key))
            charged, refunded = from_micros(rec.get("charged")), from_micros(rec.get("refunded"))
            numbers, codes = int(rec.get("numbers", 0)), int(rec.get("codes", 0))
            out.append({"provider": provider, "service": service, "country": int(country) if country else None,
                        "charged": str(charged), "refunded": str(refunded), "net": str(charged - refunded),
                        "numbers": numbers, "codes": codes,
                        "success_rate": round(codes / numbers, 4) if numbers else None,
                        "seconds_to_code": round(int(rec.get("code_ms", 0)) / 1000 / codes, 3) if codes else None})
        return sorted(out, key=lambda a: (a["provider"], a["service"], str(a["country"])))
