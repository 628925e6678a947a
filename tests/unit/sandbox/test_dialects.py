"""HeroSMS and Grizzly dialects."""
from __future__ import annotations

import json

import pytest

from .conftest import KEY, Api, Control


@pytest.fixture
def hero(make_app):
    app = make_app(dialect="herosms")
    return Api(app.test_client()), Control(app.test_client())


def test_hero_errors_are_title_json_with_4xx(hero) -> None:
    api, _ = hero
    r = Api(api.client, key="wrong").raw("getBalance")
    assert r.status_code == 401
    body = r.get_json()
    assert body["title"] == "BAD_KEY" and set(body) == {"title", "details", "info"}
    r = Api(api.client, key=None).raw("getBalance")
    assert (r.status_code, r.get_json()["title"]) == (401, "NO_KEY")
    r = api.raw("nope")
    assert (r.status_code, r.get_json()["title"]) == (404, "BAD_ACTION")


def test_hero_no_numbers_is_still_plain_200(hero) -> None:
    api, control = hero
    control.settings(stock=0)
    r = api.raw("getNumber", service="tg")
    assert (r.status_code, r.get_data(as_text=True)) == (200, "NO_NUMBERS")


def test_hero_header_auth(hero) -> None:
    api, _ = hero
    keyless = Api(api.client, key=None)
    r = keyless.raw("getBalance", headers={"Authorization": f"ApiKey {KEY}"})
    assert r.get_data(as_text=True) == "ACCESS_BALANCE:100.00"


def test_hero_keyless_catalogue(hero) -> None:
    api, _ = hero
    keyless = Api(api.client, key=None)
    assert "0" in json.loads(keyless("getCountries"))
    assert "multiService" not in json.loads(keyless("getCountries"))["0"]
    assert keyless.raw("getBalance").status_code == 401


def test_hero_set_status_204_no_status_1_early_cancel_info(hero) -> None:
    api, control = hero
    act_id, _ = api.buy()
    r = api.raw("setStatus", id=act_id, status=1)
    assert (r.status_code, r.get_json()["title"]) == (422, "BAD_STATUS")
    r = api.raw("setStatus", id=act_id, status=8)
    assert r.status_code == 409
    assert r.get_json()["title"] == "EARLY_CANCEL_DENIED"
    assert r.get_json()["info"] == {"minActivationTime": 120}
    control.advance(121)
    r = api.raw("setStatus", id=act_id, status=8)
    assert (r.status_code, r.get_data()) == (204, b"")
    r = api.raw("setStatus", id=act_id, status=8)
    assert (r.status_code, r.get_json()["title"]) == (409, "ACTIVATION_NOT_ACTIVE")


def test_hero_otp_received_and_free_cancellation_expired(make_app) -> None:
    app = make_app(dialect="herosms", activation_lifetime=3600)
    api, control = Api(app.test_client()), Control(app.test_client())
    a, _ = api.buy()
    b, _ = api.buy()
    control.sms(a)
    control.advance(1300)
    assert api.raw("setStatus", id=a, status=8).get_json()["title"] == "OTP_RECEIVED"
    assert api.raw("setStatus", id=b, status=8).get_json()["title"] == "FREE_CANCELLATION_EXPIRED"


def test_hero_v2_extra_fields_and_text_html_json(hero) -> None:
    api, _ = hero
    r = api.raw("getNumberV2", service="tg")
    assert r.headers["Content-Type"].startswith("text/html")
    body = json.loads(r.get_data(as_text=True))
    assert body["countryPhoneCode"] == 7 and "activationEndTime" in body


def test_hero_active_activations_data_shape(hero) -> None:
    api, _ = hero
    assert api.json("getActiveActivations")["data"] == []
    act_id, _ = api.buy()
    body = api.json("getActiveActivations")
    assert [e["activationId"] for e in body["data"]] == [act_id]
    assert body["activeActivations"]["rows"] == []


def test_hero_has_no_list_of_top_countries(hero) -> None:
    api, _ = hero
    r = api.raw("getListOfTopCountriesByService", service="tg")
    assert (r.status_code, r.get_json()["title"]) == (404, "BAD_ACTION")


def test_grizzly_minus_one_cancels(make_app) -> None:
    app = make_app(dialect="grizzly")
    api, control = Api(app.test_client()), Control(app.test_client())
    act_id, _ = api.buy()
    assert api("setStatus", id=act_id, status=-1) == "EARLY_CANCEL_DENIED"
    control.advance(121)
    assert api("setStatus", id=act_id, status=-1) == "ACCESS_CANCEL"
    v2 = api.json("getNumberV2", service="tg", country="any")
    assert "activationCancel" in v2 and "activationEnd" in v2


def test_minus_one_is_bad_status_on_sms_activate(api: Api, control: Control) -> None:
    act_id, _ = api.buy()
    control.advance(121)
    assert api("setStatus", id=act_id, status=-1) == "BAD_STATUS"


def test_dialect_switch_at_run_time(api: Api, control: Control) -> None:
    control.settings(dialect="herosms")
    assert Api(api.client, key="bad").raw("getBalance").status_code == 401
    control.settings(dialect="sms-activate")
    assert Api(api.client, key="bad")("getBalance") == "BAD_KEY"
    control.post("settings", {"dialect": "klingon"}, status=400)
