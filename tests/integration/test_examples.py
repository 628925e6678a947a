"""The consumers in examples/ against the real pipeline: a plain redis-py XREADGROUP consumer (idempotent by
event_id, claiming a dead consumer's pending entries with XAUTOCLAIM) and a Celery consumer fed by the relay."""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Iterator

import pytest
import redis as redis_lib

from tests.support.pipeline import Pipeline
from tests.support.processes import ROOT, ChildProcess
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.redis, pytest.mark.http, pytest.mark.processes]

STREAM = "otpflow:events"
QUEUE = "otp-events-test"
TASK = "examples.celery_consumer.handle_otp_event"


@pytest.fixture(scope="module")
def pipeline(redis_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    url = f"{redis_server_url}/12"
    redis_lib.Redis.from_url(url).flushdb()
    pipe = Pipeline(redis_url=url, log_dir=Path(tmp_path_factory.mktemp("examples-logs")),
                    extra_env={"DOWNSTREAM_TASK": TASK, "DOWNSTREAM_QUEUE": QUEUE, "ACTIVATION_TIMEOUT": "60"})
    try:
        pipe.start(auto_sms_after=0.3)
        yield pipe
    finally:
        pipe.stop()


def completed_order(pipeline: Pipeline) -> str:
    order_id = pipeline.order("tg")
    pipeline.wait_event(order_id, "order.completed")
    return order_id


def redis_consumer(pipeline: Pipeline, *args: str) -> list[dict[str, str]]:
    done = subprocess.run([sys.executable, "examples/redis_consumer.py", "--redis-url", pipeline.redis_url,
                           "--block-ms", "200", "--idle-exit", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_redis_consumer_handles_each_event_once_and_claims_a_dead_consumers_entries(pipeline: Pipeline) -> None:
    order_id = completed_order(pipeline)
    r = pipeline.redis()
    total = r.xlen(STREAM)
    # a consumer of the group read two events, then died before acknowledging them
    r.xgroup_create(STREAM, "shop", id="0")
    dead = r.xreadgroup("shop", "dead-one", {STREAM: ">"}, count=2)
    taken = [entry_id for _s, entries in dead for entry_id, _f in entries]
    # and one event had been handled before (its marker is there): it is acknowledged, not handled again
    first_event = json.loads(r.xrange(STREAM, count=1)[0][1]["data"])
    r.set(f"example:seen:{first_event['event_id']}", "1")

    handled = redis_consumer(pipeline, "--group", "shop", "--consumer", "alive", "--claim-idle-ms", "0")
    ids = Counter(h["handled"] for h in handled)
    assert len(handled) == total - 1 and max(ids.values()) == 1
    assert first_event["event_id"] not in ids
    assert r.hget("example:codes", order_id)  # the effect: the order's code
    # the dead consumer's second entry was claimed and handled (its first is the one handled before)
    claimed = json.loads(r.xrange(STREAM, min=taken[1], max=taken[1])[0][1]["data"])["event_id"]
    assert len(taken) == 2 and ids[claimed] == 1
    assert r.xpending(STREAM, "shop")["pending"] == 0  # everything acknowledged, the dead one's two too

    # run again: nothing new, nothing handled twice
    assert redis_consumer(pipeline, "--group", "shop", "--consumer", "alive") == []
    # a new order: only its events
    second = completed_order(pipeline)
    again = redis_consumer(pipeline, "--group", "shop", "--consumer", "alive")
    assert {h["order_id"] for h in again} == {second}


def test_celery_consumer_gets_every_event_from_the_relay_once(pipeline: Pipeline) -> None:
    env = pipeline.env | {"EXAMPLE_PREFIX": "celery-test"}
    consumer = ChildProcess("consumer", [sys.executable, "-m", "celery", "-A", "examples.celery_consumer", "worker",
                                         "-Q", QUEUE, "--pool", "solo", "--without-mingle", "--without-gossip",
                                         "--loglevel", "INFO"], env, pipeline.log_dir / "consumer.log").start()
    try:
        consumer.wait_for_log("ready.", timeout=60)
        order_id = completed_order(pipeline)
        r = pipeline.redis()
        ours = [json.loads(f["data"]) for _i, f in r.xrange(STREAM)]
        wanted = {e["event_id"] for e in ours}
        wait_until(lambda: wanted <= set(r.hkeys("celery-test:handled")), timeout=60,
                   check=lambda: None if consumer.alive() else pytest.fail(consumer.log()[-3000:]),
                   message=lambda: f"handled {r.hkeys('celery-test:handled')}\n{consumer.log()[-3000:]}")
        assert r.hget("celery-test:codes", order_id)
        handled = consumer.log().count("handled ")
        # a repeat delivery of the same event (the relay is at least once) is skipped by its event_id
        code_event = next(e for e in ours if e["order_id"] == order_id and e["type"] == "code.received")
        from config.settings import Settings
        from worker.celery_app import make_celery

        make_celery(Settings(redis_url=pipeline.redis_url)).send_task(TASK, kwargs=code_event, queue=QUEUE)
        consumer.wait_for_log(f"duplicate {code_event['event_id']} skipped", timeout=30)
        assert consumer.log().count("handled ") == handled
    finally:
        consumer.stop()
