"""Transport-level behaviour through a scripted ``requests`` adapter: timeouts, 5xx, 204, 429, redirects, the
retry policy (purchases sent exactly once, getNumberV2 with orderId retried), wire encoding, and key redaction."""
from __future__ import annotations

import logging
import traceback
from decimal import Decimal

import pytest
import requests

from provider import errors as E
from provider import models as M
from provider.client import PURCHASE_ACTIONS, READ_ONLY_ACTIONS

from .conftest import API_KEY, make_client


def conn_error(request: requests.PreparedRequest) -> requests.exceptions.ConnectionError:
    # exactly what requests produces: the message carries the full URL, query string and key included
    return requests.exceptions.ConnectionError(
        f"HTTPSConnectionPool(host='provider.test', port=443): Max retries exceeded with url: {request.url} "
        f"(Caused by NewConnectionError('Failed to establish a new connection: [Errno 111] Connection refused'))",
        request=request)


def failing_then(reply, failures: int = 1, exc_factory=conn_error):
    state = {"n": 0}

    def handler(request):
        state["n"] += 1
        if state["n"] <= failures:
            return exc_factory(request)
        return reply
    return handler


V2_BODY = '{"activationId":635468024,"phoneNumber":"79584000000","activationCost":12.50,"currency":840}'


# ------------------------------------------------------------------ retries only where allowed
PURCHASES = [
    ("get_number", ("tg",), {}),
    ("get_number_v2", ("tg",), {}),
    ("get_multi_service_number", (["ok", "vk"],), {}),
    ("get_rent_number", ("tg",), {}),
    ("continue_rent_number", ("1",), {}),
    ("get_extra_activation", ("1",), {}),
    ("get_additional_service", (), {"activation_id": "1", "service": "fx"}),
    ("buy_partner_product", ("7",), {}),
    ("set_status", ("1", 6), {}),
    ("cancel_activation", ("1",), {}),
    ("set_rent_status", ("1", 1), {}),
    ("parse_call", ("1", "en"), {}),
]


@pytest.mark.parametrize("method,args,kwargs", PURCHASES, ids=[p[0] for p in PURCHASES])
def test_purchase_and_set_status_sent_exactly_once_after_connection_error(method, args, kwargs):
    client, adapter = make_client(failing_then((200, "ACCESS_NUMBER:1:7"), failures=10), max_retries=5)
    with pytest.raises(E.NetworkError) as info:
        getattr(client, method)(*args, **kwargs)
    assert len(adapter.requests) == 1
    assert client.sleeps == []
    assert info.value.transient


@pytest.mark.parametrize("exc", [requests.exceptions.ReadTimeout, requests.exceptions.ChunkedEncodingError])
def test_purchase_not_retried_after_read_timeout_and_flagged_ambiguous(exc):
    client, adapter = make_client(failing_then((200, V2_BODY), 5, lambda r: exc("read timed out", request=r)))
    with pytest.raises(E.NetworkError) as info:
        client.get_number_v2("tg", country=0)
    assert len(adapter.requests) == 1
    if exc is requests.exceptions.ReadTimeout:
        assert isinstance(info.value, E.ReadTimeout) and info.value.possibly_processed is True


def test_purchase_not_retried_on_5xx_or_error_sql():
    client, adapter = make_client([(502, "<html>bad gateway</html>"), (200, "ACCESS_NUMBER:1:7")])
    with pytest.raises(E.ServerError):
        client.get_number("tg")
    client2, adapter2 = make_client([(200, "ERROR_SQL"), (200, "ACCESS_NUMBER:1:7")])
    with pytest.raises(E.SqlError):
        client2.get_number("tg")
    assert len(adapter.requests) == len(adapter2.requests) == 1


