"""Activation records and their state machine (docs/handler-api.md, Activation states).

Pure logic: functions here decide the answer and the effect (refund? return stock?) of an event; the engine
applies effects to the ledger and the catalogue under its lock.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .errors import ApiError


class State(str, enum.Enum):
    WAIT_CODE = "WAIT_CODE"
    CODE_RECEIVED = "CODE_RECEIVED"
    WAIT_RETRY = "WAIT_RETRY"
    FINISHED = "FINISHED"
    CANCELLED = "CANCELLED"


ACTIVE_STATES = frozenset({State.WAIT_CODE, State.CODE_RECEIVED, State.WAIT_RETRY})

# getActiveActivations.activationStatus / getHistory.status: undocumented; this is one third-party client's reading.
NUMERIC_STATUS = {State.WAIT_CODE: "4", State.CODE_RECEIVED: "2", State.WAIT_RETRY: "3",
                  State.FINISHED: "6", State.CANCELLED: "8"}


@dataclass
class Sms:
    code: str
    text: str
    received_at: float
    phone_from: str = ""


@dataclass
class Call:
    phone_from: str
    code: str
    text: str
    received_at: float
    url: str | None = None
    parsing_count: int = 1


@dataclass
class Activation:
    """One bought number for one service."""

    id: str
    service: str
    country: int
    phone: str
    cost: Decimal
    operator: str
    created_at: float
    expires_at: float
    activation_type: int = 0          # 0 SMS, 1 by calling number, 2 voice
    forward: bool = False
    order_id: str | None = None
    from_cashback: Decimal = Decimal("0")
    state: State = State.WAIT_CODE
    sms: list[Sms] = field(default_factory=list)
    call: Call | None = None
    retry_of: str | None = None       # code shown in STATUS_WAIT_RETRY:<code>
    ready: bool = False               # setStatus 1 was sent
    ended_at: float | None = None
    end_reason: str | None = None     # finished | cancelled | expired | expired_with_code | error
    refunded: bool = False
    kind: str = "number"              # number | multi | additional | extra
    parent_id: str | None = None
    language: str | None = None
    can_retry: bool = True
    additional_services: set[str] = field(default_factory=set)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def has_code(self) -> bool:
        return bool(self.sms) or self.call is not None

    @property
    def last_code(self) -> str | None:
        if self.sms:
            return self.sms[-1].code
        return self.call.code if self.call else None

    def to_json(self) -> dict[str, Any]:
        """Control-API view (not a provider answer)."""
        return {"id": self.id, "service": self.service, "country": self.country, "phone": self.phone,
                "cost": str(self.cost), "operator": self.operator, "created_at": self.created_at,
                "expires_at": self.expires_at, "activation_type": self.activation_type, "forward": self.forward,
                "order_id": self.order_id, "state": self.state.value, "ready": self.ready,
                "sms": [s.__dict__ for s in self.sms], "call": self.call.__dict__ if self.call else None,
                "ended_at": self.ended_at, "end_reason": self.end_reason, "refunded": self.refunded,
                "kind": self.kind, "parent_id": self.parent_id}


@dataclass(frozen=True)
class Rules:
    """Timing rules (simulated seconds) and dialect switches the machine needs."""

    early_cancel_seconds: float = 120.0
    refund_window: float = 1200.0
    status_ready: bool = True
    cancel_codes: frozenset[int] = frozenset({8})
    cancel_window_error: bool = False      # HeroSMS: FREE_CANCELLATION_EXPIRED / OTP_RECEIVED / ...


@dataclass(frozen=True)
class Outcome:
    """Answer token plus the effects to apply."""

    token: str
    new_state: State
    refund: bool = False
    return_stock: bool = False
    end_reason: str | None = None


def parse_status(raw: str | None) -> int:
    try:
        return int(str(raw).strip())
    except (TypeError, ValueError):
        raise ApiError("BAD_STATUS") from None


def set_status(act: Activation, status: int, now: float, rules: Rules) -> Outcome:
    """What `setStatus <status>` does to `act` at `now` (the answer map of docs/handler-api.md, Activation states)."""
    s = act.state
    cancel = status in rules.cancel_codes
    if status not in (1, 3, 6) and not cancel:
        raise ApiError("BAD_STATUS")
    if not act.active:
        raise ApiError("ACTIVATION_NOT_ACTIVE" if rules.cancel_window_error else "BAD_STATUS")
    if act.call is not None and status != 6:
        # the status of a call-verified activation cannot be changed once the call arrived; finishing
        # stays allowed so a client can close it (emulator decision).
        raise ApiError("BAD_STATUS")
    if status == 1:
        if not rules.status_ready or s != State.WAIT_CODE and s != State.CODE_RECEIVED:
            raise ApiError("BAD_STATUS")
        return Outcome("ACCESS_READY", s)
    if status == 3:
        if s not in (State.CODE_RECEIVED, State.WAIT_RETRY) or not act.can_retry:
            raise ApiError("BAD_STATUS")
        return Outcome("ACCESS_RETRY_GET", State.WAIT_RETRY)
    if status == 6:
        if s == State.WAIT_CODE:
            # 6 before any code deletes the activation as failed: an effective cancel with refund.
            return Outcome("ACCESS_ACTIVATION", State.CANCELLED, refund=True, return_stock=True, end_reason="error")
        return Outcome("ACCESS_ACTIVATION", State.FINISHED, end_reason="finished")
    # cancel (8, or -1 where the dialect has it)
    if s != State.WAIT_CODE:
        raise ApiError("OTP_RECEIVED" if rules.cancel_window_error else "BAD_STATUS")
    age = now - act.created_at
    if age < rules.early_cancel_seconds:
        raise ApiError("EARLY_CANCEL_DENIED", info={"minActivationTime": int(rules.early_cancel_seconds)})
    if age > rules.refund_window:
        if rules.cancel_window_error:
            raise ApiError("FREE_CANCELLATION_EXPIRED")
        # SMS-Activate: the cancel goes through but "after 20 minutes the money is gone" (emulator decision).
        return Outcome("ACCESS_CANCEL", State.CANCELLED, refund=False, return_stock=True, end_reason="cancelled")
    return Outcome("ACCESS_CANCEL", State.CANCELLED, refund=True, return_stock=True, end_reason="cancelled")


def expire(act: Activation) -> Outcome:
    """Lifetime over: without a code → cancelled and refunded; with a code → finished (money kept)."""
    if act.has_code:
        return Outcome("", State.FINISHED, end_reason="expired_with_code")
    return Outcome("", State.CANCELLED, refund=True, return_stock=True, end_reason="expired")


def receive_sms(act: Activation, sms: Sms) -> None:
    """An SMS arrives: WAIT_CODE/WAIT_RETRY/CODE_RECEIVED → CODE_RECEIVED with the newest code."""
    if not act.active:
        raise ValueError(f"activation {act.id} is {act.state.value}")
    act.sms.append(sms)
    act.retry_of = None
    act.state = State.CODE_RECEIVED


def status_text(act: Activation, after_finish: str) -> str:
    """The getStatus answer."""
    if act.state == State.WAIT_CODE:
        return "STATUS_WAIT_CODE"
    if act.state == State.CODE_RECEIVED:
        return f"STATUS_OK:{act.last_code}"
    if act.state == State.WAIT_RETRY:
        return f"STATUS_WAIT_RETRY:{act.retry_of or act.last_code or ''}"
    if act.state == State.FINISHED and act.has_code:
        if after_finish == "STATUS_OK":
            return f"STATUS_OK:{act.last_code}"
        if after_finish == "NO_ACTIVATION":
            raise ApiError("NO_ACTIVATION")
    return "STATUS_CANCEL"
