"""Business metrics on /metrics, counted from the events stream at scrape time (webhook/metrics.py EventCounts)."""
from __future__ import annotations

import json
from typing import Any

import fakeredis
from prometheus_client.parser import text_string_to_metric_families

from lifecycle.outbox.events import EventType, make_event
from webhook.metrics import EventCounts

from .conftest import Harness, MakeHarness
from .test_health import _down

T0 = 1_750_000_000.0


def emit(redis: Any, type_: EventType, order_id: str, at: float, **fields: Any) -> None:
    """An event as the transition script writes it (record fields filled in: service, country, provider)."""
    spec = make_event(type_, order_id, at, **fields)
    redis.xadd("otpflow:events", {"type": spec.type.value, "data": spec.to_json()})


def one_order(redis: Any, order_id: str, *, provider: str = "cheap", code_after: float = 12.0,
              via: str = "webhook") -> None:
    where = {"service": "tg", "country": 0, "provider": provider}
    emit(redis, EventType.NUMBER_ASSIGNED, order_id, T0, activation_id=f"a-{order_id}", cost="0.2", **where)
    emit(redis, EventType.CODE_RECEIVED, order_id, T0 + code_after, activation_id=f"a-{order_id}", code="1",
         via=via, **where)
    emit(redis, EventType.CODE_RECEIVED, order_id, T0 + code_after + 50, activation_id=f"a-{order_id}",
         code="2", via="poll", **where)  # a second code: counted as a code, not as a time to code
    emit(redis, EventType.ACTIVATION_FINISHED, order_id, T0 + 30, activation_id=f"a-{order_id}", reason="auto",
         **where)
    emit(redis, EventType.ORDER_COMPLETED, order_id, T0 + 30, reason="auto", **where)


def samples(harness: Harness) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    text = harness.client.get("/metrics").get_data(as_text=True)
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_orders_numbers_codes_and_time_to_code(harness: Harness) -> None:
    one_order(harness.redis, "o1", code_after=12.0)
    one_order(harness.redis, "o2", provider="steady", code_after=45.0, via="poll")
    emit(harness.redis, EventType.NUMBER_ASSIGNED, "o3", T0, activation_id="a-o3", service="tg", country=0,
         provider="cheap")
    emit(harness.redis, EventType.ACTIVATION_CANCELLED, "o3", T0 + 1200, activation_id="a-o3", reason="timeout",
         service="tg", country=0, provider="cheap")
    emit(harness.redis, EventType.ORDER_FAILED, "o3", T0 + 1200, reason="no_numbers", service="tg", country=0,
         provider="cheap")
    got = samples(harness)
    assert got["otpflow_orders_total"] == {
        (("country", "0"), ("outcome", "completed"), ("provider", "cheap"), ("service", "tg")): 1.0,
        (("country", "0"), ("outcome", "completed"), ("provider", "steady"), ("service", "tg")): 1.0,
        (("country", "0"), ("outcome", "failed"), ("provider", "cheap"), ("service", "tg")): 1.0,
    }
    assert got["otpflow_numbers_total"][(("country", "0"), ("provider", "cheap"), ("service", "tg"))] == 2.0
    assert got["otpflow_activations_total"] == {
        (("country", "0"), ("outcome", "finished"), ("provider", "cheap"), ("service", "tg")): 1.0,
        (("country", "0"), ("outcome", "finished"), ("provider", "steady"), ("service", "tg")): 1.0,
        (("country", "0"), ("outcome", "cancelled"), ("provider", "cheap"), ("service", "tg")): 1.0,
    }
    assert got["otpflow_codes_total"] == {
        (("provider", "cheap"), ("service", "tg"), ("via", "webhook")): 1.0,
        (("provider", "cheap"), ("service", "tg"), ("via", "poll")): 1.0,
        (("provider", "steady"), ("service", "tg"), ("via", "poll")): 2.0,
    }
    assert got["otpflow_order_failures_total"] == {(("provider", "cheap"), ("reason", "no_numbers")): 1.0}
    ttc = got["otpflow_time_to_code_seconds_bucket"]
    assert ttc[(("le", "10.0"), ("provider", "cheap"), ("service", "tg"))] == 0.0
    assert ttc[(("le", "20.0"), ("provider", "cheap"), ("service", "tg"))] == 1.0
    assert ttc[(("le", "60.0"), ("provider", "steady"), ("service", "tg"))] == 1.0
    assert got["otpflow_time_to_code_seconds_count"][(("provider", "cheap"), ("service", "tg"))] == 1.0
    assert got["otpflow_time_to_code_seconds_sum"][(("provider", "steady"), ("service", "tg"))] == 45.0


