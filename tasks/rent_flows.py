"""What the rent tasks do, as plain functions of a :class:`Runtime` (no Celery here, so tests call them directly).

Money rules (engineering.md §2): getRentNumber and continueRentNumber are purchases WITHOUT an idempotency key.
Each is sent at most once per order/command: the order is marked ``buying`` (the command ``prolonging``) by a
compare-and-set before the call, and a re-delivered task that finds that mark never calls again; it reconciles
(getRentList) or gives up with a reason. Everything else (polls, setRentStatus) is safe to repeat.
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, cast

from lifecycle import events as ev
from lifecycle.policy import MAX_TRANSIENT_FAILS, RETRY_LATER_CODES, backoff
from lifecycle.rent_policy import (RECONCILE_DELAY, RentVerdict, classify_rent_purchase_error, rent_end_at,
                                   sms_fingerprint)
from lifecycle.rent_records import PROLONGING, RentOrder, RentState
from provider import errors as perr

from .flows import Breaker, SweepReport
from .runtime import Runtime

log = logging.getLogger("otpflow.rent_flows")

PLACE_RENT = "otpflow.place_rent"
RENT_COMMAND = "otpflow.rent_command"
#: getRentStatus pages read per poll at most (10 SMS each); more only when every SMS on a page was new
MAX_POLL_PAGES = 5
POLL_PAGE_SIZE = 10
#: getRentList page size used to reconcile an ambiguous purchase
RENT_LIST_LENGTH = 100


def webhook_url(rt: Runtime) -> str | None:
    """``{PUBLIC_URL}/webhooks/{WEBHOOK_TOKEN}`` (contains the secret: never logged), or None: polling only."""
    s = rt.settings
    if not s.public_url or not s.webhook_token:
        return None
    return f"{s.public_url.rstrip('/')}/webhooks/{s.webhook_token}"


def _end_text(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else (str(value) if value else None)


# ---------------------------------------------------------------------------------------- purchase
def place_rent(rt: Runtime, order_id: str) -> str:
    """Rent the number for a stored rent order: mark ``buying``, ONE getRentNumber, one transition.

    Re-delivered while ``buying``: if the mark is fresh another delivery is mid-call (do nothing: the deadline
    re-drives us later); if it is stale or the last answer was ambiguous, reconcile, never buy again."""
    order = rt.rents.get(order_id)
    if order is None:
        return "missing"
    if order.state is RentState.PENDING:
        res = rt.rents.start_buying(order_id)
        if not res.ok:
            return f"stale:{res.raw_state}"
        order = rt.rents.get(order_id) or order
    elif order.state is RentState.BUYING:
        if order.ambiguous or rt.rents.timing.buying_is_stale(order, rt.clock()):
            return reconcile_purchase(rt, order)
        return "in_flight"
    else:
        return order.state.value
    try:
        rent = rt.provider.get_rent_number(order.service, rent_time=order.hours, operator=order.operator,
                                           country=order.country, url=webhook_url(rt))
    except perr.ProviderError as exc:
        return _purchase_failed(rt, order, exc)
    return _started(rt, order, str(rent.rent_id), str(rent.phone), rent.end_date)


def _started(rt: Runtime, order: RentOrder, rent_id: str, phone: str, end_date: Any) -> str:
    now = rt.clock()
    res = rt.rents.started(order.order_id, rent_id=rent_id, phone=phone, end_date=_end_text(end_date),
                           end_at=rent_end_at(end_date, now, order.hours))
    if res.ok:
        log.info("rent order %s: rented (rent %s)", order.order_id, rent_id)
        _replay_early(rt, rent_id)
        return "active"
    current = rt.rents.get(order.order_id)
    if current is not None and current.rent_id == rent_id:
        return current.state.value
    # We hold a rent the order no longer wants (it failed meanwhile): give it back while cancelling is free.
    log.error("rent order %s: rent %s bought but the order is %s; cancelling it", order.order_id, rent_id,
              res.raw_state)
    try:
        rt.provider.cancel_rent(rent_id)
    except perr.ProviderError as exc:
        log.warning("rent order %s: could not cancel orphan rent %s (%s)", order.order_id, rent_id,
                    exc.code or type(exc).__name__)
    return "orphan"


def _replay_early(rt: Runtime, rent_id: str) -> None:
    """Rent webhooks drained before the rent id was stored were held: apply them now (the poll is the backstop)."""
    try:
        rt.consumer.replay_held("rent", rent_id)
    except Exception:  # noqa: BLE001 - the rent is stored; the poll reconciles what the replay missed
        log.exception("replay of early webhooks for rent %s failed; the poll will catch up", rent_id)


def _purchase_failed(rt: Runtime, order: RentOrder, exc: perr.ProviderError) -> str:
    decision = classify_rent_purchase_error(exc, order, rt.settings)
    log.info("rent order %s: getRentNumber %s -> %s", order.order_id, exc.code or type(exc).__name__,
             decision.verdict.value)
    if decision.verdict is RentVerdict.RETRY_LATER:
        counts = str(exc.code or "").upper() in RETRY_LATER_CODES
        rt.rents.retry_later(order.order_id, reason=decision.reason, delay=decision.delay, transient=not counts)
        return "retry_later"
    if decision.verdict is RentVerdict.RECONCILE:
        rt.rents.reconcile_later(order.order_id, reason=decision.reason, delay=decision.delay)
        return "reconcile_later"
    rt.rents.fail(order.order_id, reason=decision.reason)
    return "failed"


def reconcile_purchase(rt: Runtime, order: RentOrder) -> str:
    """Did the lost/ambiguous getRentNumber rent a number? getRentList has no order key, so: exactly one listed
    rent that no order of ours knows is taken as ours; none or several -> ``rent_unrecoverable`` (never a
    second purchase). Assumes otpflow is the account's only renter (as activation recovery does)."""
    try:
        rows = list(rt.provider.get_rent_list(length=RENT_LIST_LENGTH))
    except perr.TransientError as exc:
        if order.fails + 1 >= MAX_TRANSIENT_FAILS:
            rt.rents.fail(order.order_id, reason="rent_unrecoverable")
            return "failed"
        rt.rents.rearm(order.order_id, state=RentState.BUYING, due=rt.clock() + backoff(order.fails), fails=True)
        log.warning("rent order %s: getRentList failed (%s); reconciling later", order.order_id,
                    exc.code or type(exc).__name__)
        return "backoff"
    except perr.ProviderError as exc:
        log.error("rent order %s: getRentList refused (%s); failing it", order.order_id, exc.code or type(exc).__name__)
        rt.rents.fail(order.order_id, reason="rent_unrecoverable")
        return "failed"
    known = rt.rents.known_rent_ids(r.rent_id for r in rows)
    unknown = [r for r in rows if r.rent_id and not known.get(r.rent_id)]
    if len(unknown) == 1:
        row = unknown[0]
        log.warning("rent order %s: recovered rent %s from getRentList", order.order_id, row.rent_id)
        return _started(rt, order, row.rent_id, row.phone or "", None)
    log.error("rent order %s: purchase outcome unknown, %d unclaimed rents listed; failing it (rent_unrecoverable)",
              order.order_id, len(unknown))
    rt.rents.fail(order.order_id, reason="rent_unrecoverable")
    return "failed"


