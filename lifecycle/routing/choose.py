"""Pure routing: the order in which an order's purchase tries (provider, country) pairs.

priority: the order's preference (its ``providers``, else the configured order), each provider in every country of
the order's rotation before the next country. cheapest: among pairs whose cached quote shows stock, the lowest
price first (ties by preference), then the pairs without a fresh quote in preference order: a missing or stale
price never blocks an order, it only loses its place.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal
from typing import Mapping, Sequence


class Routing(enum.StrEnum):
    """How an order's purchase picks its provider (ROUTING, or an order's ``routing``)."""

    PRIORITY = "priority"
    CHEAPEST = "cheapest"


@dataclass(frozen=True)
class Quote:
    """A provider's price and stock for one service and country, as last read (getPrices)."""

    cost: Decimal
    count: int
    #: real stock where the provider says (``physicalCount``); ``count`` can be large with none behind it
    physical: int | None = None

    @property
    def stock(self) -> int:
        return self.physical if self.physical is not None else self.count


@dataclass(frozen=True)
class Candidate:
    """One place to buy from: a provider and a country (None: the provider's default)."""

    provider: str
    country: int | None

    @property
    def key(self) -> str:
        """How a tried candidate is remembered on the order: ``provider:country``."""
        return f"{self.provider}:{'' if self.country is None else self.country}"


def candidates(preference: Sequence[str], countries: Sequence[int | None], routing: Routing, *,
               quotes: Mapping[Candidate, Quote | None] | None = None,
               skip: frozenset[str] = frozenset(), max_price: Decimal | None = None) -> list[Candidate]:
    """Every candidate not yet skipped (``skip`` holds :attr:`Candidate.key` s), best first."""
    rotation = list(countries) or [None]
    pairs = [Candidate(p, c) for c in rotation for p in preference]
    pairs = [c for c in pairs if c.key not in skip]
    if routing is Routing.PRIORITY or not quotes:
        return pairs
    rank = {c: i for i, c in enumerate(pairs)}
    priced = [c for c in pairs if (q := quotes.get(c)) is not None and q.stock > 0
              and (max_price is None or q.cost <= max_price)]
    unpriced = [c for c in pairs if quotes.get(c) is None]
    priced.sort(key=lambda c: (quotes[c].cost, rank[c]))  # type: ignore[union-attr]
    return priced + unpriced
