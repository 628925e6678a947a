"""Every request has an id: the caller's X-Request-Id when it is a sane token, else a new one; it is echoed back
and carried by every line logged while the request runs."""
from __future__ import annotations

import logging
import re

import pytest
from flask import jsonify

from config import log_context
from tests.support.logs import json_lines

from .conftest import Harness


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
