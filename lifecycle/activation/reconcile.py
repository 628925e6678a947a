"""Pure reconciliation: given an order and what the provider says about its activation, which transition to make.

Inputs are plain values (the provider's state name, codes) so this module needs neither Redis nor the client.
A provider answer can be stale (a poll issued before a webhook was processed); the decisions never move an
order backwards: they only ever add a code or close an open activation, and the Lua compare-and-set rejects
the rest.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Iterable

from provider.models import ActivationState

from .machine import State
from .record import Order


class Seen(enum.Enum):
    """What the provider reports, reduced to what matters to us."""

    WAITING = "waiting"       # WAIT_CODE, WAIT_RESEND, WAIT_RETRY (with the previous code), or listed with no new code
    CODE = "code"             # a code (possibly one we already know)
    CLOSED = "closed"         # STATUS_CANCEL ("cancelled or completed"), NO_ACTIVATION


@dataclass(frozen=True)
class Observation:
    """One provider view of an activation."""

    seen: Seen
    codes: tuple[str, ...] = ()
    text: str | None = None


class Action(enum.Enum):
    NOTHING = "nothing"       # re-arm the poll
    CODE = "code"             # record new code(s) (receive_code, via poll)
    CANCELLED = "cancelled"   # the provider closed an activation that never got a code
    FINISHED = "finished"     # the provider closed an activation that had its code


@dataclass(frozen=True)
class ReconcileDecision:
    action: Action
    codes: tuple[str, ...] = ()
    text: str | None = None
    reason: str | None = None


def observe_status(state: ActivationState | str, code: str | None = None, text: str | None = None) -> Observation:
    """From getStatus/getStatusV2 (the provider's ActivationState, or its value)."""
    state = ActivationState(str(getattr(state, "value", state)).upper())
    if state is ActivationState.CODE_RECEIVED and code:
        return Observation(Seen.CODE, (code,), text)
    if state is ActivationState.CANCELLED:
        return Observation(Seen.CLOSED)
    return Observation(Seen.WAITING)


#: what most rows of a listing say; one shared instance, so a sweep holding a whole listing holds little per row
STILL_WAITING = Observation(Seen.WAITING)


def observe_listed(codes: Iterable[str] | None, text: str | None = None) -> Observation:
    """From a getActiveActivations row: listed means open; its codes are every code so far."""
    found = tuple(c for c in (codes or ()) if c)
    return Observation(Seen.CODE, found, text) if found else STILL_WAITING


def decide(order: Order, obs: Observation) -> ReconcileDecision:
    """The reconciliation decision for ``order`` (read just before) given ``obs``."""
    if order.state not in (State.WAITING, State.WAITING_RETRY, State.CODE_RECEIVED):
        return ReconcileDecision(Action.NOTHING)
    if obs.seen is Seen.CODE:
        new = tuple(c for c in obs.codes if c not in order.codes)
        if order.state is State.WAITING_RETRY and obs.codes and not new:
            return ReconcileDecision(Action.NOTHING)   # WAIT_RETRY still shows the old code
        if new:
            return ReconcileDecision(Action.CODE, new, obs.text)
        return ReconcileDecision(Action.NOTHING)
    if obs.seen is Seen.CLOSED:
        if order.state is State.WAITING:
            return ReconcileDecision(Action.CANCELLED, reason="provider_closed")
        return ReconcileDecision(Action.FINISHED, reason="provider_closed")
    return ReconcileDecision(Action.NOTHING)
