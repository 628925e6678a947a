"""Property tests: whatever a provider (or anyone holding the token) sends, the answer is 200 or a 4xx with a
JSON reason, never a 500."""
from __future__ import annotations

import json
from typing import Any

import fakeredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webhook.app import create_app
from webhook.schemas import MalformedWebhook, parse_webhook

from .conftest import BASE_SETTINGS, WEBHOOK, RecordingCelery

_APP = create_app(BASE_SETTINGS, redis_client=fakeredis.FakeRedis(decode_responses=True), celery_app=RecordingCelery())
_CLIENT = _APP.test_client()

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=20)
KEYS = ["activationId", "id", "service", "text", "code", "country", "receivedAt", "phoneFrom", "event", "rentId", "sms"]
webhook_like = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=8) | st.fixed_dictionaries(
    {"rentId": json_values, "sms": st.dictionaries(st.sampled_from(["phoneFrom", "text", "date", "x"]), json_values)})


def _check(data: bytes, content_type: str | None = "application/json") -> None:
    rv = _CLIENT.post(WEBHOOK, data=data, content_type=content_type)
    assert rv.status_code in (200, 400, 413), (rv.status_code, data[:200])
    answer = rv.get_json()
    assert isinstance(answer, dict) and answer["status"] in ("accepted", "duplicate", "error")
    if rv.status_code != 200:
        assert answer["reason"] and answer["error"] in ("malformed", "too_large")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values | webhook_like)
def test_any_json_body_gets_200_or_4xx_with_a_reason(body: Any) -> None:
    _check(json.dumps(body).encode())


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([None, "application/json", "text/plain",
                                                 "application/x-www-form-urlencoded"]))
def test_any_bytes_get_200_or_4xx_with_a_reason(body: bytes, content_type: str | None) -> None:
    _check(body, content_type)


@settings(max_examples=300, deadline=None)
@given(webhook_like)
def test_parser_returns_a_webhook_or_a_typed_error(body: dict[str, Any]) -> None:
    try:
        parsed = parse_webhook(json.dumps(body).encode())
    except MalformedWebhook as exc:
        assert exc.reason and exc.fields
    else:
        assert parsed.kind in ("activation", "rent") and len(parsed.fingerprint) == 40
        key = "rentId" if parsed.kind == "rent" else "activationId"
        assert isinstance(parsed.payload[key], str) and parsed.payload[key]


def test_bytes_that_look_like_utf32_but_are_not_get_a_400() -> None:
    """Zero bytes read as UTF-32 by JSON's own encoding detection, and a truncated code unit does not decode:
    a malformed body, never an error of ours (hypothesis found it)."""
    _check(b"\x00\x00\x00\x00\x00")
    assert _CLIENT.post(WEBHOOK, data=b"\x00\x00\x00\x00\x00", content_type="application/json").status_code == 400


def test_bytes_json_detects_as_utf16_or_with_a_bom_are_read_as_json_reads_them() -> None:
    """UTF-16 without a BOM of ASCII text is also valid UTF-8 (its zero bytes included); JSON's detection reads it
    as UTF-16, and a UTF-8 BOM is skipped, as ``json.loads`` does with bytes."""
    body = {"activationId": "123", "code": "4711", "text": "Code 4711"}
    for raw in (json.dumps(body).encode("utf-16-le"), json.dumps(body).encode("utf-8-sig")):
        parsed = parse_webhook(raw)
        assert (parsed.payload["activationId"], parsed.payload["code"]) == ("123", "4711"), raw[:20]
