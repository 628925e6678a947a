"""POST /webhooks/<token>: every answer the provider can get, and what is stored for each."""
from __future__ import annotations

import base64
import io
import json
import logging
from typing import Any

import pytest
import redis

from config.redis_client import make_redis
from config.settings import Settings
from webhook.metrics import WEBHOOKS
from webhook.schemas import MAX_DEPTH

from .conftest import BASE_SETTINGS, TOKEN, WEBHOOK, Harness, MakeHarness

SMS_ACTIVATE = {"activationId": 635468024, "service": "go", "text": "Your sms text 1234", "code": "1234",
                "country": 0, "receivedAt": "2022-06-01 17:30:57"}
HEROSMS = {"activationId": "3936040355", "id": 987654321, "event": "sms-incoming", "service": "tg",
           "phoneFrom": "Telegram", "text": None, "code": None, "country": 6,
           "receivedAt": "2026-09-08T10:15:30.000000Z"}
RENT = {"rentId": 26251422, "sms": {"phoneFrom": 79001234567, "text": "Код 2792", "date": "2025-06-17 16:01:10"}}


def count(outcome: str) -> float:
    for metric in WEBHOOKS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels.get("outcome") == outcome:
                return sample.value
    return 0.0


def post(h: Harness, body: Any, *, path: str = WEBHOOK, content_type: str | None = "application/json",
         **kwargs: Any) -> Any:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return h.client.post(path, data=data, content_type=content_type, **kwargs)


def stored(h: Harness) -> list[tuple[str, dict[str, Any]]]:
    return [(kind, json.loads(payload)) for kind, payload in h.inbox_payloads()]


# ------------------------------------------------------------------ 200


def test_sms_activate_webhook_is_accepted_and_stored_with_string_ids(harness: Harness) -> None:
    before = count("accepted")
    rv = post(harness, SMS_ACTIVATE)
    assert rv.status_code == 200 and rv.get_json() == {"status": "accepted"}
    assert stored(harness) == [("activation", {**SMS_ACTIVATE, "activationId": "635468024", "country": "0"})]
    assert count("accepted") == before + 1


def test_repeat_delivery_answers_duplicate_and_stores_once(harness: Harness) -> None:
    before = count("duplicate")
    assert post(harness, SMS_ACTIVATE).get_json() == {"status": "accepted"}
    rv = post(harness, {**SMS_ACTIVATE, "activationId": "635468024"})  # same SMS, id now a string
    assert rv.status_code == 200 and rv.get_json() == {"status": "duplicate"}
    assert len(stored(harness)) == 1
    assert count("duplicate") == before + 1


def test_herosms_shape_is_accepted_with_nulls(harness: Harness) -> None:
    rv = post(harness, HEROSMS)
    assert rv.status_code == 200, rv.get_json()
    ((kind, payload),) = stored(harness)
    assert kind == "activation"
    assert payload["activationId"] == "3936040355" and payload["id"] == "987654321"
    assert payload["code"] is None and payload["text"] is None and payload["event"] == "sms-incoming"
    assert payload["receivedAt"] == "2026-09-08T10:15:30.000000Z"


def test_herosms_body_without_activation_id_falls_back_to_id(harness: Harness) -> None:
    body = {k: v for k, v in HEROSMS.items() if k != "activationId"}
    assert post(harness, body).status_code == 200
    assert stored(harness)[0][1]["activationId"] == "987654321"


def test_rent_webhook_with_numeric_ids(harness: Harness) -> None:
    rv = post(harness, RENT)
    assert rv.status_code == 200 and rv.get_json() == {"status": "accepted"}
    assert stored(harness) == [("rent", {"rentId": "26251422", "sms": {
        "phoneFrom": "79001234567", "text": "Код 2792", "date": "2025-06-17 16:01:10"}})]
    assert post(harness, {**RENT, "rentId": "26251422"}).get_json() == {"status": "duplicate"}


