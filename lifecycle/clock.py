"""Time as the domain sees it: a clock is a function returning unix seconds (tests pass their own)."""
from __future__ import annotations

import time
from typing import Callable

Clock = Callable[[], float]


def system_clock() -> float:
    return time.time()


def ts(value: float) -> str:
    """A unix time as stored in records (millisecond precision, no exponent)."""
    return f"{value:.3f}"


def parse_float(raw: str | None) -> float | None:
    """A stored number, or None when absent or unreadable (a record never fails to load over one field)."""
    try:
        return float(raw) if raw not in (None, "") else None
    except ValueError:
        return None


def parse_int(raw: str | None) -> int:
    try:
        return int(raw) if raw else 0
    except ValueError:
        return 0
