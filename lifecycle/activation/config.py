"""Policy as data: what to do about each provider error, and when each order state is next due.

The domain must not import the provider client, so errors are classified by their wire ``code`` and their
``transient`` flag (both carried by every ``provider.errors.ProviderError``), not by class.
"""
from __future__ import annotations

import enum
import random
from dataclasses import dataclass
from typing import Any, Callable, Final

from config.settings import Settings

from .states import State
from .store import Order


class Verdict(str, enum.Enum):
    """What to do after a failed purchase attempt."""

    RETRY_LATER = "retry_later"   # NO_NUMBERS: back to pending, try again after ORDER_RETRY_DELAY
    BACKOFF = "backoff"           # transient: same attempt (same orderId) again after backoff + jitter
    RECOVER = "recover"           # ORDER_ALREADY_EXISTS: the purchase happened; find it
    FAIL = "fail"                 # final: order.failed with the reason


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str
    delay: float = 0.0


#: business/fatal codes that end an order, with the reason downstream sees
FINAL_REASONS: Final[dict[str, str]] = {
    "NO_BALANCE": "no_balance",
    "NO_BALANCE_FORWARD": "no_balance",
    "WRONG_MAX_PRICE": "wrong_max_price",
    "BANNED": "banned",
    "BAD_KEY": "bad_key",
    "NO_KEY": "bad_key",
    "BAD_SERVICE": "bad_service",
    "BAD_COUNTRY": "bad_country",
    "BAD_ACTION": "bad_action",
    "WRONG_OPERATOR": "wrong_operator",
    "WRONG_EXCEPTION_PHONE": "wrong_exception_phone",
    "BAD_FORWARD": "bad_forward",
    "SERVICE_UNAVAILABLE_REGION": "region_restricted",
    "SERVICE_PROHIBITED": "service_prohibited",
    "NOT_SUPPORTED": "not_supported",
    "CONFIGURATION": "configuration",
}
#: codes retried by policy (stock may come back), bounded by ORDER_MAX_ATTEMPTS
RETRY_LATER_CODES: Final = frozenset({"NO_NUMBERS", "ACCOUNT_INACTIVE", "WHATSAPP_NOT_AVAILABLE", "OUT_OF_STOCK"})
#: transient failures of one purchase attempt before the order is given up
MAX_TRANSIENT_FAILS: Final = 8
BACKOFF_BASE: Final = 5.0
BACKOFF_CAP: Final = 300.0


def backoff(fails: int, *, rng: Callable[[], float] = random.random) -> float:
    """Exponential backoff with jitter (half to full of the step), capped: 5, 10, 20, … 300 s."""
    step = min(BACKOFF_CAP, BACKOFF_BASE * (2 ** max(0, fails)))
    return max(1.0, step * (0.5 + 0.5 * rng()))


def classify_purchase_error(exc: Any, order: Order, settings: Settings) -> Decision:
    """Map a provider error raised by getNumberV2 to what the order should do next.

    ``order.attempts`` counts definite no-purchase outcomes so far (the attempt that just failed included
    by the caller), ``order.fails`` the transient failures of the current attempt.
    """
    code = str(getattr(exc, "code", "") or "").upper()
    if code == "ORDER_ALREADY_EXISTS":
        return Decision(Verdict.RECOVER, "order_already_exists")
    if getattr(exc, "transient", False) or code in {"ERROR_SQL", "SERVER_ERROR", "CHANNELS_LIMIT", "RATE_LIMIT"}:
        if order.fails + 1 >= MAX_TRANSIENT_FAILS:
            return Decision(Verdict.FAIL, "provider_unavailable")
        retry_after = getattr(exc, "retry_after", None)
        delay = max(backoff(order.fails), float(retry_after) if retry_after else 0.0)
        return Decision(Verdict.BACKOFF, code.lower() or "transient", delay)
    if code in RETRY_LATER_CODES:
        if order.attempts + 1 >= settings.order_max_attempts:
            return Decision(Verdict.FAIL, code.lower())
        return Decision(Verdict.RETRY_LATER, code.lower(), settings.order_retry_delay)
    if code in FINAL_REASONS:
        return Decision(Verdict.FAIL, FINAL_REASONS[code])
    if type(exc).__name__ == "UnexpectedAnswer" or not code:
        # An answer we cannot read may hide a purchase: the same orderId again is safe (it recovers).
        if order.fails + 1 >= MAX_TRANSIENT_FAILS:
            return Decision(Verdict.FAIL, "unexpected_answer")
        return Decision(Verdict.BACKOFF, "unexpected_answer", backoff(order.fails))
    return Decision(Verdict.FAIL, code.lower())


