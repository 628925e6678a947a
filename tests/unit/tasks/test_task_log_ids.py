"""Every line a task writes carries its task id, its name and, for the tasks of one order, the order id."""
from __future__ import annotations

import time
from typing import Any, Iterator

import pytest

from config import log_context
from config.settings import Settings
from flows.runtime import Runtime
from lifecycle.activation.record import OrderRequest
from tasks import runtime as runtime_mod
from tests.support.logs import json_lines
from tests.unit.flows.fakes import FakeProvider


@pytest.fixture
def rt(fake_redis: Any) -> Iterator[Runtime]:
    runtime = Runtime(settings=Settings(), redis=fake_redis, provider=FakeProvider(time.time),
                      publish=lambda n, k: None, consumer_name="t")
    runtime_mod.set_runtime(runtime)
    yield runtime
    runtime_mod.set_runtime(None)


def test_a_task_s_lines_carry_its_ids(rt: Runtime) -> None:
    from tasks.orders import place_order

    rt.orders.submit(OrderRequest("tg", order_id="o-log"))
    with json_lines() as log:
        place_order.apply(kwargs={"order_id": "o-log"}, task_id="tid-1")
    lines = log.by_logger("otpflow.lifecycle")
    assert lines, "placing an order moves it at least once"
    assert {(ln["task_id"], ln["task_name"], ln["order_id"]) for ln in lines} == {
        ("tid-1", "otpflow.place_order", "o-log")}
    assert dict(log_context.current()) == {}  # unbound once the task returned


@pytest.mark.parametrize("header, expected", [("req-7.A_b", "req-7.A_b"), ("not sane!", None), (None, None)])
def test_a_task_s_lines_carry_the_request_id_its_message_names(rt: Runtime, header: str | None,
                                                                expected: str | None) -> None:
    from tasks.orders import place_order

    rt.orders.submit(OrderRequest("tg", order_id="o-rid"))
    headers = {log_context.TASK_HEADER: header} if header is not None else None
    with json_lines() as log:
        place_order.apply(kwargs={"order_id": "o-rid"}, task_id="tid-2", headers=headers)
    lines = log.by_logger("otpflow.lifecycle")
    assert lines and {ln.get("request_id") for ln in lines} == {expected}
    assert dict(log_context.current()) == {}


def test_a_worker_request_names_the_id_as_an_attribute() -> None:
    """A worker's task request has its message's custom headers as attributes; apply() only in ``headers``."""
    from celery.app.task import Context

    from tasks.base import published_request_id

    assert published_request_id(Context({"id": "t", log_context.TASK_HEADER: "r-9"})) == "r-9"
    assert published_request_id(Context({"id": "t", "headers": {log_context.TASK_HEADER: "r-8"}})) == "r-8"
    assert published_request_id(Context({"id": "t", log_context.TASK_HEADER: "x" * 65})) is None
    assert published_request_id(Context({"id": "t"})) is None


def test_the_order_task_logs_the_accepted_order(rt: Runtime) -> None:
    from tasks.orders import order

    with json_lines() as log:
        order.apply(kwargs={"service": "tg", "country": 0, "order_id": "o-task"}, task_id="tid-3")
    (line,) = [ln for ln in log.by_logger("otpflow.lifecycle") if ln.get("status") == "created"]
    assert (line["order_id"], line["task_id"], line["service"], line["country"]) == ("o-task", "tid-3", "tg", 0)