def test_unknown_fields_are_kept_at_every_level(harness: Harness) -> None:
    body = {**SMS_ACTIVATE, "newField": {"nested": [1, 2]}, "flag": True}
    assert post(harness, body).status_code == 200
    payload = stored(harness)[0][1]
    assert payload["newField"] == {"nested": [1, 2]} and payload["flag"] is True
    rent = {**RENT, "extra": 1, "sms": {**RENT["sms"], "operator": "mts"}}
    assert post(harness, rent).status_code == 200
    assert stored(harness)[1][1]["sms"]["operator"] == "mts" and stored(harness)[1][1]["extra"] == 1


@pytest.mark.parametrize("content_type", [None, "text/plain", "text/html; charset=UTF-8",
                                          "application/x-www-form-urlencoded", "application/octet-stream"])
def test_json_is_parsed_whatever_the_content_type(harness: Harness, content_type: str | None) -> None:
    rv = post(harness, SMS_ACTIVATE, content_type=content_type)
    assert rv.status_code == 200, rv.get_json()
    assert stored(harness)[0][1]["activationId"] == "635468024"


def test_form_encoded_fallback(harness: Harness) -> None:
    rv = post(harness, "activationId=635468024&code=1234&text=hi&receivedAt=2022-06-01+17%3A30%3A57",
              content_type="application/x-www-form-urlencoded")
    assert rv.status_code == 200
    assert stored(harness)[0][1] == {"activationId": "635468024", "code": "1234", "text": "hi",
                                     "receivedAt": "2022-06-01 17:30:57"}
    rv = post(harness, "rentId=5&sms[text]=hello&sms[phoneFrom]=BANK&sms[date]=2025-06-17", content_type=None)
    assert rv.status_code == 200
    assert stored(harness)[1] == ("rent", {"rentId": "5", "sms": {"text": "hello", "phoneFrom": "BANK",
                                                                  "date": "2025-06-17"}})


def test_webhook_for_an_unknown_activation_is_answered_200(harness: Harness) -> None:
    rv = post(harness, {**SMS_ACTIVATE, "activationId": "99999999999999"})
    assert rv.status_code == 200 and rv.get_json() == {"status": "accepted"}


# ------------------------------------------------------------------ drain publish


def test_drain_is_published_once_per_drain_cycle(harness: Harness) -> None:
    for i in range(5):
        assert post(harness, {**SMS_ACTIVATE, "code": str(i)}).status_code == 200
    post(harness, {**SMS_ACTIVATE, "code": "0"})  # duplicate: never publishes
    assert harness.celery.names == ["otpflow.drain_inbox"]
    harness.inbox.begin_drain()  # what the drain task does first
    post(harness, {**SMS_ACTIVATE, "code": "after-drain"})
    post(harness, {**SMS_ACTIVATE, "code": "after-drain-2"})
    assert harness.celery.names == ["otpflow.drain_inbox", "otpflow.drain_inbox"]


