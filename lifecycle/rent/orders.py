"""RentService: where rent orders enter (rent API, CLI, tasks) and take downstream commands."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from ..activation.orders import ORDER_ID_RULE, listed_for, valid_order_id
from .. import history as _history
from ..cas import F_UPDATED, CasStatus
from ..clock import stamp, ts
from ..scripts import script
from .machine import RENT_COMMANDS, RentCommand, RentState
from .record import R_CREATED, R_STATE, RentOrder, RentRequest
from .store import RentStore, rent_state_of

#: rent_time bounds in hours (docs/handler-api.md, Rents: 2–1344 on current providers, 4–1344 on older ones)
MIN_HOURS, MAX_HOURS = 2, 1344


class RentError(ValueError):
    """The request cannot be stored (bad order id, empty service, hours out of range)."""


class UnknownRent(LookupError):
    """No rent order with this id."""


class RentCommandConflict(RuntimeError):
    """The rent's state (or the provider's cancel rule) does not allow the command (HTTP 409)."""

    def __init__(self, order_id: str, command: RentCommand, state: RentState | None, reason: str = "state") -> None:
        self.order_id, self.command, self.state, self.reason = order_id, command, state, reason
        super().__init__(f"{command.value} not allowed for rent {order_id} ({reason}, state "
                         f"{state.value if state else '?'})")


@dataclass(frozen=True)
class RentCommandAccepted:
    order_id: str
    command: RentCommand
    state: RentState


class RentService:
    """Create, read and command rent orders."""

    def __init__(self, store: RentStore) -> None:
        self.store = store
        self.clock = store.clock
        self._create = script(store.redis, "create")

    def get(self, order_id: str) -> RentOrder | None:
        return self.store.get(order_id)

    def submit(self, request: RentRequest) -> tuple[RentOrder, bool]:
        """Store the rent order once (idempotent on ``order_id``); returns (order, created)."""
        if not request.service or not request.service.strip():
            raise RentError("service is required")
        if not MIN_HOURS <= int(request.hours) <= MAX_HOURS:
            raise RentError(f"rent_time: {MIN_HOURS}-{MAX_HOURS} hours")
        order_id = request.order_id or uuid.uuid4().hex
        if not valid_order_id(order_id):
            raise RentError(f"order_id: {ORDER_ID_RULE}")
        now = self.clock()
        # the creation time keeps its milliseconds: it is the listing's score too (lifecycle/activation/orders.py)
        fields = request.record_fields() | {R_STATE: RentState.PENDING.value, R_CREATED: ts(now),
                                            F_UPDATED: stamp(now)}
        flat = [x for kv in fields.items() for x in kv]
        keys = self.store.keys
        created, _ = self._create(keys=[keys.rent(order_id), keys.rent_deadlines, keys.rents],
                                  args=[order_id, ts(now + self.store.config.pending_stale),
                                        _history.first(RentState.PENDING.value), ts(now),
                                        ts(now - listed_for(self.store.config.retention)), *flat])
        order = self.get(order_id)
        if order is None:
            raise UnknownRent(order_id)
        return order, bool(int(created))

    def request(self, order_id: str, command: RentCommand | str, *, hours: int | None = None) -> RentCommandAccepted:
        """Record a downstream command (finish, cancel, prolong) and make the rent due now; the worker acts.

        ``cancel`` is refused here (``cant_cancel``) when the provider would refuse it: after an SMS or after
        20 minutes (docs/handler-api.md, Rents), so the caller learns it at once instead of from a silent no-op."""
        command = RentCommand(command)
        if command not in RENT_COMMANDS:
            raise ValueError(f"unknown rent command {command!r}")
        if command is RentCommand.PROLONG and (hours is None or not MIN_HOURS <= int(hours) <= MAX_HOURS):
            raise RentError(f"hours: {MIN_HOURS}-{MAX_HOURS}")
        order = self.get(order_id)
        if order is None:
            raise UnknownRent(order_id)
        if command is RentCommand.CANCEL and order.state is RentState.ACTIVE and not order.can_cancel(self.clock()):
            raise RentCommandConflict(order_id, command, order.state, "cant_cancel")
        res = self.store.request_command(order_id, command, hours=hours)
        state = rent_state_of(res)
        if res.status is CasStatus.MISSING:
            raise UnknownRent(order_id)
        if not res.ok or state is None:
            busy = state in RENT_COMMANDS[command] if state else False
            raise RentCommandConflict(order_id, command, state, "command_pending" if busy else "state")
        return RentCommandAccepted(order_id, command, state)
