"""Spend limits from real parts: sandbox providers over real HTTP, a real Redis, gunicorn and real celery worker
(two processes) and beat. Twenty orders at once against a daily limit that pays for four: four purchases, the rest
``budget_exceeded`` before any purchase, and the sandbox's own ledger agrees with our accounting to the cent; with
two providers the orders past the first one's limit go to the second.
"""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.support.pipeline import Pipeline
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.redis, pytest.mark.http, pytest.mark.processes]

NAMES = ("alpha", "beta")
PRICE = "0.50"


@pytest.fixture
def pipe(redis_server_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    import redis as redis_lib

    url = f"{redis_server_url}/13"
    redis_lib.Redis.from_url(url).flushdb()
    env = {"PROVIDER_ALPHA_SPEND_LIMIT_DAILY": "2.00",   # four numbers at 0.50
           "PROVIDER_BETA_SPEND_LIMIT_DAILY": "3.00",    # six
           "MAX_PRICE": PRICE, "ACTIVATION_TIMEOUT": "600"}  # no refund while the test counts
    pipeline = Pipeline(redis_url=url, log_dir=tmp_path, provider_names=NAMES, extra_env=env)
    try:
        pipeline.start()
        for name in NAMES:
            pipeline.control_at(name, "catalogue", {"service": "tg", "country": 0, "price": PRICE, "count": 100})
    except BaseException:
        pipeline.stop()
        raise
    yield pipeline
    pipeline.stop()


def outcomes(pipe: Pipeline, order_ids: list[str]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Each order's first decisive event, once every order has one: number.assigned or order.failed."""
    def all_decided() -> dict[str, tuple[str, dict[str, Any]]] | None:
        seen: dict[str, tuple[str, dict[str, Any]]] = {}
        for kind, data in pipe.events():
            if kind in ("number.assigned", "order.failed") and data.get("order_id") in order_ids:
                seen.setdefault(data["order_id"], (kind, data))
        return seen if len(seen) == len(order_ids) else None

    return wait_until(all_decided, timeout=90, check=pipe.check_alive,
                      message=lambda: f"not every order decided\n{pipe.logs()}")


def charged_at(pipe: Pipeline, name: str) -> Decimal:
    """What the sandbox's own ledger charged (its entries are signed: charges negative)."""
    entries = pipe.state_at(name)["ledger"]
    return -sum((Decimal(e["amount"]) for e in entries if e["kind"] == "charge"), Decimal("0"))


def spend(pipe: Pipeline) -> dict[str, Any]:
    response = pipe.api("GET", "/api/spend")
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_twenty_orders_at_once_against_a_limit_for_four(pipe: Pipeline) -> None:
    ids = [pipe.order("tg", providers=["alpha"], order_id=f"m{i:02d}") for i in range(20)]
    decided = outcomes(pipe, ids)
    assigned = [d for kind, d in decided.values() if kind == "number.assigned"]
    failed = [d for kind, d in decided.values() if kind == "order.failed"]
    assert len(assigned) == 4 and {d["provider"] for d in assigned} == {"alpha"}
    assert len(failed) == 16 and {d["reason"] for d in failed} == {"budget_exceeded"}
    activations = pipe.state_at("alpha")["activations"]
    assert len(activations) == 4                      # the sandbox sold exactly four numbers
    report = spend(pipe)
    (alpha,) = [a for a in report["accounts"] if a["provider"] == "alpha"]
    assert Decimal(alpha["charged"]) == charged_at(pipe, "alpha") == Decimal("2.00")
    assert alpha["numbers"] == 4
    (window,) = [p for p in report["providers"] if p["provider"] == "alpha"]
    assert Decimal(window["spent_day"]) == Decimal("2.00") and Decimal(window["reserved"]) == 0


def test_past_the_first_providers_limit_orders_go_to_the_second(pipe: Pipeline) -> None:
    ids = [pipe.order("tg", order_id=f"n{i:02d}") for i in range(12)]
    decided = outcomes(pipe, ids)
    by_provider: dict[str, int] = {}
    for kind, data in decided.values():
        key = data["provider"] if kind == "number.assigned" else data["reason"]
        by_provider[key] = by_provider.get(key, 0) + 1
    assert by_provider == {"alpha": 4, "beta": 6, "budget_exceeded": 2}
    accounts = {a["provider"]: a for a in spend(pipe)["accounts"]}
    for name in NAMES:
        assert Decimal(accounts[name]["charged"]) == charged_at(pipe, name)
    assert charged_at(pipe, "alpha") == Decimal("2.00") and charged_at(pipe, "beta") == Decimal("3.00")
