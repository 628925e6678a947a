"""Rent orders: a number rented for hours, every SMS on it an event, until its end, finish or cancel.

Same shape as ``lifecycle.activation``: ``machine``, ``record``, ``config``, ``decisions`` (pure), ``store``
(reads and atomic transitions), ``orders`` (where rent orders enter and take commands).
"""
from .config import RentConfig
from .machine import CANCEL_WINDOW, PROLONGING, RENT_COMMANDS, RentCommand, RentState
from .orders import (MAX_HOURS, MIN_HOURS, RentCommandAccepted, RentCommandConflict, RentError, RentService,
                     UnknownRent)
from .record import RentOrder, RentRequest
from .store import RENT_FILL, RentStore, rent_state_of

__all__ = ["CANCEL_WINDOW", "MAX_HOURS", "MIN_HOURS", "PROLONGING", "RENT_COMMANDS", "RENT_FILL", "RentCommand",
           "RentCommandAccepted", "RentCommandConflict", "RentConfig", "RentError", "RentOrder", "RentRequest",
           "RentService", "RentState", "RentStore", "UnknownRent", "rent_state_of"]
