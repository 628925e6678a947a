"""Fixtures for task/flow unit tests: a Runtime on fakeredis with a fake provider and a recording publisher."""
from __future__ import annotations

from typing import Any

import pytest

from config.settings import Settings
from flows.runtime import Runtime
from tests.unit.lifecycle.conftest import FakeClock, stream_events  # noqa: F401
from tests.unit.flows.fakes import FakeProvider


class Published(list):
    def __call__(self, name: str, kwargs: Any) -> None:
        self.append((name, dict(kwargs)))

    def names(self) -> list[str]:
        return [n for n, _ in self]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings() -> Settings:
    return Settings(auto_finish=False, poll_after=30.0, poll_interval=15.0, activation_timeout=1200.0,
                    finish_timeout=600.0, order_max_attempts=3, order_retry_delay=30.0, events_maxlen=1000,
                    sweep_batch=500)


@pytest.fixture
def provider(clock: FakeClock) -> FakeProvider:
    return FakeProvider(clock)


@pytest.fixture
def published() -> Published:
    return Published()


@pytest.fixture
def rt(fake_redis: Any, settings: Settings, provider: FakeProvider, published: Published, clock: FakeClock) -> Runtime:
    return Runtime(settings=settings, redis=fake_redis, provider=provider, publish=published, clock=clock,
                   consumer_name="test")
