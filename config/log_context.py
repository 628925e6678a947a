"""The ids of the work in hand (order, activation, task, request, provider), bound for as long as it runs.

Entry points bind them (the task base class, the web's request-id middleware in webhook/request_ids.py); every
log line written meanwhile carries them, because the formatters of ``config.logging_setup`` read :func:`current`.
A context variable keeps them apart across threads (gunicorn's gthread workers, Celery's thread pool) without
passing them down.

It lives in ``config`` beside the formatters: ``config`` may import neither ``telemetry`` nor the shell, while
``flows``, ``tasks``, ``worker`` and ``webhook`` may all import ``config``.
"""
from __future__ import annotations

import contextlib
import contextvars
import enum
import re
from types import MappingProxyType
from typing import Iterator, Mapping


class LogId(enum.StrEnum):
    """The ids a log line may carry, in the order they are written."""

    REQUEST_ID = "request_id"
    TASK_ID = "task_id"
    TASK_NAME = "task_name"
    ORDER_ID = "order_id"
    ACTIVATION_ID = "activation_id"
    PROVIDER = "provider"


#: the fields of one line's own event that the JSON formatter copies from ``extra=`` (besides the ids)
EVENT_FIELDS = ("from_state", "to_state", "status", "state", "service", "country", "action", "result",
                "elapsed_ms", "host")

_EMPTY: Mapping[str, str] = MappingProxyType({})
_BOUND: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar("otpflow_log_ids", default=_EMPTY)
#: what an incoming X-Request-Id may be to be kept (anything else is replaced by a fresh id)
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
#: the Celery message header that carries the request id of the web request that published a task, so the
#: worker's lines for that task carry it too (set by the order and rent APIs, read by the task base class)
TASK_HEADER = "otpflow_request_id"


def current() -> Mapping[str, str]:
    """The ids bound now (read-only), by :class:`LogId` value."""
    return _BOUND.get()


def _merged(ids: Mapping[LogId, object | None]) -> Mapping[str, str]:
    fresh = {key.value: str(value) for key, value in ids.items() if value is not None and value != ""}
    return MappingProxyType({**_BOUND.get(), **fresh}) if fresh else _BOUND.get()


def push(ids: Mapping[LogId, object | None]) -> contextvars.Token[Mapping[str, str]]:
    """Bind ``ids`` (None and empty values skipped) on top of what is bound; :func:`pop` the token to undo."""
    return _BOUND.set(_merged(ids))


def pop(token: contextvars.Token[Mapping[str, str]]) -> None:
    """Restore what was bound before the :func:`push` that returned ``token``."""
    try:
        _BOUND.reset(token)
    except ValueError:  # pushed in another context (a hook run elsewhere): nothing of ours to restore here
        _BOUND.set(_EMPTY)


@contextlib.contextmanager
def bind(ids: Mapping[LogId, object | None]) -> Iterator[None]:
    """Bind ``ids`` for the ``with`` block (nested binds add to the outer ones, and the outer ones come back)."""
    token = push(ids)
    try:
        yield
    finally:
        pop(token)


def sane_request_id(value: object) -> str | None:
    """``value`` when it is a usable request id (1 to 64 of ``A-Za-z0-9._-``), else None."""
    return value if isinstance(value, str) and _SANE_REQUEST_ID.fullmatch(value) else None


def task_headers() -> dict[str, str]:
    """The Celery message headers that carry the bound request id into a task published now (empty: none)."""
    request_id = sane_request_id(_BOUND.get().get(LogId.REQUEST_ID.value))
    return {TASK_HEADER: request_id} if request_id else {}
