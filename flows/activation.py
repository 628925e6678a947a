"""The activation flow: buy a number, follow it, finish or cancel it; each provider call then one transition.

Purchases use getNumberV2 with our own stable orderId, never repeated blindly: after a crash mid-call the same
orderId is sent again and ORDER_ALREADY_EXISTS recovers the activation it bought (docs/handler-api.md,
Buying a number).
"""
from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timezone
from decimal import Decimal
from typing import Iterable, Mapping, cast

from config import domain
from lifecycle.activation import Command, Order, State
from lifecycle.activation.decisions import (CancelOutcome, Verdict, cancel_outcome, ending, finish_is_closed, refunds,
                                            next_step, provider_order_id, purchase_decision)
from lifecycle.activation.reconcile import Action, Observation, decide, observe_listed, observe_status
from lifecycle.activation.lifetime import NO_TIMES, ProviderTimes, provider_times
from lifecycle.activation.store import state_of
from lifecycle.cas import Side
from lifecycle.inbox import WebhookKind
from lifecycle.listing import listing_may_lag
from lifecycle.money import from_micros, parse_amount
from lifecycle.outbox.events import EventType, Via
from lifecycle.routing import Candidate, Quote, Routing, candidates
from lifecycle.steps import Step
from provider import errors as perr
from provider.errors import ErrorKind
from provider.models import ActivationState, ActiveActivation

from .balance import affordable, no_balance
from .inbox import auto_finish
from .names import TaskName
from .outcomes import Outcome
from .report import Breaker, SweepReport, back_off
from .runtime import Runtime

log = logging.getLogger("otpflow.flows")


# ---------------------------------------------------------------------------------------- purchase
def place_order(rt: Runtime, order_id: str) -> Outcome:
    """Buy the number for a stored order: route it to a provider, ONE purchase request there, one transition;
    on a refusal, the next candidate at once (fail-over), until one sells or none is left.

    Where the request goes is recorded before it is sent (``choose_provider``), so a re-delivered task (the
    worker died mid-call) asks the SAME provider again with the SAME orderId, and ORDER_ALREADY_EXISTS recovers
    the activation it bought: never a second purchase. A provider whose purchase is not idempotent is not asked
    again: its activations are searched instead (docs/handler-api.md, Buying a number).
    """
    store = rt.activations
    order = store.get(order_id)
    if order is None:
        return Outcome.MISSING
    if order.command is Command.CANCEL and order.state in (State.PENDING, State.BUYING) and not order.in_flight:
        if store.cancel_unbought(order_id).ok:  # nothing bought, nothing in flight: no purchase at all
            return Outcome.CANCELLED
    if order.state is State.PENDING:
        res = store.start_buying(order_id)
        if not res.ok and res.state is not State.BUYING:
            return Outcome.STALE
        order = store.get(order_id) or order
    elif order.state is not State.BUYING:
        return Outcome.STALE
    for _ in range(len(rt.provider_names) * max(1, len(order.rotation)) + 1):
        if order.provider is None:
            chosen = _choose(rt, order)
            if isinstance(chosen, Outcome):
                return chosen
            order = chosen
        elif order.in_flight and not rt.dialect(order.provider).idempotent_purchase:
            # a request of this order may have reached a provider that does not deduplicate: look, never re-send
            return recover_purchase(rt, order, provider_order_id(order))
        outcome = _buy(rt, order)
        if outcome is not None:
            return outcome
        fresh = store.get(order_id)
        if fresh is None or fresh.state is not State.BUYING:
            return Outcome.STALE
        order = fresh
    return Outcome.BACKOFF


def _candidates(rt: Runtime, order: Order) -> list[Candidate]:
    """The places this order may still buy from, best first (routing and the order's own preference)."""
    preference = [p for p in (order.preference or rt.provider_names) if p in rt.provider_names]
    # a replacement tries first the providers whose numbers have not failed this order yet
    preference.sort(key=lambda p: p in order.failed_at)
    routing = order.routing or rt.settings.routing
    skip = frozenset(k.split("=", 1)[0] for k in order.skip)
    quotes = None
    if routing is Routing.CHEAPEST:
        pairs = [Candidate(p, c) for c in order.rotation for p in preference]
        quotes = rt.quotes.get_many(order.service, pairs)
        if any(q is None for q in quotes.values()):
            _schedule_quotes(rt, order)
    return candidates(preference, order.rotation, routing, quotes=quotes, skip=skip, max_price=order.max_price)


def _schedule_quotes(rt: Runtime, order: Order) -> None:
    """Missing or stale prices: one refresh task per service and country per TTL (the order does not wait)."""
    for country in order.rotation:
        if rt.quotes.claim_refresh(order.service, country):
            rt.publish(TaskName.REFRESH_QUOTES, {"service": order.service, "country": country})


