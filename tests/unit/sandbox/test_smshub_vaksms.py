"""The SMSHub and VakSMS dialects (docs/dialects.md, SMSHub and VakSMS)."""
from __future__ import annotations

import json

import pytest

from .conftest import Api, Control


@pytest.fixture
def hub(make_app):
    app = make_app(dialect="smshub")
    return Api(app.test_client()), Control(app.test_client())


@pytest.fixture
def vak(make_app):
    app = make_app(dialect="vaksms")
    return Api(app.test_client()), Control(app.test_client())


# ------------------------------------------------------------------ SMSHub
def test_hub_errors_are_plain_and_wrong_service(hub) -> None:
    api, _ = hub
    assert Api(api.client, key="wrong")("getBalance") == "BAD_KEY"
    r = api.raw("getNumber", service="nosuch")
    assert (r.status_code, r.get_data(as_text=True)) == (200, "WRONG_SERVICE")


def test_hub_lacks_bulk_read_top_countries_and_number_v2(hub) -> None:
    api, _ = hub
    for action in ("getActiveActivations", "getListOfTopCountriesByService", "getNumberV2"):
        assert api(action, service="tg") == "BAD_ACTION", action


def test_hub_activation_lifecycle_with_getnumber(hub) -> None:
    api, control = hub
    act_id, _ = api.buy()
    assert api("getStatus", id=act_id) == "STATUS_WAIT_CODE"
    control.sms(act_id, "5151")
    assert api("getStatus", id=act_id) == "STATUS_OK:5151"
    assert api("setStatus", id=act_id, status=6) == "ACCESS_ACTIVATION"
    b, _ = api.buy()
    control.advance(121)
    assert api("setStatus", id=b, status=8) == "ACCESS_CANCEL"
    assert api("setStatus", id=b, status=-1) == "BAD_STATUS"      # only 8 cancels here


def test_hub_max_price_is_read_with_currency_only(hub) -> None:
    api, _ = hub
    assert api("getNumber", service="tg", maxPrice="0.01", currency=840) == "WRONG_MAX_PRICE:0.25"
    assert api("getNumber", service="tg", maxPrice="0.01").startswith("ACCESS_NUMBER:"), "no currency: ignored"


def test_hub_currency_change_unavailable(hub) -> None:
    api, _ = hub
    assert api("getNumber", service="tg", currency=643) == "CURRENCY_CHANGE_UNAVAILABLE"
    assert api("getNumber", service="tg", currency=840).startswith("ACCESS_NUMBER:")


# ------------------------------------------------------------------ VakSMS
def test_vak_wrong_or_missing_key_is_bad_action(vak) -> None:
    api, _ = vak
    r = Api(api.client, key="wrong").raw("getBalance")
    assert (r.status_code, r.get_data(as_text=True)) == (200, "BAD_ACTION")
    assert Api(api.client, key=None)("getBalance") == "BAD_ACTION"
    assert api("getBalance") == "ACCESS_BALANCE:100.00"


def test_vak_unknown_id_on_getstatus_is_bad_action(vak) -> None:
    api, _ = vak
    assert api("getStatus", id="999999999999") == "BAD_ACTION"
    assert api("setStatus", id="999999999999", status=8) == "NO_ACTIVATION"


def test_vak_countries_are_a_keyless_list(vak) -> None:
    api, _ = vak
    body = json.loads(Api(api.client, key=None)("getCountries"))
    assert isinstance(body, list) and {c["id"] for c in body} >= {0, 1, 187}
    assert Api(api.client, key=None)("getServicesList") == "BAD_ACTION"     # only getCountries is keyless


def test_vak_lacks_top_countries_and_number_v2_and_ignores_max_price(vak) -> None:
    api, control = vak
    assert api("getListOfTopCountriesByService", service="tg") == "BAD_ACTION"
    assert api("getNumberV2", service="tg", orderId="o-1") == "BAD_ACTION"
    act_id, _ = api.buy(maxPrice="0.01")
    assert control.state()["activations"][0]["cost"] == "0.25", "maxPrice is not read: the full price is charged"
    rows = api.json("getActiveActivations")["activeActivations"]
    assert [r["activationId"] for r in rows] == [act_id]


def test_dialects_switch_at_run_time(api: Api, control: Control) -> None:
    control.settings(dialect="vaksms")
    assert Api(api.client, key="bad")("getBalance") == "BAD_ACTION"
    control.settings(dialect="smshub")
    assert Api(api.client, key="bad")("getBalance") == "BAD_KEY"
    assert api("getActiveActivations") == "BAD_ACTION"
    assert control.settings(dialect="sms-hub")["dialect"] == "smshub"