def provider_order_id(order: Order) -> str:
    """Our getNumberV2 ``orderId``: the order id plus the attempt number.

    Stable across re-deliveries of one attempt (so a crash mid-call recovers via ORDER_ALREADY_EXISTS), and new
    for a new attempt after a definite NO_NUMBERS (a provider might remember a failed orderId).
    """
    import hashlib

    base = order.order_id
    if len(base) > 40 or not all(ch.isalnum() or ch in "-_" for ch in base):
        base = hashlib.sha1(base.encode("utf-8")).hexdigest()[:32]
    return f"{base}-{order.attempts + 1}"


@dataclass(frozen=True)
class Timing:
    """When each state is next due (the deadline sorted set's score), from the settings."""

    settings: Settings
    #: seconds before a pending order whose place_order task got lost is published again
    pending_stale: float = 60.0
    #: margin after the early-cancel window before trying to cancel again
    early_cancel_margin: float = 5.0

    @property
    def buying_stale(self) -> float:
        """A purchase still 'buying' after this long is re-driven (same orderId: safe)."""
        s = self.settings
        return (s.provider_connect_timeout + s.provider_read_timeout) * 4 + 30.0

    def timeout_at(self, order: Order) -> float | None:
        """When waiting stops: cancel (waiting) or finish (waiting for a retried code)."""
        if order.state is State.WAITING and order.number_at is not None:
            return order.number_at + self.settings.activation_timeout
        if order.state is State.WAITING_RETRY:
            base = order.retry_at or order.code_at or order.number_at or order.created_at
            return base + self.settings.finish_timeout
        if order.state is State.CODE_RECEIVED:
            return (order.code_at or order.updated_at or order.created_at) + self.settings.finish_timeout
        return None

    def first_poll_at(self, order: Order) -> float:
        base = order.retry_at if order.state is State.WAITING_RETRY and order.retry_at else order.number_at
        return (base or order.created_at) + self.settings.poll_after

    def next_due(self, order: Order, now: float) -> float | None:
        """The deadline for an order as it stands (None: terminal, no deadline)."""
        if order.state.terminal:
            return None
        if order.command:
            return now
        if order.state is State.PENDING:
            return now + self.pending_stale
        if order.state is State.BUYING:
            return (order.buying_at or now) + self.buying_stale
        if order.state is State.CODE_RECEIVED:
            return now if self.settings.auto_finish else self.timeout_at(order)
        timeout = self.timeout_at(order)
        poll = max(self.first_poll_at(order), now)
        return min(poll, timeout) if timeout is not None else poll

    def after_poll(self, order: Order, now: float) -> float:
        """Re-arm after a poll that brought no news: every POLL_INTERVAL, never past the timeout."""
        timeout = self.timeout_at(order)
        nxt = now + self.settings.poll_interval
        return min(nxt, timeout) if timeout is not None else nxt

    def after_early_cancel_denied(self, order: Order, now: float) -> float:
        """EARLY_CANCEL_DENIED: try again once the two-minute mark has passed."""
        base = order.number_at or order.created_at
        return max(base + self.settings.early_cancel_seconds + self.early_cancel_margin, now + self.early_cancel_margin)
