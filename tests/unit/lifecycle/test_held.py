"""Early webhooks: a webhook drained while the order is still ``buying`` is held and replayed when the
number is stored: one code.received, via webhook, however the two paths interleave."""
from __future__ import annotations

from typing import Any

from config.settings import Settings
from lifecycle.keys import external
from lifecycle.outbox import events as ev
from lifecycle.inbox import InboxConsumer
from lifecycle.inbox import HELD_MAX, HeldWebhooks
from lifecycle.activation import OrderService
from lifecycle.rent import RentRequest
from lifecycle.rent import RentService
from lifecycle.activation.record import OrderRequest

from .conftest import FakeClock, make_consumer, make_held, make_orders, make_rents, stream_events
from .test_consumer import Entry, RecordingInbox

AID = "4200000000001"


def _buying(fake_redis: Any, settings: Settings, clock: FakeClock) -> OrderService:
    svc = make_orders(fake_redis, settings, clock=clock)
    svc.submit(OrderRequest("tg", order_id="o1"))
    assert svc.store.start_buying("o1").ok
    return svc


def _webhook(code: str = "1234") -> dict[str, Any]:
    return {"activationId": AID, "code": code, "text": f"code {code}", "receivedAt": "2025-01-01 00:00:00"}


def test_early_webhook_is_held_then_replayed_once(fake_redis: Any, settings: Settings, clock: FakeClock) -> None:
    svc = _buying(fake_redis, settings, clock)
    inbox = RecordingInbox()
    consumer = make_consumer(fake_redis, settings, inbox, clock=clock)
    report = consumer.handle_batch([Entry("1-0", "activation", _webhook()), Entry("2-0", "activation", _webhook())])
    assert report.held == 2 and len(inbox.unknown) == 2          # still recorded for inspection
    assert stream_events(fake_redis, settings) == []
    assert svc.store.assign_number("o1", provider="sms-activate", activation_id=AID, phone="7999").ok
    replay = consumer.replay_held("activation", "sms-activate", AID)
    assert replay.coded == ["o1"] and replay.duplicates == 1
    assert consumer.replay_held("activation", "sms-activate", AID).processed == []   # trimmed: nothing left
    codes = [e for e in stream_events(fake_redis, settings) if e["type"] == ev.CODE_RECEIVED]
    assert len(codes) == 1 and codes[0]["via"] == "webhook" and codes[0]["code"] == "1234"
    assert svc.get("o1").state.value == "code_received"


def test_replay_twice_is_harmless(fake_redis: Any, settings: Settings, clock: FakeClock) -> None:
    """A crash after applying but before trimming replays again: the code dedupe drops it."""
    svc = _buying(fake_redis, settings, clock)
    consumer = make_consumer(fake_redis, settings, RecordingInbox(), clock=clock)
    consumer.handle_batch([Entry("1-0", "activation", _webhook())])
    svc.store.assign_number("o1", provider="sms-activate", activation_id=AID, phone="7999")
    held = make_held(fake_redis, settings)
    payloads = held.peek("activation", external("sms-activate", AID))
    assert payloads
    consumer.replay_held("activation", "sms-activate", AID)
    fake_redis.rpush(settings.key("held", "activation", external("sms-activate", AID)),
                     *[__import__("json").dumps(p) for p in payloads])
    assert consumer.replay_held("activation", "sms-activate", AID).duplicates == 1
    assert len([e for e in stream_events(fake_redis, settings) if e["type"] == ev.CODE_RECEIVED]) == 1


def test_hold_sees_an_index_written_meanwhile(fake_redis: Any, settings: Settings, clock: FakeClock) -> None:
    """The hold is atomic with the index check: if the number got stored in between, apply at once."""
    svc = _buying(fake_redis, settings, clock)
    svc.store.assign_number("o1", provider="sms-activate", activation_id=AID, phone="7999")
    held = make_held(fake_redis, settings)
    assert held.hold("activation", external("sms-activate", AID), _webhook()) == "o1"
    assert held.peek("activation", AID) == []


def test_held_list_is_bounded_and_expires(fake_redis: Any, settings: Settings) -> None:
    held = make_held(fake_redis, settings)
    for i in range(HELD_MAX + 5):
        held.hold("activation", "9", {"activationId": "9", "code": str(i)})
    kept = held.peek("activation", "9")
    assert len(kept) == HELD_MAX and kept[-1]["code"] == str(HELD_MAX + 4)
    assert 0 < fake_redis.ttl(settings.key("held", "activation", "9")) <= 3600


def test_early_rent_webhook_replayed(fake_redis: Any, settings: Settings, clock: FakeClock) -> None:
    rents = make_rents(fake_redis, settings, clock=clock)
    rents.submit(RentRequest("full", order_id="r1"))
    rents.store.start_buying("r1", provider="sms-activate")
    consumer = make_consumer(fake_redis, settings, RecordingInbox(), clock=clock)
    sms = {"rentId": "88", "sms": {"phoneFrom": "X", "text": "hello", "date": "2025-01-01 00:00:00"}}
    assert consumer.handle_batch([Entry("1-0", "rent", sms)]).held == 1
    rents.store.assign_number("r1", provider="sms-activate", rent_id="88", phone="7999", end_date=None,
                              end_at=clock() + 3600)
    consumer.replay_held("rent", "sms-activate", "88")
    events = [e for e in stream_events(fake_redis, settings) if e["type"] == ev.RENT_SMS]
    assert len(events) == 1 and events[0]["order_id"] == "r1" and events[0]["via"] == "webhook"


def test_held_webhooks_are_bounded_by_bytes_across_every_id(fake_redis: Any, settings: Settings) -> None:
    """Ids that never become ours (another tool on the same account, a hostile sender) cannot fill Redis."""
    from lifecycle.inbox import held as held_module

    held = make_held(fake_redis, settings)
    text = "x" * 1000
    ids = 3 * held_module.HELD_MAX_BYTES // 1000          # three times what the budget allows
    for i in range(ids):
        held.hold("activation", f"sms-activate:{i}", {"activationId": str(i), "text": text})
    kept = [i for i in range(ids) if held.peek("activation", f"sms-activate:{i}")]
    assert 0 < len(kept) < ids // 2 and kept == list(range(len(kept)))   # the first ones, then nothing more
    assert int(fake_redis.get(settings.key("held-bytes"))) <= held_module.HELD_MAX_BYTES
    assert 0 < fake_redis.ttl(settings.key("held-bytes")) <= held_module.HELD_TTL
