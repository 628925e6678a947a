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

