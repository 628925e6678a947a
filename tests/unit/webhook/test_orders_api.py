"""POST/GET /api/orders and the command endpoints (webhook/orders_api.py) on fakeredis with a recording producer."""
from __future__ import annotations

from typing import Any

import pytest
import redis

from config.settings import Settings
from lifecycle.activation import ORDER_ID_RULE

TOKEN = "api-token-0123456789abcdef"


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def send_task(self, name: str, *args: Any, kwargs: dict[str, Any] | None = None, **_: Any) -> None:
        self.sent.append((name, dict(kwargs or {})))


@pytest.fixture
def producer() -> Producer:
    return Producer()


@pytest.fixture
def client(fake_redis: Any, producer: Producer) -> Any:
    from webhook.app import create_app

    settings = Settings(api_token=TOKEN, webhook_token="webhook-token-0123456789")
    app = create_app(settings, redis_client=fake_redis, celery_app=producer)
    return app.test_client()


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_bad_token_is_401_with_json(client: Any) -> None:
    for headers in ({}, auth("wrong"), {"Authorization": TOKEN}):
        r = client.post("/api/orders", json={"service": "tg"}, headers=headers)
        assert r.status_code == 401 and r.get_json()["error"] == "unauthorized"


def test_create_is_idempotent_and_publishes_once(client: Any, producer: Producer) -> None:
    r = client.post("/api/orders", json={"service": "tg", "country": 0, "max_price": "0.5", "order_id": "k1"},
                    headers=auth())
    assert r.status_code == 202 and r.get_json()["order_id"] == "k1" and r.get_json()["state"] == "pending"
    r2 = client.post("/api/orders", json={"service": "tg", "order_id": "k1"}, headers=auth())
    assert r2.status_code == 200 and r2.get_json()["order_id"] == "k1"
    assert producer.sent == [("otpflow.place_order", {"order_id": "k1"})]
    r3 = client.post("/api/orders", json={"service": "tg"}, headers=auth())
    assert r3.status_code == 202 and len(r3.get_json()["order_id"]) == 32


@pytest.mark.parametrize("body", [{}, {"service": ""}, {"service": "tg", "country": "x"},
                                  {"service": "tg", "activation_type": 7}, {"service": "tg", "order_id": "a b"}])
def test_validation(client: Any, body: dict[str, Any]) -> None:
    r = client.post("/api/orders", json=body, headers=auth())
    assert r.status_code == 400


def test_a_bad_order_id_is_named_with_the_other_bad_fields(client: Any) -> None:
    r = client.post("/api/orders", json={"service": "tg", "country": "x", "order_id": "a/b"}, headers=auth())
    assert r.status_code == 400 and set(r.get_json()["fields"]) == {"country", "order_id"}
    assert r.get_json()["fields"]["order_id"] == [ORDER_ID_RULE]


def test_get_and_commands(client: Any, producer: Producer) -> None:
    client.post("/api/orders", json={"service": "tg", "order_id": "k1"}, headers=auth())
    r = client.get("/api/orders/k1", headers=auth())
    body = r.get_json()
    assert r.status_code == 200 and body["state"] == "pending" and body["history"][0]["state"] == "pending"
    assert client.get("/api/orders/nope", headers=auth()).status_code == 404
    assert client.post("/api/orders/k1/finish", headers=auth()).status_code == 409
    r = client.post("/api/orders/k1/cancel", headers=auth())
    assert r.status_code == 202
    assert producer.sent[-1] == ("otpflow.command", {"order_id": "k1", "command": "cancel"})
    assert client.post("/api/orders/nope/cancel", headers=auth()).status_code == 404


def test_redis_down_is_503(client: Any, fake_redis: Any, monkeypatch: Any) -> None:
    def boom(*_: Any, **__: Any) -> Any:
        raise redis.exceptions.ConnectionError("down")

    monkeypatch.setattr(fake_redis, "hgetall", boom)
    r = client.get("/api/orders/k1", headers=auth())
    assert r.status_code == 503


def test_a_cancel_inside_the_providers_first_minutes_says_when_it_goes(client: Any, fake_redis: Any) -> None:
    from config import domain

    settings = Settings(api_token=TOKEN, webhook_token="webhook-token-0123456789")
    r = client.post("/api/orders", json={"service": "tg", "order_id": "early"}, headers=auth())
    assert r.status_code == 202
    store = domain.activation_store(settings, fake_redis)
    assert store.start_buying("early").ok
    assert store.choose_provider("early", provider="sms-activate", country=0, calls=1).ok
    assert store.assign_number("early", provider="sms-activate", activation_id="111", phone="79990001122",
                               cost="0.5", currency=840).ok
    r = client.post("/api/orders/early/cancel", headers=auth())
    body = r.get_json()
    assert r.status_code == 202 and body["deferred_reason"] == "early_cancel" and body["deferred_until"].endswith("Z")
    shown = client.get("/api/orders/early", headers=auth()).get_json()
    assert shown["number_at"].endswith("Z") and all(h["at"].endswith("Z") for h in shown["history"])
    r = client.post("/api/orders", json={"service": "tg", "order_id": "pending"}, headers=auth())
    assert "deferred_until" not in client.post("/api/orders/pending/cancel", headers=auth()).get_json()
