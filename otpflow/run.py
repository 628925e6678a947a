"""``otpflow run``: the whole pipeline on one machine, with nothing installed but Python.

It uses the configured Redis when it answers (else starts an embedded one), starts the provider sandbox when no
``PROVIDER_API_KEY`` is set (auto-SMS on, webhooks pointed at our own endpoint), then runs the Procfile's
long-running processes (web, worker, beat: ``otpflow.procfile``) and a demo order under honcho. honcho stops
everything when one process stops, which is what ``--once`` relies on: the demo exits when its activation ends.
"""
from __future__ import annotations

import os
import secrets
import shlex
import sys

from honcho.manager import Manager

from config.settings import ConfigError, Settings
from otpflow import procfile
from otpflow.embedded_redis import EmbeddedRedisError, free_port, resolve_redis_url

SANDBOX_API_KEY = "sandbox-key"


def _py(*args: str) -> str:
    return " ".join(shlex.quote(part) for part in (sys.executable, *args))


def build_environment(base: dict[str, str], *, port: int, sandbox_port: int | None) -> tuple[dict[str, str], list[str]]:
    """The environment every process of the local run shares, plus notes to show the user."""
    env = dict(base)
    notes: list[str] = []
    env["PORT"] = str(port)
    for name in ("WEBHOOK_TOKEN", "API_TOKEN"):
        if not env.get(name):
            env[name] = secrets.token_urlsafe(24)
            notes.append(f"{name} was not set: generated a random one for this run")
    if not env.get("PROVIDER_API_KEY"):
        sport = sandbox_port or free_port()
        env.update({
            "PROVIDER": "sms-activate",
            "PROVIDER_URL": f"http://127.0.0.1:{sport}/stubs/handler_api.php",
            "PROVIDER_API_KEY": SANDBOX_API_KEY,
            "OTPFLOW_SANDBOX_PORT": str(sport),
        })
        env.setdefault("POLL_AFTER", "10")
        notes.append(f"PROVIDER_API_KEY is not set: using the built-in provider sandbox on port {sport} (auto-SMS on)")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env, notes


def run_local(*, port: int | None, demo: bool, once: bool, service: str, country: str,
              sandbox_port: int | None) -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"otpflow run: {exc}", file=sys.stderr)
        return 2
    port = port or settings.port
    try:
        redis_url, embedded = resolve_redis_url(os.environ.get("REDIS_URL"))
    except EmbeddedRedisError as exc:
        print(f"otpflow run: {exc}", file=sys.stderr)
        return 2
    try:
        return _run_processes(env_base=dict(os.environ), redis_url=redis_url, embedded=embedded is not None,
                              port=port, demo=demo, once=once, service=service, country=country,
                              sandbox_port=sandbox_port)
    finally:
        if embedded is not None:
            embedded.stop()


def _run_processes(*, env_base: dict[str, str], redis_url: str, embedded: bool, port: int, demo: bool, once: bool,
                   service: str, country: str, sandbox_port: int | None) -> int:
    env, notes = build_environment(env_base, port=port, sandbox_port=sandbox_port)
    env["REDIS_URL"] = redis_url
    notes.insert(0, f"Redis: {'embedded redis-server on ' + redis_url if embedded else redis_url.split('@')[-1]}")
    for note in notes:
        print(f"otpflow run: {note}", flush=True)

    try:
        commands = [procfile.command(role, env) for role in procfile.long_running()]
    except procfile.ProcfileError as exc:
        print(f"otpflow run: {exc}", file=sys.stderr)
        return 2
    manager = Manager()
    if "OTPFLOW_SANDBOX_PORT" in env:
        webhook_url = f"http://127.0.0.1:{port}/webhooks/{env['WEBHOOK_TOKEN']}"
        manager.add_process("sandbox", _py("-m", "sandbox", "--port", env["OTPFLOW_SANDBOX_PORT"],
                                           "--api-key", SANDBOX_API_KEY, "--webhook-url", webhook_url,
                                           "--auto-sms-after", "3"), env=env)
    for cmd in commands:
        manager.add_process(cmd.role, cmd.shell(), env=cmd.env)
    if demo:
        args = ["-m", "otpflow.cli", "demo", "--api", f"http://127.0.0.1:{port}", "--service", service,
                "--country", country]
        manager.add_process("demo", _py(*args, *(["--once"] if once else [])), env=env)
    manager.loop()
    return int(manager.returncode or 0)