def test_each_event_is_counted_once_across_scrapes_and_processes(make_harness: MakeHarness) -> None:
    shared = fakeredis.FakeRedis(decode_responses=True)
    web1, web2 = make_harness(redis_client=shared), make_harness(redis_client=shared)
    one_order(shared, "o1")
    samples(web1)
    samples(web2)
    one_order(shared, "o2")
    emit(shared, EventType.NUMBER_ASSIGNED, "o3", T0, activation_id="a-o3", service="tg", country=0,
         provider="cheap")
    got = samples(web2)
    assert got["otpflow_numbers_total"][(("country", "0"), ("provider", "cheap"), ("service", "tg"))] == 3.0
    assert samples(web1)["otpflow_orders_total"] == got["otpflow_orders_total"]
    # the number of o3 still awaits its code; o1's and o2's were forgotten when their orders ended
    assert set(shared.hkeys("otpflow:metrics:numbers")) == {"o3"}


def test_a_code_counted_in_a_later_batch_still_gets_its_time(harness: Harness) -> None:
    counts = EventCounts(harness.redis, harness.ctx.keys)
    where = {"service": "tg", "country": 0, "provider": "cheap"}
    emit(harness.redis, EventType.NUMBER_ASSIGNED, "o1", T0, activation_id="a1", **where)
    assert counts.advance(batch=1) == 1
    emit(harness.redis, EventType.CODE_RECEIVED, "o1", T0 + 7, activation_id="a1", code="5", via="webhook",
         **where)
    emit(harness.redis, EventType.CODE_RECEIVED, "o1", T0 + 8, activation_id="a1", code="6", via="webhook",
         **where)
    assert counts.advance(batch=1) == 2  # two batches of one
    read = counts.read()
    assert read["ttc_count|cheap|tg"] == 1 and read["ttc_sum|cheap|tg"] == 7.0


def test_rents_and_unreadable_entries(harness: Harness) -> None:
    where = {"service": "full", "country": 0, "provider": "cheap"}
    emit(harness.redis, EventType.RENT_STARTED, "r1", T0, rent_id="9", **where)
    emit(harness.redis, EventType.RENT_SMS, "r1", T0 + 1, rent_id="9", text="hi", via="webhook", **where)
    emit(harness.redis, EventType.ORDER_FAILED, "r2", T0, kind="rent", reason="no_numbers", **where)
    harness.redis.xadd("otpflow:events", {"type": "code.received", "data": "not json"})
    harness.redis.xadd("otpflow:events", {"type": "code.received", "data": json.dumps([1])})
    got = samples(harness)
    assert got["otpflow_rents_total"] == {
        (("country", "0"), ("outcome", "started"), ("provider", "cheap"), ("service", "full")): 1.0,
        (("country", "0"), ("outcome", "failed"), ("provider", "cheap"), ("service", "full")): 1.0,
    }
    assert got["otpflow_rent_sms_total"] == {(("provider", "cheap"), ("via", "webhook")): 1.0}
    assert "otpflow_orders_total" not in got


def test_no_business_metrics_and_no_error_when_redis_is_down(make_harness: MakeHarness, closed_port: int) -> None:
    rv = _down(make_harness, closed_port).client.get("/metrics")
    assert rv.status_code == 200 and "otpflow_orders_total" not in rv.get_data(as_text=True)
