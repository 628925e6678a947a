"""Activation order records: one small Redis hash per order, read into a typed :class:`Order`.

The hash stays a listpack (compact) because every value is at most 64 bytes and there are fewer than ~40
fields; the short history lives in the same hash (fields ``h``, ``h1``, ... of at most 64 bytes,
:mod:`lifecycle.history`) rather than in a list key of its own, which saves a key's overhead per order (the
budget: at most 512 B of Redis per waiting activation, deadline and index included; ``bench/sweep.py`` measures
it).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

from .. import history as _history
from ..cas import F_STATE
from ..clock import parse_float as _float
from ..clock import parse_int as _int
from ..routing.choose import Routing
from .machine import Command, State

#: record field names: one or two letters, since every order stores each of them (its history is in ``h``,
#: ``h1``, ...; ``state`` and ``codes`` are named by the transition script itself). The long names they had
#: before are in :data:`LEGACY_NAMES`.
F_SERVICE = "sv"
F_COUNTRY = "cc"
F_OPERATOR = "op"
F_MAX_PRICE = "mp"
F_ATYPE = "ty"
F_FORWARD = "fw"
F_AID = "a"
F_PHONE = "ph"
F_COST = "co"
F_CREATED = "c"
F_UPDATED = "u"            # when the record last changed (every compare-and-set writes it)
F_BUYING_AT = "ba"
F_NUMBER_AT = "na"
F_CODE_AT = "ca"
F_RETRY_AT = "ra"
F_CODES = "codes"          # the dedupe keys of the codes seen (lua/transition.lua keeps them)
F_CODE = "cd"
F_VIA = "v"
F_ATTEMPTS = "at"
F_FAILS = "f"
F_CMD = "cm"
F_REASON = "r"
F_HISTORY = _history.FIELD  # with h1, h2, ... (lifecycle/history.py)
F_PROVIDER = "p"            # the provider of the current number (or of the purchase in flight)
F_PREFS = "pf"              # the order's own provider preference (comma list), when it gave one
F_ROUTING = "ro"            # the order's own routing, when it gave one
F_COUNTRIES = "cs"          # the order's country rotation (comma list), when it gave one
F_SKIP = "sk"               # candidates (provider:country) that refused this purchase attempt (comma list)
F_CALLS = "n"               # purchase requests routed for this order
F_INFLIGHT = "if"           # "1": a purchase request may have reached the provider and its answer is unknown
F_NUMBERS = "nn"            # numbers bought for this order so far
F_CURRENCY = "cu"           # ISO 4217 numeric currency of ``cost`` (the provider's)
F_MAX_NUMBERS = "mn"        # how many numbers this order may buy (ORDER_MAX_NUMBERS, or its own)
F_BAD_PHONES = "bp"         # numbers that failed for this order (comma list): never taken again
F_UNTIL = "un"              # the order's own deadline: no replacement is bought after it
F_FAILED_AT = "fa"          # providers whose numbers failed for this order (comma list): tried last
F_END_AT = "ea"             # the current number's end, as the provider stated it (unix time on our clock)
F_CANCEL_BY = "cb"          # the current number's last free-cancel moment, as the provider stated it
F_REFUNDED = "rf"           # "1" when the order ended with its number cancelled and refunded, "0" when not

#: old name -> current name of every field renamed (records written before: their next compare-and-set renames
#: them, ``lua/transition.lua``; until then they read through :func:`current_names`). ``updated`` first: every
#: write of that layout set it, so it is what tells such a record.
LEGACY_NAMES: dict[str, str] = {
    "updated": F_UPDATED, "service": F_SERVICE, "country": F_COUNTRY, "operator": F_OPERATOR,
    "max_price": F_MAX_PRICE, "atype": F_ATYPE, "forward": F_FORWARD, "aid": F_AID, "phone": F_PHONE,
    "cost": F_COST, "created": F_CREATED, "buying_at": F_BUYING_AT, "number_at": F_NUMBER_AT, "code_at": F_CODE_AT,
    "retry_at": F_RETRY_AT, "code": F_CODE, "via": F_VIA, "attempts": F_ATTEMPTS, "fails": F_FAILS, "cmd": F_CMD,
    "reason": F_REASON, "prov": F_PROVIDER, "prefs": F_PREFS, "routing": F_ROUTING, "countries": F_COUNTRIES,
    "skip": F_SKIP, "calls": F_CALLS, "inflight": F_INFLIGHT, "numbers": F_NUMBERS, "currency": F_CURRENCY,
    "max_numbers": F_MAX_NUMBERS, "bad_phones": F_BAD_PHONES, "until": F_UNTIL, "failed_at": F_FAILED_AT,
    "end_at": F_END_AT, "cancel_by": F_CANCEL_BY, "refunded": F_REFUNDED,
}
#: the renames as the transition script takes them (``old=new,...``)
LEGACY_RENAMES = ",".join(f"{old}={new}" for old, new in LEGACY_NAMES.items())


def current_names(rec: Mapping[str, str]) -> Mapping[str, str]:
    """A record as read, its fields under their current names (one written before the renames, not changed since,
    has the old ones; a value under an old name is the later one, as the transition script takes it)."""
    if next(iter(LEGACY_NAMES)) not in rec:
        return rec
    return {k: v for k, v in rec.items() if k not in LEGACY_NAMES} | \
        {LEGACY_NAMES[k]: v for k, v in rec.items() if k in LEGACY_NAMES}


@dataclass(frozen=True)
class OrderRequest:
    """What a caller asks for. ``order_id`` is the caller's idempotency key (a uuid is generated when absent)."""

    service: str
    country: int | None = None
    operator: str | None = None
    max_price: Decimal | None = None
    activation_type: int | None = None
    forward: bool | None = None
    order_id: str | None = None
    #: restrict and reorder the configured providers for this order
    providers: tuple[str, ...] | None = None
    routing: Routing | None = None
    #: countries to rotate over (the first one first); ``country`` is the single-country spelling
    countries: tuple[int, ...] | None = None
    #: how many numbers the order may buy until a code is accepted (None: ORDER_MAX_NUMBERS)
    max_numbers: int | None = None

    def record_fields(self) -> dict[str, str]:
        """The non-empty request fields as stored."""
        out: dict[str, str] = {F_SERVICE: self.service}
        if self.providers:
            out[F_PREFS] = ",".join(self.providers)
        if self.max_numbers is not None:
            out[F_MAX_NUMBERS] = str(int(self.max_numbers))
        if self.routing is not None:
            out[F_ROUTING] = Routing(self.routing).value
        if self.countries:
            out[F_COUNTRIES] = ",".join(str(int(c)) for c in self.countries)
            if self.country is None:
                out[F_COUNTRY] = str(int(self.countries[0]))
        if self.country is not None:
            out[F_COUNTRY] = str(int(self.country))
        if self.operator:
            out[F_OPERATOR] = self.operator
        if self.max_price is not None:
            out[F_MAX_PRICE] = str(self.max_price)
        if self.activation_type is not None:
            out[F_ATYPE] = str(int(self.activation_type))
        if self.forward is not None:
            out[F_FORWARD] = "1" if self.forward else "0"
        return out


