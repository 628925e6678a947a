"""Pure decisions of the rent flow: what is due for a rent order, what a failed purchase means, SMS identity.

getRentNumber has no idempotency key (unlike getNumberV2's orderId), so the one rule that matters: an answer
that MAY hide a purchase (read timeout, 5xx, unreadable body) is never followed by a second getRentNumber; the
order stays ``buying`` and is reconciled against getRentList instead. Only definite refusals are retried.
Provider errors are read by their kind and label (docs/handler-api.md, Errors).
"""
from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from provider.errors import ErrorKind, ProviderError

from ..steps import Next, Step
from .config import RentConfig
from .machine import RentCommand, RentState
from .record import RentOrder


class RentVerdict(enum.Enum):
    RETRY_LATER = "retry_later"   # definite: nothing bought (no stock, rate limit, never sent) -> pending
    RECONCILE = "reconcile"       # maybe bought: stay buying, look it up in getRentList, never re-send
    FAIL = "fail"                 # definite and final -> order.failed


@dataclass(frozen=True)
class RentPurchaseDecision:
    verdict: RentVerdict
    reason: str
    delay: float = 0.0
    #: a transient refusal (counted in ``fails``), not a definite no-stock attempt (counted in ``attempts``)
    transient: bool = False


def purchase_decision(exc: ProviderError, order: RentOrder, config: RentConfig) -> RentPurchaseDecision:
    """What a getRentNumber failure means for the rent order."""
    never_sent = getattr(exc, "possibly_processed", None) is False
    if never_sent or exc.kind in (ErrorKind.RATE_LIMITED, ErrorKind.CAPACITY):
        if order.fails + 1 >= config.max_transient_fails:
            return RentPurchaseDecision(RentVerdict.FAIL, "provider_unavailable")
        retry_after = getattr(exc, "retry_after", None) or 0.0
        return RentPurchaseDecision(RentVerdict.RETRY_LATER, exc.label,
                                    max(config.backoff.delay(order.fails), float(retry_after)), transient=True)
    if exc.transient or exc.kind is ErrorKind.UNREADABLE:
        return RentPurchaseDecision(RentVerdict.RECONCILE, exc.label, config.reconcile_delay)
    if exc.kind is ErrorKind.NO_STOCK:
        if order.attempts + 1 >= config.order_max_attempts:
            return RentPurchaseDecision(RentVerdict.FAIL, exc.label)
        return RentPurchaseDecision(RentVerdict.RETRY_LATER, exc.label, config.order_retry_delay)
    return RentPurchaseDecision(RentVerdict.FAIL, exc.label)


class CloseOutcome(enum.Enum):
    """What a failed setRentStatus (finish or cancel) means."""

    FINISHED = "finished"      # the provider had finished it already
    CANCELLED = "cancelled"    # the provider had cancelled it already
    REFUSED = "refused"        # the cancel window is over (an SMS came, or 20 minutes passed)
    OUTAGE = "outage"          # transient: back off
    FAILED = "failed"          # anything else


def close_outcome(exc: ProviderError) -> CloseOutcome:
    if exc.kind is ErrorKind.FINISHED:
        return CloseOutcome.FINISHED
    if exc.kind is ErrorKind.CANCELLED:
        return CloseOutcome.CANCELLED
    if exc.kind is ErrorKind.CANCEL_WINDOW_CLOSED:
        return CloseOutcome.REFUSED
    if exc.transient:
        return CloseOutcome.OUTAGE
    return CloseOutcome.FAILED


def next_step(order: RentOrder | None, now: float, config: RentConfig, *, outage: bool = False) -> Next:
    """What is due for a rent order at ``now`` (the sweeper's and the command task's one decision)."""
    if order is None:
        return Next(Step.DROP)
    state, command = order.state, order.command
    if state is RentState.PENDING:
        return Next(Step.BUY, due=now + config.pending_stale)
    if state is RentState.BUYING:
        due = now + config.buying_stale if order.ambiguous else \
            max(now + config.reconcile_delay, (order.buying_at or now) + config.buying_stale)
        return Next(Step.BUY, due=due)
    if state is RentState.FAILED and order.orphan_open:
        return Next(Step.WAIT_OUTAGE if outage else Step.CANCEL_ORPHAN)
    if command is RentCommand.PROLONGING:
        return Next(Step.PROLONG_IN_FLIGHT)
    if command is RentCommand.PROLONG and state in (RentState.ACTIVE, RentState.FINISHED):
        return Next(Step.PROLONG)
    if state is not RentState.ACTIVE:
        return Next(Step.DROP)
    if outage:
        return Next(Step.WAIT_OUTAGE)
    if command is RentCommand.FINISH:
        return Next(Step.FINISH, reason="command")
    if command is RentCommand.CANCEL:
        return Next(Step.CANCEL, reason="command")
    if order.end_at is not None and now >= order.end_at:
        return Next(Step.FINISH, reason="end_date")
    return Next(Step.POLL)


def normalize_sms_date(value: Any) -> str:
    """One spelling for an SMS date, whatever carried it: webhook ``2025-06-17 16:01:10``, HeroSMS ISO with
    ``T``/fraction/``Z``, or the client's parsed datetime (poll), so the webhook and the poll of one SMS dedupe."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.strftime("%Y-%m-%d %H:%M:%S")
    text = str(value).strip().replace("T", " ")
    return text[:19]


def sms_fingerprint(text: Any, date: Any, phone_from: Any) -> str:
    """Dedupe key of one rent SMS: (date, text, sender), as docs/handler-api.md, Webhooks, advises. Two identical
    texts from the same sender within the same second are one SMS to us (the provider gives nothing finer)."""
    raw = "\x1f".join((normalize_sms_date(date), str(text or "").strip(), str(phone_from or "").strip()))
    return hashlib.sha1(raw.encode("utf-8")).hexdigest()[:16]


def rent_end_at(end_date: Any, started: float, hours: int) -> float:
    """When the rent ends: the provider's end date when it names its zone, else our start + hours (the
    provider's zone for naive dates is unstated, docs/handler-api.md, Data types; our own clock is safer)."""
    if isinstance(end_date, datetime) and end_date.tzinfo is not None:
        return end_date.timestamp()
    return started + hours * 3600.0
