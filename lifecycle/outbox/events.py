"""The downstream event contract (engineering.md §3): stream entries with two fields, ``type`` and ``data``.

``event_id`` is derived from what the event is about (order, type, and the code for ``code.received``), so a
transition re-run by a re-delivered task, or computed twice by two racing paths, names the same event; the Lua
compare-and-set writes it at most once, and consumers can drop a repeat by id.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Final, Mapping

NUMBER_ASSIGNED: Final = "number.assigned"
CODE_RECEIVED: Final = "code.received"
ACTIVATION_FINISHED: Final = "activation.finished"
ACTIVATION_CANCELLED: Final = "activation.cancelled"
ORDER_FAILED: Final = "order.failed"
RENT_STARTED: Final = "rent.started"
RENT_SMS: Final = "rent.sms"
RENT_FINISHED: Final = "rent.finished"
RENT_CANCELLED: Final = "rent.cancelled"

TYPES: Final = frozenset({NUMBER_ASSIGNED, CODE_RECEIVED, ACTIVATION_FINISHED, ACTIVATION_CANCELLED, ORDER_FAILED,
                          RENT_STARTED, RENT_SMS, RENT_FINISHED, RENT_CANCELLED})

VIA_WEBHOOK: Final = "webhook"
VIA_POLL: Final = "poll"


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

    type: str
    data: dict[str, Any]

    def to_json(self) -> str:
        return json.dumps(self.data, separators=(",", ":"), ensure_ascii=False)


def make_event(event_type: str, order_id: str, now: float, *, discriminator: str = "", **fields: Any) -> EventSpec:
    """Build the event for an order; ``fields`` are type-specific (code, text, via, reason, …); None is dropped."""
    if event_type not in TYPES:
        raise EventError(f"unknown event type {event_type!r}")
    data: dict[str, Any] = {"event_id": event_id(order_id, event_type, discriminator), "type": event_type,
                            "order_id": order_id, "at": iso(now)}
    data.update({k: v for k, v in fields.items() if v is not None})
    return EventSpec(event_type, data)


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
