"""Rent orders on fakeredis: idempotent submit, atomic transitions with exactly one event each, SMS dedupe,
commands (409 rules), prolongation in place and as a re-order under a new rent id."""
from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from config.settings import Settings
from lifecycle.outbox import events as ev
from lifecycle.rent.decisions import normalize_sms_date, sms_fingerprint
from lifecycle.rent import RentRequest, RentState
from lifecycle.rent import RentCommandConflict, RentError, RentService, UnknownRent

from .conftest import FakeClock, make_rents, stream_events


@pytest.fixture
def rents(fake_redis: Any, settings: Settings, clock: FakeClock) -> RentService:
    return make_rents(fake_redis, settings, clock=clock)


def active(rents: RentService, clock: FakeClock, order_id: str = "r1", rent_id: str = "555") -> None:
    rents.submit(RentRequest("full", country=0, hours=4, order_id=order_id))
    assert rents.store.start_buying(order_id, provider="sms-activate").ok
    assert rents.store.assign_number(order_id, provider="sms-activate", rent_id=rent_id, phone="79990001122",
                                     end_date="2025-01-01T12:00:00", end_at=clock() + 4 * 3600).ok


def test_submit_is_idempotent_and_validated(rents: RentService, fake_redis: Any, settings: Settings) -> None:
    order, created = rents.submit(RentRequest("full", hours=12, order_id="k1"))
    assert created and order.state is RentState.PENDING and order.hours == 12
    again, created2 = rents.submit(RentRequest("vk", order_id="k1"))
    assert not created2 and again.service == "full"
    assert fake_redis.zscore(settings.key("rent-deadlines"), "k1") is not None
    for bad in (RentRequest(""), RentRequest("full", hours=1), RentRequest("full", order_id="a b")):
        with pytest.raises(RentError):
            rents.submit(bad)


def test_started_once_with_index_and_event(rents: RentService, clock: FakeClock, fake_redis: Any,
                                           settings: Settings) -> None:
    active(rents, clock)
    assert rents.store.order_for_rent("sms-activate", "555") == "r1"
    assert not rents.store.assign_number("r1", provider="sms-activate", rent_id="555", phone="7", end_date=None,
                                         end_at=0).ok
    [started] = stream_events(fake_redis, settings)
    assert started["type"] == ev.RENT_STARTED and started["order_id"] == "r1" and started["rent_id"] == "555"
    assert started["phone"] == "79990001122" and started["end_date"] == "2025-01-01T12:00:00" and started["at"]
    due = fake_redis.zscore(settings.key("rent-deadlines"), "r1")
    assert due == pytest.approx(clock() + settings.poll_after, abs=0.01)


def test_sms_dedupe_across_webhook_and_poll_spellings(rents: RentService, clock: FakeClock, fake_redis: Any,
                                                      settings: Settings) -> None:
    active(rents, clock)
    assert rents.store.receive_sms("r1", rent_id="555", text="Code 1", phone_from="SPORT", date="2025-06-17 16:01:10",
                     via=ev.Via.WEBHOOK).ok
    # the poll's parsed datetime, and a HeroSMS-style ISO date, name the same SMS
    assert rents.store.receive_sms("r1", rent_id="555", text="Code 1", phone_from="SPORT",
                                   date=datetime(2025, 6, 17, 16, 1, 10), via=ev.Via.POLL).status == "dup"
    assert rents.store.receive_sms("r1", rent_id="555", text="Code 1", phone_from="SPORT",
                                   date="2025-06-17T16:01:10.000000Z", via=ev.Via.WEBHOOK).status == "dup"
    assert rents.store.receive_sms("r1", rent_id="555", text="Code 2", phone_from="SPORT", date="2025-06-17 16:01:11",
                     via=ev.Via.POLL).ok
    sms = [e for e in stream_events(fake_redis, settings) if e["type"] == ev.RENT_SMS]
    assert [(e["text"], e["via"]) for e in sms] == [("Code 1", "webhook"), ("Code 2", "poll")]
    assert sms[0]["sms_date"] == "2025-06-17 16:01:10" and sms[0]["phone_from"] == "SPORT"
    assert rents.get("r1").sms_count == 2
    assert normalize_sms_date(datetime(2025, 6, 17, 16, 1, 10)) == "2025-06-17 16:01:10"
    assert sms_fingerprint("x", "2025-06-17 16:01:10", 7999) == sms_fingerprint("x", "2025-06-17T16:01:10", "7999")


