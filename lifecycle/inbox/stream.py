"""The webhook inbox: a Redis stream between the web process (producer) and the drain task (consumer).

Why a stream and not a Celery task per webhook: a Celery publish costs about as much as the whole rest of the
request, and providers retry (SMS-Activate up to 8 times in 2 h, HeroSMS waits only 3 s). So the web process
writes each webhook durably in ONE Redis round trip (a Lua script: drop a repeat, XADD, set the drain flag NX)
and publishes a ``otpflow.drain_inbox`` task only when no drain is already scheduled.

Keys (``lifecycle.keys.Keys``): the stream (entry fields ``kind``, ``payload`` JSON, ``fp``; never trimmed by
length: an entry leaves it only when the drain acknowledges it), a dedupe marker per fingerprint, the drain flag
(present = a drain is scheduled or running), dead letters and unknown-webhook records.

Dead letters and unknown records are kept for inspection only, so both are bounded by bytes as well as by count,
sized for the smallest Redis plans (25 MB): each entry keeps at most ``entry_max_bytes`` of its body (UTF-8
bytes, the full length noted), and each stream at most as many entries as fit its byte budget at that size. A
body that is not UTF-8 keeps (a bounded prefix of) its original bytes, base64-encoded, next to the readable text.

Consumers read through the consumer group ``drain`` (created idempotently with MKSTREAM).

Errors: every Redis failure surfaces as :class:`InboxUnavailable` (a ``redis.RedisError`` too), cause chained.
Pure redis-py: no Flask or Celery imports here.
"""
from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, TypeVar, cast

import redis
from redis.exceptions import ResponseError
from redis.typing import EncodableT, FieldT

from ..keys import Keys
from ..scripts import script
from ..streams import XReadRows
from .fingerprint import KINDS, WebhookKind

T = TypeVar("T")

GROUP = "drain"
#: bytes of a rejected body (or an unknown webhook's payload) kept per entry
ENTRY_MAX_BYTES = 2048
#: what an entry costs besides its body: reason, meta, time, id, and Redis's own bookkeeping
ENTRY_OVERHEAD_BYTES = 1024
#: bytes each inspection stream (dead letters, unknown webhooks) may take: a few percent of a 25 MB plan
STREAM_MAX_BYTES = 2 * 1024 * 1024
REASON_MAX_BYTES = 300
META_MAX_BYTES = 600


@dataclass(frozen=True)
class InboxConfig:
    """How long a delivered webhook is remembered (WEBHOOK_DEDUPE_TTL) and how many rejects are kept
    (DEAD_LETTER_MAXLEN, and a byte budget per inspection stream); the drain flag's lifetime bounds how long a
    lost drain publish delays a drain."""

    dedupe_ttl: int = 3 * 3600
    dead_letter_maxlen: int = 10_000
    drain_flag_ttl: int = 15
    #: seconds a drain that found the inbox empty keeps the flag and waits for more (DRAIN_LINGER); 0: none
    linger: float = 0.0
    entry_max_bytes: int = ENTRY_MAX_BYTES
    stream_max_bytes: int = STREAM_MAX_BYTES

    @property
    def inspection_maxlen(self) -> int:
        """Entries kept per inspection stream: the count limit, or fewer when the byte budget says so."""
        by_bytes = self.stream_max_bytes // (self.entry_max_bytes + ENTRY_OVERHEAD_BYTES)
        return max(1, min(self.dead_letter_maxlen, by_bytes))


class InboxError(Exception):
    """Base class of inbox errors."""


class InboxUnavailable(InboxError, redis.exceptions.RedisError):
    """Redis could not be reached or refused the write (connection, timeout, LOADING, READONLY, OOM...).

    The web app answers 503 on it so the provider retries; also a ``redis.RedisError`` for callers that catch those.
    """


@dataclass(frozen=True)
class AppendResult:
    """What one append did: ``duplicate`` (dropped), the stream ``entry_id``, and whether to publish a drain."""

    duplicate: bool
    entry_id: str | None
    schedule_drain: bool


@dataclass(frozen=True)
class InboxEntry:
    """One stored webhook, as the drain task sees it."""

    entry_id: str
    kind: WebhookKind
    payload: dict[str, Any]
    fingerprint: str = ""
    #: whose webhook it is (told by the token it was posted to); "" for an entry stored before providers had names
    provider: str = ""


