"""The rent API (Blueprint ``rents_api``): rent numbers, read a rent's state, send finish/cancel/prolong.

Same bearer authentication, Redis-down answer and publishing as the order API (``webhook.orders_api``). A request
only stores (one Lua step, idempotent on ``order_id``) and publishes ``otpflow.place_rent`` /
``otpflow.rent_command``; provider calls happen in a worker, never inside the request. If the publish is lost,
the rent's deadline makes the sweeper do the work.

Cancel is answered 409 ``cant_cancel`` at once when the provider's rule already forbids it (an SMS arrived, or
more than 20 minutes passed since the rent started); if the provider still refuses later (CANT_CANCEL), the
command is dropped without an event and ``GET`` shows ``command_error``.
"""
from __future__ import annotations

import logging

import redis
from flask import Blueprint, Response, jsonify, request
from marshmallow import Schema, ValidationError, fields, validate

from flows.intake import log_accepted
from flows.names import TaskName
from lifecycle.activation import valid_order_id
from lifecycle.rent import (MAX_HOURS, MIN_HOURS, RENT_COMMANDS, RentCommand, RentCommandConflict, RentError,
                            RentRequest, RentService, UnknownRent)
from webhook.context import current_context
from webhook.errors import error_response
from webhook.orders_api import (check_api_token, configured_providers, iso_time, order_id_field, providers_field,
                                providers_refused, publish, redis_down, storable_text)

log = logging.getLogger("otpflow.rents_api")

rents_api = Blueprint("rents_api", __name__)
rents_api.before_request(check_api_token)
rents_api.register_error_handler(redis.exceptions.RedisError, redis_down)

_hours = validate.Range(min=MIN_HOURS, max=MAX_HOURS)


class RentSchema(Schema):
    """The POST /api/rents body; ``rent_time`` is in hours (4, 12, 24, then multiples of 24)."""

    service = fields.String(required=True, validate=[validate.Length(min=1, max=32), storable_text])
    country = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=0, max=100000))
    operator = fields.String(load_default=None, allow_none=True, validate=[validate.Length(max=200), storable_text])
    rent_time = fields.Integer(load_default=4, validate=_hours)
    order_id = order_id_field()
    #: restrict and reorder the configured providers for this rent (names from PROVIDERS), as orders do
    providers = providers_field()


class ProlongSchema(Schema):
    hours = fields.Integer(required=True, validate=_hours)


_schema, _prolong = RentSchema(), ProlongSchema()


def _service() -> RentService:
    return current_context().rents


def _body() -> dict | None:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else None


@rents_api.post("/api/rents")
def create_rent() -> tuple[Response, int] | Response:
    body = _body()
    if body is None:
        return error_response(400, "invalid_json", "expected a JSON object")
    try:
        data = _schema.load(body)
    except ValidationError as exc:
        return error_response(400, "invalid_request", "validation failed", extra={"fields": exc.messages})
    if refused := providers_refused(data.get("providers")):
        return refused
    req = RentRequest(service=data["service"], country=data["country"], operator=data["operator"],
                      hours=data["rent_time"], order_id=data["order_id"],
                      providers=tuple(data["providers"]) if data.get("providers") else None)
    try:
        order, created = _service().submit(req)
    except RentError as exc:
        return error_response(400, "invalid_request", str(exc))
    log_accepted("rent", order, created, configured=configured_providers())
    if created:
        publish(TaskName.PLACE_RENT, {"order_id": order.order_id})
    return jsonify({"order_id": order.order_id, "state": order.state.value, "created": created}), \
        202 if created else 200


@rents_api.get("/api/rents/<order_id>")
def get_rent(order_id: str) -> tuple[Response, int] | Response:
    order = _service().get(order_id) if valid_order_id(order_id) else None
    if order is None:
        return error_response(404, "not_found", "no such rent")
    body = order.public() | {"created_at": iso_time(order.created_at), "end_at": iso_time(order.end_at)}
    body = {k: v for k, v in body.items() if v is not None}
    body["history"] = [{"state": label, "at": iso_time(at)} for label, at in order.history]
    return jsonify(body)


@rents_api.post("/api/rents/<order_id>/<command>")
def rent_command(order_id: str, command: str) -> tuple[Response, int] | Response:
    if command not in RENT_COMMANDS:
        return error_response(404, "not_found", "no such command")
    if not valid_order_id(order_id):
        return error_response(404, "not_found", "no such rent")
    hours = None
    if command == RentCommand.PROLONG:
        try:
            hours = _prolong.load(_body() or {})["hours"]
        except ValidationError as exc:
            return error_response(400, "invalid_request", "validation failed", extra={"fields": exc.messages})
    try:
        accepted = _service().request(order_id, command, hours=hours)
    except UnknownRent:
        return error_response(404, "not_found", "no such rent")
    except RentError as exc:
        return error_response(400, "invalid_request", str(exc))
    except RentCommandConflict as exc:
        state = exc.state.value if exc.state else None
        message = ("the provider no longer allows cancelling this rent (an SMS arrived, or 20 minutes passed)"
                   if exc.reason == "cant_cancel" else f"{command} is not allowed now ({exc.reason})")
        return error_response(409, "conflict", message, extra={"state": state, "reason": exc.reason})
    publish(TaskName.RENT_COMMAND, {"order_id": order_id, "command": accepted.command.value})
    return jsonify({"order_id": order_id, "command": command, "state": accepted.state.value}), 202