def _choose(rt: Runtime, order: Order) -> Order | Outcome:
    """Record the next candidate whose provider is up, has a free slot (MAX_ACTIVE) and whose spend limits leave
    room for this purchase (slot claimed and price reserved first), before its request is sent; or end this
    attempt."""
    blocked = over_budget = unpriced = full = in_flight = False
    for cand in _candidates(rt, order):
        if not rt.health.allow(cand.provider):
            blocked = True
            continue
        if not affordable(rt, order, cand):  # its last balance cannot pay: not asked (no NO_BALANCE collected)
            order = no_balance(order)
            continue
        if not _claim_slot(rt, order, cand.provider):
            full = True
            continue
        held = _reserve(rt, order, cand)
        if held is not None:
            rt.capacity.release(cand.provider, order.order_id)
            over_budget |= held == "budget"
            unpriced |= held == "unpriced"
            # other purchases' reservations fill the limit: they settle in seconds (bought, or given back by a
            # purchase that did not happen or lost a race), so wait for them instead of failing on a guess
            in_flight |= held == "budget" and rt.ledger.holds_others(cand.provider, _rid(order, order.calls + 1))
            continue
        res = rt.activations.choose_provider(order.order_id, provider=cand.provider, country=cand.country,
                                             calls=order.calls + 1)
        if not res.ok:
            _release(rt, order, cand.provider, _rid(order, order.calls + 1))
            return Outcome.STALE
        return rt.activations.get(order.order_id) or order
    return _attempt_exhausted(rt, order, blocked=blocked, over_budget=over_budget, unpriced=unpriced, full=full,
                              in_flight=in_flight)


def _claim_slot(rt: Runtime, order: Order, provider: str) -> bool:
    """A slot among the provider's MAX_ACTIVE open numbers (always, when it has no such limit)."""
    limit = domain.max_active(rt.settings, provider)
    if limit is None:
        return True
    if rt.capacity.claim(provider, order.order_id, limit, now=rt.clock(),
                         hold_for=3 * rt.activation_config.buying_stale):
        return True
    log.info("order %s: %s has its %d numbers open; not asked", order.order_id, provider, limit)
    return False


def _release(rt: Runtime, order: Order, provider: str, poid: str) -> None:
    """Nothing was bought: the purchase's reservation and its slot come back."""
    rt.ledger.release(provider, poid)
    rt.capacity.release(provider, order.order_id)


def _rid(order: Order, calls: int) -> str:
    """The reservation of a purchase request is named like the request's orderId."""
    return provider_order_id(replace(order, calls=calls))


def _price(rt: Runtime, order: Order, cand: Candidate) -> Decimal | None:
    """What a purchase at ``cand`` may cost at most: the order's cap, else MAX_PRICE, else the cached quote."""
    if order.max_price is not None:
        return order.max_price
    if rt.settings.max_price is not None:
        return rt.settings.max_price
    quote = rt.quotes.get_many(order.service, [cand]).get(cand)
    return quote.cost if quote is not None else None


def _reserve(rt: Runtime, order: Order, cand: Candidate) -> str | None:
    """Reserve the purchase's price against the provider's spend limits: None when it may go ahead, ``budget``
    when a limit has no room for it, ``unpriced`` when no price is known to reserve (prices are then read)."""
    limits = rt.settings.provider_config(cand.provider).limits
    if not limits.any:
        return None
    amount = _price(rt, order, cand)
    if amount is None:
        _schedule_quotes(rt, order)
        return "unpriced"
    over = rt.ledger.reserve(cand.provider, _rid(order, order.calls + 1), amount, limits, now=rt.clock(),
                             hold_for=3 * rt.activation_config.buying_stale)
    if over:
        log.info("order %s: %s has no room for %s under its %s limit", order.order_id, cand.provider, amount, over)
        return "budget"
    return None


