"""Our handler_api client against our emulator over real HTTP (loopback), for every action docs/handler-api.md lists
("Transport and answers", "Buying a number", "Activation states", "Rents") and the partner product, in every
dialect the sandbox speaks (docs/dialects.md), with its fault modes and per-sandbox prices and stock. The sandbox
is an independent peer: it imports nothing of ``provider``; a mismatch here is either a client bug or an emulator
bug, and the assertion message says which rule is at stake."""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Iterator

import pytest
import requests

from provider import ProviderClient
from provider import errors as E
from provider import models as M

pytestmark = pytest.mark.http

sandbox = pytest.importorskip("sandbox")
from sandbox import SandboxConfig, create_app  # noqa: E402
from sandbox.server import serve_in_thread  # noqa: E402

KEY = "itest-Key_0123456789"


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    srv = serve_in_thread(create_app(SandboxConfig(api_key=KEY, seed=7, balance=Decimal("1000"))))
    try:
        yield srv
    finally:
        srv.stop()


class Control:
    """The sandbox control API (JSON under /control/)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = requests.Session()

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        r = self.http.post(f"{self.url}/control/{path}", json=body or {}, timeout=5)
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r.json()

    def sms(self, activation_id: str, code: str = "123456", text: str | None = None) -> Any:
        return self.post("sms", {"activation_id": activation_id, "code": code, "text": text or f"code {code}"})

    def advance(self, seconds: float) -> Any:
        return self.post("clock/advance", {"seconds": seconds})

    def settings(self, **values: Any) -> Any:
        return self.post("settings", values)

    def state(self) -> Any:
        return self.http.get(f"{self.url}/control/state", timeout=5).json()

    def catalogue(self, **offer: Any) -> Any:
        return self.post("catalogue", offer)


@pytest.fixture
def control(server: Any) -> Iterator[Control]:
    ctl = Control(server.url)
    ctl.post("reset")
    yield ctl
    ctl.post("reset")
    ctl.http.close()


def make(server: Any, dialect: str = "sms-activate", key: str = KEY, **kw: Any) -> ProviderClient:
    kw.setdefault("sleep", lambda s: None)
    return ProviderClient(key, dialect=dialect, base_url=server.handler_url, **kw)


@pytest.fixture
def client(server: Any, control: Control) -> Iterator[ProviderClient]:
    with make(server) as c:
        yield c


# ------------------------------------------------------------------ catalogue / account
def test_balance_and_cashback(client: ProviderClient) -> None:
    assert client.get_balance() == M.Balance(Decimal("1000"))
    assert isinstance(client.get_balance_and_cash_back().amount, Decimal)


def test_numbers_status_and_top_countries(client: ProviderClient, control: Control) -> None:
    counts = client.get_numbers_status(country=0)
    assert counts.get("tg") > 0, "getNumbersStatus must list stock per service"
    control.settings(numbers_status_style="seed")
    seed_style = client.get_numbers_status(country=0)
    # both key styles of getNumbersStatus: docs/handler-api.md, Transport and answers
    assert seed_style.get("tg") == counts.get("tg"), "suffixed and unsuffixed keys must mean the same"
    top = client.get_top_countries_by_service("tg")
    assert top and all(isinstance(t.price, Decimal) for t in top)
    top_free = client.get_top_countries_by_service("tg", free_price=True)
    assert top_free
    assert client.get_top_countries_by_service_rank("tg")
    shares = client.get_list_of_top_countries_by_service("tg")
    assert isinstance(shares, list)


def test_operators_prices_countries_services(client: ProviderClient) -> None:
    ops = client.get_operators(country=0)
    assert "mts" in ops.for_country(0)
    assert dict(client.get_operators(country=999).by_country) in ({},), "unknown country → OPERATORS_NOT_FOUND"
    prices = client.get_prices(service="tg", country=0)
    assert prices.get(0, "tg") is not None and prices.get(0, "tg").cost > 0
    assert len(client.get_prices()) > len(prices)
    assert client.get_prices_extended(service="tg", country=0).get(0, "tg") is not None
    verification = client.get_prices_verification(service="tg")
    assert verification.get(0, "tg") is not None and isinstance(verification.get(0, "tg").cost, Decimal)
    countries = {c.id: c for c in client.get_countries()}
    assert countries["0"].eng == "Russia" and countries["187"].multi_service is False
    services = {s.code: s.name for s in client.get_services_list(lang="en")}
    assert services["tg"] == "Telegram"


def test_wrong_key_is_bad_key_and_key_never_leaks(server: Any, control: Control) -> None:
    other = "wrong-" + KEY
    with make(server, key=other) as bad:
        with pytest.raises(E.BadKey) as info:
            bad.get_balance()
    assert other not in str(info.value) + repr(info.value) + str(info.value.body)
    with make(server, key="") as empty:
        with pytest.raises(E.NoKey):
            empty.get_balance()


# ------------------------------------------------------------------ activations
def test_v2_purchase_sms_retry_finish_history(client: ProviderClient, control: Control) -> None:
    a = client.get_number_v2("tg", country=0, order_id="it-1", max_price=Decimal("100"))
    assert isinstance(a, M.Activation) and a.activation_id.isdigit() and a.phone.isdigit()
    assert isinstance(a.cost, Decimal) and a.currency == 840 and a.activation_time is not None
    assert client.get_status(a.activation_id).state is M.ActivationState.WAIT_CODE
    v2 = client.get_status_v2(a.activation_id)
    assert v2.state is M.ActivationState.WAIT_CODE and v2.code is None
    [row] = [r for r in client.get_active_activations() if r.activation_id == a.activation_id]
    assert row.phone == a.phone and row.service == "tg"
    assert client.find_activation_by_order_id("it-1").activation_id == a.activation_id

    control.sms(a.activation_id, "4711")
    assert client.get_status(a.activation_id) == M.StatusResult(M.ActivationState.CODE_RECEIVED, "4711")
    v2 = client.get_status_v2(a.activation_id)
    assert v2.state is M.ActivationState.CODE_RECEIVED and v2.sms.code == "4711"
    assert client.request_another_sms(a.activation_id) == "ACCESS_RETRY_GET"
    assert client.get_status(a.activation_id) == M.StatusResult(M.ActivationState.WAIT_RETRY, "4711")
    control.sms(a.activation_id, "4712")
    assert client.get_status(a.activation_id).code == "4712"
    assert client.finish_activation(a.activation_id) == "ACCESS_ACTIVATION"
    # "cancelled or completed": docs/handler-api.md, Activation states
    assert client.get_status(a.activation_id).state is M.ActivationState.CANCELLED
    history = client.get_history()
    assert any(h.activation_id == a.activation_id for h in history)

    with pytest.raises(E.OrderAlreadyExists):
        client.get_number_v2("tg", country=0, order_id="it-1")


def test_plain_purchase_early_cancel_then_cancel(client: ProviderClient, control: Control) -> None:
    a = client.get_number("tg", country=0)
    assert a.activation_id.isdigit() and a.phone.isdigit()
    assert client.report_number_ready(a.activation_id) == "ACCESS_READY"
    with pytest.raises(E.EarlyCancelDenied):
        client.cancel_activation(a.activation_id)
    control.advance(130)
    assert client.cancel_activation(a.activation_id) == "ACCESS_CANCEL"
    assert client.get_status(a.activation_id).state is M.ActivationState.CANCELLED
    assert client.get_status_v2(a.activation_id).state is M.ActivationState.CANCELLED
    assert client.get_active_activations() == []          # NO_ACTIVATIONS → []


def test_purchase_errors(client: ProviderClient, control: Control) -> None:
    with pytest.raises(E.WrongMaxPrice) as info:
        client.get_number_v2("tg", country=0, max_price=Decimal("0.0001"))
    assert isinstance(info.value.min_price, Decimal) and info.value.min_price > Decimal("0.0001")
    with pytest.raises(E.BadService):
        client.get_number("nosuchservice", country=0)
    with pytest.raises(E.NoActivation):
        client.get_status("999999999999")
    control.settings(balance="0")
    with pytest.raises(E.NoBalance):
        client.get_number("tg", country=0)
    control.settings(balance="100", banned_until="2030-1-2 3-4-5")
    with pytest.raises(E.Banned) as banned:
        client.get_number("tg", country=0)
    assert banned.value.until is not None and banned.value.until.year == 2030


def test_multi_service_number(client: ProviderClient) -> None:
    acts = client.get_multi_service_number(["vk", "ok"], forward=[0, 1], country=0)
    assert [a.service for a in acts] == ["vk", "ok"]
    assert len({a.phone for a in acts}) == 1 and len({a.activation_id for a in acts}) == 2


def test_call_verification_parse_call(client: ProviderClient, control: Control) -> None:
    a = client.get_number("tg", country=0, activation_type=2, language="en")
    assert client.get_incoming_call_status(a.activation_id).status == 2
    assert client.parse_call(a.activation_id, "ru").state is M.ParseCallState.NO_CALL
    control.post("call", {"activation_id": a.activation_id, "from": "79990001122", "code": "5555"})
    call_status = client.get_incoming_call_status(a.activation_id)
    assert call_status.phone == "79990001122"
    v2 = client.get_status_v2(a.activation_id)
    assert v2.call is not None and v2.call.code == "5555" and v2.verification_type == 2
    assert client.parse_call(a.activation_id, "ru").state is M.ParseCallState.OK
    with pytest.raises(E.NotIncoming):
        b = client.get_number("tg", country=0)
        client.get_incoming_call_status(b.activation_id)


def test_extra_and_additional(client: ProviderClient, control: Control) -> None:
    parent = client.get_number("wa", country=0, forward=1)
    control.sms(parent.activation_id, "1000")
    child = client.get_additional_service(activation_id=parent.activation_id, service="vk")
    assert child.phone == parent.phone and child.activation_id != parent.activation_id
    with pytest.raises(E.RepeatAdditionalService):
        client.get_additional_service(activation_id=parent.activation_id, service="vk")
    assert client.finish_activation(parent.activation_id) == "ACCESS_ACTIVATION"
    offer = client.check_extra_activation(parent.activation_id)
    assert offer.phone == parent.phone and isinstance(offer.cost, Decimal)
    control.advance(130)
    client.cancel_activation(child.activation_id)
    extra = client.get_extra_activation(parent.activation_id)
    assert extra.phone == parent.phone and extra.activation_id not in (parent.activation_id, child.activation_id)


def test_generic_call(client: ProviderClient, control: Control) -> None:
    a = client.get_number("tg", country=0)
    assert client.call("getFullSms", id=a.activation_id) == "STATUS_WAIT_CODE"
    assert client.call("getBalance").startswith("ACCESS_BALANCE:")
    with pytest.raises(E.BadAction):
        client.call("noSuchAction")


# ------------------------------------------------------------------ rent
def test_rent_lifecycle(client: ProviderClient, control: Control) -> None:
    catalogue = client.get_rent_services_and_countries(rent_time=4, country=0)
    assert "tg" in catalogue.services and catalogue.currency == 840
    assert client.get_rent_list() == []                     # NO_NUMBERS envelope → []
    rent = client.get_rent_number("tg", rent_time=4, country=0, url="http://127.0.0.1:9/hook")
    assert rent.rent_id.isdigit() and rent.end_date is not None
    assert client.get_rent_status(rent.rent_id).state is M.RentState.WAIT_CODE
    control.post("sms", {"rent_id": rent.rent_id, "text": "Code 2792", "phone_from": "SPORTMASTER"})
    status = client.get_rent_status(rent.rent_id)
    assert status.state is M.RentState.ACTIVE and status.messages[0].phone_from == "SPORTMASTER"
    assert [r.rent_id for r in client.get_rent_list()] == [rent.rent_id]
    price = client.get_continue_rent_price_number(rent.rent_id, rent_time=4)
    assert isinstance(price.price, Decimal) and price.currency == 840
    info = client.continue_rent_info(rent.rent_id, hours=4, need_history=True)
    assert info.hours == 4 and isinstance(info.price, Decimal)
    longer = client.continue_rent_number(rent.rent_id, rent_time=4)
    assert longer.rent_id == rent.rent_id and longer.end_date > rent.end_date
    assert client.finish_rent(rent.rent_id) is True
    assert client.get_rent_status(rent.rent_id).state is M.RentState.FINISHED
    with pytest.raises(E.AlreadyFinished):
        client.finish_rent(rent.rent_id)


def test_rent_cancel_and_errors(client: ProviderClient, control: Control) -> None:
    rent = client.get_rent_number("tg", rent_time=4, country=0)
    assert client.cancel_rent(rent.rent_id) is True
    assert client.get_rent_status(rent.rent_id).state is M.RentState.CANCELLED
    with pytest.raises((E.NoIdRent, E.InvalidPhone)):   # not our rent: docs/handler-api.md, Rents
        client.get_rent_status("987654321")
    other = client.get_rent_number("tg", rent_time=4, country=0)
    control.advance(1300)
    with pytest.raises(E.CantCancel):
        client.cancel_rent(other.rent_id)


def test_partner_product(client: ProviderClient, control: Control) -> None:
    product = client.buy_partner_product(1)
    assert len(product.key) >= 10 and product.manual
    with pytest.raises(E.BadData):
        client.buy_partner_product(999)


# ------------------------------------------------------------------ faults and retries over real HTTP
def test_read_only_retried_through_500_and_error_sql(client: ProviderClient, control: Control) -> None:
    for mode in ("500", "ERROR_SQL"):
        control.settings(fail_mode=mode, fail_next=2)
        assert client.get_balance().amount == Decimal("1000")
    assert control.state()["settings"]["fail_mode"] is None


def test_purchase_not_retried_through_500(client: ProviderClient, control: Control) -> None:
    control.settings(fail_mode="500", fail_next=1)
    with pytest.raises(E.ServerError):      # one retry would have succeeded (only 1 failure is scripted)
        client.get_number("tg", country=0)
    assert control.state()["activations"] == []
    assert client.get_number("tg", country=0).activation_id


def test_timeout_is_transient(server: Any, control: Control) -> None:
    control.settings(fail_mode="timeout", fail_next=1, timeout_sleep=1.5)
    with make(server, read_timeout=0.3, max_retries=0) as c:
        with pytest.raises(E.ReadTimeout) as info:
            c.get_balance()
    assert info.value.possibly_processed is True and KEY not in str(info.value)


def test_v2_with_order_id_retried_after_500(client: ProviderClient, control: Control) -> None:
    control.settings(fail_mode="500", fail_next=1)
    a = client.get_number_v2("tg", country=0, order_id="retry-1")
    assert a.activation_id
    assert control.state()["orders"] == {"retry-1": a.activation_id}


# ------------------------------------------------------------------ dialects
def test_herosms_dialect(server: Any, control: Control) -> None:
    control.settings(dialect="herosms")
    with make(server, dialect="herosms") as hero, make(server, dialect="herosms", auth="header") as hero_header:
        assert hero_header.get_balance().amount == Decimal("1000")          # Authorization: ApiKey
        a = hero.get_number_v2("tg", country=0)
        assert a.end_time is not None and a.country_phone_code == "7"      # activationEndTime, countryPhoneCode
        rows = hero.get_active_activations()                               # "data" rows
        assert [r.activation_id for r in rows] == [a.activation_id]
        with pytest.raises(E.EarlyCancelDenied) as early:                  # title JSON with 409
            hero.cancel_activation(a.activation_id)
        assert early.value.http_status == 409
        control.sms(a.activation_id, "9090")
        assert hero.finish_activation(a.activation_id) == ""               # HTTP 204
        with pytest.raises(E.NotSupported):
            hero.report_number_ready(a.activation_id)
        with pytest.raises(E.NotSupported):
            hero.get_list_of_top_countries_by_service("tg")
        # the sms-activate profile still understands HeroSMS errors (title JSON, 4xx)
        with pytest.raises(E.BadAction):
            make(server).get_list_of_top_countries_by_service("tg")
    with make(server, dialect="herosms", key="nope-nope") as bad:
        with pytest.raises(E.BadKey) as info:
            bad.get_balance()
    assert info.value.http_status == 401


def test_grizzly_dialect(server: Any, control: Control) -> None:
    control.settings(dialect="grizzly")
    with make(server, dialect="grizzly") as grizzly:
        a = grizzly.get_number_v2("tg", country=0)
        assert a.end_time is not None and a.cancel_time is not None        # activationEnd / activationCancel
        control.advance(130)
        assert grizzly.cancel_activation(a.activation_id) == "ACCESS_CANCEL"   # status -1
        assert control.state()["activations"][0]["state"].upper().startswith("CANCEL")


def test_smshub_dialect(server: Any, control: Control) -> None:
    control.settings(dialect="smshub")
    with make(server, dialect="smshub") as hub:
        assert hub.get_balance().amount == Decimal("1000")
        assert hub.dialect.purchase_action == "getNumber"
        a = hub.get_number("tg", country=0)                                 # only getNumber is documented
        with pytest.raises(E.BadAction):
            hub.get_number_v2("tg", country=0, order_id="hub-1")
        with pytest.raises(E.NotSupported):                                 # no bulk read: refused locally
            hub.get_active_activations()
        with pytest.raises(E.NotSupported):
            hub.get_list_of_top_countries_by_service("tg")
        control.sms(a.activation_id, "3131")
        assert hub.get_status(a.activation_id) == M.StatusResult(M.ActivationState.CODE_RECEIVED, "3131")
        assert hub.finish_activation(a.activation_id) == "ACCESS_ACTIVATION"
        b = hub.get_number("tg", country=0)
        control.advance(130)
        assert hub.cancel_activation(b.activation_id) == "ACCESS_CANCEL"
        # maxPrice is read together with currency (max_price_needs_currency)
        assert hub.dialect.max_price_needs_currency
        with pytest.raises(E.WrongMaxPrice) as low:
            hub.get_number("tg", country=0, max_price=Decimal("0.01"), currency=hub.dialect.default_currency)
        assert low.value.min_price == Decimal("0.25")
        with pytest.raises(E.CurrencyChangeUnavailable):
            hub.get_number("tg", country=0, currency=643)
        with pytest.raises(E.BadService) as wrong:                          # WRONG_SERVICE on the wire
            hub.get_number("nosuch", country=0)
        assert wrong.value.raw_code == "WRONG_SERVICE"
        assert hub.get_prices(service="tg", country=0).get(0, "tg").cost == Decimal("0.25")
    with make(server, dialect="smshub", key="nope-nope") as bad:
        with pytest.raises(E.BadKey):
            bad.get_balance()


def test_vaksms_dialect(server: Any, control: Control) -> None:
    control.settings(dialect="vaksms")
    with make(server, dialect="vaksms") as vak:
        countries = {c.id: c for c in vak.get_countries()}                  # a JSON list, indexed by id
        assert countries["0"].eng == "Russia"
        a = vak.get_number("tg", country=0, max_price=Decimal("0.01"))      # maxPrice is not read
        assert not vak.dialect.max_price_supported
        assert control.state()["activations"][0]["cost"] == "0.25"
        assert [r.activation_id for r in vak.get_active_activations()] == [a.activation_id]
        with pytest.raises(E.NotSupported):
            vak.get_list_of_top_countries_by_service("tg")
        with pytest.raises(E.NoActivation) as unknown:          # getStatus of an unknown id: BAD_ACTION on the wire,
            vak.get_status("999999999999")                      # but the key works (getBalance), so the id is unknown
        assert unknown.value.kind is E.ErrorKind.CLOSED and unknown.value.raw_code == "BAD_ACTION"
        control.advance(130)
        assert vak.cancel_activation(a.activation_id) == "ACCESS_CANCEL"
        assert vak.get_active_activations() == []
    with make(server, dialect="vaksms", key="nope-nope") as bad:
        with pytest.raises(E.BadActionOrKey):                               # a wrong key answers BAD_ACTION
            bad.get_balance()
        with pytest.raises(E.BadActionOrKey):                               # ... and is not taken for an unknown id
            bad.get_status("999999999999")


@pytest.mark.parametrize("dialect", ["sms-activate", "herosms", "grizzly", "smshub", "vaksms"])
def test_every_dialect_buys_with_its_purchase_action(server: Any, control: Control, dialect: str) -> None:
    control.settings(dialect=dialect)
    with make(server, dialect=dialect) as c:
        if c.dialect.purchase_action == "getNumberV2":
            a = c.get_number_v2("tg", country=0, order_id=f"any-{dialect}")
            assert a.cost == Decimal("0.25")
        else:
            a = c.get_number("tg", country=0)
        control.sms(a.activation_id, "2468")
        assert c.get_status(a.activation_id).code == "2468"
        assert c.finish_activation(a.activation_id) in ("ACCESS_ACTIVATION", "")


# ------------------------------------------------------------------ rate limits and per-sandbox catalogue
def test_rate_limit_429_honours_retry_after(server: Any, control: Control) -> None:
    control.settings(fail_mode="429", fail_next=2, retry_after=3)
    sleeps: list[float] = []
    with make(server, sleep=sleeps.append) as c:
        assert c.get_balance().amount == Decimal("1000")                    # read-only: retried
    assert len(sleeps) == 2 and all(s >= 3 for s in sleeps), sleeps
    control.settings(fail_mode="429", fail_next=1, retry_after=5)
    with make(server, max_retries=0) as once:
        with pytest.raises(E.RateLimited) as info:
            once.get_balance()
    assert info.value.retry_after == 5 and info.value.http_status == 429
    control.settings(fail_mode="429", fail_next=1)
    with make(server) as c:
        with pytest.raises(E.RateLimited):                                  # a purchase is sent once
            c.get_number("tg", country=0)
        assert control.state()["activations"] == []
        assert c.get_number_v2("tg", country=0, order_id="rl-1").activation_id   # nothing left to fail


def test_catalogue_prices_and_stock_over_http(client: ProviderClient, control: Control) -> None:
    control.catalogue(service="tg", country=0, price="0.30", count=10, physical_count=4)
    price = client.get_prices(service="tg", country=0).get(0, "tg")
    assert (price.cost, price.count, price.physical_count) == (Decimal("0.30"), 10, 4)
    a = client.get_number_v2("tg", country=0, order_id="cat-1", max_price=Decimal("0.30"))
    assert a.cost == Decimal("0.30")
    assert client.get_balance().amount == Decimal("999.70")
    with pytest.raises(E.WrongMaxPrice) as low:
        client.get_number_v2("tg", country=0, order_id="cat-2", max_price=Decimal("0.29"))
    assert low.value.min_price == Decimal("0.30")
    control.catalogue(service="tg", country=0, count=0)
    with pytest.raises(E.NoNumbers):
        client.get_number_v2("tg", country=0, order_id="cat-3")
    assert client.get_prices(service="tg", country=0).get(0, "tg").physical_count == 0


def test_two_sandboxes_with_their_own_catalogues() -> None:
    from sandbox.catalogue import OfferPatch
    cheap = serve_in_thread(create_app(SandboxConfig(api_key=KEY, seed=1, catalogue=(
        OfferPatch("tg", 0, price=Decimal("0.10"), count=0),))))
    dear = serve_in_thread(create_app(SandboxConfig(api_key=KEY, seed=1, dialect="herosms", catalogue=(
        OfferPatch("tg", 0, price=Decimal("0.90"), count=5),))))
    try:
        with make(cheap) as a, make(dear, dialect="herosms") as b:
            assert a.get_prices(service="tg", country=0).get(0, "tg").cost == Decimal("0.10")
            assert b.get_prices(service="tg", country=0).get(0, "tg").cost == Decimal("0.90")
            with pytest.raises(E.NoNumbers):
                a.get_number_v2("tg", country=0, order_id="two-1")
            bought = b.get_number_v2("tg", country=0, order_id="two-1")
            assert bought.cost == Decimal("0.90")
            # the same seed gives the same activation ids: ids of two providers can collide
            with make(cheap) as again:
                control_a = Control(cheap.url)
                control_a.catalogue(service="tg", country=0, count=1)
                twin = again.get_number_v2("tg", country=0, order_id="two-2")
                control_a.http.close()
            assert twin.activation_id == bought.activation_id
    finally:
        cheap.stop()
        dear.stop()
