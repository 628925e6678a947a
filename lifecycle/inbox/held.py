"""Webhooks that arrive before their purchase answer is stored ("early" webhooks), held briefly and replayed.

The provider may deliver the SMS webhook for activation X while our order is still ``buying`` (the getNumberV2
answer not yet written). Instead of only recording it as unknown (and waiting POLL_AFTER for the poll), the
consumer holds it under ``held:<kind>:<id>`` (bounded list, TTL ~1 h); the flow that stores the number replays
it through the normal consumer path right after the index is written. The hold is atomic with the index check
(``lua/hold.lua``), and the replayed transition is deduplicated on the code/SMS fingerprint, so a webhook is
applied exactly once however the two paths interleave.
"""
from __future__ import annotations

import json
import logging
from typing import Any, Mapping

import redis

from ..index import index_keys
from ..keys import IndexEntry, Keys
from ..scripts import script
from .fingerprint import WebhookKind

log = logging.getLogger(__name__)

#: how long an early webhook is kept (the provider's own retries span 2 h; the poll catches what expires)
HELD_TTL = 3600
#: at most this many webhooks are held per activation/rent id (an id gets only a few SMS before it is stored)
HELD_MAX = 16
#: at most this many bytes are held per HELD_TTL window across every id: webhooks for ids that never become ours
#: (an account shared with another tool, a hostile sender with the token) cannot fill Redis; held lists live at
#: most one window past their last push, so at most twice this is ever held (a few percent of a 25 MB plan)
HELD_MAX_BYTES = 1024 * 1024


class HeldWebhooks:
    """Hold and take early webhooks, per (kind, id)."""

    def __init__(self, redis_client: redis.Redis, keys: Keys) -> None:
        self.redis = redis_client
        self.keys = keys
        self._hold = script(redis_client, "hold")

    def _index_entry(self, kind: WebhookKind, ref: str) -> IndexEntry:
        return self.keys.rent_index(ref) if kind is WebhookKind.RENT else self.keys.activation_index(ref)

    def hold(self, kind: WebhookKind | str, ref: str, payload: Mapping[str, Any]) -> str | None:
        """Hold ``payload`` unless ``ref`` got indexed meanwhile; returns that order id in the latter case. Past
        the window's byte budget nothing is held (logged): the poll still finds the code."""
        kind = WebhookKind(kind)
        raw = json.dumps(dict(payload), separators=(",", ":"), ensure_ascii=False, default=str)
        entry = self._index_entry(kind, ref)
        known = self._hold(keys=[*index_keys(entry), self.keys.held(kind.value, ref), self.keys.held_bytes],
                           args=[raw, HELD_MAX, HELD_TTL, HELD_MAX_BYTES, entry.field])
        if known == "!":
            log.warning("early %s webhook for %s not held: %d bytes already held this hour", kind.value, ref,
                        HELD_MAX_BYTES)
            return None
        return str(known) if known else None

    def peek(self, kind: WebhookKind | str, ref: str) -> list[dict[str, Any]]:
        """The held payloads, oldest first (left in place until :meth:`drop`, so a crash loses none)."""
        kind = WebhookKind(kind)
        out: list[dict[str, Any]] = []
        for raw in self.redis.lrange(self.keys.held(kind.value, ref), 0, -1):
            try:
                value = json.loads(raw)
            except ValueError:
                log.warning("held %s webhook for %s is not JSON; dropped", kind, ref)
                continue
            if isinstance(value, dict):
                out.append(value)
        return out

    def drop(self, kind: WebhookKind | str, ref: str, count: int) -> None:
        """Remove the first ``count`` held payloads (the ones just replayed; later arrivals stay)."""
        if count > 0:
            self.redis.ltrim(self.keys.held(WebhookKind(kind).value, ref), count, -1)
