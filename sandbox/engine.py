"""The emulated provider account: catalogue, ledger, activations, rents, clock, webhooks, under one lock.

`actions.py` turns wire parameters into calls on this class; `control.py` drives it from tests. Every public
method expects the caller to hold `self.lock` (an RLock), except where noted; the app takes it once per request.
"""
from __future__ import annotations

import dataclasses
import heapq
import random
import re
import threading
from decimal import Decimal
from typing import Any

from .activations import Activation, Call, Outcome, Rules, Sms, State, expire, receive_sms, set_status
from .catalogue import (ADDITIONAL_SERVICE_PRICE, EXTRA_ACTIVATION_FACTOR, Catalogue, Offer, OfferPatch,
                        offer_json)
from .clock import Clock, fmt_dt, fmt_iso_z
from .config import FAIL_MODES, STATUS_AFTER_FINISH, SandboxConfig
from .dialects import Dialect, get_dialect
from .errors import ApiError, ControlError, InsufficientFunds, OutOfStock, rent_error
from .ledger import Ledger
from .rents import Rent, RentPeriod, RentSms, RentState, check_set_status
from .scheduler import Scheduler
from .webhooks import WebhookSender

FIRST_ACTIVATION_ID = 3_936_040_355      # above 2**31, like live ids
FIRST_RENT_ID = 26_251_422


class _BusyPhones:
    """The phones of active activations and rents, asked one candidate phone at a time: building the whole set
    for each purchase made n purchases cost O(n²)."""

    def __init__(self, engine: "Engine") -> None:
        self.engine = engine

    def __contains__(self, phone: object) -> bool:
        if any(a.active for a in self.engine._by_phone.get(str(phone), ())):
            return True
        return any(r.phone == phone and r.state == RentState.ACTIVE for r in self.engine.rents.values())


