"""What the tasks do, as plain functions of a :class:`Runtime` (no Celery here, so tests call them directly).

Each provider call is followed by one atomic transition. Whatever the provider says, the order either moves
forward by a compare-and-set, or keeps its state and gets its deadline re-armed (with backoff on outages),
so no order is ever left without a deadline until it is terminal.
"""
from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from lifecycle import events as ev
from lifecycle.consumer import DrainReport
from lifecycle.policy import Verdict, backoff, classify_purchase_error, provider_order_id
from lifecycle.reconcile import Action, Observation, decide, observe_listed, observe_status
from lifecycle.states import State
from lifecycle.store import Order
from provider import errors as perr

from .runtime import Runtime

log = logging.getLogger("otpflow.flows")

PLACE_ORDER = "otpflow.place_order"
DRAIN_INBOX = "otpflow.drain_inbox"
RELAY_EVENTS = "otpflow.relay_events"
FINISH_CODED = "otpflow.finish_coded"
#: provider calls in flight at once when finishing a batch (below the HTTP connection pool's 10)
FINISH_CONCURRENCY = 8

#: cancel answers that mean "it is already closed" (treated as cancelled)
_CLOSED = (perr.NoActivation, perr.ActivationCancelled, perr.AlreadyCancelled, perr.ActivationNotActive,
           perr.WrongActivationId)
#: cancel answers that mean "a code arrived meanwhile": reconcile instead
_HAS_CODE = (perr.BadStatus, perr.OtpReceived, perr.NewOtpReceived)
#: poll with the bulk list only when at least this many activations need a look
BULK_MIN = 2


@dataclass
class Breaker:
    """Per-sweep circuit breaker: after a transient provider failure, stop calling for the rest of the batch."""

    open: bool = False
    failures: int = 0

    def trip(self) -> None:
        self.open = True
        self.failures += 1


@dataclass
class SweepReport:
    claimed: int = 0
    provider_calls: dict[str, int] = field(default_factory=dict)
    actions: dict[str, int] = field(default_factory=dict)
    drained: int = 0
    rents: int = 0
    #: a pipeline the sweep queues its plain re-arms on (flushed once at the end); None = execute at once
    pipe: Any = None

    def call(self, name: str) -> None:
        self.provider_calls[name] = self.provider_calls.get(name, 0) + 1

    def did(self, name: str) -> None:
        self.actions[name] = self.actions.get(name, 0) + 1


# ---------------------------------------------------------------------------------------- purchase
def place_order(rt: Runtime, order_id: str) -> str:
    """Buy the number for a stored order: getNumberV2 with our stable orderId, then one transition.

    Re-delivered while ``buying`` (the worker died mid-call): the SAME orderId is sent again, and
    ORDER_ALREADY_EXISTS recovers the activation it bought. Never a second purchase.
    """
    order = rt.store.get(order_id)
    if order is None:
        return "missing"
    if order.command == "cancel" and order.state is State.PENDING:
        rt.transitions.cancel(order_id, activation_id=None, reason="command")
        return "cancelled"
    if order.state is State.PENDING:
        res = rt.transitions.start_buying(order_id)
        if not res.ok and res.state is not State.BUYING:
            return res.raw_state or res.status
        order = rt.store.get(order_id) or order
    elif order.state is not State.BUYING:
        return order.state.value
    poid = provider_order_id(order)
    try:
        act = rt.provider.get_number_v2(order.service, country=order.country, order_id=poid,
                                        max_price=order.max_price, operator=order.operator,
                                        activation_type=order.activation_type, forward=order.forward)
    except perr.ProviderError as exc:
        return _purchase_failed(rt, order, poid, exc)
    return _assigned(rt, order, str(act.activation_id), str(act.phone), act.cost)


