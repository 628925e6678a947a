"""The listing-lag rule (lifecycle/listing.py) is one rule for activation and rent orders alike."""
from __future__ import annotations

import pytest

from lifecycle.activation import Order, State
from lifecycle.activation.config import ActivationConfig
from lifecycle.listing import LIST_LAG, listing_may_lag
from lifecycle.rent import RentOrder, RentState
from lifecycle.rent.config import RentConfig

ORDERS = [
    Order("o1", State.BUYING, "tg", created_at=1_000.0, buying_at=1_500.0),
    RentOrder("r1", RentState.BUYING, "tg", created_at=1_000.0, buying_at=1_500.0),
]


@pytest.mark.parametrize("order", ORDERS, ids=["activation", "rent"])
def test_a_listing_may_lag_until_list_lag_after_the_purchase_was_first_sent(order: Order | RentOrder) -> None:
    assert listing_may_lag(order, 1_500.0 + LIST_LAG - 0.001)
    assert not listing_may_lag(order, 1_500.0 + LIST_LAG)
    # dated from the purchase's first send, not from the order's creation
    assert listing_may_lag(order, 1_000.0 + LIST_LAG + 1)


@pytest.mark.parametrize("order", [
    Order("o2", State.PENDING, "tg", created_at=1_000.0),
    RentOrder("r2", RentState.PENDING, "tg", created_at=1_000.0),
], ids=["activation", "rent"])
def test_with_no_purchase_under_way_the_order_is_dated_from_its_creation(order: Order | RentOrder) -> None:
    assert listing_may_lag(order, 1_000.0 + LIST_LAG - 1)
    assert not listing_may_lag(order, 1_000.0 + LIST_LAG)


def test_both_configs_default_to_the_one_lag_and_a_configured_lag_is_honoured() -> None:
    assert ActivationConfig().list_lag == RentConfig().list_lag == LIST_LAG
    assert not listing_may_lag(ORDERS[0], 1_510.0, lag=10.0)
    assert listing_may_lag(ORDERS[0], 1_509.0, lag=10.0)
