"""Celery tasks (thin: each calls the domain in ``lifecycle`` and the provider client).

Importing this package registers every task as a shared task: ``otpflow.order``, ``otpflow.place_order``,
``otpflow.command``, ``otpflow.drain_inbox``, ``otpflow.finish_coded``, ``otpflow.sweep``, ``otpflow.relay_events``,
``otpflow.place_rent``, ``otpflow.rent_command``.
"""
from . import inbox, orders, relay, rents, sweep  # noqa: F401  (registration side effect)

TASK_NAMES = ("otpflow.order", "otpflow.place_order", "otpflow.command", "otpflow.drain_inbox",
              "otpflow.finish_coded", "otpflow.sweep", "otpflow.relay_events", "otpflow.place_rent",
              "otpflow.rent_command")
