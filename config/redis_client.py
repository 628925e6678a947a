"""The one place that turns ``REDIS_URL`` into a redis-py client.

Heroku Redis speaks ``rediss://`` with a self-signed certificate, and redis-py waits forever on a dead socket
unless told otherwise; both are decided here so that the web app, the workers and the CLI behave alike. So is the
size of each process's pool: at most ``REDIS_MAX_CONNECTIONS`` connections (a ``BlockingConnectionPool``: a thread
that finds them all in use waits for one to come back instead of opening another, and gets a ConnectionError after
its time-out), so a formation's connections are bounded by its settings (README, Sizing Redis).
"""
from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from config.settings import Settings

SOCKET_TIMEOUT = 5.0
CONNECT_TIMEOUT = 3.0
#: the web process answers providers that give up after 3 s (HeroSMS): a hung Redis must turn into a 503 well
#: before that, so the provider's retry (not its time-out) is what happens
WEB_SOCKET_TIMEOUT = 1.5
WEB_CONNECT_TIMEOUT = 1.0
#: seconds a web thread waits for a free connection of its process's pool before its request gets a 503: the wait
#: and the command's own time-outs stay within the provider's patience
WEB_POOL_TIMEOUT = 1.0
#: the same wait in a worker, beat or CLI process (a pool child's finishing threads share its connections; a
#: command takes milliseconds, so a long wait means Redis itself is stuck)
POOL_TIMEOUT = 10.0


def redis_kwargs(settings: Settings, *, socket_timeout: float = SOCKET_TIMEOUT,
                 connect_timeout: float = CONNECT_TIMEOUT, retries: int | None = None) -> dict[str, object]:
    """Keyword arguments for ``redis.Redis.from_url`` that honour TLS and time-out policy.

    ``retries``: how often redis-py re-sends a command after a time-out or a lost connection (None: its default,
    ten times with backoff, which rides out a blip but turns one hung Redis into many time-outs in a row).
    """
    kwargs: dict[str, object] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
        "health_check_interval": 30,
    }
    if retries is not None:
        kwargs["retry"] = Retry(NoBackoff(), retries)
    if settings.redis_url.startswith("rediss://"):
        kwargs["ssl_cert_reqs"] = None if settings.redis_ssl_cert_reqs == "none" else settings.redis_ssl_cert_reqs
    return kwargs


def make_redis(settings: Settings, *, decode_responses: bool = True, socket_timeout: float = SOCKET_TIMEOUT,
               connect_timeout: float = CONNECT_TIMEOUT, retries: int | None = None,
               pool_timeout: float = POOL_TIMEOUT) -> redis.Redis:
    """A client whose pool opens at most ``REDIS_MAX_CONNECTIONS`` connections (a thread waits up to
    ``pool_timeout`` seconds for a free one); share it per process (it is thread-safe)."""
    pool = redis.BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=settings.redis_max_connections, timeout=pool_timeout,
        decode_responses=decode_responses,
        **redis_kwargs(settings, socket_timeout=socket_timeout, connect_timeout=connect_timeout, retries=retries))
    client = redis.Redis(connection_pool=pool)
    client.auto_close_connection_pool = True  # as from_url does: closing the client closes its pool
    return client


def make_web_redis(settings: Settings) -> redis.Redis:
    """The web process's client: short time-outs and no re-sends, so a hung Redis gives a 503 well within the
    provider's patience (HeroSMS: 3 s) instead of redis-py's ten retries of 1.5 s each; the provider retries."""
    return make_redis(settings, socket_timeout=WEB_SOCKET_TIMEOUT, connect_timeout=WEB_CONNECT_TIMEOUT, retries=0,
                      pool_timeout=WEB_POOL_TIMEOUT)
