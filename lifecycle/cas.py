"""The one write primitive of the domain: a compare-and-set on a record, with its event and deadline, atomic.

A :class:`Change` says what must hold (the record's state, optionally some fields, a code not yet seen) and what
to do (new state and fields, counters, the next deadline, an outbox event, an index entry, retention); the Lua
script ``lua/transition.lua`` applies all of it in one step or nothing. A re-delivered task re-running a change
finds the state already moved and gets :attr:`CasStatus.STALE` back: no second event. Activation orders and
rent orders are two :class:`RecordKind` s of the same primitive.
"""
from __future__ import annotations

import enum
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterable, Mapping, TypeVar, cast

import redis

from .clock import Clock, stamp, system_clock, ts
from .index import index_keys
from .keys import IndexEntry, Keys
from .outbox.events import EventSpec, OutboxConfig
from .scripts import ScriptPipeline, script

log = logging.getLogger("otpflow.lifecycle")

#: how long a terminal record (and its index entry) is kept unless its store is told otherwise: order-id
#: idempotency and GET /api/orders (the default of ORDER_RETENTION_SECONDS; config/domain.py passes the setting)
DEFAULT_RETENTION_SECONDS = 7 * 24 * 3600
#: the first KEYS index of a change's side keys in ``lua/transition.lua`` (after record, deadlines, events and the
#: two index keys)
SIDE_KEYS = 6
#: record fields every kind has: its state (what a Change compares) and when it last changed
F_STATE = "state"
F_UPDATED = "updated"


class CasStatus(enum.StrEnum):
    """What the compare-and-set did."""

    OK = "ok"            # applied
    STALE = "stale"      # the record is not in an expected state (or a matched field differs): nothing changed
    MISSING = "missing"  # no such record
    DUP = "dup"          # the code/fingerprint was already recorded: nothing changed
    QUEUED = "queued"    # queued on a pipeline; the caller executes it and cannot see the outcome


class TransitionError(RuntimeError):
    """The transition script answered something unexpected (a bug, not a state conflict)."""


S = TypeVar("S")


@dataclass(frozen=True)
class Result(Generic[S]):
    """Outcome of one compare-and-set: its status and the record's state after it (or as found); ``state`` is
    that state typed by the store of its kind (None when missing or queued)."""

    status: CasStatus
    raw_state: str = ""
    stream_id: str | None = None
    state: S | None = None

    @property
    def ok(self) -> bool:
        return self.status is CasStatus.OK


@dataclass(frozen=True)
class RecordKind:
    """Where one kind of record lives: its hash, its deadline set, its external-id index, and the record fields
    copied into its events inside Redis (so a writer need not read the record first)."""

    record_key: Callable[[str], str]
    deadlines: str
    index_entry: Callable[[str], IndexEntry]
    fill: Mapping[str, str]
    #: the record field holding its creation time (its short history counts seconds from it)
    created: str = "created"
    #: the record field holding when it last changed (every change writes it)
    updated: str = F_UPDATED
    #: ``old=new,...``: fields renamed since records were first written; a record still holding the first old
    #: name has them renamed by its next change (``lua/transition.lua``)
    renamed: str = ""


@dataclass(frozen=True)
class Side:
    """Bookkeeping applied with a change and only with it (exactly once): ``HINCRBY key field n`` (with an
    optional expiry), ``HSET``, ``HDEL key field`` or ``ZREM key member``."""

    op: str
    key: str
    field: str
    amount: int = 0
    value: str = ""
    ttl: int | None = None


