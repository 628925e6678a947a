"""Lua script calls in a batch: one round trip (no SCRIPT EXISTS before it), and a server that lost its scripts
(restarted, flushed) still runs every call of the batch, in order."""
from __future__ import annotations

from typing import Any

import pytest
import redis

from lifecycle.scripts import ScriptPipeline, script


def script_exists_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_script|exists", {}).get("calls", 0))


@pytest.fixture
def appends(real_redis: redis.Redis) -> Any:
    """The inbox's append script over keys of this test (real Redis: SCRIPT FLUSH and command counts are its)."""
    keys = ("test-scripts:seen", "test-scripts:inbox", "test-scripts:drain")
    real_redis.delete(*keys)
    yield script(real_redis, "inbox_append"), keys
    real_redis.delete(*keys)


def queue(batch: ScriptPipeline, lua: Any, keys: tuple[str, ...], n: int) -> None:
    for i in range(n):
        lua((f"{keys[0]}:{i}", keys[1], keys[2]), ("60", "60", "activation", f'{{"n":{i}}}', f"fp{i}", ""),
            client=batch)


def test_a_batch_of_script_calls_is_one_round_trip_without_script_exists(real_redis: redis.Redis,
                                                                          appends: Any) -> None:
    lua, keys = appends
    lua((f"{keys[0]}:warm", keys[1], keys[2]), ("60", "60", "activation", "{}", "warm", ""))  # loaded once
    before = script_exists_calls(real_redis)
    batch = ScriptPipeline(real_redis)
    queue(batch, lua, keys, 5)
    assert len(batch) == 5
    answers = batch.execute()
    assert len(answers) == 5 and all(str(a)[:1] in ("s", "q") for a in answers)
    assert script_exists_calls(real_redis) == before
    assert real_redis.xlen(keys[1]) == 6
    assert batch.execute() == []                      # emptied: nothing runs twice


def test_a_server_that_lost_its_scripts_still_runs_every_call_in_order(real_redis: redis.Redis,
                                                                       appends: Any) -> None:
    lua, keys = appends
    batch = ScriptPipeline(real_redis)
    queue(batch, lua, keys, 3)
    real_redis.script_flush()                         # a restart between queueing and running
    answers = batch.execute()
    assert len(answers) == 3 and all(str(a)[:1] in ("s", "q") for a in answers)
    bodies = [fields["payload"] for _id, fields in real_redis.xrange(keys[1])]
    assert bodies == ['{"n":0}', '{"n":1}', '{"n":2}']


def test_an_error_other_than_noscript_is_raised(real_redis: redis.Redis, appends: Any) -> None:
    lua, keys = appends
    real_redis.set(keys[1], "not a stream")
    batch = ScriptPipeline(real_redis)
    queue(batch, lua, keys, 1)
    with pytest.raises(redis.ResponseError):
        batch.execute()


def test_the_drains_batch_of_codes_sends_no_script_exists(real_redis: redis.Redis) -> None:
    """What the drain runs for a batch (``ActivationStore.receive_codes``) goes through the same batch."""
    import dataclasses

    from config.settings import Settings
    from lifecycle.activation import OrderRequest
    from lifecycle.activation.store import CodeArrival
    from lifecycle.outbox.events import Via

    from .conftest import make_orders

    settings = dataclasses.replace(Settings(), key_prefix="test-scripts-codes", events_stream="test-scripts-codes:ev")
    orders = make_orders(real_redis, settings)
    try:
        for i in range(3):
            orders.submit(OrderRequest("tg", order_id=f"o{i}"))
        orders.store.receive_codes([("o0", CodeArrival("1", Via.WEBHOOK))])  # its script loaded once
        before = script_exists_calls(real_redis)
        results = orders.store.receive_codes([(f"o{i}", CodeArrival("123456", Via.WEBHOOK)) for i in range(3)])
        assert [r.status.value for r in results] == ["stale"] * 3     # pending orders: no code taken, each ran
        assert script_exists_calls(real_redis) == before
    finally:
        for key in real_redis.scan_iter(match="test-scripts-codes*"):
            real_redis.delete(key)