def test_get_number_v2_with_order_id_is_retried():
    client, adapter = make_client(failing_then((200, V2_BODY), failures=2), max_retries=3)
    activation = client.get_number_v2("tg", country=0, order_id="o-1", max_price=Decimal("0.5"))
    assert activation.activation_id == "635468024"
    assert len(adapter.requests) == 3
    assert all(adapter.params(i)["orderId"] == "o-1" for i in range(3))
    assert len(client.sleeps) == 2


def test_get_number_v2_retry_then_order_already_exists_surfaces():
    client, adapter = make_client([(503, ""), (200, "ORDER_ALREADY_EXISTS")])
    with pytest.raises(E.OrderAlreadyExists):
        client.get_number_v2("tg", order_id="o-2")
    assert len(adapter.requests) == 2


def test_read_only_retried_until_max_then_raises_timeout():
    client, adapter = make_client(
        failing_then((200, "ACCESS_BALANCE:1"), 10, lambda r: requests.exceptions.ConnectTimeout("t", request=r)),
        max_retries=2)
    with pytest.raises(E.ConnectTimeout) as info:
        client.get_balance()
    assert isinstance(info.value, E.TransientError) and info.value.possibly_processed is False
    assert len(adapter.requests) == 3 and len(client.sleeps) == 2


def test_read_timeout_maps_to_transient_read_timeout():
    client, adapter = make_client(
        failing_then((200, "x"), 10, lambda r: requests.exceptions.ReadTimeout("t", request=r)), max_retries=0)
    with pytest.raises(E.ReadTimeout):
        client.get_status("1")


@pytest.mark.parametrize("first", [(500, "Internal Server Error"), (200, "ERROR_SQL"), (200, "SQL_ERROR"),
                                   (429, '{"title":"RATE_LIMIT"}', {"Retry-After": "0"}),
                                   (200, '{"status":"error","message":"SERVER_ERROR"}')])
def test_read_only_retried_on_transient_answers(first):
    client, adapter = make_client([first, (200, "STATUS_OK:4242")])
    assert client.get_status("1") == M.StatusResult(M.ActivationState.CODE_RECEIVED, "4242")
    assert len(adapter.requests) == 2


def test_business_and_fatal_errors_are_not_retried():
    client, adapter = make_client([(200, "NO_ACTIVATION"), (200, "STATUS_OK:1")])
    with pytest.raises(E.NoActivation):
        client.get_status("1")
    client2, adapter2 = make_client([(200, "BAD_KEY"), (200, "ACCESS_BALANCE:1")])
    with pytest.raises(E.BadKey):
        client2.get_balance()
    assert len(adapter.requests) == len(adapter2.requests) == 1


def test_rate_limited_retry_after_is_honoured():
    client, adapter = make_client([(429, "", {"Retry-After": "7"}), (200, "ACCESS_BALANCE:3")], backoff_max=1)
    assert client.get_balance().amount == Decimal(3)
    assert client.sleeps[0] >= 7
    client2, _ = make_client([(429, "", {"Retry-After": "9"})], max_retries=0)
    with pytest.raises(E.RateLimited) as info:
        client2.get_balance()
    assert info.value.retry_after == 9.0


def test_backoff_is_exponential_with_jitter_and_capped():
    client, adapter = make_client([(503, "")] * 6, max_retries=5, backoff_base=1.0, backoff_max=4.0)
    with pytest.raises(E.ServerError):
        client.get_prices()
    caps = [1.0, 2.0, 4.0, 4.0, 4.0]
    assert len(client.sleeps) == 5
    assert all(0 <= s <= cap for s, cap in zip(client.sleeps, caps))


def test_generic_call_retries_only_read_only():
    client, adapter = make_client([(503, ""), (200, '{"x":1}')])
    assert client.call("getPrices", service="tg") == {"x": 1}
    client2, adapter2 = make_client([(503, ""), (200, "ACCESS_NUMBER:1:2")])
    with pytest.raises(E.ServerError):
        client2.call("getNumber", service="tg")
    assert (len(adapter.requests), len(adapter2.requests)) == (2, 1)
    client3, adapter3 = make_client([(503, ""), (200, V2_BODY)])
    assert client3.call("getNumberV2", service="tg", orderId="o")["activationId"] == 635468024


