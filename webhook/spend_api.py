"""The spend API (Blueprint ``spend_api``): ``GET /api/spend``, what each provider has spent this UTC hour and day
against its limits, what is reserved, and the accounting per provider, service and country.

Authenticated like the order API (``Authorization: Bearer <API_TOKEN>``); read-only.
"""
from __future__ import annotations

import time

import redis
from flask import Blueprint, Response, jsonify

from config import domain
from webhook.context import current_context
from webhook.orders_api import check_api_token, redis_down

spend_api = Blueprint("spend_api", __name__)
spend_api.before_request(check_api_token)
spend_api.register_error_handler(redis.exceptions.RedisError, redis_down)


@spend_api.get("/api/spend")
def get_spend() -> Response:
    ctx = current_context()
    report = domain.ledger(ctx.settings, ctx.redis).report(domain.spend_limits(ctx.settings), time.time())
    return jsonify(report)
