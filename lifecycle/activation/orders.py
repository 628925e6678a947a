"""OrderService: where activation orders enter (order API, CLI, the ``otpflow.order`` task) and take commands.

``submit`` is idempotent on the caller's ``order_id``: one Lua step creates the record and its first deadline
only if it does not exist, so a repeated POST or a re-delivered task gives back the same order.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import cast

from .. import history as _history
from ..cas import CasStatus
from ..clock import stamp, ts
from ..scripts import script
from .machine import Command, State
from .record import F_CREATED, F_STATE, F_UNTIL, F_UPDATED, HistoryEntry, Order, OrderRequest
from .store import ActivationStore, state_of

MAX_ORDER_ID_LENGTH = 128
#: how long an order may live before it ends (its listing outlasts its record by no more than this)
LONGEST_LIFE = 2 * 24 * 3600


def listed_for(retention: float) -> float:
    """How long an order stays listed: as long as a record can live (its longest life plus its ``retention``)."""
    return retention + LONGEST_LIFE


#: index entries :meth:`OrderService.recent` reads per round trip, at least
LIST_CHUNK = 50


class OrderError(ValueError):
    """The request cannot be stored (bad order id, empty service)."""


class UnknownOrder(LookupError):
    """No order with this id."""


class CommandConflict(RuntimeError):
    """The order's state does not allow the command (HTTP 409)."""

    def __init__(self, order_id: str, command: Command, state: State | None) -> None:
        self.order_id, self.command, self.state = order_id, command, state
        super().__init__(f"{command.value} not allowed for order {order_id} in state "
                         f"{state.value if state else '?'}")


@dataclass(frozen=True)
class CommandAccepted:
    order_id: str
    command: Command
    state: State


#: what :func:`valid_order_id` accepts, as the API and the errors say it
ORDER_ID_RULE = f"1-{MAX_ORDER_ID_LENGTH} characters of letters, digits, '-', '_', '.', ':'"


def valid_order_id(order_id: str) -> bool:
    """Ids go into Redis keys and our provider orderId: printable, no separators that confuse either."""
    return 0 < len(order_id) <= MAX_ORDER_ID_LENGTH and all(ch.isalnum() or ch in "-_.:" for ch in order_id)


class OrderService:
    """Create, read and command orders."""

    def __init__(self, store: ActivationStore) -> None:
        self.store = store
        self.keys = store.keys
        self.clock = store.clock
        self._create = script(store.redis, "create")

    def submit(self, request: OrderRequest) -> tuple[Order, bool]:
        """Store the order once; returns (order, created). A repeat returns the existing order unchanged."""
        if not request.service or not request.service.strip():
            raise OrderError("service is required")
        order_id = request.order_id or uuid.uuid4().hex
        if not valid_order_id(order_id):
            raise OrderError(f"order_id: {ORDER_ID_RULE}")
        now = self.clock()
        # the creation time keeps its milliseconds: it is the listing's score too, handed back by pagination
        fields = request.record_fields() | {F_STATE: State.PENDING.value, F_CREATED: ts(now), F_UPDATED: stamp(now),
                                            F_UNTIL: stamp(now + self.store.config.order_timeout)}
        flat: list[str] = []
        for k, v in fields.items():
            flat += [k, v]
        created, _state = self._create(
            keys=[self.keys.order(order_id), self.keys.deadlines, self.keys.orders],
            args=[order_id, ts(now + self.store.config.pending_stale), _history.first(State.PENDING.value), ts(now),
                  ts(now - listed_for(self.store.config.retention)), *flat])
        order = self.store.get(order_id)
        if order is None:  # expired between the two calls: vanishingly rare, report it plainly
            raise UnknownOrder(order_id)
        return order, bool(int(created))

    def get(self, order_id: str) -> Order | None:
        return self.store.get(order_id)

    def recent(self, *, states: frozenset[State] = frozenset(), limit: int = 50,
               before: float | None = None) -> list[Order]:
        """Orders newest first (placed before ``before``, when given), in the given states (all when empty);
        ``limit`` at most.

        Reads the index in chunks (a filter, or records gone, can leave a chunk short). Orders placed in the same
        millisecond share a score, which Redis orders by id (descending), so the next chunk starts at the last
        score read, inclusive, past the ids of that score already read: a chunk boundary inside one millisecond
        loses no order. An order added at that very score meanwhile can only make an id read twice, which is
        dropped."""
        out: list[Order] = []
        seen: set[str] = set()
        chunk = max(limit, LIST_CHUNK)
        top: str | float = "+inf" if before is None else f"({before}"
        skip = 0  # ids of the score ``top`` already read (when ``top`` is an inclusive score)
        while len(out) < limit:
            rows = cast("list[tuple[str, float]]", self.store.redis.zrevrangebyscore(
                self.keys.orders, top, "-inf", start=skip, num=chunk, withscores=True))
            ids = [order_id for order_id, _score in rows if order_id not in seen]
            seen.update(ids)
            found = self.store.get_many(ids)
            out += [o for i in ids if (o := found.get(i)) is not None and (not states or o.state in states)]
            if len(rows) < chunk:
                break
            last = rows[-1][1]
            tied = sum(1 for _order_id, score in rows if score == last)
            skip = skip + tied if top == last else tied
            top = last
        return out[:limit]

    def history(self, order_id: str) -> list[HistoryEntry]:
        order = self.store.get(order_id)
        if order is None:
            raise UnknownOrder(order_id)
        return order.history

    def request(self, order_id: str, command: Command | str) -> CommandAccepted:
        """Record a downstream command (finish, retry, cancel); the worker carries it out.

        Raises UnknownOrder, or CommandConflict when the state does not allow it (ValueError: no such command).
        """
        command = Command(command)
        result = self.store.request_command(order_id, command)
        state = state_of(result)
        if result.status is CasStatus.MISSING:
            raise UnknownOrder(order_id)
        if not result.ok or state is None:
            raise CommandConflict(order_id, command, state)
        return CommandAccepted(order_id, command, state)

    def finish(self, order_id: str) -> CommandAccepted:
        return self.request(order_id, Command.FINISH)

    def retry(self, order_id: str) -> CommandAccepted:
        return self.request(order_id, Command.RETRY)

    def cancel(self, order_id: str) -> CommandAccepted:
        return self.request(order_id, Command.CANCEL)

    def replace(self, order_id: str) -> CommandAccepted:
        return self.request(order_id, Command.REPLACE)


__all__ = ["OrderService", "OrderRequest", "Order", "OrderError", "UnknownOrder", "CommandConflict",
           "CommandAccepted", "valid_order_id"]
