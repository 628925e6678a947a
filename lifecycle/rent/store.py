"""The rent order store: reads of rent records, and every state change as one atomic Change.

Each write is a compare-and-set on the rent record (:mod:`lifecycle.cas`) with the rent deadline set and the rent
index: the state, the outbox event (rent.started, rent.sms, rent.finished, rent.cancelled, order.failed) and the
next deadline in one step. A re-delivered task re-running a step finds the state moved (``stale``) or the SMS
fingerprint known (``dup``): no second event.
"""
from __future__ import annotations

from typing import Any, Iterable, cast

import redis

from ..cas import Change, Records, RecordKind, Result, Side, states
from ..clock import Clock, stamp, system_clock
from ..index import lookup
from ..keys import Keys, external
from ..outbox.events import EventType, OutboxConfig, Via, make_event
from .config import RentConfig
from .decisions import normalize_sms_date, sms_fingerprint
from .machine import RENT_COMMANDS, RentCommand, RentState, sources
from .record import (R_AMBIGUOUS, R_ATTEMPTS, R_BUYING_AT, R_CMD, R_CMD_AT, R_CMD_ERR, R_CMD_HOURS, R_COST,
                     R_CURRENCY, R_END, R_END_AT, R_FAILS, R_ORPHAN, R_ORPHAN_AT, R_ORPHAN_END, R_PAID, R_PHONE,
                     R_PREV, R_PROVIDER, R_REASON, R_RID, R_SMS, R_STARTED_AT, OrphanEnd, RentOrder)

#: record fields copied into every rent event inside Redis
RENT_FILL: dict[str, str] = {"rent_id": R_RID, "phone": R_PHONE, "service": "service", "country": "country",
                             "provider": R_PROVIDER}


def rent_state_of(result: Result[Any]) -> RentState | None:
    """The rent state a result reports (None when missing)."""
    try:
        return RentState(result.raw_state) if result.raw_state else None
    except ValueError:
        return None


