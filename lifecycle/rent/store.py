"""RentService: rent orders from submission to their end, every state change one atomic Redis step.

Each write goes through :meth:`Transitions.apply` (``lua/transition.lua``) on the rent record, with the rent
deadline set and the rent index: compare-and-set on the state, the outbox event (rent.started, rent.sms,
rent.finished, rent.cancelled, order.failed) and the next deadline in one step. A re-delivered task re-running a
step finds the state moved (``stale``) or the SMS fingerprint known (``dup``): no second event.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Iterable, cast

import redis

from config.settings import Settings

from . import events as ev
from .keys import Keys
from .orders import valid_order_id
from .rent_policy import SMS_FINGERPRINTS_KEPT, RentTiming, sms_fingerprint
from .rent_records import (PROLONGING, R_AMBIGUOUS, R_ATTEMPTS, R_BUYING_AT, R_CMD, R_CMD_AT, R_CMD_ERR,
                           R_CMD_HOURS, R_CREATED, R_END, R_END_AT, R_FAILS, R_PHONE, R_PREV, R_REASON, R_RID, R_SMS,
                           R_STARTED_AT, R_STATE, R_UPDATED, RENT_COMMANDS, RENT_TRANSITIONS, RentOrder, RentRequest,
                           RentState)
from .scripts import script
from .store import Clock, system_clock, ts
from .transitions import RETENTION_SECONDS, Result, Transitions

#: record fields copied into every rent event inside Redis
RENT_FILL: dict[str, str] = {"rent_id": R_RID, "phone": R_PHONE, "service": "service", "country": "country"}
MIN_HOURS, MAX_HOURS = 2, 1344   # protocol.md §4.6 (2–1344 per EN-DOC, 4–1344 per the seed)


class RentError(ValueError):
    """The request cannot be stored (bad order id, empty service, hours out of range)."""


class UnknownRent(LookupError):
    """No rent order with this id."""


class RentCommandConflict(RuntimeError):
    """The rent's state (or the provider's cancel rule) does not allow the command (HTTP 409)."""

    def __init__(self, order_id: str, command: str, state: RentState | None, reason: str = "state") -> None:
        self.order_id, self.command, self.state, self.reason = order_id, command, state, reason
        super().__init__(f"{command} not allowed for rent {order_id} ({reason}, state "
                         f"{state.value if state else '?'})")


@dataclass(frozen=True)
class RentCommandAccepted:
    order_id: str
    command: str
    state: RentState


def _sources(target: RentState) -> frozenset[RentState]:
    return RENT_TRANSITIONS[target]


class RentService:
    """Create, read, command and move rent orders."""

    def __init__(self, redis_client: redis.Redis, settings: Settings, *, clock: Clock = system_clock) -> None:
        self.redis = redis_client
        self.settings = settings
        self.keys = Keys(settings)
        self.clock = clock
        self.timing = RentTiming(settings)
        self.transitions = Transitions(redis_client, settings, clock=clock)
        self._create = script(redis_client, "create")

    # ------------------------------------------------------------------ reads
    def get(self, order_id: str) -> RentOrder | None:
        rec = cast(dict[str, str], self.redis.hgetall(self.keys.rent(order_id)))  # decode_responses=True
        return RentOrder.from_record(order_id, rec) if rec and R_STATE in rec else None

    def get_many(self, order_ids: Iterable[str]) -> dict[str, RentOrder | None]:
        ids = list(order_ids)
        pipe = self.redis.pipeline(transaction=False)
        for oid in ids:
            pipe.hgetall(self.keys.rent(oid))
        return {oid: RentOrder.from_record(oid, rec) if rec and R_STATE in rec else None
                for oid, rec in zip(ids, pipe.execute() if ids else [])}

    def order_for_rent(self, rent_id: str) -> str | None:
        return cast("str | None", self.redis.get(self.keys.rent_index(str(rent_id))))

    def known_rent_ids(self, rent_ids: Iterable[str]) -> dict[str, str | None]:
        ids = [str(r) for r in rent_ids]
        if not ids:
            return {}
        return dict(zip(ids, cast("list[str | None]", self.redis.mget([self.keys.rent_index(r) for r in ids]))))

    # ------------------------------------------------------------------ submission and commands
    def submit(self, request: RentRequest) -> tuple[RentOrder, bool]:
        """Store the rent order once (idempotent on ``order_id``); returns (order, created)."""
        if not request.service or not request.service.strip():
            raise RentError("service is required")
        if not MIN_HOURS <= int(request.hours) <= MAX_HOURS:
            raise RentError(f"rent_time: {MIN_HOURS}-{MAX_HOURS} hours")
        order_id = request.order_id or uuid.uuid4().hex
        if not valid_order_id(order_id):
            raise RentError("order_id: 1-128 characters of letters, digits, '-', '_', '.', ':'")
        now = self.clock()
        fields = request.record_fields() | {R_STATE: RentState.PENDING.value, R_CREATED: ts(now), R_UPDATED: ts(now)}
        flat = [x for kv in fields.items() for x in kv]
        created, _ = self._create(keys=[self.keys.rent(order_id), self.keys.rent_deadlines],
                                  args=[order_id, ts(now + self.timing.pending_stale),
                                        f"{RentState.PENDING.value}@{int(now)}", *flat])
        order = self.get(order_id)
        if order is None:
            raise UnknownRent(order_id)
        return order, bool(int(created))

    def request(self, order_id: str, command: str, *, hours: int | None = None) -> RentCommandAccepted:
        """Record a downstream command (finish, cancel, prolong) and make the rent due now; the worker acts.

        ``cancel`` is refused here (``cant_cancel``) when the provider would refuse it: after an SMS or after
        20 minutes (protocol.md §4.4), so the caller learns it at once instead of from a silent no-op."""
        if command not in RENT_COMMANDS:
            raise ValueError(f"unknown rent command {command!r}")
        if command == "prolong" and (hours is None or not MIN_HOURS <= int(hours) <= MAX_HOURS):
            raise RentError(f"hours: {MIN_HOURS}-{MAX_HOURS}")
        order = self.get(order_id)
        if order is None:
            raise UnknownRent(order_id)
        now = self.clock()
        if command == "cancel" and order.state is RentState.ACTIVE and not order.can_cancel(now):
            raise RentCommandConflict(order_id, command, order.state, "cant_cancel")
        fields = {R_CMD: command, R_CMD_AT: ts(now), R_CMD_HOURS: str(int(hours)) if hours else None}
        res = self.apply(order_id, expect=RENT_COMMANDS[command], set_fields=fields, delete=(R_CMD_ERR,),
                         match={R_CMD: ""}, deadline=now, hist=f"cmd:{command}", now=now)
        if res.status == "missing":
            raise UnknownRent(order_id)
        if not res.ok:
            state = RentState(res.raw_state) if res.raw_state else None
            busy = state in RENT_COMMANDS[command] if state else False
            raise RentCommandConflict(order_id, command, state, "command_pending" if busy else "state")
        return RentCommandAccepted(order_id, command, RentState(res.raw_state))

    # ------------------------------------------------------------------ the primitive, bound to rent keys
    def apply(self, order_id: str, *, expect: Iterable[RentState] = (), to: RentState | None = None,
              rent_id: str | None = None, index: bool = False, **kw: Any) -> Result:
        return self.transitions.apply(
            order_id, expect=[s.value for s in expect], to=to.value if to else None, key=self.keys.rent(order_id),
            deadlines_key=self.keys.rent_deadlines, index=index,
            index_key=self.keys.rent_index(rent_id) if rent_id else "", fill=RENT_FILL, **kw)

    # ------------------------------------------------------------------ purchase
    def start_buying(self, order_id: str) -> Result:
        now = self.clock()
        return self.apply(order_id, expect=(RentState.PENDING,), to=RentState.BUYING,
                          set_fields={R_BUYING_AT: ts(now)}, delete=(R_AMBIGUOUS,),
                          deadline=now + self.timing.buying_stale, now=now)

    def started(self, order_id: str, *, rent_id: str, phone: str, end_date: str | None, end_at: float) -> Result:
        """buying -> active: writes rent.started and the rent index (rent id -> order) in one step."""
        now = self.clock()
        event = ev.make_event(ev.RENT_STARTED, order_id, now, discriminator=rent_id, rent_id=rent_id, phone=phone,
                              end_date=end_date)
        return self.apply(order_id, expect=(RentState.BUYING,), to=RentState.ACTIVE, rent_id=rent_id, index=True,
                          set_fields={R_RID: rent_id, R_PHONE: phone, R_END: end_date, R_END_AT: ts(end_at),
                                      R_STARTED_AT: ts(now)},
                          delete=(R_FAILS, R_REASON, R_AMBIGUOUS), deadline=self.timing.first_poll(now, end_at),
                          event=event, now=now)

    def retry_later(self, order_id: str, *, reason: str, delay: float, transient: bool = False) -> Result:
        """A definite no-purchase: back to pending, due after ``delay`` (counts attempts or transient fails)."""
        now = self.clock()
        return self.apply(order_id, expect=(RentState.BUYING,), to=RentState.PENDING, set_fields={R_REASON: reason},
                          incr={R_FAILS if transient else R_ATTEMPTS: 1}, deadline=now + delay,
                          hist=f"retry:{reason}", now=now)

    def reconcile_later(self, order_id: str, *, reason: str, delay: float) -> Result:
        """An answer that may hide a purchase: stay buying, flagged, and reconcile (never re-send) after ``delay``."""
        now = self.clock()
        return self.apply(order_id, expect=(RentState.BUYING,), set_fields={R_REASON: reason, R_AMBIGUOUS: "1"},
                          deadline=now + delay, hist=f"ambiguous:{reason}", now=now)

    def fail(self, order_id: str, *, reason: str) -> Result:
        now = self.clock()
        event = ev.make_event(ev.ORDER_FAILED, order_id, now, discriminator="rent", kind="rent", reason=reason)
        return self.apply(order_id, expect=_sources(RentState.FAILED), to=RentState.FAILED,
                          set_fields={R_REASON: reason}, delete=(R_CMD,), remove_deadline=True, event=event,
                          terminal=True, now=now)

    # ------------------------------------------------------------------ SMS
    def sms(self, order_id: str, *, rent_id: str | None, text: str | None, phone_from: str | None,
            date: Any, via: str) -> Result:
        """One SMS on the rented number -> one rent.sms, deduplicated on (date, text, sender) in the same step."""
        now = self.clock()
        fp = sms_fingerprint(text, date, phone_from)
        event = ev.make_event(ev.RENT_SMS, order_id, now, discriminator=fp, rent_id=rent_id, text=text,
                              phone_from=phone_from, sms_date=_date_text(date), via=via)
        return self.apply(order_id, expect=(RentState.ACTIVE,), code=fp, codes_max=SMS_FINGERPRINTS_KEPT,
                          incr={R_SMS: 1}, event=event, hist=f"sms:{via}", now=now)

    # ------------------------------------------------------------------ endings, prolongation
    def end(self, order_id: str, *, cancelled: bool, reason: str, rent_id: str | None = None,
            keep_command: bool = False) -> Result:
        """active -> finished/cancelled with its event; the record is kept RETENTION_SECONDS (prolong, GET).

        ``keep_command``: a prolongation in flight found the rent over; it carries on as a re-order."""
        now = self.clock()
        etype = ev.RENT_CANCELLED if cancelled else ev.RENT_FINISHED
        event = ev.make_event(etype, order_id, now, discriminator=rent_id or "", reason=reason)
        return self.apply(order_id, expect=(RentState.ACTIVE,), to=RentState.CANCELLED if cancelled else
                          RentState.FINISHED, set_fields={R_REASON: reason},
                          delete=() if keep_command else (R_CMD, R_CMD_HOURS, R_CMD_AT), remove_deadline=True, event=event, terminal=True, rent_id=rent_id, now=now)

    def mark_prolonging(self, order_id: str, state: RentState) -> Result:
        """Claim the prolong command before the (non-idempotent) continueRentNumber call: a field-level CAS."""
        now = self.clock()
        return self.apply(order_id, expect=(state,), match={R_CMD: "prolong"},
                          set_fields={R_CMD: PROLONGING, R_CMD_AT: ts(now)},
                          deadline=now + self.timing.buying_stale, now=now)

    def prolonged(self, order_id: str, *, end_date: str | None, end_at: float) -> Result:
        """Same rent id, later end: no state change, no event type for it (GET shows the new end)."""
        now = self.clock()
        return self.apply(order_id, expect=(RentState.ACTIVE,), match={R_CMD: PROLONGING},
                          set_fields={R_END: end_date, R_END_AT: ts(end_at)},
                          delete=(R_CMD, R_CMD_HOURS, R_CMD_AT), deadline=min(now + self.settings.poll_interval, end_at),
                          hist="prolonged", now=now)

    def reordered(self, order_id: str, *, old_rent_id: str | None, previous: tuple[str, ...], rent_id: str,
                  phone: str, end_date: str | None, end_at: float) -> Result:
        """finished -> active under a NEW rent id (continueRentNumber on a finished rent): index it, rent.started."""
        now = self.clock()
        event = ev.make_event(ev.RENT_STARTED, order_id, now, discriminator=rent_id, rent_id=rent_id, phone=phone,
                              end_date=end_date, previous_rent_id=old_rent_id)
        prev = ",".join([*previous, old_rent_id] if old_rent_id else previous)
        return self.apply(order_id, expect=(RentState.FINISHED,), to=RentState.ACTIVE, match={R_CMD: PROLONGING},
                          rent_id=rent_id, index=True, persist=True,
                          set_fields={R_RID: rent_id, R_PHONE: phone, R_END: end_date, R_END_AT: ts(end_at),
                                      R_STARTED_AT: ts(now), R_PREV: prev or None, R_SMS: "0"},
                          delete=(R_CMD, R_CMD_HOURS, R_CMD_AT, R_REASON), deadline=self.timing.first_poll(now, end_at),
                          event=event, now=now)

    def drop_command(self, order_id: str, state: RentState, *, error: str, due: float | None) -> Result:
        """The provider refused the command (CANT_CANCEL, RENT_DIE, …): forget it, keep the reason for GET."""
        now = self.clock()
        return self.apply(order_id, expect=(state,), set_fields={R_CMD_ERR: error},
                          delete=(R_CMD, R_CMD_HOURS, R_CMD_AT), deadline=due, remove_deadline=due is None,
                          hist=f"cmd_refused:{error}", now=now)

    def rearm(self, order_id: str, *, state: RentState, due: float, fails: bool = False,
              reset_fails: bool = False, client: Any = None) -> Result:
        """Next deadline, only if still in ``state`` (a stale sweeper cannot undo news)."""
        return self.apply(order_id, expect=(state,), deadline=due, incr={R_FAILS: 1} if fails else None,
                          delete=(R_FAILS,) if reset_fails else (), client=client)

    def drop_deadline(self, order_id: str) -> None:
        self.redis.zrem(self.keys.rent_deadlines, order_id)


def _date_text(value: Any) -> str | None:
    from .rent_policy import normalize_sms_date

    text = normalize_sms_date(value)
    return text or None


__all__ = ["RentService", "RentError", "UnknownRent", "RentCommandConflict", "RentCommandAccepted", "RentOrder",
           "RentRequest", "RentState", "RENT_FILL", "RETENTION_SECONDS", "sms_fingerprint"]
