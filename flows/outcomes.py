"""What one flow step did: the return value of each flow function and the ``outcome`` label of task metrics."""
from __future__ import annotations

import enum


class Outcome(enum.StrEnum):
    """A bounded set of outcomes (metric labels): never an id, a code or a provider message."""

    OK = "ok"
    MISSING = "missing"                    # no such order
    STALE = "stale"                        # the order moved meanwhile: nothing done
    DROPPED = "dropped"                    # terminal or gone: its deadline removed
    CANCELLED = "cancelled"
    FINISHED = "finished"
    FAILED = "failed"                      # order.failed
    WAITING = "waiting"                    # a number was assigned; waiting for its code
    ACTIVE = "active"                      # a rent started
    ORPHAN = "orphan"                      # bought for an order that no longer wanted it: given back
    REPLACED = "replaced"                  # the number failed; the next one is being bought
    PLACE_ORDER = "place_order"            # the purchase was (re-)published
    PLACE_RENT = "place_rent"
    RETRY_LATER = "retry_later"            # no stock: back to pending
    BACKOFF = "backoff"                    # provider unavailable: re-armed with backoff
    RECONCILE_LATER = "reconcile_later"    # an ambiguous rent purchase: reconcile, never re-send
    IN_FLIGHT = "in_flight"                # another delivery is mid-purchase
    EARLY_CANCEL_DENIED = "early_cancel_denied"
    POLLED = "polled"                      # reconciled: nothing new
    CODE = "code"                          # reconciled: new code(s)
    REARMED = "rearmed"
    NO_ACTIVATION = "no_activation"
    WAITING_RETRY = "waiting_retry"        # setStatus 3 done
    RETRY_REFUSED = "retry_refused"
    REFUSED = "refused"                    # the provider refused a rent command
    PROLONGED = "prolonged"
    REORDERED = "reordered"
    CLAIMED = "claimed"                    # another run claimed the command first
    CONFLICT = "conflict"                  # the command is not allowed in the order's state
    NO_COMMAND = "no_command"
