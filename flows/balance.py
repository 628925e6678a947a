"""The balance watch: every BALANCE_CHECK_INTERVAL the beat's task reads each provider's balance (getBalance),
keeps it for routing, and tells downstream when it crosses its threshold (``balance.low`` once when it falls below
BALANCE_LOW / PROVIDER_<N>_BALANCE_LOW, ``balance.ok`` once when it recovers). A read that fails transiently
counts toward the provider's breaker as a purchase's would; a successful read does not close it (an account
endpoint that answers says little about the purchase endpoint: the breaker's own half-open probe does that).

Routing asks :func:`affordable` before it sends a purchase: a provider whose fresh balance cannot pay the price is
skipped instead of being asked and answering NO_BALANCE.
"""
from __future__ import annotations

import logging
from dataclasses import replace

from config import domain
from lifecycle.activation import Order
from lifecycle.routing import Candidate
from lifecycle.routing.balance import Crossing, can_pay, purchase_price
from provider import errors as perr

from .runtime import Runtime

log = logging.getLogger("otpflow.flows.balance")


def check_balances(rt: Runtime) -> dict[str, Crossing | None]:
    """Read and record every provider's balance; what each reading did (None: the provider did not answer)."""
    out: dict[str, Crossing | None] = {}
    for name in rt.provider_names:
        try:
            balance = rt.provider_for(name).get_balance()
        except perr.ProviderError as exc:
            log.warning("balance of %s not read (%s)", name, exc.label)
            if exc.transient:  # an outage seen by the beat counts toward the breaker routing asks
                rt.health.failed(name, retry_after=getattr(exc, "retry_after", None))
            out[name] = None
            continue
        threshold = domain.balance_low(rt.settings, name)
        crossing = rt.balances.record(name, balance.amount, threshold=threshold,
                                      currency=rt.dialect(name).default_currency, at=rt.clock())
        if crossing is Crossing.LOW:
            log.warning("balance of %s is %s, below %s", name, balance.amount, threshold)
        elif crossing is Crossing.OK:
            log.info("balance of %s is %s again, at or above %s", name, balance.amount, threshold)
        out[name] = crossing
    return out


def affordable(rt: Runtime, order: Order, cand: Candidate) -> bool:
    """May ``order``'s purchase go to ``cand``? No only when the provider's balance, read within two check
    intervals, is below the least the purchase needs (its quoted price, capped by the order's ``max_price``)."""
    reading = rt.balances.last(cand.provider)
    if reading is None:
        return True
    quote = rt.quotes.get_many(order.service, [cand]).get(cand)
    price = purchase_price(order.max_price, quote.cost if quote is not None else None)
    ok = can_pay(reading, price, now=rt.clock(), max_age=2 * rt.settings.balance_check_interval)
    if not ok:
        log.info("order %s: %s skipped, its balance %s cannot pay %s", order.order_id, cand.provider,
                 reading.amount, price)
    return ok


def no_balance(order: Order) -> Order:
    """``order`` as its attempt goes on after a candidate was skipped for its balance: should no candidate be left,
    the attempt ends with the reason a NO_BALANCE answer would have given."""
    return replace(order, reason=perr.NoBalance.label)
