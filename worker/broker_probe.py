"""Can this process reach the Celery broker? One bounded connection attempt, cached briefly.

``/readyz`` (webhook/health.py) and ``otpflow doctor`` ask it when ``CELERY_BROKER_URL`` names a broker of its own
(RabbitMQ over AMQP, or another Redis). When the messages go through ``REDIS_URL`` there is nothing to ask here:
those checks already ask that Redis.

A probe opens one connection (AMQP: the TCP connect and the handshake, login and vhost included; Redis: connect and
PING) with every time-out at :data:`PROBE_TIMEOUT`, no retry, and closes it. :class:`BrokerCheck` keeps its answer
:data:`CACHE_SECONDS`, so a platform polling ``/readyz`` every second costs the broker one connection per process
every few seconds, and a dead broker holds a readiness answer back at most about a second. What it says about the
broker is :func:`where` (scheme, host, port, vhost) and the error's type: never the URL, whose user and password
are credentials.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Callable
from urllib.parse import urlsplit

from config.logging_setup import redact
from config.settings import Settings

#: seconds a probe may take to connect, and then to hear each answer of the handshake
PROBE_TIMEOUT = 1.0
#: seconds a probe's answer is reused
CACHE_SECONDS = 5.0
_DEFAULT_PORTS = {"amqp": 5672, "pyamqp": 5672, "amqps": 5671, "redis": 6379, "rediss": 6379}


def probed_url(settings: Settings) -> str | None:
    """The broker to probe: ``CELERY_BROKER_URL``, unless it is unset or ``REDIS_URL`` itself (the Redis checks
    cover that one)."""
    url = settings.celery_broker_url.strip()
    if not url or url.rstrip("/") == settings.redis_url.strip().rstrip("/"):
        return None
    return url


def where(url: str) -> str:
    """``scheme://host:port/vhost`` of a broker URL: no user, no password."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
        return f"{scheme}://{parts.hostname or '?'}:{port}{parts.path or '/'}"
    except ValueError:
        return "the configured broker"


@dataclass(frozen=True)
class BrokerStatus:
    """One probe's answer: ``error`` is the failure's type (empty when reachable), ``detail`` its message with
    every secret masked; ``checked_at`` is the monotonic time of the probe."""

    where: str
    reachable: bool
    error: str = ""
    detail: str = ""
    checked_at: float = 0.0

    def public(self, now: float) -> dict[str, object]:
        out: dict[str, object] = {"where": self.where, "reachable": self.reachable,
                                  "checked_seconds_ago": round(max(0.0, now - self.checked_at), 1)}
        if self.error:
            out["error"] = self.error
        return out


def _cause(exc: BaseException) -> BaseException:
    """kombu wraps the transport's error in OperationalError: name the one underneath."""
    from kombu.exceptions import OperationalError

    if isinstance(exc, OperationalError) and exc.__cause__ is not None:
        return exc.__cause__
    return exc


def connection_options(settings: Settings, url: str, timeout: float) -> dict[str, Any]:
    """Keyword arguments of ``kombu.Connection`` for a probe of ``url``: TLS as the worker connects, and every
    time-out at ``timeout``."""
    from worker.celery_app import BrokerKind, broker_kind, celery_config

    conf = celery_config(settings)
    if broker_kind(url) is BrokerKind.AMQP:
        transport = {"read_timeout": timeout, "write_timeout": timeout}
    else:
        transport = {"socket_timeout": timeout, "socket_connect_timeout": timeout, "retry_on_timeout": False}
    return {"connect_timeout": timeout, "ssl": conf.get("broker_use_ssl") or False, "heartbeat": 0,
            "transport_options": transport}


def probe(settings: Settings, url: str, *, timeout: float = PROBE_TIMEOUT,
          clock: Callable[[], float] = time.monotonic) -> BrokerStatus:
    """Open one connection to ``url`` and close it; never raises."""
    from kombu import Connection

    shown = where(url)
    try:
        with Connection(url, **connection_options(settings, url, timeout)) as conn:
            conn.ensure_connection(max_retries=0)  # one attempt: no retry, no back-off
    except Exception as exc:  # socket, amqp, redis and kombu errors alike: each means "not reachable"
        cause = _cause(exc)
        return BrokerStatus(shown, False, type(cause).__name__, redact(str(cause)).replace(url, shown)[:300],
                            clock())
    return BrokerStatus(shown, True, checked_at=clock())


class BrokerCheck:
    """The broker's reachability, probed at most every ``ttl`` seconds; thread-safe (a thread arriving during a
    probe waits for its answer instead of probing too)."""

    def __init__(self, settings: Settings, url: str, *, timeout: float = PROBE_TIMEOUT, ttl: float = CACHE_SECONDS,
                 clock: Callable[[], float] = time.monotonic,
                 prober: Callable[[Settings, str], BrokerStatus] | None = None) -> None:
        self.settings = settings
        self.url = url
        self.where = where(url)
        self.timeout = timeout
        self.ttl = ttl
        self.clock = clock
        self._prober = prober
        self._last: BrokerStatus | None = None
        self._lock = threading.Lock()

    def _fresh(self) -> BrokerStatus | None:
        last = self._last
        return last if last is not None and self.clock() - last.checked_at < self.ttl else None

    def status(self) -> BrokerStatus:
        found = self._fresh()
        if found is not None:
            return found
        with self._lock:
            found = self._fresh()
            if found is None:
                if self._prober is not None:
                    found = self._prober(self.settings, self.url)
                else:
                    found = probe(self.settings, self.url, timeout=self.timeout)
                found = self._last = replace(found, checked_at=self.clock())
            return found


def broker_check(settings: Settings) -> BrokerCheck | None:
    """The check of ``CELERY_BROKER_URL`` (None when the messages go through ``REDIS_URL``)."""
    url = probed_url(settings)
    return BrokerCheck(settings, url) if url is not None else None
