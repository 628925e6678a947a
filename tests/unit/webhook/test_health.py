"""/healthz, /readyz, /metrics."""
from __future__ import annotations

import time

from config.redis_client import make_redis
from config.settings import Settings

from .conftest import WEBHOOK, Harness, MakeHarness


def _down(make_harness: MakeHarness, port: int) -> Harness:
    return make_harness(redis_client=make_redis(Settings(redis_url=f"redis://127.0.0.1:{port}/0")))


def test_healthz_does_no_io(make_harness: MakeHarness, closed_port: int) -> None:
    rv = _down(make_harness, closed_port).client.get("/healthz")
    assert rv.status_code == 200 and rv.get_json() == {"status": "ok"}


def test_readyz(harness: Harness, make_harness: MakeHarness, closed_port: int) -> None:
    ready = harness.client.get("/readyz").get_json()
    assert ready["status"] == "ready" and ready["inbox"] == {"pending": 0, "oldest_age_seconds": 0.0}
    rv = _down(make_harness, closed_port).client.get("/readyz")
    assert rv.status_code == 503 and rv.headers["Retry-After"]
    assert rv.get_json()["error"] == "unavailable" and "ConnectionError" in rv.get_json()["reason"]


def _value(text: str, name: str, labels: str = "") -> float:
    for line in text.splitlines():
        if line.startswith(f"{name}{labels} ") or (not labels and line.startswith(f"{name} ")):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name}{labels} not in metrics")


def test_metrics_counters_histogram_and_redis_gauges(harness: Harness) -> None:
    text0 = harness.client.get("/metrics").get_data(as_text=True)
    accepted0 = _value(text0, "otpflow_webhooks_total", '{outcome="accepted"}')
    malformed0 = _value(text0, "otpflow_webhooks_total", '{outcome="malformed"}')
    count0 = _value(text0, "otpflow_webhook_duration_seconds_count")

    harness.client.post(WEBHOOK, json={"activationId": "1", "code": "1"})
    harness.client.post(WEBHOOK, json={"activationId": "1", "code": "2"})
    harness.client.post(WEBHOOK, data="nope")
    harness.redis.zadd("otpflow:deadlines", {"o-1": time.time() - 5, "o-2": time.time() + 3600})

    rv = harness.client.get("/metrics")
    assert rv.status_code == 200 and rv.content_type.startswith("text/plain")
    text = rv.get_data(as_text=True)
    assert _value(text, "otpflow_webhooks_total", '{outcome="accepted"}') == accepted0 + 2
    assert _value(text, "otpflow_webhooks_total", '{outcome="malformed"}') == malformed0 + 1
    for outcome in ("duplicate", "unauthorized", "forbidden", "too_large", "unavailable"):
        _value(text, "otpflow_webhooks_total", f'{{outcome="{outcome}"}}')
    assert _value(text, "otpflow_webhook_duration_seconds_count") == count0 + 3
    assert _value(text, "otpflow_redis_up") == 1
    assert _value(text, "otpflow_inbox_pending") == 2
    assert _value(text, "otpflow_dead_letters") == 1
    assert _value(text, "otpflow_deadlines_due") == 1


def test_metrics_still_served_when_redis_is_down(make_harness: MakeHarness, closed_port: int) -> None:
    rv = _down(make_harness, closed_port).client.get("/metrics")
    text = rv.get_data(as_text=True)
    assert rv.status_code == 200
    assert _value(text, "otpflow_redis_up") == 0
    assert "otpflow_inbox_pending" not in text
    assert "otpflow_webhooks_total" in text


def test_metrics_multiprocess_mode(harness: Harness, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """With PROMETHEUS_MULTIPROC_DIR set, /metrics aggregates the workers' files (here: none written yet)."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    text = harness.client.get("/metrics").get_data(as_text=True)
    assert "otpflow_inbox_pending" in text  # Redis gauges still there
    assert "otpflow_webhooks_total" not in text  # process-local counters not double-reported
