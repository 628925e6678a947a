"""Transport-level behaviour: auth, action selection, parameter merging, content types, fault injection."""
from __future__ import annotations

import time

import pytest

from .conftest import KEY, Api


def test_plain_answers_are_text_html_utf8(api: Api) -> None:
    r = api.raw("getBalance")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/html; charset=UTF-8"
    assert r.get_data(as_text=True) == "ACCESS_BALANCE:100.00"


def test_missing_key_is_no_key(app) -> None:
    assert Api(app.test_client(), key=None)("getBalance") == "NO_KEY"


def test_wrong_key_is_bad_key(app) -> None:
    assert Api(app.test_client(), key="nope")("getBalance") == "BAD_KEY"


def test_missing_action_is_bad_action(api: Api) -> None:
    r = api.raw(None)
    assert (r.status_code, r.get_data(as_text=True)) == (200, "BAD_ACTION")


def test_unknown_action_is_bad_action(api: Api) -> None:
    assert api("getEverything") == "BAD_ACTION"


def test_action_names_are_case_sensitive(api: Api) -> None:
    assert api("getbalance") == "BAD_ACTION"


def test_post_form_body_is_merged_with_query(app) -> None:
    c = app.test_client()
    r = c.post("/stubs/handler_api.php?action=getBalance", data={"api_key": KEY})
    assert r.get_data(as_text=True) == "ACCESS_BALANCE:100.00"
    r = c.post("/stubs/handler_api.php", data={"api_key": KEY, "action": "getNumber", "service": "tg"})
    assert r.get_data(as_text=True).startswith("ACCESS_NUMBER:")


def test_authorization_header_is_not_a_key_in_sms_activate_dialect(app) -> None:
    a = Api(app.test_client(), key=None)
    assert a.raw("getBalance", headers={"Authorization": f"ApiKey {KEY}"}).get_data(as_text=True) == "NO_KEY"


def test_json_answer_content_type(api: Api) -> None:
    assert api.raw("getCountries").headers["Content-Type"] == "application/json"
    # SMS-Activate serves getNumbersStatus JSON as text/html [POSTMAN]
    assert api.raw("getNumbersStatus").headers["Content-Type"] == "text/html; charset=UTF-8"


def test_json_is_compact_like_php(api: Api) -> None:
    body = api("getOperators", country=0)
    assert " " not in body
    assert body.startswith('{"status":"success","countryOperators":{"0":["beeline"')


def test_fail_mode_500_for_next_n_requests(api: Api, control) -> None:
    control.settings(fail_mode="500", fail_next=2)
    for _ in range(2):
        r = api.raw("getBalance")
        assert r.status_code == 500
        assert "<html>" in r.get_data(as_text=True)
    assert api.raw("getBalance").status_code == 200
    assert control.state()["settings"]["fail_mode"] is None


def test_fail_mode_500_does_not_process_the_request(api: Api, control, engine) -> None:
    control.settings(fail_mode="500", fail_next=1)
    assert api.raw("getNumber", service="tg").status_code == 500
    assert engine.activations == {}


def test_fail_next_before_fail_mode_in_the_body(api: Api, control) -> None:
    control.post("settings", {"fail_next": 1, "fail_mode": "ERROR_SQL"})
    assert [api("getBalance") for _ in range(2)] == ["ERROR_SQL", "ACCESS_BALANCE:100.00"]


def test_fail_mode_until_cleared(api: Api, control) -> None:
    control.settings(fail_mode="ERROR_SQL")
    assert [api("getBalance") for _ in range(3)] == ["ERROR_SQL"] * 3
    control.settings(fail_mode=None)
    assert api("getBalance") == "ACCESS_BALANCE:100.00"


def test_fail_mode_timeout_processes_then_answers_late(api: Api, control, engine) -> None:
    control.settings(fail_mode="timeout", fail_next=1, timeout_sleep=0.3)
    t0 = time.monotonic()
    body = api("getNumber", service="tg")
    assert time.monotonic() - t0 >= 0.3
    assert body.startswith("ACCESS_NUMBER:")
    assert len(engine.activations) == 1       # the ambiguous failure: bought, but the client timed out


def test_fail_mode_500_after_processing(api: Api, control, engine) -> None:
    control.settings(fail_mode="500_after", fail_next=1)
    assert api.raw("getNumber", service="tg").status_code == 500
    assert len(engine.activations) == 1


def test_control_requests_are_not_failed(api: Api, control) -> None:
    control.settings(fail_mode="500")
    assert control.state()["settings"]["fail_mode"] == "500"


def test_bad_fail_mode_is_rejected(control) -> None:
    control.post("settings", {"fail_mode": "explode"}, status=400)


def test_unknown_setting_is_rejected(control) -> None:
    body = control.post("settings", {"drop_webhook": True}, status=400)
    assert "drop_webhook" in body["error"]


def test_fail_mode_429_rate_limit_with_retry_after(api: Api, control, engine) -> None:
    control.settings(fail_mode="429", fail_next=2, retry_after=7)
    for _ in range(2):
        r = api.raw("getNumber", service="tg")
        assert r.status_code == 429 and r.headers["Retry-After"] == "7"
        assert r.headers["Content-Type"].startswith("application/json")
        assert r.get_json() == {"title": "RATE_LIMIT", "details": "Too many requests", "info": {"retryAfter": 7}}
    assert engine.activations == {}, "a rate-limited request is not processed"
    assert api("getBalance") == "ACCESS_BALANCE:100.00"
    assert control.state()["settings"]["fail_mode"] is None


def test_fail_mode_429_default_and_without_header(api: Api, control) -> None:
    control.settings(fail_mode="429", fail_next=1)
    assert api.raw("getBalance").headers["Retry-After"] == "1"      # the default
    control.settings(fail_mode="429", fail_next=1, retry_after=None)
    r = api.raw("getBalance")
    assert r.status_code == 429 and "Retry-After" not in r.headers and r.get_json()["info"] == {}


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_bad_retry_after_is_rejected(control, bad) -> None:
    body = control.post("settings", {"retry_after": bad}, status=400)
    assert "retry_after" in body["error"]
