"""Every error envelope (docs/handler-api.md, Errors) and every documented code → the right exception, code and
argument.

Bodies follow the documented examples, including the real-but-sloppy variants (spaces,
quotes, HTTP 4xx with plain codes, HeroSMS titles, aliases).
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from provider import errors as E
from provider.parsing import parse_response

# (action, body, http status, expected class, expected .code, expected .argument)
ENVELOPES = [
    # 1. plain token
    ("getBalance", "BAD_KEY", 200, E.BadKey, "BAD_KEY", None),
    ("getNumber", "NO_NUMBERS", 200, E.NoNumbers, "NO_NUMBERS", None),
    ("getNumber", "NO_BALANCE\n", 200, E.NoBalance, "NO_BALANCE", None),
    ("getNumber", "  NO_KEY  ", 200, E.NoKey, "NO_KEY", None),
    ("getBalance", "ERROR_SQL", 200, E.SqlError, "ERROR_SQL", None),
    ("getNumber", "CHANNELS_LIMIT", 200, E.ChannelsLimit, "CHANNELS_LIMIT", None),
    ("getNumber", "BAD_SERVICE", 200, E.BadService, "BAD_SERVICE", None),
    ("getNumber", "WRONG_EXCEPTION_PHONE", 200, E.WrongExceptionPhone, "WRONG_EXCEPTION_PHONE", None),
    ("getNumber", "NO_BALANCE_FORWARD", 200, E.NoBalanceForward, "NO_BALANCE_FORWARD", None),
    ("getNumber", "ACCOUNT_INACTIVE", 200, E.AccountInactive, "ACCOUNT_INACTIVE", None),
    ("getNumber", "SERVICE_UNAVAILABLE_REGION", 200, E.RegionRestricted, "SERVICE_UNAVAILABLE_REGION", None),
    ("getNumber", "The service is prohibited for sale by administration", 200, E.ServiceProhibited,
     "SERVICE_PROHIBITED", None),
    ("getNumberV2", "ORDER_ALREADY_EXISTS", 200, E.OrderAlreadyExists, "ORDER_ALREADY_EXISTS", None),
    ("setStatus", "EARLY_CANCEL_DENIED", 200, E.EarlyCancelDenied, "EARLY_CANCEL_DENIED", None),
    ("setStatus", "NO_ACTIVATION", 200, E.NoActivation, "NO_ACTIVATION", None),
    ("setStatus", "BAD_STATUS", 200, E.BadStatus, "BAD_STATUS", None),
    ("setStatus", "WRONG_ACTIVATION_ID", 200, E.WrongActivationId, "WRONG_ACTIVATION_ID", None),
    ("getStatus", "NO_ACTIVATION", 200, E.NoActivation, "NO_ACTIVATION", None),
    ("getStatus", "BAD_ACTION", 200, E.BadAction, "BAD_ACTION", None),
    ("getIncomingCallStatus", "INVALID_ACTIVATION_ID", 200, E.InvalidActivationId, "INVALID_ACTIVATION_ID", None),
    ("getIncomingCallStatus", "NOT_INCOMING", 200, E.NotIncoming, "NOT_INCOMING", None),
    ("getMultiServiceNumber", "NOT_AVAILABLE", 200, E.NotAvailable, "NOT_AVAILABLE", None),
    ("getMultiServiceNumber", "BAD_FORWARD", 200, E.BadForward, "BAD_FORWARD", None),
    ("getAdditionalService", "WRONG_ADDITIONAL_SERVICE", 200, E.WrongAdditionalService,
     "WRONG_ADDITIONAL_SERVICE", None),
    ("getAdditionalService", "WRONG_SECURITY", 200, E.WrongSecurity, "WRONG_SECURITY", None),
    ("getAdditionalService", "REPEAT_ADDITIONAL_SERVICE", 200, E.RepeatAdditionalService,
     "REPEAT_ADDITIONAL_SERVICE", None),
    ("getExtraActivation", "RENEW_ACTIVATION_NOT_AVAILABLE", 200, E.RenewActivationNotAvailable,
     "RENEW_ACTIVATION_NOT_AVAILABLE", None),
    ("getExtraActivation", "NEW_ACTIVATION_IMPOSSIBLE", 200, E.NewActivationImpossible,
     "NEW_ACTIVATION_IMPOSSIBLE", None),
    ("checkExtraActivation", "SIM_OFFLINE", 200, E.SimOffline, "SIM_OFFLINE", None),
    ("parseCall", "PARSE_COUNT_EXCEED", 200, E.ParseCountExceed, "PARSE_COUNT_EXCEED", None),
    ("getHistory", "WRONG_DATE", 200, E.WrongDate, "WRONG_DATE", None),
    ("getListOfTopCountriesByService", "WRONG_SERVICE", 200, E.BadService, "BAD_SERVICE", None),
    ("getListOfTopCountriesByService", "NO_METRICS", 200, E.NoMetrics, "NO_METRICS", None),
    ("buyPartnerProduct", "BAD_DATA", 200, E.BadData, "BAD_DATA", None),
    ("getNumber", "WRONG_COUNTRY", 200, E.BadCountry, "BAD_COUNTRY", None),
    ("getNumber", "BAD_OPERATOR", 200, E.WrongOperator, "WRONG_OPERATOR", None),
    ("getNumber", "NO_YULA_MAIL", 200, E.ServiceNotAvailable, "WHATSAPP_NOT_AVAILABLE", None),
    # aliases
    ("getNumber", "NO_MEANS", 200, E.NoBalance, "NO_BALANCE", None),
    ("getNumber", "NO_NUMBER", 200, E.NoNumbers, "NO_NUMBERS", None),
    ("getBalance", "SQL_ERROR", 200, E.SqlError, "ERROR_SQL", None),
    # 2. plain token with an argument (match the prefix, split once, strip quotes/spaces)
    ("getNumber", "WRONG_MAX_PRICE:0.5", 200, E.WrongMaxPrice, "WRONG_MAX_PRICE", "0.5"),
    ("getNumber", "WRONG_MAX_PRICE: '12.40'", 200, E.WrongMaxPrice, "WRONG_MAX_PRICE", "12.40"),
    ("getNumber", "BANNED:'2024-5-1 12-30-00'", 200, E.Banned, "BANNED", "2024-5-1 12-30-00"),
    ("getNumber", "BANNED:2030-12-31 23-59-59", 200, E.Banned, "BANNED", "2030-12-31 23-59-59"),
    ("getListOfTopCountriesByService", "BAD_ACTION: Method Not Found", 404, E.BadAction, "BAD_ACTION",
     "Method Not Found"),
    # privatesms.vip: plain codes with HTTP 4xx/5xx
    ("getBalance", "BAD_KEY", 401, E.BadKey, "BAD_KEY", None),
    ("getNumber", "NO_BALANCE", 402, E.NoBalance, "NO_BALANCE", None),
    ("getStatus", "ERROR_SQL", 500, E.SqlError, "ERROR_SQL", None),
    # 3. JSON, key "error"
    ("getOperators", '{"status":"error","error":"BAD_KEY"}', 200, E.BadKey, "BAD_KEY", None),
    ("getActiveActivations", '{"status":"error","error":"ERROR_SQL"}', 200, E.SqlError, "ERROR_SQL", None),
    ("getNumberV2", '{"error":"NO_NUMBERS"}', 200, E.NoNumbers, "NO_NUMBERS", None),
    # 4. JSON, key "message" (+ info)
    ("getRentNumber", '{"status":"error","message":"NO_NUMBERS"}', 200, E.NoNumbers, "NO_NUMBERS", None),
    ("getRentNumber", '{"status":"error","message":"NO_BALANCE"}', 200, E.NoBalance, "NO_BALANCE", None),
    ("getRentNumber", '{"status":"error","message":"ACCOUNT_INACTIVE"}', 200, E.AccountInactive,
     "ACCOUNT_INACTIVE", None),
    ("getRentNumber", '{"status":"error","message":"SERVER_ERROR"}', 200, E.GenericServerError, "SERVER_ERROR",
     None),
    ("getRentServicesAndCountries", '{"status":"error","message":"OUT_OF_STOCK"}', 200, E.OutOfStock,
     "OUT_OF_STOCK", None),
    ("getRentStatus", '{"status":"error","message":"NO_ID_RENT"}', 200, E.NoIdRent, "NO_ID_RENT", None),
    ("getRentStatus", '{"status":"error","message":"INVALID_PHONE"}', 200, E.InvalidPhone, "INVALID_PHONE", None),
    ("setRentStatus", '{"status":"error","message":"INCORECT_STATUS"}', 200, E.IncorrectStatus, "INCORECT_STATUS",
     None),
    ("setRentStatus", '{"status":"error","message":"CANT_CANCEL"}', 200, E.CantCancel, "CANT_CANCEL", None),
    ("setRentStatus", '{"status":"error","message":"ALREADY_FINISH"}', 200, E.AlreadyFinished, "ALREADY_FINISH",
     None),
    ("setRentStatus", '{"status":"error","message":"ALREADY_CANCEL"}', 200, E.AlreadyCancelled, "ALREADY_CANCEL",
     None),
    ("continueRentNumber", '{"status":"error","message":"INVALID_TIME","info":null}', 200, E.InvalidTime,
     "INVALID_TIME", None),
    ("continueRentNumber", '{"status":"error","message":"MAX_HOURS_EXCEED","info":{"max":1344}}', 200,
     E.MaxHoursExceed, "MAX_HOURS_EXCEED", None),
    ("continueRentNumber", '{"status":"error","message":"RENT_DIE"}', 200, E.RentDie, "RENT_DIE", None),
    ("continueRentNumber", '{"status":"error","message":"CHANNELS_LIMIT"}', 200, E.ChannelsLimit,
     "CHANNELS_LIMIT", None),
    ("buyPartnerProduct", '{"status":"error","message":"BAD_DATA"}', 200, E.BadData, "BAD_DATA", None),
    # 5. HeroSMS title JSON with 4xx
    ("getBalance", '{"title":"BAD_KEY","details":"Invalid API key","info":{}}', 401, E.BadKey, "BAD_KEY",
     "Invalid API key"),
    ("setStatus", '{"title":"EARLY_CANCEL_DENIED","details":"too early","info":{"minActivationTime":120}}', 409,
     E.EarlyCancelDenied, "EARLY_CANCEL_DENIED", "too early"),
    ("setStatus", '{"title":"FREE_CANCELLATION_EXPIRED","details":"20 minutes"}', 409, E.FreeCancellationExpired,
     "FREE_CANCELLATION_EXPIRED", "20 minutes"),
    ("setStatus", '{"title":"OTP_RECEIVED","details":"code arrived"}', 409, E.OtpReceived, "OTP_RECEIVED",
     "code arrived"),
    ("setStatus", '{"title":"NEW_OTP_RECEIVED","details":"x"}', 409, E.NewOtpReceived, "NEW_OTP_RECEIVED", "x"),
    ("setStatus", '{"title":"ACTIVATION_NOT_ACTIVE","details":"x"}', 422, E.ActivationNotActive,
     "ACTIVATION_NOT_ACTIVE", "x"),
    ("getNumberV2", '{"title":"NO_BALANCE","details":"Not enough funds"}', 402, E.NoBalance, "NO_BALANCE",
     "Not enough funds"),
    ("getNumberV2", '{"title":"CHANNELS_LIMIT","details":"x","info":{"current_threads":10,"max_allowed":10}}', 403,
     E.ChannelsLimit, "CHANNELS_LIMIT", "x"),
    ("getStatus", '{"title":"NO_ACTIVATION","details":"Not found"}', 404, E.NoActivation, "NO_ACTIVATION",
     "Not found"),
    ("getPrices", '{"title":"ERROR_SQL","details":"db"}', 500, E.SqlError, "ERROR_SQL", "db"),
    ("getPrices", '{"title":"RATE_LIMIT","details":"slow down"}', 429, E.RateLimited, "RATE_LIMIT", "slow down"),
    ("getNumber", "CURRENCY_CHANGE_UNAVAILABLE", 200, E.CurrencyChangeUnavailable,
     "CURRENCY_CHANGE_UNAVAILABLE", None),
]


@pytest.mark.parametrize("action,body,status,cls,code,argument", ENVELOPES,
                         ids=[f"{a}-{b[:30]}-{s}" for a, b, s, *_ in ENVELOPES])
def test_envelope_maps_to_typed_error(action, body, status, cls, code, argument):
    with pytest.raises(cls) as info:
        parse_response(action, body, status)
    err = info.value
    assert type(err) is cls
    assert err.code == code
    assert err.argument == argument
    assert err.http_status == status
    assert err.action == action
    assert err.body == body[:500]


FAMILIES = [
    (E.SqlError, E.TransientError), (E.GenericServerError, E.TransientError), (E.ChannelsLimit, E.TransientError),
    (E.RateLimited, E.TransientError), (E.ServerError, E.TransientError), (E.ReadTimeout, E.TransientError),
    (E.NoNumbers, E.BusinessError), (E.NoBalance, E.BusinessError), (E.WrongMaxPrice, E.BusinessError),
    (E.EarlyCancelDenied, E.BusinessError), (E.OrderAlreadyExists, E.BusinessError),
    (E.NoActivation, E.BusinessError), (E.BadStatus, E.BusinessError),
    (E.BadKey, E.FatalError), (E.NoKey, E.FatalError), (E.Banned, E.FatalError), (E.BadService, E.FatalError),
    (E.BadAction, E.FatalError), (E.NotSupported, E.FatalError),
]


@pytest.mark.parametrize("cls,family", FAMILIES, ids=[c.__name__ for c, _ in FAMILIES])
def test_error_families(cls, family):
    assert issubclass(cls, family)
    assert issubclass(cls, E.ProviderError)
    assert cls.transient is (family is E.TransientError)


def test_wrong_max_price_min_price_is_decimal():
    with pytest.raises(E.WrongMaxPrice) as info:
        parse_response("getNumberV2", "WRONG_MAX_PRICE:12.40")
    assert info.value.min_price == Decimal("12.40")
    assert isinstance(info.value.min_price, Decimal)


def test_wrong_max_price_from_title_info():
    body = '{"title":"WRONG_MAX_PRICE","details":"too low","info":{"minPrice":"0.35"}}'
    with pytest.raises(E.WrongMaxPrice) as info:
        parse_response("getNumberV2", body, 400)
    assert info.value.min_price == Decimal("0.35")


def test_wrong_max_price_unreadable_min_is_none():
    with pytest.raises(E.WrongMaxPrice) as info:
        parse_response("getNumber", "WRONG_MAX_PRICE:abc")
    assert info.value.min_price is None


@pytest.mark.parametrize("body,until", [
    ("BANNED:'2024-5-1 12-30-00'", datetime(2024, 5, 1, 12, 30, 0)),
    ("BANNED:2024-05-01 12:30:00", datetime(2024, 5, 1, 12, 30, 0)),
    ("BANNED:'YYYY-m-d H-i-s'", None),
    ("BANNED", None),
    ("BANNED:2024-13-45 99-99-99", None),
])
def test_banned_until_is_lenient(body, until):
    with pytest.raises(E.Banned) as info:
        parse_response("getNumber", body)
    assert info.value.until == until


def test_title_envelope_arguments_from_info():
    with pytest.raises(E.Banned) as info:
        parse_response("getNumber", '{"title":"BANNED","details":"BANNED","info":{"value":"2030-1-2 3-4-5"}}', 403)
    assert info.value.until == datetime(2030, 1, 2, 3, 4, 5)
    with pytest.raises(E.WrongMaxPrice) as info2:
        parse_response("getNumber", '{"title":"WRONG_MAX_PRICE","details":"below","info":{"value":"0.27"}}', 422)
    assert info2.value.min_price == Decimal("0.27")


def test_max_hours_and_early_cancel_and_channels_info():
    with pytest.raises(E.MaxHoursExceed) as info:
        parse_response("continueRentNumber", '{"status":"error","message":"MAX_HOURS_EXCEED","info":{"max":1344}}')
    assert info.value.max_hours == 1344
    with pytest.raises(E.EarlyCancelDenied) as info2:
        parse_response("setStatus", '{"title":"EARLY_CANCEL_DENIED","details":"","info":{"minActivationTime":120}}',
                       409)
    assert info2.value.min_activation_time == 120
    with pytest.raises(E.ChannelsLimit) as info3:
        parse_response("getNumber", '{"title":"CHANNELS_LIMIT","info":{"current_threads":"5","max_allowed":5}}',
                       403)
    assert (info3.value.current_threads, info3.value.max_allowed) == (5, 5)


def test_rate_limited_carries_retry_after():
    with pytest.raises(E.RateLimited) as info:
        parse_response("getStatus", '{"title":"RATE_LIMIT"}', 429, retry_after=7.0)
    assert info.value.retry_after == 7.0
    with pytest.raises(E.RateLimited):  # 429 whatever the body says
        parse_response("getStatus", "<html>slow down</html>", 429)
    with pytest.raises(E.RateLimited):  # found by hypothesis: a JSON body on a plain-text action
        parse_response("getNumber", "{}", 429)


def test_vaksms_bad_action_is_also_bad_key():
    with pytest.raises(E.BadKey) as info:
        parse_response("getBalance", "BAD_ACTION", bad_action_means_bad_key=True)
    assert isinstance(info.value, E.BadAction)
    assert type(info.value) is E.BadActionOrKey
    with pytest.raises(E.BadAction) as info2:
        parse_response("getBalance", "BAD_ACTION")
    assert not isinstance(info2.value, E.BadKey)


@pytest.mark.parametrize("action,body,status", [
    ("getBalance", "<html><body>502 Bad Gateway</body></html>", 502),
    ("getStatus", "", 503),
    ("getNumber", "upstream timed out", 504),
    ("getNumberV2", '{"title":"INTERNAL","details":"boom"}', 500),
    ("getPrices", '{"unexpected": true}', 500),
    ("getBalance", "ACCESS_BALANCE:12", 500),  # a 5xx is never a success
])
def test_5xx_with_unknown_body_is_transient_server_error(action, body, status):
    with pytest.raises(E.ServerError) as info:
        parse_response(action, body, status)
    assert info.value.transient and info.value.http_status == status


@pytest.mark.parametrize("action,body,status", [
    ("getBalance", "SOMETHING_NEW", 200),
    ("getBalance", "ACCESS_BALANCE:", 200),
    ("getBalance", "ACCESS_BALANCE:abc", 200),
    ("getNumber", "ACCESS_NUMBER:123", 200),
    ("getNumber", "ACCESS_NUMBER", 200),
    ("getNumberV2", '{"status":"error","error":"SOMETHING_NEW"}', 200),
    ("getNumberV2", '{"phoneNumber":"7999"}', 200),
    ("getStatus", "STATUS_OK:", 200),
    ("getStatus", "STATUS_UNKNOWN", 200),
    ("getStatus", "", 200),
    ("getPrices", '{"broken": ', 200),
    ("getPrices", "[", 200),
    ("getCountries", "<!DOCTYPE html><html></html>", 200),
    ("getBalance", "<html>Not Found</html>", 404),
    ("getBalance", "ACCESS_BALANCE:1", 302),
    ("setStatus", "", 200),
    ("getMultiServiceNumber", "[]", 200),
    ("getRentNumber", '{"status":"success","phone":{"id":null}}', 200),
])
def test_unknown_answers_are_unexpected_answer_keeping_body(action, body, status):
    with pytest.raises(E.UnexpectedAnswer) as info:
        parse_response(action, body, status)
    assert info.value.body == body
    assert info.value.action == action
    assert not isinstance(info.value, (E.TransientError, E.BusinessError, E.FatalError))


def test_unknown_json_error_keeps_its_code():
    with pytest.raises(E.UnexpectedAnswer) as info:
        parse_response("getRentNumber", '{"status":"error","message":"FOO:bar:baz"}')
    assert info.value.code == "FOO" and info.value.argument == "bar:baz"


def test_error_body_is_truncated():
    body = "BAD_KEY:" + "x" * 5000
    with pytest.raises(E.BadKey) as info:
        parse_response("getBalance", body)
    assert len(info.value.body) == 500


def test_error_str_and_repr_are_informative():
    with pytest.raises(E.NoNumbers) as info:
        parse_response("getNumber", "NO_NUMBERS")
    assert str(info.value) == "NO_NUMBERS (action=getNumber, http=200)"
    assert repr(info.value).startswith("NoNumbers(code='NO_NUMBERS'")


def test_errors_pickle_round_trip():
    import pickle
    with pytest.raises(E.WrongMaxPrice) as info:
        parse_response("getNumber", "WRONG_MAX_PRICE:1.5")
    clone = pickle.loads(pickle.dumps(info.value))
    assert type(clone) is E.WrongMaxPrice and clone.min_price == Decimal("1.5") and str(clone) == str(info.value)
    net = E.ReadTimeout("boom", action="getNumber", possibly_processed=True)
    clone2 = pickle.loads(pickle.dumps(net))
    assert clone2.possibly_processed is True and str(clone2) == "boom"
