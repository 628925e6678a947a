"""Order tasks: create (``otpflow.order``), buy (``otpflow.place_order``), downstream commands (``otpflow.command``)."""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from lifecycle.states import COMMANDS
from lifecycle.store import OrderRequest

from . import flows
from .base import instrumented_task
from .runtime import get_runtime


def _decimal(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"max_price: not a number: {value!r}") from None


@instrumented_task("otpflow.order")
def order(self: Any, service: str, country: int | None = None, operator: str | None = None,
          max_price: str | float | None = None, activation_type: int | None = None, forward: bool | None = None,
          order_id: str | None = None) -> str:
    """Create an order (idempotent on ``order_id``) and buy its number in the same task."""
    rt = get_runtime()
    request = OrderRequest(service=service, country=None if country is None else int(country), operator=operator,
                           max_price=_decimal(max_price),
                           activation_type=None if activation_type is None else int(activation_type),
                           forward=forward, order_id=order_id)
    stored, _created = rt.orders.submit(request)
    outcome = flows.place_order(rt, stored.order_id)
    flows.kick_relay(rt)
    return outcome


@instrumented_task("otpflow.place_order")
def place_order(self: Any, order_id: str) -> str:
    """Buy the number for a stored order (safe to re-deliver: same orderId)."""
    rt = get_runtime()
    outcome = flows.place_order(rt, order_id)
    flows.kick_relay(rt)
    return outcome


@instrumented_task("otpflow.command")
def command(self: Any, order_id: str, command: str) -> str:
    """Carry out a downstream command: finish, retry or cancel."""
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r}")
    rt = get_runtime()
    outcome = flows.command(rt, order_id, command)
    flows.kick_relay(rt)
    return outcome