def test_publish_failure_still_answers_200_and_keeps_the_payload(harness: Harness,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    harness.celery.fail_with = OSError("broker down")
    with caplog.at_level(logging.WARNING, logger="otpflow.webhook"):
        rv = post(harness, SMS_ACTIVATE)
    assert rv.status_code == 200 and rv.get_json() == {"status": "accepted"}
    assert len(stored(harness)) == 1
    assert "drain publish failed" in caplog.text
    # The flag stays until its TTL: a broken broker costs one failed publish per TTL, not one per webhook.
    post(harness, {**SMS_ACTIVATE, "code": "2"})
    assert len(harness.celery.calls) == 1


def test_celery_producer_is_built_lazily_from_worker_module(make_harness: MakeHarness,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Without celery_app= the factory must not import the worker package until a drain is published."""
    import fakeredis
    import sys
    import types

    from webhook.app import create_app

    built: list[Settings] = []
    sent: list[str] = []
    fake = types.ModuleType("worker.celery_app")

    def make_celery(settings: Settings) -> Any:
        built.append(settings)
        return types.SimpleNamespace(send_task=lambda name, **kw: sent.append(name))

    fake.make_celery = make_celery  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "worker.celery_app", fake)
    app = create_app(BASE_SETTINGS, redis_client=fakeredis.FakeRedis(decode_responses=True))
    assert built == []
    assert app.test_client().post(WEBHOOK, json=SMS_ACTIVATE).status_code == 200
    assert built == [BASE_SETTINGS] and sent == ["otpflow.drain_inbox"]


# ------------------------------------------------------------------ 400 + dead letter


@pytest.mark.parametrize("body, field_name", [
    (b"{not json", "_body"),
    (b"", "_body"),
    (b"[1, 2, 3]", "_body"),
    (b'"a string"', "_body"),
    (b"NaN", "_body"),
    (b'{"activationId": "1", "x": 1e400}', "_body"),
    (b'{"hello": "world"}', "activationId"),
    (b'{"activationId": true}', "activationId"),
    (b'{"activationId": 1.5}', "activationId"),
    (b'{"activationId": ""}', "activationId"),
    (b'{"activationId": {"a": 1}}', "activationId"),
    (b'{"activationId": "1", "code": ["1"]}', "code"),
    (b'{"activationId": "1", "text": 5}', "text"),
    (b'{"rentId": "1"}', "sms"),
    (b'{"rentId": "1", "sms": "text"}', "sms"),
    (b'{"rentId": null, "sms": {}}', "rentId"),
    (b'{"rentId": "1", "sms": {"text": 5}}', "sms"),
])
def test_malformed_body_is_400_with_reason_and_dead_lettered(harness: Harness, body: bytes, field_name: str) -> None:
    before = count("malformed")
    rv = post(harness, body)
    assert rv.status_code == 400
    answer = rv.get_json()
    assert answer["status"] == "error" and answer["error"] == "malformed" and answer["reason"]
    assert field_name in answer["fields"], answer
    assert harness.inbox_payloads() == []
    (letter,) = harness.dead_letters()
    assert letter["body"] == body.decode() and letter["reason"] == answer["reason"]
    meta = json.loads(letter["meta"])
    assert field_name in meta["fields"] and meta["provider"] == "sms-activate"  # whose token it came on
    assert count("malformed") == before + 1
    assert harness.celery.calls == []


def test_undecodable_bytes_are_stored_replaced_and_kept_as_sent(harness: Harness) -> None:
    """Bytes that are not UTF-8 inside a valid webhook: the SMS is stored with U+FFFD, and the body as it came
    (base64) is kept in the dead letters."""
    raw = b'{"activationId": "77", "code": "4321", "text": "code 4321 \xff\xfe"}'
    rv = post(harness, raw)
    assert rv.status_code == 200 and rv.get_json() == {"status": "accepted"}
    ((kind, payload),) = harness.inbox_payloads()
    assert kind == "activation" and json.loads(payload)["text"] == "code 4321 \ufffd\ufffd"
    (letter,) = harness.dead_letters()
    assert base64.b64decode(letter["raw_b64"]) == raw and "\ufffd" in letter["body"]


@pytest.mark.parametrize("raw", [
    b'{"activationId":10,"text":"\\ud83d"}',                      # a truncated emoji, as the issue saw it
    b'{"activationId":10,"code":"5555","text":"\\udc00 5555"}',
    b'{"rentId":"9","sms":{"text":"\\ud800","phoneFrom":"\\udfff","date":"2025-01-01 00:00:00"}}',
    b'{"activationId":10,"\\ud83d":"an unknown field whose name is a lone surrogate"}',
    b'rentId=9&sms=%7B%22text%22%3A%22%5Cud83d%22%7D',             # the same, form-encoded
])
def test_a_lone_surrogate_is_stored_replaced_never_500(harness: Harness, raw: bytes) -> None:
    rv = post(harness, raw)
    assert rv.status_code == 200, rv.get_data()
    ((_kind, payload),) = harness.inbox_payloads()
    assert "\ufffd" in payload
    (letter,) = harness.dead_letters()
    assert letter["body"] == raw.decode() and json.loads(letter["meta"])["stored"] is True


def test_deep_nesting_in_a_form_encoded_sms_field_is_400(harness: Harness) -> None:
    deep = "[" * 1010 + "]" * 1010  # deeper than MAX_DEPTH (and 3.11's parser), within WEBHOOK_MAX_BYTES (2048 here)
    rv = post(harness, f"rentId=1&sms={{\"a\":{deep}}}".encode(), content_type="application/x-www-form-urlencoded")
    assert rv.status_code == 400 and "nested too deeply" in rv.get_json()["reason"]
    (letter,) = harness.dead_letters()
    assert letter["bytes"] == str(len(letter["body"].encode()))


@pytest.mark.parametrize("form", [False, True], ids=["json", "form sms field"])
def test_nesting_limit_is_max_depth_on_every_python(harness: Harness, form: bool) -> None:
    """One level past MAX_DEPTH is 400 although every parser reads it (3.13's goes ~10x deeper than 3.11's);
    MAX_DEPTH itself is stored. The body object counts as a level, so does a form's sms object."""
    def body(depth: int) -> bytes:
        if form:  # body > sms object > lists
            lists = depth - 2
            return f'rentId=1&sms={{"text":"Code 1234","x":{"[" * lists}{"]" * lists}}}'.encode()
        lists = depth - 1  # body > lists
        return f'{{"activationId":10,"code":"1234","x":{"[" * lists}{"]" * lists}}}'.encode()

    content_type = "application/x-www-form-urlencoded" if form else "application/json"
    rv = post(harness, body(MAX_DEPTH), content_type=content_type)
    assert rv.status_code == 200, rv.get_data()
    rv = post(harness, body(MAX_DEPTH + 1), content_type=content_type)
    assert rv.status_code == 400 and "nested too deeply" in rv.get_json()["reason"]


def test_malformed_body_while_redis_is_down_is_503_not_400(make_harness: MakeHarness, closed_port: int) -> None:
    settings = Settings(redis_url=f"redis://127.0.0.1:{closed_port}/0")
    h = make_harness(redis_client=make_redis(settings))
    rv = post(h, b"{not json")
    assert rv.status_code == 503 and rv.headers["Retry-After"]


# ------------------------------------------------------------------ 404


def test_wrong_token_is_404_like_any_unknown_path(harness: Harness) -> None:
    before = count("unauthorized")
    for path in (f"/webhooks/{TOKEN}x", f"/webhooks/{TOKEN[:-1]}", "/webhooks/x", f"/webhooks/{TOKEN.upper()}"):
        rv = post(harness, SMS_ACTIVATE, path=path)
        assert rv.status_code == 404
        assert rv.get_json() == harness.client.get("/no/such/path").get_json()
    assert harness.inbox_payloads() == [] and harness.dead_letters() == []
    assert count("unauthorized") == before + 4


def test_other_methods_are_json_405(harness: Harness) -> None:
    rv = harness.client.get(WEBHOOK)
    assert rv.status_code == 405 and rv.get_json()["error"] == "method_not_allowed"


def test_token_never_appears_in_logs(make_harness: MakeHarness, closed_port: int,
                                     caplog: pytest.LogCaptureFixture) -> None:
    h = make_harness()
    h.celery.fail_with = RuntimeError("boom")
    down = make_harness(redis_client=make_redis(Settings(redis_url=f"redis://127.0.0.1:{closed_port}/0")))
    with caplog.at_level(logging.DEBUG):
        post(h, SMS_ACTIVATE)
        post(h, b"{bad")
        post(h, SMS_ACTIVATE, path=f"/webhooks/{TOKEN}zz")
        post(down, SMS_ACTIVATE)
        post(down, b"{bad")
    assert caplog.records, "expected some log lines"
    assert TOKEN not in caplog.text
    assert all(TOKEN not in r.getMessage() for r in caplog.records)


def test_unexpected_error_is_503_never_500_and_logged_without_token(harness: Harness,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    """A bug of ours while receiving must not turn into a 500 the provider gives up on: 503, so it retries."""
    harness.app.testing = False
    def explode(*args: Any, **kwargs: Any) -> None:
        raise ZeroDivisionError(f"while handling {WEBHOOK}")

    monkeypatch.setattr(harness.inbox, "append", explode)
    before = count("error")
    with caplog.at_level(logging.ERROR):
        rv = post(harness, SMS_ACTIVATE)
    assert rv.status_code == 503 and rv.headers["Retry-After"] == "5"
    assert rv.get_json() == {"status": "error", "error": "unavailable", "reason": "internal error, retry later"}
    assert "ZeroDivisionError" in caplog.text and TOKEN not in caplog.text
    assert count("error") == before + 1


# ------------------------------------------------------------------ 403


SMS_ACTIVATE_IP = "188.42.218.183"
ALLOW = BASE_SETTINGS.webhook_allowed_ips or ()


def _allowlisted(make_harness: MakeHarness, proxies: int) -> Harness:
    import ipaddress

    return make_harness(webhook_allowed_ips=(ipaddress.ip_network("188.42.218.183/32"),
                                             ipaddress.ip_network("142.91.156.119/32")),
                        trusted_proxies=proxies)


@pytest.mark.parametrize("proxies, peer, xff, expected", [
    # 0 trusted proxies: only the socket peer counts; X-Forwarded-For is ignored entirely.
    (0, SMS_ACTIVATE_IP, None, 200),
    (0, "6.6.6.6", None, 403),
    (0, "6.6.6.6", SMS_ACTIVATE_IP, 403),
    (0, SMS_ACTIVATE_IP, "6.6.6.6", 200),
    # 1 proxy (Heroku router): the rightmost value is what the router saw; the rest is client-written.
    (1, "10.0.0.1", SMS_ACTIVATE_IP, 200),
    (1, "10.0.0.1", f"6.6.6.6, {SMS_ACTIVATE_IP}", 200),
    (1, "10.0.0.1", f"{SMS_ACTIVATE_IP}, 6.6.6.6", 403),
    (1, SMS_ACTIVATE_IP, None, 403),
    (1, "10.0.0.1", "not-an-ip", 403),
    # 2 proxies (CDN + router): the second value from the right.
    (2, "10.0.0.1", f"{SMS_ACTIVATE_IP}, 172.16.0.5", 200),
    (2, "10.0.0.1", f"1.1.1.1, {SMS_ACTIVATE_IP}, 172.16.0.5", 200),
    (2, "10.0.0.1", f"{SMS_ACTIVATE_IP}, 6.6.6.6, 172.16.0.5", 403),
    (2, "10.0.0.1", SMS_ACTIVATE_IP, 403),  # fewer hops than configured: unknown, refused
])
def test_allowlist_through_trusted_proxies(make_harness: MakeHarness, proxies: int, peer: str, xff: str | None,
                                           expected: int) -> None:
    h = _allowlisted(make_harness, proxies)
    headers = {"X-Forwarded-For": xff} if xff else {}
    rv = post(h, SMS_ACTIVATE, headers=headers, environ_base={"REMOTE_ADDR": peer})
    assert rv.status_code == expected, rv.get_json()
    if expected == 403:
        assert rv.get_json() == {"status": "error", "error": "forbidden", "reason": "client address not allowed"}
        assert h.inbox_payloads() == [] and h.dead_letters() == []


def test_repeated_forwarded_headers_are_one_chain(make_harness: MakeHarness) -> None:
    h = _allowlisted(make_harness, 2)
    environ = {"REMOTE_ADDR": "10.0.0.1"}
    rv = h.client.post(WEBHOOK, json=SMS_ACTIVATE, environ_base=environ,
                       headers=[("X-Forwarded-For", f"6.6.6.6, {SMS_ACTIVATE_IP}"), ("X-Forwarded-For", "172.16.0.5")])
    assert rv.status_code == 200


def test_forbidden_is_counted_and_checked_after_the_token(make_harness: MakeHarness) -> None:
    h = _allowlisted(make_harness, 0)
    before = count("forbidden")
    assert post(h, SMS_ACTIVATE, path="/webhooks/wrong", environ_base={"REMOTE_ADDR": "6.6.6.6"}).status_code == 404
    assert post(h, SMS_ACTIVATE, environ_base={"REMOTE_ADDR": "6.6.6.6"}).status_code == 403
    assert count("forbidden") == before + 1


def test_ipv4_mapped_ipv6_peer_matches_ipv4_allowlist(make_harness: MakeHarness) -> None:
    h = _allowlisted(make_harness, 0)
    assert post(h, SMS_ACTIVATE, environ_base={"REMOTE_ADDR": f"::ffff:{SMS_ACTIVATE_IP}"}).status_code == 200


# ------------------------------------------------------------------ 413


def test_declared_length_over_limit_is_413(harness: Harness) -> None:
    before = count("too_large")
    body = json.dumps({**SMS_ACTIVATE, "text": "x" * 3000})
    rv = post(harness, body)
    assert rv.status_code == 413
    assert rv.get_json() == {"status": "error", "error": "too_large", "reason": "body exceeds 2048 bytes"}
    assert harness.inbox_payloads() == [] and harness.dead_letters() == []
    assert count("too_large") == before + 1


def _chunked(h: Harness, body: bytes) -> Any:
    """A chunked request: no Content-Length, the server signals the end of input (as gunicorn does)."""
    return h.client.post(WEBHOOK, input_stream=io.BytesIO(body), headers={"Transfer-Encoding": "chunked"},
                         environ_overrides={"wsgi.input_terminated": True})


def test_chunked_body_without_length_is_capped(harness: Harness) -> None:
    rv = _chunked(harness, json.dumps({**SMS_ACTIVATE, "text": "x" * 50_000}).encode())
    assert rv.status_code == 413
    assert harness.inbox_payloads() == []


def test_chunked_body_under_the_limit_is_accepted(harness: Harness) -> None:
    rv = _chunked(harness, json.dumps(SMS_ACTIVATE).encode())
    assert rv.status_code == 200, rv.get_json()
    assert len(harness.inbox_payloads()) == 1


def test_body_exactly_at_the_limit_is_accepted(harness: Harness) -> None:
    body = json.dumps({**SMS_ACTIVATE, "text": ""})
    padded = json.dumps({**SMS_ACTIVATE, "text": "y" * (2048 - len(body))})
    assert len(padded) == 2048
    assert post(harness, padded).status_code == 200


# ------------------------------------------------------------------ 503


class FailingRedis:
    """Every command fails with the given error (as a broken, loading, read-only or full Redis does)."""

    def __init__(self, error: Exception) -> None:
        import fakeredis

        self._inner = fakeredis.FakeRedis(decode_responses=True)
        self._error = error

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        raise self._error

    def evalsha(self, *args: Any, **kwargs: Any) -> Any:
        raise self._error

    def register_script(self, script: str) -> Any:
        from redis.commands.core import Script

        return Script(self, script)

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        raise self._error


@pytest.mark.parametrize("error", [
    redis.exceptions.ConnectionError("Connection refused"),
    redis.exceptions.TimeoutError("Timeout reading from socket"),
    redis.exceptions.BusyLoadingError("LOADING Redis is loading the dataset in memory"),
    redis.exceptions.ReadOnlyError("READONLY You can't write against a read only replica."),
    redis.exceptions.ResponseError("OOM command not allowed when used memory > 'maxmemory'."),
])
def test_every_redis_failure_is_503_with_retry_after(make_harness: MakeHarness, error: Exception) -> None:
    h = make_harness(redis_client=FailingRedis(error))  # type: ignore[arg-type]
    before = count("unavailable")
    rv = post(h, SMS_ACTIVATE)
    assert rv.status_code == 503
    assert rv.headers["Retry-After"].isdigit()
    assert rv.get_json() == {"status": "error", "error": "unavailable", "reason": "storage unavailable, retry later"}
    assert h.celery.calls == []
    assert count("unavailable") == before + 1


def test_refused_connection_is_503(make_harness: MakeHarness, closed_port: int) -> None:
    settings = Settings(redis_url=f"redis://127.0.0.1:{closed_port}/0")
    h = make_harness(redis_client=make_redis(settings))
    rv = post(h, SMS_ACTIVATE)
    assert rv.status_code == 503 and rv.headers["Retry-After"] == "5"
    assert rv.get_json()["error"] == "unavailable"
    assert h.celery.calls == []