def _assigned(rt: Runtime, order: Order, activation_id: str, phone: str, cost: Any) -> str:
    res = rt.transitions.assign_number(order.order_id, activation_id=activation_id, phone=phone,
                                       cost=None if cost is None else str(cost))
    if res.ok:
        log.info("order %s: number assigned (activation %s)", order.order_id, activation_id)
        _replay_early(rt, activation_id)
        fresh = rt.store.get(order.order_id)
        if fresh is not None and fresh.command:
            advance(rt, order.order_id)
        return "waiting"
    current = rt.store.get(order.order_id)
    if current is not None and current.activation_id == activation_id:
        return current.state.value  # a racing re-delivery assigned it first
    # We hold an activation the order no longer wants (it failed/cancelled meanwhile): release it.
    log.error("order %s: activation %s bought but the order is %s; cancelling it", order.order_id, activation_id,
              res.raw_state)
    try:
        rt.provider.cancel_activation(activation_id)
    except perr.ProviderError as exc:
        log.warning("order %s: could not cancel orphan activation %s (%s); the provider refunds it if no code "
                    "arrives", order.order_id, activation_id, exc.code)
    return "orphan"


def _replay_early(rt: Runtime, activation_id: str) -> None:
    """Webhooks drained while the order was still ``buying`` were held; apply them now (``via: webhook``),
    instead of waiting POLL_AFTER for the poll. A failure here only delays them to that poll."""
    try:
        report = rt.consumer.replay_held("activation", activation_id)
    except Exception:  # noqa: BLE001 - the number is stored; the poll reconciles what the replay missed
        log.exception("replay of early webhooks for activation %s failed; the poll will catch up", activation_id)
        return
    _auto_finish(rt, report)


def _purchase_failed(rt: Runtime, order: Order, poid: str, exc: perr.ProviderError) -> str:
    decision = classify_purchase_error(exc, order, rt.settings)
    log.info("order %s: getNumberV2 %s -> %s", order.order_id, exc.code or type(exc).__name__, decision.verdict.value)
    if decision.verdict is Verdict.RECOVER:
        return recover_purchase(rt, order, poid)
    if decision.verdict is Verdict.RETRY_LATER:
        rt.transitions.retry_purchase_later(order.order_id, reason=decision.reason, delay=decision.delay)
        return "retry_later"
    if decision.verdict is Verdict.BACKOFF:
        rt.transitions.purchase_backoff(order.order_id, reason=decision.reason, delay=decision.delay)
        return "backoff"
    reason = decision.reason
    if isinstance(exc, perr.WrongMaxPrice) and exc.min_price is not None:
        reason = f"{reason}:{exc.min_price}"
    rt.transitions.fail(order.order_id, reason=reason)
    return "failed"


def recover_purchase(rt: Runtime, order: Order, poid: str) -> str:
    """ORDER_ALREADY_EXISTS: find the activation our orderId bought; fail ``order_unrecoverable`` if none."""
    try:
        rows = list(rt.provider.get_active_activations())
    except perr.NotSupported:
        rows = []
    except perr.TransientError as exc:
        rt.transitions.purchase_backoff(order.order_id, reason=exc.code or "transient", delay=backoff(order.fails))
        return "backoff"
    match = [r for r in rows if getattr(r, "order_id", None) == poid]
    if not match:
        match = _unclaimed_candidates(rt, order, [r for r in rows if not getattr(r, "order_id", None)])
    if len(match) == 1:
        row = match[0]
        return _assigned(rt, order, str(row.activation_id), str(row.phone or ""), getattr(row, "cost", None))
    log.error("order %s: ORDER_ALREADY_EXISTS but %d matching activations; failing it", order.order_id, len(match))
    rt.transitions.fail(order.order_id, reason="order_unrecoverable")
    return "failed"


def _unclaimed_candidates(rt: Runtime, order: Order, rows: list[Any]) -> list[Any]:
    """Rows without an orderId that could be ours: same service/country, bought after we started, not claimed."""
    start = order.buying_at or order.created_at
    out = []
    for row in rows:
        if row.service and row.service != order.service:
            continue
        if order.country is not None and row.country not in (None, "", str(order.country)):
            continue
        when = getattr(row, "activation_time", None)
        if isinstance(when, datetime) and when.tzinfo is not None and when.astimezone(timezone.utc).timestamp() < start - 60:
            continue
        out.append(row)
    claimed = rt.store.orders_for_activations(str(r.activation_id) for r in out)
    return [r for r in out if not claimed.get(str(r.activation_id))]


