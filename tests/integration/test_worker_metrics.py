"""Worker task counters reach the web app's /metrics through Redis (a worker dyno cannot be scraped).

Real parts (tests/support/pipeline.py): gunicorn, a prefork ``celery worker``, beat, the sandbox provider. The
flush interval is set far beyond the test, so what /metrics shows after the worker stops was flushed by the
shutdown signal, and what it shows before shows the throttle holds counts back.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import redis as redis_lib
import requests
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.support.pipeline import Pipeline
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.redis, pytest.mark.http, pytest.mark.processes]

#: Celery's log line once a task returned (after the task's own after-run flush check)
PLACE_ORDER_DONE = re.compile(r"Task otpflow\.place_order\[[^\]]+\] succeeded")


def scrape(pipeline: Pipeline) -> list[Sample]:
    text = requests.get(f"{pipeline.base_url}/metrics", timeout=10).text
    assert "otpflow_redis_up 1.0" in text
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def place_order_runs(pipeline: Pipeline) -> dict[str, float]:
    """``otpflow_worker_tasks_total{task="otpflow.place_order",outcome=...}`` by outcome."""
    return {s.labels["outcome"]: s.value for s in scrape(pipeline)
            if s.name == "otpflow_worker_tasks_total" and s.labels["task"] == "otpflow.place_order"}


def wait_runs(pipeline: Pipeline, total: float, timeout: float = 30.0) -> dict[str, float]:
    def enough() -> dict[str, float] | None:
        runs = place_order_runs(pipeline)
        return runs if sum(runs.values()) >= total else None

    return wait_until(enough, timeout=timeout, interval=0.1,
                      message=lambda: f"place_order runs {place_order_runs(pipeline)}, wanted {total}\n"
                                      f"{pipeline.logs()}")


def test_worker_task_counts_on_web_metrics_across_worker_restarts(redis_server_url: str, tmp_path: Path) -> None:
    url = f"{redis_server_url}/13"
    redis_lib.Redis.from_url(url).flushdb()
    pipeline = Pipeline(redis_url=url, log_dir=tmp_path, extra_env={"METRICS_FLUSH_INTERVAL": "3600"})
    try:
        pipeline.start()
        first = pipeline.order("tg")
        pipeline.wait_event(first, "number.assigned")
        # the task has returned (so its after-run flush check is done) and more tasks ran after it
        wait_until(lambda: PLACE_ORDER_DONE.search(pipeline.processes["worker"].log()),
                   message=lambda: pipeline.logs())
        pipeline.wait_sweeps(2)
        assert place_order_runs(pipeline) == {}  # counted in the worker process, held back by the throttle

        pipeline.processes.pop("worker").stop()  # SIGTERM to the group, as the platform does
        assert wait_runs(pipeline, 1) == {"waiting": 1.0}  # flushed by worker_process_shutdown
        seconds = [s.value for s in scrape(pipeline) if s.name == "otpflow_worker_task_seconds_total"
                   and s.labels == {"task": "otpflow.place_order"}]
        assert len(seconds) == 1 and seconds[0] > 0
        purchases = [s.value for s in scrape(pipeline) if s.name == "otpflow_worker_provider_calls_total"
                     and s.labels == {"action": "getNumberV2", "result": "ok"}]
        assert purchases == [1.0]  # the client's observer counted the real HTTP call to the sandbox

        # a new worker adds to the same counters: they live in Redis, not in a process
        pipeline.start_worker("worker2")
        second = pipeline.order("tg")
        pipeline.wait_event(second, "number.assigned")
        pipeline.processes.pop("worker2").stop()
        assert wait_runs(pipeline, 2) == {"waiting": 2.0}
        text = requests.get(f"{pipeline.base_url}/metrics", timeout=10).text
        assert first not in text and second not in text  # no order id ever becomes a label
    finally:
        pipeline.stop()
