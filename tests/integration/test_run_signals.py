"""``otpflow run`` as a person runs it in a terminal: closing the terminal (SIGHUP), Ctrl-C (SIGINT) and SIGTERM
take every child along and free the port; a busy port or a bad setting is one line before anything starts; the
API token it generated and the URLs it prints are enough to use the HTTP API from another shell."""
from __future__ import annotations

import glob
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import psutil
import pytest
import redis as redis_lib
import requests

from otpflow.embedded_redis import free_port
from tests.support.processes import ROOT
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.redis, pytest.mark.http, pytest.mark.processes]


class Run:
    """``otpflow run --no-demo`` in a session of its own (as a terminal's job), its output in a file."""

    def __init__(self, redis_url: str, log: Path, *args: str, **env: str) -> None:
        self.port = free_port()
        self.log_path = log
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("PROVIDER", "WEBHOOK_TOKEN", "API_TOKEN", "PORT", "OTPFLOW_TEST"))}
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "otpflow.cli", "run", "--no-demo", "--port", str(self.port), *args],
                env=base | {"REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1"} | env, cwd=ROOT, stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"otpflow run exited ({self.proc.returncode}):\n{self.log()[-4000:]}")

    def wait_ready(self) -> None:
        def ready() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{self.port}/readyz", timeout=1).status_code == 200 \
                    and "ready." in self.log() and "beat v" in self.log()
            except requests.RequestException:
                return False

        wait_until(ready, timeout=90, check=self.check, message=lambda: self.log()[-4000:])

    def tree(self) -> list[psutil.Process]:
        return [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


@pytest.fixture
def redis_url(redis_server_url: str) -> str:
    url = f"{redis_server_url}/13"
    redis_lib.Redis.from_url(url).flushdb()
    return url


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[list[Run]]:
    started: list[Run] = []
    yield started
    for run in started:
        run.stop()


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_a_signal_takes_every_child_along(redis_url: str, tmp_path: Path, runs: list[Run], sig: int) -> None:
    before = set(glob.glob("/tmp/otpflow-run-*"))
    run = Run(redis_url, tmp_path / "run.log")
    runs.append(run)
    run.wait_ready()
    tree = run.tree()
    assert len(tree) >= 8, [p.name() for p in tree]  # the run, its helpers, two sandboxes, web, worker, beat
    # a terminal sends SIGHUP (and Ctrl-C's SIGINT) to its foreground job's process group
    os.killpg(run.proc.pid, sig)
    assert run.proc.wait(timeout=60) != 0
    gone, alive = psutil.wait_procs(tree, timeout=30)
    assert not alive, [(p.pid, p.name()) for p in alive]
    assert port_free(run.port)
    assert set(glob.glob("/tmp/otpflow-run-*")) <= before  # its temporary directory is removed
    assert f"{signal.Signals(sig).name} received" in run.log()


def test_the_printed_token_and_urls_work_from_another_shell(redis_url: str, tmp_path: Path,
                                                            runs: list[Run]) -> None:
    run = Run(redis_url, tmp_path / "run.log")
    runs.append(run)
    run.wait_ready()
    log = run.log()
    token = re.search(r"API_TOKEN  (\S+) \(generated for this run\)", log)
    assert token, log[:3000]
    assert f"dashboard  http://127.0.0.1:{run.port}/dashboard" in log
    assert f"metrics    http://127.0.0.1:{run.port}/metrics" in log
    answer = requests.get(f"http://127.0.0.1:{run.port}/api/orders",
                          headers={"Authorization": f"Bearer {token.group(1)}"}, timeout=10)
    assert answer.status_code == 200 and answer.json() == {"orders": []}
    os.killpg(run.proc.pid, signal.SIGTERM)
    run.proc.wait(timeout=60)


def test_a_busy_port_is_one_line_before_anything_starts(redis_url: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "otpflow.cli", "run", "--no-demo", "--port", str(port)],
                              env=os.environ | {"REDIS_URL": redis_url}, cwd=ROOT, capture_output=True, text=True,
                              timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"otpflow run: port {port} is already in use (another otpflow run, or another "
                                   f"server): stop it, or pick a free port with --port N (or PORT=N)")
    assert "started" not in done.stdout and "gunicorn" not in done.stdout + done.stderr


def test_a_bad_role_setting_is_one_line_not_a_celery_traceback(redis_url: str, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "otpflow.cli", "run", "--no-demo", "--port", str(free_port())],
                          env=os.environ | {"REDIS_URL": redis_url, "WORKER_SOFT_SHUTDOWN_TIMEOUT": "45"}, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr + done.stdout
    assert done.stderr.strip().splitlines() == ["otpflow run: WORKER_SOFT_SHUTDOWN_TIMEOUT: must be under 30 s "
                                                "(Heroku SIGKILLs 30 s after SIGTERM)"]
