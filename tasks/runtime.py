"""Per-process dependencies of the tasks: settings, Redis, the provider client, the publisher, the clock.

Built lazily on first use (and rebuilt after fork by ``worker.signals``), so a prefork child never shares a
socket with its parent. Tests install their own Runtime (fakeredis, a fake provider, a list as publisher).
"""
from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Mapping

import redis

from config.settings import Settings
from lifecycle.consumer import InboxConsumer
from lifecycle.deadlines import Deadlines
from lifecycle.inbox import Inbox
from lifecycle.orders import OrderService
from lifecycle.policy import Timing
from lifecycle.relay import OutboxRelay
from lifecycle.rents import RentService
from lifecycle.store import OrderStore
from lifecycle.transitions import Transitions
from lifecycle.keys import Keys

#: publish(task_name, kwargs): send a task by name (Celery's send_task in production)
Publisher = Callable[[str, Mapping[str, Any]], None]


def build_provider(settings: Settings) -> Any:
    """The handler_api client from PROVIDER, PROVIDER_URL, PROVIDER_API_KEY and the timeouts."""
    from provider import ProviderClient

    from tasks.metrics import TASK_METRICS

    return ProviderClient(api_key=settings.provider_api_key, dialect=settings.provider, base_url=settings.provider_url,
                          connect_timeout=settings.provider_connect_timeout,
                          read_timeout=settings.provider_read_timeout,
                          observer=TASK_METRICS.record_call)  # provider calls by action and result, on /metrics


@dataclass
class Runtime:
    """Everything a task needs; domain services are built once per runtime."""

    settings: Settings
    redis: redis.Redis
    provider: Any
    publish: Publisher
    clock: Callable[[], float] = time.time
    #: unique per process and thread: pool children forked from one worker share thread ids, and two drains under
    #: one consumer name would take over each other's unacknowledged entries
    consumer_name: str = field(default_factory=lambda: f"worker-{socket.gethostname()}-{os.getpid()}-{threading.get_ident()}")

    @cached_property
    def keys(self) -> Keys:
        return Keys(self.settings)

    @cached_property
    def store(self) -> OrderStore:
        return OrderStore(self.redis, self.keys)

    @cached_property
    def orders(self) -> OrderService:
        return OrderService(self.redis, self.settings, clock=self.clock)

    @cached_property
    def transitions(self) -> Transitions:
        return Transitions(self.redis, self.settings, clock=self.clock)

    @cached_property
    def deadlines(self) -> Deadlines:
        return Deadlines(self.redis, self.settings, clock=self.clock)

    @cached_property
    def timing(self) -> Timing:
        return Timing(self.settings)

    @cached_property
    def inbox(self) -> Inbox:
        return Inbox(self.redis, self.settings)

    @cached_property
    def consumer(self) -> InboxConsumer:
        return InboxConsumer(self.redis, self.settings, self.inbox, clock=self.clock)

    @cached_property
    def rents(self) -> RentService:
        return RentService(self.redis, self.settings, clock=self.clock)

    def relay(self, publish_event: Callable[[Any], None]) -> OutboxRelay:
        return OutboxRelay(self.redis, self.settings, publish_event, consumer=self.consumer_name)


_lock = threading.Lock()
_runtime: Runtime | None = None
_factory: Callable[[], Runtime] | None = None
_built_by_factory = False


def set_factory(factory: Callable[[], Runtime] | None) -> None:
    """Install how to build the runtime (worker.celery_app does, from its settings and Celery app)."""
    global _factory
    _factory = factory
    reset_runtime()


def set_runtime(runtime: Runtime | None) -> None:
    """Install a ready runtime (tests)."""
    global _runtime, _built_by_factory
    with _lock:
        _runtime = runtime
        _built_by_factory = False


def reset_runtime(*, only_factory_built: bool = False) -> None:
    """Forget the current runtime (after fork: the child builds fresh clients on first use).

    ``only_factory_built`` leaves a runtime installed by ``set_runtime`` (tests) alone."""
    global _runtime
    with _lock:
        if only_factory_built and not _built_by_factory:
            return
        _runtime = None


def get_runtime() -> Runtime:
    global _runtime, _built_by_factory
    if _runtime is None:
        with _lock:
            if _runtime is None:
                if _factory is None:
                    raise RuntimeError("tasks runtime not configured: use worker.celery_app.app or set_runtime()")
                _runtime = _factory()
                _built_by_factory = True
    return _runtime
