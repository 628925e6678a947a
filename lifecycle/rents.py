"""Rents: a rented number receives many SMS until it is finished or cancelled.

A rent record is a small hash (``Keys.rent``) written by the same atomic transition script as orders, so each
rent event (rent.started, rent.sms, rent.finished, rent.cancelled) is written exactly once. ``rent.sms`` is
deduplicated on a fingerprint of (date, text, sender) inside the atomic step.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Mapping

import redis

from config.settings import Settings

from . import events as ev
from .keys import Keys
from .scripts import script
from .store import Clock, system_clock, ts
from .transitions import RETENTION_SECONDS, Result, Transitions

NEW, ACTIVE, FINISHED, CANCELLED = "new", "active", "finished", "cancelled"
RENT_FILL: dict[str, str] = {"phone": "phone", "service": "service", "country": "country", "order_id": "order_id"}


@dataclass(frozen=True)
class Rent:
    rent_id: str
    state: str
    phone: str | None
    service: str | None
    order_id: str | None


def sms_fingerprint(text: str | None, date: str | None, phone_from: str | None) -> str:
    raw = "\x1f".join((date or "", text or "", phone_from or "")).encode("utf-8")
    return hashlib.sha1(raw).hexdigest()[:16]


class RentService:
    """Record rents and turn their SMS into events."""

    def __init__(self, redis_client: redis.Redis, settings: Settings, *, clock: Clock = system_clock) -> None:
        self.redis = redis_client
        self.keys = Keys(settings)
        self.clock = clock
        self.transitions = Transitions(redis_client, settings, clock=clock)
        self._create = script(redis_client, "create")

    def get(self, rent_id: str) -> Rent | None:
        rec: Mapping[str, str] = self.redis.hgetall(self.keys.rent(rent_id))
        if not rec:
            return None
        return Rent(rent_id, rec.get("state", ""), rec.get("phone"), rec.get("service"), rec.get("order_id"))

    def start(self, rent_id: str, *, phone: str, service: str | None = None, country: int | None = None,
              order_id: str | None = None, end_date: str | None = None) -> Result:
        """Record a rent (idempotent) and write rent.started once."""
        now = self.clock()
        fields = {"state": NEW, "phone": phone, "service": service or "", "country": "" if country is None else str(country),
                  "order_id": order_id or rent_id, "end": end_date or "", "created": ts(now)}
        flat = [x for kv in fields.items() if kv[1] != "" for x in kv]
        self._create(keys=[self.keys.rent(rent_id), self.keys.deadlines], args=[rent_id, "", f"{NEW}@{int(now)}", *flat])
        event = ev.make_event(ev.RENT_STARTED, rent_id, now, rent_id=rent_id, end_date=end_date)
        event.data.pop("order_id", None)
        return self.transitions.apply(rent_id, key=self.keys.rent(rent_id), expect=(NEW,), to=ACTIVE, event=event,
                                      fill=RENT_FILL, now=now)

    def sms(self, rent_id: str, *, text: str | None, phone_from: str | None, date: str | None) -> Result:
        """An SMS on a rented number -> one rent.sms (deduplicated on its fingerprint)."""
        now = self.clock()
        fp = sms_fingerprint(text, date, phone_from)
        event = ev.make_event(ev.RENT_SMS, rent_id, now, discriminator=fp, rent_id=rent_id, text=text,
                              phone_from=phone_from, sms_date=date, via=ev.VIA_WEBHOOK)
        event.data.pop("order_id", None)
        return self.transitions.apply(rent_id, key=self.keys.rent(rent_id), expect=(ACTIVE,), code=fp, event=event,
                                      fill=RENT_FILL, hist="sms", now=now)

    def end(self, rent_id: str, *, cancelled: bool, reason: str | None = None) -> Result:
        now = self.clock()
        etype = ev.RENT_CANCELLED if cancelled else ev.RENT_FINISHED
        event = ev.make_event(etype, rent_id, now, rent_id=rent_id, reason=reason)
        event.data.pop("order_id", None)
        return self.transitions.apply(rent_id, key=self.keys.rent(rent_id), expect=(ACTIVE,),
                                      to=CANCELLED if cancelled else FINISHED, event=event, fill=RENT_FILL,
                                      terminal=True, now=now)


__all__ = ["RentService", "Rent", "sms_fingerprint", "RETENTION_SECONDS"]
