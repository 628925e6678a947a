"""The order API (Blueprint ``orders_api``): create orders, read their state, send downstream commands.

Authenticated with ``Authorization: Bearer <API_TOKEN>`` (constant-time compare). The request only stores the
order (one Lua step, idempotent on ``order_id``) and publishes ``otpflow.place_order``; the purchase happens in
a worker, never inside the request.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import time
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import redis
from flask import Blueprint, Response, jsonify, request
from marshmallow import Schema, ValidationError, fields, validate

from config import log_context
from flows.intake import log_accepted
from flows.names import TaskName
from lifecycle.activation import (COMMANDS, ORDER_ID_RULE, CommandConflict, Order, OrderError, OrderRequest,
                                  OrderService, UnknownOrder, valid_order_id)
from lifecycle.activation.machine import Command, State
from lifecycle.routing import Routing
from webhook.context import current_context
from webhook.errors import error_response, unavailable
from webhook.validation import InvalidAmount, check_amount, text_problem

log = logging.getLogger("otpflow.orders_api")

orders_api = Blueprint("orders_api", __name__)


def storable_text(value: str) -> None:
    """marshmallow validator: text Redis can store (no lone surrogates, no control characters)."""
    problem = text_problem(value)
    if problem:
        raise ValidationError(problem)


def bounded_amount(value: Decimal) -> None:
    """marshmallow validator: a price within range and places (``webhook/validation.py``)."""
    try:
        check_amount(value)
    except InvalidAmount as exc:
        raise ValidationError(str(exc)) from None


def order_id_field() -> fields.String:
    """``order_id`` of an order or a rent: the caller's idempotency key, also part of Redis keys and of the
    provider's orderId, so only what :func:`lifecycle.activation.valid_order_id` accepts."""
    return fields.String(load_default=None, allow_none=True, validate=_order_id)


def _order_id(value: str) -> None:
    """marshmallow validator: an order id :func:`lifecycle.activation.valid_order_id` accepts."""
    if not valid_order_id(value):
        raise ValidationError(ORDER_ID_RULE)


def providers_field() -> fields.List:
    """``providers`` of an order or a rent: the configured providers it may use, in its order of preference."""
    return fields.List(fields.String(validate=validate.Length(min=1, max=32)), load_default=None, allow_none=True,
                       validate=validate.Length(min=1, max=16))


class OrderSchema(Schema):
    """The POST /api/orders body."""

    service = fields.String(required=True, validate=[validate.Length(min=1, max=32), storable_text])
    country = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=0, max=100000))
    operator = fields.String(load_default=None, allow_none=True, validate=[validate.Length(max=200), storable_text])
    max_price = fields.Decimal(load_default=None, allow_none=True, places=None, validate=bounded_amount)
    activation_type = fields.Integer(load_default=None, allow_none=True, validate=validate.OneOf([0, 1, 2]))
    forward = fields.Boolean(load_default=None, allow_none=True)
    order_id = order_id_field()
    #: restrict and reorder the configured providers for this order (names from PROVIDERS)
    providers = providers_field()
    routing = fields.Enum(Routing, by_value=True, load_default=None, allow_none=True)
    #: countries to rotate over, the first one first
    countries = fields.List(fields.Integer(validate=validate.Range(min=0, max=100000)), load_default=None,
                            allow_none=True, validate=validate.Length(min=1, max=16))
    #: numbers the order may buy until a code is accepted (default ORDER_MAX_NUMBERS)
    max_numbers = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1, max=20))


_schema = OrderSchema()



def configured_providers() -> tuple[str, ...]:
    """The names of this deployment's providers (PROVIDERS), in order."""
    return tuple(p.name for p in current_context().settings.provider_configs)


def providers_refused(names: list[str] | None) -> Response | None:
    """The 400 for a ``providers`` list naming a provider this deployment does not have (None: all known)."""
    known = {p.name for p in current_context().settings.provider_configs}
    if unknown := [n for n in names or () if n not in known]:
        return error_response(400, "invalid_request", "validation failed",
                              extra={"fields": {"providers": [f"not configured: {', '.join(unknown)}"]}})
    return None