def _attempt_exhausted(rt: Runtime, order: Order, *, blocked: bool, over_budget: bool = False,
                       unpriced: bool = False, full: bool = False, in_flight: bool = False) -> Outcome:
    """No candidate is left for this attempt: wait for a provider to come back, try again later (stock may
    return, prices be read), or fail with the reason the last refusal gave (``budget_exceeded`` when only the
    spend limits stood in the way: nothing was bought)."""
    store = rt.activations
    config = rt.activation_config
    kinds = {k.split("=", 1)[1] for k in order.skip if "=" in k}
    if unpriced and not kinds & _MAY_CHANGE:
        store.purchase_backoff(order.order_id, reason="price_unknown", delay=config.order_retry_delay)
        return Outcome.BACKOFF
    if full and not kinds & _MAY_CHANGE:  # waits in Redis (its deadline) until a number there ends
        until = order.until if order.until is not None else order.created_at + config.order_timeout
        if rt.clock() >= until:
            store.fail(order.order_id, reason="providers_full")
            return Outcome.FAILED
        store.purchase_backoff(order.order_id, reason="providers_full", delay=config.order_retry_delay, sent=False)
        return Outcome.BACKOFF
    if over_budget and in_flight and not blocked and not kinds & _MAY_CHANGE:
        until = order.until if order.until is not None else order.created_at + config.order_timeout
        if rt.clock() < until:
            store.purchase_backoff(order.order_id, reason="budget_in_flight", delay=config.order_retry_delay,
                                   sent=False)
            return Outcome.BACKOFF
    if over_budget and not blocked and not kinds & _MAY_CHANGE:
        store.fail(order.order_id, reason="budget_exceeded")
        return Outcome.FAILED
    if blocked:
        if order.fails + 1 >= config.max_transient_fails:
            store.fail(order.order_id, reason="provider_unavailable")
            return Outcome.FAILED
        store.purchase_backoff(order.order_id, reason="providers_down", delay=rt.settings.provider_cooldown)
        return Outcome.BACKOFF
    if kinds & _MAY_CHANGE:
        reason = order.reason or "no_numbers"
        if order.attempts + 1 >= config.order_max_attempts:
            store.fail(order.order_id, reason=reason)
            return Outcome.FAILED
        store.retry_purchase_later(order.order_id, reason=reason, delay=config.order_retry_delay)
        return Outcome.RETRY_LATER
    store.fail(order.order_id, reason=order.reason or "no_provider")
    return Outcome.FAILED


#: refusals that may not hold a little later (stock, capacity, an outage): the attempt is tried again
_MAY_CHANGE = frozenset({ErrorKind.NO_STOCK.value, ErrorKind.CAPACITY.value, ErrorKind.RATE_LIMITED.value,
                         ErrorKind.OUTAGE.value, ErrorKind.UNREADABLE.value})


def _buy(rt: Runtime, order: Order) -> Outcome | None:
    """One purchase request at ``order.provider``; None: it refused, the next candidate is to be tried."""
    provider = order.provider or rt.default_provider
    dialect = rt.dialect(provider)
    client = rt.provider_for(provider)
    poid = provider_order_id(order)
    cap = order.max_price if order.max_price is not None else rt.settings.max_price
    try:
        if dialect.has_number_v2:
            act = client.get_number_v2(order.service, country=order.country,
                                       order_id=poid if dialect.idempotent_purchase else None,
                                       max_price=cap if dialect.max_price_supported else None,
                                       operator=order.operator, activation_type=order.activation_type,
                                       forward=order.forward)
        else:
            sent_cap = cap if dialect.max_price_supported else None
            act = client.get_number(order.service, country=order.country, max_price=sent_cap,
                                    operator=order.operator, activation_type=order.activation_type,
                                    forward=order.forward,
                                    # a profile that reads maxPrice only with its currency (SMSHub) gets both
                                    currency=dialect.default_currency if sent_cap is not None
                                    and dialect.max_price_needs_currency else None)
    except perr.ProviderError as exc:
        return _purchase_failed(rt, order, poid, exc)
    rt.health.succeeded(provider)
    if cap is not None and act.cost is not None and act.cost > cap:
        log.error("order %s: %s charged %s over the cap %s (the dialect may ignore maxPrice)", order.order_id,
                  provider, act.cost, cap)
    return _assigned(rt, order, str(act.activation_id), str(act.phone), act.cost,
                     act.currency if act.currency is not None else dialect.default_currency,
                     times=provider_times(act, received=rt.clock()))


def _assigned(rt: Runtime, order: Order, activation_id: str, phone: str, cost: object,
              currency: int | None = None, times: ProviderTimes = NO_TIMES, bought_at: float | None = None) -> Outcome:
    store = rt.activations
    provider = order.provider or rt.default_provider
    rid = provider_order_id(order)
    charged = parse_amount(cost)
    if charged is None:  # the provider did not say: count what was reserved for it (never less than spent)
        charged = from_micros(cast("str | None", rt.redis.hget(rt.keys.reserved(provider), rid)))
    res = store.assign_number(order.order_id, provider=provider, activation_id=activation_id, phone=phone,
                              cost=None if cost is None else str(cost),
                              currency=currency if currency is not None else rt.dialect(provider).default_currency,
                              attempt=order.numbers + 1, repeated=phone in order.bad_phones,
                              side=(*rt.ledger.bought(provider, rid, order.service, order.country, charged,
                                                      rt.clock()), rt.capacity.opened(provider, order.order_id)),
                              end_at=times.end_at, cancel_by=times.cancel_by, bought_at=bought_at)
    if res.ok:
        log.info("order %s: number assigned (activation %s)", order.order_id, activation_id)
        _replay_early(rt, provider, activation_id)
        fresh = store.get(order.order_id)
        if fresh is not None and fresh.command:
            advance(rt, order.order_id)
        return Outcome.WAITING
    current = store.get(order.order_id)
    if current is not None and current.activation_id == activation_id:
        return Outcome.STALE  # a racing re-delivery assigned it first
    # We hold an activation the order no longer wants (it failed/cancelled meanwhile): release it.
    log.error("order %s: activation %s bought but the order is %s; cancelling it", order.order_id, activation_id,
              res.raw_state)
    try:
        rt.provider_for(provider).cancel_activation(activation_id)
    except perr.ProviderError as exc:
        log.warning("order %s: could not cancel orphan activation %s (%s); the provider refunds it if no code "
                    "arrives", order.order_id, activation_id, exc.label)
    return Outcome.ORPHAN


