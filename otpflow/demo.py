"""``otpflow demo``: place one order through the public HTTP API and print its downstream events.

It is what a downstream developer would write first, so it uses only the public contracts: ``POST /api/orders``
with the bearer token, and ``XREAD`` on the events stream.
"""
from __future__ import annotations

import json
import os
import sys
import time

import requests

from config.redis_client import make_redis
from config.settings import Settings

TERMINAL = {"activation.finished": 0, "activation.cancelled": 1, "order.failed": 1}


def wait_ready(api_url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{api_url}/readyz", timeout=2).status_code == 200:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.25)
    return False


def run_demo(*, api_url: str | None, service: str, country: str, once: bool, timeout: float) -> int:
    settings = Settings.from_env()
    api_url = (api_url or f"http://127.0.0.1:{settings.port}").rstrip("/")
    if not wait_ready(api_url, 60):
        print(f"demo: the web app at {api_url} did not become ready", file=sys.stderr)
        return 1
    redis = make_redis(settings)
    last_id = redis.xrevrange(settings.events_stream, count=1)
    cursor = last_id[0][0] if last_id else "0"
    response = requests.post(f"{api_url}/api/orders", json={"service": service, "country": country},
                             headers={"Authorization": f"Bearer {settings.api_token}"}, timeout=10)
    if response.status_code not in (200, 202):
        print(f"demo: order refused: HTTP {response.status_code} {response.text[:300]}", file=sys.stderr)
        return 1
    order_id = response.json()["order_id"]
    print(f"demo: placed order {order_id} ({service}, country {country}); waiting for its events ...", flush=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline or not once:
        batch = redis.xread({settings.events_stream: cursor}, block=1000, count=100) or []
        for _stream, entries in batch:
            for entry_id, fields in entries:
                cursor = entry_id
                data = json.loads(fields.get("data", "{}"))
                if data.get("order_id") != order_id:
                    continue
                print(f"demo: event {fields.get('type')}: {json.dumps(data, ensure_ascii=False)}", flush=True)
                if once and fields.get("type") in TERMINAL:
                    return TERMINAL[fields["type"]]
    print("demo: timed out waiting for the order to end", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(run_demo(api_url=os.environ.get("OTPFLOW_API"), service="tg", country="0", once=True, timeout=300))
