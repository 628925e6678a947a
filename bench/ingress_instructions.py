"""Benchmark: instructions per webhook of the ingress app, against the bare endpoint of ``bench/ingress.py``.

Throughput on a shared 2-core machine moves by ±10 % from round to round (``bench/ingress.py`` says so); the
instructions a request executes do not. Under ``valgrind --tool=callgrind`` each app (the real one from
``webhook.app.create_app``, and the bare Flask endpoint doing one LPUSH) answers ``--requests`` activation
webhooks called straight through WSGI, in-process, against a real Redis, after a warm-up; a second run with no
requests past the warm-up is subtracted, so start-up and imports cancel out. Both count user-space
instructions of this process only: Redis's work and the kernel's are not in them, and the HTTP server's cost
(about the same for both) is not either, so the ratio here is lower than a whole server's.

Prometheus counters are written as under gunicorn with several workers (a ``PROMETHEUS_MULTIPROC_DIR`` of its
own). Without valgrind on PATH it says so in one line and exits 0.

Redis: ``OTPFLOW_BENCH_REDIS``, else 127.0.0.1:6379 database 15 when it answers, else an embedded server; keys go
under a per-run prefix and are deleted at the end.

    .venv/bin/python bench/ingress_instructions.py [--requests 1000] [--warmup 200]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench._common import delete_matching, describe_url, pick_redis, run_script  # noqa: E402

REDIS_DB = 15  # tests use databases 9-13
APPS = ("bare", "webhook")
_COLLECTED = re.compile(r"Collected : (\d+)")


def body(n: int) -> bytes:
    """An activation webhook as ``bench/ingress.py`` sends it (each a new SMS: never a duplicate)."""
    return json.dumps({"activationId": 3936040355 + n % 1000, "service": "tg",
                       "text": f"Your Telegram code: {n:08d}. Do not share it.", "code": f"{n:08d}",
                       "country": 0, "receivedAt": "2026-01-02 03:04:05"}, separators=(",", ":")).encode()


def serve(app_name: str, warmup: int, requests: int, redis_url: str, prefix: str) -> None:
    """The child's part (under valgrind): build one app, answer ``warmup + requests`` webhooks through WSGI."""
    from bench.ingress import BASELINE_KEY_ENV, TOKEN, baseline_factory
    from config.settings import Settings
    from webhook.app import create_app

    class NoBroker:
        """No Celery publish: the drain flag outlives the run, so the real app would publish at most once."""

        def send_task(self, *_a: Any, **_k: Any) -> None:
            return None

    os.environ[BASELINE_KEY_ENV] = f"{prefix}:bare"
    os.environ["REDIS_URL"] = redis_url
    if app_name == "bare":
        app = baseline_factory()
    else:
        settings = Settings(redis_url=redis_url, provider_api_key="bench-key-0123456789", webhook_token=TOKEN,
                            key_prefix=prefix, log_level="WARNING")
        app = create_app(settings, celery_app=NoBroker())
    path = f"/webhooks/{TOKEN}"

    def start_response(status: str, _headers: Any, _exc: Any = None) -> None:
        if not status.startswith("200"):
            raise SystemExit(f"{app_name}: answered {status}")

    offset = os.getpid() * 100_000
    for i in range(warmup + requests):
        raw = body(offset + i)
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": path, "SERVER_NAME": "bench", "SERVER_PORT": "80",
                   "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(raw),
                   "CONTENT_LENGTH": str(len(raw)), "CONTENT_TYPE": "application/json", "REMOTE_ADDR": "127.0.0.1"}
        for _chunk in app(environ, start_response):
            pass


def instructions(valgrind: str, app_name: str, warmup: int, requests: int, redis_url: str, prefix: str,
                 metrics_dir: str) -> int:
    """User-space instructions of one child run (callgrind's total)."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
    proc = subprocess.run([valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
                           __file__, "--child", app_name, "--warmup", str(warmup), "--requests", str(requests),
                           "--redis", redis_url, "--prefix", prefix],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    found = _COLLECTED.search(proc.stderr)
    if proc.returncode != 0 or found is None:
        raise SystemExit(f"bench/ingress_instructions.py: the {app_name} run failed (exit {proc.returncode}):\n"
                         f"{proc.stderr[-2000:]}")
    return int(found.group(1))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000, help="webhooks counted per app (default 1000)")
    parser.add_argument("--warmup", type=int, default=200, help="webhooks answered first, not counted (200)")
    parser.add_argument("--child", choices=APPS, help=argparse.SUPPRESS)
    parser.add_argument("--redis", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is None and (args.requests < 1 or args.warmup < 1):
        parser.error("--requests and --warmup must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        serve(args.child, args.warmup, args.requests, args.redis, args.prefix)
        return 0
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        print("bench/ingress_instructions.py: valgrind is not on PATH (Debian: apt-get install valgrind); "
              "nothing measured")
        return 0
    url, server = pick_redis(REDIS_DB)
    prefix = f"bi{os.getpid() % 1_000_000:06d}"
    client = redis.Redis.from_url(url)
    per_request: dict[str, float] = {}
    try:
        print(f"redis {describe_url(url)} | {args.requests} webhooks per app after {args.warmup} of warm-up, "
              f"in-process WSGI, under callgrind", flush=True)
        for app_name in APPS:
            with tempfile.TemporaryDirectory(prefix="otpflow-bench-metrics-") as metrics_dir:
                quiet = instructions(valgrind, app_name, args.warmup, 0, url, prefix, metrics_dir)
            with tempfile.TemporaryDirectory(prefix="otpflow-bench-metrics-") as metrics_dir:
                loaded = instructions(valgrind, app_name, args.warmup, args.requests, url, prefix, metrics_dir)
            per_request[app_name] = (loaded - quiet) / args.requests
            print(f"{app_name:8s}: {per_request[app_name]:,.0f} instructions per webhook", flush=True)
        ours, base = per_request["webhook"], per_request["bare"]
        print(f"instruction ratio bare / webhook: {base / ours:.3f} (webhook costs {ours - base:,.0f} more per "
              f"request: validation, the inbox's Lua append, metrics, the request id)")
        return 0
    finally:
        delete_matching(client, f"{prefix}:*")
        client.close()
        if server is not None:
            server.stop()


if __name__ == "__main__":
    run_script(main)
