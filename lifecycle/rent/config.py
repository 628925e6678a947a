"""When each rent-order state is next due, from the rent settings (a small config of its own)."""
from __future__ import annotations

from dataclasses import dataclass, field

from provider.backoff import Backoff

from ..activation.config import PROVIDER_BACKOFF
from ..cas import DEFAULT_RETENTION_SECONDS
from ..listing import LIST_LAG
from .machine import RentState
from .record import RentOrder

#: how long after an ambiguous answer before reconciling (the provider may still be booking it)
RECONCILE_DELAY = 10.0


@dataclass(frozen=True)
class RentConfig:
    """What the rent flow needs to know (POLL_AFTER, POLL_INTERVAL, … in README, Configuration)."""

    poll_after: float = 30.0
    poll_interval: float = 15.0
    order_max_attempts: int = 3
    order_retry_delay: float = 30.0
    #: a purchase still ``buying`` after this long is surely over (client timeouts x retries): reconcile
    buying_stale: float = 102.2
    pending_stale: float = 60.0
    max_transient_fails: int = 8
    reconcile_delay: float = RECONCILE_DELAY
    #: seconds a listing without a purchase is read again rather than believed (lifecycle/listing.py)
    list_lag: float = LIST_LAG
    #: SMS fingerprints a rent record keeps for dedupe (a poll re-reads the newest page; keep many more than one)
    sms_fingerprints_kept: int = 128
    backoff: Backoff = field(default=PROVIDER_BACKOFF)
    #: seconds an ended rent's record and its rent ids' index entries are kept (ORDER_RETENTION_SECONDS)
    retention: int = DEFAULT_RETENTION_SECONDS

    def first_poll(self, started: float, end_at: float | None) -> float:
        due = started + self.poll_after
        return min(due, end_at) if end_at is not None else due

    def after_poll(self, order: RentOrder, now: float) -> float:
        """Poll every POLL_INTERVAL (lost webhooks), never past the end date (when the rent is closed)."""
        nxt = now + self.poll_interval
        return min(nxt, order.end_at) if order.end_at is not None else nxt

    def buying_is_stale(self, order: RentOrder, now: float) -> bool:
        return order.state is RentState.BUYING and now - order.purchase_began >= self.buying_stale
