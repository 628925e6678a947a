"""Rent orders: states, allowed edges and commands as data, and the typed view of a rent record.

A rent order is OUR order (idempotent on ``order_id``) for a rented number. Its record is one small hash keyed by
the order id (``Keys.rent``); the provider's rent id is a field, indexed back to the order (``Keys.rent_index``)
because webhooks and polls name the rent, not our order. A finished rent prolonged later is re-ordered by the
provider under a NEW rent id: the same order carries on with the new id, and both ids stay indexed.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Final, Mapping


class RentState(str, enum.Enum):
    """Where a rent order is (stored as its value)."""

    PENDING = "pending"        # stored; no purchase attempted yet (or NO_NUMBERS: try again later)
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

#: downstream commands and the states they are accepted in (409 otherwise)
RENT_COMMANDS: Final[dict[str, frozenset[RentState]]] = {
    "finish": frozenset({RentState.ACTIVE}),
    "cancel": frozenset({RentState.ACTIVE}),
    "prolong": frozenset({RentState.ACTIVE, RentState.FINISHED}),
}

#: the provider's cancellation window: setRentStatus 2 only within 20 minutes and before any SMS (§4.4, §6)
CANCEL_WINDOW: Final = 20 * 60.0

#: record field names
R_STATE, R_SERVICE, R_COUNTRY, R_OPERATOR, R_HOURS = "state", "service", "country", "operator", "hours"
R_RID, R_PHONE, R_END, R_END_AT = "rid", "phone", "end", "end_at"
R_CREATED, R_UPDATED, R_BUYING_AT, R_STARTED_AT = "created", "updated", "buying_at", "started_at"
R_CMD, R_CMD_HOURS, R_CMD_AT, R_CMD_ERR = "cmd", "cmd_hours", "cmd_at", "cmd_err"
R_REASON, R_ATTEMPTS, R_FAILS, R_SMS, R_PREV = "reason", "attempts", "fails", "sms", "prev"
R_AMBIGUOUS, R_HISTORY = "ambiguous", "h"

#: in-flight marker of a prolongation (continueRentNumber is a purchase: never sent twice for one command)
PROLONGING: Final = "prolonging"


def _f(raw: str | None) -> float | None:
    try:
        return float(raw) if raw not in (None, "") else None
    except ValueError:
        return None


def _i(raw: str | None) -> int:
    try:
        return int(raw) if raw else 0
    except ValueError:
        return 0


@dataclass(frozen=True)
class RentRequest:
    """What a caller asks for; ``order_id`` is its idempotency key (generated when absent)."""

    service: str
    country: int | None = None
    operator: str | None = None
    hours: int = 4
    order_id: str | None = None

    def record_fields(self) -> dict[str, str]:
        out = {R_SERVICE: self.service, R_HOURS: str(int(self.hours))}
        if self.country is not None:
            out[R_COUNTRY] = str(int(self.country))
        if self.operator:
            out[R_OPERATOR] = self.operator
        return out


@dataclass(frozen=True)
class RentOrder:
    """A typed view of a rent order record."""

    order_id: str
    state: RentState
    service: str
    hours: int = 4
    country: int | None = None
    operator: str | None = None
    rent_id: str | None = None
    phone: str | None = None
    end_date: str | None = None
    end_at: float | None = None
    created_at: float = 0.0
    buying_at: float | None = None
    started_at: float | None = None
    command: str | None = None
    command_hours: int | None = None
    command_at: float | None = None
    command_error: str | None = None
    reason: str | None = None
    attempts: int = 0
    fails: int = 0
    sms_count: int = 0
    previous_rent_ids: tuple[str, ...] = ()
    ambiguous: bool = False
    history_raw: str = ""

    @classmethod
    def from_record(cls, order_id: str, rec: Mapping[str, str]) -> "RentOrder":
        country = rec.get(R_COUNTRY, "")
        return cls(
            order_id=order_id, state=RentState(rec[R_STATE]), service=rec.get(R_SERVICE, ""),
            hours=_i(rec.get(R_HOURS)) or 4, country=int(country) if country.isdigit() else None,
            operator=rec.get(R_OPERATOR) or None, rent_id=rec.get(R_RID) or None, phone=rec.get(R_PHONE) or None,
            end_date=rec.get(R_END) or None, end_at=_f(rec.get(R_END_AT)), created_at=_f(rec.get(R_CREATED)) or 0.0,
            buying_at=_f(rec.get(R_BUYING_AT)), started_at=_f(rec.get(R_STARTED_AT)),
            command=rec.get(R_CMD) or None, command_hours=_i(rec.get(R_CMD_HOURS)) or None,
            command_at=_f(rec.get(R_CMD_AT)), command_error=rec.get(R_CMD_ERR) or None,
            reason=rec.get(R_REASON) or None, attempts=_i(rec.get(R_ATTEMPTS)), fails=_i(rec.get(R_FAILS)),
            sms_count=_i(rec.get(R_SMS)), previous_rent_ids=tuple(p for p in rec.get(R_PREV, "").split(",") if p),
            ambiguous=rec.get(R_AMBIGUOUS) == "1", history_raw=rec.get(R_HISTORY, ""),
        )

    def can_cancel(self, now: float) -> bool:
        """The provider's rule, checked locally so the API can answer 409 at once: no SMS, within 20 minutes."""
        return self.sms_count == 0 and self.started_at is not None and now - self.started_at <= CANCEL_WINDOW

    def public(self) -> dict[str, Any]:
        """JSON-safe view for the rent API and the CLI."""
        out: dict[str, Any] = {
            "order_id": self.order_id, "kind": "rent", "state": self.state.value, "service": self.service,
            "country": self.country, "hours": self.hours, "rent_id": self.rent_id, "phone": self.phone,
            "end_date": self.end_date, "sms_count": self.sms_count, "reason": self.reason, "command": self.command,
            "command_error": self.command_error, "previous_rent_ids": list(self.previous_rent_ids),
        }
        return {k: v for k, v in out.items() if v not in (None, [], "")} | {"state": self.state.value}

    @property
    def history(self) -> list[tuple[str, float]]:
        out = []
        for item in self.history_raw.split(","):
            label, _, at = item.rpartition("@")
            if label:
                out.append((label, _f(at) or 0.0))
        return out
