"""A production-shaped otpflow formation on loopback, for ``bench/soak.py``: several web, worker and beat processes
against one private Redis (append-only file on, so it can be restarted) and several sandbox providers.

Every process is started as the Procfile runs it (``otpflow.procfile``, through ``tests/support/processes.py``'s
``ChildProcess``); each sandbox is ``python -m sandbox`` in its own process (gunicorn, keep-alive, as a real
provider serves), with its own API key, webhook token and price, posting its webhooks to one of the web
processes. Nothing here patches otpflow.
"""
from __future__ import annotations

import os
import secrets
import signal
import sys
import tempfile
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import redis  # noqa: E402
import requests  # noqa: E402

from otpflow import procfile  # noqa: E402
from otpflow.embedded_redis import EmbeddedRedis, free_port  # noqa: E402
from tests.support.processes import ChildProcess, SandboxProcess, answers_200  # noqa: E402
from tests.support.waiting import wait_until  # noqa: E402

#: timings short enough that a run of a minute sees orders bought, coded or timed out, polled and swept
SOAK_TIMINGS = {
    "ORDER_MAX_NUMBERS": "1",
    "POLL_AFTER": "1.5",
    "POLL_INTERVAL": "1",
    "SWEEP_INTERVAL": "0.5",
    "ACTIVATION_TIMEOUT": "8",
    "EARLY_CANCEL_SECONDS": "1",
    "ORDER_RETRY_DELAY": "1",
    "PROVIDER_READ_TIMEOUT": "3",
    "PROVIDER_CONNECT_TIMEOUT": "1",
    "PROVIDER_COOLDOWN": "3",
    "METRICS_FLUSH_INTERVAL": "0",
    "BROKER_VISIBILITY_TIMEOUT": "6",
    "WORKER_SOFT_SHUTDOWN_TIMEOUT": "8",
    "LOG_LEVEL": "INFO",
    "GUNICORN_ACCESSLOG": "",
}

#: the sandbox's webhook retries, shortened so a delivery cut off by a web restart lands within the run
SANDBOX_SETTINGS = {"early_cancel_seconds": 1, "webhook_backoff": [0.5, 1, 2, 4, 8, 15, 30], "webhook_attempts": 8}


class FormationError(RuntimeError):
    """A process of the formation did not start or exited early (its log tail is in the message)."""


def become_subreaper() -> bool:
    """Ask Linux to re-parent our orphaned descendants to us (PR_SET_CHILD_SUBREAPER), so we can reap them."""
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6", use_errno=True).prctl(36, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def reap_orphans() -> int:
    """Reap every exited child not waited for (orphans re-parented to us); how many."""
    reaped = 0
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        reaped += 1


@dataclass
class Sandbox:
    """One provider: a ``python -m sandbox`` process with its own key, webhook token and price."""

    name: str
    price: Decimal
    webhook_url: str
    log_dir: Path
    port: int = field(default_factory=free_port)
    api_key: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    process: ChildProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, env: dict[str, str]) -> "Sandbox":
        server = SandboxProcess.prepare(
            f"sandbox-{self.name}", ["--api-key", self.api_key, "--webhook-url", self.webhook_url,
                                     "--balance", "100000", "--stock", "100000", "--price", f"tg:0:{self.price}"],
            env, self.log_dir / f"sandbox-{self.name}.log", port=self.port)
        self.process = server.process  # before it starts: stopped with the formation even if it never answers
        try:
            server.start()
        except (RuntimeError, AssertionError) as exc:
            raise FormationError(f"sandbox {self.name} did not start: {exc}") from None
        self.control("settings", SANDBOX_SETTINGS)
        return self

    def log(self) -> str:
        return self.process.log()[-3000:] if self.process else ""

    def control(self, path: str, payload: dict[str, Any]) -> requests.Response:
        """POST to the control API (never failed by a fault mode); the response, whatever its status."""
        return requests.post(f"{self.url}/control/{path}", json=payload, timeout=10)

    def state(self) -> dict[str, Any]:
        response = requests.get(f"{self.url}/control/state", timeout=30)
        response.raise_for_status()
        return dict(response.json())


