"""A full Redis (``maxmemory`` reached, ``noeviction``) with the Procfile's real web, worker and beat processes.

The worker used to log ``Unrecoverable error: ...OutOfMemoryError`` and exit, leaving the inbox undrained until a
person restarted it. Now the web answers 503 (and ``/readyz`` says why), the worker pauses at its Redis gate, and
once memory is freed both carry on by themselves. The Redis is this test's own server (its ``maxmemory`` is
lowered here), never a shared one.
"""
from __future__ import annotations

import signal
from pathlib import Path
from typing import Iterator

import pytest
import redis
import requests

from otpflow.embedded_redis import EmbeddedRedis
from tests.support.pipeline import Pipeline
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.redis, pytest.mark.http, pytest.mark.processes, pytest.mark.chaos]

FILLER = "filler"


@pytest.fixture
def own_redis() -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(maxmemory="256mb").start()
    try:
        yield server
    finally:
        server.stop()


def _unknown_sms(n: int) -> dict[str, object]:
    return {"activationId": f"99000{n}", "code": f"{1000 + n}", "text": f"code {1000 + n}",
            "receivedAt": f"2026-01-01 00:00:{n:02d}"}


def _fill(client: redis.Redis) -> None:
    """Write 8 MB of filler: what the limit is lowered below, later."""
    for i in range(128):
        client.set(f"{FILLER}:{i}", "x" * 65_536)


def _refuse_writes(client: redis.Redis) -> None:
    """Lower maxmemory below what Redis holds: every write is refused until the filler is deleted (a limit just
    above would let small writes through again as buffers are freed)."""
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", str(used - 2 * 1024 * 1024))
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        client.set(f"{FILLER}:probe", "x")


def test_a_full_redis_pauses_the_worker_and_everything_resumes_when_memory_is_freed(own_redis: EmbeddedRedis,
                                                                                   tmp_path: Path) -> None:
    pipeline = Pipeline(redis_url=own_redis.url, log_dir=tmp_path).start()
    worker = pipeline.processes["worker"]
    try:
        client = pipeline.redis()
        assert pipeline.post_webhook(_unknown_sms(1)).status_code == 200
        pipeline.wait_inbox_drained()
        # ... and that drain has ended (it lingers DRAIN_LINGER for more, holding the drain flag, and the next
        # webhook must find the flag free so that it queues a drain task of its own)
        wait_until(lambda: sum(pipeline.task_runs("otpflow.drain_inbox").values()) >= 1
                   and not client.exists(pipeline.key("inbox", "drain")),
                   message="the first drain did not end")

        # A drain task waits in the queue while Redis fills up (the worker is stopped meanwhile): taking it is
        # the write a full Redis refuses, which used to end the worker with "Unrecoverable error".
        _fill(client)
        worker.signal_group(signal.SIGSTOP)
        try:
            assert pipeline.post_webhook(_unknown_sms(2)).status_code == 200
            _refuse_writes(client)
        finally:
            worker.signal_group(signal.SIGCONT)

        refused = pipeline.post_webhook(_unknown_sms(3))
        assert refused.status_code == 503 and refused.headers["Retry-After"]
        ready = requests.get(f"{pipeline.base_url}/readyz", timeout=5)
        assert ready.status_code == 503 and ready.json()["redis"]["full"] is True, ready.text
        assert "out of memory" in ready.json()["reason"] and ready.json()["inbox"]["pending"] == 1
        metrics = requests.get(f"{pipeline.base_url}/metrics", timeout=5).text
        assert "otpflow_redis_oom 1.0" in metrics and "otpflow_inbox_pending 1.0" in metrics

        worker.wait_for_log("Redis refuses writes (out of memory", timeout=90)
        assert worker.alive(), worker.log()[-3000:]

        keys = list(client.scan_iter(match=f"{FILLER}:*", count=1000))
        client.delete(*keys)  # deleting is allowed even when full
        worker.wait_for_log("Redis accepts writes again", timeout=60)

        # the webhook stored before the limit kept its place and is drained now; new ones are taken again
        pipeline.wait_inbox_drained(timeout=60)
        wait_until(lambda: pipeline.post_webhook(_unknown_sms(4)).status_code == 200, timeout=30,
                   message="the web did not take webhooks again")
        pipeline.wait_inbox_drained(timeout=60)
        assert requests.get(f"{pipeline.base_url}/readyz", timeout=5).json()["redis"]["full"] is False
        assert worker.alive() and "Unrecoverable error" not in worker.log()
    finally:
        pipeline.stop()
