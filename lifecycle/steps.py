"""The next step of an order, the same words for both halves (activations and rents).

The pure decision functions (``activation.decisions.next_step``, ``rent.decisions.next_step``) read an order and
the clock and answer one :class:`Next`; the orchestration (``flows``) carries it out: a provider call, then one
transition. Nothing here touches Redis or the provider.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass


class Step(enum.Enum):
    """What is due for an order now."""

    DROP = "drop"                          # gone or terminal: remove its deadline
    BUY = "buy"                            # not bought yet (pending, or a purchase to re-drive): publish the buy
    CANCEL_UNBOUGHT = "cancel_unbought"    # cancelled by command before any purchase
    REARM = "rearm"                        # nothing to do now: next deadline at ``due``
    WAIT_OUTAGE = "wait_outage"            # the provider failed earlier in this batch: back off without calling
    POLL = "poll"                          # reconcile with the provider (lost or late webhooks)
    CANCEL = "cancel"                      # give the number back (``reason``)
    FINISH = "finish"                      # close it (``reason``)
    RETRY = "retry"                        # ask for another code (setStatus 3)
    PROLONG = "prolong"                    # a rent's prolongation command
    PROLONG_IN_FLIGHT = "prolong_in_flight"  # a prolongation was sent and not answered
    CANCEL_ORPHAN = "cancel_orphan"        # a rent bought after its order failed: give it back


@dataclass(frozen=True)
class Next:
    """One decision: the step, and its reason or its deadline where it has one."""

    step: Step
    reason: str | None = None
    due: float | None = None