@dataclass(frozen=True)
class Change:
    """One compare-and-set, as data (see ``lua/transition.lua`` for how each part is applied)."""

    #: states the record must be in (empty: any existing record)
    expect: frozenset[str] = frozenset()
    #: the new state; None keeps it (a "touch": re-arm a deadline, record a command)
    to: str | None = None
    #: fields to set (None values are skipped)
    set: Mapping[str, Any] = field(default_factory=dict)
    delete: tuple[str, ...] = ()
    incr: Mapping[str, int] = field(default_factory=dict)
    #: fields that must also hold ("" = absent), else STALE: a field-level compare-and-set
    match: Mapping[str, str] = field(default_factory=dict)
    #: dedupe key appended to the record's ``codes``; a repeat makes the change DUP
    code: str | None = None
    codes_max: int | None = None
    #: unix time of the next deadline; ``clear_deadline`` removes it; neither: left as is
    deadline: float | None = None
    clear_deadline: bool = False
    #: the outbox events of this change, written in order (an order's last number: its own event, then the order's)
    events: tuple[EventSpec, ...] = ()
    #: the external id (activation or rent id) this change concerns: its index entry is written (live) when
    #: ``index`` is set, and retired to expire with a terminal record (``lifecycle/keys.py``, IndexEntry)
    ref: str | None = None
    #: write ``ref`` -> this record into the index
    index: bool = False
    #: the record is now terminal: expire it (and its index entry) after the retention of its :class:`Records`
    terminal: bool = False
    #: expire only the index entry of ``ref`` after that retention (a replaced number's)
    retire_ref: bool = False
    #: remove an earlier expiry (a finished rent re-ordered by a prolongation is live again)
    persist: bool = False
    #: label for the short history (default: the new state, when there is one)
    hist: str | None = None
    #: bookkeeping applied only when the change is (spend, reservations, accounting)
    side: tuple[Side, ...] = ()


def states(values: Iterable[enum.Enum | str]) -> frozenset[str]:
    """State enums (or their values) as the stored strings a Change expects."""
    return frozenset(v.value if isinstance(v, enum.Enum) else v for v in values)


def _log_transition(record_id: str, change: Change, result: Result[str]) -> None:
    """One line per compare-and-set: the record, the states it expected, where it goes (its history label) and
    what happened. INFO for a change the short history records (a new state or a labelled one); a bare touch
    (a re-armed deadline) is DEBUG, so a poll loop does not fill the log."""
    level = logging.INFO if change.to is not None or change.hist else logging.DEBUG
    if not log.isEnabledFor(level):
        return
    came = "|".join(sorted(change.expect)) or "*"
    goes = change.hist or change.to or "touch"
    # a ref is ``<provider>:<its id there>`` (lifecycle.keys.external): the line names both
    provider, sep, ident = (change.ref or "").partition(":")
    if not sep:
        provider, ident = "", provider
    log.log(level, "order %s: %s -> %s %s", record_id, came, goes, result.status.value,
            extra={"order_id": record_id, "provider": provider or None, "activation_id": ident or None,
                   "from_state": came, "to_state": goes, "status": result.status.value,
                   "state": result.raw_state or None})


def _result(raw: Any) -> Result[str]:
    """The transition script's answer ``{status, state, event_stream_id}`` as a :class:`Result`."""
    try:
        status, state, sid = raw[0], raw[1], raw[2]
        return Result(CasStatus(str(status)), str(state or ""), sid or None)
    except (TypeError, IndexError, ValueError):
        raise TransitionError(f"unexpected transition answer {raw!r}") from None


