from __future__ import annotations

import tempfile

import redis

from otpflow.embedded_redis import EmbeddedRedis, redis_reachable, resolve_redis_url


def test_embedded_server_starts_answers_and_stops() -> None:
    server = EmbeddedRedis().start()
    try:
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    finally:
        server.stop()
    assert not redis_reachable(server.url, timeout=0.2)


def test_appendonly_keeps_data_across_a_restart() -> None:
    data_dir = tempfile.mkdtemp()
    first = EmbeddedRedis(appendonly=True, data_dir=data_dir).start()
    redis.Redis.from_url(first.url).set("k", "v")
    port = first.port
    first.stop()
    second = EmbeddedRedis(port=port, appendonly=True, data_dir=data_dir).start()
    try:
        assert redis.Redis.from_url(second.url).get("k") == b"v"
    finally:
        second.stop()


def test_resolve_starts_one_only_when_nothing_answers() -> None:
    server = EmbeddedRedis().start()
    try:
        url, started = resolve_redis_url(server.url)
        assert url == server.url and started is None
    finally:
        server.stop()
    url, started = resolve_redis_url("redis://127.0.0.1:1/0")
    try:
        assert started is not None and redis_reachable(url)
    finally:
        if started:
            started.stop()
