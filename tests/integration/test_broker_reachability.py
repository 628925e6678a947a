"""``/readyz`` and ``otpflow doctor`` ask a ``CELERY_BROKER_URL`` of its own whether it can be reached: the web as
the Procfile runs it (gunicorn) and the command as a user runs it, against the real RabbitMQ and against a port
nothing listens on. Neither says the URL's user or password. The RabbitMQ tests skip without one, naming what was
tried (fail instead with ``OTPFLOW_TEST_AMQP=required``: tests/support/amqp.py)."""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest
import requests

from otpflow.embedded_redis import free_port
from tests.support.processes import ROOT, ChildProcess, gunicorn, wait_http_ok

pytestmark = [pytest.mark.redis, pytest.mark.http, pytest.mark.processes]

UNREACHABLE = "amqp://guest:guest@127.0.0.1:1/"


def _env(redis_url: str, broker: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTPFLOW_TEST", "PYTEST", "PROVIDER"))}
    env.update({"REDIS_URL": redis_url, "CELERY_BROKER_URL": broker,
                "KEY_PREFIX": f"otpflow-probe-{secrets.token_hex(3)}", "WEBHOOK_TOKEN": secrets.token_urlsafe(24),
                "API_TOKEN": secrets.token_urlsafe(24),
                "PROVIDER_API_KEY": "unused-key", "PYTHONPATH": str(ROOT), "GUNICORN_ACCESSLOG": ""})
    return env


@pytest.fixture
def web(redis_url: str, tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Start a web process whose CELERY_BROKER_URL is the given one; its base URL."""
    started: list[ChildProcess] = []

    def start(broker: str) -> str:
        port = free_port()
        proc = gunicorn(dict(_env(redis_url, broker), PORT=str(port)), tmp_path, workers=1).start()
        started.append(proc)
        base = f"http://127.0.0.1:{port}"

        def running() -> None:
            if not proc.alive():
                raise RuntimeError(f"web exited:\n{proc.log()[-3000:]}")

        wait_http_ok(f"{base}/healthz", timeout=30, check=running)
        return base

    yield start
    for proc in started:
        proc.stop(timeout=20)
        assert "guest:guest" not in proc.log()


def _doctor(redis_url: str, broker: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "otpflow.cli", "doctor", "--no-providers", "--no-public-url"],
                          env=_env(redis_url, broker), cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_readyz_reports_the_real_rabbitmq_reachable(web: Callable[[str], str], amqp_broker_url: str) -> None:
    answer = requests.get(f"{web(amqp_broker_url)}/readyz", timeout=10)
    assert answer.status_code == 200, answer.text
    broker = answer.json()["broker"]
    assert broker["reachable"] is True and broker["where"].startswith("amqp://127.0.0.1:5672/")
    assert "guest:guest" not in answer.text


def test_readyz_is_unready_naming_a_broker_nothing_answers_at(web: Callable[[str], str]) -> None:
    answer = requests.get(f"{web(UNREACHABLE)}/readyz", timeout=10)
    assert answer.status_code == 503 and answer.headers["Retry-After"]
    body = answer.json()
    assert body["reason"].startswith("broker unreachable: amqp://127.0.0.1:1/ (ConnectionRefusedError)"), body
    assert body["broker"]["reachable"] is False and body["inbox"]["pending"] == 0
    assert "guest:guest" not in answer.text


def test_doctor_says_the_real_rabbitmq_accepts_connections(redis_url: str, amqp_broker_url: str) -> None:
    ran = _doctor(redis_url, amqp_broker_url)
    lines = ran.stdout.splitlines()
    assert any(line.startswith("ok   broker: amqp://127.0.0.1:5672/") and "accepts connections" in line
               for line in lines), ran.stdout + ran.stderr
    assert "guest:guest" not in ran.stdout + ran.stderr


def test_doctor_says_an_unreachable_broker_with_its_fix(redis_url: str) -> None:
    ran = _doctor(redis_url, UNREACHABLE)
    assert ran.returncode == 1, ran.stdout + ran.stderr
    line = next((line for line in ran.stdout.splitlines() if line.startswith("FAIL broker")), ran.stdout)
    assert line.startswith("FAIL broker: amqp://127.0.0.1:1/ did not answer (ConnectionRefusedError"), line
    assert "fix: start the broker there, or set CELERY_BROKER_URL to a running one" in line
    assert "guest:guest" not in ran.stdout + ran.stderr
