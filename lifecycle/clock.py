"""Time as the domain sees it: a clock is a function returning unix seconds (tests pass their own)."""
from __future__ import annotations

import math
import time
from typing import Callable

Clock = Callable[[], float]


def system_clock() -> float:
    return time.time()


def ts(value: float) -> str:
    """A unix time as a sorted-set score or a script's argument (seconds, millisecond precision, no exponent)."""
    return f"{value:.3f}"


def stamp(value: float) -> str:
    """A unix time as a record field: whole seconds, rounded down (so a deadline derived from it only comes
    earlier). Redis keeps such digits in a listpack as a 4-byte integer, where the text "1796285661.107" takes 16
    bytes, and the record of a waiting activation holds three such times (README, Sizing Redis). Every release reads
    both forms as seconds, so records stay readable across a deploy and a rollback."""
    return str(math.floor(value))


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