def _replay_early(rt: Runtime, provider: str, activation_id: str) -> None:
    """Webhooks drained while the order was still ``buying`` were held; apply them now (``via: webhook``),
    instead of waiting POLL_AFTER for the poll. A failure here only delays them to that poll."""
    try:
        report = rt.consumer.replay_held(WebhookKind.ACTIVATION, provider, activation_id)
    except Exception:  # the number is stored; the poll reconciles what the replay missed
        log.exception("replay of early webhooks for activation %s failed; the poll will catch up", activation_id)
        return
    auto_finish(rt, report)


def _purchase_failed(rt: Runtime, order: Order, poid: str, exc: perr.ProviderError) -> Outcome | None:
    """What a refused or failed purchase request means: the next candidate (None), a retry here, or the end."""
    provider = order.provider or rt.default_provider
    if exc.transient:
        rt.health.failed(provider, retry_after=getattr(exc, "retry_after", None))
    decision = purchase_decision(exc, order, rt.activation_config)
    log.info("order %s: purchase at %s: %s -> %s", order.order_id, provider, exc.label, decision.verdict.value)
    store = rt.activations
    if decision.verdict is Verdict.RECOVER:
        return recover_purchase(rt, order, poid)
    reason = decision.reason
    if isinstance(exc, perr.WrongMaxPrice) and exc.min_price is not None:
        reason = f"{reason}:{exc.min_price}"
    never_sent = getattr(exc, "possibly_processed", None) is False or exc.kind is ErrorKind.RATE_LIMITED
    ambiguous = (exc.transient and not never_sent) or exc.kind is ErrorKind.UNREADABLE
    others = [c for c in _candidates(rt, order) if c.provider != provider]
    if (exc.transient or ambiguous) and not others:
        # the only place left: ask it again later with the same orderId (it recovers a purchase that happened);
        # the reservation stays held for it
        if decision.verdict is not Verdict.BACKOFF:
            if never_sent:
                _release(rt, order, provider, poid)
            store.fail(order.order_id, reason=reason)
            return Outcome.FAILED
        store.purchase_backoff(order.order_id, reason=reason, delay=decision.delay, sent=not never_sent)
        return Outcome.BACKOFF
    if ambiguous and rt.dialect(provider).idempotent_purchase:
        _unsettled(rt, provider, poid, order.order_id)  # its reservation expires on its own
    elif not ambiguous:
        _release(rt, order, provider, poid)  # refused, or never sent: nothing was bought
    key = f"{Candidate(provider, order.country).key}={exc.kind.value}"
    res = store.skip_candidate(order.order_id, skip=order.skip | {key}, before=order.skip, reason=reason)
    return None if res.ok else Outcome.STALE


def _unsettled(rt: Runtime, provider: str, poid: str, order_id: str) -> None:
    """A purchase request whose outcome is unknown, left behind by a fail-over: the sweeper looks for it at the
    provider once it answers again, and cancels what it finds (refunded, since no code was asked for)."""
    log.warning("order %s: purchase at %s unconfirmed; moving on, the sweeper will look for it there", order_id,
                provider)
    now = rt.clock()
    rt.redis.zadd(rt.keys.unsettled, {f"{provider}|{poid}|{order_id}|{int(now)}": now + rt.settings.provider_cooldown})


def recover_purchase(rt: Runtime, order: Order, poid: str) -> Outcome:
    """ORDER_ALREADY_EXISTS (or a maybe-made purchase at a provider that must not be asked again): find the
    activation our orderId bought in getActiveActivations. A listing that shows none is read again while the
    purchase is younger than LIST_LAG (the list may lag it); none after that, or several: ``order_unrecoverable``."""
    store = rt.activations
    config = rt.activation_config
    provider = order.provider or rt.default_provider
    listed = True
    try:
        rows = list(rt.provider_for(provider).get_active_activations())
    except perr.NotSupported:
        rows, listed = [], False
    except perr.TransientError as exc:
        store.purchase_backoff(order.order_id, reason=exc.label, delay=config.backoff.delay(order.fails))
        return Outcome.BACKOFF
    match = [r for r in rows if r.order_id == poid]
    if not match:
        match = _unclaimed_candidates(rt, order, [r for r in rows if not r.order_id])
    if len(match) == 1:
        row = match[0]
        # the listing states no end: the number is dated from when its purchase was first sent, the earliest it
        # can have been bought, so its wait ends no later than the provider's (however late the recovery)
        return _assigned(rt, order, str(row.activation_id), str(row.phone or ""), row.cost, row.currency,
                         bought_at=order.buying_at)
    if not match and listed and listing_may_lag(order, rt.clock(), config.list_lag) \
            and order.fails + 1 < config.max_transient_fails:
        log.info("order %s: %s lists no activation of orderId %s yet; looking again", order.order_id, provider, poid)
        store.purchase_backoff(order.order_id, reason="not_listed_yet", delay=config.backoff.delay(order.fails))
        return Outcome.BACKOFF
    log.error("order %s: ORDER_ALREADY_EXISTS but %d matching activations; failing it", order.order_id, len(match))
    store.fail(order.order_id, reason="order_unrecoverable")
    return Outcome.FAILED