#: built once: ``json.dumps`` with arguments builds an encoder per call (a third of its cost on a webhook)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)
_ASCII_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), default=str)


def _dumps(payload: Mapping[str, Any]) -> str:
    """Compact JSON that Redis can always store: text that UTF-8 cannot hold (a lone surrogate) is escaped."""
    text = _ENCODER.encode(payload)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _ASCII_ENCODER.encode(payload)
    return text


def clip(text: str, max_bytes: int) -> tuple[str, int]:
    """``text`` cut to at most ``max_bytes`` of UTF-8 (never inside a character), and its full length in bytes.

    What UTF-8 cannot hold (a lone surrogate) comes back as ``?``: the result can always be stored.
    """
    encoded = text.encode("utf-8", errors="replace")
    return encoded[:max_bytes].decode("utf-8", errors="ignore"), len(encoded)


def _meta_json(meta: Mapping[str, Any]) -> str:
    """The meta object as JSON within META_MAX_BYTES: long field messages shrink to the field names."""
    text = _dumps(meta)
    if len(text.encode("utf-8")) <= META_MAX_BYTES:
        return text
    fields = meta.get("fields")
    smaller = {**meta, "fields": [clip(str(name), 64)[0] for name in list(fields)[:10]]
               if isinstance(fields, Mapping) else "..."}
    text = _dumps(smaller)
    return text if len(text.encode("utf-8")) <= META_MAX_BYTES else _dumps({"truncated": True})


