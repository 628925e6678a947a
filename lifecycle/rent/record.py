"""Rent order records: one small hash per rent order (keyed by OUR order id), read into a typed :class:`RentOrder`.

The provider's rent id is a field, indexed back to the order (``Keys.rent_index``) because webhooks and polls
name the rent, not our order.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Mapping

from .. import history as _history
from ..cas import F_STATE, F_UPDATED
from ..clock import parse_float as _f
from ..clock import parse_int as _i
from .machine import CANCEL_WINDOW, RentCommand, RentState

#: record field names
R_SERVICE, R_COUNTRY, R_OPERATOR, R_HOURS = "service", "country", "operator", "hours"
R_STATE = F_STATE
R_RID, R_PHONE, R_END, R_END_AT = "rid", "phone", "end", "end_at"
R_CREATED, R_BUYING_AT, R_STARTED_AT = "created", "buying_at", "started_at"
R_UPDATED = F_UPDATED
R_CMD, R_CMD_HOURS, R_CMD_AT, R_CMD_ERR = "cmd", "cmd_hours", "cmd_at", "cmd_err"
R_REASON, R_ATTEMPTS, R_FAILS, R_SMS, R_PREV = "reason", "attempts", "fails", "sms", "prev"
R_AMBIGUOUS, R_HISTORY = "ambiguous", _history.FIELD  # with h1, h2, ... (lifecycle/history.py)
R_PROVIDER = "prov"    # the provider the rent was bought from (or is being bought from)
R_PREFS = "prefs"      # the rent order's own provider preference (comma list), when it gave one
R_COST = "cost"        # the current rent's first period as quoted before it was bought (decimal string)
R_CURRENCY = "currency"  # ISO 4217 numeric currency of ``cost`` (the provider's)
R_PAID = "paid"        # millionths charged for the current rent (its periods so far): what a cancel refunds
#: a rent bought after its order had failed (a concurrent reconcile gave up while getRentNumber was in flight):
#: its id, when we learnt of it (the 20-minute cancel window counts from then), and how it ended
R_ORPHAN, R_ORPHAN_AT, R_ORPHAN_END = "orphan", "orphan_at", "orphan_end"


class OrphanEnd(enum.StrEnum):
    """How an orphan rent ended (``orphan_end``)."""

    CANCELLED = "cancelled"  # given back within the window: refunded
    KEPT = "kept"            # the provider would not cancel it (window over, SMS came, refused): paid for


def _command(raw: str | None) -> RentCommand | None:
    try:
        return RentCommand(raw) if raw else None
    except ValueError:
        return None


def _orphan_end(raw: str | None) -> OrphanEnd | None:
    try:
        return OrphanEnd(raw) if raw else None
    except ValueError:
        return None


@dataclass(frozen=True)
class RentRequest:
    """What a caller asks for; ``order_id`` is its idempotency key (generated when absent)."""

    service: str
    country: int | None = None
    operator: str | None = None
    hours: int = 4
    order_id: str | None = None
    #: restrict and reorder the configured providers for this rent (the first one that can rent is used)
    providers: tuple[str, ...] | None = None

    def record_fields(self) -> dict[str, str]:
        out = {R_SERVICE: self.service, R_HOURS: str(int(self.hours))}
        if self.providers:
            out[R_PREFS] = ",".join(self.providers)
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
    command: RentCommand | None = None
    command_hours: int | None = None
    command_at: float | None = None
    command_error: str | None = None
    reason: str | None = None
    attempts: int = 0
    fails: int = 0
    sms_count: int = 0
    previous_rent_ids: tuple[str, ...] = ()
    ambiguous: bool = False
    provider: str | None = None
    preference: tuple[str, ...] = ()
    cost: str | None = None
    currency: int | None = None
    paid: int = 0
    orphan_rent_id: str | None = None
    orphan_at: float | None = None
    orphan_end: OrphanEnd | None = None
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
            command=_command(rec.get(R_CMD)), command_hours=_i(rec.get(R_CMD_HOURS)) or None,
            command_at=_f(rec.get(R_CMD_AT)), command_error=rec.get(R_CMD_ERR) or None,
            reason=rec.get(R_REASON) or None, attempts=_i(rec.get(R_ATTEMPTS)), fails=_i(rec.get(R_FAILS)),
            sms_count=_i(rec.get(R_SMS)), previous_rent_ids=tuple(p for p in rec.get(R_PREV, "").split(",") if p),
            ambiguous=rec.get(R_AMBIGUOUS) == "1", provider=rec.get(R_PROVIDER) or None,
            preference=tuple(p for p in rec.get(R_PREFS, "").split(",") if p), cost=rec.get(R_COST) or None,
            currency=_i(rec.get(R_CURRENCY)) or None, paid=_i(rec.get(R_PAID)),
            orphan_rent_id=rec.get(R_ORPHAN) or None, orphan_at=_f(rec.get(R_ORPHAN_AT)),
            orphan_end=_orphan_end(rec.get(R_ORPHAN_END)), history_raw=_history.text(rec),
        )

    @property
    def purchase_began(self) -> float:
        """When the current purchase was first sent (the order's creation where no purchase is under way)."""
        return self.buying_at or self.created_at

    @property
    def orphan_open(self) -> bool:
        """A rent bought for this failed order is still to be given back (or found kept)."""
        return self.orphan_rent_id is not None and self.orphan_end is None

    def can_cancel(self, now: float) -> bool:
        """The provider's rule, checked locally so the API can answer 409 at once: no SMS, within 20 minutes."""
        return self.sms_count == 0 and self.started_at is not None and now - self.started_at <= CANCEL_WINDOW

    def public(self) -> dict[str, Any]:
        """JSON-safe view for the rent API and the CLI."""
        out: dict[str, Any] = {
            "order_id": self.order_id, "kind": "rent", "state": self.state.value, "service": self.service,
            "country": self.country, "hours": self.hours, "rent_id": self.rent_id, "phone": self.phone,
            "end_date": self.end_date, "sms_count": self.sms_count, "reason": self.reason,
            "command": self.command.value if self.command else None,
            "command_error": self.command_error, "previous_rent_ids": list(self.previous_rent_ids),
            "provider": self.provider, "cost": self.cost, "currency": self.currency,
            "orphan_rent_id": self.orphan_rent_id, "orphan_end": self.orphan_end.value if self.orphan_end else None,
        }
        return {k: v for k, v in out.items() if v not in (None, [], "")} | {"state": self.state.value}

    @property
    def history(self) -> list[tuple[str, float]]:
        return _history.steps(self.history_raw, self.created_at)
