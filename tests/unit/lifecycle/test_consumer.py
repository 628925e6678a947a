"""Inbox consumer: webhooks become code.received once; unknown activations are recorded; rents."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import pytest

from config.settings import Settings
from lifecycle.outbox import events as ev
from lifecycle.inbox import InboxConsumer, extract_code
from lifecycle.inbox import Inbox
from lifecycle.activation import OrderService
from lifecycle.rent import RentRequest
from lifecycle.rent import RentService
from lifecycle.activation.record import OrderRequest

from .conftest import FakeClock, make_consumer, make_inbox, make_orders, make_rents, stream_events

AID = "9876543210123"


@dataclass
class Entry:
    entry_id: str
    kind: str
    payload: Mapping[str, Any]


@dataclass
class RecordingInbox:
    unknown: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def record_unknown(self, kind: str, payload: Mapping[str, Any], provider: str = "") -> str:
        self.unknown.append((kind, dict(payload)))
        return "1-0"


@pytest.fixture
def setup(fake_redis: Any, settings: Settings, clock: FakeClock) -> tuple[InboxConsumer, RecordingInbox, OrderService]:
    svc = make_orders(fake_redis, settings, clock=clock)
    svc.submit(OrderRequest("tg", order_id="o1"))
    svc.store.start_buying("o1")
    svc.store.assign_number("o1", provider="sms-activate", activation_id=AID, phone="7999")
    inbox = RecordingInbox()
    return make_consumer(fake_redis, settings, inbox, clock=clock), inbox, svc


def webhook(i: int, code: str = "5555", aid: Any = AID) -> Entry:
    return Entry(f"{i}-0", "activation", {"activationId": aid, "service": "tg", "text": f"Code {code}",
                                          "code": code, "country": 0, "receivedAt": "2024-01-01 00:00:00"})


def test_eight_deliveries_one_event(setup: Any, fake_redis: Any, settings: Settings) -> None:
    consumer, _inbox, svc = setup
    report = consumer.handle_batch([webhook(i) for i in range(8)])
    assert report.coded == ["o1"] and report.duplicates == 7 and len(report.processed) == 8
    codes = [e for e in stream_events(fake_redis, settings) if e["type"] == ev.CODE_RECEIVED]
    assert len(codes) == 1 and codes[0]["via"] == "webhook" and codes[0]["code"] == "5555"


def test_numeric_activation_id_and_unknown(setup: Any) -> None:
    consumer, inbox, _svc = setup
    report = consumer.handle_batch([webhook(1, aid=int(AID)), webhook(2, aid="111")])
    assert report.coded == ["o1"] and report.unknown == 1
    assert inbox.unknown == [("activation", dict(webhook(2, aid="111").payload))]


def test_late_webhook_after_finish_is_stale(setup: Any, fake_redis: Any, settings: Settings) -> None:
    consumer, _inbox, svc = setup
    consumer.handle_batch([webhook(1)])
    svc.store.finish("o1", activation_id=AID)
    report = consumer.handle_batch([webhook(2, code="0000")])
    assert report.stale == 1
    assert svc.get("o1").state.value == "finished"


def test_code_extracted_from_text(setup: Any) -> None:
    consumer, _inbox, svc = setup
    entry = Entry("1-0", "activation", {"activationId": AID, "text": "Your code: 48213. Do not share", "code": ""})
    assert consumer.handle_batch([entry]).coded == ["o1"]
    assert svc.get("o1").code == "48213"
    assert extract_code(None, None) is None and extract_code(" 12 ", None) == "12"


def test_rent_sms(fake_redis: Any, settings: Settings, clock: FakeClock) -> None:
    rents = make_rents(fake_redis, settings, clock=clock)
    rents.submit(RentRequest("full", order_id="r1"))
    assert rents.store.start_buying("r1", provider="sms-activate").ok
    assert rents.store.assign_number("r1", provider="sms-activate", rent_id="777", phone="7999", end_date=None,
                                     end_at=clock() + 4 * 3600).ok
    # no second rent.started
    assert not rents.store.assign_number("r1", provider="sms-activate", rent_id="777", phone="7999", end_date=None,
                                         end_at=0).ok
    inbox = RecordingInbox()
    consumer = make_consumer(fake_redis, settings, inbox, clock=clock)
    sms = {"rentId": 777, "sms": {"phoneFrom": "SPORT", "text": "Code 2792", "date": "2025-06-17 16:01:10"}}
    report = consumer.handle_batch([Entry("1-0", "rent", sms), Entry("2-0", "rent", sms),
                                    Entry("3-0", "rent", {"rentId": "1", "sms": {}})])
    assert report.duplicates == 1 and report.unknown == 1 and report.held == 1
    assert rents.store.finish("r1", reason="command", rent_id="777").ok
    events = stream_events(fake_redis, settings)
    assert [e["type"] for e in events] == [ev.RENT_STARTED, ev.RENT_SMS, ev.RENT_FINISHED]
    assert events[1]["rent_id"] == "777" and events[1]["text"] == "Code 2792" and events[1]["phone"] == "7999"
    assert all(e["order_id"] == "r1" for e in events) and events[1]["via"] == "webhook"


def test_with_real_inbox_module(fake_redis: Any, settings: Settings, clock: FakeClock) -> None:
    """Through the real Inbox: append twice (its dedupe) + read + consume + ack."""
    svc = make_orders(fake_redis, settings, clock=clock)
    svc.submit(OrderRequest("tg", order_id="o1"))
    svc.store.start_buying("o1")
    svc.store.assign_number("o1", provider="sms-activate", activation_id=AID, phone="7999")
    inbox = make_inbox(fake_redis, settings)
    payload = dict(webhook(1).payload)
    inbox.append("activation", payload, "fp1")
    inbox.append("activation", payload, "fp2")  # a repeat that got past the fingerprint dedupe
    entries = inbox.read_batch("c1", count=10)
    report = make_consumer(fake_redis, settings, inbox, clock=clock).handle_batch(entries)
    inbox.ack(report.processed)
    assert report.coded == ["o1"] and report.duplicates == 1 and inbox.pending_count() == 0


def test_a_mixed_batch_applies_its_codes_together_in_order(setup: Any, fake_redis: Any, settings: Settings) -> None:
    """Two orders' codes, an unknown activation between them and an SMS without a code: each counted as alone,
    and the codes applied in one pipeline (no transition call of its own per webhook)."""
    consumer, inbox, svc = setup
    svc.submit(OrderRequest("tg", order_id="o2"))
    svc.store.start_buying("o2")
    svc.store.assign_number("o2", provider="sms-activate", activation_id="555", phone="7888")
    no_code = Entry("4-0", "activation", {"activationId": AID, "text": "no digits here"})
    batch = [webhook(1, "1111"), webhook(2, "2222", aid="404"), webhook(3, "3333", aid="555"), no_code,
             webhook(5, "1111")]
    transition = consumer.activations.records._script.sha
    direct: list[str] = []
    original = fake_redis.execute_command

    def recording(*args: Any, **kwargs: Any) -> Any:
        if len(args) > 1 and args[1] == transition:
            direct.append(str(args[0]).upper())
        return original(*args, **kwargs)

    fake_redis.execute_command = recording
    try:
        report = consumer.handle_batch(batch)
    finally:
        fake_redis.execute_command = original
    assert report.processed == ["1-0", "2-0", "3-0", "4-0", "5-0"]
    assert report.coded == ["o1", "o2"] and report.duplicates == 1 and report.invalid == 1
    assert [p["activationId"] for _k, p in inbox.unknown] == ["404"]
    assert direct == []  # no transition call of its own: the codes went through the batch's pipeline
    codes = [(e["order_id"], e["code"]) for e in stream_events(fake_redis, settings) if e["type"] == ev.CODE_RECEIVED]
    assert codes == [("o1", "1111"), ("o2", "3333")]
