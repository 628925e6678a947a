"""Fixtures for flow unit tests: a Runtime on fakeredis with a fake provider and a recording publisher.

``clock`` and ``settings`` are the lifecycle tests' own fixtures, re-used here.
"""
from __future__ import annotations

from typing import Any

import pytest

from config.settings import Settings
from flows.runtime import Runtime
from tests.unit.lifecycle.conftest import FakeClock, clock, settings, stream_events
from tests.unit.flows.fakes import FakeProvider


class Published(list):
    def __call__(self, name: str, kwargs: Any) -> None:
        self.append((name, dict(kwargs)))

    def names(self) -> list[str]:
        return [n for n, _ in self]


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


__all__ = ["FakeClock", "Published", "clock", "settings", "stream_events"]
