"""The whole otpflow pipeline for integration and chaos tests, built from real parts.

Redis is real (the test session's), the provider is our sandbox served over real HTTP, the web app runs under
gunicorn, and the worker and beat are real ``celery`` processes started with the Procfile's options. Tests talk to
it the way a provider and a downstream consumer would: HTTP POSTs in, the events stream out.
"""
from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable

import redis
import requests

from otpflow.embedded_redis import free_port
from tests.support.processes import ChildProcess, celery_beat, celery_worker, gunicorn, wait_http_ok

SANDBOX_KEY = "sandbox-test-key"

FAST_TIMINGS = {
    "POLL_AFTER": "1.5",
    "POLL_INTERVAL": "1",
    "SWEEP_INTERVAL": "0.5",
    "ACTIVATION_TIMEOUT": "4",
    "EARLY_CANCEL_SECONDS": "2",
    "ORDER_RETRY_DELAY": "1",
    "PROVIDER_READ_TIMEOUT": "2",
    "PROVIDER_CONNECT_TIMEOUT": "1",
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

        config = SandboxConfig(api_key=SANDBOX_KEY, webhook_url=self.webhook_url, balance=Decimal("1000"),
                               **overrides)
        self.sandbox_server = serve_in_thread(create_app(config))

    @property
    def env(self) -> dict[str, str]:
        import os

        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTPFLOW_TEST", "PYTEST"))}
        env.update({
            "REDIS_URL": self.redis_url,
            "PORT": str(self.web_port),
            "PROVIDER": "sms-activate",
            "PROVIDER_URL": f"{self.sandbox_server.url}/stubs/handler_api.php",
            "PROVIDER_API_KEY": SANDBOX_KEY,
            "WEBHOOK_TOKEN": self.webhook_token,
            "API_TOKEN": self.api_token,
            "WEB_CONCURRENCY": "2",
            "PYTHONUNBUFFERED": "1",
            "LOG_LEVEL": "INFO",
        })
        env.update(FAST_TIMINGS)
        env.update(self.extra_env)
        return env

    def start(self, *, web: bool = True, worker: bool = True, beat: bool = True, **sandbox: Any) -> "Pipeline":
        if self.sandbox_server is None:
            self.start_sandbox(**sandbox)
        env = self.env
        if web:
            self.processes["web"] = gunicorn(env, self.log_dir).start()
        if worker:
            self.processes["worker"] = celery_worker(env, self.log_dir, concurrency=self.worker_concurrency).start()
        if beat:
            self.processes["beat"] = celery_beat(env, self.log_dir).start()
        if web:
            wait_http_ok(f"{self.base_url}/readyz", check=self._check_alive)
        if worker:
            self.processes["worker"].wait_for_log("ready.", timeout=60)
        return self

    def start_worker(self, name: str = "worker", concurrency: int | None = None) -> ChildProcess:
        proc = celery_worker(self.env, self.log_dir, concurrency=concurrency or self.worker_concurrency,
                             name=name).start()
        self.processes[name] = proc
        proc.wait_for_log("ready.", timeout=60)
        return proc

    def _check_alive(self) -> None:
        for proc in self.processes.values():
            if proc.proc is not None and proc.proc.poll() is not None:
                raise RuntimeError(f"{proc.name} exited early:\n{proc.log()[-4000:]}")

    def stop(self) -> None:
        for proc in list(self.processes.values()):
            proc.stop()
        if self.sandbox_server is not None:
            self.sandbox_server.stop()
            self.sandbox_server = None

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
        for _entry_id, fields in self.redis().xrange(stream):
            data = json.loads(fields["data"])
            if order_id is None or data.get("order_id") == order_id:
                out.append((fields["type"], data))
        return out

    def wait_event(self, order_id: str, event_type: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for kind, data in self.events(order_id):
                if kind == event_type:
                    return data
            self._check_alive()
            time.sleep(0.05)
        raise AssertionError(f"no {event_type} for {order_id} within {timeout}s; events: {self.events(order_id)}\n{self.logs()}")

    def wait_types(self, order_id: str, types: Iterable[str], timeout: float = 30.0) -> list[str]:
        wanted = list(types)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = [kind for kind, _ in self.events(order_id)]
            if all(t in got for t in wanted):
                return got
            time.sleep(0.05)
        raise AssertionError(f"wanted {wanted} for {order_id}; got {[k for k, _ in self.events(order_id)]}\n{self.logs()}")
