"""The operator subcommands of ``otpflow``: orders, status, commands, events, raw provider calls, config.

Orders from the CLI go through the same code as ``POST /api/orders`` (``lifecycle.activation.OrderService`` then
the ``otpflow.place_order`` task), so the three entry points (HTTP, Celery task, CLI) cannot drift apart.
"""
from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from config.redis_client import make_redis
from config.settings import ConfigError, Settings
from flows.names import TaskName
from otpflow.event_feed import TERMINAL, feed, follow_order

if TYPE_CHECKING:  # imported lazily at run time (they pull in Redis scripts and Celery)
    from celery import Celery

    from lifecycle.activation import OrderService


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
    seen = 0
    for event in feed(make_redis(settings), settings.events_stream, start=start, follow=follow):
        if order_id and event.data.get("order_id") != order_id:
            continue
        print(event.as_json(), flush=True)
        seen += 1
        if count is not None and seen >= count:
            break
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
    """The effective settings, secrets masked (URL passwords too); warnings about risky combinations on stderr."""
    from config.logging_setup import redact

    settings = _settings(role)
    print(redact(json.dumps(settings.public_dict(), indent=2, ensure_ascii=False, default=str)))
    for warning in config_warnings(settings):
        print(f"otpflow config: warning: {warning}", file=sys.stderr)
    return 0


def config_warnings(settings: Settings) -> list[str]:
    """Settings that work but look exposed."""
    warnings: list[str] = []
    if settings.trusted_proxies > 0:
        warnings.append(
            f"TRUSTED_PROXIES={settings.trusted_proxies}: X-Forwarded-For is believed, so a client that reaches "
            f"the web port directly (not through the proxy) can forge its address"
            + (" past WEBHOOK_ALLOWED_IPS" if settings.webhook_allowed_ips else "")
            + "; make sure only the proxy can reach it (on Heroku the router is the only way in)")
    return warnings


def _order_service(settings: Settings) -> OrderService:
    from config.domain import order_service

    return order_service(settings, make_redis(settings))


def _publisher(settings: Settings) -> Celery:
    from worker.celery_app import make_celery

    return make_celery(settings)


def order(*, service: str, country: str | None, operator: str | None, max_price: str | None,
          activation_type: int | None, forward: bool, order_id: str | None, wait: bool, timeout: float) -> int:
    """Store the order and publish ``otpflow.place_order``: the same two steps as ``POST /api/orders``.

    The order id is chosen here when none is given, so every message can name it. When the order is stored but
    the publish fails, the order is still bought (its deadline makes the sweeper publish it): the command says so,
    and how to follow it, and exits 0; it never suggests running ``order`` again without the same id.
    """
    import uuid

    import redis

    from lifecycle.activation import OrderError, OrderRequest
    from webhook.validation import InvalidAmount, parse_amount, text_problem

    settings = _settings()
    order_id = order_id or uuid.uuid4().hex
    try:
        price = parse_amount(max_price) if max_price else None
        problem = text_problem(service) or (text_problem(operator) if operator else None)
        if problem:
            raise ValueError(f"service/operator {problem}")
        request = OrderRequest(service=service, country=int(country) if country is not None else None,
                               operator=operator, max_price=price,
                               activation_type=activation_type, forward=forward or None, order_id=order_id)
    except InvalidAmount as exc:
        print(f"otpflow order: --max-price {exc}", file=sys.stderr)
        return 2
    except (OrderError, ValueError) as exc:
        print(f"otpflow order: {exc}", file=sys.stderr)
        return 2
    try:
        placed, created = _order_service(settings).submit(request)
    except OrderError as exc:
        print(f"otpflow order: {exc}", file=sys.stderr)
        return 2
    except redis.RedisError as exc:
        print(f"otpflow order: Redis did not answer ({type(exc).__name__}); the order {order_id} may or may not "
              f"be stored. Run the same command again with --order-id {order_id}: it is idempotent and never "
              f"buys twice", file=sys.stderr)
        return 1
    published = True
    if created:
        try:
            _publisher(settings).send_task(TaskName.PLACE_ORDER.value, kwargs={"order_id": placed.order_id})
        except Exception as exc:  # kombu and Redis errors alike: the order is stored either way
            published = False
            print(f"otpflow order: the order {placed.order_id} is stored, but its purchase task could not be "
                  f"published ({type(exc).__name__}); the sweeper publishes it within a few seconds, so it will "
                  f"be bought once. Follow it with `otpflow status {placed.order_id}` or `otpflow events "
                  f"--follow --order-id {placed.order_id}`. Do not run `otpflow order` again for it (without "
                  f"--order-id {placed.order_id} that would be a second order).", file=sys.stderr)
    _print_json({"order_id": placed.order_id, "state": placed.state.value, "created": created,
                 "published": published})
    if not wait:
        return 0
    client = make_redis(settings)
    last_type = ""
    for event in follow_order(client, settings.events_stream, placed.order_id, start="0", timeout=timeout):
        print(json.dumps({"type": event.type, "data": event.data}, ensure_ascii=False), flush=True)
        last_type = event.type
    if last_type in TERMINAL:
        return TERMINAL[last_type]
    print("otpflow order: timed out waiting for the order to end", file=sys.stderr)
    return 1


def rent(*, service: str, country: str | None, operator: str | None, hours: int, order_id: str | None) -> int:
    """Store a rent order and publish ``otpflow.place_rent``: the same two steps as ``POST /api/rents``."""
    from config.domain import rent_service
    from lifecycle.rent import RentError, RentRequest

    settings = _settings()
    try:
        request = RentRequest(service=service, country=int(country) if country is not None else None,
                              operator=operator, hours=int(hours), order_id=order_id)
        placed, created = rent_service(settings, make_redis(settings)).submit(request)
    except (RentError, ValueError) as exc:
        print(f"otpflow rent: {exc}", file=sys.stderr)
        return 2
    if created:
        _publisher(settings).send_task(TaskName.PLACE_RENT.value, kwargs={"order_id": placed.order_id})
    _print_json({"order_id": placed.order_id, "state": placed.state.value, "created": created})
    return 0


def status(order_id: str) -> int:
    settings = _settings()
    found = _order_service(settings).get(order_id)
    if found is None:
        print(f"otpflow status: no order {order_id!r}", file=sys.stderr)
        return 1
    body = found.public()
    body["history"] = [{"state": h.label, "at": h.at} for h in found.history]
    _print_json(body)
    return 0


def send_command(order_id: str, name: str) -> int:
    """finish, retry or cancel: recorded on the order, then carried out by ``otpflow.command`` in a worker."""
    from lifecycle.activation import CommandConflict, UnknownOrder

    settings = _settings()
    try:
        accepted = _order_service(settings).request(order_id, name)
    except UnknownOrder:
        print(f"otpflow command: no order {order_id!r}", file=sys.stderr)
        return 1
    except CommandConflict as exc:
        print(f"otpflow command: {exc}", file=sys.stderr)
        return 1
    _publisher(settings).send_task(TaskName.COMMAND.value, kwargs={"order_id": order_id, "command": name})
    _print_json({"order_id": order_id, "command": name, "state": accepted.state.value})
    return 0
