"""What every blueprint of the web app shares: settings, the Redis client, the Celery producer and the inbox.

Stored once per app in ``app.extensions["otpflow"]`` by :func:`webhook.app.create_app`, so blueprints never build
their own clients (one connection pool per process) and tests can inject fakes through the factory.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import redis
from flask import Flask, current_app

from config import domain
from config.settings import Settings
from lifecycle.activation import OrderService
from lifecycle.inbox import Inbox
from lifecycle.keys import Keys
from lifecycle.rent import RentService
from webhook.breaker import RedisBreaker
from worker.broker_probe import BrokerCheck, broker_check

EXTENSION_KEY = "otpflow"
#: the web's drain publish must not hold a webhook's answer past the provider's patience (HeroSMS: 3 s) when Redis
#: hangs between the append and the publish; the worker's own connections keep the longer time-outs
PRODUCER_TRANSPORT_OPTIONS = {"socket_timeout": 1.5, "socket_connect_timeout": 1.0, "retry_on_timeout": False}
#: the same patience on an AMQP broker (CELERY_BROKER_URL): py-amqp's own names for those time-outs
AMQP_PRODUCER_TRANSPORT_OPTIONS = {"connect_timeout": 1.0, "read_timeout": 1.5, "write_timeout": 1.5}


class ContextMissing(RuntimeError):
    """The current Flask app was not built by ``create_app`` (no otpflow context)."""


class LazyCelery:
    """A Celery producer built on first use from ``worker.celery_app.make_celery(settings)``.

    Why lazy: importing Celery and kombu costs hundreds of ms of CPU, paid once per gunicorn worker at warm-up
    rather than at import. Attribute access is forwarded to the real app.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._app: Any | None = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        """The real Celery app."""
        if self._app is None:
            with self._lock:
                if self._app is None:
                    from worker.celery_app import make_celery

                    app = make_celery(self._settings)
                    conf = getattr(app, "conf", None)
                    if conf is not None:
                        from worker.celery_app import BrokerKind, broker_kind, broker_url, publish_only_options

                        conf.update(publish_only_options(self._settings))  # the web never consumes
                        amqp = broker_kind(broker_url(self._settings)) is BrokerKind.AMQP
                        conf.broker_transport_options = {
                            **conf.broker_transport_options,
                            **(AMQP_PRODUCER_TRANSPORT_OPTIONS if amqp else PRODUCER_TRANSPORT_OPTIONS)}
                    self._app = app
        return self._app

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)


@dataclass
class WebContext:
    """Per-app shared objects; ``celery`` is a Celery app (or a lazy proxy / test double with ``send_task``)."""

    settings: Settings
    redis: redis.Redis
    celery: Any
    breaker: RedisBreaker = field(default_factory=RedisBreaker)
    keys: Keys = field(init=False)
    inbox: Inbox = field(init=False)
    orders: OrderService = field(init=False)
    rents: RentService = field(init=False)
    #: the reachability of CELERY_BROKER_URL for /readyz (None: the messages go through REDIS_URL)
    broker: BrokerCheck | None = field(init=False)

    def __post_init__(self) -> None:
        self.broker = broker_check(self.settings)
        self.keys = domain.keys(self.settings)
        self.inbox = Inbox(self.redis, self.keys, domain.inbox_config(self.settings))
        self.orders = domain.order_service(self.settings, self.redis)
        self.rents = domain.rent_service(self.settings, self.redis)


def init_context(app: Flask, context: WebContext) -> WebContext:
    """Attach ``context`` to ``app``."""
    app.extensions[EXTENSION_KEY] = context
    return context


def current_context() -> WebContext:
    """The WebContext of the app handling the current request (or app context)."""
    try:
        return current_app.extensions[EXTENSION_KEY]
    except KeyError as exc:
        raise ContextMissing("this Flask app was not built by webhook.app.create_app") from exc
