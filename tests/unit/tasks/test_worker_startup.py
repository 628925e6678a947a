"""A setting that stops ``celery worker`` or ``celery beat`` (started as the Procfile starts them) is one line
naming it and exit code 2, never Celery's traceback."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.support.processes import ROOT


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _celery(role: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """``celery -A worker.celery_app <role>`` with only ``settings`` (and a Redis nobody listens on)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
           "PYTHONPATH": str(ROOT), "REDIS_URL": f"redis://127.0.0.1:{_closed_port()}/0", **settings}
    # the timeout only bounds a regression (a worker that starts anyway and waits for Redis)
    return subprocess.run([sys.executable, "-m", "celery", "-A", "worker.celery_app", role], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def _last_line(text: str) -> str:
    return [line for line in text.splitlines() if line.strip()][-1]


def test_a_worker_without_its_provider_key_says_so_in_one_line() -> None:
    ran = _celery("worker")
    assert ran.returncode == 2, ran.stderr
    assert "Traceback" not in ran.stderr and "Traceback" not in ran.stdout
    assert _last_line(ran.stderr).startswith("otpflow: PROVIDER_API_KEY: required by the worker")


@pytest.mark.parametrize("role", ["worker", "beat"])
def test_a_malformed_setting_stops_either_role_in_one_line(role: str) -> None:
    ran = _celery(role, PROVIDER_API_KEY="k" * 20, SPEND_LIMIT_DAILY="abc")
    assert ran.returncode == 2, ran.stderr
    assert "Traceback" not in ran.stderr and "Unable to load celery application" not in ran.stderr
    last = _last_line(ran.stderr)
    assert last.startswith("otpflow: SPEND_LIMIT_DAILY: ")
    assert [line for line in ran.stderr.splitlines() if "SPEND_LIMIT_DAILY" in line] == [last]  # said once
