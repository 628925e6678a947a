"""Shared fixtures: a real Redis for integration tests (the machine's, or an embedded one), fakeredis for unit tests.

``OTPFLOW_TEST_REDIS`` picks the server: ``auto`` (default: 127.0.0.1:6379 when it answers, else an embedded one),
``embedded`` (always start one: the local extra's valkey-server, else a redis-server or valkey-server on PATH, see
``otpflow.embedded_redis``), or a ``redis://`` URL. Tests use their own database number (``OTPFLOW_TEST_REDIS_DB``,
default 9), flushed before each test that asks for it. ``amqp_broker_url`` is a RabbitMQ for the tests that put the
Celery messages on AMQP (``tests/support/amqp.py``).
"""
from __future__ import annotations

import os
from typing import Iterator

import pytest
import redis

from otpflow.embedded_redis import EmbeddedRedis, redis_reachable
from tests.support import amqp

DEFAULT_LOCAL = "redis://127.0.0.1:6379"


def _with_db(url: str, db: int) -> str:
    base = url.rsplit("/", 1)[0] if url.count("/") > 2 else url
    return f"{base}/{db}"


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    """Base URL (no database) of the Redis server the whole test session uses."""
    choice = os.environ.get("OTPFLOW_TEST_REDIS", "auto").strip()
    if choice.startswith(("redis://", "rediss://")):
        yield choice.rsplit("/", 1)[0] if choice.count("/") > 2 else choice
        return
    if choice == "auto" and redis_reachable(DEFAULT_LOCAL + "/0"):
        yield DEFAULT_LOCAL
        return
    server = EmbeddedRedis().start()
    try:
        yield server.url.rsplit("/", 1)[0]
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_db() -> int:
    return int(os.environ.get("OTPFLOW_TEST_REDIS_DB", "9"))


@pytest.fixture
def redis_url(redis_server_url: str, redis_db: int) -> Iterator[str]:
    """URL of an empty test database on a real Redis (flushed before the test)."""
    url = _with_db(redis_server_url, redis_db)
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    yield url


@pytest.fixture
def real_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def fake_redis() -> Iterator["redis.Redis"]:
    """In-process fakeredis with Lua, for fast unit tests of scripts and state logic."""
    import fakeredis

    client = fakeredis.FakeRedis(decode_responses=True)
    yield client
    client.flushall()


@pytest.fixture(scope="session")
def amqp_broker_url() -> str:
    """A RabbitMQ that answers (``OTPFLOW_TEST_AMQP``, see tests/support/amqp.py): skipped, naming what was tried,
    when none does; failed instead when ``OTPFLOW_TEST_AMQP=required`` (CI)."""
    return amqp.broker_url_or_skip()
