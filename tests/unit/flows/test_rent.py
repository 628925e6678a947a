"""Rent flows on fakeredis with a scripted provider: one purchase at most, reconciliation instead of re-buying,
rent.sms once whether by webhook or poll, ends, commands and prolongation."""
from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import pytest

from config.settings import Settings
from lifecycle.outbox import events as ev
from lifecycle.rent import RentRequest, RentState
from provider import errors as perr
from flows import activation, inbox as inbox_flow, relay, rent as rent_flows, sweep as sweeping
from flows.runtime import Runtime
from tests.unit.lifecycle.conftest import FakeClock, stream_events
from tests.unit.lifecycle.test_consumer import Entry, RecordingInbox
from tests.unit.flows.fakes import FakeRentProvider


@pytest.fixture
def provider(clock: FakeClock) -> FakeRentProvider:
    return FakeRentProvider(clock)


@pytest.fixture
def settings() -> Settings:
    return Settings(auto_finish=False, poll_after=30.0, poll_interval=15.0, order_max_attempts=3,
                    order_retry_delay=30.0, events_maxlen=1000, sweep_batch=500, public_url="https://otp.example",
                    webhook_token="wh-secret-token-0123456789")


def types(rt: Runtime, order_id: str = "r1") -> list[str]:
    return [e["type"] for e in stream_events(rt.redis, rt.settings) if e.get("order_id") == order_id]


def rented(rt: Runtime, order_id: str = "r1", **kw: Any) -> str:
    rt.rent_orders.submit(RentRequest("full", order_id=order_id, **kw))
    assert rent_flows.place_rent(rt, order_id) == "active"
    return rt.rents.get(order_id).rent_id


def test_place_rent_sends_webhook_url_and_starts_once(rt: Runtime, provider: FakeRentProvider) -> None:
    rid = rented(rt, hours=12)
    [(_, (service, hours, url))] = [c for c in provider.calls if c[0] == "get_rent_number"]
    assert (service, hours, url) == ("full", 12, "https://otp.example/webhooks/wh-secret-token-0123456789")
    assert rent_flows.place_rent(rt, "r1") == "stale"           # re-delivered after success: nothing
    assert rt.rents.get("r1").state is RentState.ACTIVE
    assert provider.count("get_rent_number") == 1
    [started] = [e for e in stream_events(rt.redis, rt.settings)]
    assert started["type"] == ev.RENT_STARTED and started["rent_id"] == rid and started["end_date"]
    assert "wh-secret" not in str(started)


def test_no_public_url_means_polling_only(rt: Runtime, provider: FakeRentProvider) -> None:
    rt.settings = dataclasses.replace(rt.settings, public_url=None)
    rented(rt)
    assert [c[1][2] for c in provider.calls if c[0] == "get_rent_number"] == [None]


def test_redelivery_while_buying_never_buys_again(rt: Runtime, provider: FakeRentProvider, clock: FakeClock) -> None:
    rt.rent_orders.submit(RentRequest("full", order_id="r1"))
    assert rt.rents.start_buying("r1", provider="sms-activate").ok  # a worker marked it and died mid-call ...
    provider.add_rent("full")                           # ... after the provider rented the number
    assert rent_flows.place_rent(rt, "r1") == "in_flight"   # fresh mark: maybe still in flight elsewhere
    clock.advance(rt.rent_config.buying_stale + 1)
    assert rent_flows.place_rent(rt, "r1") == "active"      # stale: reconciled from getRentList
    assert provider.count("get_rent_number") == 0 and provider.count("get_rent_list") == 1
    assert types(rt) == [ev.RENT_STARTED]


