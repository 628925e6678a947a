"""Serve the sandbox from the command line under gunicorn: one gthread worker, HTTP/1.1 keep-alive.

Why gunicorn: werkzeug's server answers every request with ``Connection: close``, so against it every client
opens a TCP connection per call, unlike the nginx-fronted real providers; client benchmarks and connection-reuse
behaviour would be measured against the wrong peer. Why exactly one worker: all sandbox state (balance,
activations, the simulated clock, webhook log) lives in the process, so a second worker would be a second
provider. The app is created in the worker (no preload) so the engine's webhook/auto-SMS threads run in the
process that serves the requests; they would not survive a fork.

Several sandboxes (tests, benchmarks, ``otpflow run``) must be able to run at once, so nothing is put at a
fixed path: gunicorn's control socket (``$XDG_RUNTIME_DIR/gunicorn.ctl`` by default since gunicorn 25) is
disabled, there is no pidfile, the worker heartbeat file is an anonymous (already unlinked) temporary file, and
the listening socket is bound here, before gunicorn starts, so a busy port fails at once with a clear message
instead of gunicorn's five one-second retries.
"""
from __future__ import annotations

import logging
import os
import socket
import sys
from datetime import timedelta
from typing import Any, Callable

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.glogging import Logger
from gunicorn.sock import TCP6Socket, TCPSocket
from gunicorn.workers.gthread import ThreadWorker

from .server import redact

#: Handler threads in the one worker. Idle kept-alive connections wait in the worker's poller, not in a thread;
#: a thread is held only while a request is handled (up to ``timeout_sleep`` in the ``timeout`` fault mode).
THREADS = 32
#: Idle keep-alive timeout, nginx's default ``keepalive_timeout``: clients reuse connections like against a
#: real provider, and rarely race the server closing an idle one.
KEEPALIVE = 75
#: Seconds in-flight requests get after SIGTERM; short because ``otpflow run`` (honcho) and tests stop the
#: sandbox and a request sleeping in the ``timeout`` fault mode must not hold shutdown up for 20 s.
GRACEFUL_TIMEOUT = 1


class SandboxLogger(Logger):
    """gunicorn's logger with the ``api_key`` value redacted everywhere, and the access log in werkzeug mode's
    format on the ``sandbox.access`` logger (``--access-log``)."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            if not any(isinstance(f, _RedactFilter) for f in log.filters):
                log.addFilter(_RedactFilter())

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: timedelta) -> None:
        if not self.access_log_enabled:
            return
        status = resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status
        line = f"{environ['REQUEST_METHOD']} {environ['RAW_URI']} {environ['SERVER_PROTOCOL']}"
        logging.getLogger("sandbox.access").info("%s %s %s", environ.get("REMOTE_ADDR", "-"), redact(line), status)


class _RedactFilter(logging.Filter):
    """Redacts ``api_key=`` in any gunicorn log record (e.g. "Error handling request /…?api_key=…")."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "api_key=" in message:
            record.msg, record.args = redact(message), None
        return True


class SandboxWorker(ThreadWorker):
    """gthread worker that closes the engine (stops its scheduler threads) when it stops serving."""

    def run(self) -> None:
        try:
            super().run()
        finally:
            app = self.wsgi
            engine = app.extensions.get("sandbox") if isinstance(app, Flask) else None
            if engine is not None:
                engine.close()


class SandboxApplication(BaseApplication):
    """In-process gunicorn application serving ``app_factory()`` (called in the worker) on a pre-bound socket."""

    def __init__(self, app_factory: Callable[[], Flask], listener: socket.socket, *, access_log: bool = False,
                 on_ready: Callable[[], None] | None = None) -> None:
        self.app_factory = app_factory
        self.listener = listener
        self.access_log = access_log
        self.on_ready = on_ready
        super().__init__()

    def load_config(self) -> None:
        host, port = self.listener.getsockname()[:2]
        on_ready = self.on_ready

        def post_worker_init(worker: Any) -> None:
            if worker.age == 1:
                if on_ready is not None:
                    on_ready()
            else:  # a replacement worker starts from a fresh engine: say so rather than fail mysteriously
                worker.log.warning("sandbox worker restarted: all sandbox state was reset")

        settings: dict[str, Any] = {
            "bind": [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"],
            "workers": 1,
            "worker_class": SandboxWorker,
            "threads": THREADS,
            "keepalive": KEEPALIVE,
            "timeout": 30,
            "graceful_timeout": GRACEFUL_TIMEOUT,
            "max_requests": 0,          # never recycle the worker: that would wipe the state
            "preload_app": False,
            "reuse_port": False,        # a second sandbox on a taken port must fail, not share it
            "limit_request_line": 0,    # werkzeug had no request-line limit; keep long query strings working
            "control_socket_disable": True,
            "pidfile": None,
            "proc_name": f"sandbox:{port}",
            "loglevel": "warning",
            "errorlog": "-",
            "accesslog": "-" if self.access_log else None,
            "logger_class": SandboxLogger,
            "post_worker_init": post_worker_init,
        }
        if os.path.isdir("/dev/shm"):
            settings["worker_tmp_dir"] = "/dev/shm"  # heartbeat file off the disk (created and unlinked at once)
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self.app_factory()

    def run(self) -> None:
        """Like ``BaseApplication.run``, but listening on our socket (gunicorn would bind its own)."""
        arbiter = Arbiter(self)
        cls = TCP6Socket if self.listener.family == socket.AF_INET6 else TCPSocket
        arbiter.LISTENERS = [cls(self.listener.getsockname(), self.cfg, arbiter.log, fd=self.listener.detach())]
        try:
            arbiter.run()
        except RuntimeError as exc:
            print(f"sandbox: {exc}", file=sys.stderr)
            sys.exit(1)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (0 = ephemeral); raises OSError if it cannot listen."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=2048)


def serve(app_factory: Callable[[], Flask], listener: socket.socket, *, access_log: bool = False,
          on_ready: Callable[[], None] | None = None) -> int:
    """Serve until SIGTERM/SIGINT (gunicorn's master handles both); returns the exit status."""
    try:
        SandboxApplication(app_factory, listener, access_log=access_log, on_ready=on_ready).run()
    except SystemExit as exc:  # gunicorn's master ends with sys.exit
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0
