"""Fixtures for lifecycle unit tests: settings, a controllable clock, services on fakeredis."""
from __future__ import annotations

import json
from typing import Any, Iterator

import pytest

from config.settings import Settings


class FakeClock:
    """A clock tests move by hand (seconds since the epoch)."""

    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings() -> Settings:
    # one number per order (no replacements) unless a test says otherwise: tests/unit/flows/test_replace.py does
    return Settings(auto_finish=False, poll_after=30.0, poll_interval=15.0, activation_timeout=1200.0,
                    finish_timeout=600.0, order_max_attempts=3, order_retry_delay=30.0, events_maxlen=1000,
                    order_max_numbers=1)


def stream_events(redis_client: Any, settings: Settings) -> list[dict[str, Any]]:
    """Every event in the stream, as {"type", **data}."""
    out = []
    for _sid, fields in redis_client.xrange(settings.events_stream):
        data = json.loads(fields["data"])
        assert set(fields) == {"type", "data"}
        out.append({**data, "type": fields["type"]})
    return out


# ---- the domain's services, built from Settings the way the application builds them (config/domain.py) ----------
def make_orders(redis_client: Any, settings: Settings, *, clock: Any = None) -> "OrderService":
    from config import domain

    return domain.order_service(settings, redis_client, **({"clock": clock} if clock else {}))


def make_rents(redis_client: Any, settings: Settings, *, clock: Any = None) -> "RentService":
    from config import domain

    return domain.rent_service(settings, redis_client, **({"clock": clock} if clock else {}))


def make_consumer(redis_client: Any, settings: Settings, inbox: Any, *, clock: Any = None) -> "InboxConsumer":
    from config import domain

    consumer = domain.inbox_consumer(settings, redis_client, **({"clock": clock} if clock else {}))
    consumer.inbox = inbox
    return consumer


def make_held(redis_client: Any, settings: Settings) -> "HeldWebhooks":
    from config import domain
    from lifecycle.inbox import HeldWebhooks

    return HeldWebhooks(redis_client, domain.keys(settings))


def make_inbox(redis_client: Any, settings: Settings, **config: Any) -> "Inbox":
    from dataclasses import replace

    from config import domain
    from lifecycle.inbox import Inbox

    return Inbox(redis_client, domain.keys(settings), replace(domain.inbox_config(settings), **config))
