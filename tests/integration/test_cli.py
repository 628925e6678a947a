"""The ``otpflow`` command as a user runs it: real subprocesses against the real pipeline and sandbox."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
import redis as redis_lib

from otpflow.embedded_redis import free_port
from tests.support.pipeline import SANDBOX_KEY, Pipeline
from tests.support.processes import ROOT

pytestmark = [pytest.mark.redis, pytest.mark.http, pytest.mark.processes]


def otpflow(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "otpflow.cli", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def pipeline(redis_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    url = f"{redis_server_url}/12"
    redis_lib.Redis.from_url(url).flushdb()
    pipe = Pipeline(redis_url=url, log_dir=Path(tmp_path_factory.mktemp("cli-logs")))
    try:
        pipe.start()
        yield pipe
    finally:
        pipe.stop()


def test_order_wait_status_and_events(pipeline: Pipeline) -> None:
    pipeline.control("settings", {"auto_sms_after": 0.5})
    try:
        done = otpflow(pipeline.env, "order", "tg", "--country", "0", "--order-id", "cli-order-1", "--wait",
                       "--timeout", "60")
    finally:
        pipeline.control("settings", {"auto_sms_after": None})
    assert done.returncode == 0, done.stderr + pipeline.logs()
    assert '"order_id": "cli-order-1"' in done.stdout
    assert any('"activation.finished"' in line for line in done.stdout.splitlines())
    assert any('"order.completed"' in line for line in done.stdout.splitlines())   # the order's one ending

    status = otpflow(pipeline.env, "status", "cli-order-1")
    assert status.returncode == 0, status.stderr
    body = json.loads(status.stdout)
    assert body["state"] == "finished" and body["code"]

    events = otpflow(pipeline.env, "events", "--order-id", "cli-order-1")
    kinds = [json.loads(line)["type"] for line in events.stdout.splitlines()]
    assert kinds == ["number.assigned", "code.received", "activation.finished", "order.completed"]

    again = otpflow(pipeline.env, "order", "tg", "--order-id", "cli-order-1")
    assert json.loads(again.stdout)["created"] is False


def test_status_of_an_unknown_order_fails_cleanly(pipeline: Pipeline) -> None:
    result = otpflow(pipeline.env, "status", "no-such-order")
    assert result.returncode == 1 and "no order" in result.stderr


def test_raw_provider_call_prints_the_answer_and_hides_the_key(pipeline: Pipeline) -> None:
    balance = otpflow(pipeline.env, "provider", "getBalance")
    assert balance.returncode == 0, balance.stderr
    assert balance.stdout.startswith("ACCESS_BALANCE") or "balance" in balance.stdout.lower()
    bad = otpflow(pipeline.env | {"PROVIDER_API_KEY": "wrong-key-123"}, "provider", "getBalance")
    assert bad.returncode == 1 and "BAD_KEY" in bad.stderr
    assert "wrong-key-123" not in bad.stderr + bad.stdout
    assert SANDBOX_KEY not in balance.stdout + balance.stderr


def test_config_check_names_the_missing_setting(pipeline: Pipeline) -> None:
    env = {k: v for k, v in pipeline.env.items() if k not in {"WEBHOOK_TOKEN"}}
    result = otpflow(env, "config", "--check", "web")
    assert result.returncode == 2 and "WEBHOOK_TOKEN" in result.stderr
    ok = otpflow(pipeline.env, "config", "--check", "worker")
    assert ok.returncode == 0 and pipeline.env["PROVIDER_API_KEY"] not in ok.stdout


def test_run_once_places_a_demo_order_end_to_end(redis_server_url: str) -> None:
    """The README's run command, in its self-terminating form, on a Redis database of its own."""
    url = f"{redis_server_url}/13"
    redis_lib.Redis.from_url(url).flushdb()
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROVIDER", "WEBHOOK_TOKEN", "API_TOKEN"))}
    env |= {"REDIS_URL": url, "POLL_AFTER": "5"}
    result = otpflow(env, "run", "--once", "--port", str(free_port()), timeout=180)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]
    assert "event code.received" in result.stdout
    assert "event activation.finished" in result.stdout


def test_rent_command_starts_a_rent(pipeline: Pipeline) -> None:
    result = otpflow(pipeline.env, "rent", "full", "--country", "0", "--hours", "4", "--order-id", "cli-rent-1")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["created"] is True
    started = pipeline.wait_event("cli-rent-1", "rent.started")
    assert started["rent_id"] and started["phone"]
    again = otpflow(pipeline.env, "rent", "full", "--order-id", "cli-rent-1")
    assert json.loads(again.stdout)["created"] is False
    bad = otpflow(pipeline.env, "rent", "full", "--hours", "0")
    assert bad.returncode == 2 and "otpflow rent:" in bad.stderr
