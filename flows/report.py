"""What one sweep did, the per-sweep circuit breaker, and backing off: shared by the activation and rent halves."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from provider.backoff import Backoff

from .outcomes import Outcome


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
    #: batches of SWEEP_BATCH claimed (activations and rents)
    batches: int = 0
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


class _Rearms(Protocol):
    """A store that can re-arm one of its records' deadlines (both halves' stores can)."""

    def rearm(self, order_id: str, *, state: Any, due: float, fails: bool = False) -> object: ...


class _Retried(Protocol):
    @property
    def order_id(self) -> str: ...
    @property
    def state(self) -> Any: ...
    @property
    def fails(self) -> int: ...


def back_off(store: _Rearms, order: _Retried, backoff: Backoff, now: float, report: SweepReport, *,
             count: bool = True) -> Outcome:
    """Provider unavailable: keep the state, re-arm with exponential backoff and jitter (never lose a deadline);
    ``count`` adds the failure to the record's ``fails`` (a breaker already open for this batch does not)."""
    store.rearm(order.order_id, state=order.state, due=now + backoff.delay(order.fails), fails=count)
    report.did("backoff")
    return Outcome.BACKOFF
