"""An early webhook on a real Redis, at the domain level and deterministically: the provider's webhook for
activation X is stored and drained while our order is still ``buying``; storing the number replays it at once
(``via: webhook``), exactly once, instead of waiting POLL_AFTER for the poll."""
from __future__ import annotations

import json
from typing import Any

import pytest
import redis

from config import domain
from config.settings import Settings
from lifecycle.activation import OrderRequest, OrderService
from lifecycle.inbox import Inbox, InboxConsumer

pytestmark = pytest.mark.redis

AID = "5100000000042"


def _services(client: redis.Redis, settings: Settings) -> tuple[OrderService, Inbox, InboxConsumer]:
    """The order service, the inbox and its consumer, built as the application builds them (config/domain.py)."""
    consumer = domain.inbox_consumer(settings, client)
    inbox = Inbox(client, domain.keys(settings), domain.inbox_config(settings))
    return domain.order_service(settings, client), inbox, consumer


def _events(client: redis.Redis, settings: Settings) -> list[dict[str, Any]]:
    return [{**json.loads(f["data"]), "type": f["type"]} for _, f in client.xrange(settings.events_stream)]


def test_early_webhook_replayed_once_on_assign(real_redis: redis.Redis) -> None:
    settings = Settings(poll_after=3600.0, auto_finish=False)   # the poll is far away: only the replay can help
    orders, inbox, consumer = _services(real_redis, settings)
    orders.submit(OrderRequest("tg", order_id="early-1"))
    assert orders.store.start_buying("early-1").ok

    payload = {"activationId": int(AID), "service": "tg", "code": "640218", "text": "Code 640218",
               "receivedAt": "2025-01-01 10:00:00"}
    for fp in ("fp-1", "fp-2"):   # the inbox's own dedupe is bypassed on purpose (two fingerprints)
        inbox.append("activation", payload, fp)
    entries = inbox.read_batch("test", count=10)
    report = consumer.handle_batch(entries)
    inbox.ack(report.processed)
    assert report.held == 2 and _events(real_redis, settings) == []

    assert orders.store.assign_number("early-1", provider="sms-activate", activation_id=AID, phone="79990000042").ok
    replay = consumer.replay_held("activation", "sms-activate", AID)
    assert replay.coded == ["early-1"] and replay.duplicates == 1
    consumer.replay_held("activation", "sms-activate", AID)    # a second replay (re-delivered task) finds nothing

    codes = [e for e in _events(real_redis, settings) if e["type"] == "code.received"]
    assert len(codes) == 1 and codes[0]["via"] == "webhook" and codes[0]["activation_id"] == AID
    assert orders.get("early-1").state.value == "code_received"
    assert real_redis.exists(settings.key("held", "activation", AID)) == 0


def test_webhook_after_assign_is_not_held(real_redis: redis.Redis) -> None:
    settings = Settings(auto_finish=False)
    orders, inbox, consumer = _services(real_redis, settings)
    orders.submit(OrderRequest("tg", order_id="late-1"))
    orders.store.start_buying("late-1")
    orders.store.assign_number("late-1", provider="sms-activate", activation_id=AID, phone="7999")
    inbox.append("activation", {"activationId": AID, "code": "1111"}, "fp-x")
    report = consumer.handle_batch(inbox.read_batch("test", count=10))
    assert report.held == 0 and report.coded == ["late-1"]
