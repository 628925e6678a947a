"""One way for tests to wait: poll for a sign that the awaited thing happened, never sleep for a guessed time.

A fixed sleep passes on a fast machine and flakes on a slow one, and a sleep before asserting that something did
NOT happen passes whenever the system is merely slow. ``wait_until`` polls a condition instead; to assert that
nothing happened, first wait for a positive sign that the moment in question has passed (a later event, a sweep
counter, an empty inbox), then assert.
"""
from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T | None], *, timeout: float = 30.0, interval: float = 0.05,
               message: str | Callable[[], str] = "condition not met",
               check: Callable[[], None] | None = None) -> T:
    """Poll ``condition()`` until it returns a truthy value, and return that value.

    ``check()`` runs every round before the condition and may raise to stop the wait at once (e.g. "the worker
    exited early"). Once ``timeout`` seconds have passed and one more try failed, AssertionError is raised
    with ``message`` (a string, or a zero-argument callable building it lazily, e.g. from the logs).
    """
    deadline = time.monotonic() + timeout
    while True:
        if check is not None:
            check()
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"not within {timeout:g} s: {text}")
        time.sleep(interval)