# ---------------------------------------------------------------------------------------- one order's step
def advance(rt: Runtime, order_id: str, *, order: Order | None = None, bulk: Mapping[str, Any] | None = None,
            breaker: Breaker | None = None, report: SweepReport | None = None) -> str:
    """Do whatever is due for one order (sweeper and command task): re-drive, poll, cancel, finish, retry."""
    order = order if order is not None else rt.store.get(order_id)
    report = report or SweepReport()
    breaker = breaker or Breaker()
    now = rt.clock()
    if order is None or order.state.terminal:
        rt.transitions.drop_deadline(order_id)
        return "dropped"
    state = order.state
    if state is State.PENDING:
        if order.command == "cancel":
            rt.transitions.cancel(order_id, activation_id=None, reason="command")
            report.did("cancel")
            return "cancelled"
        rt.transitions.rearm(order_id, state=state, due=now + rt.timing.pending_stale)
        rt.publish(PLACE_ORDER, {"order_id": order_id})
        report.did("place_order")
        return "place_order"
    if state is State.BUYING:
        rt.transitions.rearm(order_id, state=state, due=now + rt.timing.buying_stale)
        rt.publish(PLACE_ORDER, {"order_id": order_id})
        report.did("place_order")
        return "place_order"
    if not order.activation_id:  # cannot happen for these states; never leave it without a deadline
        rt.transitions.rearm(order_id, state=state, due=now + rt.settings.poll_interval)
        return "no_activation"
    if breaker.open:
        return _backoff(rt, order, report, "breaker_open", count=False)
    timeout = rt.timing.timeout_at(order)
    timed_out = timeout is not None and now >= timeout
    if state is State.WAITING:
        if order.command == "cancel" or timed_out:
            return _cancel(rt, order, report, breaker, reason="command" if order.command == "cancel" else "timeout")
        return _poll(rt, order, bulk, report, breaker)
    if state is State.WAITING_RETRY:
        if order.command == "finish" or timed_out:
            return _finish(rt, order, report, breaker, reason="command" if order.command == "finish" else "timeout")
        return _poll(rt, order, bulk, report, breaker)
    # CODE_RECEIVED
    if order.command == "retry":
        return _retry(rt, order, report, breaker)
    if order.command == "finish" or rt.settings.auto_finish or timed_out:
        reason = "command" if order.command == "finish" else ("auto" if rt.settings.auto_finish else "timeout")
        return _finish(rt, order, report, breaker, reason=reason)
    rt.transitions.rearm(order_id, state=state, due=timeout if timeout is not None else now + rt.settings.finish_timeout)
    return "rearmed"


def _backoff(rt: Runtime, order: Order, report: SweepReport, why: str, *, count: bool = True) -> str:
    """Provider unavailable: keep the state, re-arm with exponential backoff and jitter (never lose a deadline)."""
    due = rt.clock() + backoff(order.fails)
    rt.transitions.rearm(order.order_id, state=order.state, due=due, fails=1 if count else None)
    report.did("backoff")
    return f"backoff:{why}"


def _transient(rt: Runtime, order: Order, report: SweepReport, breaker: Breaker, exc: perr.ProviderError) -> str:
    breaker.trip()
    log.warning("order %s: provider unavailable (%s); re-armed with backoff", order.order_id,
                exc.code or type(exc).__name__)
    return _backoff(rt, order, report, exc.code or "transient")


def _observe_single(rt: Runtime, order: Order, report: SweepReport) -> Observation:
    if order.is_call:
        report.call("getStatusV2")
        v2 = rt.provider.get_status_v2(order.activation_id)
        text = (v2.sms.text if v2.sms else None) or (v2.call.text if v2.call else None)
        code = v2.code
        state = v2.state
        if code and getattr(state, "value", state) != "CANCELLED":
            state = "CODE_RECEIVED"
        return observe_status(state, code, text)
    report.call("getStatus")
    st = rt.provider.get_status(order.activation_id)
    return observe_status(st.state, st.code)


