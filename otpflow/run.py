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
