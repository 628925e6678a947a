"""Benchmark: simple handler_api calls per second of the sandbox on ONE core, against a bare Flask baseline.

The server (gunicorn, 1 worker) runs in a subprocess pinned to one CPU with os.sched_setaffinity; this process
drives it from a few threads over keep-alive HTTP/1.1 connections (pinned to the other CPUs when there are
any). The same server set-up serves a bare Flask "hello" app first, so the result is printed as a ratio
against a baseline measured in the same run.

    .venv/bin/python bench/sandbox_rate.py [--seconds 5] [--rounds 3] [--threads 4] [--worker gthread|sync]
"""
from __future__ import annotations

import argparse
import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
KEY = "sandbox-key"


def hello_app():  # gunicorn entry point for the baseline: `sandbox_rate:hello_app()`
    from flask import Flask

    app = Flask("hello")

    @app.get("/stubs/handler_api.php")
    def hello() -> str:
        return "ACCESS_BALANCE:100.00"

    return app


def sandbox_app():  # gunicorn entry point: the emulator
    from sandbox import SandboxConfig, create_app

    return create_app(SandboxConfig(api_key=KEY, seed=1))


def buy_one(port: int) -> str:
    """Buy one activation over HTTP (retrying while the worker boots) and return its id, to poll getStatus."""
    deadline = time.monotonic() + 20
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/stubs/handler_api.php?" + urlencode(
                {"api_key": KEY, "action": "getNumber", "service": "tg"}))
            body = conn.getresponse().read().decode()
            conn.close()
            if body.startswith("ACCESS_NUMBER:"):
                return body.split(":")[1]
            raise RuntimeError(body)
        except (OSError, http.client.HTTPException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_server(entry: str, worker: str, cpu: int) -> tuple[subprocess.Popen, int]:
    port = free_port()
    cmd = [sys.executable, "-m", "gunicorn", "--workers", "1", "--bind", f"127.0.0.1:{port}",
           "--chdir", str(ROOT / "bench"), "--pythonpath", str(ROOT), "--log-level", "warning",
           "--keep-alive", "30"]
    if worker == "gthread":
        cmd += ["--worker-class", "gthread", "--threads", "4"]
    cmd.append(entry)
    proc = subprocess.Popen(cmd, preexec_fn=lambda: os.sched_setaffinity(0, {cpu}), cwd=ROOT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"server {entry} did not start")


def drive(port: int, paths: list[str], seconds: float, threads: int) -> tuple[float, int]:
    """Calls/s over `seconds` from `threads` keep-alive connections cycling through `paths`."""
    counts = [0] * threads
    errors = [0] * threads
    stop_at = time.monotonic() + seconds

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        n = 0
        while time.monotonic() < stop_at:
            path = paths[n % len(paths)]
            try:
                conn.request("GET", path)
                r = conn.getresponse()
                body = r.read()
                if r.status != 200 or not body:
                    errors[i] += 1
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            except (OSError, http.client.HTTPException):
                errors[i] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            n += 1
        counts[i] = n
        conn.close()

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts) / (time.monotonic() - t0), sum(errors)


def median(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[len(xs) // 2]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--worker", choices=("gthread", "sync"), default="gthread")
    p.add_argument("--server-cpu", type=int, default=0)
    args = p.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    client_cpus = set(cpus) - {args.server_cpu} or set(cpus)
    os.sched_setaffinity(0, client_cpus)
    base = "/stubs/handler_api.php?"
    balance = [base + urlencode({"api_key": KEY, "action": "getBalance"})]
    hello, hello_port = start_server("sandbox_rate:hello_app()", args.worker, args.server_cpu)
    sandbox, sandbox_port = start_server("sandbox_rate:sandbox_app()", args.worker, args.server_cpu)
    try:
        act_id = buy_one(sandbox_port)
        status = [base + urlencode({"api_key": KEY, "action": "getStatus", "id": act_id})]
        runs: dict[str, list[float]] = {"hello": [], "getBalance": [], "getStatus": []}
        errors = 0
        plan = [("hello", hello_port, balance), ("getBalance", sandbox_port, balance),
                ("getStatus", sandbox_port, status)]
        for _, port, paths in plan:
            drive(port, paths, 0.5, args.threads)            # warm-up
        for _ in range(args.rounds):                           # interleaved, so drift hits all alike
            for name, port, paths in plan:
                rate, err = drive(port, paths, args.seconds, args.threads)
                runs[name].append(rate)
                errors += err
    finally:
        for proc in (hello, sandbox):
            proc.terminate()
            proc.wait(10)

    hello_rate = median(runs["hello"])
    print(f"server: gunicorn 1 {args.worker} worker pinned to CPU {args.server_cpu}; client: {args.threads} "
          f"keep-alive threads on CPUs {sorted(client_cpus)}; {args.rounds} interleaved rounds of "
          f"{args.seconds:g} s; medians; errors {errors}")
    print(f"baseline  bare Flask hello   {hello_rate:8.0f} calls/s")
    for name in ("getBalance", "getStatus"):
        rate = median(runs[name])
        print(f"sandbox   {name:<18} {rate:8.0f} calls/s  ratio {rate / hello_rate:.2f}")
    worst = min(median(runs["getBalance"]), median(runs["getStatus"]))
    print(f"target >= 1000 simple calls/s on one core: {'met' if worst >= 1000 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # here, not at the top: gunicorn imports this module for its apps
    from bench._common import run_script

    run_script(main)
