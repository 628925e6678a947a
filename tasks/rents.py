"""Rent tasks: rent a number (``otpflow.place_rent``) and carry out downstream commands (``otpflow.rent_command``)."""
from __future__ import annotations

from typing import Any

from lifecycle.rent_records import RENT_COMMANDS

from . import flows, rent_flows
from .base import NO_RETRY, instrumented_task
from .runtime import get_runtime


@instrumented_task("otpflow.place_rent", retry=NO_RETRY)
def place_rent(self: Any, order_id: str) -> str:
    """Rent the number for a stored rent order. Not auto-retried: getRentNumber is never sent twice; a lost or
    failed run is re-driven by the rent's deadline, which reconciles instead of buying again."""
    rt = get_runtime()
    outcome = rent_flows.place_rent(rt, order_id)
    flows.kick_relay(rt)
    return outcome


@instrumented_task("otpflow.rent_command")
def rent_command(self: Any, order_id: str, command: str) -> str:
    """Carry out a recorded downstream command: finish, cancel or prolong."""
    if command not in RENT_COMMANDS:
        raise ValueError(f"unknown rent command {command!r}")
    rt = get_runtime()
    outcome = rent_flows.rent_command(rt, order_id, command)
    flows.kick_relay(rt)
    return outcome
