"""What one sweep did, and the per-sweep circuit breaker (shared by the activation and rent halves)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