def test_action_sets_are_disjoint_and_cover_purchases():
    assert not READ_ONLY_ACTIONS & PURCHASE_ACTIONS
    assert {"getNumber", "getNumberV2", "getMultiServiceNumber", "getRentNumber", "continueRentNumber",
            "getExtraActivation", "getAdditionalService", "buyPartnerProduct"} <= PURCHASE_ACTIONS
    assert "setStatus" not in READ_ONLY_ACTIONS and "parseCall" not in READ_ONLY_ACTIONS


# ------------------------------------------------------------------ HTTP shapes
def test_set_status_204_on_herosms():
    client, adapter = make_client([(204, "", {})], dialect="herosms")
    assert client.finish_activation("1") == ""
    client2, _ = make_client([(204, "", {})], dialect="sms-activate")
    with pytest.raises(E.UnexpectedAnswer):
        client2.finish_activation("1")


def test_redirects_are_not_followed():
    client, adapter = make_client([(302, "", {"Location": "https://elsewhere.test/?api_key=" + API_KEY})])
    with pytest.raises(E.UnexpectedAnswer) as info:
        client.get_balance()
    assert len(adapter.requests) == 1 and info.value.http_status == 302


def test_timeouts_passed_to_adapter():
    client, adapter = make_client([(200, "ACCESS_BALANCE:1")], connect_timeout=1.5, read_timeout=9)
    client.get_balance()
    assert adapter.timeouts == [(1.5, 9)]


def test_body_decoded_as_utf8_without_charset_guessing():
    text = '{"status":"success","services":[{"code":"vk","name":"ВКонтакте"}]}'
    client, _ = make_client([(200, text, {"Content-Type": "text/html"})])
    assert client.get_services_list()[0].name == "ВКонтакте"


def test_json_sniffed_when_content_type_says_html():
    client, _ = make_client([(200, '{"wa":"828"}', {"Content-Type": "text/html; charset=UTF-8"})])
    assert client.get_numbers_status().get("wa") == 828


def test_one_session_reused_for_keep_alive():
    client, adapter = make_client([(200, "ACCESS_BALANCE:1")] * 3)
    session = client.session
    for _ in range(3):
        client.get_balance()
    assert client.session is session and len(adapter.requests) == 3


# ------------------------------------------------------------------ wire encoding
def test_query_string_get_by_default_with_wire_names():
    client, adapter = make_client([(200, V2_BODY)])
    client.get_number_v2("tg", country=0, order_id="o-1", max_price=Decimal("0.50"), operator=["mts", "beeline"],
                         activation_type=0, forward=True, use_cash_back=True)
    request = adapter.requests[0]
    assert request.method == "GET" and request.body is None
    assert adapter.params() == {"api_key": API_KEY, "action": "getNumberV2", "service": "tg", "country": "0",
                                "forward": "1", "maxPrice": "0.50", "operator": "mts,beeline",
                                "activationType": "0", "useCashBack": "true", "orderId": "o-1"}


def test_post_form_dialect_override():
    client, adapter = make_client([(200, "ACCESS_BALANCE:1")], method="POST", auth="form")
    client.get_balance()
    request = adapter.requests[0]
    assert request.method == "POST" and API_KEY not in request.url
    assert adapter.params() == {"api_key": API_KEY, "action": "getBalance"}
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_header_auth_keeps_key_out_of_url():
    client, adapter = make_client([(200, "ACCESS_BALANCE:1")], dialect="herosms", auth="header")
    client.get_balance()
    request = adapter.requests[0]
    assert API_KEY not in request.url and request.headers["Authorization"] == f"ApiKey {API_KEY}"


@pytest.mark.parametrize("dialect,status", [("sms-activate", "8"), ("grizzly", "-1"), ("herosms", "8")])
def test_cancel_code_is_dialect_aware(dialect, status):
    client, adapter = make_client([(200, "ACCESS_CANCEL")], dialect=dialect)
    assert client.cancel_activation("123") == "ACCESS_CANCEL"
    assert adapter.params()["status"] == status and adapter.params()["id"] == "123"


