"""The log line of an order or rent being accepted, written where orders enter (the order and rent APIs, the
``otpflow.order`` task), beside the transition lines of ``otpflow.lifecycle`` that follow it.

It names what is known at that moment (order id, service, country, the provider when there can be only one) and
nothing secret: no key, no token, no URL. The request or task ids come from ``config.log_context``.
"""
from __future__ import annotations

import enum
import logging
from typing import Protocol

log = logging.getLogger("otpflow.lifecycle")


class Submitted(Protocol):
    """What an activation order (``lifecycle.activation.Order``) and a rent (``lifecycle.rent.RentOrder``) share."""

    @property
    def order_id(self) -> str: ...

    @property
    def state(self) -> enum.Enum: ...

    @property
    def service(self) -> str: ...

    @property
    def country(self) -> int | None: ...

    @property
    def provider(self) -> str | None: ...

    @property
    def preference(self) -> tuple[str, ...]: ...


def known_provider(order: Submitted, configured: tuple[str, ...] = ()) -> str | None:
    """The order's provider when it is already known: the one it bought from, else the only one it allows, else
    the only one ``configured`` (None: routing chooses at purchase)."""
    if order.provider:
        return order.provider
    allowed = [p for p in order.preference if not configured or p in configured]
    if len(allowed) == 1:
        return allowed[0]
    return configured[0] if len(configured) == 1 and not order.preference else None


def log_accepted(kind: str, order: Submitted, created: bool, *, configured: tuple[str, ...] = ()) -> None:
    """One INFO line for an accepted ``kind`` (``order`` or ``rent``): status ``created`` when it was stored now,
    ``dup`` for a repeat of a stored one (idempotent on its order id; nothing is bought twice)."""
    state = str(order.state.value)
    shown = "-" if order.country is None else order.country
    extra: dict[str, object] = {"order_id": order.order_id, "status": "created" if created else "dup",
                                "state": state, "service": order.service, "country": order.country,
                                "provider": known_provider(order, configured)}
    if created:
        log.info("%s %s created: %s (service %s, country %s)", kind, order.order_id, state, order.service, shown,
                 extra=extra | {"to_state": state})
    else:
        log.info("%s %s submitted again: already %s (service %s, country %s)", kind, order.order_id, state,
                 order.service, shown, extra=extra)
