"""The rent order's state machine, as data: states, allowed edges, downstream commands.

A rent order is OUR order (idempotent on ``order_id``) for a rented number. A finished rent prolonged later is
re-ordered by the provider under a NEW rent id: the same order carries on with the new id (docs/handler-api.md,
Rents).
"""
from __future__ import annotations

import enum
from typing import Final


class RentState(enum.StrEnum):
    """Where a rent order is (stored as its value)."""

    PENDING = "pending"        # stored; no purchase attempted yet (or no stock: try again later)
    BUYING = "buying"          # getRentNumber in flight. A purchase without an idempotency key: never re-sent
    ACTIVE = "active"          # rented: SMS become rent.sms until the end date, finish or cancel
    FINISHED = "finished"      # ended (end date, finish command, or the provider says finished)
    CANCELLED = "cancelled"    # setRentStatus 2 (refund), or the provider revoked/cancelled it
    FAILED = "failed"          # no rent was bought (or a purchase could not be recovered: rent_unrecoverable)

    @property
    def terminal(self) -> bool:
        return self in (RentState.FINISHED, RentState.CANCELLED, RentState.FAILED)


#: allowed edges: target -> the states it may be reached from (the Lua CAS enforces them)
RENT_TRANSITIONS: Final[dict[RentState, frozenset[RentState]]] = {
    RentState.BUYING: frozenset({RentState.PENDING}),
    RentState.PENDING: frozenset({RentState.BUYING}),
    RentState.ACTIVE: frozenset({RentState.BUYING, RentState.FINISHED}),   # finished: prolonged (re-ordered)
    RentState.FINISHED: frozenset({RentState.ACTIVE}),
    RentState.CANCELLED: frozenset({RentState.ACTIVE}),
    RentState.FAILED: frozenset({RentState.PENDING, RentState.BUYING}),
}


class RentCommand(enum.StrEnum):
    """What downstream may ask of a rent, plus the in-flight marker of a prolongation."""

    FINISH = "finish"        # setRentStatus 1
    CANCEL = "cancel"        # setRentStatus 2 (only before any SMS, within 20 minutes)
    PROLONG = "prolong"      # continueRentNumber
    #: a prolongation was sent and not yet answered (continueRentNumber is a purchase: never sent twice)
    PROLONGING = "prolonging"


#: downstream commands and the states they are accepted in (409 otherwise)
RENT_COMMANDS: Final[dict[RentCommand, frozenset[RentState]]] = {
    RentCommand.FINISH: frozenset({RentState.ACTIVE}),
    RentCommand.CANCEL: frozenset({RentState.ACTIVE}),
    RentCommand.PROLONG: frozenset({RentState.ACTIVE, RentState.FINISHED}),
}

#: the provider's cancellation window: setRentStatus 2 only within 20 minutes and before any SMS
#: (docs/handler-api.md, Rents)
CANCEL_WINDOW: Final = 20 * 60.0
PROLONGING: Final = RentCommand.PROLONGING


def sources(target: RentState) -> frozenset[RentState]:
    """The states ``target`` may be entered from."""
    return RENT_TRANSITIONS[target]
