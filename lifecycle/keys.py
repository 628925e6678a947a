"""Every Redis key the lifecycle domain touches, built in one place from ``settings.key(...)``.

Keeping names here means a ``KEY_PREFIX`` change (several deployments on one Redis) moves every key at once,
and a reader can see the whole key layout in one screen.
"""
from __future__ import annotations

from dataclasses import dataclass

from config.settings import Settings


@dataclass(frozen=True)
class Keys:
    """Key builder bound to one Settings (prefix + events stream name)."""

    settings: Settings

    def order(self, order_id: str) -> str:
        """Hash: the order record (state, activation, timestamps, codes seen, short history)."""
        return self.settings.key("order", order_id)

    def activation_index(self, activation_id: str) -> str:
        """String: activation id -> order id (webhooks and polls name the activation, not our order)."""
        return self.settings.key("aid", activation_id)

    def rent(self, order_id: str) -> str:
        """Hash: a rent order record, keyed by OUR order id (rent id, phone, end, SMS fingerprints seen)."""
        return self.settings.key("rent", order_id)

    def rent_index(self, rent_id: str) -> str:
        """String: provider rent id -> rent order id (a prolonged finished rent gets a new id: both point here)."""
        return self.settings.key("rid", rent_id)

    @property
    def rent_deadlines(self) -> str:
        """Sorted set: rent order id scored by when its next step is due (poll, end, command, re-drive)."""
        return self.settings.key("rent-deadlines")

    def held(self, kind: str, ref: str) -> str:
        """List: webhooks for an activation/rent id not yet stored (purchase answer in flight), replayed later."""
        return self.settings.key("held", kind, ref)

    @property
    def deadlines(self) -> str:
        """Sorted set: order id scored by the unix time its next step is due (poll, cancel, finish, re-buy)."""
        return self.settings.key("deadlines")

    @property
    def events(self) -> str:
        """Stream: the downstream events (public contract; EVENTS_STREAM, not prefixed)."""
        return self.settings.events_stream

    @property
    def relay_group(self) -> str:
        """Consumer group the outbox relay reads the events stream with."""
        return self.settings.key("relay")

    @property
    def sweep_runs(self) -> str:
        """Counter: sweeps completed (a sign for tests and health checks that the sweeper's moment has passed)."""
        return self.settings.key("sweep", "runs")

    @property
    def worker_task_runs(self) -> str:
        """Hash: ``<task>|<outcome>`` -> tasks run, summed over every worker process (read by the web /metrics)."""
        return self.settings.key("metrics", "task-runs")

    @property
    def worker_task_seconds(self) -> str:
        """Hash: task name -> total run seconds, summed over every worker process (read by the web /metrics)."""
        return self.settings.key("metrics", "task-seconds")

    @property
    def worker_provider_calls(self) -> str:
        """Hash: ``<action>|<result>`` -> provider calls made by workers (result ``ok`` or the error class)."""
        return self.settings.key("metrics", "provider-calls")

    @property
    def worker_provider_seconds(self) -> str:
        """Hash: action -> total seconds workers waited on the provider for it."""
        return self.settings.key("metrics", "provider-seconds")
