"""Reading the downstream event stream the way a consumer does (``XREAD``), shared by the CLI and the demo."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Iterator

import redis

#: the event types that end an order (exactly one per order), and the exit status a command following it returns
TERMINAL: dict[str, int] = {"order.completed": 0, "order.cancelled": 1, "order.failed": 1}


@dataclass(frozen=True)
class FeedEvent:
    entry_id: str
    type: str
    data: dict[str, Any]

    def as_json(self) -> str:
        return json.dumps({"id": self.entry_id, "type": self.type, "data": self.data}, ensure_ascii=False)


def latest_id(client: redis.Redis, stream: str) -> str:
    """The id of the newest entry (``0`` for an empty stream): start after it to see only new events."""
    newest: Any = client.xrevrange(stream, count=1)
    return str(newest[0][0]) if newest else "0"


def feed(client: redis.Redis, stream: str, *, start: str = "0", follow: bool = False,
         deadline: float | None = None) -> Iterator[FeedEvent]:
    """Yield events after ``start``; with ``follow``, block for new ones until ``deadline`` (monotonic) passes."""
    cursor = start
    while deadline is None or time.monotonic() < deadline:
        batch: Any = client.xread({stream: cursor}, block=1000 if follow else None, count=100)
        if not batch and not follow:
            return
        for _stream, entries in batch or []:
            for entry_id, fields in entries:
                cursor = entry_id
                try:
                    data = json.loads(fields.get("data") or "{}")
                except ValueError:
                    data = {"raw": fields.get("data")}
                yield FeedEvent(str(entry_id), str(fields.get("type")), data if isinstance(data, dict) else {})


def follow_order(client: redis.Redis, stream: str, order_id: str, *, start: str, timeout: float) -> Iterator[FeedEvent]:
    """One order's events, ending after its terminal event (or at the time-out)."""
    for event in feed(client, stream, start=start, follow=True, deadline=time.monotonic() + timeout):
        if event.data.get("order_id") != order_id:
            continue
        yield event
        if event.type in TERMINAL:
            return
