"""flows.intake: the provider an accepted order's line names, when it is already known."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from flows.intake import known_provider
from lifecycle.activation.machine import State


@dataclass(frozen=True)
class Accepted:
    order_id: str = "o1"
    state: State = State.PENDING
    service: str = "tg"
    country: int | None = None
    provider: str | None = None
    preference: tuple[str, ...] = ()


@pytest.mark.parametrize("order, configured, expected", [
    (Accepted(), ("hero",), "hero"),                                  # the only one configured
    (Accepted(), ("hero", "grizzly"), None),                          # routing chooses at purchase
    (Accepted(preference=("grizzly",)), ("hero", "grizzly"), "grizzly"),  # the only one it allows
    (Accepted(preference=("grizzly", "hero")), ("hero", "grizzly"), None),
    (Accepted(provider="hero", preference=("grizzly",)), ("hero", "grizzly"), "hero"),  # the one it bought from
    (Accepted(preference=("gone",)), ("hero",), None),                # a name no longer configured: not known
])
def test_known_provider(order: Accepted, configured: tuple[str, ...], expected: str | None) -> None:
    assert known_provider(order, configured) == expected
