"""The operator subcommands of ``otpflow``: orders, status, commands, events, raw provider calls, config.

Orders from the CLI go through the same code as ``POST /api/orders`` (``lifecycle.orders.OrderService`` then the
``otpflow.place_order`` task), so the three entry points (HTTP, Celery task, CLI) cannot drift apart.
"""
from __future__ import annotations

import json
import sys
import time
from typing import Any

from config.redis_client import make_redis
from config.settings import ConfigError, Settings


def _settings(role: str | None = None) -> Settings:
    try:
        settings = Settings.from_env()
        return settings.require(role) if role else settings
    except ConfigError as exc:
        print(f"otpflow: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def follow_events(*, start: str, follow: bool, count: int | None, order_id: str | None) -> int:
    """Print events as JSON lines: ``{"id", "type", "data"}``; with --follow, block for new ones."""
    settings = _settings()
    redis = make_redis(settings)
    cursor = start
    seen = 0
    while True:
        batch = redis.xread({settings.events_stream: cursor}, block=1000 if follow else None, count=100) or []
        if not batch and not follow:
            return 0
        for _stream, entries in batch:
            for entry_id, fields in entries:
                cursor = entry_id
                data = json.loads(fields.get("data") or "{}")
                if order_id and data.get("order_id") != order_id:
                    continue
                print(json.dumps({"id": entry_id, "type": fields.get("type"), "data": data}, ensure_ascii=False),
                      flush=True)
                seen += 1
                if count is not None and seen >= count:
                    return 0


def provider_call(action: str, params: list[str]) -> int:
    """A raw handler_api call with the configured provider; prints the parsed answer or the typed error."""
    from provider import ProviderClient
    from provider.errors import ProviderError

    settings = _settings("worker")
    kwargs: dict[str, str] = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"otpflow provider: expected key=value, got {item!r}", file=sys.stderr)
            return 2
        kwargs[key] = value
    client = ProviderClient(settings.provider_api_key, dialect=settings.provider, base_url=settings.provider_url,
                            connect_timeout=settings.provider_connect_timeout,
                            read_timeout=settings.provider_read_timeout)
    try:
        answer = client.call(action, **kwargs)
    except ProviderError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if isinstance(answer, (dict, list)):
        _print_json(answer)
    else:
        print(answer)
    return 0


def show_config(role: str | None) -> int:
    settings = _settings(role)
    _print_json(settings.public_dict())
    return 0


def _order_service(settings: Settings):  # type: ignore[no-untyped-def]
    from lifecycle.orders import OrderService

    return OrderService(make_redis(settings), settings)


def _publisher(settings: Settings):  # type: ignore[no-untyped-def]
    from worker.celery_app import make_celery

    return make_celery(settings)
