"""worker/redis_gate.py: the consumer carries on reconnecting when kombu's Redis transport fails inside Celery's
clean-up of a lost connection (the channel's restore of an unacknowledged task after the connection was
collected), instead of ending the worker."""
from __future__ import annotations

from typing import Any

import pytest
from celery.worker.consumer import Consumer

from worker.redis_gate import GatedConsumer


def test_a_failing_clean_up_of_a_lost_connection_does_not_end_the_worker(monkeypatch: pytest.MonkeyPatch,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    def kombu_fails(self: Any, exc: BaseException) -> None:
        self.connection = None
        raise AttributeError("'NoneType' object has no attribute 'hostname'")

    monkeypatch.setattr(Consumer, "on_connection_error_after_connected", kombu_fails)
    consumer = GatedConsumer.__new__(GatedConsumer)
    consumer.connection = object()
    consumer.on_connection_error_after_connected(ConnectionError("Redis restarted"))
    assert consumer.connection is None
    assert "reconnecting" in caplog.text


def test_any_other_failure_still_surfaces(monkeypatch: pytest.MonkeyPatch) -> None:
    def other(self: Any, exc: BaseException) -> None:
        raise KeyError("not ours to hide")

    monkeypatch.setattr(Consumer, "on_connection_error_after_connected", other)
    consumer = GatedConsumer.__new__(GatedConsumer)
    with pytest.raises(KeyError):
        consumer.on_connection_error_after_connected(ConnectionError("x"))


def test_an_ack_on_a_channel_a_redis_restart_took_away_counts_as_a_connection_error() -> None:
    from worker.celery_app import make_celery
    from config.settings import Settings

    app = make_celery(Settings())
    from types import SimpleNamespace

    from kombu.asynchronous.timer import Timer

    controller = SimpleNamespace(use_eventloop=False, semaphore=None, pool=None)
    consumer = GatedConsumer(lambda *a, **k: None, app=app, timer=Timer(), pool=None, hub=None,
                             controller=controller)
    assert AttributeError in consumer.connection_errors   # the ack is logged, the task restored, the worker lives
    assert all(isinstance(e, type) for e in consumer.connection_errors)
