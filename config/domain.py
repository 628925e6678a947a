"""The domain's small configs, built from the one :class:`~config.settings.Settings`.

``lifecycle`` never sees the application settings: each flow gets only what it needs, built here.
"""
from __future__ import annotations

from decimal import Decimal

import redis

from lifecycle.activation import ActivationConfig, ActivationStore, OrderService
from lifecycle.clock import Clock, system_clock
from lifecycle.inbox import HeldWebhooks, Inbox, InboxConsumer
from lifecycle.inbox.stream import InboxConfig
from lifecycle.keys import Keys
from lifecycle.money import Ledger, SpendLimits
from lifecycle.outbox.events import OutboxConfig
from lifecycle.rent import RentConfig, RentService, RentStore

from .settings import Settings


def keys(settings: Settings) -> Keys:
    return Keys(prefix=settings.key_prefix, events=settings.events_stream)


def buying_stale(settings: Settings) -> float:
    """A purchase still ``buying`` after this long is surely over: the client's time-outs times its tries, plus 30 s."""
    return (settings.provider_connect_timeout + settings.provider_read_timeout) * 4 + 30.0


def activation_config(settings: Settings) -> ActivationConfig:
    s = settings
    return ActivationConfig(poll_after=s.poll_after, poll_interval=s.poll_interval,
                            activation_timeout=s.activation_timeout, early_cancel_seconds=s.early_cancel_seconds,
                            auto_finish=s.auto_finish, finish_timeout=s.finish_timeout,
                            order_max_attempts=s.order_max_attempts, order_retry_delay=s.order_retry_delay,
                            buying_stale=buying_stale(s), max_numbers=s.order_max_numbers,
                            order_timeout=s.order_timeout, cancel_margin=s.cancel_margin,
                            service_timeouts=s.service_timeouts, retention=s.order_retention_seconds)


def balance_low(settings: Settings, provider: str) -> Decimal | None:
    """The low-balance threshold of ``provider``: its own PROVIDER_<N>_BALANCE_LOW, else BALANCE_LOW (None: off)."""
    own = settings.provider_config(provider).balance_low
    return own if own is not None else settings.balance_low


def rent_config(settings: Settings) -> RentConfig:
    s = settings
    return RentConfig(poll_after=s.poll_after, poll_interval=s.poll_interval, order_max_attempts=s.order_max_attempts,
                      order_retry_delay=s.order_retry_delay, buying_stale=buying_stale(s),
                      retention=s.order_retention_seconds)


def inbox_config(settings: Settings) -> InboxConfig:
    return InboxConfig(dedupe_ttl=settings.webhook_dedupe_ttl, dead_letter_maxlen=settings.dead_letter_maxlen,
                       linger=settings.drain_linger)


def outbox_config(settings: Settings) -> OutboxConfig:
    return OutboxConfig(maxlen=settings.events_maxlen)


def activation_store(settings: Settings, client: redis.Redis, *, clock: Clock = system_clock) -> ActivationStore:
    return ActivationStore(client, keys(settings), activation_config(settings), outbox_config(settings), clock=clock)


def rent_store(settings: Settings, client: redis.Redis, *, clock: Clock = system_clock) -> RentStore:
    return RentStore(client, keys(settings), rent_config(settings), outbox_config(settings), clock=clock)


def order_service(settings: Settings, client: redis.Redis, *, clock: Clock = system_clock) -> OrderService:
    """Where orders enter (the order API, the CLI): the activation store on ``client``."""
    return OrderService(activation_store(settings, client, clock=clock))


def rent_service(settings: Settings, client: redis.Redis, *, clock: Clock = system_clock) -> RentService:
    """Where rent orders enter (the rent API, the CLI): the rent store on ``client``."""
    return RentService(rent_store(settings, client, clock=clock))


def inbox_consumer(settings: Settings, client: redis.Redis, *, clock: Clock = system_clock) -> InboxConsumer:
    """What turns stored webhooks into transitions (an entry without a provider is the first provider's)."""
    return InboxConsumer(activation_store(settings, client, clock=clock), rent_store(settings, client, clock=clock),
                         HeldWebhooks(client, keys(settings)), Inbox(client, keys(settings), inbox_config(settings)),
                         default_provider=settings.provider_configs[0].name)


def ledger(settings: Settings, client: redis.Redis) -> Ledger:
    return Ledger(client, keys(settings))


def spend_limits(settings: Settings) -> dict[str, SpendLimits]:
    """Every configured provider's spend limits, by name, in the order of PROVIDERS."""
    return {cfg.name: cfg.limits for cfg in settings.provider_configs}


def max_active(settings: Settings, provider: str) -> int | None:
    """How many numbers may be open at ``provider`` at once: its PROVIDER_<N>_MAX_ACTIVE, else MAX_ACTIVE."""
    own = settings.provider_config(provider).max_active
    return own if own is not None else settings.max_active
