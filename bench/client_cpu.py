"""Client-side CPU per handler_api call: our ``ProviderClient`` vs the official ``smsactivate`` 1.5 client.

The sandbox runs in a *separate process*, so ``time.process_time`` around N calls measures only the client's own
CPU (building the request, HTTP, parsing; on loopback also the kernel's TCP work charged to the sender), not the
server's. Both clients make the same calls against the same server in the same run, alternating, median of
rounds; the figures that matter are the ratios (ours / official). Two server modes, one table each
(``--server both``, the default, runs both):

* ``shipped``: ``python -m sandbox --port N`` as shipped now: gunicorn, one gthread worker, HTTP/1.1
  keep-alive (like the nginx-fronted real providers), which is where one ``requests.Session`` per client pays off.
* ``werkzeug``: ``python -m sandbox --server werkzeug``, the old server. Werkzeug's dev server answers every
  request with ``Connection: close``, so keep-alive cannot help there; the worst case for us, for comparison.

The official client is pointed at the sandbox through its name-mangled ``_SMSActivateAPI__api_url`` attribute; it
calls ``requests.get`` (a new Session and connection per call).

Usage:  .venv/bin/python bench/client_cpu.py [--calls 1000] [--rounds 3] [--server shipped|werkzeug|both]
        [--actions getBalance,getStatus,getNumbersStatus,getStatusV2,getPrices]
Target: ours ≤ 0.6 × the official client's CPU per call (keep-alive, no redundant work per call).
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import run_script  # noqa: E402
from provider import ProviderClient  # noqa: E402

BENCH_KEY = "bench-not-a-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sandbox(port: int, server: str) -> subprocess.Popen[bytes]:
    """``python -m sandbox`` in its own process (``--server werkzeug`` for the werkzeug mode); returns once the
    handler answers."""
    cmd = [sys.executable, "-m", "sandbox", "--port", str(port), "--api-key", BENCH_KEY, "--balance", "100000"]
    if server == "werkzeug":
        cmd += ["--server", "werkzeug"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/stubs/handler_api.php"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"sandbox exited with {proc.returncode}")
        try:
            if requests.get(url, params={"action": "getBalance", "api_key": BENCH_KEY}, timeout=1).ok:
                return proc
        except requests.RequestException:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("sandbox did not start")


def official_client(url: str) -> Any:
    """The official client with its hard-coded host replaced (a name-mangled private attribute)."""
    from smsactivate.api import SMSActivateAPI
    api = SMSActivateAPI(BENCH_KEY)
    api._SMSActivateAPI__api_url = url
    return api


def measure(fn: Callable[[], object], calls: int) -> tuple[float, float]:
    """(CPU seconds per call, calls per wall second) for ``calls`` calls of ``fn``."""
    fn()  # warm-up: connection, imports, caches
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(calls):
        fn()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return cpu / calls, calls / wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3, help="alternate ours/official this many times; median")
    parser.add_argument("--actions", default="getBalance,getStatus,getNumbersStatus,getStatusV2,getPrices")
    parser.add_argument("--server", choices=("shipped", "werkzeug", "both"), default="both",
                        help="shipped: python -m sandbox (gunicorn, HTTP keep-alive); werkzeug: python -m sandbox "
                             "--server werkzeug (answers Connection: close); both (default): one table each")
    args = parser.parse_args(argv)

    servers = ["shipped", "werkzeug"] if args.server == "both" else [args.server]
    for server in servers:
        run(server, args)
        print()
    return 0


def run(server: str, args: argparse.Namespace) -> float:
    """One table for one server mode; returns the geometric-mean ratio."""
    port = free_port()
    proc = start_sandbox(port, server)
    url = f"http://127.0.0.1:{port}/stubs/handler_api.php"
    try:
        ours = ProviderClient(BENCH_KEY, dialect="sms-activate", base_url=url)
        official = official_client(url)
        activation_id = ours.get_number("tg", country=0).activation_id

        cases: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
            "getBalance": (ours.get_balance, official.getBalance),
            "getStatus": (lambda: ours.get_status(activation_id), lambda: official.getStatus(id=activation_id)),
            "getNumbersStatus": (lambda: ours.get_numbers_status(country=0),
                                 lambda: official.getNumbersStatus(country=0)),
            # the official 1.5 client has no getStatusV2 method: its generic path is requests.get + json.loads
            "getStatusV2": (lambda: ours.get_status_v2(activation_id),
                            lambda: requests.get(url, params={"api_key": BENCH_KEY, "action": "getStatusV2",
                                                              "id": activation_id}).json()),
            "getPrices": (lambda: ours.get_prices(country=0), lambda: official.getPrices(country=0)),
        }
        wanted = [a.strip() for a in args.actions.split(",") if a.strip()]
        print(f"client CPU per call, {args.calls} calls x {args.rounds} rounds (median); sandbox pid {proc.pid} "
              f"({server}); python {sys.version.split()[0]}; {os.cpu_count()} CPUs")
        print(f"{'action':<18}{'ours µs':>10}{'official µs':>13}{'ratio':>8}{'ours/s':>10}{'official/s':>12}")
        ratios = []
        for action in wanted:
            ours_fn, official_fn = cases[action]
            ours_cpu, off_cpu, ours_rate, off_rate = [], [], [], []
            for _ in range(args.rounds):
                c, r = measure(ours_fn, args.calls)
                ours_cpu.append(c)
                ours_rate.append(r)
                c, r = measure(official_fn, args.calls)
                off_cpu.append(c)
                off_rate.append(r)
            o, f = statistics.median(ours_cpu), statistics.median(off_cpu)
            ratios.append(o / f)
            print(f"{action:<18}{o * 1e6:>10.0f}{f * 1e6:>13.0f}{o / f:>8.2f}"
                  f"{statistics.median(ours_rate):>10.0f}{statistics.median(off_rate):>12.0f}")
        geo = statistics.geometric_mean(ratios)
        print(f"geometric mean ratio (ours / official): {geo:.2f}  "
              f"(target ≤ 0.60: {'met' if geo <= 0.6 else 'NOT met'})")
        ours.close()
        return geo
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    run_script(main)
