"""kombu's Redis transport for processes that only publish: one Redis connection per pooled producer, not two.

A kombu Redis channel keeps two connection pools: one it consumes with (BRPOP, SUBSCRIBE, read as they arrive)
and one for everything else (LPUSH, bindings, acknowledgements). When it opens it PINGs Redis on the first, and
that connection then sits idle in the pool for as long as the channel lives. A process that never consumes (the
web, the beat, a worker's pool children: the worker's main process is the only consumer) so holds two Redis
connections per producer for one it uses. This channel PINGs on the pool it publishes with, so the other is never
opened. Consumers keep kombu's own channel: ``worker.celery_app.publish_only_options`` names this transport for
publishing processes only (the web's producer, the beat and each pool child set it), and only when the broker is
a Redis.
"""
from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.utils.objects import cached_property


class PublishOnlyChannel(kombu_redis.Channel):
    """A Redis channel whose every command, the opening PING included, goes through its publishing pool."""

    @cached_property
    def client(self) -> Any:
        return self._create_client(asynchronous=False)

    def basic_consume(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a publish-only broker channel cannot consume (worker/broker_transport.py)")


class PublishOnlyTransport(kombu_redis.Transport):
    """kombu's Redis transport with :class:`PublishOnlyChannel`."""

    Channel = PublishOnlyChannel