# ---------------------------------------------------------------------------------------- one rent's step
def advance_rent(rt: Runtime, order_id: str, *, order: RentOrder | None = None, breaker: Breaker | None = None,
                 report: SweepReport | None = None) -> str:
    """Do whatever is due for one rent order (sweeper and command task)."""
    order = order if order is not None else rt.rents.get(order_id)
    report = report or SweepReport()
    breaker = breaker or Breaker()
    now = rt.clock()
    if order is None:
        rt.rents.drop_deadline(order_id)
        return "dropped"
    state, timing = order.state, rt.rents.timing
    if state is RentState.PENDING:
        rt.rents.rearm(order_id, state=state, due=now + timing.pending_stale)
        rt.publish(PLACE_RENT, {"order_id": order_id})
        return "place_rent"
    if state is RentState.BUYING:
        due = now + timing.buying_stale if order.ambiguous else \
            max(now + RECONCILE_DELAY, (order.buying_at or now) + timing.buying_stale)
        rt.rents.rearm(order_id, state=state, due=due)
        rt.publish(PLACE_RENT, {"order_id": order_id})
        return "place_rent"
    if order.command == PROLONGING:
        return _prolong_in_flight(rt, order)
    if order.command == "prolong" and state in (RentState.ACTIVE, RentState.FINISHED):
        return _prolong(rt, order, report)
    if state is not RentState.ACTIVE:
        rt.rents.drop_deadline(order_id)
        return "dropped"
    if breaker.open:
        return _backoff(rt, order, report, "breaker_open", count=False)
    if order.command == "finish":
        return _close(rt, order, report, breaker, cancel=False, reason="command")
    if order.command == "cancel":
        return _close(rt, order, report, breaker, cancel=True, reason="command")
    if order.end_at is not None and now >= order.end_at:
        return _close(rt, order, report, breaker, cancel=False, reason="end_date")
    return _poll(rt, order, report, breaker)


def _backoff(rt: Runtime, order: RentOrder, report: SweepReport, why: str, *, count: bool = True) -> str:
    rt.rents.rearm(order.order_id, state=order.state, due=rt.clock() + backoff(order.fails), fails=count)
    report.did("backoff")
    return f"backoff:{why}"


