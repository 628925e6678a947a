"""Hostile bodies over real HTTP against the Procfile's web process: the only answers allowed are 2xx, 4xx and 503,
and every 2xx webhook is findable afterwards in the inbox (by its fingerprint) or the dead letters; every order
answered 2xx can be read back. Also the amount bound of the order API and of ``otpflow order`` (item 9)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
import redis
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.test_hardening_ingress import Web, start_web
from webhook.schemas import MalformedWebhook, parse_webhook

pytestmark = [pytest.mark.redis, pytest.mark.http, pytest.mark.processes]

ROOT = Path(__file__).resolve().parents[2]

_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40) | st.sampled_from(
    ["\ud83d", "\udc00x", "1e999999", "NaN", "", " ", "\x00", "0" * 30])
_scalar = st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30) | st.floats() | _text
_json = st.recursive(_scalar, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
                     max_leaves=12)
_webhook_like = st.fixed_dictionaries({}, optional={
    "activationId": _scalar, "id": _scalar, "code": _scalar, "text": _scalar, "receivedAt": _scalar,
    "rentId": _scalar, "sms": _json, "service": _scalar, "country": _scalar})
_order_like = st.fixed_dictionaries({}, optional={
    "service": _scalar, "country": _scalar, "operator": _scalar, "max_price": _scalar, "activation_type": _scalar,
    "forward": _scalar, "order_id": _scalar})


def _encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=True, allow_nan=True).encode()


_bodies = (_webhook_like.map(_encode) | _json.map(_encode) | st.binary(max_size=200)
           | st.sampled_from([b'{"activationId":10,"text":"\\ud83d"}', b"rentId=1&sms=" + b"[" * 3000]))


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory, redis_server_url: str) -> Iterator[Web]:
    redis.Redis.from_url(f"{redis_server_url}/12").flushdb()
    server = start_web(f"{redis_server_url}/12", tmp_path_factory.mktemp("fuzz"))
    try:
        yield server
    finally:
        server.process.stop()


def _client(redis_server_url: str) -> redis.Redis:
    return redis.Redis.from_url(f"{redis_server_url}/12", decode_responses=True)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=_bodies)
def test_webhook_answers_are_2xx_4xx_or_503_and_every_2xx_is_stored(web: Web, redis_server_url: str,
                                                                    body: bytes) -> None:
    rv = web.post(body)
    assert rv.status_code < 300 or 400 <= rv.status_code < 500 or rv.status_code == 503, (rv.status_code, body)
    if rv.status_code >= 300:
        return
    parsed = parse_webhook(body)  # a 2xx body is a webhook
    stored = {fields.get("fp") for _id, fields in _client(redis_server_url).xrange("otpflow:inbox")}
    assert parsed.fingerprint in stored, (body, rv.text)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=_order_like.map(_encode) | _json.map(_encode) | st.binary(max_size=100))
def test_order_answers_are_2xx_4xx_or_503_and_every_2xx_order_exists(web: Web, redis_server_url: str,
                                                                     body: bytes) -> None:
    token = _api_token(web)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    rv = requests.post(f"{web.url}/api/orders", data=body, headers=headers, timeout=5)
    assert rv.status_code < 300 or 400 <= rv.status_code < 500 or rv.status_code == 503, (rv.status_code, body)
    if rv.status_code < 300:
        order_id = rv.json()["order_id"]
        assert requests.get(f"{web.url}/api/orders/{order_id}", headers=headers, timeout=5).status_code == 200


def _api_token(web: Web) -> str:
    return web.process.env["API_TOKEN"]


@pytest.mark.parametrize("price", ["1e999999", "1e9999999", "-1", "0.123456", "NaN", "Infinity", "9" * 40])
def test_an_unbounded_max_price_is_refused_at_every_entry_point(web: Web, redis_server_url: str, price: str) -> None:
    """Item 9: ``1e999999`` was stored and a million-digit maxPrice sent to the provider."""
    headers = {"Authorization": f"Bearer {_api_token(web)}"}
    rv = requests.post(f"{web.url}/api/orders", json={"service": "tg", "max_price": price}, headers=headers,
                       timeout=5)
    assert rv.status_code == 400 and "max_price" in rv.json()["fields"], rv.text
    env = {**web.process.env, "PYTHONPATH": str(ROOT)}
    cli = subprocess.run([sys.executable, "-m", "otpflow.cli", "order", "tg", "--max-price", price],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert cli.returncode == 2 and "--max-price" in cli.stderr and "Traceback" not in cli.stderr, cli.stderr


def test_a_failed_publish_says_the_order_is_stored_and_never_invites_a_second_one(
        redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Item 8: ``otpflow order`` exited 1 with a traceback although the order was stored (and later bought)."""
    from kombu.exceptions import OperationalError

    from otpflow import commands

    class Broken:
        def send_task(self, *args: Any, **kwargs: Any) -> None:
            raise OperationalError("Error 111 connecting to the broker")

    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setattr(commands, "_publisher", lambda settings: Broken())
    code = commands.order(service="tg", country="0", operator=None, max_price="0.5", activation_type=None,
                          forward=False, order_id=None, wait=False, timeout=1)
    out, err = capsys.readouterr()
    answer = json.loads(out)
    assert code == 0 and answer["created"] is True and answer["published"] is False
    assert answer["order_id"] in err and "Do not run `otpflow order` again" in err and "Traceback" not in err
    stored = redis.Redis.from_url(redis_url, decode_responses=True).hgetall(f"otpflow:order:{answer['order_id']}")
    assert stored["state"] == "pending"
