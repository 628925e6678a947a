"""A small in-process provider implementing the client methods the flows call, with scripted answers."""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from datetime import datetime, timezone
from typing import Any, Callable

from provider import errors as perr
from provider.models import Activation, ActivationState, ActiveActivation, StatusResult, StatusV2


@dataclass
class FakeActivation:
    activation_id: str
    phone: str
    service: str
    country: str
    order_id: str | None
    state: str = "WAIT_CODE"      # WAIT_CODE | CODE_RECEIVED | WAIT_RETRY | CANCELLED | FINISHED
    codes: list[str] = field(default_factory=list)
    created: float = 0.0


class FakeProvider:
    """Scripted handler_api: ``fail[method]`` is a list of exceptions raised by the next calls of ``method``."""

    def __init__(self, clock: Callable[[], float] | None = None, *, report_order_id: bool = True) -> None:
        self.clock = clock or (lambda: 0.0)
        self.report_order_id = report_order_id
        self.activations: dict[str, FakeActivation] = {}
        self.orders: dict[str, str] = {}
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.fail: dict[str, list[BaseException]] = {}
        self.outage = False
        self.early_cancel_seconds = 120.0
        self.listing = True
        #: the currency getActiveActivations states for each row (None: it says none)
        self.listing_currency: int | None = None
        self._next = 10_000_000_000

    # ---------------------------------------------------------------- test helpers
    def _enter(self, method: str, *args: Any) -> None:
        self.calls.append((method, args))
        if self.outage:
            raise perr.ServerError(code=None, http_status=500, action=method)
        queue = self.fail.get(method)
        if queue:
            raise queue.pop(0)

    def count(self, method: str) -> int:
        return sum(1 for m, _ in self.calls if m == method)

    def deliver(self, activation_id: str, code: str) -> None:
        act = self.activations[activation_id]
        act.codes.append(code)
        act.state = "CODE_RECEIVED"

    def add(self, service: str = "tg", country: int = 0, order_id: str | None = None) -> FakeActivation:
        self._next += 1
        aid = str(self._next)
        act = FakeActivation(aid, f"7999{self._next % 10_000_000:07d}", service, str(country), order_id,
                             created=self.clock())
        self.activations[aid] = act
        if order_id:
            self.orders[order_id] = aid
        return act

    # ---------------------------------------------------------------- client methods
    def get_number(self, service: str, country: int | None = None, **params: Any) -> Activation:
        """getNumber (no orderId): the parameters sent are kept in ``calls`` for the tests to read."""
        self._enter("get_number", service, country, params)
        act = self.add(service, country or 0, None)
        return Activation(activation_id=act.activation_id, phone=act.phone, cost=Decimal("0.5"))

    def get_number_v2(self, service: str, country: int | None = None, order_id: str | None = None,
                      **_: Any) -> Activation:
        self._enter("get_number_v2", service, country, order_id)
        if order_id and order_id in self.orders:
            raise perr.OrderAlreadyExists()
        act = self.add(service, country or 0, order_id)
        return Activation(activation_id=act.activation_id, phone=act.phone, cost=Decimal("0.5"))

    def get_active_activations(self) -> list[ActiveActivation]:
        self._enter("get_active_activations")
        if not self.listing:
            raise perr.NotSupported("no listing")
        return [ActiveActivation(activation_id=a.activation_id, phone=a.phone, service=a.service, country=a.country,
                                 codes=tuple(a.codes), order_id=a.order_id if self.report_order_id else None,
                                 cost=Decimal("0.5") if self.listing_currency else None,
                                 currency=self.listing_currency)
                for a in self.activations.values() if a.state not in ("CANCELLED", "FINISHED")]

    def get_status(self, activation_id: str) -> StatusResult:
        self._enter("get_status", activation_id)
        act = self.activations.get(str(activation_id))
        if act is None:
            raise perr.NoActivation()
        if act.state in ("CANCELLED", "FINISHED"):
            return StatusResult(ActivationState.CANCELLED)
        if act.state == "CODE_RECEIVED":
            return StatusResult(ActivationState.CODE_RECEIVED, act.codes[-1])
        if act.state == "WAIT_RETRY":
            return StatusResult(ActivationState.WAIT_RETRY, act.codes[-1] if act.codes else None)
        return StatusResult(ActivationState.WAIT_CODE)

    def get_status_v2(self, activation_id: str) -> StatusV2:
        self._enter("get_status_v2", activation_id)
        act = self.activations.get(str(activation_id))
        if act is None:
            raise perr.NoActivation()
        from provider.models import CallInfo
        if act.state == "CODE_RECEIVED":
            return StatusV2(ActivationState.CODE_RECEIVED, 1, None, CallInfo(code=act.codes[-1]))
        if act.state in ("CANCELLED", "FINISHED"):
            return StatusV2(ActivationState.CANCELLED)
        return StatusV2(ActivationState.WAIT_CODE, 1)

    def cancel_activation(self, activation_id: str) -> str:
        self._enter("cancel_activation", activation_id)
        act = self.activations.get(str(activation_id))
        if act is None or act.state in ("CANCELLED", "FINISHED"):
            raise perr.NoActivation()
        if act.state != "WAIT_CODE":
            raise perr.BadStatus()
        if self.clock() - act.created < self.early_cancel_seconds:
            raise perr.EarlyCancelDenied()
        act.state = "CANCELLED"
        return "ACCESS_CANCEL"

    def finish_activation(self, activation_id: str) -> str:
        self._enter("finish_activation", activation_id)
        act = self.activations.get(str(activation_id))
        if act is None or act.state in ("CANCELLED", "FINISHED"):
            raise perr.NoActivation()
        act.state = "FINISHED"
        return "ACCESS_ACTIVATION"

    def request_another_sms(self, activation_id: str) -> str:
        self._enter("request_another_sms", activation_id)
        act = self.activations[str(activation_id)]
        if act.state != "CODE_RECEIVED":
            raise perr.BadStatus()
        act.state = "WAIT_RETRY"
        return "ACCESS_RETRY_GET"


