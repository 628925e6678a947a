"""POST/GET /api/rents and the rent commands (webhook/rents_api.py) on fakeredis with a recording producer."""
from __future__ import annotations

from typing import Any

import pytest

from tests.unit.lifecycle.conftest import make_rents
import redis

from config.settings import Settings
from lifecycle.activation import ORDER_ID_RULE
from lifecycle.rent import RentService

TOKEN = "api-token-0123456789abcdef"


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def send_task(self, name: str, *args: Any, kwargs: dict[str, Any] | None = None, **_: Any) -> None:
        self.sent.append((name, dict(kwargs or {})))


@pytest.fixture
def settings() -> Settings:
    return Settings(api_token=TOKEN, webhook_token="webhook-token-0123456789")


@pytest.fixture
def producer() -> Producer:
    return Producer()


@pytest.fixture
def client(fake_redis: Any, producer: Producer, settings: Settings) -> Any:
    from webhook.app import create_app

    return create_app(settings, redis_client=fake_redis, celery_app=producer).test_client()


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_active(fake_redis: Any, settings: Settings, order_id: str) -> RentService:
    svc = make_rents(fake_redis, settings)
    svc.store.start_buying(order_id, provider="sms-activate")
    svc.store.assign_number(order_id, provider="sms-activate", rent_id="900", phone="7999", end_date=None,
                            end_at=svc.clock() + 3600)
    return svc


def test_auth_required(client: Any) -> None:
    for headers in ({}, auth("wrong")):
        r = client.post("/api/rents", json={"service": "full"}, headers=headers)
        assert r.status_code == 401 and r.get_json()["error"] == "unauthorized"


def test_create_idempotent_publishes_place_rent_once(client: Any, producer: Producer) -> None:
    r = client.post("/api/rents", json={"service": "full", "country": 0, "rent_time": 12, "order_id": "k1"},
                    headers=auth())
    assert r.status_code == 202 and r.get_json() == {"order_id": "k1", "state": "pending", "created": True}
    r2 = client.post("/api/rents", json={"service": "full", "order_id": "k1"}, headers=auth())
    assert r2.status_code == 200 and r2.get_json()["created"] is False
    assert producer.sent == [("otpflow.place_rent", {"order_id": "k1"})]
    body = client.get("/api/rents/k1", headers=auth()).get_json()
    assert body["kind"] == "rent" and body["hours"] == 12 and body["state"] == "pending" and body["history"]


@pytest.mark.parametrize("body", [{}, {"service": ""}, {"service": "full", "rent_time": 1},
                                  {"service": "full", "order_id": "a b"}, {"service": "full", "rent_time": "x"}])
def test_validation(client: Any, body: dict) -> None:
    r = client.post("/api/rents", json=body, headers=auth())
    assert r.status_code == 400 and r.get_json()["error"] == "invalid_request"


def test_a_bad_order_id_is_named_with_the_other_bad_fields(client: Any) -> None:
    r = client.post("/api/rents", json={"service": "full", "rent_time": 1, "order_id": "x" * 129}, headers=auth())
    assert r.status_code == 400 and set(r.get_json()["fields"]) == {"rent_time", "order_id"}
    assert r.get_json()["fields"]["order_id"] == [ORDER_ID_RULE]


def test_a_rent_may_name_its_providers_as_an_order_does(client: Any, fake_redis: Any, settings: Settings) -> None:
    r = client.post("/api/rents", json={"service": "full", "order_id": "k2", "providers": ["sms-activate"]},
                    headers=auth())
    assert r.status_code == 202, r.get_json()
    assert make_rents(fake_redis, settings).get("k2").preference == ("sms-activate",)
    r = client.post("/api/rents", json={"service": "full", "providers": ["nowhere"]}, headers=auth())
    assert r.status_code == 400 and r.get_json()["fields"] == {"providers": ["not configured: nowhere"]}


def test_default_rent_time_is_4(client: Any) -> None:
    oid = client.post("/api/rents", json={"service": "full"}, headers=auth()).get_json()["order_id"]
    assert client.get(f"/api/rents/{oid}", headers=auth()).get_json()["hours"] == 4


def test_commands(client: Any, producer: Producer, fake_redis: Any, settings: Settings) -> None:
    assert client.post("/api/rents/nope/finish", headers=auth()).status_code == 404
    assert client.post("/api/rents/x/explode", headers=auth()).status_code == 404
    client.post("/api/rents", json={"service": "full", "order_id": "r1"}, headers=auth())
    r = client.post("/api/rents/r1/finish", headers=auth())
    assert r.status_code == 409 and r.get_json()["state"] == "pending"
    make_active(fake_redis, settings, "r1")
    assert client.post("/api/rents/r1/prolong", json={}, headers=auth()).status_code == 400
    r = client.post("/api/rents/r1/prolong", json={"hours": 12}, headers=auth())
    assert r.status_code == 202 and r.get_json()["command"] == "prolong"
    assert producer.sent[-1] == ("otpflow.rent_command", {"order_id": "r1", "command": "prolong"})
    assert client.post("/api/rents/r1/finish", headers=auth()).status_code == 409   # one command at a time
    assert client.get("/api/rents/r1", headers=auth()).get_json()["command"] == "prolong"


def test_cancel_after_an_sms_is_409_cant_cancel(client: Any, fake_redis: Any, settings: Settings) -> None:
    client.post("/api/rents", json={"service": "full", "order_id": "r2"}, headers=auth())
    svc = make_active(fake_redis, settings, "r2")
    svc.store.receive_sms("r2", rent_id="900", text="hi", phone_from="A", date="2025-01-01 00:00:00", via="webhook")
    r = client.post("/api/rents/r2/cancel", headers=auth())
    assert r.status_code == 409 and r.get_json()["reason"] == "cant_cancel"


def test_redis_down_is_503(producer: Producer, settings: Settings) -> None:
    from webhook.app import create_app

    broken = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.05)
    client = create_app(settings, redis_client=broken, celery_app=producer).test_client()
    assert client.post("/api/rents", json={"service": "full"}, headers=auth()).status_code == 503
