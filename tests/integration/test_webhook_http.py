"""The webhook app served by gunicorn (``-c webhook/gunicorn_conf.py``) over real HTTP, on a real Redis."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import redis
import requests

from tests.support.processes import answers_200
from tests.support.waiting import wait_until

# gunicorn over loopback HTTP; every test but the Redis-down one also talks to the real Redis
pytestmark = [pytest.mark.http, pytest.mark.processes]

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "whk_" + "Q7w8E9r0T1y2U3i4O5p6"
API_TOKEN = "api_" + "M1n2B3v4C5x6Z7l8K9j0"
BODY = {"activationId": 3936040355, "service": "tg", "text": "Telegram code 51234", "code": "51234",
        "country": 0, "receivedAt": "2026-01-02 03:04:05"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    access_path: Path

    @property
    def webhook(self) -> str:
        return f"{self.url}/webhooks/{TOKEN}"

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") + self.access_path.read_text(errors="replace")


def start_gunicorn(tmp: Path, redis_url: str, **env_extra: str) -> Server:
    port = _free_port()
    log_path, access_path = tmp / f"gunicorn-{port}.log", tmp / f"access-{port}.log"
    env = {**os.environ, "PORT": str(port), "REDIS_URL": redis_url, "WEBHOOK_TOKEN": TOKEN, "API_TOKEN": API_TOKEN,
           "WEB_CONCURRENCY": "2", "WEBHOOK_MAX_BYTES": "4096", "GUNICORN_ACCESSLOG": str(access_path),
           "PYTHONPATH": str(ROOT), **env_extra}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "webhook/gunicorn_conf.py", "webhook.wsgi:app"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", process, log_path, access_path)

    def running() -> None:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {log_path.read_text(errors='replace')[-2000:]}")

    try:
        wait_until(lambda: answers_200(f"{server.url}/healthz"), timeout=20, interval=0.1, check=running,
                   message="gunicorn did not become healthy")
    except AssertionError:
        stop(server)
        raise
    return server


def stop(server: Server) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=25)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=5)


@pytest.fixture(scope="module")
def server(redis_server_url: str, redis_db: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_gunicorn(tmp_path_factory.mktemp("gunicorn"), f"{redis_server_url}/{redis_db}")
    yield srv
    stop(srv)
    assert TOKEN not in srv.logs(), "the webhook token leaked into gunicorn's logs"


@pytest.fixture(scope="module")
def server_without_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_gunicorn(tmp_path_factory.mktemp("gunicorn-down"), f"redis://127.0.0.1:{_free_port()}/0")
    yield srv
    stop(srv)
    assert TOKEN not in srv.logs()


@pytest.fixture
def db(server: Server, real_redis: redis.Redis) -> redis.Redis:
    """The server's database, flushed (real_redis flushes before each test)."""
    return real_redis


def _inbox(db: redis.Redis) -> list[dict[str, object]]:
    return [json.loads(fields["payload"]) for _id, fields in db.xrange("otpflow:inbox")]


@pytest.mark.redis
def test_accepted_webhook_is_in_the_inbox_stream(server: Server, db: redis.Redis) -> None:
    rv = requests.post(server.webhook, data=json.dumps(BODY), headers={"Content-Type": "text/html"}, timeout=5)
    assert rv.status_code == 200 and rv.json() == {"status": "accepted"}
    assert _inbox(db) == [{**BODY, "activationId": "3936040355", "country": "0"}]
    assert 0 < db.ttl("otpflow:inbox:drain") <= 15


@pytest.mark.redis
def test_duplicate_delivery(server: Server, db: redis.Redis) -> None:
    assert requests.post(server.webhook, json=BODY, timeout=5).json() == {"status": "accepted"}
    rv = requests.post(server.webhook, json={**BODY, "activationId": "3936040355"}, timeout=5)
    assert rv.status_code == 200 and rv.json() == {"status": "duplicate"}
    assert len(_inbox(db)) == 1


@pytest.mark.redis
def test_rent_webhook(server: Server, db: redis.Redis) -> None:
    body = {"rentId": 26251422, "sms": {"phoneFrom": "SPORTMASTER", "text": "2792", "date": "2025-06-17 16:01:10"}}
    assert requests.post(server.webhook, json=body, timeout=5).status_code == 200
    assert _inbox(db) == [{**body, "rentId": "26251422"}]


@pytest.mark.redis
def test_bad_token_is_404(server: Server, db: redis.Redis) -> None:
    rv = requests.post(f"{server.url}/webhooks/{TOKEN}x", json=BODY, timeout=5)
    assert rv.status_code == 404 and rv.json()["error"] == "not_found"
    assert _inbox(db) == []


@pytest.mark.redis
def test_oversized_body_is_413(server: Server, db: redis.Redis) -> None:
    big = json.dumps({**BODY, "text": "x" * 10_000})
    rv = requests.post(server.webhook, data=big, timeout=5)
    assert rv.status_code == 413 and rv.json()["error"] == "too_large"
    chunks = (big[i:i + 1000].encode() for i in range(0, len(big), 1000))  # chunked: no Content-Length
    rv = requests.post(server.webhook, data=chunks, timeout=5)
    assert rv.status_code == 413
    assert _inbox(db) == []


@pytest.mark.redis
def test_chunked_body_under_the_limit(server: Server, db: redis.Redis) -> None:
    raw = json.dumps(BODY).encode()
    rv = requests.post(server.webhook, data=iter([raw[:10], raw[10:]]), timeout=5)
    assert rv.status_code == 200, rv.text
    assert len(_inbox(db)) == 1


@pytest.mark.redis
def test_malformed_body_is_400_and_dead_lettered(server: Server, db: redis.Redis) -> None:
    rv = requests.post(server.webhook, data=b'{"activationId": true}', timeout=5)
    assert rv.status_code == 400
    assert rv.json()["error"] == "malformed" and "activationId" in rv.json()["fields"]
    (letter,) = [fields for _id, fields in db.xrange("otpflow:inbox:dead")]
    assert letter["body"] == '{"activationId": true}'
    assert _inbox(db) == []


@pytest.mark.redis
def test_readyz_and_metrics_across_workers(server: Server, db: redis.Redis) -> None:
    ready = requests.get(f"{server.url}/readyz", timeout=5).json()
    assert ready["status"] == "ready" and "heartbeats" in ready   # no worker here: ready all the same (Redis is)
    for i in range(6):  # new connection per request: both sync workers get some
        requests.post(server.webhook, json={**BODY, "code": f"m{i}"}, timeout=5)
    text = requests.get(f"{server.url}/metrics", timeout=5).text
    assert "otpflow_inbox_pending 6.0" in text
    accepted = [line for line in text.splitlines() if line.startswith('otpflow_webhooks_total{outcome="accepted"}')]
    assert accepted and float(accepted[0].rsplit(" ", 1)[1]) >= 6  # summed over workers (multiprocess dir)


def test_redis_down_is_503_and_not_ready(server_without_redis: Server) -> None:
    srv = server_without_redis
    started = time.monotonic()
    rv = requests.post(srv.webhook, json=BODY, timeout=10)
    assert time.monotonic() - started < 3  # inside HeroSMS's 3 s answer timeout
    assert rv.status_code == 503 and rv.headers["Retry-After"] and rv.json()["error"] == "unavailable"
    assert requests.post(srv.webhook, data=b"{broken", timeout=10).status_code == 503
    assert requests.get(f"{srv.url}/readyz", timeout=10).status_code == 503
    assert requests.get(f"{srv.url}/healthz", timeout=5).status_code == 200
