"""/metrics exposes the worker task counters the workers flush to Redis (tasks/metrics.py), read at scrape time."""
from __future__ import annotations

from typing import Any

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from config import domain
from telemetry.worker_counters import TaskMetrics
from webhook.metrics import RedisMetrics

from .conftest import BASE_SETTINGS, Harness, MakeHarness
from .test_health import _down

KEYS = domain.keys(BASE_SETTINGS)


def samples(harness: Harness, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    text = harness.client.get("/metrics").get_data(as_text=True)
    out: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_worker_counters_summed_over_processes(harness: Harness) -> None:
    # two worker processes, each flushing its own counts into the same hashes
    for runs in ([("otpflow.place_order", "placed", 0.5), ("otpflow.sweep", "ok", 0.25)],
                 [("otpflow.place_order", "placed", 1.0), ("otpflow.place_order", "backoff", 0.25)]):
        process = TaskMetrics()
        for task, outcome, seconds in runs:
            process.record(task, outcome, seconds)
        assert process.flush(harness.redis, KEYS)

    tasks = samples(harness, "otpflow_worker_tasks_total")
    assert tasks == {
        (("outcome", "placed"), ("task", "otpflow.place_order")): 2.0,
        (("outcome", "backoff"), ("task", "otpflow.place_order")): 1.0,
        (("outcome", "ok"), ("task", "otpflow.sweep")): 1.0,
    }
    assert samples(harness, "otpflow_worker_task_seconds_total") == {
        (("task", "otpflow.place_order"),): 1.75,
        (("task", "otpflow.sweep"),): 0.25,
    }
    text = harness.client.get("/metrics").get_data(as_text=True)
    assert "# TYPE otpflow_worker_tasks_total counter" in text
    assert "# TYPE otpflow_worker_task_seconds_total counter" in text


def test_no_worker_counts_yet(harness: Harness) -> None:
    assert samples(harness, "otpflow_worker_tasks_total") == {}
    text = harness.client.get("/metrics").get_data(as_text=True)
    assert "otpflow_worker_tasks_total counter" in text  # declared, empty


def test_malformed_fields_are_skipped_not_fatal(harness: Harness) -> None:
    harness.redis.hset(KEYS.worker_task_runs, mapping={"otpflow.sweep|ok": "3", "no-separator": "1",
                                                       "otpflow.sweep|bad": "NaN?"})
    harness.redis.hset(KEYS.worker_task_seconds, mapping={"otpflow.sweep": "1.5", "otpflow.x": "oops"})
    rv = harness.client.get("/metrics")
    assert rv.status_code == 200
    assert samples(harness, "otpflow_worker_tasks_total") == {(("outcome", "ok"), ("task", "otpflow.sweep")): 3.0}
    assert samples(harness, "otpflow_worker_task_seconds_total") == {(("task", "otpflow.sweep"),): 1.5}


def test_read_with_the_gauges_in_one_round_trip(harness: Harness) -> None:
    calls: list[int] = []
    real_pipeline = harness.redis.pipeline

    def pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = real_pipeline(*args, **kwargs)
        real_execute = pipe.execute

        def execute(*a: Any, **kw: Any) -> Any:
            calls.append(len(pipe.command_stack))
            return real_execute(*a, **kw)

        pipe.execute = execute  # type: ignore[method-assign]
        return pipe

    harness.redis.pipeline = pipeline  # type: ignore[method-assign]
    list(RedisMetrics(harness.ctx).collect())
    assert calls == [10]  # 4 gauges, the oldest inbox entry, INFO memory, 2 task + 2 provider hashes: one execute


def test_key_prefix_moves_the_worker_hashes(make_harness: MakeHarness) -> None:
    h = make_harness(key_prefix="blue")
    process = TaskMetrics()
    process.record("otpflow.sweep", "ok", 0.1)
    process.flush(h.redis, h.ctx.keys)
    assert h.redis.exists("blue:metrics:task-runs") and not h.redis.exists("otpflow:metrics:task-runs")
    assert samples(h, "otpflow_worker_tasks_total") == {(("outcome", "ok"), ("task", "otpflow.sweep")): 1.0}


def test_worker_counters_omitted_when_redis_is_down(make_harness: MakeHarness, closed_port: int) -> None:
    text = _down(make_harness, closed_port).client.get("/metrics").get_data(as_text=True)
    assert "otpflow_redis_up 0.0" in text
    assert "otpflow_worker_tasks_total" not in text


@pytest.mark.parametrize("decode", [True, False])
def test_reads_bytes_or_text_clients(make_harness: MakeHarness, decode: bool) -> None:
    import fakeredis

    client: redis.Redis = fakeredis.FakeRedis(decode_responses=decode)
    h = make_harness(redis_client=client)
    client.hset(KEYS.worker_task_runs, "otpflow.sweep|ok", 2)
    assert samples(h, "otpflow_worker_tasks_total") == {(("outcome", "ok"), ("task", "otpflow.sweep")): 2.0}


def test_provider_calls_recorded_by_the_client_observer_reach_metrics(harness: Harness) -> None:
    process = TaskMetrics()
    process.record_call("getStatus", "ok", 0.02)
    process.record_call("getStatus", "ok", 0.03)
    process.record_call("getNumberV2", "NoNumbers", 0.1)
    assert process.flush(harness.redis, harness.ctx.keys)
    rv = harness.client.get("/metrics")
    assert rv.status_code == 200
    assert samples(harness, "otpflow_worker_provider_calls_total") == {
        (("action", "getNumberV2"), ("result", "NoNumbers")): 1.0,
        (("action", "getStatus"), ("result", "ok")): 2.0,
    }
    seconds = samples(harness, "otpflow_worker_provider_seconds_total")
    assert abs(seconds[(("action", "getStatus"),)] - 0.05) < 1e-9
