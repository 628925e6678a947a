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
from otpflow.event_feed import TERMINAL, feed, follow_order, latest_id

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
    client = make_redis(settings)
    cursor = latest_id(client, settings.events_stream)
    response = requests.post(f"{api_url}/api/orders", json={"service": service, "country": country},
                             headers={"Authorization": f"Bearer {settings.api_token}"}, timeout=10)
    if response.status_code not in (200, 202):
        print(f"demo: order refused: HTTP {response.status_code} {response.text[:300]}", file=sys.stderr)
        return 1
    order_id = response.json()["order_id"]
    print(f"demo: placed order {order_id} ({service}, country {country}); waiting for its events ...", flush=True)
    last_type = ""
    for event in follow_order(client, settings.events_stream, order_id, start=cursor, timeout=timeout):
        print(f"demo: event {event.type}: {json.dumps(event.data, ensure_ascii=False)}", flush=True)
        last_type = event.type
    if last_type not in TERMINAL:
        print("demo: timed out waiting for the order to end", file=sys.stderr)
    if once:
        return TERMINAL.get(last_type, 1)
    # Keep the local run alive (honcho stops every process when one ends) and show what else happens.
    print("demo: following all events (Ctrl-C stops everything); place more orders from another terminal with: "
          f"REDIS_URL={settings.redis_url} .venv/bin/otpflow order tg --wait", flush=True)
    for event in feed(client, settings.events_stream, start=latest_id(client, settings.events_stream), follow=True):
        print(f"demo: event {event.type}: {json.dumps(event.data, ensure_ascii=False)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run_demo(api_url=os.environ.get("OTPFLOW_API"), service="tg", country="0", once=True, timeout=300))
