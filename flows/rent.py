"""The rent flow: rent a number, collect its SMS, finish, cancel or prolong it; a provider call then a transition.

getRentNumber and continueRentNumber are purchases WITHOUT an idempotency key (docs/handler-api.md, Rents).
Each is sent at most once per order/command: the order is marked ``buying`` (the command ``prolonging``) by a
compare-and-set before the call, and a re-delivered task that finds that mark never calls again; it reconciles
(getRentList) or gives up with a reason. Everything else (polls, setRentStatus) is safe to repeat.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from lifecycle.cas import Side
from lifecycle.inbox import WebhookKind
from lifecycle.listing import listing_may_lag
from lifecycle.money import from_micros, micros, parse_amount
from lifecycle.outbox.events import Via
from lifecycle.rent import PROLONGING, RentCommand, RentOrder, RentState
from lifecycle.rent.machine import CANCEL_WINDOW
from lifecycle.rent.record import OrphanEnd
from lifecycle.rent.decisions import (CloseOutcome, RentVerdict, close_outcome, next_step, purchase_decision,
                                      rent_end_at, sms_fingerprint)
from lifecycle.steps import Step
from provider import errors as perr
from provider.models import RentPrice, RentSms, RentState as ProviderRentState, RentStatus

from .names import TaskName
from .outcomes import Outcome
from .report import Breaker, SweepReport, back_off
from .runtime import Runtime

log = logging.getLogger("otpflow.flows.rent")

#: getRentStatus pages read per poll at most (10 SMS each); more only when every SMS on a page was new
MAX_POLL_PAGES = 5
POLL_PAGE_SIZE = 10
#: getRentList page size used to reconcile an ambiguous purchase
RENT_LIST_LENGTH = 100


def webhook_url(rt: Runtime, provider: str) -> str | None:
    """``{PUBLIC_URL}/webhooks/{the provider's token}`` (a secret: never logged), or None: polling only."""
    public, token = rt.settings.public_url, rt.settings.provider_config(provider).webhook_token
    if not public or not token:
        return None
    return f"{public.rstrip('/')}/webhooks/{token}"


def _rent_provider(rt: Runtime, order: RentOrder) -> str:
    """Where a rent is bought: the first provider of its preference whose breaker lets a call through (a rent
    stays with its provider for good; its purchase is never sent twice, so there is no fail-over mid-purchase)."""
    preference = [p for p in (order.preference or rt.provider_names) if p in rt.provider_names]
    for name in preference:
        if rt.health.allow(name):
            return name
    return preference[0] if preference else rt.default_provider


def _end_text(value: object) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else (str(value) if value else None)


# ---------------------------------------------------------------------------------------- purchase
def place_rent(rt: Runtime, order_id: str) -> Outcome:
    """Rent the number for a stored rent order: its price read and reserved against the spend limits, ``buying``
    marked, ONE getRentNumber, one transition (which charges the price to the books).

    Re-delivered while ``buying``: if the mark is fresh another delivery is mid-call (do nothing: the deadline
    re-drives us later); if it is stale or the last answer was ambiguous, reconcile, never buy again."""
    rents = rt.rents
    order = rents.get(order_id)
    if order is None:
        return Outcome.MISSING
    if order.state is RentState.PENDING:
        provider = _rent_provider(rt, order)
        price = _first_period_price(rt, order, provider)
        if isinstance(price, Outcome):
            return price
        if not rents.start_buying(order_id, provider=provider, cost=_text(price.price),
                                  currency=price.currency).ok:
            return Outcome.STALE  # another delivery holds the reservation (same id): it settles or gives it back
        order = rents.get(order_id) or order
    elif order.state is RentState.BUYING:
        if order.ambiguous or rt.rent_config.buying_is_stale(order, rt.clock()):
            return reconcile_purchase(rt, order)
        return Outcome.IN_FLIGHT
    else:
        return Outcome.STALE
    try:
        rent = rt.provider_for(order.provider).get_rent_number(
            order.service, rent_time=order.hours, operator=order.operator, country=order.country,
            url=webhook_url(rt, order.provider or rt.default_provider))
    except perr.ProviderError as exc:
        return _purchase_failed(rt, order, exc)
    return _assigned(rt, order, str(rent.rent_id), str(rent.phone), rent.end_date)


def _rid(order: RentOrder) -> str:
    """The reservation of a rent order's purchase (one at a time: a retry follows a definite no-purchase, which
    gave the last one back)."""
    return f"{order.order_id}-rent"


def _text(amount: Decimal | None) -> str | None:
    return None if amount is None else str(amount)


def _first_period_price(rt: Runtime, order: RentOrder, provider: str) -> RentPrice | Outcome:
    """The rent's price for its hours (getRentServicesAndCountries, a read), reserved against the provider's
    spend limits; or the outcome that stopped it (nothing bought). Without limits an unreadable price does not
    stop the rent: it is bought unpriced (``cost`` absent, nothing charged in the books)."""
    limits = rt.settings.provider_config(provider).limits
    try:
        catalogue = rt.provider_for(provider).get_rent_services_and_countries(
            rent_time=order.hours, operator=order.operator, country=order.country)
        offer = catalogue.services.get(order.service)
        price = RentPrice(price=None if offer is None else offer.cost, currency=catalogue.currency,
                          hours=order.hours)
    except perr.ProviderError as exc:
        log.info("rent order %s: getRentServicesAndCountries failed (%s)", order.order_id, exc.label)
        price = RentPrice(price=None, hours=order.hours)
    if not limits.any:
        return price
    if price.price is None:  # nothing to reserve: read again later (a definite no-purchase, counted)
        if order.fails + 1 >= rt.rent_config.max_transient_fails:
            rt.rents.fail(order.order_id, reason="price_unknown")
            return Outcome.FAILED
        rt.rents.rearm(order.order_id, state=RentState.PENDING, fails=True,
                       due=rt.clock() + rt.rent_config.backoff.delay(order.fails))
        return Outcome.RETRY_LATER
    over = rt.ledger.reserve(provider, _rid(order), price.price, limits, now=rt.clock(),
                             hold_for=3 * rt.rent_config.buying_stale)
    if not over:
        return price
    log.info("rent order %s: %s has no room for %s under its %s limit", order.order_id, provider, price.price, over)
    if rt.ledger.holds_others(provider, _rid(order)):  # purchases in flight settle in seconds: wait for them
        rt.rents.rearm(order.order_id, state=RentState.PENDING, due=rt.clock() + rt.rent_config.order_retry_delay)
        return Outcome.RETRY_LATER
    rt.rents.fail(order.order_id, reason="budget_exceeded")
    return Outcome.FAILED


def _assigned(rt: Runtime, order: RentOrder, rent_id: str, phone: str, end_date: object,
              started_at: float | None = None) -> Outcome:
    now = rt.clock()
    started = now if started_at is None else min(now, started_at)
    provider = order.provider or rt.default_provider
    cost = parse_amount(order.cost)
    res = rt.rents.assign_number(order.order_id, provider=provider, rent_id=rent_id, phone=phone,
                                 end_date=_end_text(end_date), end_at=rent_end_at(end_date, started, order.hours),
                                 cost=order.cost, currency=order.currency, paid=micros(cost),
                                 side=rt.ledger.bought(provider, _rid(order), order.service, order.country, cost,
                                                       now), started_at=started)
    if res.ok:
        log.info("rent order %s: rented (rent %s)", order.order_id, rent_id)
        _replay_early(rt, provider, rent_id)
        return Outcome.ACTIVE
    current = rt.rents.get(order.order_id)
    if current is not None and rent_id in (current.rent_id, current.orphan_rent_id):
        return Outcome.STALE
    # We hold a rent the order no longer wants (it failed meanwhile): give it back while cancelling is free.
    log.error("rent order %s: rent %s bought but the order is %s; cancelling it", order.order_id, rent_id,
              res.raw_state)
    if current is not None and current.state is RentState.FAILED and current.orphan_rent_id is None:
        # charged first and recorded on the failed order, so a cancel that fails now is retried (and a rent the
        # provider keeps stays in the books) instead of being spent unseen
        adopted = rt.rents.adopt_orphan(order.order_id, provider=provider, rent_id=rent_id, paid=micros(cost),
                                        side=rt.ledger.bought(provider, _rid(order), order.service, order.country,
                                                              cost, now))
        if adopted.ok and (orphan := rt.rents.get(order.order_id)) is not None:
            return cancel_orphan(rt, orphan, SweepReport(), Breaker())
    try:
        rt.provider_for(provider).cancel_rent(rent_id)
    except perr.ProviderError as exc:
        log.warning("rent order %s: could not cancel orphan rent %s (%s)", order.order_id, rent_id, exc.label)
    else:
        rt.ledger.release(provider, _rid(order))  # cancelled at once: refunded, nothing spent
    return Outcome.ORPHAN


def cancel_orphan(rt: Runtime, order: RentOrder, report: SweepReport, breaker: Breaker) -> Outcome:
    """Give back a rent bought after its order failed (setRentStatus 2: refunded within the rent's first 20
    minutes) and book the refund; a rent the provider will not cancel is kept, and stays charged. A provider
    outage re-arms it with backoff while the window lasts (the sweeper brings it back)."""
    rent_id = order.orphan_rent_id or ""
    provider = order.provider or rt.default_provider
    end = OrphanEnd.KEPT
    try:
        report.call("setRentStatus")
        rt.provider_for(provider).cancel_rent(rent_id)
        end = OrphanEnd.CANCELLED
    except perr.ProviderError as exc:
        outcome = close_outcome(exc)
        if outcome is CloseOutcome.CANCELLED:
            end = OrphanEnd.CANCELLED
        elif outcome is CloseOutcome.OUTAGE and rt.clock() - (order.orphan_at or 0.0) < CANCEL_WINDOW:
            log.warning("rent order %s: orphan rent %s not cancelled yet (%s); retrying", order.order_id,
                        rent_id, exc.label)
            return _transient(rt, order, report, breaker, exc)
        else:
            log.error("rent order %s: orphan rent %s cannot be cancelled (%s); it stays paid for",
                      order.order_id, rent_id, exc.label)
    side = rt.ledger.refunded(provider, order.service, order.country, from_micros(order.paid),
                              order.orphan_at or rt.clock()) if end is OrphanEnd.CANCELLED else ()
    rt.rents.close_orphan(order.order_id, rent_id=rent_id, end=end, side=side)
    log.info("rent order %s: orphan rent %s %s", order.order_id, rent_id, end.value)
    report.did(f"orphan_{end.value}")
    return Outcome.ORPHAN


def _refund(rt: Runtime, order: RentOrder) -> tuple[Side, ...]:
    """A cancelled (or revoked) rent is refunded by the provider: what was charged for it comes back off the
    windows, as of its start (cancelling is only possible in its first minutes)."""
    provider = order.provider or rt.default_provider
    return rt.ledger.refunded(provider, order.service, order.country, from_micros(order.paid),
                              order.started_at or rt.clock())


def _replay_early(rt: Runtime, provider: str, rent_id: str) -> None:
    """Rent webhooks drained before the rent id was stored were held: apply them now (the poll is the backstop)."""
    try:
        rt.consumer.replay_held(WebhookKind.RENT, provider, rent_id)
    except Exception:  # the rent is stored; the poll reconciles what the replay missed
        log.exception("replay of early webhooks for rent %s failed; the poll will catch up", rent_id)


def _purchase_failed(rt: Runtime, order: RentOrder, exc: perr.ProviderError) -> Outcome:
    decision = purchase_decision(exc, order, rt.rent_config)
    log.info("rent order %s: getRentNumber %s -> %s", order.order_id, exc.label, decision.verdict.value)
    if decision.verdict is not RentVerdict.RECONCILE:  # surely not bought: the reservation comes back
        rt.ledger.release(order.provider or rt.default_provider, _rid(order))
    if decision.verdict is RentVerdict.RETRY_LATER:
        rt.rents.retry_purchase_later(order.order_id, reason=decision.reason, delay=decision.delay,
                                      transient=decision.transient)
        return Outcome.RETRY_LATER
    if decision.verdict is RentVerdict.RECONCILE:
        rt.rents.reconcile_later(order.order_id, reason=decision.reason, delay=decision.delay)
        return Outcome.RECONCILE_LATER
    rt.rents.fail(order.order_id, reason=decision.reason)
    return Outcome.FAILED


def reconcile_purchase(rt: Runtime, order: RentOrder) -> Outcome:
    """Did the lost/ambiguous getRentNumber rent a number? getRentList has no order key, so: exactly one listed
    rent that no order of ours knows is taken as ours; none is looked for again while the list may lag
    (LIST_LAG after the purchase was sent); none after that, or several -> ``rent_unrecoverable`` (never a
    second purchase). Assumes otpflow is the account's only renter (as activation recovery does)."""
    rents = rt.rents
    try:
        rows = list(rt.provider_for(order.provider).get_rent_list(length=RENT_LIST_LENGTH))
    except perr.ProviderError as exc:
        if not exc.transient:
            log.error("rent order %s: getRentList refused (%s); failing it", order.order_id, exc.label)
            rents.fail(order.order_id, reason="rent_unrecoverable")
            return Outcome.FAILED
        if order.fails + 1 >= rt.rent_config.max_transient_fails:
            rents.fail(order.order_id, reason="rent_unrecoverable")
            return Outcome.FAILED
        rents.rearm(order.order_id, state=RentState.BUYING,
                    due=rt.clock() + rt.rent_config.backoff.delay(order.fails), fails=True)
        log.warning("rent order %s: getRentList failed (%s); reconciling later", order.order_id, exc.label)
        return Outcome.BACKOFF
    known = rents.known_rent_ids(order.provider or rt.default_provider, (r.rent_id for r in rows))
    unknown = [r for r in rows if r.rent_id and not known.get(r.rent_id)]
    if len(unknown) == 1:
        row = unknown[0]
        log.warning("rent order %s: recovered rent %s from getRentList", order.order_id, row.rent_id)
        # the list states no dates: the rent is dated from when its purchase was first sent, the earliest it can
        # have begun, so neither its end nor its free-cancel window is taken to last longer than the provider's
        return _assigned(rt, order, row.rent_id, row.phone or "", None, started_at=order.buying_at)
    config, now = rt.rent_config, rt.clock()
    if not unknown and listing_may_lag(order, now, config.list_lag) and order.fails + 1 < config.max_transient_fails:
        rents.rearm(order.order_id, state=RentState.BUYING, due=now + config.backoff.delay(order.fails), fails=True)
        log.info("rent order %s: no unclaimed rent listed yet; looking again (the list may lag)", order.order_id)
        return Outcome.RECONCILE_LATER
    log.error("rent order %s: purchase outcome unknown, %d unclaimed rents listed; failing it (rent_unrecoverable)",
              order.order_id, len(unknown))
    rents.fail(order.order_id, reason="rent_unrecoverable")
    return Outcome.FAILED


# ---------------------------------------------------------------------------------------- one rent's step
def advance_rent(rt: Runtime, order_id: str, *, order: RentOrder | None = None, breaker: Breaker | None = None,
                 report: SweepReport | None = None) -> Outcome:
    """Do whatever is due for one rent order (sweeper and command task)."""
    order = order if order is not None else rt.rents.get(order_id)
    report = report or SweepReport()
    breaker = breaker or Breaker()
    nxt = next_step(order, rt.clock(), rt.rent_config, outage=breaker.open)
    if nxt.step is Step.DROP or order is None:
        rt.rents.drop_deadline(order_id)
        return Outcome.DROPPED
    if nxt.step is Step.BUY:
        rt.rents.rearm(order_id, state=order.state, due=nxt.due or rt.clock())
        rt.publish(TaskName.PLACE_RENT, {"order_id": order_id})
        return Outcome.PLACE_RENT
    if nxt.step is Step.CANCEL_ORPHAN:
        return cancel_orphan(rt, order, report, breaker)
    if nxt.step is Step.PROLONG_IN_FLIGHT:
        return _prolong_in_flight(rt, order)
    if nxt.step is Step.PROLONG:
        return _prolong(rt, order, report)
    if nxt.step is Step.WAIT_OUTAGE:
        return _backoff(rt, order, report, "breaker_open", count=False)
    if nxt.step is Step.FINISH:
        return _close(rt, order, report, breaker, cancel=False, reason=nxt.reason or "command")
    if nxt.step is Step.CANCEL:
        return _close(rt, order, report, breaker, cancel=True, reason=nxt.reason or "command")
    return _poll(rt, order, report, breaker)


def _backoff(rt: Runtime, order: RentOrder, report: SweepReport, why: str, *, count: bool = True) -> Outcome:
    log.debug("rent order %s: backoff (%s)", order.order_id, why)
    return back_off(rt.rents, order, rt.rent_config.backoff, rt.clock(), report, count=count)


def _transient(rt: Runtime, order: RentOrder, report: SweepReport, breaker: Breaker,
               exc: perr.ProviderError) -> Outcome:
    breaker.trip()
    log.warning("rent order %s: provider unavailable (%s); re-armed", order.order_id, exc.label)
    return _backoff(rt, order, report, exc.label)


def _read_status(rt: Runtime, order: RentOrder, report: SweepReport) -> tuple[RentStatus, list[RentSms]]:
    """getRentStatus, newest page first; a further page only while the last one was full and all new to us."""
    rent_id = order.rent_id or ""
    report.call("getRentStatus")
    client = rt.provider_for(order.provider)
    status = client.get_rent_status(rent_id, page=0, size=POLL_PAGE_SIZE)
    messages, page_msgs = list(status.messages), list(status.messages)
    known: set[str] | None = None
    for page in range(1, MAX_POLL_PAGES):
        if len(page_msgs) < POLL_PAGE_SIZE or len(messages) >= int(status.quantity or 0):
            break
        known = rt.rents.sms_fingerprints(order.order_id) if known is None else known
        if any(sms_fingerprint(m.text, m.date, m.phone_from) in known for m in page_msgs):
            break
        report.call("getRentStatus")
        page_msgs = list(client.get_rent_status(rent_id, page=page, size=POLL_PAGE_SIZE).messages)
        messages += page_msgs
    return status, messages


def _apply_messages(rt: Runtime, order: RentOrder, messages: list[RentSms], report: SweepReport) -> int:
    """Each SMS (oldest first) through the same deduplicated step as the webhook, ``via: poll``."""
    new = 0
    for m in reversed(messages):
        res = rt.rents.receive_sms(order.order_id, rent_id=order.rent_id, text=m.text, phone_from=m.phone_from,
                                   date=m.date, via=Via.POLL)
        new += res.ok
    if new:
        report.did("rent_sms")
    return new


def _poll(rt: Runtime, order: RentOrder, report: SweepReport, breaker: Breaker) -> Outcome:
    """Reconcile SMS whose webhooks were lost, and notice a rent the provider ended."""
    try:
        status, messages = _read_status(rt, order, report)
    except perr.ProviderError as exc:
        if exc.transient:
            return _transient(rt, order, report, breaker, exc)
        log.error("rent order %s: poll failed with %s; re-armed", order.order_id, exc.label)
        return _backoff(rt, order, report, exc.label)
    _apply_messages(rt, order, messages, report)
    ended = _provider_ended(rt, order, status.state)
    if ended:
        return ended
    rt.rents.rearm(order.order_id, state=RentState.ACTIVE, due=rt.rent_config.after_poll(order, rt.clock()),
                   reset_fails=bool(order.fails))
    report.did("rent_poll")
    return Outcome.POLLED


def _provider_ended(rt: Runtime, order: RentOrder, state: ProviderRentState) -> Outcome | None:
    if state is ProviderRentState.FINISHED:
        rt.rents.finish(order.order_id, reason="provider_finished", rent_id=order.rent_id)
        return Outcome.FINISHED
    if state in (ProviderRentState.CANCELLED, ProviderRentState.REVOKED):
        reason = "revoked" if state is ProviderRentState.REVOKED else "provider_cancelled"
        rt.rents.cancel(order.order_id, reason=reason, rent_id=order.rent_id, side=_refund(rt, order))
        return Outcome.CANCELLED
    return None


def _close(rt: Runtime, order: RentOrder, report: SweepReport, breaker: Breaker, *, cancel: bool,
           reason: str) -> Outcome:
    """Finish (setRentStatus 1) or cancel (setRentStatus 2). A last poll first collects SMS whose webhooks were
    lost (after the end the provider answers STATUS_FINISH without messages)."""
    status: RentStatus | None
    try:
        status, messages = _read_status(rt, order, report)
    except perr.ProviderError as exc:
        if exc.transient:
            return _transient(rt, order, report, breaker, exc)
        status, messages = None, []
    _apply_messages(rt, order, messages, report)
    if status is not None and (ended := _provider_ended(rt, order, status.state)):
        return ended
    if cancel and messages:
        return _refused(rt, order, "cant_cancel")   # an SMS arrived: the provider would answer CANT_CANCEL
    rent_id = order.rent_id or ""
    try:
        report.call("setRentStatus")
        if cancel:
            rt.provider_for(order.provider).cancel_rent(rent_id)
        else:
            rt.provider_for(order.provider).finish_rent(rent_id)
    except perr.ProviderError as exc:
        outcome = close_outcome(exc)
        if outcome is CloseOutcome.FINISHED:
            cancel, reason = False, "provider_finished"
        elif outcome is CloseOutcome.CANCELLED:
            cancel, reason = True, "provider_cancelled"
        elif outcome is CloseOutcome.REFUSED:
            return _refused(rt, order, "cant_cancel")
        elif outcome is CloseOutcome.OUTAGE:
            return _transient(rt, order, report, breaker, exc)
        elif order.command:
            return _refused(rt, order, exc.label)
        else:
            # The end date passed: the rent is over whatever setRentStatus says (it was only a courtesy call).
            log.warning("rent order %s: setRentStatus 1 at the end date answered %s; finished anyway",
                        order.order_id, exc.label)
    if cancel:
        rt.rents.cancel(order.order_id, reason=reason, rent_id=order.rent_id, side=_refund(rt, order))
        report.did("rent_cancelled")
        return Outcome.CANCELLED
    rt.rents.finish(order.order_id, reason=reason, rent_id=order.rent_id)
    report.did("rent_finished")
    return Outcome.FINISHED


def _refused(rt: Runtime, order: RentOrder, error: str) -> Outcome:
    """The provider refused the command: emit nothing, forget the command, keep the reason (GET shows it)."""
    log.info("rent order %s: %s refused (%s)", order.order_id, order.command, error)
    due = None if order.state is not RentState.ACTIVE else rt.rent_config.after_poll(order, rt.clock())
    rt.rents.drop_command(order.order_id, order.state, error=error, due=due)
    return Outcome.REFUSED


# ---------------------------------------------------------------------------------------- prolongation
def _prolong(rt: Runtime, order: RentOrder, report: SweepReport) -> Outcome:
    """continueRentNumber, sent at most once per command (claimed by a field-level CAS first)."""
    hours = order.command_hours or 4
    rent_id = order.rent_id or ""
    provider = order.provider or rt.default_provider
    client = rt.provider_for(order.provider)
    try:  # its price first (a read): checked against the spend limits and reserved before the purchase
        report.call("getContinueRentPriceNumber")
        quote = client.get_continue_rent_price_number(rent_id, rent_time=hours)
    except perr.ProviderError as exc:
        return _refused(rt, order, "price_unknown" if exc.transient else exc.label)
    rid = f"{order.order_id}-prolong-{order.command_at or 0:.0f}"
    limits = rt.settings.provider_config(provider).limits
    if limits.any:
        if quote.price is None:
            return _refused(rt, order, "price_unknown")
        over = rt.ledger.reserve(provider, rid, quote.price, limits, now=rt.clock(),
                                 hold_for=3 * rt.rent_config.buying_stale)
        if over:
            log.info("rent order %s: prolonging for %s is over the %s limit", order.order_id, quote.price, over)
            return _refused(rt, order, "budget_exceeded")
    if not rt.rents.mark_prolonging(order.order_id, order.state).ok:
        return Outcome.CLAIMED
    try:
        report.call("continueRentNumber")
        rent = client.continue_rent_number(rent_id, rent_time=hours)
    except perr.ProviderError as exc:
        # A purchase: an ambiguous failure is not repeated; downstream may ask again (GET shows the error).
        never_sent = getattr(exc, "possibly_processed", None) is False
        if not exc.transient or never_sent:
            rt.ledger.release(provider, rid)  # refused: nothing charged (an ambiguous one's reservation expires)
        error = exc.label if not exc.transient or never_sent else "prolong_unconfirmed"
        return _refused(rt, replace(order, command=PROLONGING), error)
    now = rt.clock()
    if str(rent.rent_id) == order.rent_id and order.state is RentState.ACTIVE:
        base = max(order.end_at or now, now)
        end_at = rent_end_at(rent.end_date, base, hours) if getattr(rent.end_date, "tzinfo", None) \
            else base + hours * 3600
        rt.rents.prolonged(order.order_id, rent_id=rent_id, provider=provider, hours=hours,
                           end_date=_end_text(rent.end_date), end_at=end_at,
                           cost=_text(quote.price), currency=quote.currency, paid=micros(quote.price),
                           side=rt.ledger.charged(provider, rid, order.service, order.country, quote.price, now))
        return Outcome.PROLONGED
    if order.state is RentState.ACTIVE:   # the provider had already ended it: a re-order under a new id
        rt.rents.finish(order.order_id, reason="provider_finished", rent_id=order.rent_id, keep_command=True)
    # a new rent, charged as one (its price is the one quoted for the prolongation)
    res = rt.rents.reordered(order.order_id, provider=provider, old_rent_id=order.rent_id,
                             previous=order.previous_rent_ids, rent_id=str(rent.rent_id), phone=str(rent.phone),
                             end_date=_end_text(rent.end_date), end_at=rent_end_at(rent.end_date, now, hours),
                             cost=_text(quote.price), currency=quote.currency, paid=micros(quote.price),
                             side=rt.ledger.bought(provider, rid, order.service, order.country, quote.price, now))
    if res.ok:
        _replay_early(rt, order.provider or rt.default_provider, str(rent.rent_id))
    return Outcome.REORDERED if res.ok else Outcome.STALE


def _prolong_in_flight(rt: Runtime, order: RentOrder) -> Outcome:
    """A prolongation claimed but not answered: if its worker died, do NOT send it again; report it."""
    started = order.command_at or order.created_at
    if rt.clock() - started < rt.rent_config.buying_stale:
        rt.rents.rearm(order.order_id, state=order.state, due=started + rt.rent_config.buying_stale)
        return Outcome.IN_FLIGHT
    return _refused(rt, order, "prolong_unconfirmed")


# ---------------------------------------------------------------------------------------- commands
def rent_command(rt: Runtime, order_id: str, name: RentCommand) -> Outcome:
    """Carry out a recorded downstream command now (the sweeper would, at the next beat)."""
    order = rt.rents.get(order_id)
    if order is None:
        return Outcome.MISSING
    if not order.command:
        return Outcome.NO_COMMAND
    return advance_rent(rt, order_id, order=order)
