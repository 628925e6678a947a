"""The activation order's state machine, as data: states, allowed edges, downstream commands.

The Lua compare-and-set only moves an order from one of the listed source states; everything that could move
state backwards (a late webhook, a stale poll) is simply not an allowed edge, so it is rejected in Redis.
"""
from __future__ import annotations

import enum
from typing import Final


class State(str, enum.Enum):
    """Where an order is. ``str`` so it is stored in Redis as its value."""

    PENDING = "pending"              # stored, no number yet (or waiting to retry, or its last number replaced)
    BUYING = "buying"                # getNumberV2 in flight (a crash here is recovered with the same orderId)
    WAITING = "waiting"              # number assigned, waiting for the code
    CODE_RECEIVED = "code_received"  # a code arrived (webhook or poll)
    WAITING_RETRY = "waiting_retry"  # downstream asked for another code (setStatus 3)
    FINISHED = "finished"            # setStatus 6 done (terminal)
    CANCELLED = "cancelled"          # setStatus 8 done, or the provider cancelled it (terminal)
    FAILED = "failed"                # no number was bought (terminal)

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL: Final = frozenset({State.FINISHED, State.CANCELLED, State.FAILED})
PRE_NUMBER: Final = frozenset({State.PENDING, State.BUYING})
HAS_CODE: Final = frozenset({State.CODE_RECEIVED, State.WAITING_RETRY})

#: allowed edges: target -> the states it may be reached from
TRANSITIONS: Final[dict[State, frozenset[State]]] = {
    State.BUYING: frozenset({State.PENDING}),
    # no stock: try again later; or the number failed and the next one is to be bought (a replacement)
    State.PENDING: frozenset({State.BUYING, State.WAITING, State.CODE_RECEIVED, State.WAITING_RETRY}),
    State.WAITING: frozenset({State.BUYING, State.PENDING}),       # number assigned (pending: recovered after a crash)
    State.CODE_RECEIVED: frozenset({State.WAITING, State.WAITING_RETRY, State.CODE_RECEIVED}),
    State.WAITING_RETRY: frozenset({State.CODE_RECEIVED}),
    State.FINISHED: frozenset({State.CODE_RECEIVED, State.WAITING_RETRY}),
    State.CANCELLED: frozenset({State.WAITING, State.PENDING}),
    State.FAILED: frozenset({State.PENDING, State.BUYING}),
}

class Command(enum.StrEnum):
    """What downstream may ask of an order (the API's ``/finish``, ``/retry``, ``/cancel``)."""

    FINISH = "finish"    # the code worked: setStatus 6
    RETRY = "retry"      # the code did not work: setStatus 3, wait for another on the same number
    CANCEL = "cancel"    # give the number back (refunded when no code came) and end the order
    REPLACE = "replace"  # this number did not work: close it as the rules allow and buy the next one


#: downstream commands and the states they are accepted in (409 otherwise)
COMMANDS: Final[dict[Command, frozenset[State]]] = {
    Command.FINISH: frozenset({State.CODE_RECEIVED, State.WAITING_RETRY}),
    Command.RETRY: frozenset({State.CODE_RECEIVED}),
    Command.CANCEL: frozenset({State.PENDING, State.BUYING, State.WAITING}),
    Command.REPLACE: frozenset({State.WAITING, State.CODE_RECEIVED, State.WAITING_RETRY}),
}


def sources(target: State) -> frozenset[State]:
    """The states ``target`` may be entered from."""
    return TRANSITIONS[target]


def allowed(source: State, target: State) -> bool:
    """True when ``source -> target`` is an edge of the machine."""
    return source in TRANSITIONS.get(target, frozenset())