def _poll(rt: Runtime, order: Order, bulk: Mapping[str, Any] | None, report: SweepReport, breaker: Breaker) -> str:
    """Reconcile with the provider: the bulk list when we have it (and it covers us), else getStatus(V2)."""
    row = bulk.get(order.activation_id) if bulk is not None and order.activation_id else None
    try:
        if row is not None and not order.is_call:
            obs = observe_listed(row.codes, row.text)
        else:
            obs = _observe_single(rt, order, report)
    except perr.NoActivation:
        obs = observe_status("CANCELLED")
    except perr.TransientError as exc:
        return _transient(rt, order, report, breaker, exc)
    except perr.ProviderError as exc:
        log.error("order %s: poll failed with %s; re-armed", order.order_id, exc.code or type(exc).__name__)
        return _backoff(rt, order, report, exc.code or "error")
    return _apply_decision(rt, order, obs, report, breaker)


def _apply_decision(rt: Runtime, order: Order, obs: Observation, report: SweepReport, breaker: Breaker) -> str:
    decision = decide(order, obs)
    if decision.action is Action.CODE:
        for code in decision.codes:
            rt.transitions.receive_code(order.order_id, code=code, via=ev.VIA_POLL, text=decision.text,
                                        activation_id=order.activation_id)
        report.did("code")
        if rt.settings.auto_finish:
            fresh = rt.store.get(order.order_id)
            if fresh is not None and fresh.state is State.CODE_RECEIVED:
                return _finish(rt, fresh, report, breaker, reason="auto")
        return "code"
    if decision.action is Action.CANCELLED:
        rt.transitions.cancel(order.order_id, activation_id=order.activation_id, reason=decision.reason or "provider")
        report.did("cancelled")
        return "cancelled"
    if decision.action is Action.FINISHED:
        rt.transitions.finish(order.order_id, activation_id=order.activation_id, reason=decision.reason)
        report.did("finished")
        return "finished"
    rt.transitions.rearm(order.order_id, state=order.state, due=rt.timing.after_poll(order, rt.clock()),
                         reset_fails=bool(order.fails), client=report.pipe)
    report.did("poll")
    return "polled"


def _cancel(rt: Runtime, order: Order, report: SweepReport, breaker: Breaker, *, reason: str) -> str:
    """setStatus 8. EARLY_CANCEL_DENIED: try again after the two-minute mark; already closed: cancelled."""
    try:
        report.call("cancel")
        rt.provider.cancel_activation(order.activation_id)
    except perr.EarlyCancelDenied:
        rt.transitions.rearm(order.order_id, state=State.WAITING,
                             due=rt.timing.after_early_cancel_denied(order, rt.clock()))
        report.did("early_cancel_denied")
        return "early_cancel_denied"
    except _CLOSED:
        pass
    except perr.FreeCancellationExpired:
        reason = "free_cancellation_expired"
    except _HAS_CODE:
        # A code arrived meanwhile (webhook lost or still in flight): look it up rather than cancel.
        try:
            obs = _observe_single(rt, order, report)
        except perr.ProviderError as exc:
            return _transient(rt, order, report, breaker, exc) if exc.transient else _backoff(rt, order, report, "bad_status")
        return _apply_decision(rt, order, obs, report, breaker)
    except perr.TransientError as exc:
        return _transient(rt, order, report, breaker, exc)
    except perr.ProviderError as exc:
        log.error("order %s: cancel failed with %s; re-armed", order.order_id, exc.code or type(exc).__name__)
        return _backoff(rt, order, report, exc.code or "error")
    res = rt.transitions.cancel(order.order_id, activation_id=order.activation_id, reason=reason)
    report.did("cancel")
    return "cancelled" if res.ok else f"stale:{res.raw_state}"


def _finish(rt: Runtime, order: Order, report: SweepReport, breaker: Breaker, *, reason: str) -> str:
    """setStatus 6 for an activation that has its code (so it is not left open)."""
    try:
        report.call("finish")
        rt.provider.finish_activation(order.activation_id)
    except (perr.NoActivation, perr.ActivationCancelled, perr.BadStatus, perr.ActivationNotActive):
        reason = "provider_closed"
    except perr.TransientError as exc:
        return _transient(rt, order, report, breaker, exc)
    except perr.ProviderError as exc:
        log.error("order %s: finish failed with %s; re-armed", order.order_id, exc.code or type(exc).__name__)
        return _backoff(rt, order, report, exc.code or "error")
    res = rt.transitions.finish(order.order_id, activation_id=order.activation_id, reason=reason)
    report.did("finish")
    return "finished" if res.ok else f"stale:{res.raw_state}"


