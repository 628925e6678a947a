"""GET /api/orders: the listing the dashboard and scripts page through (newest first, by state, ISO 8601 times)."""
from __future__ import annotations

from datetime import datetime

from config import domain
from lifecycle.activation import OrderRequest

from .conftest import API_TOKEN, Harness

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def place(harness: Harness, count: int, *, at: list[float] | None = None) -> list[str]:
    """Place ``count`` orders, at the given placing times (default: one second apart)."""
    times = iter(at or [1_750_000_000.0 + i for i in range(count)])
    moment = [0.0]

    def clock() -> float:
        return moment[0]

    service = domain.order_service(harness.ctx.settings, harness.redis, clock=clock)
    ids = []
    for i in range(count):
        moment[0] = next(times)
        order, _ = service.submit(OrderRequest("tg", country=0, order_id=f"list-{i}"))
        ids.append(order.order_id)
    return ids


def newest_first(ids: list[str], at: list[float]) -> list[str]:
    return [i for _t, i in sorted(zip(at, ids), reverse=True)]


def test_needs_the_bearer_token(harness: Harness) -> None:
    assert harness.client.get("/api/orders").status_code == 401


def pages(harness: Harness, limit: int) -> list[list[str]]:
    out: list[list[str]] = []
    query: dict[str, object] = {"limit": limit}
    while True:
        page = harness.client.get("/api/orders", query_string=query, headers=AUTH).get_json()
        out.append([o["order_id"] for o in page["orders"]])
        if "next_before" not in page:
            return out
        query = {"limit": limit, "before": page["next_before"], "before_id": page["next_before_id"]}


def test_lists_newest_first_and_pages_with_next_before(harness: Harness) -> None:
    ids = place(harness, 5)
    listed = pages(harness, 2)
    assert listed[0] == ids[::-1][:2] and sum(listed, []) == ids[::-1]


def test_orders_of_the_same_millisecond_are_neither_lost_nor_repeated_across_pages(harness: Harness) -> None:
    at = [1_750_000_000.5, 1_750_000_001.25, 1_750_000_001.25, 1_750_000_001.25, 1_750_000_001.25, 1_750_000_002.0]
    ids = place(harness, len(at), at=at)
    for limit in (1, 2, 3, 4):
        assert sum(pages(harness, limit), []) == newest_first(ids, at), limit


def test_times_are_iso_8601(harness: Harness) -> None:
    place(harness, 1)
    order = harness.client.get("/api/orders", headers=AUTH).get_json()["orders"][0]
    assert order["state"] == "pending" and order["service"] == "tg"
    assert order["created_at"].endswith("Z") and datetime.fromisoformat(order["created_at"].replace("Z", "+00:00"))


def test_filters_by_state(harness: Harness) -> None:
    ids = place(harness, 3)
    harness.ctx.orders.store.fail(ids[1], reason="no_balance")
    failed = harness.client.get("/api/orders?state=failed", headers=AUTH).get_json()["orders"]
    assert [o["order_id"] for o in failed] == [ids[1]] and failed[0]["reason"] == "no_balance"
    both = harness.client.get("/api/orders?state=failed&state=pending", headers=AUTH).get_json()["orders"]
    assert len(both) == 3
    comma = harness.client.get("/api/orders?state=failed,pending", headers=AUTH).get_json()["orders"]
    assert len(comma) == 3


def test_bad_query_names_each_field(harness: Harness) -> None:
    rv = harness.client.get("/api/orders?state=lost&limit=0&before=yesterday&before_id=x", headers=AUTH)
    assert rv.status_code == 400
    fields = rv.get_json()["fields"]
    assert set(fields) == {"state", "limit", "before", "before_id"} and "unknown: lost" in fields["state"][0]


def test_before_accepts_unix_seconds(harness: Harness) -> None:
    place(harness, 2)
    assert harness.client.get("/api/orders?before=1", headers=AUTH).get_json() == {"orders": []}