def test_convenience_statuses():
    client, adapter = make_client([(200, "ACCESS_ACTIVATION"), (200, "ACCESS_RETRY_GET"), (200, "ACCESS_READY")])
    client.finish_activation(1)
    client.request_another_sms(1)
    client.report_number_ready(1)
    assert [adapter.params(i)["status"] for i in range(3)] == ["6", "3", "1"]


def test_unsupported_actions_fail_locally_without_a_request():
    client, adapter = make_client([], dialect="herosms")
    with pytest.raises(E.NotSupported):
        client.report_number_ready("1")
    with pytest.raises(E.NotSupported):
        client.get_list_of_top_countries_by_service("tg")
    client2, _ = make_client([], dialect="smshub")
    with pytest.raises(E.NotSupported):
        client2.get_active_activations()
    assert adapter.requests == []


@pytest.mark.parametrize("dialect,param", [("sms-activate", "multiForward"), ("generic", "multiForward")])
def test_multi_forward_param_name(dialect, param):
    client, adapter = make_client([(200, '[{"phone":"7","activation":"1","service":"ok"}]')], dialect=dialect)
    client.get_multi_service_number(["ok", "vk"], forward=[0, 1])
    assert adapter.params()["multiService"] == "ok,vk" and adapter.params()[param] == "0,1"


def test_multi_forward_param_from_custom_dialect():
    from provider import get_dialect
    custom = get_dialect("sms-activate").with_overrides(multi_forward_param="forward",
                                                         partner_product_param="productId")
    client, adapter = make_client([(200, '[{"phone":"7","activation":"1","service":"ok"}]'),
                                   (200, '{"status":"success","key":"K"}')], dialect=custom)
    client.get_multi_service_number("ok,vk", forward=[1, 0])
    assert adapter.params()["forward"] == "1,0" and "multiForward" not in adapter.params()
    client.buy_partner_product(5)
    assert adapter.params()["productId"] == "5"


def test_other_wire_names():
    client, adapter = make_client([(200, '{"status":"2","phone":false}'), (200, "ACCESS_NUMBER:2:7"),
                                   (200, "ADDITIONAL:3:7"), (200, '{"status":"success","price":1}'),
                                   (200, "[]")])
    client.get_incoming_call_status("9")
    assert adapter.params()["activationId"] == "9"
    client.get_extra_activation("9")
    assert adapter.params()["activationId"] == "9"
    client.get_additional_service(activation_id="9", service="fx")
    assert (adapter.params()["id"], adapter.params()["service"]) == ("9", "fx")
    client.get_continue_rent_price_number("5", rent_time=4)
    assert adapter.params()["rent_time"] == "4"
    from datetime import datetime, timezone
    client.get_history(start=datetime(2024, 1, 1, tzinfo=timezone.utc), end=1704153600, limit=100)
    assert adapter.params()["start"] == "1704067200" and adapter.params()["end"] == "1704153600"


def test_find_activation_by_order_id():
    body = '{"status":"success","data":[{"activationId":1,"orderId":"a"},{"activationId":2,"orderId":"b"}]}'
    client, _ = make_client([(200, body), (200, body)], dialect="herosms")
    assert client.find_activation_by_order_id("b").activation_id == "2"
    assert client.find_activation_by_order_id("zzz") is None


# ------------------------------------------------------------------ redaction
def _all_text(exc: BaseException) -> str:
    return str(exc) + repr(exc) + "".join(traceback.format_exception(exc)) + str(getattr(exc, "body", ""))


