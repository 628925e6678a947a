"""Activation state machine, ledger arithmetic and purchase answers (docs/handler-api.md: Buying a number, Activation
states)."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest

from .conftest import Api, Control


# -- purchases ------------------------------------------------------------------------------------------------
def test_get_number_format_and_large_ids(api: Api) -> None:
    body = api("getNumber", service="tg", country=0)
    token, act_id, phone = body.split(":")
    assert token == "ACCESS_NUMBER" and " " not in body
    assert int(act_id) > 2**31
    assert phone.isdigit() and phone.startswith("79") and len(phone) == 11


def test_purchase_charges_balance_and_takes_stock(api: Api, engine) -> None:
    before = engine.catalogue.offer(0, "tg").stock
    api.buy("tg", country=0)
    assert api.balance() == Decimal("99.75")
    assert engine.catalogue.offer(0, "tg").stock == before - 1
    assert json.loads(api("getNumbersStatus", country=0))["tg"] == str(before - 1)


@pytest.mark.parametrize("params,answer", [
    ({}, "BAD_SERVICE"),
    ({"service": "nope"}, "BAD_SERVICE"),
    ({"service": "tg", "country": "999"}, "BAD_COUNTRY"),
    ({"service": "tg", "maxPrice": "0.1"}, "WRONG_MAX_PRICE:0.25"),
    ({"service": "tg", "maxPrice": "abc"}, "WRONG_MAX_PRICE:0.25"),
    ({"service": "tg", "phoneException": "79"}, "WRONG_EXCEPTION_PHONE"),
    ({"service": "tg", "phoneException": "7918,x"}, "WRONG_EXCEPTION_PHONE"),
])
def test_get_number_errors(api: Api, params, answer) -> None:
    assert api("getNumber", **params) == answer


def test_max_price_at_or_above_price_buys(api: Api) -> None:
    assert api("getNumber", service="tg", maxPrice="0.25").startswith("ACCESS_NUMBER:")


def test_no_numbers_when_stock_is_empty(api: Api, control: Control) -> None:
    control.settings(stock={"0": {"tg": 0}})
    assert api("getNumber", service="tg", country=0) == "NO_NUMBERS"
    assert api("getNumber", service="wa", country=0).startswith("ACCESS_NUMBER:")


def test_no_balance(api: Api, control: Control, engine) -> None:
    control.settings(balance="0.20")
    stock = engine.catalogue.offer(0, "tg").stock
    assert api("getNumber", service="tg") == "NO_BALANCE"
    assert engine.catalogue.offer(0, "tg").stock == stock      # nothing taken
    assert api.balance() == Decimal("0.20")


def test_phone_exception_prefixes_are_avoided(api: Api) -> None:
    excluded = [f"79{d}{e}" for d in range(9) for e in range(10)]        # all but 799x
    for _ in range(20):
        _, phone = api.buy("tg", phoneException=",".join(excluded))
        assert phone.startswith("799")


def test_operator_that_does_not_fit_gives_a_number(api: Api, engine) -> None:
    act_id, _ = api.buy("tg", country=0, operator="nosuchop")
    assert engine.activations[act_id].operator in engine.catalogue.countries[0].operators
    act_id, _ = api.buy("tg", country=0, operator="mts")
    assert engine.activations[act_id].operator == "mts"


def test_get_number_v2_body(api: Api) -> None:
    body = api.json("getNumberV2", service="wa", country=0, operator="mts")
    assert set(body) == {"activationId", "phoneNumber", "activationCost", "currency", "countryCode",
                         "canGetAnotherSms", "activationTime", "activationOperator"}
    assert isinstance(body["activationId"], int) and body["activationId"] > 2**31
    assert body["activationCost"] == 0.4 and body["currency"] == 840
    assert body["countryCode"] == "0" and body["canGetAnotherSms"] == "1"
    assert body["activationOperator"] == "mts"


def test_get_number_v2_errors_are_plain(api: Api, control: Control) -> None:
    control.settings(stock=0)
    r = api.raw("getNumberV2", service="tg")
    assert (r.get_data(as_text=True), r.headers["Content-Type"]) == ("NO_NUMBERS", "text/html; charset=UTF-8")


def test_order_id_idempotency_and_recovery(api: Api) -> None:
    first = api.json("getNumberV2", service="tg", orderId="order-1")
    balance = api.balance()
    assert api("getNumberV2", service="tg", orderId="order-1") == "ORDER_ALREADY_EXISTS"
    assert api.balance() == balance                       # not charged twice
    active = api.json("getActiveActivations")["activeActivations"]
    mine = [a for a in active if a["orderId"] == "order-1"]
    assert [a["activationId"] for a in mine] == [str(first["activationId"])]
    assert api("getNumberV2", service="tg", orderId="order-2").startswith("{")


def test_order_id_stays_taken_after_cancel(api: Api, control: Control) -> None:
    act = api.json("getNumberV2", service="tg", orderId="o")
    control.advance(121)
    assert api("setStatus", id=act["activationId"], status=8) == "ACCESS_CANCEL"
    assert api("getNumberV2", service="tg", orderId="o") == "ORDER_ALREADY_EXISTS"


def test_channels_limit_and_banned(api: Api, control: Control) -> None:
    control.settings(max_active=1)
    api.buy()
    assert api("getNumber", service="tg") == "CHANNELS_LIMIT"
    control.settings(max_active=None, banned_until="2030-1-1 10-00-00")
    assert api("getNumber", service="tg") == "BANNED:2030-1-1 10-00-00"


# -- getStatus / setStatus ------------------------------------------------------------------------------------
def test_status_flow_code_retry_finish(api: Api, control: Control) -> None:
    act_id, _ = api.buy()
    assert api("getStatus", id=act_id) == "STATUS_WAIT_CODE"
    assert api("setStatus", id=act_id, status=1) == "ACCESS_READY"
    assert api("getStatus", id=act_id) == "STATUS_WAIT_CODE"
    control.sms(act_id, "111111")
    assert api("getStatus", id=act_id) == "STATUS_OK:111111"
    assert api("setStatus", id=act_id, status=3) == "ACCESS_RETRY_GET"
    assert api("getStatus", id=act_id) == "STATUS_WAIT_RETRY:111111"
    control.sms(act_id, "222222")
    assert api("getStatus", id=act_id) == "STATUS_OK:222222"
    assert api("setStatus", id=act_id, status=6) == "ACCESS_ACTIVATION"
    assert api("getStatus", id=act_id) == "STATUS_CANCEL"
    assert api.balance() == Decimal("99.75")   # finished: money kept


def test_code_may_contain_colons(api: Api, control: Control) -> None:
    act_id, _ = api.buy()
    control.sms(act_id, "12:34")
    assert api("getStatus", id=act_id) == "STATUS_OK:12:34"


@pytest.mark.parametrize("flag,answer", [("STATUS_CANCEL", "STATUS_CANCEL"), ("STATUS_OK", "STATUS_OK:555555"),
                                         ("NO_ACTIVATION", "NO_ACTIVATION")])
def test_status_after_finish_flag(api: Api, control: Control, flag, answer) -> None:
    control.settings(status_after_finish=flag)
    act_id, _ = api.buy()
    control.sms(act_id, "555555")
    api("setStatus", id=act_id, status=6)
    assert api("getStatus", id=act_id) == answer


def test_early_cancel_denied_then_cancel_refunds_and_returns_stock(api: Api, control: Control, engine) -> None:
    stock = engine.catalogue.offer(0, "tg").stock
    act_id, _ = api.buy()
    control.advance(119)
    assert api("setStatus", id=act_id, status=8) == "EARLY_CANCEL_DENIED"
    control.advance(2)
    assert api("setStatus", id=act_id, status=8) == "ACCESS_CANCEL"
    assert api("getStatus", id=act_id) == "STATUS_CANCEL"
    assert api.balance() == Decimal("100.00")
    assert engine.catalogue.offer(0, "tg").stock == stock
    assert api("setStatus", id=act_id, status=8) == "BAD_STATUS"


def test_cancel_after_code_is_bad_status(api: Api, control: Control) -> None:
    act_id, _ = api.buy()
    control.advance(200)
    control.sms(act_id)
    assert api("setStatus", id=act_id, status=8) == "BAD_STATUS"


def test_cancel_after_refund_window_keeps_the_money(make_app) -> None:
    app = make_app(activation_lifetime=2400)
    api, control = Api(app.test_client()), Control(app.test_client())
    act_id, _ = api.buy()
    control.advance(1201)
    assert api("setStatus", id=act_id, status=8) == "ACCESS_CANCEL"
    assert api.balance() == Decimal("99.75")


def test_status_6_while_waiting_cancels_with_refund(api: Api) -> None:
    act_id, _ = api.buy()
    assert api("setStatus", id=act_id, status=6) == "ACCESS_ACTIVATION"
    assert api("getStatus", id=act_id) == "STATUS_CANCEL"
    assert api.balance() == Decimal("100.00")


@pytest.mark.parametrize("status", ["3", "2", "-1", "10", "x", None])
def test_invalid_status_while_waiting(api: Api, status) -> None:
    act_id, _ = api.buy()
    assert api("setStatus", id=act_id, status=status) == "BAD_STATUS"


@pytest.mark.parametrize("action", ["getStatus", "setStatus", "getStatusV2"])
def test_activation_id_errors(api: Api, action) -> None:
    assert api(action, id="abc", status=8) == "WRONG_ACTIVATION_ID"
    assert api(action, status=8) == "WRONG_ACTIVATION_ID"
    assert api(action, id="3936040354", status=8) == "NO_ACTIVATION"


def test_lifetime_expiry_without_code_cancels_and_refunds(api: Api, control: Control, engine) -> None:
    stock = engine.catalogue.offer(0, "tg").stock
    act_id, _ = api.buy()
    control.advance(1199)
    assert api("getStatus", id=act_id) == "STATUS_WAIT_CODE"
    control.advance(2)
    assert api("getStatus", id=act_id) == "STATUS_CANCEL"
    assert api.balance() == Decimal("100.00")
    assert engine.catalogue.offer(0, "tg").stock == stock
    assert api.json("getActiveActivations") == {"status": "error", "error": "NO_ACTIVATIONS"}
    refunds = [e for e in control.state()["ledger"] if e["kind"] == "refund"]
    assert [e["amount"] for e in refunds] == ["0.25"]


def test_lifetime_expiry_with_code_finishes(api: Api, control: Control) -> None:
    act_id, _ = api.buy()
    control.sms(act_id, "999999")
    control.advance(1300)
    assert api("getStatus", id=act_id) == "STATUS_CANCEL"
    assert api.balance() == Decimal("99.75")
    (entry,) = [a for a in control.state()["activations"] if a["id"] == act_id]
    assert (entry["state"], entry["end_reason"]) == ("FINISHED", "expired_with_code")


def test_ledger_arithmetic_over_many_operations(api: Api, control: Control) -> None:
    ids = [api.buy(s)[0] for s in ("tg", "wa", "vk", "go")]      # 0.25 + 0.40 + 0.12 + 0.105
    assert api.balance() == Decimal("99.125")
    assert api("getBalance") == "ACCESS_BALANCE:99.125"
    control.advance(130)
    api("setStatus", id=ids[0], status=8)                          # +0.25
    control.sms(ids[1])
    api("setStatus", id=ids[1], status=6)                          # kept
    control.advance(2000)                                          # vk, go expire: +0.12 +0.105
    assert api.balance() == Decimal("99.60")
    st = control.state()
    assert Decimal(st["ledger"][-1]["balance_after"]) == Decimal("99.60")
    assert sum(Decimal(e["amount"]) for e in st["ledger"]) == Decimal("-0.40")


def test_get_status_v2_shapes(api: Api, control: Control) -> None:
    act_id, _ = api.buy()
    assert api.json("getStatusV2", id=act_id) == {"verificationType": 0, "sms": None, "call": None}
    control.sms(act_id, "424242", text="Your code is 424242")
    body = api.json("getStatusV2", id=act_id)
    assert body["sms"]["code"] == "424242" and body["sms"]["text"] == "Your code is 424242"
    assert len(body["sms"]["dateTime"]) == 19
    control.advance(5000)
    assert api("getStatusV2", id=act_id) == "STATUS_CANCEL"


def test_get_active_activations_entries(api: Api, control: Control) -> None:
    act_id, phone = api.buy("tg")
    control.sms(act_id, "123123", text="Code 123123")
    (entry,) = api.json("getActiveActivations")["activeActivations"]
    assert entry["activationId"] == act_id and entry["phoneNumber"] == phone
    assert entry["smsCode"] == ["123123"] and entry["smsText"] == "[Code 123123]"
    assert entry["countryCode"] == "0" and entry["currency"] == 840 and entry["orderId"] is None
    assert entry["activationStatus"] == "2"


def test_get_history(api: Api, control: Control) -> None:
    a, _ = api.buy("tg")
    b, _ = api.buy("wa")
    control.sms(b, "1", text="hello 1")
    api("setStatus", id=b, status=6)
    rows = api.json("getHistory")
    assert [str(r["id"]) for r in rows] == [b, a]                 # newest first
    assert rows[0]["cost"] == 0.4 and rows[0]["status"] == "6" and rows[0]["sms"] == ["hello 1"]
    assert rows[1]["cost"] == 0 and rows[1]["status"] == "4"
    assert len(api.json("getHistory", limit=1)) == 1
    assert [str(r["id"]) for r in api.json("getHistory", offset=1)] == [a]
    assert api("getHistory", start="yesterday") == "WRONG_DATE"
    assert api("getHistory", start=0, end=40 * 86400) == "WRONG_DATE"


def test_get_full_sms(api: Api, control: Control) -> None:
    act_id, _ = api.buy()
    assert api("getFullSms", id=act_id) == "STATUS_WAIT_CODE"
    control.sms(act_id, "5", text="Full: text 5")
    assert api("getFullSms", id=act_id) == "FULL_SMS:Full: text 5"


# -- multi-service --------------------------------------------------------------------------------------------
def test_multi_service_one_phone(api: Api) -> None:
    body = api.json("getMultiServiceNumber", multiService="tg,vk,ok", multiForward="0,1,0")
    assert [e["service"] for e in body] == ["tg", "vk", "ok"]
    assert len({e["phone"] for e in body}) == 1
    assert all(int(e["activation"]) > 2**31 for e in body)
    assert api.balance() == Decimal("100") - Decimal("0.25") - Decimal("0.18") - Decimal("0.10")


@pytest.mark.parametrize("params,answer", [
    ({"multiService": "tg,nope"}, "BAD_SERVICE"),
    ({"multiService": "tg,tg"}, "BAD_SERVICE"),
    ({"multiService": "tg,vk,ok", "forward": "0,1,1"}, "BAD_FORWARD"),
    ({"multiService": "tg,vk", "country": "16"}, "NOT_AVAILABLE"),
])
def test_multi_service_errors(api: Api, params, answer) -> None:
    assert api("getMultiServiceNumber", **params) == answer


def test_multi_service_no_balance_buys_nothing(api: Api, control: Control, engine) -> None:
    control.settings(balance="0.30")
    assert api("getMultiServiceNumber", multiService="tg,wa") == "NO_BALANCE"
    assert engine.activations == {}


# -- calls ----------------------------------------------------------------------------------------------------
def test_call_verification(api: Api, control: Control) -> None:
    act_id, _ = api.buy("tg", activationType=1)
    assert api.json("getIncomingCallStatus", activationId=act_id) == {"status": "2", "phone": False}
    control.post("call", {"activation_id": act_id, "from": "79001234567"})
    assert api.json("getIncomingCallStatus", id=act_id) == {"status": "2", "phone": "79001234567"}
    assert api("getStatus", id=act_id) == "STATUS_OK:4567"
    v2 = api.json("getStatusV2", id=act_id)
    assert v2["verificationType"] == 1 and v2["call"]["from"] == "79001234567" and v2["call"]["code"] == "4567"
    assert api("setStatus", id=act_id, status=8) == "BAD_STATUS"
    assert api("setStatus", id=act_id, status=6) == "ACCESS_ACTIVATION"
    assert api.json("getIncomingCallStatus", activationId=act_id)["status"] == "3"


def test_incoming_call_status_errors(api: Api) -> None:
    act_id, _ = api.buy("tg")
    assert api("getIncomingCallStatus", activationId=act_id) == "NOT_INCOMING"
    assert api("getIncomingCallStatus", activationId="1") == "INVALID_ACTIVATION_ID"


def test_parse_call(api: Api, control: Control) -> None:
    act_id, _ = api.buy("tg", activationType=2, language="en")
    assert api("parseCall", id=act_id, newLang="ru") == "NO_CALL"
    control.post("call", {"activation_id": act_id, "code": "77777"})
    assert api.json("getStatusV2", id=act_id)["call"]["url"].startswith("https:")
    assert [api("parseCall", id=act_id, newLang="ru") for _ in range(4)] == ['{"result":"OK"}'] * 3 + [
        "PARSE_COUNT_EXCEED"]
    assert api("parseCall", id="x") == "WRONG_ACTIVATION_ID"


# -- extra and additional -------------------------------------------------------------------------------------
def test_extra_activation(api: Api, control: Control) -> None:
    act_id, phone = api.buy("tg")
    assert api("checkExtraActivation", activationId=act_id) == "RENEW_ACTIVATION_NOT_AVAILABLE"
    control.sms(act_id)
    api("setStatus", id=act_id, status=6)
    info = api.json("checkExtraActivation", activationId=act_id)
    assert info == {"status": "success", "cost": 0.2, "service": "tg", "phone": int(phone), "country": 0}
    token, new_id, new_phone = api("getExtraActivation", activationId=act_id).split(":")
    assert token == "ACCESS_NUMBER" and new_phone == phone and new_id != act_id
    assert api("getExtraActivation", activationId=act_id) == "NEW_ACTIVATION_IMPOSSIBLE"
    assert api("getExtraActivation", activationId="abc") == "WRONG_ACTIVATION_ID"


def test_additional_service(api: Api, control: Control) -> None:
    act_id, phone = api.buy("vk", forward=1)
    assert api("getAdditionalService", id=act_id, service="ok") == "WRONG_SECURITY"
    control.sms(act_id)
    assert api("getAdditionalService", id=act_id, service="tg") == "WRONG_ADDITIONAL_SERVICE"
    token, new_id, new_phone = api("getAdditionalService", id=act_id, service="ok").split(":")
    assert token == "ADDITIONAL" and new_phone == phone
    assert api("getAdditionalService", id=act_id, service="ok") == "REPEAT_ADDITIONAL_SERVICE"
    plain_id, _ = api.buy("vk")
    control.sms(plain_id)
    assert api("getAdditionalService", id=plain_id, service="ok") == "WRONG_SECURITY"
