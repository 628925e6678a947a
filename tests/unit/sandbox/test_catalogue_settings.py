"""Per-sandbox prices and stock: SandboxConfig.catalogue at start-up, POST/GET /control/catalogue at run time;
getPrices reports them (count and physicalCount), purchases charge them and honour stock and maxPrice."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest

from sandbox.catalogue import OfferPatch

from .conftest import Api, Control


def _offer(control: Control, service: str, country: int) -> dict:
    offers = control.client.get("/control/catalogue").get_json()["offers"]
    [found] = [o for o in offers if (o["service"], o["country"]) == (service, country)]
    return found


def test_control_catalogue_sets_price_and_stock(api: Api, control: Control) -> None:
    got = control.post("catalogue", {"service": "tg", "country": 0, "price": "0.30", "count": 10,
                                     "physical_count": 10})
    assert got == {"offers": [{"service": "tg", "country": 0, "price": "0.30", "count": 10, "physical_count": 10,
                               "retail_price": "0.60", "forward_price": "0.45", "sold": 0}]}
    assert api.json("getPrices", service="tg", country=0) == {
        "0": {"tg": {"cost": 0.3, "count": 10, "physicalCount": 10}}}
    before = api.balance()
    act_id, _ = api.buy("tg", country=0)
    assert api.balance() == before - Decimal("0.30"), "the purchase charges the set price"
    assert control.state()["activations"][0]["cost"] == "0.30"
    assert api.json("getPrices", service="tg", country=0)["0"]["tg"]["physicalCount"] == 9
    v2 = api.json("getNumberV2", service="tg", country=0, orderId="p-1")
    assert v2["activationCost"] == 0.3
    assert act_id


def test_zero_stock_is_no_numbers(api: Api, control: Control) -> None:
    control.post("catalogue", {"service": "tg", "country": 0, "count": 0})
    assert api("getNumber", service="tg", country=0) == "NO_NUMBERS"
    assert api("getNumberV2", service="tg", country=0, orderId="z-1") == "NO_NUMBERS"
    assert api("getNumber", service="tg", country=1).startswith("ACCESS_NUMBER:"), "other offers keep their stock"


def test_max_price_below_the_set_price(api: Api, control: Control) -> None:
    control.post("catalogue", {"service": "wa", "country": 0, "price": "1.20"})
    assert api("getNumber", service="wa", country=0, maxPrice="1.19") == "WRONG_MAX_PRICE:1.20"
    assert api("getNumberV2", service="wa", country=0, maxPrice="1", orderId="m-1") == "WRONG_MAX_PRICE:1.20"
    assert api("getNumber", service="wa", country=0, maxPrice="1.20").startswith("ACCESS_NUMBER:")


def test_count_may_exceed_real_stock(api: Api, control: Control) -> None:
    control.post("catalogue", {"service": "tg", "country": 0, "count": 50, "physical_count": 0})
    assert api.json("getPrices", service="tg", country=0)["0"]["tg"] == {"cost": 0.25, "count": 50,
                                                                          "physicalCount": 0}
    assert api.json("getNumbersStatus", country=0)["tg"] == "50", "getNumbersStatus advertises the count"
    assert api("getNumber", service="tg", country=0) == "NO_NUMBERS", "only real stock sells"
    control.post("catalogue", {"service": "tg", "country": 0, "physical_count": 2})
    assert _offer(control, "tg", 0)["count"] == 52 and _offer(control, "tg", 0)["physical_count"] == 2
    api.buy("tg", country=0)
    assert api.json("getPrices", service="tg", country=0)["0"]["tg"]["count"] == 51


def test_several_offers_at_once(api: Api, control: Control) -> None:
    got = control.post("catalogue", {"offers": [{"service": "tg", "country": 0, "price": 0.5},
                                                {"service": "vk", "country": 187, "price": "9", "count": "4"}]})
    assert [(o["price"], o["count"]) for o in got["offers"]] == [("0.50", 100), ("9.00", 4)]
    assert _offer(control, "tg", 0)["price"] == "0.50"
    assert api.json("getPrices", service="vk", country=187)["187"]["vk"]["cost"] == 9.0


@pytest.mark.parametrize("body,needle", [
    ({"service": "tg", "country": 0, "price": "cheap"}, "price"),
    ({"service": "tg", "country": 0, "price": "-1"}, "price"),
    ({"service": "tg", "country": 0, "count": -1}, "count"),
    ({"service": "tg", "country": "zero", "count": 1}, "country"),
    ({"service": "tg", "country": 0, "cost": "1"}, "cost"),
    ({"service": "nosuch", "country": 0, "price": "1"}, "nosuch"),
    ({"service": "tg", "country": 999, "price": "1"}, "999"),
    ({"service": "full", "country": 0, "count": 1}, "full"),
    ({"country": 0, "price": "1"}, "service"),
    ({"offers": []}, "offers"),
])
def test_bad_catalogue_changes_are_refused(control: Control, body: dict, needle: str) -> None:
    answer = control.post("catalogue", body, status=400)
    assert needle in answer["error"]


def test_a_bad_offer_changes_nothing(api: Api, control: Control) -> None:
    control.post("catalogue", {"offers": [{"service": "tg", "country": 0, "price": "2"},
                                          {"service": "tg", "country": 999, "price": "2"}]}, status=400)
    assert _offer(control, "tg", 0)["price"] == "0.25"


def test_start_up_catalogue_and_reset(make_app) -> None:
    app = make_app(catalogue=(OfferPatch("tg", 0, price=Decimal("0.40"), count=3),
                              OfferPatch("vk", 1, count=0)))
    api, control = Api(app.test_client()), Control(app.test_client())
    prices = api.json("getPrices")
    assert prices["0"]["tg"] == {"cost": 0.4, "count": 3, "physicalCount": 3}
    assert prices["1"]["vk"]["count"] == 0
    control.post("catalogue", {"service": "tg", "country": 0, "price": "9", "count": 99})
    control.post("reset")
    assert api.json("getPrices", service="tg", country=0)["0"]["tg"]["cost"] == 0.4, "reset: the start-up catalogue"


def test_start_up_catalogue_that_cannot_apply_fails(make_app) -> None:
    with pytest.raises(ValueError, match="unknown service"):
        make_app(catalogue=(OfferPatch("nosuch", 0, price=Decimal("1")),))


def test_two_sandboxes_differ(make_app) -> None:
    cheap = Api(make_app(catalogue=(OfferPatch("tg", 0, price=Decimal("0.10")),)).test_client())
    dear = Api(make_app(catalogue=(OfferPatch("tg", 0, price=Decimal("0.90"), count=0),)).test_client())
    assert cheap.json("getPrices", service="tg", country=0)["0"]["tg"]["cost"] == 0.1
    assert dear.json("getPrices", service="tg", country=0)["0"]["tg"] == {"cost": 0.9, "count": 0,
                                                                           "physicalCount": 0}
    assert dear("getNumber", service="tg", country=0) == "NO_NUMBERS"


def test_catalogue_get_lists_every_activation_offer(control: Control) -> None:
    body = control.client.get("/control/catalogue").get_json()
    assert body["currency"] == 840
    assert {(o["service"], o["country"]) for o in body["offers"]} >= {("tg", 0), ("wa", 187)}
    assert all(o["service"] != "full" for o in body["offers"])
    assert json.dumps(body)


def test_honour_order_id_off_buys_again(api: Api, control: Control) -> None:
    assert "activationId" in api.json("getNumberV2", service="tg", orderId="same")
    assert api("getNumberV2", service="tg", orderId="same") == "ORDER_ALREADY_EXISTS"
    control.settings(honour_order_id=False)
    assert "activationId" in api.json("getNumberV2", service="tg", orderId="same"), "a second number, same orderId"
    assert [a["order_id"] for a in control.state()["activations"]] == ["same", "same"]
