"""The short history: steps in seconds since creation, split over fields of at most 64 bytes (the record stays a
listpack), the last 16 kept; records written with unix times read as they are and are rewritten by a transition."""
from __future__ import annotations

import uuid
from typing import Any, Iterator

import pytest

from config.settings import Settings
from lifecycle import history
from lifecycle.activation.machine import Command
from lifecycle.activation.record import OrderRequest
from lifecycle.cas import Change, states
from tests.unit.lifecycle.conftest import FakeClock, make_orders


def test_steps_count_from_creation_and_read_old_unix_times() -> None:
    created = 1_750_000_000.75
    assert history.steps("pending@0,buying@2,waiting@31", created) == [
        ("pending", 1_750_000_000.0), ("buying", 1_750_000_002.0), ("waiting", 1_750_000_031.0)]
    # a record written before: unix times, as they are (also mixed with steps written since)
    assert history.steps("pending@1750000000,buying@1750000002,waiting@31", created) == [
        ("pending", 1_750_000_000.0), ("buying", 1_750_000_002.0), ("waiting", 1_750_000_031.0)]
    assert history.steps("", created) == [] and history.steps("cmd:a@b@5", created) == [("cmd:a@b", created // 1 + 5)]
    assert history.text({"h": "a@0,b@1", "h1": "c@2", "h3": "ignored"}) == "a@0,b@1,c@2"
    assert history.text({}) == ""


@pytest.fixture
def prefixed(real_redis: Any) -> Iterator[Settings]:
    settings = Settings(key_prefix=f"hist-{uuid.uuid4().hex[:8]}", events_stream=f"hist-{uuid.uuid4().hex[:8]}")
    yield settings
    for key in real_redis.scan_iter(match=f"{settings.key_prefix}:*"):
        real_redis.delete(key)
    real_redis.delete(settings.events_stream)


def test_a_long_history_keeps_the_record_a_listpack(real_redis: Any, prefixed: Settings) -> None:
    clock = FakeClock()
    svc = make_orders(real_redis, prefixed, clock=clock)
    svc.submit(OrderRequest("tg", country=0, order_id="o1"))
    created = clock.now
    for i in range(20):  # labelled touches: each adds a step (cmd:<command>)
        clock.advance(7)
        assert svc.store.apply("o1", Change(hist=f"cmd:{Command.RETRY.value}-{i:02d}")).ok
    key = prefixed.key("order", "o1")
    fields = real_redis.hgetall(key)
    assert real_redis.object("encoding", key) == "listpack"
    assert all(len(v.encode()) <= history.CHUNK for v in fields.values())
    parts = sorted(f for f in fields if f.startswith(history.FIELD))
    assert len(parts) > 1 and parts == sorted(["h", *(f"h{i}" for i in range(1, len(parts)))])
    steps = svc.history("o1")
    assert len(steps) == history.KEEP
    assert steps[-1].label == "cmd:retry-19" and steps[-1].at == created + 140
    assert steps[0].label == "cmd:retry-04" and steps[0].at == created + 35


def test_a_record_written_with_unix_times_is_rewritten_by_its_next_step(fake_redis: Any, settings: Settings) -> None:
    clock = FakeClock()
    svc = make_orders(fake_redis, settings, clock=clock)
    svc.submit(OrderRequest("tg", country=0, order_id="o1"))
    key = settings.key("order", "o1")
    t = int(clock.now)
    fake_redis.hset(key, "h", f"pending@{t},cmd:cancel@{t + 3}")   # as the layout before wrote it
    assert [(h.label, h.at) for h in svc.history("o1")] == [("pending", t), ("cmd:cancel", t + 3)]
    clock.advance(10)
    assert svc.store.apply("o1", Change(expect=states(["pending"]), to="buying")).ok
    assert fake_redis.hget(key, "h") == "pending@0,cmd:cancel@3,buying@10"
    assert [(h.label, h.at) for h in svc.history("o1")] == [("pending", t), ("cmd:cancel", t + 3), ("buying", t + 10)]
