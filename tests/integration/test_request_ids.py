"""A request id from the HTTP request to the worker's lines, with real parts: gunicorn, a celery worker and beat on
a real Redis, the sandbox provider over HTTP, LOG_FORMAT=json. The test reads the processes' own output, as a log
drain would."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.support.logs import json_objects
from tests.support.pipeline import SANDBOX_KEY, Pipeline
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.redis, pytest.mark.http, pytest.mark.processes]


@pytest.fixture(scope="module")
def pipeline(redis_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    import redis as redis_lib

    url = f"{redis_server_url}/13"
    redis_lib.Redis.from_url(url).flushdb()
    pipe = Pipeline(redis_url=url, log_dir=Path(tmp_path_factory.mktemp("request-id-logs")),
                    extra_env={"LOG_FORMAT": "json"})
    try:
        pipe.start()
        yield pipe
    finally:
        pipe.stop()


def _lines(pipeline: Pipeline, process: str) -> list[dict[str, Any]]:
    return json_objects(pipeline.processes[process].log())


def test_the_worker_s_lines_for_an_order_carry_the_request_id_it_was_placed_with(pipeline: Pipeline) -> None:
    request_id = "it-req-0123.abc_DEF"
    response = pipeline.api("POST", "/api/orders", json={"service": "tg", "country": 0},
                            headers={"X-Request-Id": request_id})
    assert response.status_code == 202, response.text
    assert response.headers["X-Request-Id"] == request_id
    order_id = response.json()["order_id"]

    def worker_lines() -> list[dict[str, Any]]:
        return [ln for ln in _lines(pipeline, "worker")
                if ln.get("request_id") == request_id and ln.get("order_id") == order_id]

    # the purchase's transitions and its provider call, written by the place_order task in the worker
    found = wait_until(lambda: [ln for ln in worker_lines() if ln.get("to_state") == "waiting"],
                       check=pipeline.check_alive,
                       message=lambda: f"no worker line with request_id {request_id} moving {order_id} to "
                                       f"waiting\n{pipeline.logs()}")
    assert {ln["task_name"] for ln in found} == {"otpflow.place_order"}
    assert [ln["action"] for ln in worker_lines() if ln["logger"] == "provider.transport"] == ["getNumberV2"]

    web = pipeline.processes["web"].log()
    (accepted,) = [ln for ln in _lines(pipeline, "web")
                   if ln.get("order_id") == order_id and ln.get("status") == "created"]
    assert (accepted["request_id"], accepted["service"], accepted["country"]) == (request_id, "tg", 0)
    assert f"request_id={request_id}" in web  # gunicorn's access line for the POST
    everything = web + pipeline.processes["worker"].log()
    assert pipeline.api_token not in everything and SANDBOX_KEY not in everything


def test_beat_scheduled_work_has_no_request_id(pipeline: Pipeline) -> None:
    """The sweeps (the beat's task) poll the orders placed above: their lines name no request."""
    order_id = pipeline.order("wa")
    pipeline.wait_event(order_id, "number.assigned")
    sweep_lines = wait_until(
        lambda: [ln for ln in _lines(pipeline, "worker") if ln.get("task_name") == "otpflow.sweep"],
        check=pipeline.check_alive, message=lambda: f"no line from a sweep\n{pipeline.logs()}")
    assert [ln for ln in sweep_lines if "request_id" in ln] == []