@dataclass
class Formation:
    """``webs`` web, ``workers`` worker and ``beats`` beat processes, a private Redis and a sandbox per provider."""

    log_dir: Path
    providers: dict[str, Decimal]
    webs: int = 2
    workers: int = 2
    beats: int = 2
    web_concurrency: int = 2
    worker_concurrency: int = 2
    extra_env: dict[str, str] = field(default_factory=dict)
    api_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    redis_server: EmbeddedRedis | None = None
    web_ports: list[int] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)
    sandboxes: dict[str, Sandbox] = field(default_factory=dict)
    processes: dict[str, ChildProcess] = field(default_factory=dict)
    #: every pid the formation ever started or saw as a child, to prove at the end that none is left
    seen_pids: set[int] = field(default_factory=set)
    _generation: int = 0

    # ---- start ------------------------------------------------------------------------------------------------
    def start_redis(self) -> EmbeddedRedis:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        data_dir = tempfile.mkdtemp(prefix="otpflow-soak-redis-", dir=str(self.log_dir))
        self.redis_server = EmbeddedRedis(appendonly=True, data_dir=data_dir).start()
        return self.redis_server

    @property
    def redis_url(self) -> str:
        assert self.redis_server is not None
        return self.redis_server.url

    def redis(self, timeout: float = 5.0) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url, decode_responses=True, socket_timeout=timeout,
                                    socket_connect_timeout=timeout)

    def web_url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.web_ports[index]}"

    def start_sandboxes(self) -> None:
        base = self._base_env()
        for i, (name, price) in enumerate(self.providers.items()):
            token = self.tokens.setdefault(name, secrets.token_urlsafe(24))
            # each provider posts to one web process: a restart of that web makes its deliveries retry
            url = f"{self.web_url(i % self.webs)}/webhooks/{token}"
            self.sandboxes[name] = Sandbox(name, price, url, self.log_dir).start(base)
            self._note(self.sandboxes[name].process)

    def _base_env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items()
                if not k.startswith(("OTPFLOW_TEST", "PYTEST", "PROVIDER", "REDIS_URL", "WEB_", "WORKER_"))}

    @property
    def env(self) -> dict[str, str]:
        env = self._base_env()
        env["PROVIDERS"] = ",".join(self.providers)
        for name, sandbox in self.sandboxes.items():
            prefix = f"PROVIDER_{name.upper().replace('-', '_')}_"
            env.update({f"{prefix}DIALECT": "sms-activate", f"{prefix}URL": f"{sandbox.url}/stubs/handler_api.php",
                        f"{prefix}API_KEY": sandbox.api_key, f"{prefix}WEBHOOK_TOKEN": self.tokens[name]})
        # rents name their webhook URL in getRentNumber: {PUBLIC_URL}/webhooks/<token>, here the first web process
        env["PUBLIC_URL"] = self.web_url(0)
        env.update({"REDIS_URL": self.redis_url, "API_TOKEN": self.api_token, "PYTHONUNBUFFERED": "1",
                    "WEB_CONCURRENCY": str(self.web_concurrency), "WORKER_CONCURRENCY": str(self.worker_concurrency)})
        env.update(SOAK_TIMINGS)
        env.update(self.extra_env)
        return env

    def start(self) -> "Formation":
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if self.redis_server is None:
            self.start_redis()
        self.web_ports = [free_port() for _ in range(self.webs)]
        self.start_sandboxes()
        for i in range(self.webs):
            self.start_web(i, wait=False)
        for i in range(self.workers):
            self.start_worker(f"worker{i + 1}", wait=False)
        for i in range(self.beats):
            self.start_beat(f"beat{i + 1}")
        for i in range(self.webs):
            self.wait_web(i)
        for name in [n for n in self.processes if n.startswith("worker")]:
            self.wait_worker(name)
        return self

    def _launch(self, name: str, cmd: procfile.Command) -> ChildProcess:
        self._generation += 1
        log = self.log_dir / f"{name}.{self._generation}.log"
        proc = ChildProcess(name, list(cmd.argv), cmd.env, log).start()
        self.processes[name] = proc
        self._note(proc)
        return proc

    def start_web(self, index: int, *, wait: bool = True) -> ChildProcess:
        env = dict(self.env, PORT=str(self.web_ports[index]))
        proc = self._launch(f"web{index + 1}", procfile.command("web", env))
        if wait:
            self.wait_web(index)
        return proc

    def wait_web(self, index: int) -> None:
        wait_until(lambda: answers_200(f"{self.web_url(index)}/readyz"), timeout=60, interval=0.1,
                   check=lambda: self.check_alive(f"web{index + 1}"), message=f"web{index + 1} did not answer /readyz")

    def start_worker(self, name: str, *, wait: bool = True) -> ChildProcess:
        proc = self._launch(name, procfile.command("worker", self.env, "--hostname", f"{name}.{self._generation}@%h"))
        if wait:
            self.wait_worker(name)
        return proc

    def wait_worker(self, name: str) -> None:
        self.processes[name].wait_for_log("ready.", timeout=90)
        self.note_children()

    def start_beat(self, name: str) -> ChildProcess:
        schedule = tempfile.mktemp(prefix=f"{name}-schedule-", dir=str(self.log_dir))
        return self._launch(name, procfile.command("beat", self.env, "--schedule", schedule))

    # ---- observe ----------------------------------------------------------------------------------------------
    def _note(self, proc: ChildProcess | None) -> None:
        if proc is not None and proc.proc is not None:
            self.seen_pids.add(proc.pid)

    def note_children(self) -> None:
        """Remember every descendant now alive (pool children, gunicorn workers, sandbox workers)."""
        try:
            self.seen_pids.update(p.pid for p in psutil.Process().children(recursive=True))
        except psutil.Error:
            pass

    def check_alive(self, only: str | None = None) -> None:
        """FormationError if a running process (or just ``only``) has exited (a ``check`` for wait_until)."""
        for proc in [*self.processes.values(), *(s.process for s in self.sandboxes.values() if s.process)]:
            if only is not None and proc.name != only:
                continue
            if proc.proc is not None and proc.proc.poll() is not None:
                raise FormationError(f"{proc.name} exited ({proc.proc.returncode}):\n{proc.log()[-4000:]}")

    def redis_connections(self) -> dict[str, int]:
        """Open connections to our Redis, by process of the formation (a process with its children; ``other``: the
        harness itself)."""
        assert self.redis_server is not None
        role_of: dict[int, str] = {}
        for name, proc in self.processes.items():
            if proc.alive():
                role_of[proc.pid] = name
                try:
                    role_of.update({c.pid: name for c in psutil.Process(proc.pid).children(recursive=True)})
                except psutil.Error:
                    pass
        counts: dict[str, int] = {}
        for conn in psutil.net_connections(kind="tcp"):
            if conn.raddr and conn.raddr.port == self.redis_server.port and conn.status == "ESTABLISHED":
                role = role_of.get(conn.pid or -1, "other")
                counts[role] = counts.get(role, 0) + 1
        return dict(sorted(counts.items()))

    def exited(self) -> list[ChildProcess]:
        """Processes of the formation (not sandboxes) that have exited without being stopped."""
        return [p for p in self.processes.values() if p.proc is not None and p.proc.poll() is not None]

    def restart(self, name: str) -> ChildProcess:
        """A new process in place of ``name``, as the platform restarts a crashed dyno."""
        old = self.processes.pop(name)
        old.stop(timeout=10)  # reaps it, and any orphan of its group
        if name.startswith("web"):
            return self.start_web(int(name[3:]) - 1)
        if name.startswith("worker"):
            return self.start_worker(name)
        return self.start_beat(name)

    def pool_children(self, name: str) -> list[psutil.Process]:
        return psutil.Process(self.processes[name].pid).children(recursive=True)

    def logs(self, tail: int = 3000) -> str:
        procs = [*self.processes.values(), *(s.process for s in self.sandboxes.values() if s.process)]
        return "\n".join(f"===== {p.name}\n{p.log()[-tail:]}" for p in procs)

    # ---- faults -----------------------------------------------------------------------------------------------
    def kill_group(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal a whole process group (the process and its children) and reap it."""
        proc = self.processes.pop(name)
        proc.signal_group(sig)
        proc.stop(timeout=40)

    # ---- stop -------------------------------------------------------------------------------------------------
    def stop_processes(self) -> None:
        for proc in list(self.processes.values()):
            proc.stop(timeout=40)
        for sandbox in self.sandboxes.values():
            if sandbox.process is not None:
                sandbox.process.stop(timeout=20)

    def stop(self) -> None:
        self.note_children()
        self.stop_processes()
        if self.redis_server is not None:
            self.redis_server.stop()

    def leftovers(self) -> list[str]:
        """Processes the formation started that still exist (zombies included), as ``pid name`` strings.

        Orphans (a pool child whose worker was SIGKILLed) are re-parented to us when ``become_subreaper`` ran, and
        reaped here; elsewhere they would wait for PID 1 to reap them."""
        reap_orphans()
        left = []
        for pid in sorted(self.seen_pids):
            try:
                proc = psutil.Process(pid)
                left.append(f"{pid} {proc.name()} ({proc.status()})")
            except psutil.NoSuchProcess:
                continue
        try:
            left += [f"{p.pid} {p.name()} (child)" for p in psutil.Process().children(recursive=True)
                     if p.pid not in self.seen_pids]
        except psutil.Error:
            pass
        return left
