"""What ``/readyz`` and ``/metrics`` tell about Redis and the inbox: memory against ``maxmemory``, and how long the
oldest stored webhook has waited for a drain.

A full Redis (``noeviction``, the policy the broker and the inbox need) refuses every write: webhooks get 503 and
the workers pause until memory is freed (``worker/redis_gate.py``). Neither process can write that state into
Redis then, so it is read from Redis itself: ``INFO memory``, and the id of the oldest inbox entry (stream ids
are milliseconds), which keeps ageing while no worker drains, whatever the reason.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence


@dataclass(frozen=True)
class MemoryState:
    """``used``: bytes Redis counts against ``limit`` (maxmemory, 0 = none); ``full``: it refuses writes."""

    used: int
    limit: int
    policy: str

    @property
    def full(self) -> bool:
        return self.limit > 0 and self.used >= self.limit and self.policy == "noeviction"


def _int(info: Mapping[str, Any], name: str) -> int:
    try:
        return int(info.get(name) or 0)
    except (TypeError, ValueError):
        return 0


def redis_memory(info: Mapping[str, Any]) -> MemoryState:
    """From ``INFO memory``: what Redis compares with maxmemory (replication and AOF buffers do not count)."""
    used = _int(info, "used_memory") - _int(info, "mem_not_counted_for_evict")
    policy = info.get("maxmemory_policy") or ""
    return MemoryState(used=max(0, used), limit=_int(info, "maxmemory"),
                       policy=policy.decode() if isinstance(policy, bytes) else str(policy))


def entry_age(rows: Sequence[Any] | None, now: float) -> float:
    """Seconds since the first row of an XRANGE answer was added (its id is ``<ms>-<seq>``); 0 for none."""
    if not rows:
        return 0.0
    entry_id = rows[0][0]
    text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    try:
        millis = int(text.split("-", 1)[0])
    except ValueError:
        return 0.0
    return max(0.0, now - millis / 1000.0)
