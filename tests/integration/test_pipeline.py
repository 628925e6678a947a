"""The activation pipeline end to end, from real parts: a real Redis, the sandbox provider over real HTTP, the web
app under gunicorn, real ``celery worker`` and ``celery beat`` processes. Tests act as the provider (webhooks are
real HTTP POSTs from the sandbox or from the test) and as a downstream consumer (reading the events stream).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Iterator

import pytest
import requests

from provider.errors import EarlyCancelDenied
from tests.support.pipeline import Pipeline
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.redis, pytest.mark.http, pytest.mark.processes]


def _start_pipeline(url: str, log_dir: Path, **env: str) -> Pipeline:
    import redis as redis_lib

    redis_lib.Redis.from_url(url).flushdb()
    pipe = Pipeline(redis_url=url, log_dir=log_dir, extra_env=env)
    try:
        pipe.start()
    except BaseException:
        pipe.stop()
        raise
    return pipe


@pytest.fixture(scope="module")
def pipeline(redis_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    pipe = _start_pipeline(f"{redis_server_url}/10", Path(tmp_path_factory.mktemp("pipeline-logs")))
    yield pipe
    pipe.stop()


@pytest.fixture(scope="module")
def manual_pipeline(redis_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """The pipeline with AUTO_FINISH off: downstream decides when to finish, retry or cancel."""
    pipe = _start_pipeline(f"{redis_server_url}/11", Path(tmp_path_factory.mktemp("manual-logs")),
                           AUTO_FINISH="false", FINISH_TIMEOUT="600")
    yield pipe
    pipe.stop()


@pytest.fixture(autouse=True)
def sandbox_defaults(request: pytest.FixtureRequest) -> None:
    for name in ("pipeline", "manual_pipeline"):
        if name in request.fixturenames:
            pipe: Pipeline = request.getfixturevalue(name)
            pipe.control("settings", {"auto_sms_after": None, "drop_webhooks": False, "duplicate_webhooks": 1,
                                      "fail_mode": None, "webhook_url": pipe.webhook_url})


def deliver_sms(pipeline: Pipeline, activation_id: str, code: str) -> None:
    pipeline.control("sms", {"activation_id": activation_id, "code": code, "text": f"Your code is {code}"})


def sandbox_activation(pipeline: Pipeline, activation_id: str) -> dict:
    state = pipeline.sandbox_state()
    activations = state["activations"]
    if isinstance(activations, dict):
        return activations[activation_id]
    return next(a for a in activations if str(a.get("id", a.get("activation_id"))) == activation_id)


def test_order_to_finish_via_webhook(pipeline: Pipeline) -> None:
    order_id = pipeline.order("tg")
    assigned = pipeline.wait_event(order_id, "number.assigned")
    assert assigned["activation_id"] and assigned["phone"].isdigit()
    deliver_sms(pipeline, assigned["activation_id"], "482913")
    received = pipeline.wait_event(order_id, "code.received")
    assert received["code"] == "482913"
    assert received["via"] == "webhook"
    finished = pipeline.wait_event(order_id, "activation.finished")
    assert finished["activation_id"] == assigned["activation_id"]
    for _kind, data in pipeline.events(order_id):
        assert {"event_id", "order_id", "at"} <= set(data)
    api_view = pipeline.api("GET", f"/api/orders/{order_id}").json()
    assert json.dumps(api_view).count("finished") >= 1


def test_dropped_webhook_is_reconciled_by_polling(pipeline: Pipeline) -> None:
    pipeline.control("settings", {"drop_webhooks": True})
    order_id = pipeline.order("wa")
    assigned = pipeline.wait_event(order_id, "number.assigned")
    deliver_sms(pipeline, assigned["activation_id"], "771100")
    received = pipeline.wait_event(order_id, "code.received", timeout=30)
    assert received["code"] == "771100"
    assert received["via"] == "poll"
    pipeline.wait_event(order_id, "activation.finished")


def denied_cancels(pipeline: Pipeline) -> int:
    """setStatus calls answered EARLY_CANCEL_DENIED (counted under the error's class name or its label)."""
    names = {EarlyCancelDenied.__name__, getattr(EarlyCancelDenied, "label", EarlyCancelDenied.__name__)}
    return sum(n for result, n in pipeline.provider_calls("setStatus").items() if result in names)


def test_no_code_is_cancelled_only_after_the_early_cancel_window(pipeline: Pipeline) -> None:
    denied_before = denied_cancels(pipeline)
    order_id = pipeline.order("vk")
    assigned = pipeline.wait_event(order_id, "number.assigned")
    # ACTIVATION_TIMEOUT is 4 s here, but the provider denies cancels for 120 s of its clock: the pipeline must keep
    # the activation alive and try again, never give up on it. The sign that the timeout has passed and the sweeper
    # tried: its cancel came back EARLY_CANCEL_DENIED (counted once the sweep that made the call completed).
    wait_until(lambda: denied_cancels(pipeline) > denied_before,
               message=lambda: f"no denied cancel: {pipeline.events(order_id)}\n{pipeline.logs()}")
    assert "activation.cancelled" not in [k for k, _ in pipeline.events(order_id)]
    pipeline.control("clock/advance", {"seconds": 125})
    cancelled = pipeline.wait_event(order_id, "activation.cancelled", timeout=30)
    assert cancelled["activation_id"] == assigned["activation_id"]
    assert cancelled.get("reason")


def test_duplicate_and_repeated_deliveries_give_one_event(pipeline: Pipeline) -> None:
    pipeline.control("settings", {"duplicate_webhooks": 3})
    order_id = pipeline.order("ok")
    assigned = pipeline.wait_event(order_id, "number.assigned")
    deliver_sms(pipeline, assigned["activation_id"], "550055")
    pipeline.wait_event(order_id, "activation.finished")
    payload = {"activationId": int(assigned["activation_id"]), "service": "ok", "text": "Your code is 550055",
               "code": "550055", "country": 0, "receivedAt": "2026-11-27 10:00:00"}
    for _ in range(8):  # the provider's eight retries, arriving after the activation was finished
        assert pipeline.post_webhook(payload).status_code == 200
    # every copy the sandbox sent has been answered, and everything stored was drained: nothing left to emit
    def copies() -> list[dict]:
        return [d for d in pipeline.sandbox_state()["webhooks"] if d["ref"] == assigned["activation_id"]]

    wait_until(lambda: all(d["status"] != "pending" for d in copies()), message=lambda: str(copies()))
    pipeline.wait_inbox_drained()
    kinds = [k for k, _ in pipeline.events(order_id)]
    assert kinds.count("code.received") == 1, kinds
    assert kinds.count("activation.finished") == 1, kinds
    assert kinds.count("number.assigned") == 1, kinds


def test_same_order_id_buys_one_number(pipeline: Pipeline) -> None:
    before = pipeline.sandbox_state()
    runs_before = sum(pipeline.task_runs("otpflow.place_order").values())
    order_id = "client-key-" + str(time.time_ns())
    first = pipeline.order("tg", order_id=order_id)
    second = pipeline.order("tg", order_id=order_id)
    assert first == second == order_id
    pipeline.wait_event(order_id, "number.assigned")
    # the purchase task has completed, and two sweeps later any other work published by the two POSTs has run
    wait_until(lambda: sum(pipeline.task_runs("otpflow.place_order").values()) > runs_before,
               message=lambda: f"place_order never completed\n{pipeline.logs()}")
    pipeline.wait_sweeps(2)
    after = pipeline.sandbox_state()
    count = lambda state: len(state["activations"])  # noqa: E731
    assert count(after) - count(before) == 1
    assert [k for k, _ in pipeline.events(order_id)].count("number.assigned") == 1


def test_retry_command_gives_a_second_code_then_finish(manual_pipeline: Pipeline) -> None:
    pipe = manual_pipeline
    order_id = pipe.order("tg")
    assigned = pipe.wait_event(order_id, "number.assigned")
    deliver_sms(pipe, assigned["activation_id"], "111111")
    pipe.wait_event(order_id, "code.received")
    # AUTO_FINISH is off: once the webhook was drained and the sweeper has looked at every due deadline twice,
    # nothing may have finished the activation
    pipe.wait_inbox_drained()
    pipe.wait_sweeps(2)
    assert "activation.finished" not in [k for k, _ in pipe.events(order_id)]
    retry = pipe.api("POST", f"/api/orders/{order_id}/retry")
    assert retry.status_code == 202, retry.text
    wait_until(lambda: sandbox_activation(pipe, assigned["activation_id"])["state"] == "WAIT_RETRY", timeout=20,
               message=lambda: f"the retry never reached the provider\n{pipe.logs()}")
    deliver_sms(pipe, assigned["activation_id"], "222222")

    def codes() -> list[str]:
        return [d["code"] for k, d in pipe.events(order_id) if k == "code.received"]

    wait_until(lambda: len(codes()) >= 2, timeout=20, message=lambda: f"codes: {codes()}\n{pipe.logs()}")
    assert codes() == ["111111", "222222"]
    assert pipe.api("POST", f"/api/orders/{order_id}/finish").status_code == 202
    pipe.wait_event(order_id, "activation.finished")
    assert sandbox_activation(pipe, assigned["activation_id"])["state"] == "FINISHED"
    assert pipe.api("POST", f"/api/orders/{order_id}/cancel").status_code == 409


def test_cancel_command_before_a_code(manual_pipeline: Pipeline) -> None:
    pipe = manual_pipeline
    order_id = pipe.order("vk")
    pipe.wait_event(order_id, "number.assigned")
    assert pipe.api("POST", f"/api/orders/{order_id}/cancel").status_code == 202
    pipe.control("clock/advance", {"seconds": 125})  # past the provider's early-cancel window
    cancelled = pipe.wait_event(order_id, "activation.cancelled", timeout=30)
    assert cancelled["reason"]


def test_unknown_activation_webhook_is_accepted_and_recorded(pipeline: Pipeline) -> None:
    payload = {"activationId": "999999999999", "service": "tg", "text": "hi", "code": "1", "country": 0,
               "receivedAt": "2026-11-27 10:00:00"}
    assert pipeline.post_webhook(payload).status_code == 200


def test_rejections_have_the_documented_statuses(pipeline: Pipeline) -> None:
    good = {"activationId": 1, "service": "tg", "text": "t", "code": "1", "country": 0,
            "receivedAt": "2026-11-27 10:00:00"}
    assert pipeline.post_webhook(good, token="wrong-token-wrong-token").status_code == 404
    bad = pipeline.post_webhook(b"{not json", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and "error" in bad.json()
    huge = pipeline.post_webhook(json.dumps({**good, "text": "x" * 200_000}))
    assert huge.status_code == 413
    assert requests.get(f"{pipeline.base_url}/healthz", timeout=5).status_code == 200


def test_price_below_the_minimum_becomes_order_failed(pipeline: Pipeline) -> None:
    response = pipeline.api("POST", "/api/orders", json={"service": "tg", "country": "0", "max_price": "0.0001"})
    order_id = response.json()["order_id"]
    failed = pipeline.wait_event(order_id, "order.failed", timeout=30)
    assert failed["reason"]
