"""``otpflow doctor``'s broker line: one problem line with its fix when CELERY_BROKER_URL cannot be reached,
naming the broker without its credentials."""
from __future__ import annotations

import socket
from typing import Any

from config.settings import Settings
from otpflow.doctor import BROKER_TIMEOUT, Level, broker_checks
from worker.broker_probe import BrokerStatus


def test_no_broker_of_its_own_is_said_ok() -> None:
    [found] = broker_checks(Settings())
    assert found.level is Level.OK and "REDIS_URL" in found.said


def test_an_unreachable_broker_is_a_problem_with_its_fix() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"amqp://otp:pa55word@127.0.0.1:{port}/otp"
    [found] = broker_checks(Settings(celery_broker_url=url))
    line = found.line()
    assert found.level is Level.FAIL and line.startswith(f"FAIL broker: amqp://127.0.0.1:{port}/otp did not answer")
    assert "fix: start the broker there, or set CELERY_BROKER_URL" in line and "pa55word" not in line


def test_a_refused_login_says_to_fix_the_credentials() -> None:
    seen: dict[str, Any] = {}

    def prober(settings: Settings, url: str, *, timeout: float) -> BrokerStatus:
        seen.update(url=url, timeout=timeout)
        return BrokerStatus("amqp://mq:5672/otp", False, "AccessRefused", "ACCESS_REFUSED - Login was refused")

    [found] = broker_checks(Settings(celery_broker_url="amqp://otp:pw@mq/otp"), prober=prober)
    assert seen == {"url": "amqp://otp:pw@mq/otp", "timeout": BROKER_TIMEOUT}
    assert found.level is Level.FAIL and "refused us (AccessRefused" in found.said
    assert "fix: set the user and password of CELERY_BROKER_URL" in found.line()


def test_a_reachable_broker_is_ok() -> None:
    [found] = broker_checks(Settings(celery_broker_url="amqp://otp:pw@mq/otp"),
                            prober=lambda s, u, timeout: BrokerStatus("amqp://mq:5672/otp", True))
    assert found.level is Level.OK and found.said == "amqp://mq:5672/otp accepts connections"
