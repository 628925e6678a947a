"""``otpflow run``: the whole pipeline on one machine, with nothing installed but Python.

It uses the configured Redis when it answers (else starts an embedded one), starts the provider sandbox when no
``PROVIDER_API_KEY`` is set (auto-SMS on, webhooks pointed at our own endpoint), then runs the Procfile's
long-running processes (web, worker, beat: ``otpflow.procfile``) and a demo order under honcho. honcho stops
everything when one process stops, which is what ``--once`` relies on: the demo exits when its activation ends.

Before anything starts it checks that the web port is free and that every role's settings are valid, each problem
one line (exit 2), rather than letting gunicorn and Celery fail later with pages of their own. It prints the API
token it generated and the URLs, so the HTTP API, the dashboard and the CLI are usable from another shell. SIGHUP
(the terminal closed), SIGINT and SIGTERM stop every child with it; its temporary directory is removed at the end.
"""
from __future__ import annotations

import os
import secrets
import shlex
import shutil
import signal
import socket
import sys
import tempfile
from typing import Any, TextIO

from honcho.manager import Manager
from honcho.printer import Printer

from config.settings import ConfigError, Settings
from otpflow import procfile
from otpflow.embedded_redis import EmbeddedRedisError, free_port, resolve_redis_url

SANDBOX_API_KEY = "sandbox-key"
#: the local run's sandbox providers when none is configured: name -> (price of a tg number in country 0, stock)
SANDBOXES: dict[str, tuple[str, int]] = {"cheap": ("0.20", 2), "steady": ("0.45", 100)}


def _py(*args: str) -> str:
    return " ".join(shlex.quote(part) for part in (sys.executable, *args))


def build_environment(base: dict[str, str], *, port: int, sandbox_port: int | None) -> tuple[dict[str, str], list[str]]:
    """The environment every process of the local run shares, plus notes to show the user."""
    env = dict(base)
    notes: list[str] = []
    env["PORT"] = str(port)
    if not env.get("PROVIDER_API_KEY") and not env.get("PROVIDERS"):
        # two sandbox providers that differ, so the demo shows routing and fail-over by itself: "cheap" sells
        # for less but has two numbers; once they are gone, orders fail over to "steady"
        ports = [sandbox_port or free_port(), free_port()]
        env.update({"PROVIDERS": ",".join(SANDBOXES), "ROUTING": env.get("ROUTING") or "cheapest"})
        for name, sport in zip(SANDBOXES, ports):
            prefix = f"PROVIDER_{name.upper()}_"
            env.update({f"{prefix}DIALECT": "sms-activate",
                        f"{prefix}URL": f"http://127.0.0.1:{sport}/stubs/handler_api.php",
                        f"{prefix}API_KEY": f"{SANDBOX_API_KEY}-{name}",
                        f"{prefix}WEBHOOK_TOKEN": secrets.token_urlsafe(24),
                        f"OTPFLOW_SANDBOX_{name.upper()}_PORT": str(sport)})
        env.setdefault("POLL_AFTER", "10")
        notes.append("no provider is configured: using two built-in provider sandboxes, "
                     + ", ".join(f"{n} on port {p} (price {pr}, {st} numbers)"
                                 for (n, (pr, st)), p in zip(SANDBOXES.items(), ports))
                     + "; ROUTING=cheapest, auto-SMS on")
    # each of PROVIDERS has its own token; WEBHOOK_TOKEN is the single provider's
    for name in ("API_TOKEN",) if env.get("PROVIDERS") else ("WEBHOOK_TOKEN", "API_TOKEN"):
        if not env.get(name):
            env[name] = secrets.token_urlsafe(24)
            notes.append(f"{name} was not set: generated a random one for this run")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env, notes


#: honcho's exit status after SIGHUP (128 + the signal's number, as for its SIGINT and SIGTERM)
HANGUP_STATUS = 128 + signal.SIGHUP


