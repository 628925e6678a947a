"""The whole otpflow pipeline for integration and chaos tests, built from real parts.

Redis is real (the test session's), the provider is our sandbox served over real HTTP, the web app runs under
gunicorn, and the worker and beat are real ``celery`` processes started with the Procfile's options. Tests talk to
it the way a provider and a downstream consumer would: HTTP POSTs in, the events stream out.
"""
from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import redis
import requests

from lifecycle.streams import Entries
from otpflow.embedded_redis import free_port
from tests.support.processes import (ChildProcess, SandboxProcess, celery_beat, celery_worker, gunicorn,
                                     wait_http_ok)
from tests.support.waiting import wait_until

SANDBOX_KEY = "sandbox-test-key"

FAST_TIMINGS = {
    # one number per order unless a test asks for replacements (tests/integration/test_providers.py does)
    "ORDER_MAX_NUMBERS": "1",
    "POLL_AFTER": "1.5",
    "POLL_INTERVAL": "1",
    "SWEEP_INTERVAL": "0.5",
    "ACTIVATION_TIMEOUT": "4",
    "EARLY_CANCEL_SECONDS": "2",
    "ORDER_RETRY_DELAY": "1",
    "PROVIDER_READ_TIMEOUT": "2",
    "PROVIDER_CONNECT_TIMEOUT": "1",
    # task counters reach Redis after every task, so tests can read them as signs (see Pipeline.task_runs)
    "METRICS_FLUSH_INTERVAL": "0",
}


