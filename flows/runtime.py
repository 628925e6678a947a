"""Everything a flow needs, typed: the settings, Redis, the provider, the publisher, the clock, the domain's stores.

Built once per process (``tasks.runtime`` holds the worker's, rebuilt after fork); tests build their own with
fakeredis, a fake provider and a list as publisher.
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

from config import domain
from config.settings import Settings
from lifecycle.activation import ActivationConfig, ActivationStore, OrderService
from lifecycle.clock import Clock
from lifecycle.deadlines import Deadlines
from lifecycle.inbox import HeldWebhooks, Inbox, InboxConsumer
from lifecycle.keys import Keys
from lifecycle.money import Ledger
from lifecycle.outbox.events import Event
from lifecycle.outbox.relay import OutboxRelay
from lifecycle.rent import RentConfig, RentService, RentStore
from lifecycle.routing.balance import BalanceStore
from lifecycle.routing.capacity import Capacity
from lifecycle.routing.health import HealthConfig, ProviderHealth
from lifecycle.routing.quotes import QuoteCache
from provider.dialects import Dialect
from provider.transport import CallObserver

from .api import ProviderApi

#: publish(task name, kwargs): send a task by name (Celery's send_task in production)
Publisher = Callable[[str, Mapping[str, Any]], None]


def build_providers(settings: Settings, observer: CallObserver | None = None) -> dict[str, ProviderApi]:
    """One handler_api client per configured provider (its dialect, URL, key), with the shared time-outs."""
    from provider import ProviderClient

    return {p.name: ProviderClient(api_key=p.api_key, dialect=p.dialect, base_url=p.base_url,
                                   connect_timeout=settings.provider_connect_timeout,
                                   read_timeout=settings.provider_read_timeout, observer=observer, name=p.name)
            for p in settings.provider_configs}


def build_provider(settings: Settings, observer: CallObserver | None = None) -> ProviderApi:
    """The client of the first (or only) configured provider."""
    return next(iter(build_providers(settings, observer).values()))


@dataclass
class Runtime:
    """Everything a flow needs; the domain's services are built once per runtime."""

    settings: Settings
    redis: redis.Redis
    #: one client per provider name, or one client for every provider (tests with a single fake)
    provider: ProviderApi | Mapping[str, ProviderApi]
    publish: Publisher
    clock: Clock = time.time
    #: unique per process and thread: pool children forked from one worker share thread ids, and two drains under
    #: one consumer name would take over each other's unacknowledged entries
    consumer_name: str = field(
        default_factory=lambda: f"worker-{socket.gethostname()}-{os.getpid()}-{threading.get_ident()}")

    @cached_property
    def keys(self) -> Keys:
        return domain.keys(self.settings)

    # ---------------------------------------------------------------- providers
    @property
    def provider_names(self) -> tuple[str, ...]:
        """Every configured provider, in the default order of preference."""
        return tuple(p.name for p in self.settings.provider_configs)

    @property
    def default_provider(self) -> str:
        return self.provider_names[0]

    def provider_for(self, name: str | None) -> ProviderApi:
        """The client of provider ``name`` (the default one when None)."""
        if isinstance(self.provider, Mapping):
            return self.provider[name or self.default_provider]
        return self.provider

    def dialect(self, name: str | None) -> Dialect:
        return self.settings.provider_config(name or self.default_provider).dialect

    @cached_property
    def health(self) -> ProviderHealth:
        return ProviderHealth(self.redis, self.keys, HealthConfig(cooldown=self.settings.provider_cooldown),
                              clock=self.clock)

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger(self.redis, self.keys)

    @cached_property
    def capacity(self) -> Capacity:
        return Capacity(self.redis, self.keys)

    @cached_property
    def balances(self) -> BalanceStore:
        """Every provider's last balance (the beat's balance watch writes it, routing reads it)."""
        return BalanceStore(self.redis, self.keys, domain.outbox_config(self.settings), clock=self.clock)

    @cached_property
    def quotes(self) -> QuoteCache:
        return QuoteCache(self.redis, self.keys, ttl=self.settings.price_cache_ttl)

    @cached_property
    def unsettled(self) -> Deadlines:
        """Purchases whose outcome was never learnt (``provider|orderId|order``), due to be looked up."""
        return Deadlines(self.redis, self.keys.unsettled, clock=self.clock)

    @cached_property
    def activation_config(self) -> ActivationConfig:
        return domain.activation_config(self.settings)

    @cached_property
    def rent_config(self) -> RentConfig:
        return domain.rent_config(self.settings)

    @cached_property
    def activations(self) -> ActivationStore:
        return ActivationStore(self.redis, self.keys, self.activation_config, domain.outbox_config(self.settings),
                               clock=self.clock)

    @cached_property
    def orders(self) -> OrderService:
        return OrderService(self.activations)

    @cached_property
    def rents(self) -> RentStore:
        return RentStore(self.redis, self.keys, self.rent_config, domain.outbox_config(self.settings),
                         clock=self.clock)

    @cached_property
    def rent_orders(self) -> RentService:
        return RentService(self.rents)

    @cached_property
    def deadlines(self) -> Deadlines:
        return Deadlines(self.redis, self.keys.deadlines, clock=self.clock)

    @cached_property
    def rent_deadlines(self) -> Deadlines:
        return Deadlines(self.redis, self.keys.rent_deadlines, clock=self.clock)

    @cached_property
    def inbox(self) -> Inbox:
        return Inbox(self.redis, self.keys, domain.inbox_config(self.settings))

    @cached_property
    def consumer(self) -> InboxConsumer:
        return InboxConsumer(self.activations, self.rents, HeldWebhooks(self.redis, self.keys), self.inbox,
                             default_provider=self.default_provider)

    def relay(self, publish_event: Callable[[Event], None]) -> OutboxRelay:
        return OutboxRelay(self.redis, self.keys, publish_event, consumer=self.consumer_name)

    def warm(self) -> None:
        """Build the shared services now, before threads use them (cached_property is not thread-safe)."""
        _ = (self.activations, self.orders, self.rents, self.deadlines, self.consumer, self.health, self.quotes,
             self.balances)