def port_in_use(port: int) -> bool:
    """Whether something listens on ``port`` (gunicorn binds every address, 0.0.0.0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port in TIME_WAIT is free for gunicorn too
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return True
    return False


def busy_port_message(port: int, option: str = "--port N (or PORT=N)") -> str:
    return (f"port {port} is already in use (another otpflow run, or another server): stop it, or pick a free "
            f"port with {option}")


def role_problems(env: dict[str, str], roles: list[str]) -> list[str]:
    """What each role of the run cannot start with, each problem once (a role that would fail deep in Celery
    with a page of traceback is named here in one line)."""
    from config.settings import ROLES

    try:
        settings = Settings.from_env(env)
    except ConfigError as exc:
        return list(exc.problems)
    problems: list[str] = []
    for role in (r for r in roles if r in ROLES):
        try:
            settings.require(role)
        except ConfigError as exc:
            problems += [p for p in exc.problems if p not in problems]
    return problems


def run_local(*, port: int | None, demo: bool, once: bool, service: str, country: str,
              sandbox_port: int | None) -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"otpflow run: {exc}", file=sys.stderr)
        return 2
    port = port or settings.port
    for taken, option in ((port, "--port N (or PORT=N)"), (sandbox_port, "--sandbox-port N")):
        if taken and port_in_use(taken):
            print(f"otpflow run: {busy_port_message(taken, option)}", file=sys.stderr)
            return 2
    try:
        redis_url, embedded = resolve_redis_url(os.environ.get("REDIS_URL"))
    except EmbeddedRedisError as exc:
        print(f"otpflow run: {exc}", file=sys.stderr)
        return 2
    workdir = tempfile.mkdtemp(prefix="otpflow-run-")
    try:
        return _run_processes(env_base=dict(os.environ), redis_url=redis_url, embedded=embedded is not None,
                              port=port, demo=demo, once=once, service=service, country=country,
                              sandbox_port=sandbox_port, workdir=workdir)
    finally:
        if embedded is not None:
            embedded.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def access_notes(env: dict[str, str], port: int, *, generated_token: bool) -> list[str]:
    """How to reach this run from another shell: the URLs, and the API token when it was generated here."""
    base = f"http://127.0.0.1:{port}"
    token = env["API_TOKEN"]
    lines = [f"API        {base}/api/orders (Authorization: Bearer $API_TOKEN)",
             f"dashboard  {base}/dashboard (sign in with the API token)",
             f"metrics    {base}/metrics · health {base}/readyz"]
    if generated_token:
        lines.append(f"API_TOKEN  {token} (generated for this run)")
    redis_url = env["REDIS_URL"] if "@" not in env["REDIS_URL"] else "…"  # never print a password
    shown = token if generated_token else "…"
    lines.append(f"from another shell: export REDIS_URL={redis_url} API_TOKEN={shown}; then otpflow order tg "
                 f"--wait, or curl -H \"Authorization: Bearer $API_TOKEN\" {base}/api/orders")
    return lines


class QuietOutput:
    """Where honcho prints: stdout until it fails (the terminal closed: EIO), then nowhere, so a hang-up cannot
    stop the manager halfway through stopping its children."""

    def __init__(self, stream: TextIO) -> None:
        self.stream: TextIO | None = stream

    def write(self, text: str) -> None:
        if self.stream is None:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            self.stream = None

    def flush(self) -> None:
        self.write("")

    def isatty(self) -> bool:
        try:
            return bool(self.stream and self.stream.isatty())
        except (OSError, ValueError):
            return False


class RunManager(Manager):
    """honcho's manager, which stops everything on SIGINT and SIGTERM, made to do the same on SIGHUP."""

    def loop(self) -> None:
        owner = os.getpid()

        def hangup(signum: int, frame: Any) -> None:
            if os.getpid() != owner:  # honcho's helper processes are forked from us: they leave it to us
                return
            self._system_print("SIGHUP received\n")
            self.returncode = HANGUP_STATUS
            self.terminate()

        previous = signal.signal(signal.SIGHUP, hangup)
        try:
            super().loop()
        finally:
            signal.signal(signal.SIGHUP, previous)


def _run_processes(*, env_base: dict[str, str], redis_url: str, embedded: bool, port: int, demo: bool, once: bool,
                   service: str, country: str, sandbox_port: int | None, workdir: str) -> int:
    generated = not env_base.get("API_TOKEN")
    env, notes = build_environment(env_base, port=port, sandbox_port=sandbox_port)
    env["REDIS_URL"] = redis_url
    # the web's metrics files go into the run's own directory, removed with it (never one the user set)
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", os.path.join(workdir, "prometheus"))
    roles = procfile.long_running()
    problems = role_problems(env, roles)
    if problems:
        for problem in problems:
            print(f"otpflow run: {problem}", file=sys.stderr)
        return 2
    notes.insert(0, f"Redis: {'embedded redis-server on ' + redis_url if embedded else redis_url.split('@')[-1]}")
    for note in [*notes, *access_notes(env, port, generated_token=generated)]:
        print(f"otpflow run: {note}", flush=True)

    try:
        commands = [procfile.command(role, env) for role in roles]
    except procfile.ProcfileError as exc:
        print(f"otpflow run: {exc}", file=sys.stderr)
        return 2
    manager = RunManager(printer=Printer(QuietOutput(sys.stdout)))
    for name, (price, stock) in SANDBOXES.items():
        sport = env.get(f"OTPFLOW_SANDBOX_{name.upper()}_PORT")
        if not sport:
            continue
        prefix = f"PROVIDER_{name.upper()}_"
        webhook_url = f"http://127.0.0.1:{port}/webhooks/{env[prefix + 'WEBHOOK_TOKEN']}"
        manager.add_process(f"sandbox-{name}", _py(
            "-m", "sandbox", "--port", sport, "--api-key", env[prefix + "API_KEY"], "--webhook-url", webhook_url,
            "--auto-sms-after", "3", "--price", f"tg:0:{price}", "--stock", f"tg:0:{stock}"), env=env)
    for cmd in commands:
        manager.add_process(cmd.role, cmd.shell(), env=cmd.env)
    if demo:
        args = ["-m", "otpflow.cli", "demo", "--api", f"http://127.0.0.1:{port}", "--service", service,
                "--country", country]
        manager.add_process("demo", _py(*args, *(["--once"] if once else [])), env=env)
    manager.loop()
    return int(manager.returncode or 0)
