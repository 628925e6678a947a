"""Pure decisions of the activation flow: what is due for an order, and what a provider error means for it.

Provider errors are read by their :class:`~provider.errors.ErrorKind` (the one classification, declared with the
error classes) and their ``label`` (the reason downstream sees), never by class name or code string.
The table of codes, kinds and what otpflow does is in docs/handler-api.md, Errors.
"""
from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass

from provider.errors import ErrorKind, ProviderError

from ..outbox.events import EventType
from ..steps import Next, Step
from .config import ActivationConfig
from .machine import Command, State
from .record import Order


class Verdict(enum.Enum):
    """What to do after a failed purchase attempt."""

    RETRY_LATER = "retry_later"   # no stock: back to pending, try again after ORDER_RETRY_DELAY
    BACKOFF = "backoff"           # transient: the same attempt (same orderId) again after backoff + jitter
    RECOVER = "recover"           # ORDER_ALREADY_EXISTS: the purchase happened; find it
    FAIL = "fail"                 # final: order.failed with the reason


@dataclass(frozen=True)
class PurchaseDecision:
    verdict: Verdict
    reason: str
    delay: float = 0.0


def purchase_decision(exc: ProviderError, order: Order, config: ActivationConfig) -> PurchaseDecision:
    """Map a getNumberV2 failure to the order's next step.

    ``order.attempts`` counts definite no-purchase outcomes so far, ``order.fails`` the transient failures of
    the current attempt (the one that just failed not included).
    """
    kind = exc.kind
    if kind is ErrorKind.ALREADY_ORDERED:
        return PurchaseDecision(Verdict.RECOVER, exc.label)
    if exc.transient:
        if order.fails + 1 >= config.max_transient_fails:
            return PurchaseDecision(Verdict.FAIL, "provider_unavailable")
        retry_after = getattr(exc, "retry_after", None) or 0.0
        return PurchaseDecision(Verdict.BACKOFF, exc.label,
                                max(config.backoff.delay(order.fails), float(retry_after)))
    if kind is ErrorKind.NO_STOCK:
        if order.attempts + 1 >= config.order_max_attempts:
            return PurchaseDecision(Verdict.FAIL, exc.label)
        return PurchaseDecision(Verdict.RETRY_LATER, exc.label, config.order_retry_delay)
    if kind is ErrorKind.UNREADABLE:
        # An answer we cannot read may hide a purchase: the same orderId again is safe (it recovers).
        if order.fails + 1 >= config.max_transient_fails:
            return PurchaseDecision(Verdict.FAIL, exc.label)
        return PurchaseDecision(Verdict.BACKOFF, exc.label, config.backoff.delay(order.fails))
    return PurchaseDecision(Verdict.FAIL, exc.label)


def provider_order_id(order: Order) -> str:
    """Our getNumberV2 ``orderId``: the order id plus the number of the purchase request (``calls``, counted when
    the request is routed, before it is sent).

    Stable across re-deliveries of one request (so a crash mid-call recovers via ORDER_ALREADY_EXISTS), and new
    for every new request: another attempt after no stock, another provider, a replacement number (a provider
    remembers an orderId it has seen).
    """
    base = order.order_id
    if len(base) > 40 or not all(ch.isalnum() or ch in "-_" for ch in base):
        base = hashlib.sha1(base.encode("utf-8")).hexdigest()[:32]
    return f"{base}-{max(1, order.calls)}"


