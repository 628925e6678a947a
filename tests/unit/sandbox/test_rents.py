"""Rent API (docs/handler-api.md, Rents): envelopes, pages, finish/cancel rules, prolongation."""
from __future__ import annotations

from decimal import Decimal

import pytest

from .conftest import Api, Control


def rent(api: Api, **kw) -> dict:
    body = api.json("getRentNumber", service=kw.pop("service", "tg"), **kw)
    assert body["status"] == "success", body
    return body["phone"]


def test_get_rent_number_shape_and_charge(api: Api) -> None:
    phone = rent(api, rent_time=4)
    assert set(phone) == {"id", "endDate", "number"}
    assert isinstance(phone["id"], int) and "T" in phone["endDate"] and phone["number"].startswith("79")
    assert api.balance() == Decimal("99.00")             # 4 h of tg in RU costs 1.00


def test_time_alias_and_pro_rata_price(api: Api) -> None:
    rent(api, time=12)
    assert api.balance() == Decimal("97.00")


@pytest.mark.parametrize("params,message", [
    ({"service": "nope"}, "BAD_SERVICE"),
    ({"service": "tg", "rent_time": "1"}, "INVALID_TIME"),
    ({"service": "tg", "rent_time": "abc"}, "INVALID_TIME"),
    ({"service": "tg", "country": "6"}, "NO_NUMBERS"),
])
def test_get_rent_number_errors(api: Api, params, message) -> None:
    assert api.json("getRentNumber", **params) == {"status": "error", "message": message}


def test_rent_no_balance(api: Api, control: Control) -> None:
    control.settings(balance="0.5")
    assert api.json("getRentNumber", service="tg") == {"status": "error", "message": "NO_BALANCE"}


def test_bad_key_on_rent_is_plain(app) -> None:
    assert Api(app.test_client(), key="x")("getRentNumber", service="tg") == "BAD_KEY"


def test_rent_status_pages_newest_first(api: Api, control: Control) -> None:
    rid = str(rent(api)["id"])
    assert api.json("getRentStatus", id=rid) == {"status": "error", "message": "STATUS_WAIT_CODE"}
    for i in range(12):
        control.post("sms", {"rent_id": rid, "text": f"msg {i}", "phone_from": "SPORTMASTER"})
    page0 = api.json("getRentStatus", id=rid)
    assert page0["status"] == "success" and page0["quantity"] == "12"
    assert [v["text"] for v in page0["values"].values()] == [f"msg {i}" for i in range(11, 1, -1)]
    assert page0["values"]["0"]["phoneFrom"] == "SPORTMASTER" and page0["values"]["0"]["service"] == "tg"
    page1 = api.json("getRentStatus", id=rid, page=1)
    assert [v["text"] for v in page1["values"].values()] == ["msg 1", "msg 0"]
    assert list(api.json("getRentStatus", id=rid, page=0, size=3)["values"]) == ["0", "1", "2"]


def test_rent_status_id_errors(api: Api) -> None:
    assert api.json("getRentStatus") == {"status": "error", "message": "NO_ID_RENT"}
    assert api.json("getRentStatus", id="123") == {"status": "error", "message": "INVALID_PHONE"}


def test_finish_rent(api: Api) -> None:
    rid = rent(api)["id"]
    assert api.json("setRentStatus", id=rid, status=1) == {"status": "success"}
    assert api.json("getRentStatus", id=rid)["message"] == "STATUS_FINISH"
    assert api.json("setRentStatus", id=rid, status=1)["message"] == "ALREADY_FINISH"
    assert api.json("setRentStatus", id=rid, status=2)["message"] == "ALREADY_FINISH"
    assert api.balance() == Decimal("99.00")


def test_cancel_rent_refunds_within_20_minutes(api: Api, control: Control) -> None:
    rid = rent(api)["id"]
    control.advance(1100)
    assert api.json("setRentStatus", id=rid, status=2) == {"status": "success"}
    assert api.balance() == Decimal("100.00")
    assert api.json("getRentStatus", id=rid)["message"] == "STATUS_CANCEL"
    assert api.json("setRentStatus", id=rid, status=2)["message"] == "ALREADY_CANCEL"


def test_cannot_cancel_rent_after_20_minutes_or_after_sms(api: Api, control: Control) -> None:
    a = rent(api)["id"]
    b = rent(api)["id"]
    control.post("sms", {"rent_id": str(b), "text": "hi"})
    assert api.json("setRentStatus", id=b, status=2)["message"] == "CANT_CANCEL"
    control.advance(1201)
    assert api.json("setRentStatus", id=a, status=2)["message"] == "CANT_CANCEL"