def _authorized() -> bool:
    expected = current_context().settings.api_token
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not expected or scheme.lower() != "bearer" or not token:
        return False
    a = hashlib.sha256(token.strip().encode("utf-8", "surrogatepass")).digest()
    b = hashlib.sha256(expected.encode("utf-8")).digest()
    return hmac.compare_digest(a, b)


def check_api_token() -> Response | None:
    """``before_request`` hook shared by the order and rent APIs: 401 unless the bearer token matches."""
    if not _authorized():
        response = error_response(401, "unauthorized", "missing or invalid bearer token")
        response.headers["WWW-Authenticate"] = 'Bearer realm="otpflow"'
        return response
    return None


def redis_down(exc: redis.exceptions.RedisError) -> Response:
    """503 when Redis is unavailable (shared with the rent API): nothing was stored, the caller retries."""
    log.warning("API: Redis unavailable (%s)", type(exc).__name__)
    return unavailable()


orders_api.before_request(check_api_token)
orders_api.register_error_handler(redis.exceptions.RedisError, redis_down)


def _service() -> OrderService:
    return current_context().orders


def publish(name: TaskName, kwargs: dict[str, Any]) -> None:
    """Publish by name, with the request's id in the message headers (``config.log_context.task_headers``), so the
    worker's lines for the task carry it. A failure is logged, not raised: the order is stored and its deadline
    makes the sweeper publish the work again, so the caller still gets its answer."""
    try:
        current_context().celery.send_task(name.value, kwargs=kwargs, headers=log_context.task_headers() or None)
    except redis.exceptions.RedisError:
        raise
    except Exception as exc:  # kombu OperationalError and friends
        log.warning("order API: could not publish %s (%s); the sweeper will", name, type(exc).__name__)


@orders_api.post("/api/orders")
def create_order() -> tuple[Response, int] | Response:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return error_response(400, "invalid_json", "expected a JSON object")
    try:
        data = _schema.load(body)
    except ValidationError as exc:
        return error_response(400, "invalid_request", "validation failed", extra={"fields": exc.messages})
    try:
        if refused := providers_refused(data.get("providers")):
            return refused
        for many in ("providers", "countries"):
            if data.get(many) is not None:
                data[many] = tuple(data[many])
        order, created = _service().submit(OrderRequest(**data))
    except OrderError as exc:
        return error_response(400, "invalid_request", str(exc))
    log_accepted("order", order, created, configured=configured_providers())
    if created:
        publish(TaskName.PLACE_ORDER, {"order_id": order.order_id})
    body = jsonify({"order_id": order.order_id, "state": order.state.value, "created": created})
    return body, 202 if created else 200


#: GET /api/orders: orders per page, at most and by default
LIST_MAX, LIST_DEFAULT = 200, 50