def _unclaimed_candidates(rt: Runtime, order: Order, rows: list[ActiveActivation]) -> list[ActiveActivation]:
    """Rows without an orderId that could be ours: same service/country, bought after we started, not claimed."""
    start = order.purchase_began
    out = []
    for row in rows:
        if row.service and row.service != order.service:
            continue
        if order.country is not None and row.country not in (None, "", str(order.country)):
            continue
        when = row.activation_time
        if isinstance(when, datetime) and when.tzinfo is not None and \
                when.astimezone(timezone.utc).timestamp() < start - 60:
            continue
        out.append(row)
    claimed = rt.activations.orders_for_activations(order.provider or rt.default_provider,
                                                     (str(r.activation_id) for r in out))
    return [r for r in out if not claimed.get(str(r.activation_id))]


# ---------------------------------------------------------------------------------------- one order's step
def advance(rt: Runtime, order_id: str, *, order: Order | None = None,
            bulk: Mapping[tuple[str, str], Observation] | None = None, breaker: Breaker | None = None,
            report: SweepReport | None = None) -> Outcome:
    """Do whatever is due for one order (sweeper and command task): re-drive, poll, cancel, finish, retry."""
    order = order if order is not None else rt.activations.get(order_id)
    report = report or SweepReport()
    breaker = breaker or Breaker()
    store = rt.activations
    nxt = next_step(order, rt.clock(), rt.activation_config, outage=breaker.open)
    if nxt.step is Step.DROP or order is None:
        store.drop_deadline(order_id)
        return Outcome.DROPPED
    if nxt.step is Step.CANCEL_UNBOUGHT:
        if not store.cancel_unbought(order_id, reason=nxt.reason or "command").ok:
            return Outcome.STALE  # a request went out meanwhile: its number is cancelled once it is recorded
        report.did("cancel")
        return Outcome.CANCELLED
    if nxt.step is Step.BUY:
        store.rearm(order_id, state=order.state, due=nxt.due or rt.clock())
        rt.publish(TaskName.PLACE_ORDER, {"order_id": order_id})
        report.did("place_order")
        return Outcome.PLACE_ORDER
    if nxt.step is Step.REARM:
        store.rearm(order_id, state=order.state, due=nxt.due or rt.clock())
        return Outcome.NO_ACTIVATION if not order.activation_id else Outcome.REARMED
    if nxt.step is Step.WAIT_OUTAGE:
        return _backoff(rt, order, report, "breaker_open", count=False)
    if nxt.step is Step.CANCEL:
        return _cancel(rt, order, report, breaker, reason=nxt.reason or "timeout")
    if nxt.step is Step.FINISH:
        return _finish(rt, order, report, breaker, reason=nxt.reason or "timeout")
    if nxt.step is Step.RETRY:
        return _retry(rt, order, report, breaker)
    return _poll(rt, order, bulk, report, breaker)


def _backoff(rt: Runtime, order: Order, report: SweepReport, why: str, *, count: bool = True) -> Outcome:
    log.debug("order %s: backoff (%s)", order.order_id, why)
    return back_off(rt.activations, order, rt.activation_config.backoff, rt.clock(), report, count=count)


def _transient(rt: Runtime, order: Order, report: SweepReport, breaker: Breaker,
               exc: perr.ProviderError) -> Outcome:
    breaker.trip()
    log.warning("order %s: provider unavailable (%s); re-armed with backoff", order.order_id, exc.label)
    return _backoff(rt, order, report, exc.label)


def _observe_single(rt: Runtime, order: Order, report: SweepReport) -> Observation:
    aid = order.activation_id or ""
    if order.is_call:
        report.call("getStatusV2")
        v2 = rt.provider_for(order.provider).get_status_v2(aid)
        text = (v2.sms.text if v2.sms else None) or (v2.call.text if v2.call else None)
        state = v2.state
        if v2.code and state is not ActivationState.CANCELLED:
            state = ActivationState.CODE_RECEIVED
        return observe_status(state, v2.code, text)
    report.call("getStatus")
    st = rt.provider_for(order.provider).get_status(aid)
    return observe_status(st.state, st.code)