def _retry(rt: Runtime, order: Order, report: SweepReport, breaker: Breaker) -> str:
    """setStatus 3 (downstream said the code was wrong): wait for another code."""
    try:
        report.call("retry")
        rt.provider.request_another_sms(order.activation_id)
    except perr.TransientError as exc:
        return _transient(rt, order, report, breaker, exc)
    except perr.ProviderError as exc:
        log.warning("order %s: another SMS refused (%s); the retry command is dropped", order.order_id,
                    exc.code or type(exc).__name__)
        timeout = rt.timing.timeout_at(order)
        rt.transitions.rearm(order.order_id, state=order.state, due=rt.clock() if rt.settings.auto_finish or timeout is None
                             else timeout, clear_command=True)
        return "retry_refused"
    rt.transitions.retry_requested(order.order_id)
    report.did("retry")
    return "waiting_retry"


# ---------------------------------------------------------------------------------------- sweep
def sweep(rt: Runtime, *, lease: float = 120.0, batched: bool = True) -> SweepReport:
    """One beat: claim due deadlines (leased), read them in one pipeline, reconcile many with one bulk call.

    ``batched=False`` does the same work one Redis command and one getStatus at a time (the benchmark's
    baseline)."""
    report = SweepReport()
    due = rt.deadlines.claim(rt.settings.sweep_batch, lease=lease)
    report.claimed = len(due)
    if due:
        ids = [d.order_id for d in due]
        orders = rt.store.get_many(ids) if batched else {i: rt.store.get(i) for i in ids}
        bulk = _bulk_listing(rt, orders.values(), report) if batched else None
        breaker = Breaker()
        report.pipe = rt.redis.pipeline(transaction=False) if batched else None
        try:
            for d in due:
                try:
                    advance(rt, d.order_id, order=orders.get(d.order_id), bulk=bulk, breaker=breaker, report=report)
                except Exception:  # one bad order must not stop the sweep; its lease expires and it comes back
                    log.exception("sweep: order %s failed", d.order_id)
        finally:
            pipe, report.pipe = report.pipe, None
            if pipe is not None:
                pipe.execute()  # the queued re-arms (each still a compare-and-set on the state)
    from .rent_flows import sweep_rents   # late: rent_flows builds on this module

    report.rents = sweep_rents(rt, report, lease=lease)
    report.drained = redrain(rt)
    rt.redis.incr(rt.keys.sweep_runs)
    return report


def _bulk_listing(rt: Runtime, orders: Iterable[Order | None], report: SweepReport) -> dict[str, Any] | None:
    """One getActiveActivations covering every SMS activation due for a poll (where the dialect has it)."""
    candidates = 0
    for o in orders:
        if o is not None and o.state in (State.WAITING, State.WAITING_RETRY) and not o.is_call and o.activation_id:
            candidates += 1
    if candidates < BULK_MIN:
        return None
    try:
        report.call("getActiveActivations")
        rows = rt.provider.get_active_activations()
    except (perr.NotSupported, perr.BadAction):
        return None
    except perr.ProviderError as exc:
        log.warning("sweep: getActiveActivations failed (%s); falling back to getStatus", exc.code or type(exc).__name__)
        return None
    return {str(r.activation_id): r for r in rows}


def redrain(rt: Runtime) -> int:
    """Take over inbox entries of dead drainers, and publish a drain when the inbox is not empty."""
    entries = rt.inbox.claim_stale(rt.consumer_name, min_idle_ms=60_000, count=100)
    if entries:
        report = rt.consumer.handle_batch(entries)
        rt.inbox.ack(report.processed)
        _auto_finish(rt, report)
    if rt.inbox.pending_count() > 0:
        rt.publish(DRAIN_INBOX, {})
    return len(entries)


