"""Celery app configuration, task registration, and tasks run by a real (in-thread) worker on memory://."""
from __future__ import annotations

import ssl
import time
from typing import Any

import pytest

from tests.support.waiting import wait_until

from config.settings import Settings
from lifecycle.activation.record import OrderRequest
from tasks import TASK_NAMES
from tasks import runtime as runtime_mod
from flows.runtime import Runtime
from worker.celery_app import QUEUE, celery_config, make_celery


def test_config_is_what_the_reliability_rules_ask() -> None:
    conf = celery_config(Settings(sweep_interval=5.0, downstream_task="down.task", downstream_queue="down"))
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"] and conf["worker_prefetch_multiplier"] == 1
    assert conf["broker_connection_retry_on_startup"] is True
    assert conf["worker_soft_shutdown_timeout"] < 30
    opts = conf["broker_transport_options"]
    assert opts["visibility_timeout"] <= 600 and opts["socket_timeout"] and opts["socket_connect_timeout"]
    assert conf["beat_schedule"]["otpflow-sweep"] == {"task": "otpflow.sweep", "schedule": 5.0,
                                                      "options": {"expires": 10.0}}
    assert conf["task_routes"]["down.task"] == {"queue": "down"}
    assert conf["task_ignore_result"] and conf["result_backend"] is None
    assert "broker_use_ssl" not in conf


def test_rediss_uses_cert_none() -> None:
    conf = celery_config(Settings(redis_url="rediss://h:6380/0"))
    assert conf["broker_use_ssl"] == {"ssl_cert_reqs": ssl.CERT_NONE}
    assert conf["redis_backend_use_ssl"] == {"ssl_cert_reqs": ssl.CERT_NONE}


def test_tasks_are_registered_under_contract_names() -> None:
    app = make_celery(Settings())
    import tasks  # noqa: F401

    app.loader.import_default_modules()
    for name in TASK_NAMES:
        assert name in app.tasks


@pytest.fixture
def memory_app() -> Any:
    app = make_celery(Settings())
    app.conf.broker_url = "memory://"
    app.conf.broker_transport_options = {}
    import tasks  # noqa: F401
    return app


def test_publish_by_name_lands_on_our_queue(memory_app: Any) -> None:
    memory_app.send_task("otpflow.place_order", kwargs={"order_id": "o1"})
    with memory_app.connection_for_read() as conn:
        queue = conn.SimpleQueue(QUEUE)
        msg = queue.get(timeout=2)
        assert msg.headers["task"] == "otpflow.place_order"
        assert msg.payload[1] == {"order_id": "o1"}
        msg.ack()
        queue.close()


def test_order_task_runs_in_a_worker(memory_app: Any, fake_redis: Any) -> None:
    """A real worker thread consumes `otpflow.order` from memory:// (not task_always_eager)."""
    from celery.contrib.testing.worker import start_worker

    from tests.unit.flows.fakes import FakeProvider

    published: list[tuple[str, dict[str, Any]]] = []
    rt = Runtime(settings=Settings(), redis=fake_redis, provider=FakeProvider(time.time),
                 publish=lambda n, k: published.append((n, dict(k))), consumer_name="t")
    runtime_mod.set_runtime(rt)
    try:
        with start_worker(memory_app, pool="solo", perform_ping_check=False, queues=[QUEUE], loglevel="WARNING"):
            memory_app.send_task("otpflow.order", kwargs={"service": "tg", "country": 0, "order_id": "w1"})
            memory_app.send_task("otpflow.order", kwargs={"service": "tg", "country": 0, "order_id": "w1"})
            # a third order behind them (one queue, one solo worker: first in, first out): once it is bought,
            # both deliveries of w1 have run
            memory_app.send_task("otpflow.order", kwargs={"service": "tg", "country": 0, "order_id": "marker"})
            wait_until(lambda: (m := rt.activations.get("marker")) is not None and m.state.value == "waiting",
                       timeout=10, message="the marker order was never bought")
        order = rt.activations.get("w1")
        assert order is not None and order.state.value == "waiting"
        assert rt.provider.count("get_number_v2") == 2  # w1 once, the marker once
        assert rt.orders.submit(OrderRequest("tg", order_id="w1"))[1] is False
    finally:
        runtime_mod.set_runtime(None)
