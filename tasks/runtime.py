"""The worker process's one :class:`~flows.runtime.Runtime`, built lazily and rebuilt after fork.

A prefork child never shares a socket with its parent: ``worker.signals`` forgets the runtime after the fork,
and the child builds fresh clients on first use. Tests install their own with :func:`set_runtime`.
"""
from __future__ import annotations

import threading
from typing import Callable

from flows.runtime import Runtime

_lock = threading.Lock()
_runtime: Runtime | None = None
_factory: Callable[[], Runtime] | None = None
_built_by_factory = False


def set_factory(factory: Callable[[], Runtime] | None) -> None:
    """Install how to build the runtime (``worker.celery_app`` does, from its settings and Celery app)."""
    global _factory
    _factory = factory
    reset_runtime()


def set_runtime(runtime: Runtime | None) -> None:
    """Install a ready runtime (tests)."""
    global _runtime, _built_by_factory
    with _lock:
        _runtime = runtime
        _built_by_factory = False


def reset_runtime(*, only_factory_built: bool = False) -> None:
    """Forget the current runtime (after fork: the child builds fresh clients on first use).

    ``only_factory_built`` leaves a runtime installed by ``set_runtime`` (tests) alone."""
    global _runtime
    with _lock:
        if only_factory_built and not _built_by_factory:
            return
        _runtime = None


def current_runtime() -> Runtime | None:
    """The runtime if one is built (never builds one: the prefork parent must not connect)."""
    return _runtime


def get_runtime() -> Runtime:
    global _runtime, _built_by_factory
    if _runtime is None:
        with _lock:
            if _runtime is None:
                if _factory is None:
                    raise RuntimeError("tasks runtime not configured: use worker.celery_app.app or set_runtime()")
                _runtime = _factory()
                _built_by_factory = True
    return _runtime