def _poll(rt: Runtime, order: Order, bulk: Mapping[tuple[str, str], Observation] | None,
          report: SweepReport, breaker: Breaker) -> Outcome:
    """Reconcile with the provider: the bulk list when we have it (and it covers us), else getStatus(V2)."""
    key = (order.provider or rt.default_provider, order.activation_id or "")
    listed = bulk.get(key) if bulk is not None and order.activation_id else None
    try:
        obs = listed if listed is not None and not order.is_call else _observe_single(rt, order, report)
    except perr.ProviderError as exc:
        if exc.kind is perr.ErrorKind.CLOSED:
            obs = observe_status(ActivationState.CANCELLED)
        elif exc.transient:
            return _transient(rt, order, report, breaker, exc)
        else:
            log.error("order %s: poll failed with %s; re-armed", order.order_id, exc.label)
            return _backoff(rt, order, report, exc.label)
    return _apply_observation(rt, order, obs, report, breaker)


def _apply_observation(rt: Runtime, order: Order, obs: Observation, report: SweepReport,
                       breaker: Breaker) -> Outcome:
    store = rt.activations
    decision = decide(order, obs)
    if decision.action is Action.CODE:
        for code in decision.codes:
            store.receive_code(order.order_id, code=code, via=Via.POLL, text=decision.text,
                               activation_id=order.activation_id)
        report.did("code")
        if rt.activation_config.auto_finish:
            fresh = store.get(order.order_id)
            if fresh is not None and fresh.state is State.CODE_RECEIVED:
                return _finish(rt, fresh, report, breaker, reason="auto")
        return Outcome.CODE
    if decision.action is Action.CANCELLED:
        report.did("cancelled")
        return _end_number(rt, order, finished=False, reason=decision.reason or "provider_closed")
    if decision.action is Action.FINISHED:
        report.did("finished")
        return _end_number(rt, order, finished=True, reason=decision.reason or "provider_closed")
    store.rearm(order.order_id, state=order.state, due=rt.activation_config.after_poll(order, rt.clock()),
                reset_fails=bool(order.fails), pipe=report.pipe)
    report.did("poll")
    return Outcome.POLLED


def _cancel(rt: Runtime, order: Order, report: SweepReport, breaker: Breaker, *, reason: str) -> Outcome:
    """setStatus 8 (or the dialect's cancel). Too early: try again after the two-minute mark; closed: cancelled."""
    store = rt.activations
    try:
        report.call("cancel")
        rt.provider_for(order.provider).cancel_activation(order.activation_id or "")
    except perr.ProviderError as exc:
        outcome = cancel_outcome(exc)
        if outcome is CancelOutcome.TOO_EARLY:
            store.rearm(order.order_id, state=State.WAITING,
                        due=rt.activation_config.after_early_cancel_denied(order, rt.clock()))
            report.did("early_cancel_denied")
            return Outcome.EARLY_CANCEL_DENIED
        if outcome is CancelOutcome.WINDOW_CLOSED:
            reason = "free_cancellation_expired"
        elif outcome is CancelOutcome.HAS_CODE:
            # A code arrived meanwhile (webhook lost or still in flight): look it up rather than cancel.
            try:
                obs = _observe_single(rt, order, report)
            except perr.ProviderError as again:
                if again.transient:
                    return _transient(rt, order, report, breaker, again)
                return _backoff(rt, order, report, "bad_status")
            return _apply_observation(rt, order, obs, report, breaker)
        elif outcome is CancelOutcome.OUTAGE:
            return _transient(rt, order, report, breaker, exc)
        elif outcome is CancelOutcome.REFUSED:
            log.error("order %s: cancel failed with %s; re-armed", order.order_id, exc.label)
            return _backoff(rt, order, report, exc.label)
    report.did("cancel")
    return _end_number(rt, order, finished=False, reason=reason)


def _finish(rt: Runtime, order: Order, report: SweepReport, breaker: Breaker, *, reason: str) -> Outcome:
    """setStatus 6 for an activation that has its code (so it is not left open)."""
    try:
        report.call("finish")
        rt.provider_for(order.provider).finish_activation(order.activation_id or "")
    except perr.ProviderError as exc:
        if finish_is_closed(exc):
            reason = "provider_closed"
        elif exc.transient:
            return _transient(rt, order, report, breaker, exc)
        else:
            log.error("order %s: finish failed with %s; re-armed", order.order_id, exc.label)
            return _backoff(rt, order, report, exc.label)
    report.did("finish")
    return _end_number(rt, order, finished=True, reason=reason)


