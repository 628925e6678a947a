"""telemetry/worker_counters.py: per-process task counters, throttled one-round-trip flushes to Redis, retry after
failure, and the one field format the web reads back."""
from __future__ import annotations

from typing import Any, Iterator

import pytest
import redis

from config.settings import Settings
from flows.outcomes import Outcome
from flows.runtime import Runtime
from lifecycle.keys import Keys
from tasks.base import flush_task_metrics, outcome_label
from tasks.runtime import set_runtime
from telemetry import worker_counters as task_metrics
from telemetry.worker_counters import TaskMetrics, join_field, split_field

KEYS = Keys()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingRedis:
    """Wraps a (fake) client: counts pipeline round trips and can be told to fail them."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.round_trips = 0
        self.fail = False

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        outer = self
        pipe = self.client.pipeline(*args, **kwargs)
        real_execute = pipe.execute

        def execute(*a: Any, **kw: Any) -> Any:
            outer.round_trips += 1
            if outer.fail:
                raise redis.exceptions.ConnectionError("down")
            return real_execute(*a, **kw)

        pipe.execute = execute  # type: ignore[method-assign]
        return pipe


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def acc(clock: Clock) -> TaskMetrics:
    return TaskMetrics(clock=clock)


@pytest.fixture
def client(fake_redis: redis.Redis) -> Any:
    return CountingRedis(fake_redis)


def runs(r: redis.Redis) -> dict[Any, Any]:
    return r.hgetall(KEYS.worker_task_runs)


def seconds(r: redis.Redis) -> dict[Any, float]:
    return {k: float(v) for k, v in r.hgetall(KEYS.worker_task_seconds).items()}


@pytest.mark.parametrize("result, outcome", [
    (None, "ok"), (3, "ok"), ({"a": 1}, "ok"), ("", "ok"),
    (Outcome.BACKOFF, "backoff"), (Outcome.FINISHED, "finished"), (Outcome.RETRY_LATER, "retry_later"),
    # ids, codes and free text never become labels: only Outcome members do
    ("o-4f9a2c", "ok"), ("123456", "ok"), ("backoff:NO_NUMBERS", "ok"), ("x" * 40, "ok"),
])
def test_outcome_labels_are_bounded(result: Any, outcome: str) -> None:
    assert outcome_label(result) == outcome


def test_every_outcome_is_a_short_label() -> None:
    import re

    assert all(re.fullmatch(r"[a-z_]{1,32}", o.value) for o in Outcome)


def test_two_label_fields_round_trip() -> None:
    assert split_field(join_field("otpflow.sweep", "ok")) == ("otpflow.sweep", "ok")
    assert split_field("a|b|c") == ("a|b", "c")
    assert split_field("nolabel") is None and split_field("|x") is None and split_field("x|") is None


def test_accumulates_and_flushes_in_one_round_trip(acc: TaskMetrics, client: Any) -> None:
    acc.record("otpflow.place_order", "placed", 0.25)
    acc.record("otpflow.place_order", "placed", 0.5)
    acc.record("otpflow.place_order", "error", 0.25)
    acc.record("otpflow.sweep", "ok", 0.125)
    assert acc.pending and runs(client.client) == {}

    assert acc.flush(client, KEYS) is True
    assert client.round_trips == 1
    assert not acc.pending
    assert runs(client.client) == {"otpflow.place_order|placed": "2", "otpflow.place_order|error": "1",
                                   "otpflow.sweep|ok": "1"}
    assert seconds(client.client) == {"otpflow.place_order": 1.0, "otpflow.sweep": 0.125}

    acc.record("otpflow.place_order", "placed", 1.0)
    acc.flush(client, KEYS)
    assert runs(client.client)["otpflow.place_order|placed"] == "3"  # added to, not overwritten
    assert seconds(client.client)["otpflow.place_order"] == 2.0


def test_nothing_pending_means_no_round_trip(acc: TaskMetrics, client: Any, clock: Clock) -> None:
    clock.now += 60
    assert acc.maybe_flush(client, KEYS, interval=5) is True
    assert acc.flush(client, KEYS) is True
    assert client.round_trips == 0


def test_flushes_at_most_once_per_interval(acc: TaskMetrics, client: Any, clock: Clock) -> None:
    acc.record("otpflow.sweep", "ok", 0.1)
    assert acc.maybe_flush(client, KEYS, interval=5) is False  # the process just started: held back
    clock.now += 4.9
    acc.record("otpflow.sweep", "ok", 0.1)
    acc.maybe_flush(client, KEYS, interval=5)
    assert client.round_trips == 0 and runs(client.client) == {}

    clock.now += 0.1
    acc.record("otpflow.sweep", "ok", 0.1)
    assert acc.maybe_flush(client, KEYS, interval=5) is True
    assert client.round_trips == 1 and runs(client.client) == {"otpflow.sweep|ok": "3"}

    clock.now += 1
    acc.record("otpflow.sweep", "ok", 0.1)
    acc.maybe_flush(client, KEYS, interval=5)
    assert client.round_trips == 1  # the next window starts at the last flush

    clock.now += 4
    acc.maybe_flush(client, KEYS, interval=5)
    assert client.round_trips == 2 and runs(client.client) == {"otpflow.sweep|ok": "4"}


def test_interval_zero_flushes_after_every_task(acc: TaskMetrics, client: Any) -> None:
    for n in range(1, 4):
        acc.record("otpflow.sweep", "ok", 0.1)
        acc.maybe_flush(client, KEYS, interval=0)
        assert runs(client.client) == {"otpflow.sweep|ok": str(n)}


def test_failed_flush_keeps_counts_and_retries_after_the_interval(
        acc: TaskMetrics, client: Any, clock: Clock) -> None:
    acc.record("otpflow.place_order", "placed", 0.5)
    clock.now += 5
    client.fail = True
    assert acc.maybe_flush(client, KEYS, interval=5) is False  # no exception escapes
    assert acc.pending and client.round_trips == 1

    acc.record("otpflow.place_order", "placed", 0.5)  # counted while Redis is down
    client.fail = False
    clock.now += 1
    acc.maybe_flush(client, KEYS, interval=5)
    assert client.round_trips == 1  # a failure waits a full interval too: no round trip per task against a dead Redis

    clock.now += 4
    assert acc.maybe_flush(client, KEYS, interval=5) is True
    assert runs(client.client) == {"otpflow.place_order|placed": "2"}  # nothing lost, nothing doubled
    assert seconds(client.client) == {"otpflow.place_order": 1.0}


def test_increments_redis_refuses_are_kept_the_others_not_doubled(acc: TaskMetrics, fake_redis: redis.Redis) -> None:
    """EXEC applies what it can: only the refused increments are retried, so the applied ones are not counted twice."""
    fake_redis.set(KEYS.worker_task_seconds, "not a hash")  # HINCRBYFLOAT fails inside the transaction (WRONGTYPE)
    acc.record("otpflow.sweep", "ok", 0.25)
    assert acc.flush(fake_redis, KEYS) is False
    assert runs(fake_redis) == {"otpflow.sweep|ok": "1"}
    assert acc.pending

    fake_redis.delete(KEYS.worker_task_seconds)
    assert acc.flush(fake_redis, KEYS) is True
    assert runs(fake_redis) == {"otpflow.sweep|ok": "1"}
    assert seconds(fake_redis) == {"otpflow.sweep": 0.25}


def test_reset_forgets_inherited_counts(acc: TaskMetrics, client: Any) -> None:
    acc.record("otpflow.sweep", "ok", 0.1)
    acc.reset()
    assert not acc.pending
    acc.flush(client, KEYS)
    assert client.round_trips == 0


# ---- the module-level accumulator, as OtpflowTask uses it ------------------------------------------------------

@pytest.fixture
def process_metrics(monkeypatch: pytest.MonkeyPatch, clock: Clock) -> Iterator[TaskMetrics]:
    fresh = TaskMetrics(clock=clock)
    monkeypatch.setattr(task_metrics, "TASK_METRICS", fresh)
    monkeypatch.setattr("tasks.base.TASK_METRICS", fresh)
    yield fresh
    set_runtime(None)


def _runtime(client: Any, interval: float) -> Runtime:
    return Runtime(settings=Settings(metrics_flush_interval=interval), redis=client, provider=None,
                   publish=lambda name, kwargs: None, consumer_name="test")


def test_flush_without_a_runtime_keeps_counts(process_metrics: TaskMetrics) -> None:
    set_runtime(None)
    process_metrics.record("otpflow.sweep", "ok", 0.1)
    assert flush_task_metrics(force=True) is False  # no runtime configured: no exception either
    assert process_metrics.pending


def test_flush_uses_the_runtime_and_its_interval(process_metrics: TaskMetrics, fake_redis: redis.Redis,
                                                 clock: Clock) -> None:
    set_runtime(_runtime(fake_redis, interval=30))
    process_metrics.record("otpflow.sweep", "ok", 0.1)
    clock.now += 10
    flush_task_metrics()
    assert runs(fake_redis) == {}
    flush_task_metrics(force=True)  # what the shutdown signal does
    assert runs(fake_redis) == {"otpflow.sweep|ok": "1"}


def test_task_run_is_counted_and_a_redis_failure_never_fails_the_task(
        process_metrics: TaskMetrics, fake_redis: redis.Redis) -> None:
    from celery import Celery

    from tasks.base import OtpflowTask

    app = Celery("metrics-test", set_as_current=False)  # a private app: the probe is not a shared task
    client = CountingRedis(fake_redis)
    set_runtime(_runtime(client, interval=0))

    @app.task(name="otpflow.test_metrics_probe", base=OtpflowTask, bind=True, shared=False)
    def task(self: OtpflowTask, answer: Any) -> Any:
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert task(Outcome.BACKOFF) == Outcome.BACKOFF
    assert runs(fake_redis) == {"otpflow.test_metrics_probe|backoff": "1"}

    client.fail = True
    assert task("o-123") == "o-123"  # the flush failed; the task did not
    with pytest.raises(ValueError):
        task(ValueError("boom"))
    assert runs(fake_redis) == {"otpflow.test_metrics_probe|backoff": "1"}

    client.fail = False
    task(None)
    assert runs(fake_redis) == {"otpflow.test_metrics_probe|backoff": "1", "otpflow.test_metrics_probe|error": "1",
                                "otpflow.test_metrics_probe|ok": "2"}
    assert seconds(fake_redis)["otpflow.test_metrics_probe"] > 0


def test_provider_calls_flush_with_the_task_counts_and_survive_a_failed_flush(
        acc: TaskMetrics, client: Any, clock: Clock) -> None:
    acc.record_call("getStatus", "ok", 0.25)
    acc.record_call("getStatus", "ReadTimeout", 2.0)
    clock.now += 5
    client.fail = True
    assert acc.maybe_flush(client, KEYS, interval=5) is False
    assert acc.pending
    client.fail = False
    acc.record_call("getStatus", "ok", 0.25)
    clock.now += 5
    assert acc.maybe_flush(client, KEYS, interval=5) is True
    assert client.client.hgetall(KEYS.worker_provider_calls) == {"getStatus|ok": "2", "getStatus|ReadTimeout": "1"}
    assert float(client.client.hget(KEYS.worker_provider_seconds, "getStatus")) == 2.5