def test_many_sms_keep_their_fingerprints(rents: RentService, clock: FakeClock) -> None:
    active(rents, clock)
    for i in range(40):
        assert rents.store.receive_sms("r1", rent_id="555", text=f"m{i}", phone_from="A", date="2025-01-01 00:00:00",
                                       via="poll").ok
    # a poll re-reading the newest page (10) finds them all known, beyond the activation cap of 8
    assert all(rents.store.receive_sms("r1", rent_id="555", text=f"m{i}", phone_from="A", date="2025-01-01 00:00:00",
                         via="poll").status == "dup" for i in range(30, 40))


def test_end_is_terminal_and_single(rents: RentService, clock: FakeClock, fake_redis: Any, settings: Settings) -> None:
    active(rents, clock)
    assert rents.store.finish("r1", reason="end_date", rent_id="555").ok
    assert not rents.store.cancel("r1", reason="command", rent_id="555").ok
    assert not rents.store.receive_sms("r1", rent_id="555", text="late", phone_from="A", date="x", via="webhook").ok
    types = [e["type"] for e in stream_events(fake_redis, settings)]
    assert types == [ev.RENT_STARTED, ev.RENT_FINISHED]
    assert fake_redis.ttl(settings.key("rent", "r1")) > 0
    assert fake_redis.zscore(settings.key("rent-deadlines"), "r1") is None


def test_fail_emits_order_failed_for_a_rent(rents: RentService, fake_redis: Any, settings: Settings) -> None:
    rents.submit(RentRequest("full", order_id="r2"))
    assert rents.store.start_buying("r2", provider="sms-activate").ok
    assert rents.store.fail("r2", reason="rent_unrecoverable").ok
    [failed] = stream_events(fake_redis, settings)
    assert failed["type"] == ev.ORDER_FAILED and failed["kind"] == "rent" and failed["reason"] == "rent_unrecoverable"


def test_commands_and_conflicts(rents: RentService, clock: FakeClock) -> None:
    with pytest.raises(UnknownRent):
        rents.request("nope", "finish")
    rents.submit(RentRequest("full", order_id="p"))
    with pytest.raises(RentCommandConflict) as exc:
        rents.request("p", "finish")
    assert exc.value.reason == "state"
    active(rents, clock)
    assert rents.request("r1", "cancel").state is RentState.ACTIVE
    with pytest.raises(RentCommandConflict) as exc:   # one command at a time
        rents.request("r1", "finish")
    assert exc.value.reason == "command_pending"
    rents.store.drop_command("r1", RentState.ACTIVE, error="cant_cancel", due=clock() + 5)
    assert rents.get("r1").command_error == "cant_cancel" and rents.get("r1").command is None
    with pytest.raises(RentError):
        rents.request("r1", "prolong", hours=1)


def test_cancel_refused_after_sms_or_window(rents: RentService, clock: FakeClock) -> None:
    active(rents, clock, "a", "1")
    active(rents, clock, "b", "2")
    rents.store.receive_sms("a", rent_id="1", text="hi", phone_from="A", date="d", via="webhook")
    with pytest.raises(RentCommandConflict) as exc:
        rents.request("a", "cancel")
    assert exc.value.reason == "cant_cancel"
    clock.advance(21 * 60)
    with pytest.raises(RentCommandConflict):
        rents.request("b", "cancel")
    assert rents.request("b", "finish").command == "finish"