class RentStore:
    """Reads and writes of rent order records."""

    def __init__(self, redis_client: redis.Redis, keys: Keys, config: RentConfig, outbox: OutboxConfig, *,
                 clock: Clock = system_clock) -> None:
        self.redis = redis_client
        self.keys = keys
        self.config = config
        self.clock = clock
        self.records = Records(redis_client, keys, RecordKind(keys.rent, keys.rent_deadlines, keys.rent_index,
                                                              RENT_FILL), outbox, retention=config.retention,
                               clock=clock)

    # ------------------------------------------------------------------ reads
    def get(self, order_id: str) -> RentOrder | None:
        rec = self.records.read(order_id)
        return RentOrder.from_record(order_id, rec) if rec else None

    def get_many(self, order_ids: Iterable[str]) -> dict[str, RentOrder | None]:
        return {oid: RentOrder.from_record(oid, rec) if rec else None
                for oid, rec in self.records.read_many(order_ids).items()}

    def order_for_rent(self, provider: str, rent_id: str) -> str | None:
        return self.known_rent_ids(provider, [rent_id])[str(rent_id)]

    def known_rent_ids(self, provider: str, rent_ids: Iterable[str]) -> dict[str, str | None]:
        """Rent id (at ``provider``) -> our rent order id, for a batch, in one round trip."""
        ids = [str(r) for r in rent_ids]
        return dict(zip(ids, lookup(self.redis, [self.keys.rent_index(external(provider, r)) for r in ids])))

    def sms_fingerprints(self, order_id: str) -> set[str]:
        """The SMS fingerprints this rent has recorded (the dedupe keys of ``receive_sms``)."""
        raw = cast("str | None", self.redis.hget(self.keys.rent(order_id), "codes")) or ""
        return {c for c in raw.split("\n") if c}

    # ------------------------------------------------------------------ the primitive
    def apply(self, order_id: str, change: Change, *, now: float | None = None,
              pipe: Any = None) -> Result[RentState]:
        res = self.records.apply(order_id, change, now=now, pipe=pipe)
        return Result(res.status, res.raw_state, res.stream_id, rent_state_of(res))

    # ------------------------------------------------------------------ commands
    def request_command(self, order_id: str, command: RentCommand, *, hours: int | None = None) -> Result[RentState]:
        """Record a downstream command (only while no other is pending) and make the rent due now."""
        now = self.clock()
        fields = {R_CMD: command, R_CMD_AT: stamp(now), R_CMD_HOURS: str(int(hours)) if hours else None}
        return self.apply(order_id, Change(expect=states(RENT_COMMANDS[command]), set=fields, delete=(R_CMD_ERR,),
                                           match={R_CMD: ""}, deadline=now, hist=f"cmd:{command.value}"), now=now)

    # ------------------------------------------------------------------ purchase
    def start_buying(self, order_id: str, *, provider: str, cost: str | None = None,
                     currency: int | None = None) -> Result[RentState]:
        """pending -> buying at ``provider``, recorded before the (non-idempotent) getRentNumber is sent, with the
        price quoted for it (what the books charge when it is bought, even if only a reconcile finds it)."""
        now = self.clock()
        price = {R_COST: cost, R_CURRENCY: None if currency is None else str(currency)}
        return self.apply(order_id, Change(expect=states([RentState.PENDING]), to=RentState.BUYING.value,
                                           set={R_BUYING_AT: stamp(now), R_PROVIDER: provider, **price},
                                           delete=(R_AMBIGUOUS, *(k for k, v in price.items() if v is None)),
                                           deadline=now + self.config.buying_stale), now=now)

    def _ref(self, order_id: str, provider: str | None, rent_id: str | None) -> str | None:
        """The index name of the rent (its provider read from the record when not given)."""
        if not rent_id:
            return None
        provider = provider or cast("str | None", self.redis.hget(self.keys.rent(order_id), R_PROVIDER))
        return external(provider, rent_id) if provider else None

    def assign_number(self, order_id: str, *, provider: str, rent_id: str, phone: str, end_date: str | None,
                      end_at: float, cost: str | None = None, currency: int | None = None, paid: int = 0,
                      side: tuple[Side, ...] = (), started_at: float | None = None) -> Result[RentState]:
        """buying -> active: writes rent.started (with its cost), the rent index (rent id -> order) and the books
        (``side``: the charge of its first period) in one step. ``started_at``: the earliest moment the rent can
        have begun, where that is before now (a recovered purchase): the free-cancel window counts from it."""
        now = self.clock()
        started = now if started_at is None else min(now, started_at)
        event = make_event(EventType.RENT_STARTED, order_id, now, discriminator=rent_id, rent_id=rent_id,
                           phone=phone, end_date=end_date, provider=provider, cost=cost, currency=currency)
        return self.apply(order_id, Change(
            expect=states([RentState.BUYING]), to=RentState.ACTIVE.value, ref=external(provider, rent_id),
            index=True,
            set={R_PROVIDER: provider, R_RID: rent_id, R_PHONE: phone, R_END: end_date, R_END_AT: stamp(end_at),
                 R_STARTED_AT: stamp(started), R_PAID: str(paid)},
            delete=(R_FAILS, R_REASON, R_AMBIGUOUS), deadline=self.config.first_poll(now, end_at), events=(event,),
            side=side), now=now)

    def retry_purchase_later(self, order_id: str, *, reason: str, delay: float,
                             transient: bool = False) -> Result[RentState]:
        """A definite no-purchase: back to pending, due after ``delay`` (counts attempts, or transient fails)."""
        now = self.clock()
        return self.apply(order_id, Change(expect=states([RentState.BUYING]), to=RentState.PENDING.value,
                                           set={R_REASON: reason}, incr={R_FAILS if transient else R_ATTEMPTS: 1},
                                           deadline=now + delay, hist=f"retry:{reason}"), now=now)

    def reconcile_later(self, order_id: str, *, reason: str, delay: float) -> Result[RentState]:
        """An answer that may hide a purchase: stay buying, flagged, and reconcile (never re-send) after ``delay``."""
        now = self.clock()
        return self.apply(order_id, Change(expect=states([RentState.BUYING]),
                                           set={R_REASON: reason, R_AMBIGUOUS: "1"}, deadline=now + delay,
                                           hist=f"ambiguous:{reason}"), now=now)

    def fail(self, order_id: str, *, reason: str) -> Result[RentState]:
        now = self.clock()
        event = make_event(EventType.ORDER_FAILED, order_id, now, discriminator="rent", kind="rent", reason=reason)
        return self.apply(order_id, Change(expect=states(sources(RentState.FAILED)), to=RentState.FAILED.value,
                                           set={R_REASON: reason}, delete=(R_CMD,), clear_deadline=True,
                                           events=(event,), terminal=True), now=now)

    # ------------------------------------------------------------------ a rent bought after its order failed
    def adopt_orphan(self, order_id: str, *, provider: str, rent_id: str, paid: int,
                     side: tuple[Side, ...] = ()) -> Result[RentState]:
        """A rent that came back for an order already failed: recorded on the failed record (once: a field-level
        CAS), indexed (so no other order's reconcile takes it for its own), charged in the books (``side``) and
        due at once to be given back. No event: downstream was told ``order.failed``, and nothing else will be."""
        now = self.clock()
        return self.apply(order_id, Change(
            expect=states([RentState.FAILED]), match={R_ORPHAN: ""}, ref=external(provider, rent_id), index=True,
            set={R_ORPHAN: rent_id, R_ORPHAN_AT: stamp(now), R_PROVIDER: provider, R_PAID: str(paid)},
            delete=(R_FAILS,), deadline=now, terminal=True, side=side, hist="orphan"), now=now)

    def close_orphan(self, order_id: str, *, rent_id: str, end: OrphanEnd,
                     side: tuple[Side, ...] = ()) -> Result[RentState]:
        """The orphan rent is given back (its refund in ``side``) or found kept: once, and its deadline gone."""
        return self.apply(order_id, Change(
            expect=states([RentState.FAILED]), match={R_ORPHAN: rent_id, R_ORPHAN_END: ""},
            set={R_ORPHAN_END: end}, delete=(R_FAILS,), clear_deadline=True, side=side, hist=f"orphan:{end.value}"))

    # ------------------------------------------------------------------ SMS
    def receive_sms(self, order_id: str, *, rent_id: str | None, text: str | None, phone_from: str | None,
                    date: Any, via: Via) -> Result[RentState]:
        """One SMS on the rented number -> one rent.sms, deduplicated on (date, text, sender) in the same step."""
        now = self.clock()
        fp = sms_fingerprint(text, date, phone_from)
        event = make_event(EventType.RENT_SMS, order_id, now, discriminator=fp, rent_id=rent_id, text=text,
                           phone_from=phone_from, sms_date=normalize_sms_date(date) or None, via=via)
        return self.apply(order_id, Change(expect=states([RentState.ACTIVE]), code=fp,
                                           codes_max=self.config.sms_fingerprints_kept, incr={R_SMS: 1},
                                           events=(event,), hist=f"sms:{Via(via).value}"), now=now)

    # ------------------------------------------------------------------ endings
    def finish(self, order_id: str, *, reason: str, rent_id: str | None = None,
               keep_command: bool = False) -> Result[RentState]:
        """active -> finished with rent.finished; the record is kept its config's retention (prolong, GET).

        ``keep_command``: a prolongation in flight found the rent over; it carries on as a re-order."""
        return self._end(order_id, RentState.FINISHED, EventType.RENT_FINISHED, reason, rent_id, keep_command)

    def cancel(self, order_id: str, *, reason: str, rent_id: str | None = None,
               side: tuple[Side, ...] = ()) -> Result[RentState]:
        """active -> cancelled (refunded) with rent.cancelled, and the refund in the books (``side``)."""
        return self._end(order_id, RentState.CANCELLED, EventType.RENT_CANCELLED, reason, rent_id, False, side)

    def _end(self, order_id: str, to: RentState, etype: EventType, reason: str, rent_id: str | None,
             keep_command: bool, side: tuple[Side, ...] = ()) -> Result[RentState]:
        now = self.clock()
        event = make_event(etype, order_id, now, discriminator=rent_id or "", reason=reason)
        return self.apply(order_id, Change(
            expect=states([RentState.ACTIVE]), to=to.value, set={R_REASON: reason},
            delete=() if keep_command else (R_CMD, R_CMD_HOURS, R_CMD_AT), clear_deadline=True, events=(event,),
            terminal=True, ref=self._ref(order_id, None, rent_id), side=side), now=now)

    # ------------------------------------------------------------------ prolongation
    def mark_prolonging(self, order_id: str, state: RentState) -> Result[RentState]:
        """Claim the prolong command before the (non-idempotent) continueRentNumber call: a field-level CAS."""
        now = self.clock()
        return self.apply(order_id, Change(expect=states([state]), match={R_CMD: RentCommand.PROLONG.value},
                                           set={R_CMD: RentCommand.PROLONGING, R_CMD_AT: stamp(now)},
                                           deadline=now + self.config.buying_stale), now=now)

    def prolonged(self, order_id: str, *, rent_id: str, provider: str, hours: int, end_date: str | None,
                  end_at: float, cost: str | None = None, currency: int | None = None, paid: int = 0,
                  side: tuple[Side, ...] = ()) -> Result[RentState]:
        """Same rent id, later end: rent.prolonged with its cost, and the books (``side``), in one step."""
        now = self.clock()
        event = make_event(EventType.RENT_PROLONGED, order_id, now, discriminator=f"{rent_id}:{end_at:.0f}",
                           rent_id=rent_id, provider=provider, hours=hours, end_date=end_date, cost=cost,
                           currency=currency)
        return self.apply(order_id, Change(
            expect=states([RentState.ACTIVE]), match={R_CMD: RentCommand.PROLONGING.value},
            set={R_END: end_date, R_END_AT: stamp(end_at)}, delete=(R_CMD, R_CMD_HOURS, R_CMD_AT),
            incr={R_PAID: paid} if paid else {}, deadline=min(now + self.config.poll_interval, end_at),
            hist="prolonged", events=(event,), side=side),
            now=now)

    def reordered(self, order_id: str, *, provider: str, old_rent_id: str | None, previous: tuple[str, ...],
                  rent_id: str, phone: str, end_date: str | None, end_at: float, cost: str | None = None,
                  currency: int | None = None, paid: int = 0, side: tuple[Side, ...] = ()) -> Result[RentState]:
        """finished -> active under a NEW rent id (continueRentNumber on a finished rent): index it, rent.started
        with its cost, and its charge in the books (``side``), in one step."""
        now = self.clock()
        event = make_event(EventType.RENT_STARTED, order_id, now, discriminator=rent_id, rent_id=rent_id,
                           phone=phone, end_date=end_date, previous_rent_id=old_rent_id, cost=cost,
                           currency=currency)
        prev = ",".join([*previous, old_rent_id] if old_rent_id else previous)
        return self.apply(order_id, Change(
            expect=states([RentState.FINISHED]), to=RentState.ACTIVE.value,
            match={R_CMD: RentCommand.PROLONGING.value}, ref=external(provider, rent_id), index=True, persist=True,
            set={R_RID: rent_id, R_PHONE: phone, R_END: end_date, R_END_AT: stamp(end_at), R_STARTED_AT: stamp(now),
                 R_PREV: prev or None, R_SMS: "0", R_COST: cost,
                 R_CURRENCY: None if currency is None else str(currency), R_PAID: str(paid)},
            delete=(R_CMD, R_CMD_HOURS, R_CMD_AT, R_REASON), deadline=self.config.first_poll(now, end_at),
            events=(event,), side=side), now=now)

    # ------------------------------------------------------------------ bookkeeping without a state change
    def drop_command(self, order_id: str, state: RentState, *, error: str, due: float | None) -> Result[RentState]:
        """The provider refused the command (CANT_CANCEL, RENT_DIE, …): forget it, keep the reason for GET."""
        return self.apply(order_id, Change(expect=states([state]), set={R_CMD_ERR: error},
                                           delete=(R_CMD, R_CMD_HOURS, R_CMD_AT), deadline=due,
                                           clear_deadline=due is None, hist=f"cmd_refused:{error}"))

    def rearm(self, order_id: str, *, state: RentState, due: float, fails: bool = False,
              reset_fails: bool = False, pipe: Any = None) -> Result[RentState]:
        """Next deadline, only if still in ``state`` (a stale sweeper cannot undo news)."""
        return self.apply(order_id, Change(expect=states([state]), deadline=due,
                                           incr={R_FAILS: 1} if fails else {},
                                           delete=(R_FAILS,) if reset_fails else ()), pipe=pipe)

    def drop_deadline(self, order_id: str) -> None:
        self.records.drop_deadline(order_id)