def _transient(rt: Runtime, order: RentOrder, report: SweepReport, breaker: Breaker, exc: perr.ProviderError) -> str:
    breaker.trip()
    log.warning("rent order %s: provider unavailable (%s); re-armed", order.order_id, exc.code or type(exc).__name__)
    return _backoff(rt, order, report, exc.code or "transient")


def _read_status(rt: Runtime, order: RentOrder, report: SweepReport) -> tuple[Any, list[Any]]:
    """getRentStatus, newest page first; a further page only while the last one was full and all new to us."""
    report.call("getRentStatus")
    status = rt.provider.get_rent_status(order.rent_id, page=0, size=POLL_PAGE_SIZE)
    messages, page_msgs = list(status.messages), list(status.messages)
    known: set[str] | None = None
    for page in range(1, MAX_POLL_PAGES):
        if len(page_msgs) < POLL_PAGE_SIZE or len(messages) >= int(status.quantity or 0):
            break
        known = _known_fingerprints(rt, order) if known is None else known
        if any(sms_fingerprint(m.text, m.date, m.phone_from) in known for m in page_msgs):
            break
        report.call("getRentStatus")
        page_msgs = list(rt.provider.get_rent_status(order.rent_id, page=page, size=POLL_PAGE_SIZE).messages)
        messages += page_msgs
    return status, messages


def _known_fingerprints(rt: Runtime, order: RentOrder) -> set[str]:
    raw = cast("str | None", rt.redis.hget(rt.rents.keys.rent(order.order_id), "codes")) or ""
    return {c for c in raw.split("\n") if c}


def _apply_messages(rt: Runtime, order: RentOrder, messages: list[Any], report: SweepReport) -> int:
    """Each SMS (oldest first) through the same deduplicated step as the webhook, ``via: poll``."""
    new = 0
    for m in reversed(messages):
        res = rt.rents.sms(order.order_id, rent_id=order.rent_id, text=m.text, phone_from=m.phone_from, date=m.date,
                           via=ev.VIA_POLL)
        new += res.ok
    if new:
        report.did("rent_sms")
    return new


def _poll(rt: Runtime, order: RentOrder, report: SweepReport, breaker: Breaker) -> str:
    """Reconcile SMS whose webhooks were lost, and notice a rent the provider ended."""
    try:
        status, messages = _read_status(rt, order, report)
    except perr.TransientError as exc:
        return _transient(rt, order, report, breaker, exc)
    except perr.ProviderError as exc:
        log.error("rent order %s: poll failed with %s; re-armed", order.order_id, exc.code or type(exc).__name__)
        return _backoff(rt, order, report, exc.code or "error")
    _apply_messages(rt, order, messages, report)
    ended = _provider_ended(rt, order, status.state)
    if ended:
        return ended
    rt.rents.rearm(order.order_id, state=RentState.ACTIVE, due=rt.rents.timing.after_poll(order, rt.clock()),
                   reset_fails=bool(order.fails))
    report.did("rent_poll")
    return "polled"


def _provider_ended(rt: Runtime, order: RentOrder, state: Any) -> str | None:
    name = str(getattr(state, "value", state))
    if name == "FINISHED":
        rt.rents.end(order.order_id, cancelled=False, reason="provider_finished", rent_id=order.rent_id)
        return "finished"
    if name in ("CANCELLED", "REVOKED"):
        reason = "revoked" if name == "REVOKED" else "provider_cancelled"
        rt.rents.end(order.order_id, cancelled=True, reason=reason, rent_id=order.rent_id)
        return "cancelled"
    return None


def _close(rt: Runtime, order: RentOrder, report: SweepReport, breaker: Breaker, *, cancel: bool, reason: str) -> str:
    """Finish (setRentStatus 1) or cancel (setRentStatus 2). A last poll first collects SMS whose webhooks were
    lost (after the end the provider answers STATUS_FINISH without messages)."""
    try:
        status, messages = _read_status(rt, order, report)
    except perr.TransientError as exc:
        return _transient(rt, order, report, breaker, exc)
    except perr.ProviderError:
        status, messages = None, []
    _apply_messages(rt, order, messages, report)
    if status is not None and (ended := _provider_ended(rt, order, status.state)):
        return ended
    if cancel and messages:
        return _refused(rt, order, "cant_cancel")   # an SMS arrived: the provider would answer CANT_CANCEL
    try:
        report.call("setRentStatus")
        (rt.provider.cancel_rent if cancel else rt.provider.finish_rent)(order.rent_id)
    except perr.AlreadyFinished:
        cancel, reason = False, "provider_finished"
    except perr.AlreadyCancelled:
        cancel, reason = True, "provider_cancelled"
    except perr.CantCancel:
        return _refused(rt, order, "cant_cancel")
    except perr.TransientError as exc:
        return _transient(rt, order, report, breaker, exc)
    except perr.ProviderError as exc:
        if order.command:
            return _refused(rt, order, (exc.code or "error").lower())
        # The end date passed: the rent is over whatever setRentStatus says (it was only a courtesy call).
        log.warning("rent order %s: setRentStatus 1 at the end date answered %s; finished anyway", order.order_id,
                    exc.code or type(exc).__name__)
    rt.rents.end(order.order_id, cancelled=cancel, reason=reason, rent_id=order.rent_id)
    report.did("rent_cancelled" if cancel else "rent_finished")
    return "cancelled" if cancel else "finished"


