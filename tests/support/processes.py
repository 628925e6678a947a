"""Real child processes for integration and chaos tests: gunicorn, celery worker and beat.

Each process runs in its own session (its own process group), logs to a file the test can show on failure, and
is stopped with SIGTERM then SIGKILL. Nothing here patches otpflow: these are the commands the Procfile runs.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import requests

from otpflow import procfile
from otpflow.embedded_redis import free_port
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ChildProcess:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> "ChildProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(self, needle: str, timeout: float = 30.0) -> None:
        """Until ``needle`` is in the log; RuntimeError at once if the process exits without logging it."""
        def logged() -> bool:
            if needle in self.log():
                return True
            if not self.alive():
                code = self.proc.returncode if self.proc else "?"
                raise RuntimeError(f"{self.name} exited ({code}):\n{self.log()[-4000:]}")
            return False

        wait_until(logged, timeout=timeout,
                   message=lambda: f"{self.name} did not log {needle!r}:\n{self.log()[-4000:]}")

    def signal_group(self, sig: int) -> None:
        if self.alive():
            os.killpg(self.pid, sig)

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        else:
            # the leader is gone; make sure no orphaned pool child keeps running
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        return self.proc.returncode


def python_argv(*args: str) -> list[str]:
    """This interpreter with ``args`` (for processes that are not Procfile roles: benchmarks' baselines)."""
    return [sys.executable, *args]


def gunicorn(env: dict[str, str], log_dir: Path, *, workers: int = 2) -> ChildProcess:
    """The Procfile's ``web`` process (``otpflow.procfile``)."""
    cmd = procfile.command("web", dict(env, WEB_CONCURRENCY=str(workers)))
    return ChildProcess("web", list(cmd.argv), cmd.env, log_dir / "web.log")


def celery_worker(env: dict[str, str], log_dir: Path, *, concurrency: int = 2, name: str = "worker") -> ChildProcess:
    """The Procfile's ``worker`` process, with a node name of its own so several can run side by side."""
    cmd = procfile.command("worker", dict(env, WORKER_CONCURRENCY=str(concurrency)), "--hostname", f"{name}@%h")
    return ChildProcess(name, list(cmd.argv), cmd.env, log_dir / f"{name}.log")


def celery_beat(env: dict[str, str], log_dir: Path, *, name: str = "beat") -> ChildProcess:
    """The Procfile's ``beat`` process, with a schedule file of its own (beats of different tests share none)."""
    schedule = tempfile.mktemp(prefix="otpflow-beat-", dir=str(log_dir))
    cmd = procfile.command("beat", env, "--schedule", schedule)
    return ChildProcess(name, list(cmd.argv), cmd.env, log_dir / f"{name}.log")


def answers_200(url: str) -> bool:
    """Whether ``url`` answers HTTP 200 now (a refused or timed-out connection is a no)."""
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def wait_http_ok(url: str, timeout: float = 30.0, check: Callable[[], None] | None = None) -> None:
    """Until ``url`` answers 200; ``check`` runs every round and may raise (e.g. the server exited)."""
    wait_until(lambda: answers_200(url), timeout=timeout, check=check, message=f"{url} did not answer 200")


@dataclass
class SandboxProcess:
    """``python -m sandbox`` in a process of its own (gunicorn with HTTP/1.1 keep-alive, as a real provider
    answers): ``.url``, ``.pid`` and ``.stop()``, like a thread's SandboxServer. The one way the pipeline tests and
    the bench scripts start a sandbox process and wait until it answers."""

    process: ChildProcess
    port: int

    @classmethod
    def prepare(cls, name: str, args: Sequence[str], env: Mapping[str, str], log_path: Path,
                port: int | None = None) -> "SandboxProcess":
        """``python -m sandbox --port <port> <args>``, not started yet (``start()`` runs it and waits)."""
        port = port or free_port()
        argv = python_argv("-m", "sandbox", "--port", str(port), *args)
        return cls(ChildProcess(name, argv, dict(env), log_path), port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def start(self) -> "SandboxProcess":
        """Start it and wait for ``/control/clock``: RuntimeError with its log if it exits first, AssertionError
        if it has not answered within 30 s."""
        self.process.start()
        wait_http_ok(f"{self.url}/control/clock", timeout=30, check=self._check)
        return self

    def _check(self) -> None:
        if not self.process.alive():
            raise RuntimeError(f"{self.process.name} exited:\n{self.process.log()[-4000:]}")

    def stop(self) -> None:
        self.process.stop()