def test_a_rent_recovered_late_is_dated_from_its_purchase(rt: Runtime, provider: FakeRentProvider,
                                                          clock: FakeClock) -> None:
    """getRentList states no dates: a rent found long after the crash keeps neither a longer free-cancel window
    nor a later end than the provider's (both count from when its purchase was sent)."""
    rt.rent_orders.submit(RentRequest("full", order_id="r1", hours=4))
    assert rt.rents.start_buying("r1", provider="sms-activate").ok
    sent = clock.now
    provider.add_rent("full")
    clock.advance(900)                                      # the worker that sent it died; found 15 minutes later
    assert rent_flows.place_rent(rt, "r1") == "active"
    order = rt.rents.get("r1")
    assert order.started_at == pytest.approx(sent, abs=0.01)
    assert order.end_at == pytest.approx(sent + 4 * 3600, abs=0.01)
    clock.advance(20 * 60 - 900 + 1)                        # 20 minutes after the purchase: no longer free
    assert not order.can_cancel(clock.now)


def test_unreconcilable_purchase_fails_without_buying(rt: Runtime, provider: FakeRentProvider,
                                                      clock: FakeClock) -> None:
    for oid in ("a", "b"):
        rt.rent_orders.submit(RentRequest("full", order_id=oid))
        rt.rents.start_buying(oid, provider="sms-activate")
    clock.advance(rt.rent_config.buying_stale + 1)
    assert rent_flows.place_rent(rt, "a") == "failed"       # nothing listed: it never rented
    provider.add_rent()
    provider.add_rent()
    assert rent_flows.place_rent(rt, "b") == "failed"       # two unclaimed: cannot tell which
    assert provider.count("get_rent_number") == 0
    failed = [e for e in stream_events(rt.redis, rt.settings) if e["type"] == ev.ORDER_FAILED]
    assert [(e["order_id"], e["reason"], e["kind"]) for e in failed] == [("a", "rent_unrecoverable", "rent"),
                                                                        ("b", "rent_unrecoverable", "rent")]


def test_ambiguous_answer_reconciles_later(rt: Runtime, provider: FakeRentProvider, clock: FakeClock) -> None:
    rt.rent_orders.submit(RentRequest("full", order_id="r1"))
    provider.fail["get_rent_number"] = [perr.ReadTimeout(possibly_processed=True)]
    assert rent_flows.place_rent(rt, "r1") == "reconcile_later"
    assert rt.rents.get("r1").state is RentState.BUYING and rt.rents.get("r1").ambiguous
    provider.add_rent()                                    # the timed-out call did rent one
    clock.advance(11)
    sweeping.sweep(rt)                                        # the deadline re-drives place_rent ...
    assert ("otpflow.place_rent", {"order_id": "r1"}) in rt.publish
    assert rent_flows.place_rent(rt, "r1") == "active"     # ... which reconciles
    assert provider.count("get_rent_number") == 1


def test_a_rent_the_list_shows_late_is_still_found(rt: Runtime, provider: FakeRentProvider,
                                                   clock: FakeClock) -> None:
    """getRentList may lag the rent a timed-out getRentNumber made: none listed is looked at again, not given up."""
    rt.rent_orders.submit(RentRequest("full", order_id="r1"))
    provider.fail["get_rent_number"] = [perr.ServerError(http_status=502)]
    assert rent_flows.place_rent(rt, "r1") == "reconcile_later"
    clock.advance(11)
    assert rent_flows.place_rent(rt, "r1") == "reconcile_later"     # not listed yet
    assert rt.rents.get("r1").state is RentState.BUYING
    provider.add_rent()                                              # the list catches up
    clock.advance(rt.rent_config.backoff.step(1) + 1)
    assert rent_flows.place_rent(rt, "r1") == "active"
    assert provider.count("get_rent_number") == 1 and provider.count("get_rent_list") == 2
    assert types(rt) == [ev.RENT_STARTED]


def test_a_rent_never_listed_fails_once_the_list_had_time(rt: Runtime, provider: FakeRentProvider,
                                                          clock: FakeClock) -> None:
    rt.rent_orders.submit(RentRequest("full", order_id="r1"))
    provider.fail["get_rent_number"] = [perr.ServerError(http_status=502)]
    assert rent_flows.place_rent(rt, "r1") == "reconcile_later"
    outcomes = []
    while len(outcomes) < 20 and (not outcomes or outcomes[-1] == "reconcile_later"):
        clock.advance(rt.rent_config.backoff.cap)
        outcomes.append(rent_flows.place_rent(rt, "r1"))
    assert outcomes[-1] == "failed" and rt.rents.get("r1").reason == "rent_unrecoverable"
    assert provider.count("get_rent_number") == 1


