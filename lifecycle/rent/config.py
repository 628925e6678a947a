"""Rent policy as data: the SMS fingerprint, what a failed getRentNumber means, and when a rent is next due.

getRentNumber has no idempotency key (unlike getNumberV2's orderId), so the one rule that matters: an answer
that MAY hide a purchase (read timeout, 5xx, unreadable body) is never followed by a second getRentNumber; the
order stays ``buying`` and is reconciled against getRentList instead. Only definite refusals are retried.
"""
from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Final

from config.settings import Settings

from .policy import FINAL_REASONS, MAX_TRANSIENT_FAILS, RETRY_LATER_CODES, backoff
from .rent_records import RentOrder, RentState

#: how long after an ambiguous answer before reconciling (the provider may still be booking it)
RECONCILE_DELAY: Final = 10.0
#: SMS fingerprints a rent record keeps for dedupe (a poll re-reads the newest page; keep many more than a page)
SMS_FINGERPRINTS_KEPT: Final = 128


class RentVerdict(str, enum.Enum):
    RETRY_LATER = "retry_later"   # definite: nothing bought (NO_NUMBERS, rate limit, never sent) -> pending
    RECONCILE = "reconcile"       # maybe bought: stay buying, look it up in getRentList, never re-send
    FAIL = "fail"                 # definite and final -> order.failed


@dataclass(frozen=True)
class RentDecision:
    verdict: RentVerdict
    reason: str
    delay: float = 0.0


def normalize_sms_date(value: Any) -> str:
    """One spelling for an SMS date, whatever carried it: webhook ``2025-06-17 16:01:10``, HeroSMS ISO with
    ``T``/fraction/``Z``, or the client's parsed datetime (poll), so the webhook and the poll of one SMS dedupe."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.strftime("%Y-%m-%d %H:%M:%S")
    text = str(value).strip().replace("T", " ")
    return text[:19]


def sms_fingerprint(text: Any, date: Any, phone_from: Any) -> str:
    """Dedupe key of one rent SMS: (date, text, sender), as protocol.md §7.4 advises. Two identical texts from
    the same sender within the same second are one SMS to us (the provider gives nothing finer)."""
    raw = "\x1f".join((normalize_sms_date(date), str(text or "").strip(), str(phone_from or "").strip()))
    return hashlib.sha1(raw.encode("utf-8")).hexdigest()[:16]


def classify_rent_purchase_error(exc: Any, order: RentOrder, settings: Settings) -> RentDecision:
    """What a getRentNumber failure means; ``exc`` is a provider error (read by ``code``/flags, not class)."""
    code = str(getattr(exc, "code", "") or "").upper()
    transient = bool(getattr(exc, "transient", False))
    never_sent = getattr(exc, "possibly_processed", None) is False
    if never_sent or code in {"RATE_LIMIT", "CHANNELS_LIMIT"}:
        if order.fails + 1 >= MAX_TRANSIENT_FAILS:
            return RentDecision(RentVerdict.FAIL, "provider_unavailable")
        retry_after = getattr(exc, "retry_after", None)
        return RentDecision(RentVerdict.RETRY_LATER, code.lower() or "not_sent",
                            max(backoff(order.fails), float(retry_after or 0.0)))
    if transient or type(exc).__name__ == "UnexpectedAnswer" or not code:
        return RentDecision(RentVerdict.RECONCILE, code.lower() or "ambiguous", RECONCILE_DELAY)
    if code in RETRY_LATER_CODES:
        if order.attempts + 1 >= settings.order_max_attempts:
            return RentDecision(RentVerdict.FAIL, code.lower())
        return RentDecision(RentVerdict.RETRY_LATER, code.lower(), settings.order_retry_delay)
    return RentDecision(RentVerdict.FAIL, FINAL_REASONS.get(code, code.lower()))


def rent_end_at(end_date: Any, started: float, hours: int) -> float:
    """When the rent ends: the provider's end date when it names its zone, else our start + hours (the
    provider's zone for naive dates is unstated, protocol.md §1.3; our own clock is the safer source)."""
    if isinstance(end_date, datetime) and end_date.tzinfo is not None:
        return end_date.timestamp()
    return started + hours * 3600.0


@dataclass(frozen=True)
class RentTiming:
    """When each rent state is next due (the rent deadline set's score)."""

    settings: Settings
    pending_stale: float = 60.0

    @property
    def buying_stale(self) -> float:
        """A purchase still ``buying`` after this long is surely over (client timeouts x retries): reconcile."""
        s = self.settings
        return (s.provider_connect_timeout + s.provider_read_timeout) * 4 + 30.0

    def first_poll(self, started: float, end_at: float | None) -> float:
        due = started + self.settings.poll_after
        return min(due, end_at) if end_at is not None else due

    def after_poll(self, order: RentOrder, now: float) -> float:
        """Poll every POLL_INTERVAL (lost webhooks), never past the end date (when the rent is closed)."""
        nxt = now + self.settings.poll_interval
        return min(nxt, order.end_at) if order.end_at is not None else nxt

    def buying_is_stale(self, order: RentOrder, now: float) -> bool:
        return order.state is RentState.BUYING and now - (order.buying_at or order.created_at) >= self.buying_stale
