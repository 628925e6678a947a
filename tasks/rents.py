"""Rent tasks: rent a number (``otpflow.place_rent``) and carry out downstream commands (``otpflow.rent_command``)."""
from __future__ import annotations

from typing import Any

from flows import rent
from flows.names import TaskName
from flows.outcomes import Outcome
from lifecycle.rent import RentCommand

from .base import NO_RETRY, instrumented_task
from .runtime import get_runtime


@instrumented_task(TaskName.PLACE_RENT, retry=NO_RETRY)
def place_rent(self: Any, order_id: str) -> Outcome:
    """Rent the number for a stored rent order. Not auto-retried: getRentNumber is never sent twice; a lost or
    failed run is re-driven by the rent's deadline, which reconciles instead of buying again."""
    return rent.place_rent(get_runtime(), order_id)


@instrumented_task(TaskName.RENT_COMMAND)
def rent_command(self: Any, order_id: str, command: str) -> Outcome:
    """Carry out a recorded downstream command: finish, cancel or prolong."""
    return rent.rent_command(get_runtime(), order_id, RentCommand(command))