# ---------------------------------------------------------------------------------------- inbox
def drain_inbox(rt: Runtime, *, batch: int = 100, max_batches: int = 50) -> DrainReport:
    """Drain webhook entries in batches: transition each, ack after; finish at once under AUTO_FINISH."""
    total = DrainReport()
    rt.inbox.begin_drain()
    pending = rt.inbox.read_own_pending(rt.consumer_name, count=batch)
    for _ in range(max_batches):
        entries = pending or rt.inbox.read_batch(rt.consumer_name, count=batch)
        pending = []
        if not entries:
            break
        report = rt.consumer.handle_batch(entries)
        rt.inbox.ack(report.processed)
        _merge(total, report)
        _auto_finish(rt, report)
    else:
        rt.publish(DRAIN_INBOX, {})  # more left than one task should take: hand over to a fresh task
    return total


def _merge(total: DrainReport, report: DrainReport) -> None:
    total.processed += report.processed
    total.coded += report.coded
    total.duplicates += report.duplicates
    total.unknown += report.unknown
    total.stale += report.stale
    total.invalid += report.invalid


def _auto_finish(rt: Runtime, report: DrainReport) -> None:
    """Under AUTO_FINISH, hand a batch's coded orders to one ``otpflow.finish_coded`` task.

    The drain itself never waits on the provider: measured, finishing inline (one setStatus after another) took
    83% of the drain's time and made every later code wait for the provider's round trips.
    """
    if not rt.settings.auto_finish or not report.coded:
        return
    try:
        rt.publish(FINISH_CODED, {"order_ids": list(report.coded)})
    except Exception:  # noqa: BLE001 - their deadlines are due now: the sweeper finishes them
        log.warning("could not publish %s for %d orders; the sweeper will finish them", FINISH_CODED,
                    len(report.coded))


def finish_coded(rt: Runtime, order_ids: Iterable[str]) -> dict[str, int]:
    """Finish a batch of orders that got their code, overlapping the provider calls on a small thread pool.

    Each order still goes through :func:`advance` (so a command or a state change that happened meanwhile wins),
    and each step is a compare-and-set, so a re-delivered task or a racing sweeper cannot finish twice.
    """
    ids = list(dict.fromkeys(order_ids))
    if not ids:
        return {}
    orders = rt.store.get_many(ids)
    breaker = Breaker()
    _ = (rt.transitions, rt.store, rt.deadlines)  # build the shared services before the threads use them

    def one(order_id: str) -> str:
        try:
            return advance(rt, order_id, order=orders.get(order_id), breaker=breaker)
        except Exception:  # noqa: BLE001 - the deadline (due now) makes the sweeper finish it
            log.exception("finishing order %s failed; the sweeper will retry", order_id)
            return "error"

    if len(ids) == 1:
        outcomes = [one(ids[0])]
    else:
        with ThreadPoolExecutor(max_workers=min(FINISH_CONCURRENCY, len(ids)), thread_name_prefix="finish") as pool:
            outcomes = list(pool.map(one, ids))
    return dict(Counter(outcomes))


# ---------------------------------------------------------------------------------------- commands
def command(rt: Runtime, order_id: str, name: str) -> str:
    """A downstream command: record it (if the API did not already) and carry it out now."""
    order = rt.store.get(order_id)
    if order is None:
        return "missing"
    if order.command != name:
        res = rt.transitions.request_command(order_id, name)
        if not res.ok:
            return f"conflict:{res.raw_state}"
    return advance(rt, order_id)


# ---------------------------------------------------------------------------------------- relay
def relay_events(rt: Runtime, *, max_batches: int = 20) -> int:
    """Publish events to DOWNSTREAM_TASK (at least once, acked after publishing)."""
    task = rt.settings.downstream_task
    if not task:
        return 0

    def publish(event: ev.Event) -> None:
        rt.publish(task, event.as_kwargs())

    relay = rt.relay(publish)
    total = 0
    for _ in range(max_batches):
        n = relay.run_once()
        total += n
        if n == 0:
            break
    return total


def kick_relay(rt: Runtime) -> None:
    """Publish a relay task when DOWNSTREAM_TASK is set, at most once per second (a SET NX flag)."""
    if not rt.settings.downstream_task:
        return
    if rt.redis.set(rt.settings.key("relay", "kick"), "1", nx=True, px=1000):
        rt.publish(RELAY_EVENTS, {})
