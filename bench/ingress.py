"""Webhook ingress throughput and latency, as a ratio to a bare Flask endpoint doing one Redis LPUSH.

Both apps are served the same way, in the same run, on loopback: ``gunicorn -c webhook/gunicorn_conf.py``
(2 workers by default, access log off for both), against the same real Redis. The load generator runs in this
process: a few threads, each sending raw HTTP/1.1 POSTs of a ~200-byte activation webhook (every one a new SMS, so
every request is a real append, never a duplicate). The configured worker closes the connection after each
response (keep-alive is off), so every request is a fresh loopback TCP connection for both servers.
``--worker-class sync`` serves both with gunicorn's sync workers instead (what the config used before), and
``--worker-class gthread`` with gunicorn's own threaded worker, to compare.

A third server splits the gap: our app exactly as ``webhook.wsgi`` builds it, with only the webhook view swapped
for the baseline's one LPUSH (``skeleton_factory``). What it costs above the baseline is the app's frame (the
request-id middleware, every blueprint, a process that also holds the Celery producer); what the webhook costs
above it is the ingress's own work. The last line of the report gives both, in server CPU per request.

``--idle N`` and ``--slow N`` hold hostile clients open against both servers during every round (and its
warm-up): N connections that send nothing, and N that send a request line and then one header byte a second; a
client the server closes connects again at once. Requests that fail or take longer than ``--client-timeout``
(default 10 s) count as errors.

Bounded in count and in time: ``--requests`` per round and target (default 3000), ``--max-seconds`` per round
(default 20), ``--rounds`` interleaved rounds (default 5; the median of the per-round ratios is reported, since a
busy neighbour on a 2-core machine shifts single rounds by ±20 %).

Redis: ``OTPFLOW_BENCH_REDIS`` (a URL), else 127.0.0.1:6379 database 15 when it answers, else an embedded
redis-server. Keys go under a per-run ``KEY_PREFIX`` and are deleted at the end.

    .venv/bin/python bench/ingress.py [--requests 3000] [--threads 4] [--rounds 5] [--workers 2]
        [--worker-class sync] [--idle 20] [--slow 20]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench._common import (http_post_bytes, pick_redis, process_tree_cpu, raw_post, run_script,  # noqa: E402
                           verdict)
from otpflow.embedded_redis import free_port  # noqa: E402

TOKEN = "bench_" + "k3Jd93nD0aQ1xP7zR2vL"
REDIS_DB = 15  # tests use databases 9-13
BASELINE_KEY_ENV = "OTPFLOW_BENCH_BASELINE_KEY"


def baseline_factory() -> Any:
    """The baseline: a bare Flask endpoint doing one LPUSH of the body (``bench.ingress:baseline_factory()``)."""
    from flask import Flask, jsonify, request

    app = Flask("baseline")
    client = redis.Redis.from_url(os.environ["REDIS_URL"], decode_responses=True)
    key = os.environ[BASELINE_KEY_ENV]

    @app.post("/webhooks/<token>")
    def hook(token: str) -> Any:
        client.lpush(key, request.get_data())
        return jsonify({"status": "accepted"})

    return app


def skeleton_factory() -> Any:
    """Our app as the Procfile builds it (``webhook.wsgi``: settings, the request-id middleware, every blueprint,
    the warmed Celery producer) with the webhook view swapped for the baseline's one LPUSH.

    Its cost above the baseline is the app's frame; the webhook's cost above it is the ingress's own work
    (validation, the fingerprint, the inbox's Lua append, metrics): the two halves of the gap, measured apart.
    """
    from flask import jsonify, request

    from webhook.wsgi import app

    client = redis.Redis.from_url(os.environ["REDIS_URL"], decode_responses=True)
    key = os.environ[BASELINE_KEY_ENV] + ":skeleton"

    def hook(token: str) -> Any:
        client.lpush(key, request.get_data())
        return jsonify({"status": "accepted"})

    app.view_functions["webhooks.receive"] = hook
    return app


@dataclass
class Result:
    name: str
    ok: int = 0
    errors: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_seconds / self.ok * 1e6 if self.ok else float("nan")

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        data = sorted(self.latencies)
        if not data:
            return float("nan")
        return data[min(len(data) - 1, int(q * len(data)))] * 1000


_counter = iter(range(10**12))
_counter_lock = threading.Lock()


def _bodies() -> Iterator[bytes]:
    while True:
        with _counter_lock:
            n = next(_counter)
        yield json.dumps({"activationId": 3936040355 + n % 1000, "service": "tg",
                          "text": f"Your Telegram code: {n:08d}. Do not share it.", "code": f"{n:08d}",
                          "country": 0, "receivedAt": "2026-01-02 03:04:05"}, separators=(",", ":")).encode()


def server_cpu_seconds(master_pid: int) -> float:
    """CPU time (user + system) of a gunicorn master and its workers (0 where /proc is unavailable).

    Under a noisy neighbour, wall-clock throughput of two servers measured one after the other drifts; the CPU
    each server spends per request does not, so it is printed alongside.
    """
    return process_tree_cpu(master_pid)


class HostileClients:
    """``idle`` connections that send nothing and ``slow`` ones that trickle a header byte a second, held open
    against ``port`` until :meth:`stop` (or ``max_seconds``); each one the server closes is opened again."""

    def __init__(self, port: int, idle: int, slow: int, max_seconds: float) -> None:
        self.port, self.idle, self.slow = port, idle, slow
        self.deadline = time.monotonic() + max_seconds
        self.stopped = threading.Event()
        self.reconnects = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _connect(self, slow: bool) -> socket.socket | None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=2)
        except OSError:
            return None
        sock.setblocking(False)
        if slow:
            with contextlib.suppress(OSError):
                sock.send(f"POST /webhooks/{TOKEN} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ".encode())
        return sock

    def _run(self) -> None:
        unopened: list[tuple[socket.socket | None, bool]] = [(None, False), (None, True)]
        conns = [unopened[0]] * self.idle + [unopened[1]] * self.slow
        while not self.stopped.is_set() and time.monotonic() < self.deadline:
            for i, (sock, slow) in enumerate(conns):
                if sock is not None and _closed(sock) or sock is not None and slow and not _send(sock, b"a"):
                    sock.close()
                    sock = None
                    self.reconnects += 1
                if sock is None:
                    sock = self._connect(slow)
                conns[i] = (sock, slow)
            self.stopped.wait(1.0)
        for sock, _slow in conns:
            if sock is not None:
                sock.close()

    def __enter__(self) -> "HostileClients":
        if self.idle or self.slow:
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        if self.thread.is_alive():
            self.thread.join(5)


def _closed(sock: socket.socket) -> bool:
    """Whether the peer closed ``sock`` (a non-blocking peek sees EOF or an error)."""
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True


def _send(sock: socket.socket, data: bytes) -> bool:
    try:
        sock.send(data)
        return True
    except (BlockingIOError, InterruptedError):
        return True
    except OSError:
        return False


def load(name: str, port: int, requests: int, threads: int, max_seconds: float, master_pid: int = 0,
         client_timeout: float = 10.0) -> Result:
    """Send ``requests`` POSTs from ``threads`` threads (or stop at ``max_seconds``); time each."""
    result = Result(name)
    cpu_before = server_cpu_seconds(master_pid) if master_pid else 0.0
    lock = threading.Lock()
    remaining = [requests]
    deadline = time.monotonic() + max_seconds

    def worker() -> None:
        bodies = _bodies()
        local: list[float] = []
        ok = errors = 0
        while time.monotonic() < deadline:
            with lock:
                if remaining[0] <= 0:
                    break
                remaining[0] -= 1
            payload = http_post_bytes(port, f"/webhooks/{TOKEN}", next(bodies))
            started = time.perf_counter()
            try:
                status = raw_post(port, payload, timeout=client_timeout)
            except OSError:
                status = 0
            local.append(time.perf_counter() - started)
            if status == 200:
                ok += 1
            else:
                errors += 1
        with lock:
            result.latencies.extend(local)
            result.ok += ok
            result.errors += errors

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    started = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join(max_seconds + 15)
    result.seconds = time.perf_counter() - started
    if master_pid:
        result.cpu_seconds = server_cpu_seconds(master_pid) - cpu_before
    return result


def start_server(app_spec: str, port: int, env: dict[str, str], worker_class: str | None = None
                 ) -> subprocess.Popen[bytes]:
    full_env = {**os.environ, **env, "PORT": str(port)}
    full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # the config makes a fresh one per server
    override = ["--worker-class", worker_class] if worker_class else []
    if worker_class == "sync":
        override += ["--threads", "1"]  # gunicorn serves "sync" with more than one thread as gthread
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "webhook/gunicorn_conf.py", *override,
                                app_spec],
                               cwd=ROOT, env=full_env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stderr.read() if process.stderr is not None else b""
            raise RuntimeError(f"{app_spec} exited: {output.decode(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.1)
    stop_server(process)
    raise RuntimeError(f"{app_spec} did not start")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=25)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per round and target")
    parser.add_argument("--threads", type=int, default=4, help="concurrent client connections")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median reported)")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--max-seconds", type=float, default=20.0, help="time bound per round and target")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (WEB_CONCURRENCY)")
    parser.add_argument("--worker-class", default=None,
                        help="override the config's worker class for both servers (e.g. sync)")
    parser.add_argument("--idle", type=int, default=0, help="idle connections held open during each round")
    parser.add_argument("--slow", type=int, default=0, help="slow-header connections held open during each round")
    parser.add_argument("--client-timeout", type=float, default=10.0,
                        help="seconds a request may take before it counts as an error")
    parser.add_argument("--access-log", action="store_true", help="keep gunicorn's access log on for both")
    parser.add_argument("--embedded", action="store_true", help="always start a private redis-server")
    args = parser.parse_args(argv)

    redis_url, embedded = pick_redis(REDIS_DB, embedded=args.embedded)
    prefix = f"otpflow-bench-{os.getpid()}"
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    queue_existed = client.exists("otpflow") == 1
    common = {"REDIS_URL": redis_url, "WEBHOOK_TOKEN": TOKEN, "API_TOKEN": "bench_api_" + "x" * 16,
              "KEY_PREFIX": prefix, "WEB_CONCURRENCY": str(args.workers), "LOG_LEVEL": "WARNING",
              "GUNICORN_ACCESSLOG": "-" if args.access_log else "", BASELINE_KEY_ENV: f"{prefix}:baseline"}
    web_port, base_port, frame_port = free_port(), free_port(), free_port()
    servers: list[subprocess.Popen[bytes]] = []
    try:
        servers.append(start_server("webhook.wsgi:app", web_port, common, args.worker_class))
        servers.append(start_server("bench.ingress:baseline_factory()", base_port, common, args.worker_class))
        servers.append(start_server("bench.ingress:skeleton_factory()", frame_port, common, args.worker_class))

        def round_of(name: str, port: int, count: int, pid: int = 0) -> Result:
            with HostileClients(port, args.idle, args.slow, args.max_seconds + 20):
                return load(name, port, count, args.threads, args.max_seconds, pid, args.client_timeout)

        warm = [round_of("warmup", web_port, args.warmup), round_of("warmup", base_port, args.warmup),
                round_of("warmup", frame_port, args.warmup)]
        rounds: list[tuple[Result, Result]] = []
        frames: list[Result] = []
        for i in range(args.rounds):
            base = round_of("baseline (Flask + LPUSH)", base_port, args.requests, servers[1].pid)
            frame = round_of("our app's frame (the baseline's handler)", frame_port, args.requests, servers[2].pid)
            hook = round_of("webhook ingress", web_port, args.requests, servers[0].pid)
            rounds.append((base, hook))
            frames.append(frame)
            print(f"round {i + 1}: baseline {base.rps:7.0f} req/s p50 {base.pct(0.5):5.2f} ms"
                  f" p99 {base.pct(0.99):5.2f} ms"
                  f" | webhook {hook.rps:7.0f} req/s p50 {hook.pct(0.5):5.2f} ms p99 {hook.pct(0.99):5.2f} ms"
                  f" | ratio {hook.rps / base.rps if base.rps else float('nan'):.3f}"
                  f" | server CPU/request {base.cpu_us_per_request:4.0f}/{hook.cpu_us_per_request:4.0f} us"
                  f" | errors {base.errors}/{hook.errors} | frame {frame.rps:7.0f} req/s"
                  f" {frame.cpu_us_per_request:4.0f} us", flush=True)
        stored = client.xlen(f"{prefix}:inbox")
    finally:
        for process in servers:
            stop_server(process)

    ratios = [h.rps / b.rps for b, h in rounds if b.rps]
    med = statistics.median(ratios)
    b_rps = statistics.median(b.rps for b, _ in rounds)
    h_rps = statistics.median(h.rps for _, h in rounds)
    b50 = statistics.median(b.pct(0.5) for b, _ in rounds)
    h50 = statistics.median(h.pct(0.5) for _, h in rounds)
    b99 = statistics.median(b.pct(0.99) for b, _ in rounds)
    h99 = statistics.median(h.pct(0.99) for _, h in rounds)
    b_cpu = statistics.median(b.cpu_us_per_request for b, _ in rounds)
    h_cpu = statistics.median(h.cpu_us_per_request for _, h in rounds)
    f_cpu = statistics.median(f.cpu_us_per_request for f in frames)
    f_med = statistics.median(f.rps / b.rps for f, (b, _) in zip(frames, rounds) if b.rps)
    accepted = sum(h.ok for _, h in rounds) + warm[0].ok
    errors = sum(h.errors for _, h in rounds)
    print()
    print(f"redis {redis_url.split('@')[-1]} | gunicorn {args.worker_class or 'as configured'} x{args.workers} | "
          f"{args.threads} client threads | {args.requests} requests x {args.rounds} rounds | "
          f"hostile clients: {args.idle} idle, {args.slow} slow | cpus {os.cpu_count()}")
    print(f"baseline  Flask + 1 LPUSH : {b_rps:7.0f} req/s  p50 {b50:5.2f} ms  p99 {b99:5.2f} ms")
    print(f"webhook   ingress         : {h_rps:7.0f} req/s  p50 {h50:5.2f} ms  p99 {h99:5.2f} ms")
    print(f"throughput ratio (median of rounds) : {med:.3f}   "
          f"(target >= 0.9: {verdict(med, 0.9, higher_is_better=True)})")
    print(f"latency ratio p50 / p99             : {h50 / b50:.3f} / {h99 / b99:.3f}   (webhook / baseline)")
    print(f"server CPU per request              : {b_cpu:.0f} us baseline, {h_cpu:.0f} us webhook "
          f"(ratio {b_cpu / h_cpu:.3f}: the CPU-bound throughput ratio on an otherwise idle machine)")
    print(f"where the gap is (server CPU)       : our app's frame with the baseline's handler {f_cpu:.0f} us "
          f"(throughput ratio {f_med:.3f}), so the frame costs {f_cpu - b_cpu:+.0f} us and the ingress's own work "
          f"(validation, fingerprint, Lua append, metrics) {h_cpu - f_cpu:+.0f} us per request")
    print(f"inbox entries stored: {stored} (accepted answers incl. warm-up: {accepted}); webhook errors "
          f"(failed or slower than {args.client_timeout:g} s): {errors}")

    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    for i in range(0, len(keys), 500):
        client.delete(*keys[i:i + 500])
    if not queue_existed:
        client.delete("otpflow")  # the few drain tasks this run published, when the queue was ours alone
    client.close()
    if embedded is not None:
        embedded.stop()
    return 0 if stored >= accepted else 1


if __name__ == "__main__":
    run_script(main)
