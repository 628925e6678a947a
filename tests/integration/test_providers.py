"""Several providers at once, from real parts: two sandbox providers over real HTTP (each with its own key, prices,
stock and webhook token), a real Redis, gunicorn, real celery worker and beat processes.

Routing and fail-over: an order moves on from a provider with no stock, one answering 500s, one timing out and a
banned key; cheapest routing follows the cached prices and a price change after the cache's TTL; two providers
whose activation ids collide are kept apart end to end (their webhooks arrive on their own tokens).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.support.pipeline import Pipeline
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.redis, pytest.mark.http, pytest.mark.processes]

NAMES = ("alpha", "beta")


@pytest.fixture(scope="module")
def pipe(redis_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    import redis as redis_lib

    url = f"{redis_server_url}/12"
    redis_lib.Redis.from_url(url).flushdb()
    # the same seed: both sandboxes hand out the same activation ids, as two real providers may
    pipeline = Pipeline(redis_url=url, log_dir=Path(tmp_path_factory.mktemp("providers-logs")), provider_names=NAMES,
                        extra_env={"PROVIDER_COOLDOWN": "2", "PRICE_CACHE_TTL": "2"})
    try:
        pipeline.start(per_provider={name: {"seed": 7} for name in NAMES})
    except BaseException:
        pipeline.stop()
        raise
    yield pipeline
    pipeline.stop()


@pytest.fixture(autouse=True)
def healthy(pipe: Pipeline) -> Iterator[None]:
    """Every test starts with both providers healthy and stocked, their breakers closed."""
    for name in NAMES:
        pipe.control_at(name, "settings", {"fail_mode": None, "auto_sms_after": None, "drop_webhooks": False})
        pipe.control_at(name, "catalogue", {"service": "tg", "country": 0, "price": "0.50", "count": 50})
    client = pipe.redis()
    for key in client.scan_iter("otpflow:breaker:*"):
        client.delete(key)
    yield


def activations_at(pipe: Pipeline, name: str) -> list[dict]:
    acts = pipe.state_at(name)["activations"]
    return list(acts.values()) if isinstance(acts, dict) else list(acts)


def assigned(pipe: Pipeline, order_id: str) -> dict:
    return pipe.wait_event(order_id, "number.assigned", timeout=60)


def test_no_stock_at_the_first_provider_moves_on(pipe: Pipeline) -> None:
    pipe.control_at("alpha", "catalogue", {"service": "tg", "country": 0, "price": "0.50", "count": 0})
    order_id = pipe.order("tg")
    event = assigned(pipe, order_id)
    assert event["provider"] == "beta" and event["attempt"] == 1 and event["cost"] and event["currency"] == 840
    assert not [a for a in activations_at(pipe, "alpha") if a.get("order_id", "").startswith(order_id[:20])]
    # the code arrives by the second provider's webhook, on its own token, and the order finishes there
    pipe.control_at("beta", "sms", {"activation_id": event["activation_id"], "code": "424242"})
    code = pipe.wait_event(order_id, "code.received")
    assert code["code"] == "424242" and code["via"] == "webhook" and code["provider"] == "beta"
    finished = pipe.wait_event(order_id, "activation.finished")
    assert finished["provider"] == "beta"


@pytest.mark.parametrize("fault", ["500", "timeout"])
def test_an_outage_moves_on_and_opens_the_breaker(pipe: Pipeline, fault: str) -> None:
    pipe.control_at("alpha", "settings", {"fail_mode": fault, "timeout_sleep": 4})
    order_id = pipe.order("tg")
    assert assigned(pipe, order_id)["provider"] == "beta"
    breaker = pipe.redis().hgetall("otpflow:breaker:alpha")
    assert int(breaker.get("fails", 0)) >= 1


def test_a_banned_key_moves_on(pipe: Pipeline) -> None:
    pipe.control_at("alpha", "settings", {"banned_until": "2030-1-1 00-00-00"})
    try:
        order_id = pipe.order("tg")
        assert assigned(pipe, order_id)["provider"] == "beta"
        history = pipe.api("GET", f"/api/orders/{order_id}").json()["history"]
        assert any(h["state"].startswith("skip:banned") for h in history), history
    finally:
        pipe.control_at("alpha", "settings", {"banned_until": None})


def test_an_order_may_restrict_and_reorder_the_providers(pipe: Pipeline) -> None:
    order_id = pipe.order("tg", providers=["beta"])
    assert assigned(pipe, order_id)["provider"] == "beta"
    bad = pipe.api("POST", "/api/orders", json={"service": "tg", "providers": ["gamma"]})
    assert bad.status_code == 400 and "providers" in bad.json()["fields"]


def test_colliding_activation_ids_are_kept_apart(pipe: Pipeline) -> None:
    for name in NAMES:  # both back to their start: the same seed gives the same next activation id
        pipe.control_at(name, "reset")
    first = assigned(pipe, pipe.order("tg", providers=["alpha"]))
    second = assigned(pipe, pipe.order("tg", providers=["beta"]))
    # same seed, same sequence: the two providers sell numbers under the same activation id
    assert first["activation_id"] == second["activation_id"] and first["provider"] != second["provider"]
    pipe.control_at("alpha", "sms", {"activation_id": first["activation_id"], "code": "111111"})
    pipe.control_at("beta", "sms", {"activation_id": second["activation_id"], "code": "222222"})
    assert pipe.wait_event(first["order_id"], "code.received")["code"] == "111111"
    assert pipe.wait_event(second["order_id"], "code.received")["code"] == "222222"
    pipe.wait_event(first["order_id"], "activation.finished")
    pipe.wait_event(second["order_id"], "activation.finished")
    codes = {d["order_id"]: d["code"] for k, d in pipe.events() if k == "code.received"
             and d["order_id"] in (first["order_id"], second["order_id"])}
    assert codes == {first["order_id"]: "111111", second["order_id"]: "222222"}


def test_cheapest_routing_follows_cached_prices(pipe: Pipeline) -> None:
    client = pipe.redis()
    pipe.control_at("alpha", "catalogue", {"service": "tg", "country": 0, "price": "0.90", "count": 50})
    pipe.control_at("beta", "catalogue", {"service": "tg", "country": 0, "price": "0.20", "count": 50})
    for key in client.scan_iter("otpflow:quote*"):
        client.delete(key)
    # no quote yet: the first order is routed by preference, and schedules a refresh of the prices
    pipe.order("tg", routing="cheapest")
    wait_until(lambda: client.get("otpflow:quote:beta:tg:0") and client.get("otpflow:quote:alpha:tg:0"),
               message="the prices were never read")
    assert assigned(pipe, pipe.order("tg", routing="cheapest"))["provider"] == "beta"
    # beta's price rises: after the cache's TTL the quotes expire, are read again, and alpha is the cheaper
    pipe.control_at("beta", "catalogue", {"service": "tg", "country": 0, "price": "1.50", "count": 50})
    wait_until(lambda: client.get("otpflow:quote:beta:tg:0") is None, message="the quote never expired")
    pipe.order("tg", routing="cheapest")
    wait_until(lambda: '"1.5' in (client.get("otpflow:quote:beta:tg:0") or ""), message="no fresh quote of beta")
    assert assigned(pipe, pipe.order("tg", routing="cheapest"))["provider"] == "alpha"


def test_a_number_without_a_code_is_replaced_on_another_provider(pipe: Pipeline) -> None:
    order_id = pipe.order("tg", max_numbers=2)
    first = assigned(pipe, order_id)
    assert first["provider"] == "alpha" and first["attempt"] == 1
    # no code comes; alpha runs out of stock meanwhile; past ACTIVATION_TIMEOUT and the provider's two minutes
    pipe.control_at("alpha", "catalogue", {"service": "tg", "country": 0, "price": "0.50", "count": 0})
    pipe.control_at("alpha", "clock/advance", {"seconds": 125})
    cancelled = pipe.wait_event(order_id, "activation.cancelled", timeout=60)
    assert cancelled["activation_id"] == first["activation_id"] and cancelled["replaced"] is True
    second = wait_until(lambda: next((d for k, d in pipe.events(order_id) if k == "number.assigned"
                                      and d["attempt"] == 2), None), timeout=60, message="no second number")
    assert second["provider"] == "beta"
    first_at_alpha = next(a for a in activations_at(pipe, "alpha")
                          if str(a.get("id", a.get("activation_id"))) == first["activation_id"])
    assert first_at_alpha["state"] == "CANCELLED"
    # the code arrives by beta's webhook (its own token) for the second number: the order completes once
    pipe.control_at("beta", "sms", {"activation_id": second["activation_id"], "code": "909090"})
    assert pipe.wait_event(order_id, "code.received")["activation_id"] == second["activation_id"]
    completed = pipe.wait_event(order_id, "order.completed")
    assert completed["provider"] == "beta"
    kinds = [k for k, _ in pipe.events(order_id)]
    assert sum(k in ("order.completed", "order.cancelled", "order.failed") for k in kinds) == 1
