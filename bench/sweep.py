"""Benchmark: one sweep over N waiting activations (default 10,000), against a baseline in the same run.

Real Redis (OTPFLOW_BENCH_REDIS, else an embedded redis-server) and the sandbox provider in a subprocess over
real HTTP. Prints: provider calls per sweep (bulk getActiveActivations + getStatus only for uncovered ones vs
one getStatus per activation), the sweep's wall and CPU time (vs the same work with one Redis command and one
getStatus at a time), and Redis memory per waiting activation (vs a naive layout: JSON string + history list).

    .venv/bin/python bench/sweep.py [--n 10000]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis  # noqa: E402
import requests  # noqa: E402

from config.settings import Settings  # noqa: E402
from lifecycle.activation import OrderRequest  # noqa: E402
from otpflow.embedded_redis import EmbeddedRedis, free_port  # noqa: E402
from provider import ProviderClient  # noqa: E402
from flows import activation, sweep  # noqa: E402
from flows.runtime import Runtime  # noqa: E402

API_KEY = "bench-key-0123456789"


class Counting:
    """Counts provider calls by method name."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if not callable(target):
            return target

        def wrapper(*a: Any, **k: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            return target(*a, **k)
        return wrapper


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def start_sandbox() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "sandbox", "--port", str(port), "--api-key", API_KEY,
                             "--balance", "10000000"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=str(Path(__file__).resolve().parents[1]))
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            requests.get(f"{url}/control/clock", timeout=0.5)
            return proc, url
        except requests.RequestException:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("sandbox did not start")


def measure(fn: Any) -> tuple[Any, float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def memory_per_activation(r: redis.Redis, settings: Settings, n: int) -> tuple[float, float]:
    """(ours, naive) bytes per waiting activation, by MEMORY USAGE over samples."""
    ids = list(range(0, n, max(1, n // 200)))
    order_ids = [k.split(":")[-1] for k in r.scan_iter(match=settings.key("order", "*"), count=1000)][:n]
    sample = [order_ids[i] for i in ids if i < len(order_ids)]
    rec = sum(r.memory_usage(settings.key("order", o), samples=0) or 0 for o in sample) / len(sample)
    aids = [r.hget(settings.key("order", o), "aid") for o in sample]
    idx = sum(r.memory_usage(settings.key("aid", a), samples=0) or 0 for a in aids) / len(aids)
    dl = (r.memory_usage(settings.key("deadlines"), samples=0) or 0) / max(1, r.zcard(settings.key("deadlines")))
    ours = rec + idx + dl
    # naive: the same data as a JSON string per order, history as its own list, same index and deadline
    pipe = r.pipeline(transaction=False)
    for o in sample:
        data = r.hgetall(settings.key("order", o))
        hist = data.pop("h", "").split(",")
        pipe.set(f"naive:order:{o}", json.dumps(data))
        pipe.rpush(f"naive:hist:{o}", *[json.dumps({"state": h.split("@")[0], "at": h.split("@")[-1]}) for h in hist])
    pipe.execute()
    naive_rec = sum((r.memory_usage(f"naive:order:{o}", samples=0) or 0)
                    + (r.memory_usage(f"naive:hist:{o}", samples=0) or 0) for o in sample) / len(sample)
    return ours, naive_rec + idx + dl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10_000)
    args = parser.parse_args()
    n = args.n

    server = None
    url = os.environ.get("OTPFLOW_BENCH_REDIS")
    if not url:
        server = EmbeddedRedis(maxmemory="1gb").start()
        url = server.url
    sandbox, sandbox_url = start_sandbox()
    try:
        r = redis.Redis.from_url(url, decode_responses=True)
        r.flushdb()
        requests.post(f"{sandbox_url}/control/settings", json={"stock": n + 100}, timeout=5).raise_for_status()
        settings = Settings(redis_url=url, provider_api_key=API_KEY, sweep_batch=n, auto_finish=False,
                            poll_after=30, poll_interval=15, activation_timeout=1200, key_prefix="bench",
                            events_stream="bench:events")
        client = ProviderClient(api_key=API_KEY, base_url=f"{sandbox_url}/stubs/handler_api.php", max_retries=0)
        provider = Counting(client)
        clock = Clock()
        rt = Runtime(settings=settings, redis=r, provider=provider, publish=lambda *_: None, clock=clock,
                     consumer_name="bench")
        t0 = time.perf_counter()
        for i in range(n):
            oid = f"{i:032x}"
            rt.orders.submit(OrderRequest("tg", country=0, order_id=oid))
            if activation.place_order(rt, oid) != "waiting":
                raise SystemExit(f"purchase {i} failed: {rt.activations.get(oid)}")
        print(f"setup: {n} orders bought through the sandbox in {time.perf_counter() - t0:.1f} s")

        ours_mem, naive_mem = memory_per_activation(r, settings, n)

        # --- ours: one sweep, pipelined reads, one bulk getActiveActivations
        clock.now += settings.poll_after + 1
        provider.calls.clear()
        report, wall, cpu = measure(lambda: sweep.sweep(rt, lease=120))
        ours_calls = dict(provider.calls)
        assert report.claimed == n, report

        # --- baseline: the same sweep with one Redis command and one getStatus at a time
        clock.now += settings.poll_interval + 1
        provider.calls.clear()
        base_report, base_wall, base_cpu = measure(lambda: sweep.sweep(rt, lease=120, batched=False))
        base_calls = dict(provider.calls)
        assert base_report.claimed == n, base_report

        ours_total = sum(ours_calls.values())
        base_total = sum(base_calls.values())
        print(f"activations due: {n}")
        print(f"provider calls per sweep: ours {ours_total} {ours_calls} | baseline {base_total} {base_calls} | "
              f"ratio {ours_total / base_total:.5f}")
        print(f"sweep wall time: ours {wall:.3f} s | baseline {base_wall:.3f} s | ratio {wall / base_wall:.3f}")
        print(f"sweep CPU time (this process): ours {cpu:.3f} s | baseline {base_cpu:.3f} s | "
              f"ratio {cpu / base_cpu:.3f}")
        print(f"Redis memory per waiting activation (record+index+deadline): ours {ours_mem:.0f} B | "
              f"naive JSON+list layout {naive_mem:.0f} B | ratio {ours_mem / naive_mem:.3f} | budget 1024 B")
        client.close()
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
