"""A downstream consumer of otpflow's events with nothing but redis-py: ``XREADGROUP``, idempotent by ``event_id``,
taking over what a dead consumer of the same group left pending (``XAUTOCLAIM``).

Run as many as you like with the same ``--group`` (each with its own ``--consumer``): the group shares the events
between them, and each one acknowledges an event only after it was handled, so nothing is lost when one dies; the
others claim its pending entries once they have been idle for ``--claim-idle-ms``.

    REDIS_URL=redis://127.0.0.1:6379/0 python examples/redis_consumer.py --group my-service

Delivery is at least once (a consumer can die after handling an event and before acknowledging it), so ``handle``
is written to be idempotent, and a marker per ``event_id`` (kept for a week) skips a repeat before it is handled.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
from typing import Any

import redis

SEEN_TTL = 7 * 24 * 3600


def handle(r: redis.Redis, prefix: str, kind: str, event: dict[str, Any]) -> None:
    """The business effect. Here: keep each order's code where the application reads it (idempotent: an HSET of
    the same value twice changes nothing), and say so."""
    if kind == "code.received":
        r.hset(f"{prefix}:codes", event["order_id"], event["code"])
    print(json.dumps({"handled": event["event_id"], "type": kind, "order_id": event.get("order_id")}), flush=True)


class Consumer:
    def __init__(self, r: redis.Redis, *, stream: str, group: str, consumer: str, prefix: str,
                 claim_idle_ms: int) -> None:
        self.r, self.stream, self.group, self.consumer = r, stream, group, consumer
        self.prefix, self.claim_idle_ms = prefix, claim_idle_ms
        self.handled = 0
        self.stopping = False

    def ensure_group(self, start: str = "0") -> None:
        try:
            self.r.xgroup_create(self.stream, self.group, id=start, mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def process(self, entry_id: str, fields: dict[str, str] | None) -> None:
        """Handle one entry unless its event was handled before, then acknowledge it."""
        if fields:  # None: trimmed from the stream while pending; nothing to do but acknowledge it
            try:
                event = json.loads(fields["data"])
            except (KeyError, ValueError):
                event = None
            if isinstance(event, dict) and event.get("event_id"):
                seen = f"{self.prefix}:seen:{event['event_id']}"
                if not self.r.exists(seen):
                    handle(self.r, self.prefix, fields.get("type", ""), event)
                    self.r.set(seen, "1", ex=SEEN_TTL)
                    self.handled += 1
        self.r.xack(self.stream, self.group, entry_id)

    def claim_stale(self) -> int:
        """Take over entries other consumers of the group read but never acknowledged (they died)."""
        start, claimed = "0-0", 0
        while True:
            reply: Any = self.r.xautoclaim(self.stream, self.group, self.consumer, min_idle_time=self.claim_idle_ms,
                                           start_id=start, count=100)
            start, entries = reply[0], reply[1]
            for entry_id, fields in entries:
                if entry_id is not None:
                    self.process(entry_id, fields)
                    claimed += 1
            for gone in (reply[2] if len(reply) > 2 else []):  # deleted while pending (Redis 7)
                self.r.xack(self.stream, self.group, gone)
            if start in ("0-0", b"0-0"):
                return claimed

    def run(self, *, count: int | None, block_ms: int, idle_exit: bool) -> int:
        self.ensure_group()
        # first what this consumer name was given before a restart and never acknowledged
        mine: Any = self.r.xreadgroup(self.group, self.consumer, {self.stream: "0"})
        for _stream, entries in mine or []:
            for entry_id, fields in entries:
                self.process(entry_id, fields)
        while not self.stopping and (count is None or self.handled < count):
            self.claim_stale()
            rows: Any = self.r.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=100, block=block_ms)
            if not rows and idle_exit:
                break
            for _stream, entries in rows or []:
                for entry_id, fields in entries:
                    self.process(entry_id, fields)
        return self.handled


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--stream", default=os.environ.get("EVENTS_STREAM", "otpflow:events"))
    parser.add_argument("--group", default="example-consumer")
    parser.add_argument("--consumer", default=f"{socket.gethostname()}-{os.getpid()}")
    parser.add_argument("--prefix", default="example", help="prefix of this consumer's own keys")
    parser.add_argument("--claim-idle-ms", type=int, default=60_000,
                        help="claim other consumers' pending entries idle this long")
    parser.add_argument("--count", type=int, default=None, help="exit after handling this many events")
    parser.add_argument("--block-ms", type=int, default=5000)
    parser.add_argument("--idle-exit", action="store_true", help="exit when a read finds nothing new")
    args = parser.parse_args(argv)
    r = redis.Redis.from_url(args.redis_url, decode_responses=True)
    consumer = Consumer(r, stream=args.stream, group=args.group, consumer=args.consumer, prefix=args.prefix,
                        claim_idle_ms=args.claim_idle_ms)

    def stop(signum: int, frame: Any) -> None:
        consumer.stopping = True  # finish the entry at hand, acknowledge it, then leave

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    consumer.run(count=args.count, block_ms=args.block_ms, idle_exit=args.idle_exit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