def _refused(rt: Runtime, order: RentOrder, error: str) -> str:
    """The provider refused the command: emit nothing, forget the command, keep the reason (GET shows it)."""
    log.info("rent order %s: %s refused (%s)", order.order_id, order.command, error)
    due = None if order.state is not RentState.ACTIVE else rt.rents.timing.after_poll(order, rt.clock())
    rt.rents.drop_command(order.order_id, order.state, error=error, due=due)
    return f"refused:{error}"


# ---------------------------------------------------------------------------------------- prolongation
def _prolong(rt: Runtime, order: RentOrder, report: SweepReport) -> str:
    """continueRentNumber, sent at most once per command (claimed by a field-level CAS first)."""
    hours = order.command_hours or 4
    if not rt.rents.mark_prolonging(order.order_id, order.state).ok:
        return "claimed"
    try:
        report.call("continueRentNumber")
        rent = rt.provider.continue_rent_number(order.rent_id, rent_time=hours)
    except perr.ProviderError as exc:
        # A purchase: an ambiguous failure is not repeated; downstream may ask again (GET shows the error).
        never_sent = getattr(exc, "possibly_processed", None) is False
        error = (exc.code or "").lower() if not exc.transient or never_sent else "prolong_unconfirmed"
        return _refused(rt, _with_cmd(order, PROLONGING), error or "prolong_unconfirmed")
    now = rt.clock()
    if str(rent.rent_id) == order.rent_id and order.state is RentState.ACTIVE:
        base = max(order.end_at or now, now)
        end_at = rent_end_at(rent.end_date, base, hours) if getattr(rent.end_date, "tzinfo", None) else base + hours * 3600
        rt.rents.prolonged(order.order_id, end_date=_end_text(rent.end_date), end_at=end_at)
        return "prolonged"
    if order.state is RentState.ACTIVE:   # the provider had already ended it: a re-order under a new id
        rt.rents.end(order.order_id, cancelled=False, reason="provider_finished", rent_id=order.rent_id,
                     keep_command=True)
    res = rt.rents.reordered(order.order_id, old_rent_id=order.rent_id, previous=order.previous_rent_ids,
                             rent_id=str(rent.rent_id), phone=str(rent.phone), end_date=_end_text(rent.end_date),
                             end_at=rent_end_at(rent.end_date, now, hours))
    if res.ok:
        _replay_early(rt, str(rent.rent_id))
    return "reordered" if res.ok else f"stale:{res.raw_state}"


def _with_cmd(order: RentOrder, command: str) -> RentOrder:
    from dataclasses import replace

    return replace(order, command=command)


def _prolong_in_flight(rt: Runtime, order: RentOrder) -> str:
    """A prolongation claimed but not answered: if its worker died, do NOT send it again; report it."""
    started = order.command_at or order.created_at
    if rt.clock() - started < rt.rents.timing.buying_stale:
        rt.rents.rearm(order.order_id, state=order.state, due=started + rt.rents.timing.buying_stale)
        return "in_flight"
    return _refused(rt, order, "prolong_unconfirmed")


# ---------------------------------------------------------------------------------------- sweep, commands
def sweep_rents(rt: Runtime, report: SweepReport, *, lease: float = 120.0) -> int:
    """Claim due rent deadlines (leased, like activations) and advance each; returns how many were claimed."""
    due = rt.deadlines.claim(rt.settings.sweep_batch, lease=lease, key=rt.keys.rent_deadlines)
    if not due:
        return 0
    orders = rt.rents.get_many(d.order_id for d in due)
    breaker = Breaker()
    for d in due:
        try:
            advance_rent(rt, d.order_id, order=orders.get(d.order_id), breaker=breaker, report=report)
        except Exception:  # one bad rent must not stop the sweep; its lease expires and it comes back
            log.exception("sweep: rent order %s failed", d.order_id)
    return len(due)


def rent_command(rt: Runtime, order_id: str, name: str) -> str:
    """Carry out a recorded downstream command now (the sweeper would, at the next beat)."""
    order = rt.rents.get(order_id)
    if order is None:
        return "missing"
    if not order.command:
        return "no_command"
    return advance_rent(rt, order_id, order=order)
