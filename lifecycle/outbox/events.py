"""The downstream event contract (README, "Downstream event contract"): stream entries with ``type`` and ``data``.

``event_id`` is derived from what the event is about (order, type, and the code for ``code.received``), so a
transition re-run by a re-delivered task, or computed twice by two racing paths, names the same event; the Lua
compare-and-set writes it at most once, and consumers can drop a repeat by id. Events about a provider rather than
an order (``balance.low``, ``balance.ok``) carry no ``order_id``; their id names the provider and the crossing.
"""
from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Final, Mapping


class EventType(enum.StrEnum):
    """The ``type`` of a downstream event (a public contract: values never change)."""

    NUMBER_ASSIGNED = "number.assigned"
    CODE_RECEIVED = "code.received"
    ACTIVATION_FINISHED = "activation.finished"
    ACTIVATION_CANCELLED = "activation.cancelled"
    ORDER_COMPLETED = "order.completed"
    ORDER_CANCELLED = "order.cancelled"
    ORDER_FAILED = "order.failed"
    RENT_STARTED = "rent.started"
    RENT_SMS = "rent.sms"
    RENT_FINISHED = "rent.finished"
    RENT_CANCELLED = "rent.cancelled"
    RENT_PROLONGED = "rent.prolonged"
    BALANCE_LOW = "balance.low"
    BALANCE_OK = "balance.ok"


class Via(enum.StrEnum):
    """How a code or SMS reached us: the provider's webhook, or our own poll of the provider."""

    WEBHOOK = "webhook"
    POLL = "poll"


NUMBER_ASSIGNED: Final = EventType.NUMBER_ASSIGNED
CODE_RECEIVED: Final = EventType.CODE_RECEIVED
ACTIVATION_FINISHED: Final = EventType.ACTIVATION_FINISHED
ACTIVATION_CANCELLED: Final = EventType.ACTIVATION_CANCELLED
ORDER_FAILED: Final = EventType.ORDER_FAILED
ORDER_COMPLETED: Final = EventType.ORDER_COMPLETED
ORDER_CANCELLED: Final = EventType.ORDER_CANCELLED
#: every order ends with exactly one of these (its numbers' own events come before it)
ORDER_TERMINAL: Final = frozenset({EventType.ORDER_COMPLETED, EventType.ORDER_CANCELLED, EventType.ORDER_FAILED})
RENT_STARTED: Final = EventType.RENT_STARTED
RENT_SMS: Final = EventType.RENT_SMS
RENT_FINISHED: Final = EventType.RENT_FINISHED
RENT_CANCELLED: Final = EventType.RENT_CANCELLED
RENT_PROLONGED: Final = EventType.RENT_PROLONGED
BALANCE_LOW: Final = EventType.BALANCE_LOW
BALANCE_OK: Final = EventType.BALANCE_OK
TYPES: Final = frozenset(EventType)
VIA_WEBHOOK: Final = Via.WEBHOOK
VIA_POLL: Final = Via.POLL


@dataclass(frozen=True)
class OutboxConfig:
    """How the events stream is bounded: trimmed to about ``maxlen`` entries (EVENTS_MAXLEN), never by consumers."""

    maxlen: int = 100_000


class EventError(ValueError):
    """A stream entry that does not follow the event contract."""


def iso(ts: float) -> str:
    """ISO 8601 UTC with milliseconds and a ``Z``: what ``at`` carries."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def event_id(subject: str, event_type: str, discriminator: str = "") -> str:
    """Deterministic id: the same (order or rent, type, discriminator) always gives the same id."""
    raw = "\x1f".join((subject, event_type, discriminator)).encode("utf-8")
    return hashlib.sha1(raw).hexdigest()[:32]


@dataclass(frozen=True)
class EventSpec:
    """An event to be written by the transition script. Fields from the order record (activation id, phone,
    service, country) are filled in inside Redis, so the writer need not read the record first."""

    type: EventType
    data: dict[str, Any]

    def to_json(self) -> str:
        return json.dumps(self.data, separators=(",", ":"), ensure_ascii=False)


def make_event(event_type: EventType, order_id: str, now: float, *, discriminator: str = "",
               **fields: Any) -> EventSpec:
    """Build the event for an order; ``fields`` are type-specific (code, text, via, reason, …); None is dropped."""
    try:
        kind = EventType(event_type)
    except ValueError:
        raise EventError(f"unknown event type {event_type!r}") from None
    data: dict[str, Any] = {"event_id": event_id(order_id, kind.value, discriminator), "type": kind.value,
                            "order_id": order_id, "at": iso(now)}
    data.update({k: (v.value if isinstance(v, enum.Enum) else v) for k, v in fields.items() if v is not None})
    return EventSpec(kind, data)


def make_provider_event(event_type: EventType, provider: str, now: float, *, discriminator: str,
                        **fields: Any) -> EventSpec:
    """Build an event about a provider (no order): its id is stable for (provider, type, discriminator)."""
    kind = EventType(event_type)
    data: dict[str, Any] = {"event_id": event_id(f"provider:{provider}", kind.value, discriminator),
                            "type": kind.value, "provider": provider, "at": iso(now)}
    data.update({k: (v.value if isinstance(v, enum.Enum) else v) for k, v in fields.items() if v is not None})
    return EventSpec(kind, data)


@dataclass(frozen=True)
class Event:
    """A parsed stream entry."""

    stream_id: str
    type: str
    data: dict[str, Any]

    @property
    def event_id(self) -> str:
        return str(self.data.get("event_id", ""))

    def as_kwargs(self) -> dict[str, Any]:
        """What the optional downstream Celery task receives: ``type`` plus the data fields."""
        return {**self.data, "type": self.type}


def parse_event(stream_id: str, fields: Mapping[str, str]) -> Event:
    """Parse one XREAD entry; raise EventError when it is not ours."""
    try:
        etype = fields["type"]
        data = json.loads(fields["data"])
    except (KeyError, TypeError, ValueError) as exc:
        raise EventError(f"malformed event entry {stream_id}: {exc.__class__.__name__}") from None
    if not isinstance(data, dict):
        raise EventError(f"event {stream_id}: data is not an object")
    return Event(stream_id, etype, data)
