"""Order tasks: create (``otpflow.order``), buy (``otpflow.place_order``), downstream commands (``otpflow.command``)."""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from flows import activation
from flows.intake import log_accepted
from flows.names import TaskName
from flows.outcomes import Outcome
from lifecycle.activation import Command, OrderRequest
from lifecycle.routing import Routing

from .base import instrumented_task
from .runtime import get_runtime


def _decimal(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"max_price: not a number: {value!r}") from None


@instrumented_task(TaskName.ORDER)
def order(self: Any, service: str, country: int | None = None, operator: str | None = None,
          max_price: str | float | None = None, activation_type: int | None = None, forward: bool | None = None,
          order_id: str | None = None, providers: list[str] | None = None, routing: str | None = None,
          countries: list[int] | None = None, max_numbers: int | None = None) -> Outcome:
    """Create an order (idempotent on ``order_id``) and buy its number in the same task."""
    rt = get_runtime()
    request = OrderRequest(service=service, country=None if country is None else int(country), operator=operator,
                           max_price=_decimal(max_price),
                           activation_type=None if activation_type is None else int(activation_type),
                           forward=forward, order_id=order_id,
                           providers=tuple(p for p in providers if p in rt.provider_names) if providers else None,
                           routing=Routing(routing) if routing else None,
                           countries=tuple(int(c) for c in countries) if countries else None,
                           max_numbers=None if max_numbers is None else int(max_numbers))
    stored, created = rt.orders.submit(request)
    log_accepted("order", stored, created, configured=rt.provider_names)
    return activation.place_order(rt, stored.order_id)


@instrumented_task(TaskName.PLACE_ORDER)
def place_order(self: Any, order_id: str) -> Outcome:
    """Buy the number for a stored order (safe to re-deliver: same orderId)."""
    return activation.place_order(get_runtime(), order_id)


@instrumented_task(TaskName.REFRESH_QUOTES)
def refresh_quotes(self: Any, service: str, country: int | None = None) -> int:
    """Read every provider's price and stock for a service and country (cheapest routing's cache)."""
    return activation.refresh_quotes(get_runtime(), service, None if country is None else int(country))


@instrumented_task(TaskName.COMMAND)
def command(self: Any, order_id: str, command: str) -> Outcome:
    """Carry out a downstream command: finish, retry or cancel."""
    return activation.command(get_runtime(), order_id, Command(command))