@dataclass
class Pipeline:
    redis_url: str
    log_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    worker_concurrency: int = 2
    web_port: int = field(default_factory=free_port)
    webhook_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    api_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    processes: dict[str, ChildProcess] = field(default_factory=dict)
    sandbox_server: Any = None
    #: several providers: a sandbox per name (PROVIDERS=<names>), each with its own webhook token; empty: one
    #: provider through the single-provider variables, as before
    provider_names: tuple[str, ...] = ()
    sandboxes: dict[str, Any] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    # ---- lifecycle -------------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def webhook_url(self) -> str:
        return f"{self.base_url}/webhooks/{self.webhook_token}"

    def start_sandbox(self, **overrides: Any) -> None:
        from sandbox import SandboxConfig, create_app
        from sandbox.server import serve_in_thread

        config = SandboxConfig(**{"api_key": SANDBOX_KEY, "webhook_url": self.webhook_url,
                                  "balance": Decimal("1000"), **overrides})
        self.sandbox_server = serve_in_thread(create_app(config))

    def start_sandbox_process(self, log_dir: Path, *, stock: int, balance: Decimal, **settings: Any) -> None:
        """The sandbox in a process of its own (``python -m sandbox``: gunicorn, HTTP/1.1 keep-alive, as a real
        provider answers), for benchmarks: in a thread of the caller it would share the caller's GIL with its load
        generator, and the threaded werkzeug server closes every connection. ``settings`` go to its
        ``/control/settings``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTPFLOW_TEST", "PYTEST", "PROVIDER"))}
        self.sandbox_server = server = SandboxProcess.prepare(
            "sandbox", ["--api-key", SANDBOX_KEY, "--webhook-url", self.webhook_url, "--balance", str(balance),
                        "--stock", str(stock)], env, log_dir / "sandbox.log")
        server.start()
        if settings:
            response = requests.post(f"{server.url}/control/settings", json=settings, timeout=10)
            assert response.status_code == 200, response.text

    def start_sandboxes(self, overrides: dict[str, dict[str, Any]]) -> None:
        """One sandbox per provider name, each posting its webhooks to its own token (``overrides`` by name)."""
        from sandbox import SandboxConfig, create_app
        from sandbox.server import serve_in_thread

        for name in self.provider_names:
            token = self.tokens.setdefault(name, secrets.token_urlsafe(24))
            config = SandboxConfig(api_key=f"{SANDBOX_KEY}-{name}", webhook_url=f"{self.base_url}/webhooks/{token}",
                                   balance=Decimal("1000"), **overrides.get(name, {}))
            self.sandboxes[name] = serve_in_thread(create_app(config))
        self.sandbox_server = self.sandboxes[self.provider_names[0]]

    def sandbox(self, name: str) -> Any:
        return self.sandboxes[name]

    def control_at(self, name: str, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST to one provider's sandbox control API."""
        response = requests.post(f"{self.sandboxes[name].url}/control/{path}", json=payload or {}, timeout=10)
        assert response.status_code == 200, response.text
        return response.json() if response.content else {}

    def state_at(self, name: str) -> dict[str, Any]:
        response = requests.get(f"{self.sandboxes[name].url}/control/state", timeout=10)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def _provider_env(self) -> dict[str, str]:
        if not self.provider_names:
            return {"PROVIDER": "sms-activate", "PROVIDER_URL": f"{self.sandbox_server.url}/stubs/handler_api.php",
                    "PROVIDER_API_KEY": SANDBOX_KEY, "WEBHOOK_TOKEN": self.webhook_token}
        env = {"PROVIDERS": ",".join(self.provider_names)}
        for name in self.provider_names:
            prefix = f"PROVIDER_{name.upper().replace('-', '_')}_"
            env.update({f"{prefix}DIALECT": "sms-activate",
                        f"{prefix}URL": f"{self.sandboxes[name].url}/stubs/handler_api.php",
                        f"{prefix}API_KEY": f"{SANDBOX_KEY}-{name}", f"{prefix}WEBHOOK_TOKEN": self.tokens[name]})
        return env

    @property
    def env(self) -> dict[str, str]:
        import os

        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTPFLOW_TEST", "PYTEST", "PROVIDER"))}
        env.update(self._provider_env())
        env.update({
            "REDIS_URL": self.redis_url,
            "PORT": str(self.web_port),
            "API_TOKEN": self.api_token,
            "WEB_CONCURRENCY": "2",
            "PYTHONUNBUFFERED": "1",
            "LOG_LEVEL": "INFO",
        })
        env.update(FAST_TIMINGS)
        env.update(self.extra_env)
        return env

    def start(self, *, web: bool = True, worker: bool = True, beat: bool = True,
              per_provider: dict[str, dict[str, Any]] | None = None, **sandbox: Any) -> "Pipeline":
        if self.sandbox_server is None:
            if self.provider_names:
                self.start_sandboxes(per_provider or {})
            else:
                self.start_sandbox(**sandbox)
        env = self.env
        if web:
            self.processes["web"] = gunicorn(env, self.log_dir).start()
        if worker:
            self.processes["worker"] = celery_worker(env, self.log_dir, concurrency=self.worker_concurrency).start()
        if beat:
            self.processes["beat"] = celery_beat(env, self.log_dir).start()
        if web:
            wait_http_ok(f"{self.base_url}/readyz", check=self.check_alive)
        if worker:
            self.processes["worker"].wait_for_log("ready.", timeout=60)
        return self

    def start_worker(self, name: str = "worker", concurrency: int | None = None) -> ChildProcess:
        proc = celery_worker(self.env, self.log_dir, concurrency=concurrency or self.worker_concurrency,
                             name=name).start()
        self.processes[name] = proc
        proc.wait_for_log("ready.", timeout=60)
        return proc

    def check_alive(self) -> None:
        """Raise RuntimeError (with its log) if a started process has exited: a ``check`` for wait_until."""
        for proc in self.processes.values():
            if proc.proc is not None and proc.proc.poll() is not None:
                raise RuntimeError(f"{proc.name} exited early:\n{proc.log()[-4000:]}")

    def stop(self) -> None:
        for proc in list(self.processes.values()):
            proc.stop()
        for server in {id(s): s for s in [*self.sandboxes.values(), self.sandbox_server] if s}.values():
            server.stop()
        self.sandbox_server = None
        self.sandboxes.clear()

    def logs(self) -> str:
        return "\n".join(f"===== {p.name}\n{p.log()[-6000:]}" for p in self.processes.values())

    # ---- the outside world's view ----------------------------------------------------------------------------
    def redis(self) -> redis.Redis:
        tls = {"ssl_cert_reqs": None} if self.redis_url.startswith("rediss://") else {}
        return redis.Redis.from_url(self.redis_url, decode_responses=True, **tls)

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = kwargs.pop("headers", {}) | {"Authorization": f"Bearer {self.api_token}"}
        return requests.request(method, f"{self.base_url}{path}", headers=headers, timeout=10, **kwargs)

    def order(self, service: str = "tg", **fields: Any) -> str:
        response = self.api("POST", "/api/orders", json={"service": service, "country": "0", **fields})
        assert response.status_code in (200, 202), response.text
        return str(response.json()["order_id"])

    def post_webhook(self, payload: Any, *, token: str | None = None, **kwargs: Any) -> requests.Response:
        url = f"{self.base_url}/webhooks/{token or self.webhook_token}"
        if isinstance(payload, (bytes, str)):
            return requests.post(url, data=payload, timeout=10, **kwargs)
        return requests.post(url, json=payload, timeout=10, **kwargs)

    def control(self, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        url = f"{self.sandbox_server.url}/control/{path}"
        response = requests.post(url, json=payload or {}, timeout=10) if payload is not None or path != "state" \
            else requests.get(url, timeout=10)
        assert response.status_code == 200, response.text
        return response.json() if response.content else {}

    def sandbox_state(self) -> dict[str, Any]:
        response = requests.get(f"{self.sandbox_server.url}/control/state", timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def events(self, order_id: str | None = None, stream: str = "otpflow:events") -> list[tuple[str, dict[str, Any]]]:
        out = []
        for _entry_id, fields in cast(Entries, self.redis().xrange(stream)):
            data = json.loads(fields["data"])
            if order_id is None or data.get("order_id") == order_id:
                out.append((fields["type"], data))
        return out

    def wait_event(self, order_id: str, event_type: str, timeout: float = 30.0) -> dict[str, Any]:
        """The data of the first ``event_type`` event of ``order_id`` (waiting for it)."""
        def found() -> dict[str, Any] | None:
            return next((data for kind, data in self.events(order_id) if kind == event_type), None)

        return wait_until(found, timeout=timeout, check=self.check_alive,
                          message=lambda: f"no {event_type} for {order_id}; events: {self.events(order_id)}\n"
                                          f"{self.logs()}")

    # ---- signs that a moment has passed (to assert afterwards that something did NOT happen) ------------------
    def key(self, *parts: str) -> str:
        """A Redis key of this deployment (``KEY_PREFIX``, default ``otpflow``)."""
        return ":".join((self.extra_env.get("KEY_PREFIX", "otpflow"), *parts))

    def sweeps(self) -> int:
        """Sweeps completed so far (the sweeper counts itself at the end of every sweep)."""
        return int(self.redis().get(self.key("sweep", "runs")) or 0)

    def wait_sweeps(self, n: int = 2, timeout: float = 30.0) -> int:
        """Until ``n`` more sweeps have completed since the call; returns the count.

        The first of them may have been under way already, so two completed sweeps mean at least one whole sweep
        ran after the call: every deadline due at the call was looked at."""
        target = self.sweeps() + n
        return wait_until(lambda: (count := self.sweeps()) >= target and count, timeout=timeout,
                          check=self.check_alive, message=lambda: f"fewer than {n} sweeps\n{self.logs()}")

    def wait_inbox_drained(self, timeout: float = 30.0) -> None:
        """Until every stored webhook was drained: the inbox stream is empty (acknowledged entries are deleted)."""
        wait_until(lambda: self.redis().xlen(self.key("inbox")) == 0, timeout=timeout, check=self.check_alive,
                   message=lambda: f"inbox not drained: {self.redis().xrange(self.key('inbox'))}\n{self.logs()}")

    def _counts(self, hash_name: str, name: str) -> dict[str, int]:
        """``<name>|<label>`` fields of a worker metrics hash, by label (flushed after each task here)."""
        fields = cast("dict[str, str]", self.redis().hgetall(self.key("metrics", hash_name)))
        prefix = f"{name}|"
        return {f[len(prefix):]: int(float(v)) for f, v in fields.items() if f.startswith(prefix)}

    def task_runs(self, task: str) -> dict[str, int]:
        """Runs of ``task`` (e.g. ``otpflow.place_order``) completed by every worker process, by outcome."""
        return self._counts("task-runs", task)

    def provider_calls(self, action: str) -> dict[str, int]:
        """The workers' provider calls of ``action`` (e.g. ``setStatus``), by result (``ok`` or an error class)."""
        return self._counts("provider-calls", action)
