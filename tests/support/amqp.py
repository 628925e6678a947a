"""A RabbitMQ for the tests that run the pipeline with ``CELERY_BROKER_URL`` on AMQP.

``OTPFLOW_TEST_AMQP`` picks it: unset or ``auto`` (the machine's RabbitMQ at 127.0.0.1:5672, guest/guest, vhost /;
the tests skip, naming what was tried, when it does not answer), ``required`` (the same server, but a test fails
instead of skipping: CI sets it), or an ``amqp://`` URL (that server, required). Each test run names its queue after
its own ``KEY_PREFIX`` (``worker/celery_app.py``, ``task_queue``), so runs sharing the vhost never see each other's
messages; :func:`delete_queue` removes what a run created, and :func:`private_queue` does both around a block.
``tests/conftest.py`` serves :func:`broker_url_or_skip` as the ``amqp_broker_url`` fixture.
"""
from __future__ import annotations

import contextlib
import os
import secrets
from typing import Iterator

import pytest
from amqp.exceptions import NotFound
from kombu import Connection, Exchange, Queue

from config.logging_setup import redact

ENV = "OTPFLOW_TEST_AMQP"
DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672//"
CONNECT_TIMEOUT = 3.0


class AmqpUnavailable(Exception):
    """No AMQP broker answered at the URL tried."""


def wanted() -> tuple[str, bool]:
    """The URL to try and whether a test must fail (not skip) when nothing answers there."""
    choice = os.environ.get(ENV, "auto").strip()
    if choice.startswith(("amqp://", "amqps://", "pyamqp://")):
        return choice, True
    if choice not in {"auto", "required", ""}:
        raise pytest.UsageError(f"{ENV}: expected auto, required or an amqp:// URL, got {choice!r}")
    return DEFAULT_URL, choice == "required"


def check(url: str) -> None:
    """Open (and close) one AMQP connection; AmqpUnavailable naming the URL (password masked) and the error."""
    try:
        with Connection(url, connect_timeout=CONNECT_TIMEOUT) as conn:
            conn.ensure_connection(max_retries=1, timeout=CONNECT_TIMEOUT)
    except Exception as exc:  # kombu raises socket, amqp and its own errors alike
        raise AmqpUnavailable(f"no AMQP broker at {redact(url)} ({type(exc).__name__}: {exc})") from exc


def session_prefix() -> str:
    """A ``KEY_PREFIX`` (and so a queue name) of this test run alone."""
    return f"otpflow-test-{secrets.token_hex(4)}"


def delete_queue(url: str, name: str) -> None:
    """Delete the queue ``name`` and its direct exchange (what Celery declared for ``task_queue``)."""
    with Connection(url, connect_timeout=CONNECT_TIMEOUT) as conn:
        channel = conn.channel()
        Queue(name, Exchange(name, type="direct"), routing_key=name)(channel).delete()
        Exchange(name, type="direct")(channel).delete()


@contextlib.contextmanager
def private_queue(url: str) -> Iterator[dict[str, str]]:
    """The environment of a pipeline whose Celery messages go to ``url`` on a queue of its own.

    Yields ``CELERY_BROKER_URL`` and a fresh ``KEY_PREFIX`` (the queue, its exchange and the run's Redis keys are
    named after it); on leaving, whatever happened inside, the queue (with any message still in it) and its
    exchange are deleted, so the next run starts from nothing and no other run ever sees them."""
    prefix = session_prefix()
    try:
        yield {"CELERY_BROKER_URL": url, "KEY_PREFIX": prefix}
    finally:
        delete_queue(url, prefix)


def queue_exists(url: str, name: str) -> bool:
    """Whether the queue ``name`` exists on the broker (a passive declare: nothing is created)."""
    try:
        queue_state(url, name)
    except NotFound:
        return False
    return True


def queue_state(url: str, name: str) -> tuple[int, int]:
    """(messages ready, consumers) of the queue ``name``, without declaring it (it must exist)."""
    with Connection(url, connect_timeout=CONNECT_TIMEOUT) as conn:
        _name, messages, consumers = conn.default_channel.queue_declare(queue=name, passive=True)
        return int(messages), int(consumers)


def broker_url_or_skip() -> str:
    """The URL of an AMQP broker that answers; skips naming what was tried (fails when one is required)."""
    url, required = wanted()
    try:
        check(url)
    except AmqpUnavailable as exc:
        if required:
            pytest.fail(f"{exc}; {ENV}={redact(os.environ.get(ENV, ''))} requires one", pytrace=False)
        pytest.skip(f"{exc}; set {ENV} to an amqp:// URL to use another, or start RabbitMQ there")
    return url
