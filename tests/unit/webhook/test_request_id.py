"""Every request has an id: the caller's X-Request-Id when it is a sane token, else a new one; it is echoed back,
carried by every line logged while the request runs, and put in the headers of the tasks the request publishes.
An accepted order or rent logs one line (order id, service, country, provider), never the API token or a key."""
from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from flask import jsonify

from config import log_context
from tests.support.logs import json_lines

from .conftest import API_TOKEN, Harness, MakeHarness


@pytest.fixture
def app_with_probe(harness: Harness) -> Harness:
    """The app with one extra route that logs a line and answers the ids bound while it runs."""

    def probe() -> object:
        logging.getLogger("otpflow.webhook").info("probe")
        return jsonify(dict(log_context.current()))

    harness.app.add_url_rule("/_probe", "probe", probe)
    return harness


def test_a_sane_incoming_id_is_kept_and_echoed(app_with_probe: Harness) -> None:
    with json_lines() as log:
        response = app_with_probe.client.get("/_probe", headers={"X-Request-Id": "req-42.A_b"})
    assert response.headers["X-Request-Id"] == "req-42.A_b"
    assert response.get_json() == {"request_id": "req-42.A_b"}
    (line,) = [ln for ln in log.by_logger("otpflow.webhook") if ln["msg"] == "probe"]
    assert line["request_id"] == "req-42.A_b"


@pytest.mark.parametrize("incoming", ["", "x" * 65, "has space", "semi;colon", "ünï", "a/b", "a\tb"])
def test_an_insane_incoming_id_is_replaced(app_with_probe: Harness, incoming: str) -> None:
    response = app_with_probe.client.get("/_probe", headers={"X-Request-Id": incoming})
    echoed = response.headers["X-Request-Id"]
    assert echoed != incoming and re.fullmatch(r"[0-9a-f]{32}", echoed)
    assert response.get_json() == {"request_id": echoed}


def test_without_a_header_each_request_gets_its_own_id(harness: Harness) -> None:
    first = harness.client.get("/healthz").headers["X-Request-Id"]
    second = harness.client.get("/healthz").headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", first) and first != second


def test_refused_and_missing_answers_carry_the_id_too(harness: Harness) -> None:
    refused = harness.client.get("/api/orders", headers={"X-Request-Id": "r-401"})
    missing = harness.client.get("/nowhere", headers={"X-Request-Id": "r-404"})
    assert (refused.status_code, refused.headers["X-Request-Id"]) == (401, "r-401")
    assert (missing.status_code, missing.headers["X-Request-Id"]) == (404, "r-404")


def test_the_id_is_unbound_after_the_request(harness: Harness) -> None:
    harness.client.get("/healthz", headers={"X-Request-Id": "r-gone"})
    assert "request_id" not in log_context.current()


PROVIDER_KEY = "pk_" + "Q1w2E3r4T5y6U7i8O9p0"


@pytest.fixture
def api(make_harness: MakeHarness) -> Harness:
    return make_harness(provider_api_key=PROVIDER_KEY)


def _post(h: Harness, path: str, body: dict[str, object], request_id: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    if request_id is not None:
        headers["X-Request-Id"] = request_id
    return h.client.post(path, json=body, headers=headers)


def test_an_accepted_order_logs_one_line_and_its_task_carries_the_request_id(api: Harness) -> None:
    with json_lines() as log:
        response = _post(api, "/api/orders", {"service": "tg", "country": 6, "order_id": "o-rid"}, "req-order-1")
    assert response.status_code == 202 and response.headers["X-Request-Id"] == "req-order-1"
    assert api.celery.calls == [("otpflow.place_order", {"kwargs": {"order_id": "o-rid"},
                                                         "headers": {log_context.TASK_HEADER: "req-order-1"}})]
    (line,) = [ln for ln in log.by_logger("otpflow.lifecycle") if ln.get("order_id") == "o-rid"]
    assert line["msg"] == "order o-rid created: pending (service tg, country 6)"
    assert {k: line.get(k) for k in ("request_id", "status", "state", "service", "country", "provider")} == {
        "request_id": "req-order-1", "status": "created", "state": "pending", "service": "tg", "country": 6,
        "provider": "sms-activate"}
    assert API_TOKEN not in log.text and PROVIDER_KEY not in log.text


def test_a_repeated_order_logs_a_dup_line_and_publishes_nothing(api: Harness) -> None:
    _post(api, "/api/orders", {"service": "tg", "order_id": "o-dup"})
    with json_lines() as log:
        again = _post(api, "/api/orders", {"service": "wa", "order_id": "o-dup"}, "req-again")
    assert again.status_code == 200 and len(api.celery.calls) == 1
    (line,) = [ln for ln in log.by_logger("otpflow.lifecycle") if ln.get("order_id") == "o-dup"]
    assert line["msg"] == "order o-dup submitted again: already pending (service tg, country -)"
    assert (line["status"], line["request_id"], "country" in line) == ("dup", "req-again", False)


def test_a_replaced_incoming_id_is_the_one_the_task_carries(api: Harness) -> None:
    response = _post(api, "/api/orders", {"service": "tg"}, "not a sane id")
    echoed = response.headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", echoed)
    assert api.celery.calls[-1][1]["headers"] == {log_context.TASK_HEADER: echoed}


def test_an_accepted_rent_logs_one_line_and_its_task_carries_the_request_id(api: Harness) -> None:
    with json_lines() as log:
        response = _post(api, "/api/rents", {"service": "tg", "country": 0, "order_id": "r-rid"}, "req-rent-1")
    assert response.status_code == 202 and response.headers["X-Request-Id"] == "req-rent-1"
    assert api.celery.calls == [("otpflow.place_rent", {"kwargs": {"order_id": "r-rid"},
                                                        "headers": {log_context.TASK_HEADER: "req-rent-1"}})]
    (line,) = [ln for ln in log.by_logger("otpflow.lifecycle") if ln.get("order_id") == "r-rid"]
    assert line["msg"] == "rent r-rid created: pending (service tg, country 0)"
    assert (line["request_id"], line["status"], line["country"], line["provider"]) == (
        "req-rent-1", "created", 0, "sms-activate")
    assert API_TOKEN not in log.text and PROVIDER_KEY not in log.text


def test_commands_carry_the_request_id_to_their_task(api: Harness) -> None:
    _post(api, "/api/orders", {"service": "tg", "order_id": "o-cmd"})
    assert _post(api, "/api/orders/o-cmd/cancel", {}, "req-cancel").status_code == 202
    assert api.celery.calls[-1] == ("otpflow.command", {"kwargs": {"order_id": "o-cmd", "command": "cancel"},
                                                        "headers": {log_context.TASK_HEADER: "req-cancel"}})


def test_no_request_id_bound_means_no_task_header() -> None:
    assert log_context.task_headers() == {}
    with log_context.bind({log_context.LogId.REQUEST_ID: "r-1"}):
        assert log_context.task_headers() == {log_context.TASK_HEADER: "r-1"}
