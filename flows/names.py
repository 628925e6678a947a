"""Every Celery task name, in one place: the tasks register under these, and everyone publishes by them."""
from __future__ import annotations

import enum


class TaskName(enum.StrEnum):
    """Task names (a public contract: other programs may send these by name)."""

    ORDER = "otpflow.order"                   # create an order and buy its number
    PLACE_ORDER = "otpflow.place_order"       # buy the number of a stored order
    COMMAND = "otpflow.command"               # a downstream command: finish, retry, cancel
    DRAIN_INBOX = "otpflow.drain_inbox"       # drain stored webhooks
    FINISH_CODED = "otpflow.finish_coded"     # AUTO_FINISH: setStatus 6 for a drained batch's coded orders
    SWEEP = "otpflow.sweep"                   # the beat's sweep: deadlines, reconciliation, stale inbox entries
    RELAY_EVENTS = "otpflow.relay_events"     # forward events to DOWNSTREAM_TASK
    PLACE_RENT = "otpflow.place_rent"         # rent the number of a stored rent order
    RENT_COMMAND = "otpflow.rent_command"     # a downstream rent command: finish, cancel, prolong
    REFRESH_QUOTES = "otpflow.refresh_quotes"  # read every provider's price and stock for a service and country
    CHECK_BALANCES = "otpflow.check_balances"  # the beat's balance watch: getBalance at every provider
