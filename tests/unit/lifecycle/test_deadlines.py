"""Deadline claims are atomic and leased."""
from __future__ import annotations

from typing import Any

from config import domain
from config.settings import Settings
from lifecycle.deadlines import Deadlines

from .conftest import FakeClock


def test_claim_leases_due_members(fake_redis: Any, settings: Settings, clock: FakeClock) -> None:
    d = Deadlines(fake_redis, domain.keys(settings).deadlines, clock=clock)
    key = settings.key("deadlines")
    fake_redis.zadd(key, {"a": clock.now - 5, "b": clock.now - 1, "c": clock.now + 100})
    first = d.claim(10, lease=60)
    assert [x.order_id for x in first] == ["a", "b"]
    assert d.claim(10, lease=60) == []             # a second sweeper finds nothing: leased
    assert fake_redis.zscore(key, "a") == clock.now + 60
    clock.advance(61)                               # the first sweeper died: its lease expires
    assert {x.order_id for x in d.claim(10, lease=60)} == {"a", "b"}


def test_claim_respects_limit(fake_redis: Any, settings: Settings, clock: FakeClock) -> None:
    d = Deadlines(fake_redis, domain.keys(settings).deadlines, clock=clock)
    fake_redis.zadd(settings.key("deadlines"), {f"o{i}": clock.now - i for i in range(10)})
    assert len(d.claim(3)) == 3 and len(d.claim(100)) == 7
    assert d.due_count() == 0 and d.count() == 10
