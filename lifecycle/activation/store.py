"""The activation order store: reads of order records, and every state change as one atomic Change.

Each write is a compare-and-set on the current state (:mod:`lifecycle.cas`) that, in one Redis step, updates the
record, appends the short history, XADDs the downstream event (the transactional outbox) and sets or clears the
order's deadline. A re-delivered task re-running a transition finds the state already moved and gets ``stale``
back: no second event. ``code.received`` is also deduplicated on the code itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence, cast

import redis

from ..cas import Change, Records, RecordKind, Result, Side, states
from ..clock import Clock, stamp, system_clock
from ..index import lookup
from ..keys import Keys, external
from ..outbox.events import EventType, OutboxConfig, Via, make_event
from .config import ActivationConfig
from .machine import COMMANDS, Command, State, sources
from .record import F_CANCEL_BY, F_CREATED, F_END_AT, F_REFUNDED, F_SERVICE, F_UPDATED, LEGACY_NAMES, LEGACY_RENAMES
from .record import (F_AID, F_ATTEMPTS, F_BUYING_AT, F_CALLS, F_CMD, F_CODE, F_CODE_AT, F_COST, F_COUNTRY, F_FAILS,
                     F_BAD_PHONES, F_CODES, F_CURRENCY, F_FAILED_AT, F_INFLIGHT, F_NUMBER_AT, F_NUMBERS, F_PHONE,
                     F_PROVIDER, F_REASON, F_RETRY_AT, F_SKIP, F_VIA, Order)

#: record fields copied into every activation event inside Redis (so writers need not read the record first)
FILL: dict[str, str] = {"activation_id": F_AID, "phone": F_PHONE, "service": F_SERVICE, "country": F_COUNTRY,
                        "provider": F_PROVIDER}


@dataclass(frozen=True)
class CodeArrival:
    """A code for an order, as a webhook or a poll brought it (what :meth:`ActivationStore.receive_code` takes)."""

    code: str
    via: Via
    text: str | None = None
    #: the activation it came for: the order's current number must be this one (else the change is stale)
    activation_id: str | None = None


def state_of(result: Result[Any]) -> State | None:
    """The activation state a result reports (None when missing or not an activation state)."""
    try:
        return State(result.raw_state) if result.raw_state else None
    except ValueError:
        return None


class ActivationStore:
    """Reads and writes of activation order records."""

    def __init__(self, redis_client: redis.Redis, keys: Keys, config: ActivationConfig, outbox: OutboxConfig, *,
                 clock: Clock = system_clock) -> None:
        self.redis = redis_client
        self.keys = keys
        self.config = config
        self.clock = clock
        self.records = Records(redis_client, keys, RecordKind(keys.order, keys.deadlines, keys.activation_index,
                                                              FILL, created=F_CREATED, updated=F_UPDATED,
                                                              renamed=LEGACY_RENAMES),
                               outbox, retention=config.retention, clock=clock)

    # ------------------------------------------------------------------ reads
    def get(self, order_id: str) -> Order | None:
        rec = self.records.read(order_id)
        return Order.from_record(order_id, rec) if rec else None

    def get_many(self, order_ids: Iterable[str]) -> dict[str, Order | None]:
        """One pipelined round trip for a batch (what a sweep does)."""
        return {oid: Order.from_record(oid, rec) if rec else None
                for oid, rec in self.records.read_many(order_ids).items()}

    def order_for_activation(self, provider: str, activation_id: str) -> str | None:
        return self.orders_for_activations(provider, [activation_id])[str(activation_id)]

    def orders_for_activations(self, provider: str, activation_ids: Iterable[str]) -> dict[str, str | None]:
        """Activation id (at ``provider``) -> our order id, for a batch, in one round trip."""
        ids = [str(a) for a in activation_ids]
        return dict(zip(ids, lookup(self.redis, [self.keys.activation_index(external(provider, a)) for a in ids])))

    def _ref(self, order_id: str, provider: str | None, activation_id: str | None) -> str | None:
        """The index name of the order's activation (its provider read from the record when not given)."""
        if not activation_id:
            return None
        if not provider:  # a record not changed since the renames holds it under its old name
            legacy = next(old for old, new in LEGACY_NAMES.items() if new == F_PROVIDER)
            current, before = cast("list[str | None]", self.redis.hmget(self.keys.order(order_id), F_PROVIDER,
                                                                        legacy))
            provider = before or current
        return external(provider, activation_id) if provider else None

    # ------------------------------------------------------------------ the primitive
    def apply(self, order_id: str, change: Change, *, now: float | None = None, pipe: Any = None) -> Result[State]:
        res = self.records.apply(order_id, change, now=now, pipe=pipe)
        return Result(res.status, res.raw_state, res.stream_id, state_of(res))

    # ------------------------------------------------------------------ purchase
    def start_buying(self, order_id: str) -> Result[State]:
        now = self.clock()
        return self.apply(order_id, Change(expect=states([State.PENDING]), to=State.BUYING.value,
                                           set={F_BUYING_AT: stamp(now)}, deadline=now + self.config.buying_stale),
                          now=now)

    def choose_provider(self, order_id: str, *, provider: str, country: int | None, calls: int) -> Result[State]:
        """Record where the next purchase request goes, BEFORE it is sent: a re-delivered task finds it and asks
        the same provider again with the same orderId (``calls`` numbers the request)."""
        return self.apply(order_id, Change(expect=states([State.BUYING]),
                                           set={F_PROVIDER: provider, F_CALLS: str(calls), F_INFLIGHT: "1",
                                                F_COUNTRY: None if country is None else str(country)},
                                           delete=(F_FAILS,)))

    def skip_candidate(self, order_id: str, *, skip: frozenset[str], before: frozenset[str],
                       reason: str) -> Result[State]:
        """A candidate refused this purchase attempt: remember it (a field-level CAS on the list) and try the next
        one at once."""
        now = self.clock()
        return self.apply(order_id, Change(expect=states([State.BUYING]), match={F_SKIP: ",".join(sorted(before))},
                                           set={F_SKIP: ",".join(sorted(skip)), F_REASON: reason},
                                           delete=(F_PROVIDER, F_INFLIGHT, F_FAILS), deadline=now,
                                           hist=f"skip:{reason.split(':', 1)[0]}"), now=now)

    def assign_number(self, order_id: str, *, provider: str, activation_id: str, phone: str,
                      cost: str | None = None, currency: int | None = None, attempt: int = 1,
                      repeated: bool = False, side: tuple[Side, ...] = (), end_at: float | None = None,
                      cancel_by: float | None = None, bought_at: float | None = None) -> Result[State]:
        """buying (or pending, when recovering) -> waiting; writes number.assigned (with the provider, which
        number of the order it is, and what it cost as the provider said) and the activation index. The purchase's
        start time goes (only a purchase in progress needs it; the history keeps when it began).

        ``end_at`` / ``cancel_by``: the activation's own end and last free-cancel moment as the provider stated
        them (unix times on our clock); waiting stops CANCEL_MARGIN before them, never later. ``bought_at``: the
        earliest moment the number can have been bought, where that is before now (a recovered purchase): the
        wait for a code counts from it, so a late recovery never stretches the number's life."""
        now = self.clock()
        number_at = now if bought_at is None else min(now, bought_at)
        due = min(now + self.config.poll_after,
                  self.config.waiting_ends(None, number_at, end_at=end_at, cancel_by=cancel_by))
        event = make_event(EventType.NUMBER_ASSIGNED, order_id, now, discriminator=external(provider, activation_id),
                           activation_id=activation_id, phone=phone, provider=provider, attempt=attempt, cost=cost,
                           currency=currency, repeated=True if repeated else None)
        return self.apply(order_id, Change(
            expect=states(sources(State.WAITING)), to=State.WAITING.value,
            set={F_PROVIDER: provider, F_AID: activation_id, F_PHONE: phone, F_COST: cost,
                 F_NUMBER_AT: stamp(number_at), F_CURRENCY: None if currency is None else str(currency),
                 F_NUMBERS: str(attempt),
                 # a number that already failed for this order is not used: it is replaced as soon as it may be
                 F_CMD: Command.REPLACE.value if repeated else None,
                 F_END_AT: None if end_at is None else stamp(end_at),
                 F_CANCEL_BY: None if cancel_by is None else stamp(cancel_by)},
            delete=(F_FAILS, F_REASON, F_SKIP, F_INFLIGHT, F_BUYING_AT), deadline=now if repeated else due, side=side,
            events=(event,), ref=external(provider, activation_id),
            index=True), now=now)

    def retry_purchase_later(self, order_id: str, *, reason: str, delay: float) -> Result[State]:
        """A definite no-purchase (no stock): count the attempt, back to pending, due after ``delay``."""
        now = self.clock()
        return self.apply(order_id, Change(expect=states([State.BUYING]), to=State.PENDING.value,
                                           set={F_REASON: reason}, incr={F_ATTEMPTS: 1},
                                           delete=(F_FAILS, F_SKIP, F_PROVIDER, F_INFLIGHT),
                                           deadline=now + delay, hist=f"retry:{reason}"), now=now)

    def purchase_backoff(self, order_id: str, *, reason: str, delay: float, sent: bool = True) -> Result[State]:
        """A transient failure: stay buying (the same orderId will be tried again), due after ``delay``;
        ``sent=False``: the request surely never reached the provider, so nothing can be in flight."""
        now = self.clock()
        return self.apply(order_id, Change(expect=states([State.BUYING]), set={F_REASON: reason},
                                           incr={F_FAILS: 1}, delete=() if sent else (F_INFLIGHT,),
                                           deadline=now + delay), now=now)

    def fail(self, order_id: str, *, reason: str) -> Result[State]:
        """No number could be bought (any more): the order ends with ``order.failed``."""
        now = self.clock()
        event = make_event(EventType.ORDER_FAILED, order_id, now, reason=reason)
        return self.apply(order_id, Change(expect=states(sources(State.FAILED)), to=State.FAILED.value,
                                           set={F_REASON: reason}, delete=(F_CMD,), clear_deadline=True,
                                           events=(event,), terminal=True), now=now)

    # ------------------------------------------------------------------ codes
    def receive_code(self, order_id: str, *, code: str, via: Via, text: str | None = None,
                     activation_id: str | None = None) -> Result[State]:
        """A code arrived (webhook or poll). Deduplicated on the code: a repeat of a known code is ``dup``; a code
        for another activation than the order's current one (a replaced number's) is ``stale``."""
        now = self.clock()
        return self.apply(order_id, self._code_change(order_id, CodeArrival(code, via, text, activation_id), now),
                          now=now)

    def receive_codes(self, arrivals: Sequence[tuple[str, CodeArrival]]) -> list[Result[State]]:
        """:meth:`receive_code` for several (order, code) pairs in one round trip, in order (the drain's batch)."""
        now = self.clock()
        results = self.records.apply_many(((order_id, self._code_change(order_id, arrival, now))
                                           for order_id, arrival in arrivals), now=now)
        return [Result(res.status, res.raw_state, res.stream_id, state_of(res)) for res in results]

    def _code_change(self, order_id: str, arrival: CodeArrival, now: float) -> Change:
        code, activation_id = arrival.code, arrival.activation_id
        # one event per (number, code): a replacement number may bring the same digits
        event = make_event(EventType.CODE_RECEIVED, order_id, now,
                           discriminator=f"{activation_id}|{code}" if activation_id else code, code=code,
                           text=arrival.text, via=arrival.via)
        return Change(
            expect=states(sources(State.CODE_RECEIVED)), to=State.CODE_RECEIVED.value,
            set={F_CODE: code, F_CODE_AT: stamp(now), F_VIA: arrival.via}, code=code,
            deadline=self.config.after_code(now), match={F_AID: activation_id} if activation_id else {},
            events=(event,), hist=f"{State.CODE_RECEIVED.value}:{Via(arrival.via).value}")

    def retry_requested(self, order_id: str) -> Result[State]:
        """setStatus 3 succeeded: wait for another code."""
        now = self.clock()
        return self.apply(order_id, Change(expect=states([State.CODE_RECEIVED]), to=State.WAITING_RETRY.value,
                                           set={F_RETRY_AT: stamp(now)}, delete=(F_CMD, F_FAILS),
                                           deadline=now + self.config.poll_after), now=now)

    # ------------------------------------------------------------------ endings
    def finish(self, order_id: str, *, activation_id: str | None, reason: str | None = None,
               provider: str | None = None, final: EventType = EventType.ORDER_COMPLETED,
               final_reason: str | None = None, side: tuple[Side, ...] = ()) -> Result[State]:
        """The number is finished (setStatus 6) and so is the order: ``activation.finished``, then the order's
        terminal event (``order.completed``; ``order.failed`` when its code did not work and no number is left)."""
        now = self.clock()
        events = (make_event(EventType.ACTIVATION_FINISHED, order_id, now, discriminator=activation_id or "",
                             reason=reason),
                  make_event(final, order_id, now, reason=final_reason or reason))
        return self.apply(order_id, Change(expect=states(sources(State.FINISHED)), to=State.FINISHED.value,
                                           set={F_REASON: final_reason or reason}, delete=(F_CMD, F_FAILS),
                                           clear_deadline=True, events=events, side=side,
                                           ref=self._ref(order_id, provider, activation_id), terminal=True), now=now)

    def cancel(self, order_id: str, *, activation_id: str | None, reason: str,
               provider: str | None = None, final: EventType = EventType.ORDER_CANCELLED,
               final_reason: str | None = None, side: tuple[Side, ...] = (),
               refunded: bool = True) -> Result[State]:
        """The number is cancelled (refunded, unless the cancel came too late) and the order ends:
        ``activation.cancelled``, then the order's terminal event (``order.cancelled`` by command; ``order.failed``
        when no code came and no number is left)."""
        now = self.clock()
        events = (make_event(EventType.ACTIVATION_CANCELLED, order_id, now, discriminator=activation_id or "",
                             reason=reason, refunded=refunded if activation_id else None),
                  make_event(final, order_id, now, reason=final_reason or reason))
        return self.apply(order_id, Change(expect=states(sources(State.CANCELLED)), to=State.CANCELLED.value,
                                           set={F_REASON: final_reason or reason,
                                                F_REFUNDED: ("1" if refunded else "0") if activation_id else None},
                                           delete=(F_CMD, F_FAILS), clear_deadline=True, events=events, side=side,
                                           ref=self._ref(order_id, provider, activation_id), terminal=True), now=now)

    def cancel_unbought(self, order_id: str, *, reason: str = "command") -> Result[State]:
        """Downstream cancelled an order that holds no number and has no purchase request in flight (pending, or
        buying between attempts): it ends with ``order.cancelled`` and no purchase. A field-level CAS on the
        in-flight mark, so it never races a request being sent."""
        now = self.clock()
        events = (make_event(EventType.ACTIVATION_CANCELLED, order_id, now, discriminator="", reason=reason),
                  make_event(EventType.ORDER_CANCELLED, order_id, now, reason=reason))
        return self.apply(order_id, Change(expect=states([State.PENDING, State.BUYING]), to=State.CANCELLED.value,
                                           match={F_INFLIGHT: "", F_AID: ""}, set={F_REASON: reason},
                                           delete=(F_CMD, F_FAILS), clear_deadline=True, events=events,
                                           terminal=True), now=now)

    def replace_number(self, order_id: str, *, state: State, provider: str | None, activation_id: str,
                       phone: str | None, finished: bool, reason: str, bad_phones: frozenset[str],
                       failed_at: tuple[str, ...] = (), side: tuple[Side, ...] = (),
                       refunded: bool = True) -> Result[State]:
        """The current number failed (no code in time, the provider closed it, or downstream said its code did not
        work): it was cancelled (refunded) or finished at the provider, and the order goes back to ``pending`` to
        buy the next one at once. Its event (``activation.cancelled`` / ``activation.finished``) is written; its
        phone is remembered so it is never taken again; its index entry outlives it a while (late webhooks)."""
        now = self.clock()
        etype = EventType.ACTIVATION_FINISHED if finished else EventType.ACTIVATION_CANCELLED
        # the number's fields are cleared in the same step, so the event names them itself
        event = make_event(etype, order_id, now, discriminator=activation_id, reason=reason, replaced=True,
                           activation_id=activation_id, phone=phone, provider=provider,
                           refunded=None if finished else refunded)
        phones = bad_phones | ({phone} if phone else set())
        return self.apply(order_id, Change(
            expect=states([state]), to=State.PENDING.value, match={F_AID: activation_id},
            set={F_BAD_PHONES: ",".join(sorted(phones)), F_REASON: reason,
                 F_FAILED_AT: ",".join(dict.fromkeys([*failed_at, *([provider] if provider else [])]))},
            delete=(F_AID, F_PHONE, F_COST, F_CURRENCY, F_NUMBER_AT, F_CODE, F_CODES, F_CODE_AT, F_VIA, F_RETRY_AT,
                    F_CMD, F_FAILS, F_PROVIDER, F_INFLIGHT, F_SKIP, F_END_AT, F_CANCEL_BY),
            deadline=now, events=(event,), ref=self._ref(order_id, provider, activation_id), retire_ref=True,
            hist=f"replaced:{reason}", side=side), now=now)

    # ------------------------------------------------------------------ bookkeeping without a state change
    def rearm(self, order_id: str, *, state: State, due: float, fails: bool = False, reset_fails: bool = False,
              pipe: Any = None) -> Result[State]:
        """Set the next deadline only if the order is still in ``state`` (a stale sweeper cannot undo news).

        ``pipe``: a pipeline to queue the step on (a sweep re-arms thousands of orders in one round trip)."""
        return self.apply(order_id, Change(expect=states([state]), deadline=due,
                                           incr={F_FAILS: 1} if fails else {},
                                           delete=(F_FAILS,) if reset_fails else ()), pipe=pipe)

    def drop_command(self, order_id: str, *, state: State, due: float) -> Result[State]:
        """The provider refused the command: forget it (the reason is logged), next deadline at ``due``."""
        return self.apply(order_id, Change(expect=states([state]), deadline=due, delete=(F_CMD,)))

    def drop_deadline(self, order_id: str) -> None:
        """Remove a deadline whose order is gone or terminal."""
        self.records.drop_deadline(order_id)

    def request_command(self, order_id: str, command: Command) -> Result[State]:
        """Record a downstream command and make the order due now; ``stale`` means the state forbids it (409)."""
        command = Command(command)
        now = self.clock()
        return self.apply(order_id, Change(expect=states(COMMANDS[command]), set={F_CMD: command},
                                           deadline=now, hist=f"cmd:{command.value}"), now=now)
