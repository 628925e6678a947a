"""How long a provider's listing may lag a purchase it made (docs/handler-api.md, Buying a number).

A listing (getActiveActivations, getRentList) that does not show a purchase which may have been made proves little
at first: it is read again until LIST_LAG after the purchase began, then believed. One rule for activations and
rents, so it lives here rather than in either config.
"""
from __future__ import annotations

from typing import Protocol

#: seconds after a purchase began during which a listing without it is read again rather than believed
LIST_LAG = 60.0


class Purchase(Protocol):
    """An order (activation or rent) whose purchase may be under way."""

    @property
    def purchase_began(self) -> float: ...


def listing_may_lag(order: Purchase, now: float, lag: float = LIST_LAG) -> bool:
    """Whether a listing without the order's purchase still proves little: the purchase began less than ``lag``
    seconds before ``now``."""
    return now - order.purchase_began < lag
