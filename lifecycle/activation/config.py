"""When each activation-order state is next due, from the activation settings (a small config of its own).

The deadline sorted set's score for an order comes from here; every number is a setting (README, Configuration)
except the early-cancel margin, which is fixed by the provider's rules (docs/handler-api.md, Timing rules). Where the
provider states an activation's own free-cancel time or end, waiting stops CANCEL_MARGIN before them, never later.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from provider.backoff import Backoff, Jitter

from ..cas import DEFAULT_RETENTION_SECONDS
from ..listing import LIST_LAG
from .machine import State
from .record import Order

#: the backoff of a provider call that failed transiently: 5, 10, 20, … 300 s, half jitter
PROVIDER_BACKOFF = Backoff(base=5.0, cap=300.0, jitter=Jitter.HALF, floor=1.0)


@dataclass(frozen=True)
class ActivationConfig:
    """What the activation flow needs to know (POLL_AFTER, ACTIVATION_TIMEOUT, … in README, Configuration)."""

    poll_after: float = 30.0
    poll_interval: float = 15.0
    activation_timeout: float = 1200.0
    early_cancel_seconds: float = 120.0
    auto_finish: bool = True
    finish_timeout: float = 1200.0
    order_max_attempts: int = 3
    order_retry_delay: float = 30.0
    #: a purchase still ``buying`` after this long is re-driven (same orderId: safe); the client's time-outs
    #: times its retries, plus a margin
    buying_stale: float = 102.2
    #: seconds before a pending order whose place_order task got lost is published again
    pending_stale: float = 60.0
    #: margin after the early-cancel window before trying to cancel again
    early_cancel_margin: float = 5.0
    #: transient failures of one purchase attempt (or one poll/cancel/finish) before giving up on it
    max_transient_fails: int = 8
    #: numbers an order may buy until a code is accepted (ORDER_MAX_NUMBERS; an order may say its own)
    max_numbers: int = 3
    #: the order's own deadline after it was placed (ORDER_TIMEOUT): no replacement is bought after it
    order_timeout: float = 3600.0
    backoff: Backoff = field(default=PROVIDER_BACKOFF)
    #: seconds a listing without a purchase is read again rather than believed (lifecycle/listing.py)
    list_lag: float = LIST_LAG
    #: seconds before the provider's own free-cancel time or end of an activation that waiting stops (CANCEL_MARGIN)
    cancel_margin: float = 60.0
    #: seconds to wait for a code per service (SERVICE_TIMEOUTS); other services wait ``activation_timeout``
    service_timeouts: tuple[tuple[str, float], ...] = ()
    #: seconds an ended order's record and its numbers' index entries are kept (ORDER_RETENTION_SECONDS)
    retention: int = DEFAULT_RETENTION_SECONDS

    def wait_for(self, service: str | None) -> float:
        """Seconds to wait for a first code for ``service`` (None: the shortest wait of any service)."""
        if service is None:
            return min([self.activation_timeout, *(s for _, s in self.service_timeouts)])
        return dict(self.service_timeouts).get(service, self.activation_timeout)

    def waiting_ends(self, service: str | None, number_at: float, *, end_at: float | None = None,
                     cancel_by: float | None = None) -> float:
        """When waiting for a first code stops and the number is cancelled: the service's wait after the purchase,
        never later than CANCEL_MARGIN before the provider's own free-cancel time (a later cancel is refused, the
        money lost) or the activation's end."""
        return min([number_at + self.wait_for(service),
                    *(t - self.cancel_margin for t in (cancel_by, end_at) if t is not None)])

    def timeout_at(self, order: Order) -> float | None:
        """When waiting stops: cancel (waiting) or finish (waiting for a retried code, or for downstream); never
        later than CANCEL_MARGIN before the activation's end where the provider stated it."""
        if order.state is State.WAITING and order.number_at is not None:
            return self.waiting_ends(order.service, order.number_at, end_at=order.end_at, cancel_by=order.cancel_by)
        if order.state is State.WAITING_RETRY:
            base = order.retry_at or order.code_at or order.number_at or order.created_at
            return self._before_end(order, base + self.finish_timeout)
        if order.state is State.CODE_RECEIVED:
            base = order.code_at or order.updated_at or order.created_at
            return self._before_end(order, base + self.finish_timeout)
        return None

    def _before_end(self, order: Order, due: float) -> float:
        return min(due, order.end_at - self.cancel_margin) if order.end_at is not None else due

    def first_poll_at(self, order: Order) -> float:
        base = order.retry_at if order.state is State.WAITING_RETRY and order.retry_at else order.number_at
        return (base or order.created_at) + self.poll_after

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
            return now if self.auto_finish else self.timeout_at(order)
        timeout = self.timeout_at(order)
        poll = max(self.first_poll_at(order), now)
        return min(poll, timeout) if timeout is not None else poll

    def after_poll(self, order: Order, now: float) -> float:
        """Re-arm after a poll that brought no news: every POLL_INTERVAL, never past the timeout."""
        timeout = self.timeout_at(order)
        nxt = now + self.poll_interval
        return min(nxt, timeout) if timeout is not None else nxt

    def after_early_cancel_denied(self, order: Order, now: float) -> float:
        """EARLY_CANCEL_DENIED: try again once the two-minute mark has passed."""
        base = order.number_at or order.created_at
        return max(base + self.early_cancel_seconds + self.early_cancel_margin, now + self.early_cancel_margin)

    def may_replace(self, order: Order, now: float) -> bool:
        """Another number may be bought for ``order``: numbers left, and its own deadline not passed."""
        limit = order.max_numbers or self.max_numbers
        until = order.until if order.until is not None else order.created_at + self.order_timeout
        return order.numbers < limit and now < until

    def after_code(self, now: float) -> float:
        """Due after a code arrived: at once under AUTO_FINISH (finish it), else when FINISH_TIMEOUT passes."""
        return now if self.auto_finish else now + self.finish_timeout