@dataclass(frozen=True)
class HistoryEntry:
    """One step of an order's short history (the last 16 are kept)."""

    label: str
    at: float


@dataclass(frozen=True)
class Order:
    """A typed view of an order record."""

    order_id: str
    state: State
    service: str
    country: int | None = None
    operator: str | None = None
    max_price: Decimal | None = None
    activation_type: int | None = None
    forward: bool | None = None
    activation_id: str | None = None
    phone: str | None = None
    cost: str | None = None
    created_at: float = 0.0
    updated_at: float | None = None
    buying_at: float | None = None
    number_at: float | None = None
    code_at: float | None = None
    retry_at: float | None = None
    codes: tuple[str, ...] = ()
    code: str | None = None
    via: str | None = None
    attempts: int = 0
    fails: int = 0
    command: Command | None = None
    reason: str | None = None
    provider: str | None = None
    preference: tuple[str, ...] = ()
    routing: Routing | None = None
    countries: tuple[int, ...] = ()
    skip: frozenset[str] = frozenset()
    calls: int = 0
    in_flight: bool = False
    numbers: int = 0
    currency: int | None = None
    max_numbers: int = 0
    bad_phones: frozenset[str] = frozenset()
    until: float | None = None
    failed_at: tuple[str, ...] = ()
    #: the provider's own end and last free-cancel moment of the current number (None: it did not say)
    end_at: float | None = None
    cancel_by: float | None = None
    refunded: bool | None = None
    history_raw: str = field(default="", repr=False)

    @property
    def purchase_began(self) -> float:
        """When the current purchase was first sent (the order's creation where no purchase is under way)."""
        return self.buying_at or self.created_at

    @classmethod
    def from_record(cls, order_id: str, rec: Mapping[str, str]) -> "Order":
        """Build from HGETALL output (decode_responses=True)."""
        rec = current_names(rec)
        max_price: Decimal | None
        try:
            max_price = Decimal(rec[F_MAX_PRICE]) if rec.get(F_MAX_PRICE) else None
        except InvalidOperation:
            max_price = None
        return cls(
            order_id=order_id,
            state=State(rec[F_STATE]),
            service=rec.get(F_SERVICE, ""),
            country=int(rec[F_COUNTRY]) if rec.get(F_COUNTRY, "").lstrip("-").isdigit() else None,
            operator=rec.get(F_OPERATOR) or None,
            max_price=max_price,
            activation_type=int(rec[F_ATYPE]) if rec.get(F_ATYPE, "").isdigit() else None,
            forward=(rec[F_FORWARD] == "1") if rec.get(F_FORWARD) else None,
            activation_id=rec.get(F_AID) or None,
            phone=rec.get(F_PHONE) or None,
            cost=rec.get(F_COST) or None,
            created_at=_float(rec.get(F_CREATED)) or 0.0,
            updated_at=_float(rec.get(F_UPDATED)),
            buying_at=_float(rec.get(F_BUYING_AT)),
            number_at=_float(rec.get(F_NUMBER_AT)),
            code_at=_float(rec.get(F_CODE_AT)),
            retry_at=_float(rec.get(F_RETRY_AT)),
            codes=tuple(c for c in rec.get(F_CODES, "").split("\n") if c),
            code=rec.get(F_CODE) or None,
            via=rec.get(F_VIA) or None,
            attempts=_int(rec.get(F_ATTEMPTS)),
            fails=_int(rec.get(F_FAILS)),
            command=_command(rec.get(F_CMD)),
            reason=rec.get(F_REASON) or None,
            provider=rec.get(F_PROVIDER) or None,
            preference=tuple(p for p in rec.get(F_PREFS, "").split(",") if p),
            routing=_routing(rec.get(F_ROUTING)),
            countries=tuple(int(c) for c in rec.get(F_COUNTRIES, "").split(",") if c.lstrip("-").isdigit()),
            skip=frozenset(k for k in rec.get(F_SKIP, "").split(",") if k),
            calls=_int(rec.get(F_CALLS)), in_flight=rec.get(F_INFLIGHT) == "1", numbers=_int(rec.get(F_NUMBERS)),
            currency=_int(rec.get(F_CURRENCY)) or None, max_numbers=_int(rec.get(F_MAX_NUMBERS)),
            bad_phones=frozenset(p for p in rec.get(F_BAD_PHONES, "").split(",") if p),
            until=_float(rec.get(F_UNTIL)),
            failed_at=tuple(p for p in rec.get(F_FAILED_AT, "").split(",") if p),
            end_at=_float(rec.get(F_END_AT)), cancel_by=_float(rec.get(F_CANCEL_BY)),
            refunded=None if rec.get(F_REFUNDED) is None else rec.get(F_REFUNDED) == "1",
            history_raw=_history.text(rec),
        )

    @property
    def rotation(self) -> tuple[int | None, ...]:
        """The countries a purchase may try, in order (the one requested country, or none: the default)."""
        return self.countries or (self.country,)

    @property
    def history(self) -> list[HistoryEntry]:
        return [HistoryEntry(label, at) for label, at in _history.steps(self.history_raw, self.created_at)]

    @property
    def is_call(self) -> bool:
        """Call verifications (activationType 1/2) are reconciled with getStatusV2."""
        return bool(self.activation_type) and self.activation_type in (1, 2)

    def public(self) -> dict[str, Any]:
        """JSON-safe view for the order API and the CLI (no internal bookkeeping fields)."""
        out: dict[str, Any] = {
            "order_id": self.order_id, "state": self.state.value, "service": self.service, "country": self.country,
            "activation_id": self.activation_id, "phone": self.phone, "code": self.code, "codes": list(self.codes),
            "via": self.via, "attempts": self.attempts, "reason": self.reason, "provider": self.provider,
            "cost": self.cost, "currency": self.currency, "refunded": self.refunded, "numbers": self.numbers or None,
            "command": self.command.value if self.command else None,
        }
        return {k: v for k, v in out.items() if v not in (None, [], "")} | {"state": self.state.value}


def _routing(raw: str | None) -> Routing | None:
    try:
        return Routing(raw) if raw else None
    except ValueError:
        return None


def _command(raw: str | None) -> Command | None:
    try:
        return Command(raw) if raw else None
    except ValueError:
        return None