def next_step(order: Order | None, now: float, config: ActivationConfig, *, outage: bool = False) -> Next:
    """What is due for ``order`` at ``now`` (the sweeper's and the command task's one decision).

    ``outage``: a provider call failed transiently earlier in this batch, so no further call is made for it.
    """
    if order is None or order.state.terminal:
        return Next(Step.DROP)
    state, command = order.state, order.command
    if state is State.PENDING:
        if command is Command.CANCEL:
            return Next(Step.CANCEL_UNBOUGHT, reason="command")
        return Next(Step.BUY, due=now + config.pending_stale)
    if state is State.BUYING:
        if command is Command.CANCEL and not order.in_flight:  # between attempts: nothing can be bought
            return Next(Step.CANCEL_UNBOUGHT, reason="command")
        return Next(Step.BUY, due=now + config.buying_stale)
    if not order.activation_id:  # cannot happen for the other states; never leave one without a deadline
        return Next(Step.REARM, due=now + config.poll_interval)
    if outage:
        return Next(Step.WAIT_OUTAGE)
    timeout = config.timeout_at(order)
    timed_out = timeout is not None and now >= timeout
    if state is State.WAITING:
        if command is Command.CANCEL or command is Command.REPLACE or timed_out:
            return Next(Step.CANCEL, reason=command.value if command in (Command.CANCEL, Command.REPLACE)
                        else "timeout")
        return Next(Step.POLL)
    if command is Command.REPLACE:  # a code came but did not work: finish this number (no cancel after a code)
        return Next(Step.FINISH, reason=Command.REPLACE.value)
    if state is State.WAITING_RETRY:
        if command is Command.FINISH or timed_out:
            return Next(Step.FINISH, reason="command" if command is Command.FINISH else "timeout")
        return Next(Step.POLL)
    # CODE_RECEIVED
    if command is Command.RETRY:
        return Next(Step.RETRY)
    if command is Command.FINISH or config.auto_finish or timed_out:
        reason = "command" if command is Command.FINISH else ("auto" if config.auto_finish else "timeout")
        return Next(Step.FINISH, reason=reason)
    return Next(Step.REARM, due=timeout if timeout is not None else now + config.finish_timeout)


class CancelOutcome(enum.Enum):
    """What a failed ``setStatus 8`` means."""

    TOO_EARLY = "too_early"            # inside the first two minutes: try again after them
    CLOSED = "closed"                  # already closed at the provider: record it cancelled
    WINDOW_CLOSED = "window_closed"    # the free-cancel window is over: record it cancelled, with that reason
    HAS_CODE = "has_code"              # a code arrived meanwhile: reconcile instead of cancelling
    OUTAGE = "outage"                  # transient: back off
    REFUSED = "refused"                # anything else: back off and log it


def cancel_outcome(exc: ProviderError) -> CancelOutcome:
    kind = exc.kind
    if kind is ErrorKind.TOO_EARLY:
        return CancelOutcome.TOO_EARLY
    if kind in (ErrorKind.CLOSED, ErrorKind.CANCELLED, ErrorKind.FINISHED):
        return CancelOutcome.CLOSED
    if kind is ErrorKind.CANCEL_WINDOW_CLOSED:
        return CancelOutcome.WINDOW_CLOSED
    if kind in (ErrorKind.CODE_ARRIVED, ErrorKind.WRONG_STATE):
        return CancelOutcome.HAS_CODE
    if exc.transient:
        return CancelOutcome.OUTAGE
    return CancelOutcome.REFUSED


#: why a number ended that leaves its order wanting another one (a replacement, where one may be bought)
#: cancel reasons where the provider kept the money: the cancel came too late to be free
UNREFUNDED = frozenset({"free_cancellation_expired"})


def refunds(*, finished: bool, reason: str) -> bool:
    """Whether closing a number this way gives its cost back (a cancel in time does; a finish never)."""
    return not finished and reason not in UNREFUNDED


REPLACEABLE = frozenset({"timeout", "provider_closed", "free_cancellation_expired", Command.REPLACE.value})


def ending(order: Order, *, finished: bool, reason: str, now: float, config: ActivationConfig) -> "Ending":
    """How an order goes on when its current number ends: a replacement, or the order's own end (and which
    terminal event: completed when a code was accepted, cancelled by command, failed otherwise)."""
    if reason in REPLACEABLE and config.may_replace(order, now):
        return Ending(replace=True)
    if reason == Command.CANCEL.value:
        return Ending(final=EventType.ORDER_CANCELLED, final_reason=reason)
    if finished and reason != Command.REPLACE.value:
        return Ending(final=EventType.ORDER_COMPLETED, final_reason=reason)
    if reason != Command.REPLACE.value:
        return Ending(final=EventType.ORDER_FAILED, final_reason=reason)
    numbers_left = order.numbers < (order.max_numbers or config.max_numbers)
    return Ending(final=EventType.ORDER_FAILED, final_reason="order_timeout" if numbers_left else "max_numbers")


@dataclass(frozen=True)
class Ending:
    """The outcome of :func:`ending`: ``replace``, or the order's terminal event and its reason."""

    replace: bool = False
    final: EventType = EventType.ORDER_FAILED
    final_reason: str | None = None


def finish_is_closed(exc: ProviderError) -> bool:
    """A failed ``setStatus 6`` that means the activation is already closed at the provider (recorded finished)."""
    return exc.kind in (ErrorKind.CLOSED, ErrorKind.CANCELLED, ErrorKind.FINISHED, ErrorKind.WRONG_STATE)