def _money(rt: Runtime, order: Order, *, refunded: bool, completed: bool) -> tuple[Side, ...]:
    """What ending this number does to the books: its slot at the provider is free (MAX_ACTIVE); a cancelled
    number's cost is refunded by the provider; a completed order counts one code and its time from purchase to
    code."""
    if not order.activation_id:
        return ()
    provider = order.provider or rt.default_provider
    out: tuple[Side, ...] = (rt.capacity.closed(provider, order.order_id),)
    if refunded:
        out += rt.ledger.refunded(provider, order.service, order.country, parse_amount(order.cost),
                                  order.number_at or rt.clock())
    if completed and order.number_at is not None:
        out += rt.ledger.completed(provider, order.service, order.country,
                                   max(0.0, (order.code_at or rt.clock()) - order.number_at))
    return out


def _end_number(rt: Runtime, order: Order, *, finished: bool, reason: str) -> Outcome:
    """The current number is closed at the provider: buy the next one (a replacement), or end the order with its
    one terminal event."""
    store = rt.activations
    end = ending(order, finished=finished, reason=reason, now=rt.clock(), config=rt.activation_config)
    refunded = refunds(finished=finished, reason=reason)
    if end.replace and order.activation_id:
        res = store.replace_number(order.order_id, state=order.state, provider=order.provider,
                                   activation_id=order.activation_id, phone=order.phone, finished=finished,
                                   reason=reason, bad_phones=order.bad_phones, failed_at=order.failed_at,
                                   side=_money(rt, order, refunded=refunded, completed=False), refunded=refunded)
        if not res.ok:
            return Outcome.STALE
        log.info("order %s: number %s %s (%s); buying the next one", order.order_id, order.activation_id,
                 "finished" if finished else "cancelled", reason)
        rt.publish(TaskName.PLACE_ORDER, {"order_id": order.order_id})
        return Outcome.REPLACED
    side = _money(rt, order, refunded=refunded, completed=end.final is EventType.ORDER_COMPLETED)
    if finished:
        res = store.finish(order.order_id, activation_id=order.activation_id, reason=reason,
                           provider=order.provider, final=end.final, final_reason=end.final_reason, side=side)
    else:
        res = store.cancel(order.order_id, activation_id=order.activation_id, reason=reason,
                           provider=order.provider, final=end.final, final_reason=end.final_reason, side=side,
                           refunded=refunded)
    if not res.ok:
        return Outcome.STALE
    return Outcome.FINISHED if finished else Outcome.CANCELLED


def _retry(rt: Runtime, order: Order, report: SweepReport, breaker: Breaker) -> Outcome:
    """setStatus 3 (downstream said the code was wrong): wait for another code."""
    store = rt.activations
    try:
        report.call("retry")
        rt.provider_for(order.provider).request_another_sms(order.activation_id or "")
    except perr.ProviderError as exc:
        if exc.transient:
            return _transient(rt, order, report, breaker, exc)
        log.warning("order %s: another SMS refused (%s); the retry command is dropped", order.order_id, exc.label)
        timeout = rt.activation_config.timeout_at(order)
        due = rt.clock() if rt.activation_config.auto_finish or timeout is None else timeout
        store.drop_command(order.order_id, state=order.state, due=due)
        return Outcome.RETRY_REFUSED
    store.retry_requested(order.order_id)
    report.did("retry")
    return Outcome.WAITING_RETRY


# ---------------------------------------------------------------------------------------- bulk listing
BULK_MIN = 2  #: poll with the bulk list only when at least this many activations need a look


def bulk_listing(rt: Runtime, orders: Iterable[Order | None], report: SweepReport,
                 listed: set[str] | None = None) -> dict[tuple[str, str], Observation]:
    """One getActiveActivations per provider that has at least BULK_MIN SMS activations due for a poll (where the
    dialect has it): what each row says, by (provider, activation id). ``listed``: providers already asked during
    this sweep (an earlier batch); they are not asked again, and the ones asked now are added to it.

    A sweep keeps its listings until it ends, so each row is reduced at once to the observation it gives (most
    rows share one "still waiting"): about 1.3 KB of parsed row per active activation becomes about 0.15 KB
    (``bench/sweep.py`` prints the figure)."""
    due: dict[str, int] = {}
    for o in orders:
        if o is not None and o.state in (State.WAITING, State.WAITING_RETRY) and not o.is_call and o.activation_id:
            name = o.provider or rt.default_provider
            due[name] = due.get(name, 0) + 1
    out: dict[tuple[str, str], Observation] = {}
    for name, count in due.items():
        if count < BULK_MIN or not rt.dialect(name).has_active_activations:
            continue
        if listed is not None:
            if name in listed:
                continue
            listed.add(name)
        try:
            report.call("getActiveActivations")
            rows = rt.provider_for(name).get_active_activations()
        except perr.ProviderError as exc:
            if exc.kind is not perr.ErrorKind.UNSUPPORTED:
                log.warning("sweep: getActiveActivations at %s failed (%s); falling back to getStatus", name,
                            exc.label)
            continue
        out.update({(name, str(r.activation_id)): observe_listed(r.codes, r.text) for r in rows})
    return out


