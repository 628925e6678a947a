"""Fixtures for sandbox unit tests: a Flask test client speaking handler_api, and a local webhook receiver."""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from sandbox import SandboxConfig, create_app, engine_of
from sandbox.engine import Engine
from tests.support.waiting import wait_until

KEY = "test-key"


class Api:
    """Calls handler_api through the Flask test client."""

    def __init__(self, client: FlaskClient, key: str | None = KEY) -> None:
        self.client = client
        self.key = key

    def raw(self, action: str | None = None, method: str = "GET", headers: dict[str, str] | None = None,
            **params: Any):
        q = {k: str(v) for k, v in params.items() if v is not None}
        if self.key is not None and "api_key" not in q:
            q["api_key"] = self.key
        if action is not None:
            q["action"] = action
        if method == "POST":
            return self.client.post("/stubs/handler_api.php", data=q, headers=headers)
        return self.client.get("/stubs/handler_api.php", query_string=q, headers=headers)

    def __call__(self, action: str, **params: Any) -> str:
        r = self.raw(action, **params)
        return r.get_data(as_text=True)

    def json(self, action: str, **params: Any) -> Any:
        return json.loads(self(action, **params))

    def buy(self, service: str = "tg", **params: Any) -> tuple[str, str]:
        body = self("getNumber", service=service, **params)
        token, act_id, phone = body.split(":")
        assert token == "ACCESS_NUMBER", body
        return act_id, phone

    def balance(self) -> Decimal:
        body = self("getBalance")
        assert body.startswith("ACCESS_BALANCE:"), body
        return Decimal(body.split(":", 1)[1])


class Control:
    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def post(self, path: str, body: dict[str, Any] | None = None, status: int = 200) -> Any:
        r = self.client.post(f"/control/{path}", json=body or {})
        assert r.status_code == status, (r.status_code, r.get_data(as_text=True))
        return r.get_json()

    def sms(self, activation_id: str, code: str = "123456", **kw: Any) -> Any:
        return self.post("sms", {"activation_id": activation_id, "code": code, **kw})

    def advance(self, seconds: float) -> Any:
        return self.post("clock/advance", {"seconds": seconds})

    def settings(self, **kw: Any) -> Any:
        return self.post("settings", kw)

    def state(self) -> Any:
        return self.client.get("/control/state").get_json()


@pytest.fixture
def make_app() -> Iterator[Callable[..., Flask]]:
    apps: list[Flask] = []

    def factory(**kw: Any) -> Flask:
        kw.setdefault("api_key", KEY)
        kw.setdefault("seed", 7)
        app = create_app(SandboxConfig(**kw))
        apps.append(app)
        return app

    yield factory
    for app in apps:
        engine_of(app).close()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def api(app: Flask) -> Api:
    return Api(app.test_client())


@pytest.fixture
def control(app: Flask) -> Control:
    return Control(app.test_client())


@pytest.fixture
def engine(app: Flask) -> Engine:
    return engine_of(app)


@dataclass
class Receiver:
    """A local HTTP server that records POSTs and answers statuses from a script (then 200)."""

    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    script: list[int] = field(default_factory=list)
    event: threading.Event = field(default_factory=threading.Event)

    def wait_for(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Everything received, once at least ``n`` POSTs arrived."""
        wait_until(lambda: len(self.received) >= n, timeout=timeout, interval=0.01,
                   message=lambda: f"{len(self.received)} of {n} webhooks arrived: {self.received}")
        return self.received


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver(url="")
    lock = threading.Lock()

    class H(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            with lock:
                status = rec.script.pop(0) if rec.script else 200
                rec.received.append({"path": self.path, "headers": dict(self.headers),
                                     "body": json.loads(body), "answered": status})
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    rec.url = f"http://127.0.0.1:{server.server_port}/hook/tok"
    yield rec
    server.shutdown()
    server.server_close()
