"""The pipeline with its Celery messages on RabbitMQ (``CELERY_BROKER_URL=amqp://…``) and its state in Redis.

Real parts, as in tests/integration/test_pipeline.py: gunicorn, a ``celery worker`` and ``celery beat``, the sandbox
over HTTP. The run's queue is named after its own ``KEY_PREFIX`` and deleted at the end, so runs sharing the
RabbitMQ never see each other's messages. Without a RabbitMQ these tests skip, naming what was tried
(``OTPFLOW_TEST_AMQP``, tests/support/amqp.py).
"""
from __future__ import annotations

import signal
from pathlib import Path
from typing import Iterator

import psutil
import pytest

from tests.support import amqp
from tests.support.pipeline import Pipeline
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.redis, pytest.mark.http, pytest.mark.processes]


@pytest.fixture(scope="module")
def pipeline(amqp_broker_url: str, redis_server_url: str,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    import redis as redis_lib

    url = f"{redis_server_url}/12"
    redis_lib.Redis.from_url(url).flushdb()
    prefix = amqp.session_prefix()
    pipe = Pipeline(redis_url=url, log_dir=Path(tmp_path_factory.mktemp("amqp-logs")),
                    extra_env={"CELERY_BROKER_URL": amqp_broker_url, "KEY_PREFIX": prefix})
    try:
        pipe.start()
        yield pipe
    finally:
        pipe.stop()
        amqp.delete_queue(amqp_broker_url, prefix)


@pytest.fixture(autouse=True)
def sandbox_defaults(pipeline: Pipeline) -> None:
    pipeline.control("settings", {"auto_sms_after": None, "drop_webhooks": False, "duplicate_webhooks": 1,
                                  "fail_mode": None, "webhook_url": pipeline.webhook_url})


def test_the_messages_go_through_rabbitmq_not_redis(pipeline: Pipeline, amqp_broker_url: str) -> None:
    queue = pipeline.extra_env["KEY_PREFIX"]
    wait_until(lambda: amqp.queue_state(amqp_broker_url, queue)[1] >= 1, timeout=30, check=pipeline.check_alive,
               message=lambda: f"no consumer on the queue {queue}\n{pipeline.logs()}")
    order_id = pipeline.order("tg")
    pipeline.wait_event(order_id, "number.assigned")
    # kombu's Redis transport keeps a queue as a list named after it, and its bindings in _kombu.binding.*
    client = pipeline.redis()
    assert not client.exists(queue) and not client.exists("otpflow")
    assert not list(client.scan_iter("_kombu.*"))


def test_order_to_finish_via_webhook(pipeline: Pipeline) -> None:
    order_id = pipeline.order("tg")
    assigned = pipeline.wait_event(order_id, "number.assigned")
    pipeline.control("sms", {"activation_id": assigned["activation_id"], "code": "482913",
                             "text": "Your code is 482913"})
    received = pipeline.wait_event(order_id, "code.received")
    assert received["code"] == "482913" and received["via"] == "webhook"
    finished = pipeline.wait_event(order_id, "activation.finished")
    assert finished["activation_id"] == assigned["activation_id"]


def test_cancel_command_before_a_code(pipeline: Pipeline) -> None:
    order_id = pipeline.order("vk")
    pipeline.wait_event(order_id, "number.assigned")
    assert pipeline.api("POST", f"/api/orders/{order_id}/cancel").status_code == 202
    pipeline.control("clock/advance", {"seconds": 125})  # past the provider's early-cancel window
    cancelled = pipeline.wait_event(order_id, "activation.cancelled", timeout=30)
    assert cancelled["reason"]


def test_sigkill_of_a_pool_child_mid_purchase_is_redelivered_and_buys_once(pipeline: Pipeline) -> None:
    """The task is unacknowledged while its process runs it (acks late): the worker rejects it when the process
    dies, RabbitMQ delivers it again at once, and the second run recovers the first purchase instead of buying."""
    before = len(_activations(pipeline))
    # the provider makes the next purchase, then holds its answer back for 30 s
    pipeline.control("settings", {"fail_mode": "timeout", "timeout_sleep": 30, "fail_next": 1})
    order_id = pipeline.order("tg")
    wait_until(lambda: len(_activations(pipeline)) > before, timeout=20, check=pipeline.check_alive,
               message=lambda: f"no purchase reached the provider\n{pipeline.logs()}")
    for child in psutil.Process(pipeline.processes["worker"].pid).children(recursive=True):
        child.send_signal(signal.SIGKILL)
    pipeline.control("settings", {"fail_mode": None})
    pipeline.wait_event(order_id, "number.assigned", timeout=60)
    assert [k for k, _ in pipeline.events(order_id)].count("number.assigned") == 1
    assert len(_activations(pipeline)) == before + 1, _activations(pipeline)
    assert "WorkerLostError" in pipeline.processes["worker"].log()


def _activations(pipeline: Pipeline) -> list[dict]:
    activations = pipeline.sandbox_state()["activations"]
    return list(activations.values()) if isinstance(activations, dict) else list(activations)