@dataclass
class FakeRent:
    rent_id: str
    phone: str
    service: str
    created: float
    end: float
    url: str | None = None
    state: str = "ACTIVE"          # ACTIVE | FINISHED | CANCELLED | REVOKED
    sms: list[tuple[str, str, float]] = field(default_factory=list)   # (phone_from, text, at)


class FakeRentProvider(FakeProvider):
    """FakeProvider plus the rent API (docs/handler-api.md, Rents), with the 20-minute / no-SMS cancel rule."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        super().__init__(clock)
        self.rents: dict[str, FakeRent] = {}
        self._next_rent = 26_000_000

    def add_rent(self, service: str = "full", hours: int = 4, url: str | None = None,
                 phone: str | None = None) -> FakeRent:
        self._next_rent += 1
        rid = str(self._next_rent)
        rent = FakeRent(rid, phone or f"7999{self._next_rent % 10_000_000:07d}", service, self.clock(),
                        self.clock() + hours * 3600, url)
        self.rents[rid] = rent
        return rent

    def sms(self, rent_id: str, text: str, phone_from: str = "SENDER") -> None:
        self.rents[rent_id].sms.append((phone_from, text, self.clock()))

    #: what a rent of 4 hours costs (getRentServicesAndCountries scales it by the hours, as prolongations)
    rent_price_4h = Decimal("2.00")

    def get_rent_services_and_countries(self, rent_time: int | None = None, operator: Any = None,
                                        country: Any = None, **_: Any) -> Any:
        from provider.models import RentCatalogue, RentServicePrice

        self._enter("get_rent_services_and_countries", rent_time, country)
        hours = rent_time or 4
        return RentCatalogue(countries=("0",), operators=("any",), currency=840,
                             services={"full": RentServicePrice(self.rent_price_4h * hours / 4, 10),
                                       "tg": RentServicePrice(self.rent_price_4h * hours / 4, 10)})

    def get_rent_number(self, service: str, rent_time: int | None = None, operator: Any = None,
                        country: Any = None, url: str | None = None, **_: Any) -> Any:
        from provider.models import Rent

        self._enter("get_rent_number", service, rent_time, url)
        rent = self.add_rent(service, rent_time or 4, url)
        return Rent(rent_id=rent.rent_id, phone=rent.phone,
                    end_date=datetime.fromtimestamp(rent.end, timezone.utc).replace(tzinfo=None))

    def get_rent_status(self, rent_id: str, page: int | None = None, size: int | None = None) -> Any:
        from provider.models import RentSms, RentState, RentStatus

        self._enter("get_rent_status", rent_id, page)
        rent = self.rents.get(str(rent_id))
        if rent is None:
            raise perr.InvalidPhone()
        if rent.state != "ACTIVE":
            return RentStatus(RentState(rent.state))
        if not rent.sms:
            return RentStatus(RentState.WAIT_CODE)
        newest = list(reversed(rent.sms))
        p, n = page or 0, size or 10
        chunk = newest[p * n:(p + 1) * n]
        msgs = tuple(RentSms(phone_from=f, text=t, date=datetime.fromtimestamp(at, timezone.utc).replace(tzinfo=None))
                     for f, t, at in chunk)
        return RentStatus(RentState.ACTIVE, msgs, quantity=len(rent.sms))

    def _set_rent(self, rent_id: str, status: int) -> bool:
        self._enter("set_rent_status", rent_id, status)
        rent = self.rents.get(str(rent_id))
        if rent is None:
            raise perr.InvalidPhone()
        if rent.state == "FINISHED":
            raise perr.AlreadyFinished()
        if rent.state in ("CANCELLED", "REVOKED"):
            raise perr.AlreadyCancelled()
        if status == 2 and (rent.sms or self.clock() - rent.created > 20 * 60):
            raise perr.CantCancel()
        rent.state = "FINISHED" if status == 1 else "CANCELLED"
        return True

    def finish_rent(self, rent_id: str) -> bool:
        return self._set_rent(rent_id, 1)

    def cancel_rent(self, rent_id: str) -> bool:
        return self._set_rent(rent_id, 2)

    def get_rent_list(self, length: int | None = None, page: int | None = None, **_: Any) -> Any:
        from provider.models import RentListItem

        self._enter("get_rent_list")
        return [RentListItem(r.rent_id, r.phone) for r in self.rents.values() if r.state == "ACTIVE"]

    #: what a prolongation of 4 hours costs (getContinueRentPriceNumber scales it by the hours)
    prolong_price_4h = Decimal("1.50")

    def get_continue_rent_price_number(self, rent_id: str, rent_time: int, **_: Any) -> Any:
        from provider.models import RentPrice

        self._enter("get_continue_rent_price_number", rent_id, rent_time)
        if str(rent_id) not in self.rents:
            raise perr.ProviderError("NO_ID_RENT")
        return RentPrice(price=self.prolong_price_4h * rent_time / 4, currency=840, hours=rent_time)

    def continue_rent_number(self, rent_id: str, rent_time: int | None = None, **_: Any) -> Any:
        from provider.models import Rent

        self._enter("continue_rent_number", rent_id, rent_time)
        rent = self.rents[str(rent_id)]
        hours = rent_time or 4
        if rent.state == "FINISHED":
            new = self.add_rent(rent.service, hours, rent.url, phone=rent.phone)
            return Rent(rent_id=new.rent_id, phone=new.phone)
        if rent.state != "ACTIVE":
            raise perr.RentDie()
        rent.end += hours * 3600
        return Rent(rent_id=rent.rent_id, phone=rent.phone)
