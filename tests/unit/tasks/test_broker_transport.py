"""worker/broker_transport.py against a real Redis: a publish-only producer holds one connection, kombu's own two;
and which processes use it (worker/celery_app.py, publish_only_options)."""
from __future__ import annotations

import secrets
from typing import Any

import pytest
import redis as redis_lib
from kombu import Connection, Exchange, Producer, Queue

from config.settings import Settings
from worker.broker_transport import PublishOnlyTransport
from worker.celery_app import PUBLISH_ONLY_TRANSPORT, publish_only_options


def _connections_named(client: redis_lib.Redis, name: str) -> int:
    return sum(1 for c in client.client_list() if c.get("name") == name)


@pytest.mark.redis
@pytest.mark.parametrize("transport, opened", [(None, 2), (PublishOnlyTransport, 1)])
def test_a_publish_only_producer_opens_one_redis_connection(redis_url: str, transport: Any, opened: int) -> None:
    name = f"otpflow-test-{secrets.token_hex(4)}"
    queue = Queue(name, Exchange(name, type="direct"), routing_key=name)
    observer = redis_lib.Redis.from_url(redis_url, decode_responses=True)
    with Connection(redis_url, transport=transport, transport_options={"client_name": name}) as conn:
        producer = Producer(conn.default_channel)
        for i in range(3):
            producer.publish({"n": i}, exchange=queue.exchange, routing_key=name, declare=[queue])
        assert _connections_named(observer, name) == opened
        assert observer.llen(name) == 3  # the messages are where kombu's consumers look for them
        if transport is not None:
            with pytest.raises(RuntimeError, match="cannot consume"):
                conn.default_channel.basic_consume(name, False, "tag", callback=lambda *a: None)
    observer.delete(name)


def test_only_a_redis_broker_gets_the_publish_only_transport() -> None:
    assert publish_only_options(Settings()) == {"broker_transport": PUBLISH_ONLY_TRANSPORT}
    assert publish_only_options(Settings(celery_broker_url="rediss://:p@cache:6380/1")) == {
        "broker_transport": PUBLISH_ONLY_TRANSPORT}
    assert publish_only_options(Settings(celery_broker_url="amqp://u:p@mq//")) == {}


def test_the_web_producer_publishes_only() -> None:
    from webhook.context import LazyCelery

    assert LazyCelery(Settings()).get().conf.broker_transport == PUBLISH_ONLY_TRANSPORT
    assert LazyCelery(Settings(celery_broker_url="amqp://u:p@mq//")).get().conf.broker_transport is None
