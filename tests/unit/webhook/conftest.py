"""Fixtures for the web app tests: an app on fakeredis with a recording Celery producer."""
from __future__ import annotations

import socket
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator

import fakeredis
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from config.settings import Settings
from lifecycle.inbox import Inbox
from webhook.app import create_app
from webhook.context import WebContext

TOKEN = "tok_" + "A1b2C3d4E5f6G7h8I9j0"
API_TOKEN = "api_" + "Z9y8X7w6V5u4T3s2R1q0"
WEBHOOK = f"/webhooks/{TOKEN}"

BASE_SETTINGS = Settings(webhook_token=TOKEN, api_token=API_TOKEN, webhook_max_bytes=2048, dead_letter_maxlen=1000)


@dataclass
class RecordingCelery:
    """Stands in for the Celery producer: records every publish (and can be told to fail)."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    fail_with: BaseException | None = None

    def send_task(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append((name, kwargs))
        if self.fail_with is not None:
            raise self.fail_with

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


@dataclass
class Harness:
    app: Flask
    client: FlaskClient
    redis: redis.Redis
    celery: RecordingCelery

    @property
    def ctx(self) -> WebContext:
        return self.app.extensions["otpflow"]

    @property
    def inbox(self) -> Inbox:
        return self.ctx.inbox

    def inbox_payloads(self) -> list[tuple[str, str]]:
        return [(f["kind"], f["payload"]) for _id, f in self.redis.xrange(self.inbox.stream_key)]

    def dead_letters(self) -> list[dict[str, str]]:
        return [f for _id, f in self.redis.xrange(self.inbox.dead_letter_key)]


MakeHarness = Callable[..., Harness]


@pytest.fixture
def make_harness() -> Iterator[MakeHarness]:
    """Build an app with settings overrides, on a fresh fakeredis (or a given client)."""

    def build(redis_client: redis.Redis | None = None, **overrides: Any) -> Harness:
        settings = replace(BASE_SETTINGS, **overrides)
        client = redis_client if redis_client is not None else fakeredis.FakeRedis(decode_responses=True)
        celery = RecordingCelery()
        app = create_app(settings, redis_client=client, celery_app=celery)
        app.testing = True
        return Harness(app=app, client=app.test_client(), redis=client, celery=celery)

    yield build


@pytest.fixture
def harness(make_harness: MakeHarness) -> Harness:
    return make_harness()


@pytest.fixture
def closed_port() -> int:
    """A loopback TCP port nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
