"""Every state change of an order, each one atomic in Redis (``lua/transition.lua``).

Each method is a compare-and-set on the current state that, in one step, updates the record, appends the short
history, XADDs the downstream event to the events stream (the transactional outbox) and sets or clears the
order's deadline. A re-delivered task re-running a transition finds the state already moved and gets
``stale`` back: no second event. ``code.received`` is additionally deduplicated on the code itself.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import redis

from config.settings import Settings

from . import events as ev
from .keys import Keys
from .policy import Timing
from .scripts import script
from .states import COMMANDS, TERMINAL, State, sources
from .store import (F_AID, F_ATTEMPTS, F_BUYING_AT, F_CMD, F_CODE, F_CODE_AT, F_COST, F_FAILS, F_NUMBER_AT,
                    F_PHONE, F_REASON, F_RETRY_AT, F_UPDATED, F_VIA, Clock, system_clock, ts)

#: how long a terminal order (and its activation index) is kept: order-id idempotency and GET /api/orders
RETENTION_SECONDS = 7 * 24 * 3600

#: record fields copied into every activation event inside Redis (so writers need not read the record first)
FILL: dict[str, str] = {"activation_id": F_AID, "phone": F_PHONE, "service": "service", "country": "country"}


class TransitionError(RuntimeError):
    """The transition script answered something unexpected (a bug, not a state conflict)."""


@dataclass(frozen=True)
class Result:
    """Outcome of one compare-and-set."""

    status: str                  # ok | stale | missing | dup
    raw_state: str               # the state after (ok) or as found (stale, dup); "" when missing
    stream_id: str | None = None  # the events-stream id when an event was written

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def state(self) -> State | None:
        """The order state (None when missing, or for a record that is not an order, e.g. a rent)."""
        try:
            return State(self.raw_state) if self.raw_state else None
        except ValueError:
            return None


class Transitions:
    """The order state machine's writes."""

    def __init__(self, redis_client: redis.Redis, settings: Settings, *, clock: Clock = system_clock) -> None:
        self.redis = redis_client
        self.settings = settings
        self.keys = Keys(settings)
        self.timing = Timing(settings)
        self.clock = clock
        self._script = script(redis_client, "transition")

    # ------------------------------------------------------------------ the one primitive
    def apply(
        self,
        order_id: str,
        *,
        expect: Iterable[State | str] = (),
        to: State | str | None = None,
        set_fields: Mapping[str, Any] | None = None,
        delete: Iterable[str] = (),
        incr: Mapping[str, int] | None = None,
        code: str | None = None,
        deadline: float | None = None,
        remove_deadline: bool = False,
        event: ev.EventSpec | None = None,
        activation_id: str | None = None,
        index: bool = False,
        terminal: bool = False,
        hist: str | None = None,
        now: float | None = None,
        key: str | None = None,
        fill: Mapping[str, str] | None = None,
        client: Any = None,
        match: Mapping[str, str] | None = None,
        codes_max: int | None = None,
        persist: bool = False,
        index_key: str | None = None,
        deadlines_key: str | None = None,
    ) -> Result:
        """Run the compare-and-set; see ``lua/transition.lua`` for the meaning of each part.

        ``index_key``/``deadlines_key`` let other record kinds (rents) reuse the same atomic step with their own
        index and deadline set; ``match`` adds a field-level compare to the state compare."""
        now = self.clock() if now is None else now
        fields = {k: str(v) for k, v in (set_fields or {}).items() if v is not None}
        fields[F_UPDATED] = ts(now)
        spec: dict[str, Any] = {
            "order_id": order_id, "expect": [getattr(s, "value", s) for s in expect], "set": fields, "now": int(now),
            "maxlen": self.settings.events_maxlen,
        }
        if to is not None:
            spec["to"] = getattr(to, "value", to)
        if delete:
            spec["del"] = list(delete)
        if incr:
            spec["incr"] = dict(incr)
        if code is not None:
            spec["code"] = code
            if codes_max is not None:
                spec["codes_max"] = int(codes_max)
        if match:
            spec["match"] = {k: str(v) for k, v in match.items()}
        if persist:
            spec["persist"] = True
        if remove_deadline:
            spec["undeadline"] = True
        elif deadline is not None:
            spec["deadline"] = ts(deadline)
        if event is not None:
            spec["event"] = {"type": event.type, "data": event.to_json(), "fill": dict(FILL if fill is None else fill)}
        if index and (activation_id or index_key):
            spec["index"] = order_id
        if terminal:
            spec["ttl"] = RETENTION_SECONDS
        if hist:
            spec["hist"] = hist
        if index_key is None:
            index_key = self.keys.activation_index(activation_id) if activation_id else ""
        keys = [key or self.keys.order(order_id), deadlines_key or self.keys.deadlines, self.keys.events, index_key]
        argv = [json.dumps(spec, separators=(",", ":"))]
        if client is not None:  # queued on a pipeline: the caller executes it (and cannot see the result)
            self._script(keys=keys, args=argv, client=client)
            return Result("queued", "")
        raw = self._script(keys=keys, args=argv)
        try:
            status, state, sid = raw[0], raw[1], raw[2]
        except (TypeError, IndexError):
            raise TransitionError(f"unexpected transition answer {raw!r}") from None
        return Result(str(status), str(state or ""), sid or None)

    # ------------------------------------------------------------------ purchase
    def start_buying(self, order_id: str, *, expect: Iterable[State] = (State.PENDING,)) -> Result:
        now = self.clock()
        return self.apply(order_id, expect=expect, to=State.BUYING, set_fields={F_BUYING_AT: ts(now)},
                          deadline=now + self.timing.buying_stale, now=now)

    def assign_number(self, order_id: str, *, activation_id: str, phone: str, cost: str | None = None) -> Result:
        """buying (or pending, when recovering) -> waiting; writes number.assigned and the activation index."""
        now = self.clock()
        due = min(now + self.settings.poll_after, now + self.settings.activation_timeout)
        event = ev.make_event(ev.NUMBER_ASSIGNED, order_id, now, activation_id=activation_id, phone=phone)
        return self.apply(
            order_id, expect=sources(State.WAITING), to=State.WAITING,
            set_fields={F_AID: activation_id, F_PHONE: phone, F_COST: cost, F_NUMBER_AT: ts(now)},
            delete=(F_FAILS, F_REASON), deadline=due, event=event, activation_id=activation_id, index=True, now=now)

    def retry_purchase_later(self, order_id: str, *, reason: str, delay: float) -> Result:
        """A definite no-purchase (NO_NUMBERS): count the attempt, back to pending, due after ``delay``."""
        now = self.clock()
        return self.apply(order_id, expect=(State.BUYING,), to=State.PENDING, set_fields={F_REASON: reason},
                          incr={F_ATTEMPTS: 1}, delete=(F_FAILS,), deadline=now + delay, hist=f"retry:{reason}",
                          now=now)

    def purchase_backoff(self, order_id: str, *, reason: str, delay: float) -> Result:
        """A transient failure: stay buying (the same orderId will be tried again), due after ``delay``."""
        now = self.clock()
        return self.apply(order_id, expect=(State.BUYING,), set_fields={F_REASON: reason}, incr={F_FAILS: 1},
                          deadline=now + delay, now=now)

    def fail(self, order_id: str, *, reason: str) -> Result:
        now = self.clock()
        event = ev.make_event(ev.ORDER_FAILED, order_id, now, reason=reason)
        return self.apply(order_id, expect=sources(State.FAILED), to=State.FAILED, set_fields={F_REASON: reason},
                          delete=(F_CMD,), remove_deadline=True, event=event, terminal=True, now=now)

    # ------------------------------------------------------------------ codes
    def receive_code(self, order_id: str, *, code: str, via: str, text: str | None = None,
                     activation_id: str | None = None) -> Result:
        """A code arrived (webhook or poll). Deduplicated on the code: a repeat of a known code is ``dup``."""
        now = self.clock()
        due = now if self.settings.auto_finish else now + self.settings.finish_timeout
        event = ev.make_event(ev.CODE_RECEIVED, order_id, now, discriminator=code, code=code, text=text, via=via)
        return self.apply(order_id, expect=sources(State.CODE_RECEIVED), to=State.CODE_RECEIVED,
                          set_fields={F_CODE: code, F_CODE_AT: ts(now), F_VIA: via}, code=code, deadline=due,
                          event=event, activation_id=activation_id, hist=f"{State.CODE_RECEIVED.value}:{via}", now=now)

    def retry_requested(self, order_id: str) -> Result:
        """setStatus 3 succeeded: wait for another code."""
        now = self.clock()
        return self.apply(order_id, expect=(State.CODE_RECEIVED,), to=State.WAITING_RETRY,
                          set_fields={F_RETRY_AT: ts(now)}, delete=(F_CMD, F_FAILS),
                          deadline=now + self.settings.poll_after, now=now)

    # ------------------------------------------------------------------ endings
    def finish(self, order_id: str, *, activation_id: str | None, reason: str | None = None) -> Result:
        now = self.clock()
        event = ev.make_event(ev.ACTIVATION_FINISHED, order_id, now, reason=reason)
        return self.apply(order_id, expect=sources(State.FINISHED), to=State.FINISHED,
                          set_fields={F_REASON: reason}, delete=(F_CMD, F_FAILS), remove_deadline=True, event=event,
                          activation_id=activation_id, terminal=True, now=now)

    def cancel(self, order_id: str, *, activation_id: str | None, reason: str) -> Result:
        now = self.clock()
        event = ev.make_event(ev.ACTIVATION_CANCELLED, order_id, now, reason=reason)
        return self.apply(order_id, expect=sources(State.CANCELLED), to=State.CANCELLED,
                          set_fields={F_REASON: reason}, delete=(F_CMD, F_FAILS), remove_deadline=True, event=event,
                          activation_id=activation_id, terminal=True, now=now)

    # ------------------------------------------------------------------ bookkeeping without a state change
    def rearm(self, order_id: str, *, state: State, due: float, fails: int | None = None,
              clear_command: bool = False, reset_fails: bool = False, client: Any = None) -> Result:
        """Set the next deadline only if the order is still in ``state`` (a stale sweeper cannot undo news).

        ``client``: a pipeline to queue the step on (a sweep re-arms thousands of orders in one round trip)."""
        incr = {F_FAILS: 1} if fails else None
        delete = tuple(f for f, on in ((F_CMD, clear_command), (F_FAILS, reset_fails)) if on)
        return self.apply(order_id, expect=(state,), deadline=due, incr=incr, delete=delete, client=client)

    def reset_fails(self, order_id: str, *, state: State) -> Result:
        return self.apply(order_id, expect=(state,), delete=(F_FAILS,))

    def drop_deadline(self, order_id: str) -> None:
        """Remove a deadline whose order is gone or terminal."""
        self.redis.zrem(self.keys.deadlines, order_id)

    def request_command(self, order_id: str, command: str) -> Result:
        """Record a downstream command (finish, retry, cancel) and make the order due now; ``stale`` = 409."""
        if command not in COMMANDS:
            raise ValueError(f"unknown command {command!r}")
        now = self.clock()
        return self.apply(order_id, expect=COMMANDS[command], set_fields={F_CMD: command}, deadline=now,
                          hist=f"cmd:{command}", now=now)


__all__ = ["Transitions", "Result", "TransitionError", "RETENTION_SECONDS", "TERMINAL"]
