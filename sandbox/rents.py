"""Rent records and their state machine (docs/handler-api.md, Rents)."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .errors import rent_error

MIN_HOURS = 2        # newer documentation: 2–1344; older: 4–1344 (uncertain: docs/handler-api.md, Rents)
MAX_HOURS = 1344


class RentState(str, enum.Enum):
    ACTIVE = "ACTIVE"
    FINISHED = "FINISHED"
    CANCELLED = "CANCELLED"
    REVOKED = "REVOKED"


@dataclass
class RentSms:
    phone_from: str
    text: str
    service: str
    date: float


@dataclass
class RentPeriod:
    created_at: float
    price: Decimal
    hours: int


@dataclass
class Rent:
    """One rented number."""

    id: str
    service: str
    country: int
    phone: str
    operator: str
    created_at: float
    end_at: float
    cost: Decimal
    hours: int
    url: str | None = None
    incoming_call: bool = False
    state: RentState = RentState.ACTIVE
    sms: list[RentSms] = field(default_factory=list)
    history: list[RentPeriod] = field(default_factory=list)
    ended_at: float | None = None
    successor: str | None = None     # id of the rent that re-ordered this one after it finished

    @property
    def total_hours(self) -> int:
        return sum(p.hours for p in self.history)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "service": self.service, "country": self.country, "phone": self.phone,
                "operator": self.operator, "created_at": self.created_at, "end_at": self.end_at,
                "cost": str(self.cost), "hours": self.hours, "url": self.url, "state": self.state.value,
                "sms": [s.__dict__ for s in self.sms], "ended_at": self.ended_at, "successor": self.successor,
                "history": [{"created_at": p.created_at, "price": str(p.price), "hours": p.hours}
                            for p in self.history]}


def parse_hours(raw: str | None, default: int = 4) -> int:
    """`rent_time`/`time`/`hours` → int hours within 2–1344, else INVALID_TIME."""
    if raw is None or str(raw).strip() == "":
        return default
    try:
        hours = int(str(raw).strip())
    except ValueError:
        raise rent_error("INVALID_TIME") from None
    if not MIN_HOURS <= hours <= MAX_HOURS:
        raise rent_error("INVALID_TIME")
    return hours


def status_error(rent: Rent) -> None:
    """getRentStatus errors for a rent that is over (its state, sent as an error envelope)."""
    if rent.state == RentState.FINISHED:
        raise rent_error("STATUS_FINISH")
    if rent.state == RentState.CANCELLED:
        raise rent_error("STATUS_CANCEL")
    if rent.state == RentState.REVOKED:
        raise rent_error("STATUS_REVOKE")


def check_set_status(rent: Rent, status: str | None, now: float, cancel_window: float) -> RentState:
    """setRentStatus rules: 1 finish, 2 cancel (≤ window and before any SMS), sic `INCORECT_STATUS` otherwise."""
    if status not in ("1", "2"):
        raise rent_error("INCORECT_STATUS")
    if rent.state == RentState.FINISHED:
        raise rent_error("ALREADY_FINISH")
    if rent.state in (RentState.CANCELLED, RentState.REVOKED):
        raise rent_error("ALREADY_CANCEL")
    if status == "1":
        return RentState.FINISHED
    if rent.sms or now - rent.created_at > cancel_window:
        raise rent_error("CANT_CANCEL")
    return RentState.CANCELLED
