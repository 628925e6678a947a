"""Reading the external-id index (``provider:id`` -> our order id) laid out as :class:`lifecycle.keys.IndexEntry`
says: the live bucket field first, then the retired key, for a batch in one round trip. The writes happen inside
the records' transition script (``lua/transition.lua``) and the hold script (``lua/hold.lua``)."""
from __future__ import annotations

from typing import Sequence, cast

import redis

from .keys import IndexEntry


def lookup(redis_client: redis.Redis, entries: Sequence[IndexEntry]) -> list[str | None]:
    """The order id of each entry (None: not indexed), in order, in one pipelined round trip."""
    if not entries:
        return []
    pipe = redis_client.pipeline(transaction=False)
    for entry in entries:
        pipe.hget(entry.bucket, entry.field)
    pipe.mget([entry.retired for entry in entries])
    *live, retired = pipe.execute()
    return [cast("str | None", a if a is not None else b) for a, b in zip(live, retired)]


def index_keys(entry: IndexEntry | None) -> list[str]:
    """The two keys a script that reads or writes ``entry`` is given (``""`` twice: no entry)."""
    return [entry.bucket, entry.retired] if entry is not None else ["", ""]