def test_connection_error_text_is_redacted_and_not_chained():
    client, adapter = make_client(failing_then((200, "x"), 10), max_retries=1)
    with pytest.raises(E.NetworkError) as info:
        client.get_balance()
    err = info.value
    assert API_KEY in adapter.requests[0].url            # the key really was in the URL requests saw
    assert API_KEY not in _all_text(err)
    assert "api_key=***" in str(err)
    assert err.__cause__ is None and err.__context__ is None
    assert err.possibly_processed is None  # no urllib3 cause attached: we cannot prove it was never sent


def test_key_echoed_in_body_is_redacted_everywhere():
    echoed = f"BAD_KEY:unknown key {API_KEY} in /stubs/handler_api.php?api_key={API_KEY}&action=getBalance"
    client, _ = make_client([(401, echoed)])
    with pytest.raises(E.BadKey) as info:
        client.get_balance()
    assert API_KEY not in _all_text(info.value) and API_KEY not in (info.value.argument or "")


def test_key_in_unexpected_body_is_redacted():
    client, _ = make_client([(200, f"<html>{API_KEY}</html>")])
    with pytest.raises(E.UnexpectedAnswer) as info:
        client.get_balance()
    assert API_KEY not in _all_text(info.value)


def test_client_repr_has_no_key():
    client, _ = make_client([])
    assert API_KEY not in repr(client) and API_KEY not in repr(client._transport)
    assert "sms-activate" in repr(client)


def test_urllib3_debug_log_line_is_redacted(caplog):
    make_client([])  # installs the filter
    logger = logging.getLogger("urllib3.connectionpool")
    with caplog.at_level(logging.DEBUG, logger="urllib3.connectionpool"):
        logger.debug('%s://%s:%s "%s %s %s" %s %s', "https", "provider.test", 443, "GET",
                     f"/stubs/handler_api.php?api_key={API_KEY}&action=getBalance", "HTTP/1.1", 200, 20)
    assert caplog.records and API_KEY not in caplog.text and "api_key=***" in caplog.text


def test_provider_logs_never_contain_key(caplog):
    client, _ = make_client([(503, f"oops {API_KEY}"), (200, "ACCESS_BALANCE:1")])
    with caplog.at_level(logging.DEBUG):
        client.get_balance()
    assert caplog.records and API_KEY not in caplog.text


def test_real_socket_connection_refused_is_redacted():
    """No mock: a real requests.Session to a closed loopback port."""
    import socket
    from provider import ProviderClient
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = ProviderClient(API_KEY, dialect="generic", base_url=f"http://127.0.0.1:{port}/stubs/handler_api.php",
                            max_retries=0, connect_timeout=0.5)
    with pytest.raises(E.NetworkError) as info:
        client.get_number("tg")
    assert API_KEY not in _all_text(info.value)
    assert info.value.possibly_processed is False


def test_invalid_base_url_is_configuration_error():
    from provider import ProviderClient
    client = ProviderClient(API_KEY, base_url="ftp://nowhere/handler_api.php", max_retries=0)
    with pytest.raises(E.ConfigurationError) as info:
        client.get_balance()
    assert API_KEY not in _all_text(info.value)


def test_observer_sees_every_attempt_with_a_bounded_result_label():
    seen: list[tuple[str, str, float]] = []
    client, _adapter = make_client([(503, ""), (200, "ACCESS_BALANCE:1.5"), (200, "NO_NUMBERS")],
                                   observer=lambda action, result, seconds: seen.append((action, result, seconds)))
    assert client.get_balance().amount == Decimal("1.5")
    with pytest.raises(E.NoNumbers):
        client.get_number("tg")
    assert [(a, r) for a, r, _ in seen] == [("getBalance", "ServerError"), ("getBalance", "ok"),
                                            ("getNumber", "NoNumbers")]
    assert all(seconds >= 0 for _, _, seconds in seen)


def test_a_failing_observer_never_breaks_a_call():
    def broken(action: str, result: str, seconds: float) -> None:
        raise RuntimeError("metrics are down")

    client, _adapter = make_client([(200, "ACCESS_BALANCE:2")], observer=broken)
    assert client.get_balance().amount == Decimal("2")