def test_prolong_claim_is_a_field_cas(rents: RentService, clock: FakeClock) -> None:
    active(rents, clock)
    rents.request("r1", "prolong", hours=4)
    assert rents.store.mark_prolonging("r1", RentState.ACTIVE).ok
    assert not rents.store.mark_prolonging("r1", RentState.ACTIVE).ok   # a second delivery cannot claim it again
    end = rents.get("r1").end_at
    assert rents.store.prolonged("r1", rent_id="R1", provider="sms-activate", hours=4, end_date=None,
                                 end_at=end + 4 * 3600).ok
    order = rents.get("r1")
    assert order.end_at == end + 4 * 3600 and order.command is None


def test_reorder_after_finish_new_rent_id(rents: RentService, clock: FakeClock, fake_redis: Any,
                                          settings: Settings) -> None:
    active(rents, clock)
    rents.store.finish("r1", reason="end_date", rent_id="555")
    rents.request("r1", "prolong", hours=4)
    assert rents.store.mark_prolonging("r1", RentState.FINISHED).ok
    assert rents.store.reordered("r1", provider="sms-activate", old_rent_id="555", previous=(), rent_id="777",
                                 phone="79990001122", end_date=None, end_at=clock() + 4 * 3600).ok
    order = rents.get("r1")
    assert order.state is RentState.ACTIVE and order.rent_id == "777" and order.previous_rent_ids == ("555",)
    assert rents.store.order_for_rent("sms-activate", "777") == "r1"
    assert rents.store.order_for_rent("sms-activate", "555") == "r1"
    assert fake_redis.ttl(settings.key("rent", "r1")) == -1     # live again: no retention expiry
    started = [e for e in stream_events(fake_redis, settings) if e["type"] == ev.RENT_STARTED]
    assert [e["rent_id"] for e in started] == ["555", "777"] and started[0]["event_id"] != started[1]["event_id"]


def test_an_orphan_rent_on_a_failed_order_is_due_until_closed_once(rents: RentService, clock: FakeClock,
                                                                   fake_redis: Any, settings: Settings) -> None:
    from lifecycle.rent.decisions import next_step
    from lifecycle.rent.record import OrphanEnd
    from lifecycle.steps import Step

    rents.submit(RentRequest("full", order_id="r1"))
    store = rents.store
    store.start_buying("r1", provider="p1")
    store.fail("r1", reason="rent_unrecoverable")
    assert next_step(store.get("r1"), clock(), store.config).step is Step.DROP
    assert store.adopt_orphan("r1", provider="p1", rent_id="900", paid=2_000_000).ok
    assert not store.adopt_orphan("r1", provider="p1", rent_id="901", paid=2_000_000).ok   # one orphan per order
    order = store.get("r1")
    assert (order.orphan_rent_id, order.paid, order.orphan_open) == ("900", 2_000_000, True)
    assert store.order_for_rent("p1", "900") == "r1"                 # indexed: no other order takes it
    assert fake_redis.ttl(store.keys.rent_index("p1:900").retired) > 0       # and forgotten with the record
    assert next_step(order, clock(), store.config).step is Step.CANCEL_ORPHAN
    assert next_step(order, clock(), store.config, outage=True).step is Step.WAIT_OUTAGE
    assert store.close_orphan("r1", rent_id="900", end=OrphanEnd.CANCELLED).ok
    assert not store.close_orphan("r1", rent_id="900", end=OrphanEnd.KEPT).ok             # closed once
    order = store.get("r1")
    assert order.orphan_end is OrphanEnd.CANCELLED and not order.orphan_open
    assert next_step(order, clock(), store.config).step is Step.DROP
    assert order.public()["orphan_rent_id"] == "900" and order.public()["orphan_end"] == "cancelled"
    assert [e["type"] for e in stream_events(fake_redis, settings)] == [ev.ORDER_FAILED]
