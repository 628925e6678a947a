"""Redis connections of a formation: how many each process holds idle, and at most under concurrent requests.

The formation (``bench/formation.py``) is the default one of README, Sizing Redis: 1 web (gunicorn,
``WEB_CONCURRENCY`` workers of ``WEB_THREADS`` threads), 1 Celery worker (``WORKER_CONCURRENCY`` pool children),
1 beat, a private Redis (also the broker) and one sandbox provider that sends a code by webhook a second after
each purchase. Every setting keeps its default unless ``--env NAME=VALUE`` says otherwise.

Idle: once the worker is ready and one order has gone through. Load: ``--clients`` threads, each with its own
HTTP connection, place orders, read them back and ask ``/readyz`` and ``/metrics`` as fast as the web answers,
for ``--seconds``; meanwhile the connections are counted every 0.1 s, with ``CLIENT LIST`` (everything Redis
sees, less the bench's own client) and by process (psutil: each established TCP connection to the Redis's port,
by the formation's process that holds it, its children included; ``formation`` is their sum in one sample,
``other`` a connection of no process of the formation). The table shows the idle count and the peak of each.

    .venv/bin/python bench/connections.py                                 # the defaults
    .venv/bin/python bench/connections.py --env REDIS_MAX_CONNECTIONS=2   # a tighter cap
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from bench._common import machine_conditions, run_script  # noqa: E402
from bench.formation import Formation  # noqa: E402
from tests.support.waiting import wait_until  # noqa: E402


def _client(f: Formation, stop: threading.Event, statuses: dict[str, int], lock: threading.Lock) -> None:
    session = requests.Session()
    headers = {"Authorization": f"Bearer {f.api_token}"}
    base = f.web_url(0)
    while not stop.is_set():
        order_id = f"conn-{uuid.uuid4().hex[:16]}"
        answers = []
        for method, path, body in (("POST", "/api/orders", {"service": "tg", "country": 0, "order_id": order_id}),
                                   ("GET", f"/api/orders/{order_id}", None), ("GET", "/readyz", None),
                                   ("GET", "/metrics", None)):
            try:
                answers.append(str(session.request(method, base + path, json=body, headers=headers,
                                                   timeout=10).status_code))
            except requests.RequestException:
                answers.append("conn")
        with lock:
            for status in answers:
                statuses[status] = statuses.get(status, 0) + 1


def measure(f: Formation, r: Any, seconds: float, clients: int) -> tuple[dict[str, int], int, dict[str, int], int,
                                                                         dict[str, int]]:
    """(idle by process, idle CLIENT LIST, peak by process, peak CLIENT LIST, HTTP answers by status); ``r`` is the
    bench's one client (the one connection CLIENT LIST counts that is not the formation's)."""
    idle_by = f.redis_connections()
    idle_by["formation"] = sum(n for k, n in idle_by.items() if k != "other")
    idle_total = len(r.client_list()) - 1  # not the bench's own
    stop, lock = threading.Event(), threading.Lock()
    statuses: dict[str, int] = {}
    threads = [threading.Thread(target=_client, args=(f, stop, statuses, lock), daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    peak_by: dict[str, int] = {}
    peak_total = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        by = f.redis_connections()
        for name, n in by.items():
            peak_by[name] = max(peak_by.get(name, 0), n)
        peak_by["formation"] = max(peak_by.get("formation", 0), sum(n for k, n in by.items() if k != "other"))
        peak_total = max(peak_total, len(r.client_list()) - 1)
        time.sleep(0.1)  # the sampling period, not a wait for a sign
    stop.set()
    for t in threads:
        t.join(timeout=30)
    return idle_by, idle_total, peak_by, peak_total, statuses


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=20.0, help="seconds of load (default 20)")
    p.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients (default 16)")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="a setting for every process")
    args = p.parse_args(argv)
    extra = dict(item.split("=", 1) for item in args.env)
    log_dir = Path(tempfile.mkdtemp(prefix="otpflow-connections-"))
    defaults = {"web_concurrency": 2, "worker_concurrency": 2}
    f = Formation(log_dir=log_dir, providers={"alpha": Decimal("0.30")}, webs=1, workers=1, beats=1,
                  web_concurrency=int(extra.pop("WEB_CONCURRENCY", defaults["web_concurrency"])),
                  worker_concurrency=int(extra.pop("WORKER_CONCURRENCY", defaults["worker_concurrency"])),
                  extra_env={"SWEEP_INTERVAL": "5", **extra})
    try:
        f.start()
        f.sandboxes["alpha"].control("settings", {"auto_sms_after": 1})
        headers = {"Authorization": f"Bearer {f.api_token}"}
        first = requests.post(f"{f.web_url(0)}/api/orders", json={"service": "tg", "country": 0}, headers=headers,
                              timeout=10).json()["order_id"]
        r = f.redis()
        wait_until(lambda: r.hget(f"otpflow:order:{first}", "state") in {"finished", "cancelled", "failed"},
                   timeout=60, check=f.check_alive, message=lambda: f"the first order did not end\n{f.logs()}")
        idle_by, idle_total, peak_by, peak_total, statuses = measure(f, r, args.seconds, args.clients)
    finally:
        f.stop()
    print(machine_conditions())
    print(f"formation: 1 web (WEB_CONCURRENCY={f.web_concurrency}), 1 worker (WORKER_CONCURRENCY="
          f"{f.worker_concurrency}), 1 beat; settings {extra or 'all default'}")
    print(f"load: {args.clients} clients for {args.seconds:g} s; HTTP answers {dict(sorted(statuses.items()))}")
    print(f"{'process':<10} {'idle':>5} {'peak':>5}")
    for name in sorted(set(idle_by) | set(peak_by)):
        print(f"{name:<10} {idle_by.get(name, 0):>5} {peak_by.get(name, 0):>5}")
    print(f"{'CLIENT LIST':<10} {idle_total:>5} {peak_total:>5}")
    return 0


if __name__ == "__main__":
    run_script(main)
