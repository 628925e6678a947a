"""A record's short history: its last :data:`KEEP` steps, read back from the record's hash.

Each step is ``label@t``, comma-joined, oldest first, where ``t`` counts whole seconds from the record's creation
(``lua/create.lua`` writes the first step, ``lua/transition.lua`` the others). The text is split over fields ``h``,
``h1``, ``h2``... of at most :data:`CHUNK` bytes each: Redis keeps a hash as a compact listpack only while every
value is at most ``hash-max-listpack-value`` (64) bytes, and one longer value turns the whole record into a
hashtable, 2-3 times the memory (a finished order's record: 1,112 B instead of about 480 B on valkey 9, 1,648 B
instead of about 550 B on Redis 7.0; ``bench/sweep.py`` measures the waiting ones).

Records written before this layout hold one ``h`` field of unix times (at least :data:`ABSOLUTE`): they read as
they are, and their next transition rewrites them in this layout.
"""
from __future__ import annotations

import math
from typing import Mapping

#: the first history field; the next ones are ``h1``, ``h2``, ... (``lua/transition.lua`` writes them)
FIELD = "h"
#: steps kept, and bytes per history field (both also in ``lua/transition.lua``)
KEEP = 16
CHUNK = 64
#: a step's time at or above this is a unix time (a record written before times counted from creation)
ABSOLUTE = 1e9


def first(label: str) -> str:
    """The creation step, as ``lua/create.lua`` stores it."""
    return f"{label}@0"


def text(rec: Mapping[str, str]) -> str:
    """The whole history text of a record (its ``h``, ``h1``, ... fields joined)."""
    parts = []
    value = rec.get(FIELD)
    i = 0
    while value:
        parts.append(value)
        i += 1
        value = rec.get(f"{FIELD}{i}")
    return ",".join(parts)


def steps(raw: str, created: float | None) -> list[tuple[str, float]]:
    """``(label, unix time)`` of each step of a history text, given the record's creation time."""
    base = math.floor(created) if created else None
    out: list[tuple[str, float]] = []
    for item in raw.split(","):
        label, _, at = item.rpartition("@")
        if not label:
            continue
        try:
            t = float(at)
        except ValueError:
            t = 0.0
        if base is not None and abs(t) < ABSOLUTE:
            t += base
        out.append((label, t))
    return out
