"""The outbox: downstream events written atomically with each state change, and the relay that forwards them."""
from .events import Event, EventError, EventSpec, EventType, OutboxConfig, Via, make_event, parse_event

__all__ = ["Event", "EventError", "EventSpec", "EventType", "OutboxConfig", "Via", "make_event", "parse_event"]
