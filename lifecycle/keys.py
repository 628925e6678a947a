"""Every Redis key otpflow touches, built in one place.

Keeping names here means a ``KEY_PREFIX`` change (several deployments on one Redis) moves every key at once, and
a reader sees the whole key layout in one screen. The events stream is the one key not under the prefix: its
name (``EVENTS_STREAM``) is a public contract.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

#: how many small hashes share the live index entries of one provider (per kind): a hash stays a compact listpack
#: up to Redis's hash-max-listpack-entries (512 by default), so up to about 500,000 live activations per provider
INDEX_BUCKETS = 1024


def external(provider: str, ident: str) -> str:
    """How an activation or rent is named across providers: ``<provider>:<its id there>``. Two providers' ids may
    collide; ours never do."""
    return f"{provider}:{ident}"


@dataclass(frozen=True)
class IndexEntry:
    """Where the index keeps one external id (:func:`external`) -> our order id.

    While its order is live, the entry is a field of one of INDEX_BUCKETS small hashes: about 50 B in a listpack,
    where a key of its own costs about 136 B on Redis 7.0, and waiting activations are what a plan's memory holds
    most of. Once the order ends, the entry moves to a key of its own (``retired``) that expires with the record,
    since a hash field cannot expire before Redis 7.4. Entries written before the buckets existed are such keys
    with no expiry; readers look in the bucket first, then at ``retired`` (``lifecycle/index.py``)."""

    bucket: str
    field: str
    retired: str


@dataclass(frozen=True)
class Keys:
    """Key builder for one deployment: its prefix and the name of its events stream."""

    prefix: str = "otpflow"
    events: str = "otpflow:events"

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    # ---------------------------------------------------------------- activations
    def order(self, order_id: str) -> str:
        """Hash: the order record (state, activation, timestamps, codes seen, short history)."""
        return self.key("order", order_id)

    def activation_index(self, ref: str) -> IndexEntry:
        """``provider:activation id`` (:func:`external`) -> order id (webhooks name the activation): a field of a
        bucket hash while the order is live, a string key once it ended (:class:`IndexEntry`)."""
        return self._index("aix", "aid", ref)

    def _index(self, live: str, retired: str, ref: str) -> IndexEntry:
        provider, _, ident = ref.partition(":")
        bucket = zlib.crc32(ident.encode()) % INDEX_BUCKETS
        return IndexEntry(self.key(live, provider, str(bucket)), ident, self.key(retired, ref))

    @property
    def deadlines(self) -> str:
        """Sorted set: order id scored by the unix time its next step is due (poll, cancel, finish, re-buy)."""
        return self.key("deadlines")

    @property
    def orders(self) -> str:
        """Sorted set: order id scored by when it was placed (GET /api/orders, the dashboard); kept as long as
        the records (ORDER_RETENTION_SECONDS after their end)."""
        return self.key("orders")

    # ---------------------------------------------------------------- rents
    def rent(self, order_id: str) -> str:
        """Hash: a rent order record, keyed by OUR order id (rent id, phone, end, SMS fingerprints seen)."""
        return self.key("rent", order_id)

    def rent_index(self, ref: str) -> IndexEntry:
        """``provider:rent id`` -> rent order id (a prolonged finished rent gets a new id: both point here); laid
        out as :meth:`activation_index` is."""
        return self._index("rix", "rid", ref)

    @property
    def rents(self) -> str:
        """Sorted set: rent order id scored by when it was placed (listings)."""
        return self.key("rents")

    @property
    def rent_deadlines(self) -> str:
        """Sorted set: rent order id scored by when its next step is due (poll, end, command, re-drive)."""
        return self.key("rent-deadlines")

    # ---------------------------------------------------------------- webhook inbox
    @property
    def inbox(self) -> str:
        """Stream: stored webhooks; an entry leaves it only when the drain acknowledges it (XACK + XDEL)."""
        return self.key("inbox")

    def inbox_seen(self, fingerprint: str) -> str:
        """String: dedupe marker of one webhook fingerprint (WEBHOOK_DEDUPE_TTL seconds)."""
        return self.key("inbox", "seen", fingerprint)

    @property
    def inbox_drain_flag(self) -> str:
        """String: present while a drain task is scheduled or running (SET NX EX)."""
        return self.key("inbox", "drain")

    @property
    def dead_letters(self) -> str:
        """Stream: malformed webhook bodies and undecodable inbox entries, kept for inspection (bounded)."""
        return self.key("inbox", "dead")

    @property
    def unknown_webhooks(self) -> str:
        """Stream: webhooks for activations or rents we do not know (bounded)."""
        return self.key("inbox", "unknown")

    @property
    def held_bytes(self) -> str:
        """Counter: bytes of early webhooks held in the current window (expires with it; bounds every list)."""
        return self.key("held-bytes")

    def held(self, kind: str, ref: str) -> str:
        """List: webhooks for an activation/rent (``provider:id``) not yet stored (purchase answer in flight)."""
        return self.key("held", kind, ref)

    # ---------------------------------------------------------------- providers: health, prices, unsettled purchases
    def breaker(self, provider: str) -> str:
        """Hash: a provider's circuit breaker (consecutive failures, open until), shared by every worker."""
        return self.key("breaker", provider)

    def breaker_probe(self, provider: str) -> str:
        """String: held by the one caller allowed to probe a provider whose cool-down has passed (half-open)."""
        return self.key("breaker", provider, "probe")

    def balance(self, provider: str) -> str:
        """Hash: a provider's last balance (``amount``, ``at``), whether it is below its threshold (``low``) and how
        many times it crossed it (``crossings``), shared by every beat and worker."""
        return self.key("balance", provider)

    def quote(self, provider: str, service: str, country: int | None) -> str:
        """String (JSON, with a TTL): a provider's cached price and stock for a service and country."""
        return self.key("quote", provider, service, "" if country is None else str(country))

    def quote_refresh(self, service: str, country: int | None) -> str:
        """String: set while a price refresh for a service and country is scheduled (at most one per TTL)."""
        return self.key("quote-refresh", service, "" if country is None else str(country))

    # ---------------------------------------------------------------- money
    def spend(self, provider: str, window: str, bucket: str) -> str:
        """Hash: a provider's net spend (``spent``, millionths) in one calendar UTC hour (``h``) or day (``d``)."""
        return self.key("spend", provider, window, bucket)

    def reservations(self, provider: str) -> str:
        """Sorted set: a provider's live purchase reservations, by expiry."""
        return self.key("spend", provider, "held")

    def reserved(self, provider: str) -> str:
        """Hash: reservation id -> the amount it holds (millionths)."""
        return self.key("spend", provider, "held-amounts")

    def open_numbers(self, provider: str) -> str:
        """Hash: order id -> ``open`` (a number bought, not yet ended) or the expiry of a claimed purchase slot,
        at one provider (PROVIDER_<N>_MAX_ACTIVE)."""
        return self.key("open", provider)

    @property
    def accounting_index(self) -> str:
        """Hash: every accounting hash's key -> 1 (read instead of scanning the keyspace)."""
        return self.key("acct-index")

    def accounting(self, provider: str, service: str, country: int | None) -> str:
        """Hash: charged, refunded, numbers, codes, code_ms for one provider, service and country."""
        return self.key("acct", provider, service, "" if country is None else str(country))

    @property
    def unsettled(self) -> str:
        """Sorted set: purchases whose outcome was never learnt (``provider|orderId|order``), due to be looked up."""
        return self.key("unsettled")

    # ---------------------------------------------------------------- outbox relay, sweeper
    @property
    def relay_group(self) -> str:
        """Consumer group the outbox relay reads the events stream with."""
        return self.key("relay")

    @property
    def relay_kick(self) -> str:
        """String: set for a second after a relay task was published (at most one publish per second)."""
        return self.key("relay", "kick")

    @property
    def sweep_runs(self) -> str:
        """Counter: sweeps completed (a sign for tests and health checks that the sweeper's moment has passed)."""
        return self.key("sweep", "runs")

    # ---------------------------------------------------------------- heartbeats (read by /readyz, the dashboard)
    @property
    def beat_heartbeat(self) -> str:
        """String: unix time the last sweep completed (the beat publishes a sweep every SWEEP_INTERVAL)."""
        return self.key("heartbeat", "beat")

    @property
    def worker_heartbeats(self) -> str:
        """Sorted set: worker node name scored by the unix time one of its processes last finished a task."""
        return self.key("heartbeat", "workers")

    # ---------------------------------------------------------------- business counters (from the events stream)
    @property
    def event_counts(self) -> str:
        """Hash: counts of events by type and labels, and the id of the last event counted (``_cursor``)."""
        return self.key("metrics", "events")

    @property
    def event_numbers(self) -> str:
        """Hash: order id -> ``<activation id>|<unix time>`` of its number awaiting a first code (time to code)."""
        return self.key("metrics", "numbers")

    # ---------------------------------------------------------------- worker counters (read by the web /metrics)
    @property
    def worker_task_runs(self) -> str:
        """Hash: ``<task>|<outcome>`` -> tasks run, summed over every worker process."""
        return self.key("metrics", "task-runs")

    @property
    def worker_task_seconds(self) -> str:
        """Hash: task name -> total run seconds, summed over every worker process."""
        return self.key("metrics", "task-seconds")

    @property
    def worker_provider_calls(self) -> str:
        """Hash: ``<action>|<result>`` -> provider calls made by workers (result ``ok`` or the error class)."""
        return self.key("metrics", "provider-calls")

    @property
    def worker_provider_seconds(self) -> str:
        """Hash: action -> total seconds workers waited on the provider for it."""
        return self.key("metrics", "provider-seconds")
