"""The Procfile's web process (gunicorn) attacked over loopback: idle and slow clients, broken framing, a hung
Redis, secrets in odd URLs. Each test names the item of the hardening list it guards (README, Hardening)."""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import redis
import requests

from otpflow.embedded_redis import EmbeddedRedis, free_port
from tests.support.processes import ChildProcess, gunicorn, wait_http_ok
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.redis, pytest.mark.http, pytest.mark.processes]


@dataclass
class Web:
    url: str
    token: str
    process: ChildProcess
    access_log: Path

    def post(self, body: bytes, timeout: float = 5.0) -> requests.Response:
        return requests.post(f"{self.url}/webhooks/{self.token}", data=body, timeout=timeout)

    def raw(self, request: bytes, timeout: float = 5.0) -> bytes:
        with socket.create_connection(("127.0.0.1", int(self.url.rsplit(":", 1)[1])), timeout=timeout) as sock:
            sock.sendall(request)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


def start_web(redis_url: str, log_dir: Path, **extra: str) -> Web:
    port, token = free_port(), secrets.token_urlsafe(24)
    access = log_dir / f"access-{port}.log"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("OTPFLOW_TEST", "PYTEST"))},
           "REDIS_URL": redis_url, "PORT": str(port), "WEBHOOK_TOKEN": token, "API_TOKEN": secrets.token_urlsafe(24),
           "GUNICORN_ACCESSLOG": str(access), "PYTHONUNBUFFERED": "1", **extra}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process = gunicorn(env, log_dir).start()
    web = Web(f"http://127.0.0.1:{port}", token, process, access)
    wait_http_ok(f"{web.url}/healthz", check=lambda: None if process.alive() else (_ for _ in ()).throw(
        RuntimeError(process.log()[-3000:])))
    return web


@pytest.fixture
def web(redis_url: str, tmp_path: Path) -> Iterator[Web]:
    server = start_web(redis_url, tmp_path, WEB_READ_TIMEOUT="2")
    try:
        yield server
    finally:
        server.process.stop()


def _sms(n: int) -> bytes:
    return json.dumps({"activationId": 5_000_000 + n, "code": f"{n:06d}", "text": f"code {n:06d}",
                      "receivedAt": "2026-01-01 00:00:00"}).encode()


def test_idle_and_slow_clients_do_not_stop_webhooks(web: Web, real_redis: redis.Redis) -> None:
    """Item 1: two idle connections used to stop all ingestion until the 30 s worker timeout."""
    port = int(web.url.rsplit(":", 1)[1])
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
    slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
    stop = threading.Event()

    def trickle() -> None:  # the slowloris: a header byte now and then, never the end of the headers
        for sock in slow:
            sock.sendall(b"POST /webhooks/x HTTP/1.1\r\nHost: a\r\nX-Slow: ")
        while not stop.wait(0.2):
            for sock in slow:
                try:
                    sock.sendall(b"a")
                except OSError:
                    pass

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        for n in range(40):
            started = time.monotonic()
            assert web.post(_sms(n), timeout=3).status_code == 200
            assert time.monotonic() - started < 1.0
        assert real_redis.xlen("otpflow:inbox") == 40
        # and the server closes what never sent a whole request (WEB_READ_TIMEOUT=2 here)
        def closed(sock: socket.socket) -> bool:
            sock.settimeout(0.05)
            try:
                return sock.recv(1) == b""
            except socket.timeout:
                return False
            except OSError:
                return True
        wait_until(lambda: all(closed(s) for s in idle), timeout=20, message="idle connections were not closed")
    finally:
        stop.set()
        thread.join(5)
        for sock in idle + slow:
            sock.close()


@pytest.mark.parametrize("request_bytes", [
    b"POST /webhooks/{t} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    b"POST /webhooks/{t} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX0\r\n\r\n",
    b"POST /api/orders HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"zz\r\n0\r\n\r\n",
], ids=["bad-chunk-size", "missing-terminator", "api-bad-chunk"])
def test_bad_chunked_framing_is_a_4xx_never_a_500(web: Web, request_bytes: bytes) -> None:
    """Item 5: gunicorn's InvalidChunkSize and ChunkMissingTerminator escaped the body read as 500s."""
    answer = web.raw(request_bytes.replace(b"{t}", web.token.encode()))
    status = int(answer[9:12])
    assert 400 <= status < 500, answer[:300]


def test_deep_nesting_in_a_form_field_is_400(web: Web) -> None:
    """Item 5: a RecursionError escaped the form-encoded rent ``sms=`` field."""
    deep = "[" * 5000 + "]" * 5000
    rv = requests.post(f"{web.url}/webhooks/{web.token}", data=f"rentId=1&sms={{\"a\":{deep}}}", timeout=5,
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert rv.status_code == 400 and "nested too deeply" in rv.json()["reason"]


def test_a_hung_redis_gets_503_within_the_providers_patience(tmp_path: Path) -> None:
    """Item 6: with Redis stopped (SIGSTOP) most webhooks timed out at the client instead of getting 503."""
    server = EmbeddedRedis().start()
    web = start_web(server.url, tmp_path)
    try:
        assert web.post(_sms(1)).status_code == 200
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGSTOP)
        try:
            def one(n: int) -> tuple[int, float]:
                started = time.monotonic()
                try:
                    status = web.post(_sms(n), timeout=3).status_code
                except requests.RequestException:
                    status = 0
                return status, time.monotonic() - started
            with ThreadPoolExecutor(16) as pool:
                answers = list(pool.map(one, range(2, 50)))
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        assert {status for status, _ in answers} == {503}, answers
        assert max(seconds for _, seconds in answers) < 3.0
        wait_until(lambda: web.post(_sms(99)).status_code == 200, timeout=20, message="no 200 after SIGCONT")
    finally:
        web.process.stop()
        server.stop()


def test_the_access_log_never_shows_the_token_in_any_form(web: Web) -> None:
    """Item 7: ``/WEBHOOKS/<token>``, ``/webhooks/x/../<token>`` and ``?token=`` showed the real token."""
    for path in (f"/WEBHOOKS/{web.token}", f"/webhooks/x/../{web.token}", f"/healthz?token={web.token}",
                 f"/%77ebhooks/{web.token}", f"/nothing/{web.token}"):
        requests.post(f"{web.url}{path}", data=_sms(1), timeout=5)
    assert web.post(_sms(2)).status_code == 200
    wait_until(lambda: web.access_log.exists() and web.access_log.read_text().count("\n") >= 6, timeout=10,
               message="access log lines did not arrive")
    text = web.access_log.read_text() + web.process.log()
    assert web.token not in text, text
