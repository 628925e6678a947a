"""Shapes of redis-py stream replies as our clients get them (RESP2, ``decode_responses=True``)."""
from __future__ import annotations

#: XREADGROUP's reply: ``[(stream, [(entry id, fields, or None for an entry deleted since), ...]), ...]``
#: (redis-py also types the RESP3 dict form, which our clients never ask for)
XReadRows = list[tuple[str, list[tuple[str, dict[str, str] | None]]]]

#: XRANGE's and XREVRANGE's reply: ``[(entry id, fields), ...]``
Entries = list[tuple[str, dict[str, str]]]
#: XREAD's reply (no consumer group, so every entry read has its fields): ``[(stream, entries), ...]``
XReadReply = list[tuple[str, Entries]]
