"""Every success shape (docs/handler-api.md) → the right typed result, with the tolerance rules of its Data types
section and the variants real answers show (unsuffixed counts, numbers as strings, phones as numbers, ISO dates,
states sent as errors)."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from provider import models as M
from provider import errors as E
from provider.parsing import parse_response, read_answer


# ------------------------------------------------------------------ plain answers
@pytest.mark.parametrize("body,amount", [
    ("ACCESS_BALANCE:17.154", Decimal("17.154")),
    ("ACCESS_BALANCE: 9999", Decimal("9999")),             # therepanic emulator spacing
    ("ACCESS_BALANCE:'100.50'", Decimal("100.50")),        # the documentation's quotes
    ("\ufeffACCESS_BALANCE:0\r\n", Decimal("0")),
])
def test_balance(body, amount):
    for action in ("getBalance", "getBalanceAndCashBack"):
        result = parse_response(action, body)
        assert isinstance(result, M.Balance) and result.amount == amount


@pytest.mark.parametrize("body,activation_id,phone", [
    ("ACCESS_NUMBER:3936040355:6285872391152", "3936040355", "6285872391152"),   # id > 2^31
    ("ACCESS_NUMBER: 1: 79990000000", "1", "79990000000"),                       # spaces (therepanic)
    ("ACCESS_NUMBER:'8601705018416664':'+79991112233'", "8601705018416664", "79991112233"),
])
def test_get_number_plain(body, activation_id, phone):
    result = parse_response("getNumber", body)
    assert isinstance(result, M.Activation)
    assert (result.activation_id, result.phone) == (activation_id, phone)
    assert isinstance(result.activation_id, str)


def test_get_extra_and_additional_share_the_activation_type():
    extra = parse_response("getExtraActivation", "ACCESS_NUMBER:635468099:79990000001")
    additional = parse_response("getAdditionalService", "ADDITIONAL:635468100:79990000001")
    assert isinstance(extra, M.Activation) and isinstance(additional, M.Activation)
    assert additional.activation_id == "635468100" and additional.phone == "79990000001"


def test_get_number_v2_json_documented_example():
    body = ('{"activationId":635468024,"phoneNumber":"79584******","activationCost":12.50,"currency":840,'
            '"countryCode":"0","canGetAnotherSms":"1","activationTime":"2022-06-01 17:30:57",'
            '"activationOperator":"mtt"}')
    a = parse_response("getNumberV2", body)
    assert a == M.Activation(activation_id="635468024", phone="79584******", cost=Decimal("12.50"), currency=840,
                             country="0", can_get_another_sms=True,
                             activation_time=datetime(2022, 6, 1, 17, 30, 57), operator="mtt")
    assert a.raw["activationOperator"] == "mtt"


def test_get_number_v2_dialect_additions():
    hero = parse_response("getNumberV2", '{"activationId":"1","phoneNumber":79990000000,"activationCost":"0.2",'
                                         '"countryPhoneCode":7,"activationEndTime":"2026-09-08T10:15:30.000000Z",'
                                         '"canGetAnotherSms":true}')
    assert hero.phone == "79990000000" and hero.cost == Decimal("0.2") and hero.country_phone_code == "7"
    assert hero.end_time == datetime(2026, 9, 8, 10, 15, 30, tzinfo=timezone.utc)
    grizzly = parse_response("getNumberV2", '{"activationId":2,"phoneNumber":"7999","currency":643,'
                                            '"activationEnd":"2026-01-01 10:20:00",'
                                            '"activationCancel":"2026-01-01T10:02:00"}')
    assert grizzly.end_time == datetime(2026, 1, 1, 10, 20) and grizzly.cancel_time == datetime(2026, 1, 1, 10, 2)
    assert grizzly.currency == 643


def test_get_number_v2_bad_date_gives_none_not_crash():
    a = parse_response("getNumberV2", '{"activationId":1,"phoneNumber":"7","activationTime":"0000-00-00 00:00:00",'
                                      '"activationEndTime":"soon","activationCost":"n/a"}')
    assert a.activation_time is None and a.end_time is None and a.cost is None


def test_get_number_v2_errors_are_plain_text():
    with pytest.raises(E.NoNumbers):
        parse_response("getNumberV2", "NO_NUMBERS")


def test_get_number_and_v2_tolerate_each_others_shape():
    assert parse_response("getNumberV2", "ACCESS_NUMBER:5:7999").activation_id == "5"
    assert parse_response("getNumber", '{"activationId":5,"phoneNumber":"7999"}').activation_id == "5"


def test_multi_service_number_array_and_meaning():
    body = ('[{"phone":"79999999999","activation":"635468024","service":"ok"},'
            '{"phone":79999999999,"activation":635468025,"service":"vk"}]')
    result = parse_response("getMultiServiceNumber", body)
    assert [(a.activation_id, a.phone, a.service) for a in result] == [
        ("635468024", "79999999999", "ok"), ("635468025", "79999999999", "vk")]


@pytest.mark.parametrize("body,token", [
    ("ACCESS_READY", "ACCESS_READY"), ("ACCESS_RETRY_GET", "ACCESS_RETRY_GET"),
    ("ACCESS_ACTIVATION", "ACCESS_ACTIVATION"), ("ACCESS_CANCEL\n", "ACCESS_CANCEL"),
])
def test_set_status_tokens(body, token):
    assert parse_response("setStatus", body) == token


def test_set_status_204():
    assert parse_response("setStatus", "", 204, accept_204=True) == ""
    with pytest.raises(E.UnexpectedAnswer):
        parse_response("setStatus", "", 204, accept_204=False)


@pytest.mark.parametrize("body,state,code", [
    ("STATUS_WAIT_CODE", M.ActivationState.WAIT_CODE, None),
    ("STATUS_WAIT_RETRY:123456", M.ActivationState.WAIT_RETRY, "123456"),
    ("STATUS_WAIT_RETRY:'12 34'", M.ActivationState.WAIT_RETRY, "12 34"),
    ("STATUS_WAIT_RESEND", M.ActivationState.WAIT_RESEND, None),
    ("STATUS_CANCEL", M.ActivationState.CANCELLED, None),
    ("STATUS_OK:123456", M.ActivationState.CODE_RECEIVED, "123456"),
    ("STATUS_OK: '123456'", M.ActivationState.CODE_RECEIVED, "123456"),        # the documentation's form
    ("STATUS_OK:G-123:456", M.ActivationState.CODE_RECEIVED, "G-123:456"),     # codes can contain ':'
    ('"STATUS_OK:777"', M.ActivationState.CODE_RECEIVED, "777"),
])
def test_get_status(body, state, code):
    result = parse_response("getStatus", body)
    assert result == M.StatusResult(state=state, code=code)


def test_get_status_v2_json():
    body = ('{"verificationType":2,"sms":{"dateTime":"2022-06-01 17:30:57","code":"code","text":"sms text"},'
            '"call":{"from":"79990000000","text":"voice text","code":"12345","dateTime":"0000-00-00 00:00:00",'
            '"url":null,"parsingCount":1}}')
    v2 = parse_response("getStatusV2", body)
    assert v2.state is M.ActivationState.CODE_RECEIVED and v2.verification_type == 2
    assert v2.sms == M.SmsInfo(code="code", text="sms text", date_time=datetime(2022, 6, 1, 17, 30, 57))
    assert v2.call == M.CallInfo(from_number="79990000000", text="voice text", code="12345", date_time=None,
                                 url=None, parsing_count=1)
    assert v2.code == "code"


def test_get_status_v2_trailing_commas_of_the_documented_example_are_forgiven():
    body = '{"verificationType":0,"sms":{"dateTime":"2022-06-01 17:30:57","code":"1","text":"t",},"call":null}'
    assert parse_response("getStatusV2", body).code == "1"


@pytest.mark.parametrize("body,state,code", [
    ('{"verificationType":0,"sms":null,"call":null}', M.ActivationState.WAIT_CODE, None),
    ('{"verificationType":0}', M.ActivationState.WAIT_CODE, None),
    ("STATUS_CANCEL", M.ActivationState.CANCELLED, None),
    ('{"status":"error","message":"STATUS_CANCEL"}', M.ActivationState.CANCELLED, None),
    ("STATUS_WAIT_CODE", M.ActivationState.WAIT_CODE, None),
    ("STATUS_OK:4242", M.ActivationState.CODE_RECEIVED, "4242"),
])
def test_get_status_v2_waiting_and_plain_states(body, state, code):
    v2 = parse_response("getStatusV2", body)
    assert v2.state is state and v2.code == code


def test_get_status_v2_errors_still_raise():
    with pytest.raises(E.NoActivation):
        parse_response("getStatusV2", "NO_ACTIVATION")


def test_active_activations_documented_shape():
    body = ('{"status":"success","activeActivations":[{"activationId":"635468021","serviceCode":"vk",'
            '"phoneNumber":"79********1","activationCost":12.50,"activationStatus":"4","smsCode":["CODE"],'
            '"smsText":"[Ваш код для регистрации CODE]","activationTime":"2022-06-01 16:59:16","discount":"0.00",'
            '"repeated":"0","countryCode":"0","countryName":"Russia","canGetAnotherSms":"1","currency":840}]}')
    [row] = parse_response("getActiveActivations", body)
    assert row.activation_id == "635468021" and row.service == "vk" and row.phone == "79********1"
    assert row.codes == ("CODE",) and row.status == "4" and row.cost == Decimal("12.50")
    assert row.activation_time == datetime(2022, 6, 1, 16, 59, 16) and row.can_get_another_sms is True
    assert row.country == "0" and row.currency == 840 and row.order_id is None


def test_active_activations_herosms_data_first_and_null_codes():
    body = ('{"status":"success","data":[{"activationId":1,"serviceCode":"tg","phoneNumber":7999,'
            '"smsCode":null,"smsText":null,"activationStatus":3,"orderId":"o-1"}],'
            '"activeActivations":{"rows":[]}}')
    [row] = parse_response("getActiveActivations", body)
    assert row.activation_id == "1" and row.codes == () and row.text is None and row.order_id == "o-1"
    assert row.status == "3"


@pytest.mark.parametrize("body", [
    '{"status":"error","error":"NO_ACTIVATIONS"}', "NO_ACTIVATIONS", '{"status":"success","activeActivations":[]}',
])
def test_no_activations_is_empty_list(body):
    assert parse_response("getActiveActivations", body) == []


def test_history():
    body = ('[{"id":635468024,"date":"2022-11-12 15:58:39","phone":"79918529716","sms":["Your sms code"],'
            '"cost":100,"status":"4","currency":840},{"id":"2","date":"bad","phone":null,"sms":null,"cost":"0"}]')
    first, second = parse_response("getHistory", body)
    assert first == M.HistoryEntry(activation_id="635468024", date=datetime(2022, 11, 12, 15, 58, 39),
                                   phone="79918529716", sms=("Your sms code",), cost=Decimal(100), status="4",
                                   currency=840)
    assert second.date is None and second.sms == () and second.cost == Decimal(0)
    # the documented example's string-encoded list
    [row] = parse_response("getHistory", '[{"id":1,"sms":"[\\"a\\",\\"b\\"]"}]')
    assert row.sms == ("a", "b")


@pytest.mark.parametrize("body,counts,forward", [
    ('{"vk_0":76,"ok_0":139,"wa_0":90,"av_1":211,"fb_0":107}',
     {"vk": 76, "ok": 139, "wa": 90, "fb": 107}, {"av": 211}),
    ('{"wa":"828","tg":"498","go":"0"}', {"wa": 828, "tg": 498, "go": 0}, {}),          # live: unsuffixed
    ('{"wa":90,"tg_1":"3","x":"n/a"}', {"wa": 90}, {"tg": 3}),
    ("{}", {}, {}),
])
def test_numbers_status_normalised(body, counts, forward):
    result = parse_response("getNumbersStatus", body)
    assert dict(result.counts) == counts and dict(result.forward_counts) == forward


def test_top_countries():
    body = ('{"0":{"country":0,"count":43575,"price":15.00,"retail_price":30.00,'
            '"freePriceMap":{"15.00":43242,"18.00":333}},"1":{"retail_price":0.2,"country":6,"price":0.105,'
            '"count":4393}}')
    for action in ("getTopCountriesByService", "getTopCountriesByServiceRank"):
        first, second = parse_response(action, body)
        assert first.country == "0" and first.price == Decimal("15.00") and first.count == 43575
        assert first.free_price_map == {Decimal("15.00"): 43242, Decimal("18.00"): 333}
        assert second.price == Decimal("0.105") and second.retail_price == Decimal("0.2")


def test_operators_and_not_found():
    ops = parse_response("getOperators", '{"status":"success","countryOperators":{"0":["beeline","megafon"],'
                                         '"1":["life"]}}')
    assert ops.for_country(0) == ("beeline", "megafon") and ops.for_country("1") == ("life",)
    empty = parse_response("getOperators", '{"status":"error","error":"OPERATORS_NOT_FOUND"}')
    assert dict(empty.by_country) == {}


def test_list_of_top_countries_strings_and_numbers():
    result = parse_response("getListOfTopCountriesByService",
                            '[{"country":0,"share":50,"rate":50},{"country":"6","share":"29.74","rate":"61.73"}]')
    assert result == [M.CountryShare("0", Decimal(50), Decimal(50)),
                      M.CountryShare("6", Decimal("29.74"), Decimal("61.73"))]


def test_incoming_call_status():
    result = parse_response("getIncomingCallStatus", '{"status":"2","phone":false}')
    assert result.status == 2 and result.phone is None
    assert parse_response("getIncomingCallStatus", '{"status":3,"phone":79990000000}').phone == "79990000000"


def test_prices_and_verification_index_country_service():
    prices = parse_response("getPrices", '{"0":{"tg":{"cost":0.5,"count":100,"physicalCount":0}},'
                                         '"6":{"wa":{"cost":"1.25","count":"56964","physicalCount":"0"}}}')
    assert prices.get(0, "tg") == M.Price(country="0", service="tg", cost=Decimal("0.5"), count=100,
                                          physical_count=0)
    assert prices.get("6", "wa").count == 56964 and len(prices) == 2
    assert len(parse_response("getPrices", "{}")) == 0
    verification = parse_response("getPricesVerification", '{"tg":{"0":{"count":10,"price":"12.50"}}}')
    assert verification.get(0, "tg").cost == Decimal("12.50")
    extended = parse_response("getPricesExtended", '{"0":{"tg":{"cost":1,"count":2,"freePriceMap":{"1.5":3}}}}')
    assert extended.get(0, "tg").free_price_map == {Decimal("1.5"): 3}


def test_countries_object_list_and_mismatched_keys():
    body = ('{"0":{"id":0,"rus":"Россия","eng":"Russia","chn":"俄罗斯","visible":1,"retry":1,"rent":1,'
            '"multiService":1},"31":{"id":48,"eng":"X","visible":"0"}}')
    russia, other = parse_response("getCountries", body)
    assert russia.id == "0" and russia.eng == "Russia" and russia.multi_service is True
    assert other.id == "48" and other.visible is False            # index by id, not by key
    vak = parse_response("getCountries", '[{"id":1,"eng":"Ukraine"}]')   # VakSMS list
    assert vak[0].id == "1"


def test_services_list():
    result = parse_response("getServicesList",
                            '{"status":"success","services":[{"code":"aoo","name":"Pegasus Airlines"}]}')
    assert result == [M.Service("aoo", "Pegasus Airlines")]


def test_check_extra_activation():
    offer = parse_response("checkExtraActivation",
                           '{"status":"success","cost":200,"service":"tw","phone":777777777,"country":14}')
    assert offer.cost == Decimal(200) and offer.phone == "777777777" and offer.country == "14"


@pytest.mark.parametrize("body,state", [
    ('{"result":"OK"}', M.ParseCallState.OK),
    ("STATUS_CANCEL", M.ParseCallState.CANCELLED),
    ("NO_CALL", M.ParseCallState.NO_CALL),
    ('{"status":"error","message":"NO_CALL"}', M.ParseCallState.NO_CALL),
])
def test_parse_call_states_are_results(body, state):
    assert parse_response("parseCall", body).state is state


def test_rent_catalogue():
    body = ('{"countries":{"0":0},"operators":{"0":"aiva","1":"any","2":"beeline"},'
            '"services":{"full":{"cost":42.93,"quant":20},"vk":{"cost":21.95,"quant":"20"}},"currency":840}')
    cat = parse_response("getRentServicesAndCountries", body)
    assert cat.countries == ("0",) and cat.operators == ("aiva", "any", "beeline") and cat.currency == 840
    assert cat.services["vk"] == M.RentServicePrice(Decimal("21.95"), 20)


def test_rent_number_and_continue():
    body = '{"status":"success","phone":{"id":1049,"endDate":"2020-01-31T12:01:52","number":"79959707564"}}'
    for action in ("getRentNumber", "continueRentNumber"):
        rent = parse_response(action, body)
        assert rent == M.Rent(rent_id="1049", phone="79959707564", end_date=datetime(2020, 1, 31, 12, 1, 52))


def test_rent_status_messages():
    body = ('{"status":"success","quantity":"2","values":{"0":{"phoneFrom":"79180230628","text":"5",'
            '"service":"ot","date":"2020-01-30 14:31:58"},"1":{"phoneFrom":"SPORTMASTER","text":"Код 2792",'
            '"service":"ot","date":"2020-01-30 14:32:00"}}}')
    status = parse_response("getRentStatus", body)
    assert status.state is M.RentState.ACTIVE and status.quantity == 2
    assert [s.phone_from for s in status.messages] == ["79180230628", "SPORTMASTER"]
    assert status.messages[0].date == datetime(2020, 1, 30, 14, 31, 58)


@pytest.mark.parametrize("message,state", [
    ("STATUS_WAIT_CODE", M.RentState.WAIT_CODE), ("STATUS_FINISH", M.RentState.FINISHED),
    ("STATUS_CANCEL", M.RentState.CANCELLED), ("STATUS_REVOKE", M.RentState.REVOKED),
])
def test_rent_states_sent_as_errors_are_results(message, state):
    status = parse_response("getRentStatus", f'{{"status":"error","message":"{message}"}}')
    assert status.state is state and status.messages == ()


def test_rent_state_envelope_elsewhere_is_a_typed_error():
    with pytest.raises(E.RentFinished):
        parse_response("continueRentNumber", '{"status":"error","message":"STATUS_FINISH"}')


def test_set_rent_status_and_list():
    assert parse_response("setRentStatus", '{"status":"success"}') is True
    items = parse_response("getRentList", '{"status":"success","values":{"0":{"id":"12345","phone":"79181234567"},'
                                          '"1":{"id":6,"phone":7918}}}')
    assert items == [M.RentListItem("12345", "79181234567"), M.RentListItem("6", "7918")]
    assert parse_response("getRentList", '{"status":"error","message":"NO_NUMBERS"}') == []


def test_rent_prices():
    price = parse_response("getContinueRentPriceNumber", '{"status":"success","price":6.33,"currency":840}')
    assert price.price == Decimal("6.33") and price.currency == 840
    info = parse_response("continueRentInfo", '{"status":"success","price":6.33,"currency":840,"hours":4,'
                                              '"history":{"0":{"createDate":"2024-10-07 12:10:47","price":"101.9",'
                                              '"hours":4}}}')
    assert info.hours == 4 and info.history[0].price == Decimal("101.9")
    assert info.history[0].create_date == datetime(2024, 10, 7, 12, 10, 47)


def test_partner_product():
    product = parse_response("buyPartnerProduct",
                             '{"status":"success","key":"F5qrzFoY6afj3zrEq7SeMplbx","manual":"Ссылка:"}')
    assert product.key == "F5qrzFoY6afj3zrEq7SeMplbx"


def test_generic_returns_text_or_json():
    assert parse_response("getFullSms", "FULL_SMS:hello: world", generic=True) == "FULL_SMS:hello: world"
    assert parse_response("getPricesV2", '{"a":1}', generic=True) == {"a": 1}
    with pytest.raises(E.BadKey):
        parse_response("whatever", "BAD_KEY", generic=True)


@pytest.mark.parametrize("body,kind", [
    ('  {"a":1}', "json"), ("\n[1]", "json"), ("ACCESS_READY", "plain"), ("", "empty"), ("   ", "empty"),
    ("{nope", "malformed"), ('{"status":"error","error":"X"}', "error"), ('{"title":"X","details":"y"}', "error"),
])
def test_body_sniffing_ignores_content_type(body, kind):
    assert read_answer(body).kind == kind


def test_prices_are_exact_decimals_not_floats():
    a = parse_response("getNumberV2", '{"activationId":1,"phoneNumber":"7","activationCost":0.1}')
    assert a.cost == Decimal("0.1") and str(a.cost) == "0.1"
