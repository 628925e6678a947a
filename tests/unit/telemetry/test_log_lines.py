"""Log lines carry the ids of the work in hand: the formatters, a state transition's line, a provider call's line."""
from __future__ import annotations

import json
import logging
from typing import Any, Iterator

import pytest

from config import log_context
from config.log_context import LogId
from config.logging_setup import JsonFormatter, TextFormatter, register_secrets
from config.settings import Settings
from lifecycle.activation import CommandConflict
from lifecycle.activation.record import OrderRequest
from lifecycle.cas import Change, states
from tests.support.logs import Captured, json_lines
from tests.unit.lifecycle.conftest import make_orders
from tests.unit.provider.conftest import API_KEY, BASE_URL, make_client


@pytest.fixture
def json_log() -> Iterator[Captured]:
    with json_lines() as captured:
        yield captured


def _record(msg: str = "hello", **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("otpflow.test", logging.INFO, __file__, 1, msg, None, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


# ------------------------------------------------------------------------------------------------- formatters
def test_json_line_carries_every_bound_id() -> None:
    ids = {LogId.REQUEST_ID: "r1", LogId.TASK_ID: "t1", LogId.TASK_NAME: "otpflow.place_order",
           LogId.ORDER_ID: "o1", LogId.ACTIVATION_ID: "a1", LogId.PROVIDER: "p1"}
    with log_context.bind(ids):
        line = json.loads(JsonFormatter().format(_record()))
    assert {k: line[k] for k in ("request_id", "task_id", "task_name", "order_id", "activation_id", "provider")} \
        == {"request_id": "r1", "task_id": "t1", "task_name": "otpflow.place_order", "order_id": "o1",
            "activation_id": "a1", "provider": "p1"}
    assert line["msg"] == "hello" and line["level"] == "INFO" and line["logger"] == "otpflow.test"


def test_binds_nest_and_unwind() -> None:
    with log_context.bind({LogId.TASK_ID: "t1"}):
        with log_context.bind({LogId.ORDER_ID: "o1", LogId.ACTIVATION_ID: None}):
            assert dict(log_context.current()) == {"task_id": "t1", "order_id": "o1"}
        assert dict(log_context.current()) == {"task_id": "t1"}
    assert dict(log_context.current()) == {}
    assert "task_id" not in json.loads(JsonFormatter().format(_record()))


def test_a_record_s_own_id_wins_over_the_bound_one() -> None:
    with log_context.bind({LogId.ORDER_ID: "bound"}):
        line = json.loads(JsonFormatter().format(_record(order_id="own", from_state="pending", status="ok")))
    assert line["order_id"] == "own" and line["from_state"] == "pending" and line["status"] == "ok"


def test_text_line_appends_the_ids_compactly() -> None:
    with log_context.bind({LogId.TASK_ID: "t1", LogId.ORDER_ID: "o1"}):
        text = TextFormatter().format(_record())
    assert text.endswith("otpflow.test: hello [task_id=t1 order_id=o1]")
    assert TextFormatter().format(_record()).endswith("otpflow.test: hello")


def test_bound_ids_are_redacted_too() -> None:
    secret = "reg1stered-Secret-value"
    register_secrets(secret)
    with log_context.bind({LogId.REQUEST_ID: secret}):
        assert secret not in JsonFormatter().format(_record())


# ------------------------------------------------------------------------------------------- one transition
def test_a_transition_is_one_line_with_its_order_and_states(json_log: Captured, fake_redis: Any) -> None:
    orders = make_orders(fake_redis, Settings())
    orders.submit(OrderRequest("tg", order_id="ord-1"))
    with log_context.bind({LogId.TASK_ID: "task-1", LogId.TASK_NAME: "otpflow.command"}):
        orders.cancel("ord-1")
    (line,) = json_log.by_logger("otpflow.lifecycle")
    assert (line["order_id"], line["to_state"], line["status"], line["state"]) == ("ord-1", "cmd:cancel", "ok",
                                                                                   "pending")
    assert "pending" in line["from_state"].split("|")
    assert line["task_id"] == "task-1" and line["task_name"] == "otpflow.command"
    assert line["msg"].startswith("order ord-1: ") and line["msg"].endswith("-> cmd:cancel ok")


def test_a_stale_transition_says_so(json_log: Captured, fake_redis: Any) -> None:
    orders = make_orders(fake_redis, Settings())
    orders.submit(OrderRequest("tg", order_id="ord-2"))
    with pytest.raises(CommandConflict):
        orders.finish("ord-2")  # nothing to finish yet: the compare-and-set finds the order pending
    (line,) = json_log.by_logger("otpflow.lifecycle")
    assert (line["order_id"], line["to_state"], line["status"], line["state"]) == ("ord-2", "cmd:finish", "stale",
                                                                                   "pending")


def test_a_transition_names_the_provider_and_activation_of_its_ref(json_log: Captured, fake_redis: Any) -> None:
    orders = make_orders(fake_redis, Settings())
    orders.submit(OrderRequest("tg", order_id="ord-4"))
    orders.store.records.apply("ord-4", Change(expect=states(["pending"]), to="buying", ref="p1:777"))
    (line,) = json_log.by_logger("otpflow.lifecycle")
    assert (line["provider"], line["activation_id"], line["from_state"], line["to_state"]) == (
        "p1", "777", "pending", "buying")


def test_a_bare_touch_is_below_info(json_log: Captured, fake_redis: Any) -> None:
    orders = make_orders(fake_redis, Settings())
    orders.submit(OrderRequest("tg", order_id="ord-5"))
    assert orders.store.records.apply("ord-5", Change(deadline=1.0)).ok
    assert json_log.by_logger("otpflow.lifecycle") == []


# ------------------------------------------------------------------------------------------ one provider call
def test_a_provider_call_is_one_line_with_action_result_time_and_no_secret(json_log: Captured) -> None:
    client, _ = make_client([(200, "STATUS_WAIT_CODE")])
    with log_context.bind({LogId.TASK_ID: "task-2", LogId.ORDER_ID: "ord-3"}):
        client.get_status("12345")
    (line,) = json_log.by_logger("provider.transport")
    assert line["action"] == "getStatus" and line["result"] == "ok" and isinstance(line["elapsed_ms"], float)
    assert line["host"] == "provider.test" and line["activation_id"] == "12345"
    assert line["order_id"] == "ord-3" and line["task_id"] == "task-2"
    assert API_KEY not in json_log.text and "api_key" not in json_log.text and BASE_URL not in json_log.text


def test_a_failed_provider_call_names_its_error_class(json_log: Captured) -> None:
    client, _ = make_client([(200, "BAD_KEY")])
    with pytest.raises(Exception):
        client.get_balance()
    (line,) = json_log.by_logger("provider.transport")
    assert line["action"] == "getBalance" and line["result"] != "ok" and API_KEY not in json_log.text


def test_provider_call_lines_are_silent_below_info(json_log: Captured) -> None:
    logging.getLogger("provider.transport").setLevel(logging.WARNING)
    try:
        make_client([(200, "ACCESS_BALANCE:1")])[0].get_balance()
    finally:
        logging.getLogger("provider.transport").setLevel(logging.NOTSET)
    assert json_log.by_logger("provider.transport") == []