# ---------------------------------------------------------------------------------------- commands
def command(rt: Runtime, order_id: str, name: Command) -> Outcome:
    """A downstream command: record it (if the API did not already) and carry it out now."""
    order = rt.activations.get(order_id)
    if order is None:
        return Outcome.MISSING
    if order.command != name:
        res = rt.activations.request_command(order_id, Command(name))
        if not res.ok:
            return Outcome.CONFLICT
    return advance(rt, order_id)


# ---------------------------------------------------------------------------------------- finishing a drained batch
#: provider calls in flight at once when finishing a batch (below the HTTP connection pool's 10)
FINISH_CONCURRENCY = 8


def finish_coded(rt: Runtime, order_ids: Iterable[str]) -> dict[Outcome, int]:
    """Finish a batch of orders that got their code, overlapping the provider calls on a small thread pool.

    Each order still goes through :func:`advance` (so a command or a state change that happened meanwhile wins),
    and each step is a compare-and-set, so a re-delivered task or a racing sweeper cannot finish twice.
    """
    from collections import Counter
    from concurrent.futures import ThreadPoolExecutor

    ids = list(dict.fromkeys(order_ids))
    if not ids:
        return {}
    orders = rt.activations.get_many(ids)
    breaker = Breaker()
    rt.warm()

    def one(order_id: str) -> Outcome:
        try:
            return advance(rt, order_id, order=orders.get(order_id), breaker=breaker)
        except Exception:  # the deadline (due now) makes the sweeper finish it
            log.exception("finishing order %s failed; the sweeper will retry", order_id)
            return Outcome.FAILED

    if len(ids) == 1:
        outcomes = [one(ids[0])]
    else:
        with ThreadPoolExecutor(max_workers=min(FINISH_CONCURRENCY, len(ids)), thread_name_prefix="finish") as pool:
            outcomes = list(pool.map(one, ids))
    return dict(Counter(outcomes))


# ---------------------------------------------------------------------------------------- unsettled purchases
#: how long an unconfirmed purchase is looked for: past the activation's lifetime the provider has refunded it
UNSETTLED_FOR = 25 * 60.0


def settle_unconfirmed(rt: Runtime, *, limit: int = 100) -> int:
    """Look up purchases left unconfirmed by a fail-over: at each provider that answers, an activation bought with
    one of our orderIds that is not the order's number is cancelled (refunded: no code was asked for); one
    getActiveActivations per provider per sweep. Returns how many entries were settled."""
    due = rt.unsettled.claim(limit, lease=rt.settings.provider_cooldown)
    by_provider: dict[str, list[tuple[str, str, str]]] = {}
    now = rt.clock()
    for d in due:
        provider, poid, order_id, since = (d.order_id.split("|") + ["", "", "", "0"])[:4]
        if now - float(since or 0) > UNSETTLED_FOR:  # the provider refunded it by now, if it ever sold it
            rt.redis.zrem(rt.keys.unsettled, d.order_id)
            continue
        by_provider.setdefault(provider, []).append((d.order_id, poid, order_id))
    settled = 0
    for provider, entries in by_provider.items():
        try:
            rows = {r.order_id: r for r in rt.provider_for(provider).get_active_activations() if r.order_id}
        except perr.ProviderError as exc:
            log.info("sweep: unconfirmed purchases at %s not looked up yet (%s)", provider, exc.label)
            continue  # the lease brings them back after the cool-down
        for member, poid, order_id in entries:
            row = rows.get(poid)
            order = rt.activations.get(order_id)
            if row is not None and (order is None or order.activation_id != str(row.activation_id)):
                log.warning("order %s: unconfirmed purchase at %s found (activation %s); cancelling it", order_id,
                            provider, row.activation_id)
                try:
                    rt.provider_for(provider).cancel_activation(str(row.activation_id))
                except perr.ProviderError as exc:
                    if exc.kind is ErrorKind.TOO_EARLY:
                        continue  # inside the first two minutes: the lease brings it back
                    log.warning("order %s: cancel of the unconfirmed activation failed (%s)", order_id, exc.label)
            rt.redis.zrem(rt.keys.unsettled, member)
            settled += 1
    return settled


# ---------------------------------------------------------------------------------------- prices for routing
def refresh_quotes(rt: Runtime, service: str, country: int | None) -> int:
    """Read every provider's price and stock for one service and country into the quote cache (cheapest
    routing); a provider that fails is left without a quote (routing then keeps it in preference order)."""
    stored = 0
    for name in rt.provider_names:
        try:
            table = rt.provider_for(name).get_prices(service=service, country=country)
        except perr.ProviderError as exc:
            log.info("prices of %s at %s not read (%s)", service, name, exc.label)
            continue
        price = table.get(country, service) if country is not None else \
            next((p for p in table if p.service == service), None)
        if price is None or price.cost is None:
            continue
        rt.quotes.put(name, service, country, Quote(price.cost, int(price.count or 0), price.physical_count))
        stored += 1
    return stored