class Records:
    """Applies :class:`Change` s to the records of one :class:`RecordKind`; a terminal record (and its index
    entry) expires ``retention`` seconds after its end."""

    def __init__(self, redis_client: redis.Redis, keys: Keys, kind: RecordKind, outbox: OutboxConfig, *,
                 retention: int, clock: Clock = system_clock) -> None:
        if retention <= 0:
            raise ValueError(f"retention must be > 0 seconds, got {retention!r}")
        self.redis = redis_client
        self.keys = keys
        self.kind = kind
        self.outbox = outbox
        self.retention = int(retention)
        self.clock = clock
        self._script = script(redis_client, "transition")

    def apply(self, record_id: str, change: Change, *, now: float | None = None, pipe: Any = None) -> Result[str]:
        """Run ``change`` on ``record_id``; with ``pipe`` it is only queued there (status QUEUED)."""
        keys, argv = self._script_args(record_id, change, self.clock() if now is None else now)
        if pipe is not None:
            self._script(keys=keys, args=argv, client=pipe)
            result: Result[str] = Result(CasStatus.QUEUED)
        else:
            result = _result(self._script(keys=keys, args=argv))
        _log_transition(record_id, change, result)
        return result

    def apply_many(self, changes: Iterable[tuple[str, Change]], *, now: float | None = None) -> list[Result[str]]:
        """Run several changes in ONE round trip (a pipeline, not a transaction), in order, and return each one's
        result: the drain applies a batch of webhooks this way. Each is still its own atomic compare-and-set, so
        two changes of one record see each other as sequential calls would."""
        at = self.clock() if now is None else now
        items = [(record_id, change, self._script_args(record_id, change, at)) for record_id, change in changes]
        if not items:
            return []
        pipe = ScriptPipeline(self.redis)
        for _record_id, _change, (keys, argv) in items:
            self._script(keys=keys, args=argv, client=pipe)
        results = [_result(raw) for raw in pipe.execute()]
        for (record_id, change, _args), result in zip(items, results):
            _log_transition(record_id, change, result)
        return results

    def _script_args(self, record_id: str, change: Change, now: float) -> tuple[list[str], list[str]]:
        """The transition script's keys and arguments for ``change`` (``lua/transition.lua`` reads them)."""
        fields = {k: (v.value if isinstance(v, enum.Enum) else str(v)) for k, v in change.set.items()
                  if v is not None}
        fields[self.kind.updated] = stamp(now)
        spec: dict[str, Any] = {"order_id": record_id, "expect": sorted(change.expect), "set": fields,
                                "now": int(now), "maxlen": self.outbox.maxlen}
        if change.to is not None:
            spec["to"] = change.to
        if change.delete:
            spec["del"] = list(change.delete)
        if change.incr:
            spec["incr"] = dict(change.incr)
        if change.code is not None:
            spec["code"] = change.code
            if change.codes_max is not None:
                spec["codes_max"] = int(change.codes_max)
        if change.match:
            spec["match"] = {k: str(v) for k, v in change.match.items()}
        if change.persist:
            spec["persist"] = True
        if change.clear_deadline:
            spec["undeadline"] = True
        elif change.deadline is not None:
            spec["deadline"] = ts(change.deadline)
        if change.events:
            spec["events"] = [{"type": e.type.value, "data": e.to_json(), "fill": dict(self.kind.fill)}
                              for e in change.events]
        if change.retire_ref:
            spec["ref_ttl"] = self.retention
        if change.index and change.ref:
            spec["index"] = record_id
        if change.terminal:
            spec["ttl"] = self.retention
        if change.hist:
            spec["hist"] = change.hist
        if change.to is not None or change.hist:
            spec["base"] = self.kind.created
        entry = self.kind.index_entry(change.ref) if change.ref else None
        if entry is not None:
            spec["ref_field"] = entry.field
        keys = [self.kind.record_key(record_id), self.kind.deadlines, self.keys.events, *index_keys(entry)]
        if change.side:
            extra = list(dict.fromkeys(op.key for op in change.side))
            keys += extra
            spec["side"] = [{"op": op.op, "k": SIDE_KEYS + extra.index(op.key), "f": op.field, "n": op.amount,
                             "v": op.value, **({"ttl": op.ttl} if op.ttl else {})} for op in change.side]
        argv = [json.dumps(spec, separators=(",", ":")), *([self.kind.renamed] if self.kind.renamed else [])]
        return keys, argv

    def read(self, record_id: str) -> dict[str, str] | None:
        """The record's fields (decode_responses=True clients), or None when there is no such record."""
        rec = cast(dict[str, str], self.redis.hgetall(self.kind.record_key(record_id)))
        return rec if rec and F_STATE in rec else None

    def read_many(self, record_ids: Iterable[str]) -> dict[str, dict[str, str] | None]:
        """Several records in one pipelined round trip (what a sweep does)."""
        ids = list(record_ids)
        if not ids:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for rid in ids:
            pipe.hgetall(self.kind.record_key(rid))
        return {rid: rec if rec and F_STATE in rec else None for rid, rec in zip(ids, pipe.execute())}

    def drop_deadline(self, record_id: str) -> None:
        """Remove a deadline whose record is gone or terminal."""
        self.redis.zrem(self.kind.deadlines, record_id)
