"""Serve a sandbox app over real HTTP in a background thread (werkzeug, threaded), for tests.

Werkzeug answers every request with ``Connection: close``; the command-line sandbox runs under gunicorn instead
(``sandbox/gunicorn_server.py``) to behave like a real, keep-alive provider.
"""
from __future__ import annotations

import logging
import re
import threading
from typing import cast

from flask import Flask
from werkzeug.serving import BaseWSGIServer, ThreadedWSGIServer, WSGIRequestHandler, make_server

_KEY_RE = re.compile(r"(api_key=)[^&\s\"]*")


def redact(text: str) -> str:
    """Hide the value of `api_key=` (it travels in query strings and would land in access logs)."""
    return _KEY_RE.sub(r"\1***", text)


class QuietHandler(WSGIRequestHandler):
    """HTTP/1.1 request handler without per-request logging (werkzeug still closes each connection)."""

    protocol_version = "HTTP/1.1"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class RedactingHandler(QuietHandler):
    """Per-request access log with `api_key` redacted."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        logging.getLogger("sandbox.access").info("%s %s %s", self.address_string(), redact(self.requestline),
                                                 code)


class SandboxServer:
    """A running server: `.url`, `.port`, `.stop()`."""

    def __init__(self, server: BaseWSGIServer, app: Flask) -> None:
        self._server = server
        self.app = app
        self.host = server.host
        self.port = server.port
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"sandbox-http-{self.port}",
                                        daemon=True)
        self._thread.start()

    @property
    def handler_url(self) -> str:
        return f"{self.url}/stubs/handler_api.php"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        engine = self.app.extensions.get("sandbox")
        if engine is not None:
            engine.close()

    def __enter__(self) -> "SandboxServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_in_thread(app: Flask, host: str = "127.0.0.1", port: int = 0, access_log: bool = False) -> SandboxServer:
    """Start `app` on host:port (0 = ephemeral) in a daemon thread."""
    handler = RedactingHandler if access_log else QuietHandler
    server = make_server(host, port, app, threaded=True, request_handler=handler)
    cast(ThreadedWSGIServer, server).daemon_threads = True  # threaded=True: make_server's declared type is the base
    return SandboxServer(server, app)
