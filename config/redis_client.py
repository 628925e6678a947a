"""The one place that turns ``REDIS_URL`` into a redis-py client.

Heroku Redis speaks ``rediss://`` with a self-signed certificate, and redis-py waits forever on a dead socket
unless told otherwise; both are decided here so that the web app, the workers and the CLI behave alike.
"""
from __future__ import annotations

import redis

from config.settings import Settings

SOCKET_TIMEOUT = 5.0
CONNECT_TIMEOUT = 3.0


def redis_kwargs(settings: Settings) -> dict[str, object]:
    """Keyword arguments for ``redis.Redis.from_url`` that honour TLS and time-out policy."""
    kwargs: dict[str, object] = {
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "health_check_interval": 30,
        "retry_on_timeout": False,
    }
    if settings.redis_url.startswith("rediss://"):
        kwargs["ssl_cert_reqs"] = None if settings.redis_ssl_cert_reqs == "none" else settings.redis_ssl_cert_reqs
    return kwargs


def make_redis(settings: Settings, *, decode_responses: bool = True) -> redis.Redis:
    """A client with a connection pool; share it per process (it is thread-safe)."""
    return redis.Redis.from_url(settings.redis_url, decode_responses=decode_responses, **redis_kwargs(settings))