class Inbox:
    """Producer and consumer API over the inbox stream. Thread-safe as far as the redis client is."""

    def __init__(self, client: redis.Redis, keys: Keys, config: InboxConfig = InboxConfig(), *,
                 group: str = GROUP) -> None:
        self.redis = client
        self.keys = keys
        self.config = config
        self.group = group
        self.stream_key = keys.inbox
        self.drain_flag_key = keys.inbox_drain_flag
        self.dead_letter_key = keys.dead_letters
        self.unknown_key = keys.unknown_webhooks
        self._append = script(client, "inbox_append")
        self._ttl_args = (str(int(config.dedupe_ttl)), str(int(config.drain_flag_ttl)))
        self._group_ready = False

    # ---------------------------------------------------------------- producer side (web process)

    def append(self, kind: WebhookKind | str, payload: Mapping[str, Any], fingerprint: str, *,
               provider: str = "") -> AppendResult:
        """Store one webhook of ``provider`` durably, in one round trip; say whether it was a repeat (of the same
        provider's: two providers' identical payloads are two webhooks) and whether to publish a drain."""
        kind = kind if type(kind) is WebhookKind else WebhookKind(kind)
        if not fingerprint:
            raise ValueError("fingerprint must not be empty")
        seen = self.keys.inbox_seen(f"{provider}:{fingerprint}" if provider else fingerprint)
        try:  # every webhook comes through here: no closure, one call (see LuaScript)
            raw = self._append((seen, self.stream_key, self.drain_flag_key),
                               (*self._ttl_args, kind.value, _dumps(payload), fingerprint, provider))
        except redis.RedisError as exc:
            raise InboxUnavailable(f"redis: {type(exc).__name__}: {exc}") from exc
        status = raw.decode() if isinstance(raw, bytes) else str(raw)
        if status == "d":
            return AppendResult(duplicate=True, entry_id=None, schedule_drain=False)
        if status[:1] not in ("s", "q") or len(status) < 4:
            raise InboxError(f"unexpected answer from the inbox append script: {status[:40]!r}")
        return AppendResult(duplicate=False, entry_id=status[1:], schedule_drain=status[0] == "s")

    def dead_letter(self, reason: str, body: str | bytes, meta: Mapping[str, Any] | None = None) -> str:
        """Keep a rejected body for inspection, in a stream bounded by count and bytes (see the module doc)."""
        fields = self._dead_letter_fields(reason, body, meta)
        return str(self._call(lambda: self.redis.xadd(
            self.dead_letter_key, fields, maxlen=self.config.inspection_maxlen, approximate=False)))

    def _dead_letter_fields(self, reason: str, body: str | bytes,
                            meta: Mapping[str, Any] | None) -> dict[FieldT, EncodableT]:
        """``body`` as text within the entry's byte budget; bytes that are not UTF-8 also as base64 (half each)."""
        limit = self.config.entry_max_bytes
        original: bytes | None = None
        if isinstance(body, bytes):
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                text, original = body.decode("utf-8", errors="replace"), body
        else:
            text = body
        kept, size = clip(text, limit if original is None else limit // 2)
        fields: dict[FieldT, EncodableT] = {
            "reason": clip(reason, REASON_MAX_BYTES)[0],
            "body": kept,
            "truncated": "1" if len(kept.encode("utf-8")) < size else "0",
            "bytes": str(len(original) if original is not None else size),
            "meta": _meta_json(dict(meta or {})),
            "at": f"{time.time():.3f}",
        }
        if original is not None:
            fields["raw_b64"] = base64.b64encode(original[: (limit // 2) * 3 // 4]).decode("ascii")
        return fields

    def record_unknown(self, kind: WebhookKind | str, payload: Mapping[str, Any], provider: str = "") -> str:
        """Record a webhook for an activation/rent we do not know (answered 200 so the provider stops retrying).

        Bounded like the dead letters: a payload over ``entry_max_bytes`` keeps its first bytes (as text, no
        longer JSON) with ``truncated`` set and its full length in ``bytes``.
        """
        kept, size = clip(_dumps(payload), self.config.entry_max_bytes)
        fields: dict[FieldT, EncodableT] = {"kind": WebhookKind(kind).value, "payload": kept,
                                            "provider": provider, "at": f"{time.time():.3f}"}
        if len(kept.encode("utf-8")) < size:
            fields["truncated"] = "1"
            fields["bytes"] = str(size)
        return str(self._call(lambda: self.redis.xadd(
            self.unknown_key, fields, maxlen=self.config.inspection_maxlen, approximate=False)))

    # ---------------------------------------------------------------- consumer side (drain task)

    def begin_drain(self) -> None:
        """Delete the drain flag BEFORE reading: an append after this point schedules a new drain (no lost wake-up)."""
        self._call(lambda: self.redis.delete(self.drain_flag_key))

    def hold_drain(self) -> None:
        """Take the drain flag while a drain waits for more: appends meanwhile find it set and publish nothing,
        since the waiting drain reads them. Its TTL bounds what a drain that dies holding it can delay."""
        ttl = self.config.drain_flag_ttl
        self._call(lambda: self.redis.set(self.drain_flag_key, "draining", ex=ttl))

    def ensure_group(self) -> None:
        """Create the consumer group (and the stream) if missing; idempotent."""
        def create() -> None:
            try:
                self.redis.xgroup_create(self.stream_key, self.group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        self._call(create)
        self._group_ready = True

    def read_batch(self, consumer: str, count: int = 100, *, block_ms: int | None = None) -> list[InboxEntry]:
        """Read up to ``count`` new entries for ``consumer``; ack them after processing. Non-blocking, or waiting
        up to ``block_ms`` for the first one (keep it well under the client's socket time-out)."""
        rows = self._with_group(lambda: cast("XReadRows | None", self.redis.xreadgroup(
            self.group, consumer, {self.stream_key: ">"}, count=count, block=block_ms)))
        entries: list[tuple[str, Mapping[str, str] | None]] = []
        for _stream, items in rows or []:
            entries.extend(items)
        return self._decode(entries)

    def read_own_pending(self, consumer: str, count: int = 100) -> list[InboxEntry]:
        """Re-read entries this consumer name was given but never acknowledged (after its own restart)."""
        rows = self._with_group(lambda: cast("XReadRows | None", self.redis.xreadgroup(
            self.group, consumer, {self.stream_key: "0"}, count=count)))
        entries: list[tuple[str, Mapping[str, str] | None]] = []
        for _stream, items in rows or []:
            entries.extend(items)
        return self._decode(entries)

    def ack(self, entry_ids: Iterable[str]) -> int:
        """Acknowledge processed entries and delete them (XACK + XDEL in one MULTI), so XLEN = work not done."""
        ids = list(entry_ids)
        if not ids:
            return 0

        def run() -> int:
            pipe = self.redis.pipeline(transaction=True)
            pipe.xack(self.stream_key, self.group, *ids)
            pipe.xdel(self.stream_key, *ids)
            acked, _deleted = pipe.execute()
            return int(acked)
        return self._call(run)

    def claim_stale(self, consumer: str, min_idle_ms: int = 60_000, count: int = 100) -> list[InboxEntry]:
        """Take over entries a dead consumer read but never acknowledged (XAUTOCLAIM), up to ``count``."""
        claimed: list[tuple[str, Mapping[str, str] | None]] = []
        start = "0-0"
        for _ in range(100):  # bounded: each XAUTOCLAIM scans at most 10*count PEL entries
            result = self._with_group(lambda: self.redis.xautoclaim(
                self.stream_key, self.group, consumer, min_idle_time=min_idle_ms, start_id=start,
                count=count - len(claimed)))
            start, items = result[0], result[1]
            if any(raw_id is None for raw_id, _fields in items):
                # Redis 6.2 claims entries deleted while pending as nil rows, without their ids: find them in
                # our pending list and acknowledge them, or they would stay there for ever
                self._ack_deleted_pending(consumer)
                items = [item for item in items if item[0] is not None]
            claimed.extend(items)
            if len(claimed) >= count or start in ("0-0", b"0-0"):
                break
        return self._decode(claimed)

    def _ack_deleted_pending(self, consumer: str, scan: int = 1000) -> None:
        rows = self._call(lambda: self.redis.xpending_range(self.stream_key, self.group, min="-", max="+",
                                                            count=scan, consumername=consumer))
        ids = [row["message_id"] for row in rows]
        if not ids:
            return
        pipe = self.redis.pipeline(transaction=False)
        for entry_id in ids:
            pipe.xrange(self.stream_key, min=entry_id, max=entry_id, count=1)
        present = self._call(pipe.execute)
        gone = [(i.decode() if isinstance(i, bytes) else str(i)) for i, found in zip(ids, present) if not found]
        if gone:
            self.ack(gone)

    def pending_count(self) -> int:
        """Webhooks stored but not yet acknowledged (new + in flight): acked entries are deleted, so this is XLEN."""
        return int(self._call(lambda: self.redis.xlen(self.stream_key)))

    def dead_letter_count(self) -> int:
        """Entries in the dead-letter stream (bounded)."""
        return int(self._call(lambda: self.redis.xlen(self.dead_letter_key)))

    def unknown_count(self) -> int:
        """Entries in the unknown-webhook stream (bounded)."""
        return int(self._call(lambda: self.redis.xlen(self.unknown_key)))

    # ---------------------------------------------------------------- internals

    def _decode(self, items: Iterable[tuple[Any, Mapping[Any, Any] | None]]) -> list[InboxEntry]:
        """Turn raw stream rows into entries; rows that cannot be decoded go to dead letters and are acked."""
        out: list[InboxEntry] = []
        gone: list[str] = []
        for raw_id, fields in items:
            entry_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
            if not fields:  # deleted while pending (Redis 6.2 reports these as empty rows)
                gone.append(entry_id)
                continue
            data = {(k.decode() if isinstance(k, bytes) else k):
                    (v.decode("utf-8", "replace") if isinstance(v, bytes) else v) for k, v in fields.items()}
            kind = data.get("kind", "")
            try:
                payload = json.loads(data.get("payload", ""))
                if kind not in KINDS or not isinstance(payload, dict):
                    raise ValueError(f"kind={kind!r}, payload type {type(payload).__name__}")
            except ValueError as exc:
                self.dead_letter("undecodable inbox entry", _dumps(data), {"entry_id": entry_id, "error": str(exc)})
                gone.append(entry_id)
                continue
            out.append(InboxEntry(entry_id=entry_id, kind=WebhookKind(kind), payload=payload,
                                  fingerprint=data.get("fp", ""), provider=data.get("prov", "")))
        if gone:
            self.ack(gone)
        return out

    def _with_group(self, fn: Callable[[], T]) -> T:
        """Run a group command, creating the group first (and again if the stream was deleted under us)."""
        if not self._group_ready:
            self.ensure_group()
        try:
            return self._call(fn)
        except InboxUnavailable as exc:
            if isinstance(exc.__cause__, ResponseError) and "NOGROUP" in str(exc.__cause__):
                self.ensure_group()
                return self._call(fn)
            raise

    @staticmethod
    def _call(fn: Callable[[], T]) -> T:
        try:
            return fn()
        except redis.RedisError as exc:
            if isinstance(exc, InboxUnavailable):
                raise
            raise InboxUnavailable(f"redis: {type(exc).__name__}: {exc}") from exc