class Engine:
    """All mutable state of one sandbox."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.clock = Clock()
        self.scheduler = Scheduler()
        self.webhooks = WebhookSender(self.scheduler, self._webhook_policy)
        self._init_state()

    # -- lifecycle -------------------------------------------------------------------------------------------
    def _init_state(self) -> None:
        cfg = self.config
        self.settings: SandboxConfig = dataclasses.replace(cfg, webhook_backoff=tuple(cfg.webhook_backoff))
        self.dialect: Dialect = get_dialect(cfg.dialect)
        self.rng = random.Random(cfg.seed)
        self.catalogue = Catalogue(stock=cfg.stock)
        self.catalogue.apply(cfg.catalogue)      # ValueError: a start-up patch that cannot apply
        self.ledger = Ledger(Decimal(cfg.balance), Decimal(cfg.cashback))
        self.activations: dict[str, Activation] = {}
        self._by_phone: dict[str, list[Activation]] = {}   # phone -> its activations (a purchase checks phones)
        self.orders: dict[str, str] = {}            # orderId -> activation id
        self.rents: dict[str, Rent] = {}
        self.partner_keys: list[dict[str, Any]] = []
        self._expiry: list[tuple[float, int, str, str]] = []   # (at, seq, kind, id), lazily re-checked
        self._seq = 0
        self._next_activation = FIRST_ACTIVATION_ID
        self._next_rent = FIRST_RENT_ID
        self.fail_remaining: int | None = cfg.fail_next
        self.requests = 0

    def reset(self) -> None:
        """Back to the start-up configuration (clock offset too); pending webhooks are forgotten."""
        with self.lock:
            self.scheduler.clear()
            self.webhooks.reset()
            self.clock.reset()
            self._init_state()

    def close(self) -> None:
        self.scheduler.stop()

    def _webhook_policy(self) -> tuple[list[float], int, float]:
        s = self.settings
        return list(s.webhook_backoff), int(s.webhook_attempts), float(s.webhook_timeout)

    @property
    def rules(self) -> Rules:
        s = self.settings
        return Rules(s.early_cancel_seconds, s.refund_window, self.dialect.status_ready,
                     self.dialect.cancel_codes, self.dialect.cancel_window_error)

    def now(self) -> float:
        return self.clock.now()

    # -- ids -------------------------------------------------------------------------------------------------
    def _new_activation_id(self) -> str:
        self._next_activation += self.rng.randint(1, 9)
        return str(self._next_activation)

    def _new_rent_id(self) -> str:
        self._next_rent += self.rng.randint(1, 5)
        return str(self._next_rent)

    def _push_expiry(self, at: float, kind: str, ident: str) -> None:
        self._seq += 1
        heapq.heappush(self._expiry, (at, self._seq, kind, ident))

    # -- lazy expiry -----------------------------------------------------------------------------------------
    def sweep(self) -> None:
        """Apply every lifetime/endDate that the (simulated) clock has passed. Cheap when nothing is due."""
        now = self.now()
        while self._expiry and self._expiry[0][0] <= now:
            _, _, kind, ident = heapq.heappop(self._expiry)
            if kind == "activation":
                act = self.activations.get(ident)
                if act is not None and act.active and act.expires_at <= now:
                    self._apply(act, expire(act), act.expires_at)
            else:
                rent = self.rents.get(ident)
                if rent is not None and rent.state == RentState.ACTIVE and rent.end_at <= now:
                    rent.state = RentState.FINISHED
                    rent.ended_at = rent.end_at
                    self.catalogue.give_back_rent(rent.country, rent.service)

    # -- fault injection -------------------------------------------------------------------------------------
    def consume_failure(self) -> str | None:
        """The fail mode for this request, counting down `fail_next`."""
        with self.lock:
            mode = self.settings.fail_mode
            if mode is None:
                return None
            if self.fail_remaining is not None:
                if self.fail_remaining <= 0:
                    self.settings.fail_mode = None
                    self.fail_remaining = None
                    return None
                self.fail_remaining -= 1
            return mode

    # -- purchases -------------------------------------------------------------------------------------------
    def check_can_buy(self) -> None:
        s = self.settings
        if s.banned_until:
            raise ApiError("BANNED", s.banned_until)
        if s.max_active is not None:
            active = sum(1 for a in self.activations.values() if a.active)
            if active >= s.max_active:
                raise ApiError("CHANNELS_LIMIT")

    def _busy_phones(self) -> "_BusyPhones":
        return _BusyPhones(self)

    def buy(self, *, service: str, country: int, operator: str, price: Decimal, activation_type: int = 0,
            forward: bool = False, order_id: str | None = None, excluded: list[str] | None = None,
            phone: str | None = None, kind: str = "number", parent_id: str | None = None,
            language: str | None = None, take_stock: bool = True) -> Activation:
        """Take stock, charge, create the activation, schedule expiry and auto-SMS."""
        now = self.now()
        if take_stock:
            try:
                self.catalogue.take(country, service)
            except OutOfStock:
                raise ApiError("NO_NUMBERS") from None
        act_id = self._new_activation_id()
        try:
            if phone is None:
                phone = self.catalogue.new_phone(country, self.rng, self._busy_phones(), excluded or [])
            from_cashback = self.ledger.charge(price, f"activation:{act_id}", now)
        except (InsufficientFunds, OutOfStock) as exc:
            if take_stock:
                self.catalogue.give_back(country, service)
                offer = self.catalogue.offer(country, service)
                if offer is not None:
                    offer.sold -= 1
            if isinstance(exc, OutOfStock):
                raise ApiError("NO_NUMBERS") from None
            raise ApiError("NO_BALANCE_FORWARD" if forward else "NO_BALANCE") from None
        country_rec = self.catalogue.countries[country]
        act = Activation(id=act_id, service=service, country=country, phone=phone, cost=price, operator=operator,
                         created_at=now, expires_at=now + self.settings.activation_lifetime,
                         activation_type=activation_type, forward=forward, order_id=order_id,
                         from_cashback=from_cashback, kind=kind, parent_id=parent_id, language=language,
                         can_retry=bool(country_rec.retry))
        self.activations[act_id] = act
        self._by_phone.setdefault(phone, []).append(act)
        if order_id:
            self.orders[order_id] = act_id
        self._push_expiry(act.expires_at, "activation", act_id)
        self._schedule_auto(act_id, "activation")
        return act

    def _schedule_auto(self, ident: str, kind: str) -> None:
        delay = self.settings.auto_sms_after
        if delay is None:
            return
        self.scheduler.call_later(float(delay), lambda: self._auto_deliver(ident, kind))

    def _auto_deliver(self, ident: str, kind: str) -> None:
        """Background job: deliver a random 6-digit code (or a call) if the number still waits."""
        with self.lock:
            self.sweep()
            code = f"{self.rng.randint(0, 999999):06d}"
            if kind == "activation":
                act = self.activations.get(ident)
                if act is None or act.state != State.WAIT_CODE:
                    return
                if act.activation_type in (1, 2):
                    self.deliver_call(ident, phone_from=None, code=None)
                else:
                    self.deliver_sms(ident, code=code, text=f"Your code is {code}")
            else:
                rent = self.rents.get(ident)
                if rent is not None and rent.state == RentState.ACTIVE and not rent.sms:
                    self.deliver_rent_sms(ident, text=f"Your code is {code}", phone_from="SANDBOX")

    def get_activation(self, raw_id: str | None, *, bad: str = "WRONG_ACTIVATION_ID",
                       missing: str = "NO_ACTIVATION") -> Activation:
        """Find an activation by wire id: non-numeric → `bad`, unknown → `missing`."""
        if raw_id is None or not str(raw_id).strip().isdigit():
            raise ApiError(bad)
        act = self.activations.get(str(int(str(raw_id).strip())))
        if act is None:
            raise ApiError(missing)
        return act

    # -- transitions -----------------------------------------------------------------------------------------
    def _apply(self, act: Activation, out: Outcome, at: float) -> None:
        if out.new_state == State.WAIT_RETRY and act.state != State.WAIT_RETRY:
            act.retry_of = act.last_code
        act.state = out.new_state
        if out.end_reason is not None:
            act.ended_at = at
            act.end_reason = out.end_reason
        if out.return_stock:
            self.catalogue.give_back(act.country, act.service)
        if out.refund and not act.refunded:
            act.refunded = True
            self.ledger.refund(act.cost, f"activation:{act.id}", at, act.from_cashback)
        if out.new_state == State.FINISHED and act.has_code:
            offer = self.catalogue.offer(act.country, act.service)
            if offer is not None:
                offer.succeeded += 1

    def set_status(self, act: Activation, status: int) -> str:
        now = self.now()
        out = set_status(act, status, now, self.rules)
        if status == 1:
            act.ready = True
        self._apply(act, out, now)
        return out.token

    def _active_activation(self, act_id: str) -> Activation:
        """The activation a control request targets, after applying expiries (404 unknown, 409 ended)."""
        self.sweep()
        act = self.activations.get(str(act_id))
        if act is None:
            raise ControlError(f"unknown activation {act_id}", 404)
        if not act.active:
            raise ControlError(f"activation {act_id} is {act.state.value}", 409)
        return act

    def deliver_sms(self, act_id: str, code: str | None = None, text: str | None = None,
                    phone_from: str | None = None) -> dict[str, Any]:
        """Control/auto: an SMS reaches an activation; fires the account webhook."""
        act = self._active_activation(act_id)
        if code is None:
            found = re.findall(r"\d{4,8}", text or "")
            code = found[0] if found else f"{self.rng.randint(0, 999999):06d}"
        if text is None:
            text = f"Your code is {code}"
        now = self.now()
        sms = Sms(code=str(code), text=str(text), received_at=now, phone_from=phone_from or "SANDBOX")
        receive_sms(act, sms)
        ids = self._activation_webhook(act, sms)
        return {"activation_id": act.id, "code": sms.code, "text": sms.text, "received_at": fmt_dt(now),
                "webhooks": ids}

    def deliver_call(self, act_id: str, phone_from: str | None, code: str | None,
                     text: str | None = None) -> dict[str, Any]:
        """Control/auto: a call reaches a call-verification activation (activationType 1/2)."""
        act = self._active_activation(act_id)
        if phone_from is None:
            phone_from = "7" + "".join(self.rng.choice("0123456789") for _ in range(10))
        if code is None:
            # type 1: "the calling number is the code": the last 4 digits (emulator decision); voice: random
            code = phone_from[-4:] if act.activation_type != 2 else f"{self.rng.randint(0, 99999):05d}"
        now = self.now()
        url = (f"https://sandbox.invalid/voice/{act.id}.mp3" if act.activation_type == 2 else None)
        act.call = Call(phone_from=phone_from, code=str(code), text=text or f"Your code is {code}",
                        received_at=now, url=url)
        act.state = State.CODE_RECEIVED
        act.retry_of = None
        return {"activation_id": act.id, "code": act.call.code, "from": phone_from, "received_at": fmt_dt(now),
                "webhooks": []}

    def _activation_webhook(self, act: Activation, sms: Sms) -> list[str]:
        url = self.settings.webhook_url
        if not url:
            return []
        if self.dialect.webhook_style == "herosms":
            payload: dict[str, Any] = {
                "id": f"{act.id}-{len(act.sms)}", "activationId": act.id, "service": act.service,
                "text": sms.text, "code": sms.code, "country": act.country,
                "receivedAt": fmt_iso_z(sms.received_at), "phoneFrom": sms.phone_from}
        else:
            payload = {"activationId": int(act.id), "service": act.service, "text": sms.text, "code": sms.code,
                       "country": act.country, "receivedAt": fmt_dt(sms.received_at)}
        return self.webhooks.submit(url, payload, "activation", act.id, copies=self.settings.duplicate_webhooks,
                                    drop=self.settings.drop_webhooks)

    # -- rents -----------------------------------------------------------------------------------------------
    def get_rent(self, raw_id: str | None) -> Rent:
        if raw_id is None or str(raw_id).strip() == "":
            raise rent_error("NO_ID_RENT")
        rent = self.rents.get(str(raw_id).strip())
        if rent is None:
            raise rent_error("INVALID_PHONE")
        return rent

    def rent(self, *, service: str, country: int, hours: int, operator: str, url: str | None,
             incoming_call: bool = False, phone: str | None = None) -> Rent:
        now = self.now()
        offer = self.catalogue.offer(country, service)
        if offer is None or offer.rent_price_4h is None:
            raise rent_error("NO_NUMBERS")
        price = self.catalogue.rent_price(country, service, hours)
        if not self.ledger.can_pay(price):
            raise rent_error("NO_BALANCE")
        try:
            self.catalogue.take_rent(country, service)
            if phone is None:
                phone = self.catalogue.new_phone(country, self.rng, self._busy_phones(), [])
        except OutOfStock:
            raise rent_error("NO_NUMBERS") from None
        rent_id = self._new_rent_id()
        self.ledger.charge(price, f"rent:{rent_id}", now)
        rent = Rent(id=rent_id, service=service, country=country, phone=phone, operator=operator, created_at=now,
                    end_at=now + hours * 3600, cost=price, hours=hours, url=url, incoming_call=incoming_call,
                    history=[RentPeriod(now, price, hours)])
        self.rents[rent_id] = rent
        self._push_expiry(rent.end_at, "rent", rent_id)
        self._schedule_auto(rent_id, "rent")
        return rent

    def set_rent_status(self, rent: Rent, status: str | None) -> None:
        now = self.now()
        new = check_set_status(rent, status, now, self.settings.rent_cancel_window)
        rent.state = new
        rent.ended_at = now
        self.catalogue.give_back_rent(rent.country, rent.service)
        if new == RentState.CANCELLED:
            self.ledger.refund(sum((p.price for p in rent.history), Decimal("0")), f"rent:{rent.id}", now)

    def continue_rent(self, rent: Rent, hours: int) -> Rent:
        """Prolong: same id while active, a re-order with a new id once finished."""
        now = self.now()
        if rent.state in (RentState.CANCELLED, RentState.REVOKED):
            raise rent_error("RENT_DIE")
        if rent.state == RentState.FINISHED and (rent.successor is not None
                                                 or now - (rent.ended_at or now) > self.settings.rent_die_after):
            raise rent_error("RENT_DIE")
        from .rents import MAX_HOURS
        if rent.state == RentState.ACTIVE and rent.total_hours + hours > MAX_HOURS:
            raise rent_error("MAX_HOURS_EXCEED", info={"max": MAX_HOURS - rent.total_hours})
        price = self.catalogue.rent_price(rent.country, rent.service, hours)
        if rent.state == RentState.FINISHED:
            if not self.ledger.can_pay(price):
                raise rent_error("NO_BALANCE")
            new = self.rent(service=rent.service, country=rent.country, hours=hours, operator=rent.operator,
                            url=rent.url, incoming_call=rent.incoming_call, phone=rent.phone)
            rent.successor = new.id
            return new
        try:
            self.ledger.charge(price, f"rent:{rent.id}", now)
        except InsufficientFunds:
            raise rent_error("NO_BALANCE") from None
        rent.end_at += hours * 3600
        rent.hours += hours
        rent.cost += price
        rent.history.append(RentPeriod(now, price, hours))
        self._push_expiry(rent.end_at, "rent", rent.id)
        return rent

    def deliver_rent_sms(self, rent_id: str, text: str, phone_from: str | None = None,
                         service: str | None = None) -> dict[str, Any]:
        self.sweep()
        rent = self.rents.get(str(rent_id))
        if rent is None:
            raise ControlError(f"unknown rent {rent_id}", 404)
        if rent.state != RentState.ACTIVE:
            raise ControlError(f"rent {rent_id} is {rent.state.value}", 409)
        now = self.now()
        sms = RentSms(phone_from=phone_from or "SANDBOX", text=text, service=service or rent.service, date=now)
        rent.sms.append(sms)
        ids: list[str] = []
        if rent.url:
            payload = {"rentId": rent.id, "sms": {"phoneFrom": sms.phone_from, "text": sms.text,
                                                  "date": fmt_dt(now)}}
            ids = self.webhooks.submit(rent.url, payload, "rent", rent.id, copies=self.settings.duplicate_webhooks,
                                       drop=self.settings.drop_webhooks)
        return {"rent_id": rent.id, "text": text, "date": fmt_dt(now), "webhooks": ids}

    def revoke_rent(self, rent_id: str) -> dict[str, Any]:
        """Control: the provider blocks a rented number (STATUS_REVOKE, money returned)."""
        rent = self.rents.get(str(rent_id))
        if rent is None:
            raise ControlError(f"unknown rent {rent_id}", 404)
        if rent.state != RentState.ACTIVE:
            raise ControlError(f"rent {rent_id} is {rent.state.value}", 409)
        now = self.now()
        rent.state = RentState.REVOKED
        rent.ended_at = now
        self.ledger.refund(sum((p.price for p in rent.history), Decimal("0")), f"rent:{rent.id}", now)
        return {"rent_id": rent.id, "state": rent.state.value}

    # -- settings & state ------------------------------------------------------------------------------------
    def update_settings(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Control: change settings at run time; unknown keys are an error (typos must not pass silently)."""
        s = self.settings
        # fail_mode first: setting it clears the countdown, which a fail_next in the same body then sets.
        for key, value in sorted(changes.items(), key=lambda kv: kv[0] != "fail_mode"):
            if key == "stock":
                try:
                    self.catalogue.set_stock(value)
                except (ValueError, TypeError, AttributeError) as exc:
                    raise ControlError(f"bad stock: {exc}") from None
            elif key == "balance":
                try:
                    self.ledger.set_balance(Decimal(str(value)), self.now())
                except ArithmeticError:
                    raise ControlError("bad balance") from None
            elif key == "cashback":
                self.ledger.cashback = Decimal(str(value))
            elif key == "dialect":
                try:
                    self.dialect = get_dialect(str(value))
                except ValueError as exc:
                    raise ControlError(str(exc)) from None
                s.dialect = self.dialect.name
            elif key == "fail_mode":
                if value is not None and str(value) not in FAIL_MODES:
                    raise ControlError(f"fail_mode must be null or one of {FAIL_MODES}")
                s.fail_mode = None if value is None else str(value)
                self.fail_remaining = None
            elif key == "fail_next":
                self.fail_remaining = None if value is None else int(value)
                s.fail_next = self.fail_remaining
            elif key == "webhook_backoff":
                if not isinstance(value, list) or not all(isinstance(v, (int, float)) for v in value):
                    raise ControlError("webhook_backoff must be a list of seconds")
                s.webhook_backoff = tuple(float(v) for v in value)
            elif key == "retry_after":
                if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                    raise ControlError("retry_after must be null or a whole number of seconds >= 0")
                s.retry_after = value
            elif key == "status_after_finish":
                if value not in STATUS_AFTER_FINISH:
                    raise ControlError(f"status_after_finish must be one of {STATUS_AFTER_FINISH}")
                s.status_after_finish = value
            elif key in ("duplicate_webhooks", "webhook_attempts", "max_active", "default_country"):
                setattr(s, key, None if value is None and key == "max_active" else int(value))
            elif key in ("drop_webhooks", "partner_verified", "honour_order_id"):
                setattr(s, key, bool(value))
            elif key in ("auto_sms_after", "activation_lifetime", "early_cancel_seconds", "refund_window",
                         "rent_cancel_window", "timeout_sleep", "webhook_timeout", "rent_die_after"):
                setattr(s, key, None if value is None and key == "auto_sms_after" else float(value))
            elif key in ("webhook_url", "banned_until", "numbers_status_style"):
                setattr(s, key, value)
            else:
                raise ControlError(f"unknown setting {key!r}")
        return self.settings_json()

    def settings_json(self) -> dict[str, Any]:
        s = self.settings
        d = {f.name: getattr(s, f.name) for f in dataclasses.fields(s)
             if f.name not in ("extra", "api_key", "catalogue")}
        d["balance"] = str(self.ledger.balance)
        d["cashback"] = str(self.ledger.cashback)
        d["webhook_backoff"] = list(s.webhook_backoff)
        d["fail_next"] = self.fail_remaining
        d["dialect"] = self.dialect.name
        return d

    def patch_catalogue(self, patches: list[OfferPatch]) -> list[dict[str, Any]]:
        """Control: change prices and stock (all patches or none); the changed offers."""
        try:
            changed = self.catalogue.apply(patches)
        except ValueError as exc:
            raise ControlError(str(exc)) from None
        return [offer_json(c, s, o) for c, s, o in changed]

    def catalogue_json(self) -> dict[str, Any]:
        """Control: every activation offer with its price, advertised count and real stock."""
        return {"currency": self.settings.currency,
                "offers": [offer_json(c, s, o) for (c, s), o in self.catalogue.offers.items() if s != "full"]}

    def state_json(self) -> dict[str, Any]:
        self.sweep()
        now = self.now()
        return {"now": now, "now_text": fmt_dt(now), "clock_offset": self.clock.offset,
                "balance": str(self.ledger.balance), "cashback": str(self.ledger.cashback),
                "settings": self.settings_json(),
                "activations": [a.to_json() for a in self.activations.values()],
                "orders": dict(self.orders),
                "rents": [r.to_json() for r in self.rents.values()],
                "ledger": [e.to_json() for e in self.ledger.entries[-1000:]],
                "webhooks": self.webhooks.deliveries(),
                "stock": {f"{c}:{s}": o.stock for (c, s), o in self.catalogue.offers.items()},
                "partner_keys": list(self.partner_keys),
                "requests": self.requests}

    # -- helpers for actions ---------------------------------------------------------------------------------
    def pick_operator(self, country: int, wanted: str | None) -> str:
        """The first wanted operator that exists in the country, else the first suitable one (never an error)."""
        ops = self.catalogue.countries[country].operators
        if not ops:
            return "any"
        for op in (wanted or "").split(","):
            if op.strip() in ops:
                return op.strip()
        return ops[self.rng.randrange(len(ops))]

    def extra_price(self, act: Activation) -> Decimal:
        return (act.cost * EXTRA_ACTIVATION_FACTOR).quantize(Decimal("0.01"))

    @staticmethod
    def additional_price() -> Decimal:
        return ADDITIONAL_SERVICE_PRICE

    def offer_or_none(self, country: int, service: str) -> Offer | None:
        return self.catalogue.offer(country, service)