@pytest.mark.parametrize("status", ["0", "3", "8", None])
def test_set_rent_status_incorect_status(api: Api, status) -> None:
    rid = rent(api)["id"]
    assert api.json("setRentStatus", id=rid, status=status) == {"status": "error", "message": "INCORECT_STATUS"}


def test_rent_ends_at_end_date(api: Api, control: Control) -> None:
    rid = rent(api, rent_time=4)["id"]
    control.advance(4 * 3600 + 1)
    assert api.json("getRentStatus", id=rid)["message"] == "STATUS_FINISH"


def test_continue_active_rent_keeps_id_and_extends(api: Api) -> None:
    first = rent(api, rent_time=4)
    again = api.json("continueRentNumber", id=first["id"], rent_time=4)
    assert again["phone"]["id"] == first["id"] and again["phone"]["number"] == first["number"]
    assert again["phone"]["endDate"] > first["endDate"]
    assert api.balance() == Decimal("98.00")
    info = api.json("continueRentInfo", id=first["id"], hours=4, needHistory="true")
    assert info["price"] == 1.0 and info["hours"] == 4 and info["currency"] == 840
    assert [h["hours"] for h in info["history"].values()] == [4, 4]
    assert "history" not in api.json("continueRentInfo", id=first["id"], hours=4)


def test_continue_finished_rent_gives_a_new_id(api: Api, control: Control) -> None:
    first = rent(api)
    api.json("setRentStatus", id=first["id"], status=1)
    again = api.json("continueRentNumber", id=first["id"], rent_time=4)
    assert again["status"] == "success"
    assert again["phone"]["id"] != first["id"] and again["phone"]["number"] == first["number"]
    assert api.json("continueRentNumber", id=first["id"])["message"] == "RENT_DIE"


def test_continue_errors(api: Api) -> None:
    rid = rent(api)["id"]
    assert api.json("continueRentNumber", id=rid, rent_time=1)["message"] == "INVALID_TIME"
    body = api.json("continueRentNumber", id=rid, rent_time=1344)
    assert body == {"status": "error", "message": "MAX_HOURS_EXCEED", "info": {"max": 1340}}
    api.json("setRentStatus", id=rid, status=2)
    assert api.json("continueRentNumber", id=rid)["message"] == "RENT_DIE"


def test_continue_price(api: Api) -> None:
    rid = rent(api)["id"]
    assert api.json("getContinueRentPriceNumber", id=rid, rent_time=8) == {
        "status": "success", "price": 2.0, "currency": 840}


def test_rent_list(api: Api) -> None:
    assert api.json("getRentList") == {"status": "error", "message": "NO_NUMBERS"}
    a, b = rent(api), rent(api)
    values = api.json("getRentList")["values"]
    assert values == {"0": {"id": str(b["id"]), "phone": b["number"]},
                      "1": {"id": str(a["id"]), "phone": a["number"]}}


def test_rent_services_and_countries(api: Api) -> None:
    body = api.json("getRentServicesAndCountries", rent_time=4, country=0)
    assert body["currency"] == 840
    assert 0 in body["countries"].values()
    assert "any" in body["operators"].values()
    assert body["services"]["tg"] == {"cost": 1.0, "quant": 20}
    assert "full" in body["services"]
    assert api.json("getRentServicesAndCountries", country=6) == {"status": "error", "message": "OUT_OF_STOCK"}


def test_revoke_rent(api: Api, control: Control) -> None:
    rid = rent(api)["id"]
    control.post("rent/revoke", {"rent_id": str(rid)})
    assert api.json("getRentStatus", id=rid)["message"] == "STATUS_REVOKE"
    assert api.balance() == Decimal("100.00")


def test_partner_product(api: Api, control: Control) -> None:
    body = api.json("buyPartnerProduct", id=1)
    assert body["status"] == "success" and len(body["key"]) == 25 and body["manual"]
    assert api.json("buyPartnerProduct", productId=2)["status"] == "success"
    assert api.balance() == Decimal("94.00")
    assert api.json("buyPartnerProduct", id="x") == {"status": "error", "message": "BAD_DATA"}
    assert api.json("buyPartnerProduct", id=99) == {"status": "error", "message": "BAD_DATA"}
    control.settings(partner_verified=False)
    assert api("buyPartnerProduct", id=1) == "BAD_ACTION"
