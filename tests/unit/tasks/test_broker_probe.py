"""worker/broker_probe.py: which broker is probed, how it is named, one bounded attempt, and the cache."""
from __future__ import annotations

import socket
import threading

import pytest

from config.settings import Settings
from worker.broker_probe import BrokerCheck, BrokerStatus, broker_check, probe, probed_url, where


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("url, shown", [
    ("amqp://user:pa55@mq.example/otp", "amqp://mq.example:5672/otp"),
    ("amqps://user:pa55@mq.example:5671//", "amqps://mq.example:5671//"),
    ("pyamqp://mq.example", "pyamqp://mq.example:5672/"),
    ("rediss://:pa55@cache.example:25061/2", "rediss://cache.example:25061/2"),
])
def test_where_names_a_broker_without_its_credentials(url: str, shown: str) -> None:
    assert where(url) == shown and "pa55" not in where(url) and "user" not in where(url)


def test_only_a_broker_other_than_redis_url_is_probed() -> None:
    assert probed_url(Settings()) is None and broker_check(Settings()) is None
    same = Settings(redis_url="redis://cache:6379/0", celery_broker_url="redis://cache:6379/0/")
    assert probed_url(same) is None
    other = Settings(celery_broker_url="amqp://u:p@mq//")
    assert probed_url(other) == "amqp://u:p@mq//"
    check = broker_check(other)
    assert check is not None and check.where == "amqp://mq:5672//"
    assert probed_url(Settings(celery_broker_url="redis://cache:6379/1")) == "redis://cache:6379/1"


@pytest.mark.parametrize("scheme", ["amqp", "redis"])
def test_a_refused_connection_is_one_attempt_named_without_the_password(scheme: str) -> None:
    port = _closed_port()
    url = f"{scheme}://user:pa55word@127.0.0.1:{port}/1"
    found = probe(Settings(celery_broker_url=url), url, timeout=1.0)
    assert not found.reachable and found.where == f"{scheme}://127.0.0.1:{port}/1"
    assert found.error in {"ConnectionRefusedError", "ConnectionError"}, found
    assert "pa55word" not in repr(found)


def test_the_answer_is_reused_for_the_cache_period_and_shared_by_threads() -> None:
    now = [100.0]
    calls: list[str] = []
    gate = threading.Event()

    def prober(settings: Settings, url: str) -> BrokerStatus:
        calls.append(url)
        gate.wait(5)
        return BrokerStatus("amqp://mq:5672//", True)

    check = BrokerCheck(Settings(), "amqp://u:p@mq//", ttl=5.0, clock=lambda: now[0], prober=prober)
    answers: list[BrokerStatus] = []
    threads = [threading.Thread(target=lambda: answers.append(check.status())) for _ in range(4)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(5)
    assert len(calls) == 1 and len(answers) == 4 and all(a.reachable and a.checked_at == 100.0 for a in answers)
    now[0] += 4.9
    check.status()
    assert len(calls) == 1
    now[0] += 0.1
    check.status()
    assert len(calls) == 2
