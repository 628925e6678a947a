"""Property tests: for any body and any HTTP status, every action's parser returns a typed result or raises a
ProviderError subclass, never anything else (no KeyError/ValueError/JSONDecodeError/RecursionError escapes)."""
from __future__ import annotations

import json
from dataclasses import is_dataclass

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from provider.errors import ProviderError, TransientError
from provider.parsing import ACTIONS, parse_response

ALL_ACTIONS = list(ACTIONS) + ["someUnknownAction"]

TOKENS = ["ACCESS_BALANCE", "ACCESS_NUMBER", "ADDITIONAL", "STATUS_OK", "STATUS_WAIT_RETRY", "STATUS_WAIT_CODE",
          "STATUS_CANCEL", "WRONG_MAX_PRICE", "BANNED", "NO_NUMBERS", "BAD_KEY", "ACCESS_CANCEL", "NO_CALL",
          "NO_ACTIVATIONS", "ERROR_SQL", "NO_MEANS", "OK"]
KEYS = ["status", "error", "message", "title", "details", "info", "activationId", "phoneNumber", "activationCost",
        "activeActivations", "data", "rows", "sms", "call", "code", "verificationType", "countryOperators",
        "services", "phone", "values", "quantity", "price", "cost", "count", "history", "result", "country", "id",
        "number", "endDate", "freePriceMap", "smsCode", "activation", "service", "key", "max", "0", "1", "wa_0"]

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-10**30, max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20), st.sampled_from(TOKENS + KEYS),
    st.sampled_from(["success", "error", "2022-06-01 17:30:57", "2026-09-08T10:15:30.000000Z", "0000-00-00",
                     "12.50", "-1", "1e400", "NaN"]),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), children, max_size=6),
    ),
    max_leaves=25,
)


def _dump(value: object) -> str:
    return json.dumps(value, allow_nan=True)


plain_bodies = st.builds(
    lambda tok, sep, arg: f"{tok}{sep}{arg}",
    st.sampled_from(TOKENS) | st.text(max_size=12),
    st.sampled_from(["", ":", ": ", ":'", "::"]),
    st.text(max_size=30),
)
bodies = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=200).map(lambda b: b.decode("utf-8", errors="replace")),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    json_values.map(_dump),
    json_values.map(lambda v: _dump(v)[:-1]),           # truncated JSON
    json_values.map(lambda v: " \n" + _dump(v) + ","),  # trailing junk
    plain_bodies,
    st.sampled_from(["[" * 5000, "{" * 3000, '{"a":' * 3000, "1" * 5000, "ACCESS_NUMBER:" + "9" * 5000]),
)
statuses = st.sampled_from([200, 201, 204, 301, 302, 400, 401, 402, 403, 404, 409, 422, 429, 500, 502, 503, 504]) \
    | st.integers(min_value=100, max_value=599)


def _check(action: str, body: str, status: int) -> None:
    try:
        result = parse_response(action, body, status, retry_after=None, accept_204=True)
    except ProviderError as exc:
        # every error is printable and keeps (a prefix of) the body
        assert isinstance(str(exc), str) and isinstance(repr(exc), str)
        if exc.body is not None:
            assert len(exc.body) <= 500 and body.startswith(exc.body)
        if status == 429:
            assert isinstance(exc, TransientError) or exc.code is not None
        return
    assert result is not None or action == "someUnknownAction"
    if action == "someUnknownAction":
        assert isinstance(result, (str, dict, list))
    elif isinstance(result, list):
        assert all(is_dataclass(item) for item in result)
    else:
        assert is_dataclass(result) or isinstance(result, (str, bool))
    # success needs a 2xx; a 4xx may carry a *state* sent as an error (HeroSMS), never a 3xx/5xx
    assert status < 300 or 400 <= status < 500, "a 3xx/5xx status must never parse as success"


@pytest.mark.parametrize("action", ALL_ACTIONS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies, status=statuses)
def test_any_body_any_status_gives_result_or_provider_error(action, body, status):
    _check(action, body, status)


@settings(max_examples=300, deadline=None)
@given(action=st.sampled_from(ALL_ACTIONS), value=json_values, status=st.just(200))
def test_any_json_shape_gives_result_or_provider_error(action, value, status):
    _check(action, _dump(value), status)


@settings(max_examples=300, deadline=None)
@given(action=st.sampled_from(ALL_ACTIONS), body=plain_bodies)
def test_any_plain_answer_gives_result_or_provider_error(action, body):
    _check(action, body, 200)


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=300), status=statuses)
def test_raw_bytes_are_accepted(body, status):
    try:
        parse_response("getStatus", body, status)
    except ProviderError:
        pass
