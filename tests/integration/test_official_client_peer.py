"""The official `smsactivate` 1.5 client (an independent peer) against the emulator over real HTTP.

If the emulator's answers were off by a space, a JSON shape or a token, this client (which slices strings at
fixed offsets and json.loads() whole bodies) would break: its success here is evidence of wire fidelity.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Iterator

import pytest
import requests
from smsactivate.api import SMSActivateAPI

from sandbox import SandboxConfig, create_app, engine_of
from sandbox.server import SandboxServer, serve_in_thread

pytestmark = pytest.mark.http

KEY = "peer-key"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxServer]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    srv = serve_in_thread(create_app(SandboxConfig(api_key=KEY, seed=3)))
    yield srv
    srv.stop()


def client_for(server: SandboxServer, key: str = KEY) -> SMSActivateAPI:
    sa = SMSActivateAPI(key)
    sa._SMSActivateAPI__api_url = server.handler_url      # the client hard-codes its host; point it at us
    return sa


def control(server: SandboxServer, path: str, body: dict) -> dict:
    r = requests.post(f"{server.url}/control/{path}", json=body, timeout=5)
    r.raise_for_status()
    return r.json()


def test_balance(server: SandboxServer) -> None:
    sa = client_for(server)
    assert sa.getBalance() == {"balance": "100.00"}
    assert sa.getBalanceAndCashBack() == {"balance": "100.00"}


def test_bad_key_and_no_key(server: SandboxServer) -> None:
    assert client_for(server, "wrong").getBalance()["error"] == "BAD_KEY"
    assert client_for(server, "").getBalance()["error"] == "NO_KEY"


def test_get_number_status_and_finish(server: SandboxServer) -> None:
    sa = client_for(server)
    got = sa.getNumber(service="tg", country=0)
    assert set(got) == {"activation_id", "phone"}
    assert got["activation_id"] > 2**31 and str(got["phone"]).startswith("79")
    act_id = got["activation_id"]
    assert sa.getStatus(id=act_id) == "STATUS_WAIT_CODE"
    assert sa.activationStatus(sa.getStatus(id=act_id))["message"] == "Waiting for sms"
    control(server, "sms", {"activation_id": str(act_id), "code": "246810"})
    assert sa.getStatus(id=act_id) == "STATUS_OK:246810"
    assert sa.getFullSms(id=act_id) == "FULL_SMS:Your code is 246810"
    assert sa.setStatus(id=act_id, status=3) == "ACCESS_RETRY_GET"
    assert sa.getStatus(id=act_id) == "STATUS_WAIT_RETRY:246810"
    assert sa.setStatus(id=act_id, status=6) == "ACCESS_ACTIVATION"
    # STATUS_CANCEL is in the client's error table: it reports the finished activation as an "error"
    assert sa.getStatus(id=act_id)["error"] == "STATUS_CANCEL"


def test_early_cancel_then_cancel(server: SandboxServer) -> None:
    sa = client_for(server)
    act_id = sa.getNumber(service="wa")["activation_id"]
    assert sa.setStatus(id=act_id, status=8) == "EARLY_CANCEL_DENIED"
    control(server, "clock/advance", {"seconds": 121})
    assert sa.setStatus(id=act_id, status=8) == "ACCESS_CANCEL"
    assert sa.getBalance() == {"balance": "100.00"}


def test_unknown_activation_and_bad_status(server: SandboxServer) -> None:
    sa = client_for(server)
    assert sa.getStatus(id=123)["error"] == "NO_ACTIVATION"
    act_id = sa.getNumber(service="tg")["activation_id"]
    assert sa.setStatus(id=act_id, status=3)["error"] == "BAD_STATUS"


def test_get_number_v2_and_active_activations(server: SandboxServer) -> None:
    sa = client_for(server)
    v2 = sa.getNumberV2(service="vk", country=0, operator="mts")
    assert v2["activationOperator"] == "mts" and v2["activationCost"] == 0.12
    active = sa.getActiveActivations()
    assert active["status"] == "success"
    assert [a["activationId"] for a in active["activeActivations"]] == [str(v2["activationId"])]


def test_no_activations_envelope(server: SandboxServer) -> None:
    assert client_for(server).getActiveActivations() == {"status": "error", "error": "NO_ACTIVATIONS"}


def test_errors_the_client_knows(server: SandboxServer) -> None:
    sa = client_for(server)
    assert sa.getNumber(service="nope")["error"] == "BAD_SERVICE"
    control(server, "settings", {"stock": 0})
    assert sa.getNumber(service="tg")["error"] == "NO_NUMBERS"
    control(server, "settings", {"stock": 5, "balance": "0"})
    assert sa.getNumber(service="tg")["error"] == "NO_BALANCE"


def test_multi_service_number(server: SandboxServer) -> None:
    got = client_for(server).getMultiServiceNumber(service="tg,vk", forward="0,1")
    assert [g["service"] for g in got] == ["tg", "vk"] and got[0]["phone"] == got[1]["phone"]


def test_additional_service(server: SandboxServer) -> None:
    sa = client_for(server)
    act_id = sa.getNumber(service="vk", forward=1)["activation_id"]
    control(server, "sms", {"activation_id": str(act_id)})
    got = sa.getAdditionalService(id=act_id, service="ok")
    assert set(got) == {"id", "phone"} and got["id"] > 2**31


def test_catalogue(server: SandboxServer) -> None:
    sa = client_for(server)
    assert sa.getNumbersStatus(country=0)["tg"] == "100"
    assert sa.getPrices(service="tg", country=0)["0"]["tg"]["cost"] == 0.25
    assert sa.getCountries()["0"]["eng"] == "Russia"
    assert sa.getOperators(country=0)["countryOperators"]["0"][0] == "beeline"
    assert sa.getOperators(country=187) == {"status": "error", "error": "OPERATORS_NOT_FOUND"}
    top = sa.getTopCountriesByService(service="tg")
    assert {"country", "count", "price", "retail_price"} == set(top["0"])


def test_incoming_call(server: SandboxServer) -> None:
    sa = client_for(server)
    act_id = sa.getNumber(service="tg", verification="true")["activation_id"]
    assert sa.getIncomingCallStatus(id=act_id) == {"status": "2", "phone": False}
    control(server, "call", {"activation_id": str(act_id), "from": "79005551234"})
    assert sa.getIncomingCallStatus(id=act_id) == {"status": "2", "phone": "79005551234"}


def test_rent_cycle(server: SandboxServer) -> None:
    sa = client_for(server)
    services = sa.getRentServicesAndCountries(time=4, country=0)
    assert services["services"]["tg"]["cost"] == 1.0
    rent = sa.getRentNumber(service="tg", time=4, country=0)      # the client sends `time`, not `rent_time`
    rid = rent["phone"]["id"]
    assert sa.getRentStatus(id=rid) == {"status": "error", "message": "STATUS_WAIT_CODE"}
    control(server, "sms", {"rent_id": str(rid), "text": "code 1234", "phone_from": "SHOP"})
    status = sa.getRentStatus(id=rid)
    assert status["quantity"] == "1" and status["values"]["0"]["text"] == "code 1234"
    assert sa.getRentList()["values"]["0"]["id"] == str(rid)
    assert sa.getContinueRentPriceNumber(id=rid) == {"status": "success", "price": 1.0, "currency": 840}
    assert sa.continueRentNumber(id=rid, time=4)["phone"]["id"] == rid
    assert sa.setRentStatus(id=rid, status=2) == {"status": "error", "message": "CANT_CANCEL"}
    assert sa.setRentStatus(id=rid, status=1) == {"status": "success"}
    assert sa.getRentStatus(id=rid) == {"status": "error", "message": "STATUS_FINISH"}
    assert Decimal(sa.getBalance()["balance"]) == Decimal("98.00")


def test_server_stop_releases_the_port() -> None:
    srv = serve_in_thread(create_app(SandboxConfig(api_key=KEY)))
    url = srv.handler_url
    assert requests.get(url, params={"api_key": KEY, "action": "getBalance"}, timeout=5).text.startswith("ACCESS")
    engine_of(srv.app)
    srv.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=2)
