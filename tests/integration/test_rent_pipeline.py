"""The rent pipeline end to end, from real parts: a real Redis, the sandbox provider over real HTTP (it sends
the rent webhooks to the URL we gave getRentNumber: ``PUBLIC_URL/webhooks/<token>``), the web app under gunicorn,
real ``celery worker`` and ``celery beat`` processes."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.pipeline import Pipeline
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.redis, pytest.mark.http, pytest.mark.processes]


@pytest.fixture(scope="module")
def pipeline(redis_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    import redis as redis_lib

    url = f"{redis_server_url}/12"
    redis_lib.Redis.from_url(url).flushdb()
    pipe = Pipeline(redis_url=url, log_dir=Path(tmp_path_factory.mktemp("rent-logs")))
    pipe.extra_env["PUBLIC_URL"] = pipe.base_url
    # polls every 3 s: slow enough that the webhook (a few ms) always wins the race for the first SMS, so its
    # ``via`` is deterministic; fast enough for the dropped-webhook SMS to come by poll within the test
    pipe.extra_env.update({"POLL_AFTER": "3", "POLL_INTERVAL": "3"})
    try:
        pipe.start()
    except BaseException:
        pipe.stop()
        raise
    yield pipe
    pipe.stop()


def rent(pipeline: Pipeline, **fields: object) -> str:
    response = pipeline.api("POST", "/api/rents", json={"service": "full", "country": 0, **fields})
    assert response.status_code == 202, response.text
    return str(response.json()["order_id"])


def rent_sms(pipeline: Pipeline, order_id: str) -> list[dict]:
    return [data for kind, data in pipeline.events(order_id) if kind == "rent.sms"]


def wait_sms(pipeline: Pipeline, order_id: str, count: int, timeout: float = 30.0) -> list[dict]:
    def enough() -> list[dict] | None:
        got = rent_sms(pipeline, order_id)
        return got if len(got) >= count else None

    return wait_until(enough, timeout=timeout, check=pipeline.check_alive,
                      message=lambda: f"wanted {count} rent.sms for {order_id}; got {pipeline.events(order_id)}\n"
                                      f"{pipeline.logs()}")


def rent_polls(pipeline: Pipeline) -> int:
    """getRentStatus calls the workers made (one per poll of a rent with fewer than ten SMS)."""
    return sum(pipeline.provider_calls("getRentStatus").values())


def test_rent_sms_by_webhook_once_then_by_poll_then_finish(pipeline: Pipeline) -> None:
    pipeline.control("settings", {"duplicate_webhooks": 3, "drop_webhooks": False})
    order_id = rent(pipeline, rent_time=4)
    started = pipeline.wait_event(order_id, "rent.started")
    rent_id = started["rent_id"]
    assert started["phone"] and started["end_date"] and started["order_id"] == order_id

    pipeline.control("sms", {"rent_id": rent_id, "text": "Your code 2792", "phone_from": "SPORTMASTER"})
    [first] = wait_sms(pipeline, order_id, 1)
    assert first["via"] == "webhook" and first["text"] == "Your code 2792" and first["phone_from"] == "SPORTMASTER"
    assert first["rent_id"] == rent_id

    pipeline.control("settings", {"duplicate_webhooks": 1, "drop_webhooks": True})
    pipeline.control("sms", {"rent_id": rent_id, "text": "Second 5511", "phone_from": "BANK"})
    got = wait_sms(pipeline, order_id, 2)
    assert got[1]["via"] == "poll" and got[1]["text"] == "Second 5511"
    pipeline.control("settings", {"drop_webhooks": False})

    # every duplicate webhook delivered and drained, and another whole poll later: still exactly two
    def deliveries() -> list[dict]:
        return [d for d in pipeline.sandbox_state()["webhooks"] if d["kind"] == "rent" and d["ref"] == rent_id]

    wait_until(lambda: all(d["status"] != "pending" for d in deliveries()), message=lambda: str(deliveries()))
    pipeline.wait_inbox_drained()
    polls = rent_polls(pipeline)
    # the first poll counted may have been under way already; the second started after it
    wait_until(lambda: rent_polls(pipeline) >= polls + 2, message=lambda: f"no poll\n{pipeline.logs()}")
    deliveries = deliveries()
    assert all(d["url"] == pipeline.webhook_url for d in deliveries)     # getRentNumber got PUBLIC_URL's webhook
    assert [d["status"] for d in deliveries] == ["delivered"] * 3 + ["dropped"]
    assert len(rent_sms(pipeline, order_id)) == 2, pipeline.events(order_id)

    r = pipeline.api("POST", f"/api/rents/{order_id}/finish")
    assert r.status_code == 202, r.text
    finished = pipeline.wait_event(order_id, "rent.finished")
    assert finished["rent_id"] == rent_id and finished["reason"] == "command"
    body = pipeline.api("GET", f"/api/rents/{order_id}").json()
    assert body["state"] == "finished" and body["sms_count"] == 2
    types = [k for k, _ in pipeline.events(order_id)]
    assert types == ["rent.started", "rent.sms", "rent.sms", "rent.finished"]


def test_rent_cancel(pipeline: Pipeline) -> None:
    pipeline.control("settings", {"duplicate_webhooks": 1, "drop_webhooks": False})
    order_id = rent(pipeline)
    rent_id = pipeline.wait_event(order_id, "rent.started")["rent_id"]
    r = pipeline.api("POST", f"/api/rents/{order_id}/cancel")
    assert r.status_code == 202, r.text
    cancelled = pipeline.wait_event(order_id, "rent.cancelled")
    assert cancelled["rent_id"] == rent_id and cancelled["reason"] == "command"
    rents = pipeline.sandbox_state()["rents"]
    entry = rents[rent_id] if isinstance(rents, dict) else next(x for x in rents if str(x["id"]) == rent_id)
    assert entry["state"] == "CANCELLED"
    assert [k for k, _ in pipeline.events(order_id)] == ["rent.started", "rent.cancelled"]
    assert Decimal(pipeline.wait_event(order_id, "rent.started")["cost"]) == Decimal(entry["cost"])
    # the books equal the provider's ledger: every rent's periods charged, the cancelled ones refunded
    every = list(rents.values()) if isinstance(rents, dict) else rents
    paid = [sum((Decimal(p["price"]) for p in x["history"]), Decimal(0)) for x in every]
    back = [amount for x, amount in zip(every, paid) if x["state"] == "CANCELLED"]
    (books,) = [a for a in pipeline.api("GET", "/api/spend").json()["accounts"] if a["service"] == "full"]
    assert (Decimal(books["charged"]), Decimal(books["refunded"])) == (sum(paid), sum(back)), (books, every)


def test_rent_idempotent_order_id(pipeline: Pipeline) -> None:
    runs_before = sum(pipeline.task_runs("otpflow.place_rent").values())
    order_id = rent(pipeline, order_id="rent-idem-1")
    again = pipeline.api("POST", "/api/rents", json={"service": "full", "order_id": "rent-idem-1"})
    assert again.status_code == 200 and again.json()["created"] is False
    pipeline.wait_event(order_id, "rent.started")
    # the purchase task has completed, and two sweeps later any other work published by the two POSTs has run
    wait_until(lambda: sum(pipeline.task_runs("otpflow.place_rent").values()) > runs_before,
               message=lambda: f"place_rent never completed\n{pipeline.logs()}")
    pipeline.wait_sweeps(2)
    assert [k for k, _ in pipeline.events(order_id)].count("rent.started") == 1
