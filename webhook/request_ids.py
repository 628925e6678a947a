"""Every request's id, as WSGI middleware: the caller's ``X-Request-Id`` when sane, else a new one.

It is bound (``config.log_context``) while the app handles the request, so every line logged meanwhile and every
Celery task published carries it, and it is echoed on the answer, where gunicorn's access line reads it.

Middleware rather than Flask ``before_request``/``after_request``/``teardown_request`` hooks: three hooks, ``g``
and the header proxies cost about 100,000 instructions per request by callgrind, a tenth of a whole webhook;
this costs a fifth of that (``bench/ingress.py`` measures whole requests).
"""
from __future__ import annotations

import os
from typing import Any, Callable, Iterable

from config import log_context

#: the header a request id comes in (kept when sane, so a proxy's or a client's id joins our log lines) and goes out
REQUEST_ID_HEADER = "X-Request-Id"
_ENVIRON_KEY = "HTTP_X_REQUEST_ID"

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def new_request_id() -> str:
    """32 random hex digits (the shape of a uuid4's hex, without building a UUID)."""
    return os.urandom(16).hex()


class RequestIds:
    """Wraps a WSGI app: binds the request id while the app runs and adds it to the answer's headers."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        request_id = log_context.sane_request_id(environ.get(_ENVIRON_KEY)) or new_request_id()

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers.append((REQUEST_ID_HEADER, request_id))
            return start_response(status, headers, exc_info)

        # Flask runs the view and calls ``start`` before it returns the body iterable: the id is bound throughout
        token = log_context.push({log_context.LogId.REQUEST_ID: request_id})
        try:
            return self.app(environ, start)
        finally:
            log_context.pop(token)
