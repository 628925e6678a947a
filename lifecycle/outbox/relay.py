"""Outbox relay: forward the events stream to the optional downstream Celery task, at least once.

It reads ``EVENTS_STREAM`` through its own consumer group and acknowledges an entry only after publishing it,
so a relay that dies mid-batch re-publishes (consumers drop repeats by ``event_id``). It never deletes events:
other consumers read the same stream with their own groups, and the stream is trimmed by length only.
"""
from __future__ import annotations

import logging
from typing import Callable, cast

import redis

from ..keys import Keys
from ..streams import XReadRows
from .events import Event, EventError, parse_event

log = logging.getLogger(__name__)

Publish = Callable[[Event], None]


class OutboxRelay:
    """One relay consumer; several may run (the group shares the work; XAUTOCLAIM takes over dead ones)."""

    def __init__(self, redis_client: redis.Redis, keys: Keys, publish: Publish, *,
                 consumer: str = "relay", min_idle_ms: int = 60_000) -> None:
        self.redis = redis_client
        self.keys = keys
        self.publish = publish
        self.consumer = consumer
        self.min_idle_ms = min_idle_ms
        self._group_ready = False

    def ensure_group(self) -> None:
        """Create the relay's group at the start of the stream (every event still in it gets relayed)."""
        if self._group_ready:
            return
        try:
            self.redis.xgroup_create(self.keys.events, self.keys.relay_group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    def run_once(self, count: int = 200) -> int:
        """Publish one batch: our own unacknowledged entries first, then stale ones of dead relays, then new."""
        self.ensure_group()
        stream, group = self.keys.events, self.keys.relay_group
        entries: list[tuple[str, dict[str, str]]] = []
        mine = cast("XReadRows | None", self.redis.xreadgroup(group, self.consumer, {stream: "0"}, count=count))
        for _name, items in mine or []:
            entries += [(i, f) for i, f in items if f]
        if not entries:
            claimed = self.redis.xautoclaim(stream, group, self.consumer, self.min_idle_ms, "0-0", count=count)
            entries += [(i, f) for i, f in (claimed[1] if claimed else []) if f]
        if not entries:
            fresh = cast("XReadRows | None", self.redis.xreadgroup(group, self.consumer, {stream: ">"}, count=count))
            for _name, items in fresh or []:
                entries += [(i, f) for i, f in items if f]
        done: list[str] = []
        try:
            for entry_id, fields in entries:
                try:
                    event = parse_event(entry_id, fields)
                except EventError as exc:
                    log.warning("relay skips a malformed event: %s", exc)
                    done.append(entry_id)
                    continue
                self.publish(event)
                done.append(entry_id)
        finally:
            if done:
                self.redis.xack(stream, group, *done)
        return len(done)

    def lag(self) -> int:
        """Entries delivered to the group but not yet acknowledged (for /metrics)."""
        self.ensure_group()
        info = self.redis.xpending(self.keys.events, self.keys.relay_group)
        return int(info.get("pending", 0)) if isinstance(info, dict) else 0