@pytest.mark.parametrize("exc, outcome, state", [
    (perr.NoNumbers(), "retry_later", RentState.PENDING),
    (perr.ConnectTimeout(possibly_processed=False), "retry_later", RentState.PENDING),
    (perr.NoBalance(), "failed", RentState.FAILED),
])
def test_definite_refusals(rt: Runtime, provider: FakeRentProvider, exc: Exception, outcome: str,
                           state: RentState) -> None:
    rt.rent_orders.submit(RentRequest("full", order_id="r1"))
    provider.fail["get_rent_number"] = [exc]
    assert rent_flows.place_rent(rt, "r1") == outcome
    assert rt.rents.get("r1").state is state


def test_webhook_and_poll_give_one_rent_sms_each(rt: Runtime, provider: FakeRentProvider, clock: FakeClock) -> None:
    rid = rented(rt)
    provider.sms(rid, "code 1111", "BANK")
    sent = provider.rents[rid].sms[0]
    from datetime import datetime, timezone
    date = datetime.fromtimestamp(sent[2], timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    webhook = {"rentId": rid, "sms": {"phoneFrom": "BANK", "text": "code 1111", "date": date}}
    rt.consumer.handle_batch([Entry(f"{i}-0", "rent", webhook) for i in range(3)])
    clock.advance(5)
    provider.sms(rid, "code 2222", "BANK")              # its webhook was lost
    clock.advance(30)
    sweeping.sweep(rt)
    sweeping.sweep(rt)
    clock.advance(20)
    sweeping.sweep(rt)
    sms = [e for e in stream_events(rt.redis, rt.settings) if e["type"] == ev.RENT_SMS]
    assert [(e["text"], e["via"]) for e in sms] == [("code 1111", "webhook"), ("code 2222", "poll")]


def test_poll_pages_until_known(rt: Runtime, provider: FakeRentProvider, clock: FakeClock) -> None:
    rid = rented(rt)
    for i in range(25):
        provider.sms(rid, f"m{i}")
        clock.advance(1)
    clock.advance(30)
    sweeping.sweep(rt)
    assert len([e for e in stream_events(rt.redis, rt.settings) if e["type"] == ev.RENT_SMS]) == 25
    assert provider.count("get_rent_status") == 3


def test_end_date_finishes(rt: Runtime, provider: FakeRentProvider, clock: FakeClock) -> None:
    rid = rented(rt, hours=4)
    clock.advance(4 * 3600 + 1)
    sweeping.sweep(rt)
    assert types(rt) == [ev.RENT_STARTED, ev.RENT_FINISHED]
    finished = stream_events(rt.redis, rt.settings)[-1]
    assert finished["reason"] == "end_date" and finished["rent_id"] == rid
    assert provider.rents[rid].state == "FINISHED"


def test_provider_side_end_is_noticed(rt: Runtime, provider: FakeRentProvider, clock: FakeClock) -> None:
    rid = rented(rt)
    provider.rents[rid].state = "REVOKED"
    clock.advance(31)
    sweeping.sweep(rt)
    last = stream_events(rt.redis, rt.settings)[-1]
    assert last["type"] == ev.RENT_CANCELLED and last["reason"] == "revoked"


def test_finish_and_cancel_commands(rt: Runtime, provider: FakeRentProvider) -> None:
    a, b = rented(rt, "a"), rented(rt, "b")
    rt.rent_orders.request("a", "finish")
    rt.rent_orders.request("b", "cancel")
    assert rent_flows.rent_command(rt, "a", "finish") == "finished"
    assert rent_flows.rent_command(rt, "b", "cancel") == "cancelled"
    assert rent_flows.rent_command(rt, "b", "cancel") == "no_command"  # re-delivered: nothing left to do
    assert types(rt, "a") == [ev.RENT_STARTED, ev.RENT_FINISHED]
    assert types(rt, "b") == [ev.RENT_STARTED, ev.RENT_CANCELLED]
    assert provider.rents[a].state == "FINISHED" and provider.rents[b].state == "CANCELLED"


def test_cant_cancel_emits_nothing(rt: Runtime, provider: FakeRentProvider) -> None:
    rid = rented(rt)
    rt.rent_orders.request("r1", "cancel")
    provider.sms(rid, "arrived just now")       # the provider saw an SMS we did not yet
    assert rent_flows.rent_command(rt, "r1", "cancel") == "refused"
    order = rt.rents.get("r1")
    assert order.state is RentState.ACTIVE and order.command is None and order.command_error == "cant_cancel"
    assert types(rt) == [ev.RENT_STARTED, ev.RENT_SMS]          # the last poll still delivered the SMS


def test_prolong_active_same_id(rt: Runtime, provider: FakeRentProvider) -> None:
    rid = rented(rt)
    end = rt.rents.get("r1").end_at
    rt.rent_orders.request("r1", "prolong", hours=12)
    assert rent_flows.rent_command(rt, "r1", "prolong") == "prolonged"
    assert rent_flows.rent_command(rt, "r1", "prolong") == "no_command"   # re-delivered: not sent twice
    assert provider.count("continue_rent_number") == 1
    order = rt.rents.get("r1")
    assert order.rent_id == rid and order.end_at == end + 12 * 3600


LIMITED = Settings(auto_finish=False, poll_after=30.0, poll_interval=15.0, public_url="https://otp.example",
                   webhook_token="wh-secret-token-0123456789", spend_limit_daily=Decimal("7.00"))


def account(rt: Runtime) -> dict[str, Any]:
    (row,) = rt.ledger.accounts()
    return dict(row)


@pytest.mark.parametrize("settings", [LIMITED])
def test_prolong_checks_its_price_against_the_limits_and_emits_its_cost(rt: Runtime, provider: FakeRentProvider,
                                                                        clock: FakeClock) -> None:
    rid = rented(rt)                                                 # 2.00 for its first 4 hours
    rt.rent_orders.request("r1", "prolong", hours=12)                # 4.50 more: fits
    assert rent_flows.rent_command(rt, "r1", "prolong") == "prolonged"
    (prolonged,) = [e for e in stream_events(rt.redis, rt.settings) if e["type"] == ev.RENT_PROLONGED]
    assert prolonged["rent_id"] == rid and prolonged["cost"] == "4.50" and prolonged["hours"] == 12
    assert rt.ledger.spent("sms-activate", clock())[1] == Decimal("6.50")
    assert rt.rents.get("r1").paid == 6_500_000
    rt.rent_orders.request("r1", "prolong", hours=4)                 # 1.50 more: over the day's 7.00
    assert rent_flows.rent_command(rt, "r1", "prolong") == "refused"
    assert rt.rents.get("r1").command_error == "budget_exceeded"
    assert provider.count("continue_rent_number") == 1 and rt.ledger.reserved_total("sms-activate") == 0


@pytest.mark.parametrize("settings", [LIMITED])
def test_a_rent_is_reserved_then_charged_and_its_cost_emitted(rt: Runtime, provider: FakeRentProvider,
                                                              clock: FakeClock) -> None:
    rid = rented(rt)
    assert provider.count("get_rent_services_and_countries") == 1    # its price read before the purchase
    (started,) = [e for e in stream_events(rt.redis, rt.settings) if e["type"] == ev.RENT_STARTED]
    assert started["rent_id"] == rid and started["cost"] == "2.00" and started["currency"] == 840
    assert rt.ledger.spent("sms-activate", clock())[1] == Decimal("2.00")
    assert rt.ledger.reserved_total("sms-activate") == 0              # the reservation settled into the charge
    assert (account(rt)["charged"], account(rt)["numbers"]) == ("2", 1)
    assert rt.rents.get("r1").public()["cost"] == "2.00"


@pytest.mark.parametrize("settings", [LIMITED])
def test_a_rent_over_the_limit_buys_nothing(rt: Runtime, provider: FakeRentProvider, clock: FakeClock) -> None:
    provider.rent_price_4h = Decimal("7.50")                          # over the day's 7.00
    rt.rent_orders.submit(RentRequest("full", order_id="r1"))
    assert rent_flows.place_rent(rt, "r1") == "failed"
    order = rt.rents.get("r1")
    assert order.state is RentState.FAILED and order.reason == "budget_exceeded"
    assert provider.count("get_rent_number") == 0 and rt.ledger.reserved_total("sms-activate") == 0
    (failed,) = [e for e in stream_events(rt.redis, rt.settings) if e["type"] == ev.ORDER_FAILED]
    assert failed["reason"] == "budget_exceeded" and failed["kind"] == "rent"


@pytest.mark.parametrize("settings", [LIMITED])
def test_a_rent_with_no_readable_price_waits_under_limits(rt: Runtime, provider: FakeRentProvider,
                                                          clock: FakeClock) -> None:
    rt.rent_orders.submit(RentRequest("full", order_id="r1"))
    provider.fail["get_rent_services_and_countries"] = [perr.ServerError(code=None, http_status=502)]
    assert rent_flows.place_rent(rt, "r1") == "retry_later"         # nothing to reserve: nothing bought
    assert provider.count("get_rent_number") == 0 and rt.rents.get("r1").state is RentState.PENDING
    clock.advance(rt.rent_config.backoff.delay(1) + 1)
    assert rent_flows.place_rent(rt, "r1") == "active"               # read the next time
    assert rt.ledger.spent("sms-activate", clock())[1] == Decimal("2.00")


def test_without_limits_an_unreadable_price_does_not_stop_a_rent(rt: Runtime, provider: FakeRentProvider) -> None:
    rt.rent_orders.submit(RentRequest("full", order_id="r1"))
    provider.fail["get_rent_services_and_countries"] = [perr.ServerError(code=None, http_status=502)]
    assert rent_flows.place_rent(rt, "r1") == "active"
    (started,) = [e for e in stream_events(rt.redis, rt.settings) if e["type"] == ev.RENT_STARTED]
    assert "cost" not in started and account(rt)["numbers"] == 1 and account(rt)["charged"] == "0"


@pytest.mark.parametrize("settings", [LIMITED])
@pytest.mark.parametrize("exc", [perr.NoNumbers(), perr.NoBalance(), perr.ConnectTimeout(possibly_processed=False)])
def test_a_definite_refusal_gives_the_reservation_back(rt: Runtime, provider: FakeRentProvider, clock: FakeClock,
                                                       exc: Exception) -> None:
    rt.rent_orders.submit(RentRequest("full", order_id="r1"))
    provider.fail["get_rent_number"] = [exc]
    assert rent_flows.place_rent(rt, "r1") in ("retry_later", "failed")
    assert rt.ledger.reserved_total("sms-activate") == 0 and rt.ledger.spent("sms-activate", clock())[1] == 0


@pytest.mark.parametrize("settings", [LIMITED])
def test_an_ambiguous_purchase_keeps_its_reservation_and_a_reconcile_charges_it(
        rt: Runtime, provider: FakeRentProvider, clock: FakeClock) -> None:
    rt.rent_orders.submit(RentRequest("full", order_id="r1"))
    provider.fail["get_rent_number"] = [perr.ReadTimeout(possibly_processed=True)]
    assert rent_flows.place_rent(rt, "r1") == "reconcile_later"
    assert rt.ledger.reserved_total("sms-activate") == Decimal("2.00")   # may have been bought: still held
    provider.add_rent()
    clock.advance(11)
    assert rent_flows.place_rent(rt, "r1") == "active"                   # recovered from getRentList
    assert rt.ledger.reserved_total("sms-activate") == 0
    assert rt.ledger.spent("sms-activate", clock())[1] == Decimal("2.00")


@pytest.mark.parametrize("settings", [LIMITED])
def test_a_cancelled_rent_is_refunded_in_the_books(rt: Runtime, provider: FakeRentProvider, clock: FakeClock) -> None:
    rented(rt)
    rt.rent_orders.request("r1", "cancel")
    assert rent_flows.rent_command(rt, "r1", "cancel") == "cancelled"
    assert rt.ledger.spent("sms-activate", clock())[1] == 0
    assert (account(rt)["charged"], account(rt)["refunded"], account(rt)["net"]) == ("2", "2", "0")


@pytest.mark.parametrize("settings", [LIMITED])
def test_a_reorder_is_charged_as_a_new_rent(rt: Runtime, provider: FakeRentProvider, clock: FakeClock) -> None:
    rented(rt)
    clock.advance(4 * 3600 + 1)
    sweeping.sweep(rt)                                                # finished at its end
    rt.rent_orders.request("r1", "prolong", hours=4)
    assert rent_flows.rent_command(rt, "r1", "prolong") == "reordered"
    starts = [e for e in stream_events(rt.redis, rt.settings) if e["type"] == ev.RENT_STARTED]
    assert [e.get("cost") for e in starts] == ["2.00", "1.50"]
    assert account(rt)["charged"] == "3.5" and account(rt)["numbers"] == 2
    assert rt.rents.get("r1").paid == 1_500_000 and rt.ledger.reserved_total("sms-activate") == 0


def test_prolong_finished_reorders_with_new_id(rt: Runtime, provider: FakeRentProvider, clock: FakeClock) -> None:
    rid = rented(rt)
    clock.advance(4 * 3600 + 1)
    sweeping.sweep(rt)
    rt.rent_orders.request("r1", "prolong", hours=4)
    assert rent_flows.rent_command(rt, "r1", "prolong") == "reordered"
    order = rt.rents.get("r1")
    assert order.state is RentState.ACTIVE and order.rent_id != rid and order.previous_rent_ids == (rid,)
    assert rt.rents.order_for_rent("sms-activate", order.rent_id) == "r1"
    assert types(rt) == [ev.RENT_STARTED, ev.RENT_FINISHED, ev.RENT_STARTED]


def test_prolong_lost_mid_call_is_not_resent(rt: Runtime, provider: FakeRentProvider, clock: FakeClock) -> None:
    rented(rt)
    rt.rent_orders.request("r1", "prolong", hours=4)
    assert rt.rents.mark_prolonging("r1", RentState.ACTIVE).ok   # a worker claimed it and died
    assert rent_flows.rent_command(rt, "r1", "prolong") == "in_flight"
    clock.advance(rt.rent_config.buying_stale + 1)
    assert rent_flows.rent_command(rt, "r1", "prolong") == "refused"
    assert rt.rents.get("r1").command_error == "prolong_unconfirmed"
    assert provider.count("continue_rent_number") == 0


def test_early_activation_webhook_replayed_by_place_order(rt: Runtime, provider: FakeRentProvider) -> None:
    """An early webhook at the flow level: drained while buying, applied right after the number is stored."""
    from lifecycle.activation.record import OrderRequest

    rt.orders.submit(OrderRequest("tg", order_id="o1"))
    rt.activations.start_buying("o1")
    next_aid = str(provider._next + 1)
    rt.consumer.handle_batch([Entry("1-0", "activation", {"activationId": next_aid, "code": "777111"})])
    assert activation.place_order(rt, "o1") in ("waiting", "code_received")
    codes = [e for e in stream_events(rt.redis, rt.settings) if e["type"] == ev.CODE_RECEIVED]
    assert len(codes) == 1 and codes[0]["via"] == "webhook" and codes[0]["order_id"] == "o1"


# ---------------------------------------------------------------------------------------- a rent bought too late
def fails_mid_purchase(rt: Runtime, provider: FakeRentProvider) -> None:
    """getRentNumber answers only after a concurrent reconcile gave the order up (``rent_unrecoverable``)."""
    real = provider.get_rent_number

    def slow(*a: Any, **k: Any) -> Any:
        assert rt.rents.fail("r1", reason="rent_unrecoverable").ok
        return real(*a, **k)
    provider.get_rent_number = slow  # type: ignore[method-assign]


@pytest.mark.parametrize("settings", [LIMITED])
def test_a_rent_bought_after_its_order_failed_is_charged_given_back_and_refunded(
        rt: Runtime, provider: FakeRentProvider, clock: FakeClock) -> None:
    rt.rent_orders.submit(RentRequest("full", order_id="r1"))
    fails_mid_purchase(rt, provider)
    assert rent_flows.place_rent(rt, "r1") == "orphan"
    [rent] = provider.rents.values()
    assert rent.state == "CANCELLED"
    order = rt.rents.get("r1")
    assert order.state is RentState.FAILED and order.orphan_rent_id == rent.rent_id
    assert order.orphan_end is not None and order.orphan_end.value == "cancelled"
    assert (account(rt)["charged"], account(rt)["refunded"], account(rt)["numbers"]) == ("2", "2", 1)
    assert rt.ledger.spent("sms-activate", clock())[1] == 0 and rt.ledger.reserved_total("sms-activate") == 0
    assert types(rt) == [ev.ORDER_FAILED]                  # downstream hears of the failure only
    assert rt.redis.zscore(rt.keys.rent_deadlines, "r1") is None
    assert rent_flows.place_rent(rt, "r1") == "stale"      # re-delivered: nothing more


@pytest.mark.parametrize("settings", [LIMITED])
def test_an_orphan_rent_whose_cancel_fails_stays_charged_until_the_sweep_gives_it_back(
        rt: Runtime, provider: FakeRentProvider, clock: FakeClock) -> None:
    rt.rent_orders.submit(RentRequest("full", order_id="r1"))
    fails_mid_purchase(rt, provider)
    provider.fail["set_rent_status"] = [perr.ServerError(code=None, http_status=502)]
    assert rent_flows.place_rent(rt, "r1") == "backoff"
    [rent] = provider.rents.values()
    assert rent.state == "ACTIVE"
    assert rt.ledger.spent("sms-activate", clock())[1] == Decimal("2.00")   # spent, and in the books
    clock.advance(rt.rent_config.backoff.delay(1) + 1)
    sweeping.sweep(rt)
    assert rent.state == "CANCELLED" and rt.ledger.spent("sms-activate", clock())[1] == 0
    assert rt.rents.get("r1").orphan_end.value == "cancelled"
    assert provider.count("set_rent_status") == 2


@pytest.mark.parametrize("settings", [LIMITED])
def test_an_orphan_rent_the_provider_keeps_stays_charged_and_no_other_order_takes_it(
        rt: Runtime, provider: FakeRentProvider, clock: FakeClock) -> None:
    rt.rent_orders.submit(RentRequest("full", order_id="r1"))
    fails_mid_purchase(rt, provider)
    provider.fail["set_rent_status"] = [perr.CantCancel()]
    assert rent_flows.place_rent(rt, "r1") == "orphan"
    assert rt.rents.get("r1").orphan_end.value == "kept"
    assert rt.ledger.spent("sms-activate", clock())[1] == Decimal("2.00")
    assert (account(rt)["charged"], account(rt)["refunded"]) == ("2", "0")
    # another order's lost purchase is reconciled against getRentList: the kept rent is known, not taken for it
    rt.rent_orders.submit(RentRequest("full", order_id="b"))
    rt.rents.start_buying("b", provider="sms-activate")
    clock.advance(rt.rent_config.buying_stale + 1)
    assert rent_flows.place_rent(rt, "b") == "failed"
    assert rt.rents.get("b").reason == "rent_unrecoverable"