def iso_time(at: float | None) -> str | None:
    """Unix seconds as ISO 8601 UTC with milliseconds (rounded, so it reads back as the stored value)."""
    if at is None:
        return None
    moment = datetime.fromtimestamp(round(at, 3), tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(raw: str) -> float:
    """ISO 8601 (``Z`` or an offset; naive means UTC) or unix seconds; ValueError otherwise."""
    text = raw.strip()
    try:
        return float(text)
    except ValueError:
        pass
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def order_view(order: Order) -> dict[str, Any]:
    """An order as listings show it: its public fields and its times in ISO 8601."""
    times = {"created_at": order.created_at or None, "number_at": order.number_at, "code_at": order.code_at,
             "updated_at": order.updated_at}
    return order.public() | {k: iso_time(v) for k, v in times.items() if v is not None}


def _list_query() -> tuple[frozenset[State], int, float | None, str | None] | dict[str, list[str]]:
    """``state`` (repeated or comma-separated), ``limit``, ``before`` and ``before_id`` from the query, or the
    problems."""
    problems: dict[str, list[str]] = {}
    wanted = [v.strip() for raw in request.args.getlist("state") for v in raw.split(",") if v.strip()]
    known = {s.value: s for s in State}
    if bad := [v for v in wanted if v not in known]:
        problems["state"] = [f"unknown: {', '.join(bad)} (known: {', '.join(known)})"]
    try:
        limit = int(request.args.get("limit", LIST_DEFAULT))
        if not 1 <= limit <= LIST_MAX:
            raise ValueError
    except ValueError:
        problems["limit"] = [f"an integer from 1 to {LIST_MAX}"]
        limit = LIST_DEFAULT
    before = None
    if request.args.get("before"):
        try:
            before = parse_time(request.args["before"])
        except ValueError:
            problems["before"] = ["an ISO 8601 time (2025-01-31T12:00:00.000Z) or unix seconds"]
    before_id = request.args.get("before_id") or None
    if before_id is not None and (before is None or not valid_order_id(before_id)):
        problems["before_id"] = ["an order id, with before (the next_before_id of the previous page)"]
    if problems:
        return problems
    return frozenset(known[v] for v in wanted), limit, before, before_id


def _tied(service: OrderService, states: frozenset[State], at: float, before_id: str) -> list[Order]:
    """Orders placed at exactly ``at`` that come after ``before_id`` newest-first (the index orders ties by id,
    descending), so a page boundary between two orders of the same millisecond loses neither."""
    ids: Any = service.store.redis.zrangebyscore(service.keys.orders, at, at)
    later = sorted((i for i in ids if i < before_id), reverse=True)
    found = service.store.get_many(later)
    return [o for i in later if (o := found.get(i)) is not None and (not states or o.state in states)]


@orders_api.get("/api/orders")
def list_orders() -> tuple[Response, int] | Response:
    """Orders newest first, optionally in some states. A full page carries ``next_before`` and
    ``next_before_id``: pass both back as ``before`` and ``before_id`` for the next page."""
    query = _list_query()
    if isinstance(query, dict):
        return error_response(400, "invalid_request", "validation failed", extra={"fields": query})
    wanted, limit, before, before_id = query
    service = _service()
    orders = _tied(service, wanted, before, before_id)[:limit] if before is not None and before_id else []
    if len(orders) < limit:
        orders += service.recent(states=wanted, limit=limit - len(orders), before=before)
    body: dict[str, Any] = {"orders": [order_view(o) for o in orders]}
    if len(orders) == limit:
        body["next_before"] = iso_time(orders[-1].created_at)
        body["next_before_id"] = orders[-1].order_id
    return jsonify(body)


@orders_api.get("/api/orders/<order_id>")
def get_order(order_id: str) -> tuple[Response, int] | Response:
    order = _service().get(order_id) if valid_order_id(order_id) else None
    if order is None:
        return error_response(404, "not_found", "no such order")
    body = order_view(order)
    body["history"] = [{"state": h.label, "at": iso_time(h.at)} for h in order.history]
    return jsonify(body)


@orders_api.post("/api/orders/<order_id>/<command>")
def order_command(order_id: str, command: str) -> tuple[Response, int] | Response:
    if command not in COMMANDS:
        return error_response(404, "not_found", "no such command")
    if not valid_order_id(order_id):
        return error_response(404, "not_found", "no such order")
    try:
        accepted = _service().request(order_id, command)
    except UnknownOrder:
        return error_response(404, "not_found", "no such order")
    except CommandConflict as exc:
        return error_response(409, "conflict", f"{command} is not allowed in state "
                              f"{exc.state.value if exc.state else 'unknown'}",
                              extra={"state": exc.state.value if exc.state else None})
    publish(TaskName.COMMAND, {"order_id": order_id, "command": accepted.command.value})
    body: dict[str, Any] = {"order_id": order_id, "command": accepted.command.value, "state": accepted.state.value}
    deferred = _cancel_deferred_until(order_id, accepted.command)
    if deferred is not None:
        body |= {"deferred_until": iso_time(deferred), "deferred_reason": "early_cancel"}
    return jsonify(body), 202


def _cancel_deferred_until(order_id: str, command: Command) -> float | None:
    """When a cancel (or a replace, which cancels) must wait for the provider's first minutes after the purchase
    (EARLY_CANCEL_SECONDS), the moment it will be sent; None when it goes now."""
    if command not in (Command.CANCEL, Command.REPLACE):
        return None
    order = _service().get(order_id)
    if order is None or order.state is not State.WAITING or order.number_at is None:
        return None
    ready = order.number_at + current_context().settings.early_cancel_seconds
    return ready if ready > time.time() else None
