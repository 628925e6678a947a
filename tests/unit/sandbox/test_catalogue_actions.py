"""Catalogue actions: balances, counts, prices, countries, services, operators, top lists."""
from __future__ import annotations

from decimal import Decimal

import pytest

from .conftest import Api, Control


def test_balance_formats(make_app) -> None:
    api = Api(make_app(balance=Decimal("12.5")).test_client())
    assert api("getBalance") == "ACCESS_BALANCE:12.50"
    api2 = Api(make_app(balance=Decimal("17.154"), cashback=Decimal("1")).test_client())
    assert api2("getBalance") == "ACCESS_BALANCE:17.154"
    assert api2("getBalanceAndCashBack") == "ACCESS_BALANCE:18.154"


def test_numbers_status_live_and_seed_styles(api: Api, control: Control) -> None:
    live = api.json("getNumbersStatus", country=0)
    assert live["tg"] == "100" and all(isinstance(v, str) for v in live.values())
    control.settings(numbers_status_style="seed")
    seed = api.json("getNumbersStatus", country=0)
    assert seed["tg_0"] == 100 and seed["vk_1"] == 100 and "tg_1" not in seed


def test_prices_filters(api: Api) -> None:
    body = api.json("getPrices", service="tg", country=0)
    assert body == {"0": {"tg": {"cost": 0.25, "count": 100, "physicalCount": 100}}}
    assert api.json("getPrices", country=999) == {}
    all_prices = api.json("getPrices")
    assert {"0", "1", "2", "6", "16", "187"} <= set(all_prices)
    ext = api.json("getPricesExtended", service="tg", country=0, freePrice="true")
    assert ext["0"]["tg"]["freePriceMap"] == {"0.25": 100}


def test_prices_verification(api: Api) -> None:
    body = api.json("getPricesVerification", service="tg")
    assert body["tg"]["0"] == {"count": 100, "price": "0.25"}


def test_countries(api: Api) -> None:
    body = api.json("getCountries")
    assert body["0"] == {"id": 0, "rus": "Россия", "eng": "Russia", "chn": "俄罗斯", "visible": 1, "retry": 1,
                         "rent": 1, "multiService": 1}
    assert all(str(v["id"]) == k for k, v in body.items())


def test_services_list(api: Api) -> None:
    body = api.json("getServicesList")
    assert body["status"] == "success"
    assert {"code": "tg", "name": "Telegram"} in body["services"]
    ru = api.json("getServicesList", lang="ru")
    assert {"code": "vk", "name": "ВКонтакте"} in ru["services"]
    assert api.json("getServicesList", country=999)["services"] == []


def test_operators(api: Api) -> None:
    assert api.json("getOperators", country=1)["countryOperators"] == {"1": ["kyivstar", "life", "mts", "utel"]}
    assert set(api.json("getOperators")["countryOperators"]) == {"0", "1", "2"}
    assert api.json("getOperators", country=187) == {"status": "error", "error": "OPERATORS_NOT_FOUND"}


def test_top_countries_by_service(api: Api) -> None:
    body = api.json("getTopCountriesByService", service="tg")
    assert list(body) == [str(i) for i in range(len(body))]
    assert set(body["0"]) == {"country", "count", "price", "retail_price"}
    free = api.json("getTopCountriesByService", service="tg", freePrice="true")
    assert all("freePriceMap" in v for v in free.values())
    assert api("getTopCountriesByService", service="nope") == "BAD_SERVICE"
    rank = api.json("getTopCountriesByServiceRank", service="tg")
    by_country = {v["country"]: v["price"] for v in body.values()}
    assert all(v["price"] <= by_country[v["country"]] for v in rank.values())


def test_list_of_top_countries(api: Api, control: Control) -> None:
    assert api("getListOfTopCountriesByService") == "WRONG_SERVICE"
    a, _ = api.buy("tg", country=2)
    control.sms(a)
    api("setStatus", id=a, status=6)
    rows = api.json("getListOfTopCountriesByService", service="tg")
    assert rows[0] == {"country": 2, "share": 100.0, "rate": 100.0}
    assert len(api.json("getListOfTopCountriesByService", service="tg", length=2, page=2)) == 2


@pytest.mark.parametrize("action", ["getPrices", "getCountries", "getServicesList", "getOperators",
                                    "getNumbersStatus", "getTopCountriesByService"])
def test_catalogue_needs_a_key_on_sms_activate(app, action) -> None:
    assert Api(app.test_client(), key=None)(action) == "NO_KEY"
