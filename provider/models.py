"""Typed results of handler_api actions (frozen dataclasses).

Rules that hold for every type (docs/handler-api.md, Data types): ids and phone numbers are ``str`` (ids exceed
2^31, phones may be masked), money is ``Decimal``, dates are ``datetime`` or None (an unreadable date is None, not
a crash; ``YYYY-MM-DD HH:MM:SS`` is naive because the provider's time zone is unstated, ISO ``…Z`` is aware UTC),
and opaque provider enumerations stay strings. ``raw`` keeps the parsed body for fields we do not model.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Iterator, Mapping

__all__ = [
    "ActivationState", "RentState", "ParseCallState", "Activation", "StatusResult", "SmsInfo", "CallInfo",
    "StatusV2", "ActiveActivation", "HistoryEntry", "Balance", "NumbersStatus", "TopCountry", "Operators",
    "CountryShare", "IncomingCallStatus", "Price", "PriceTable", "Country", "Service", "ExtraActivationOffer",
    "ParseCallResult", "RentServicePrice", "RentCatalogue", "Rent", "RentSms", "RentStatus", "RentListItem",
    "RentPriceHistory", "RentPrice", "PartnerProduct",
]


class ActivationState(str, enum.Enum):
    """What getStatus/getStatusV2 say about an activation (docs/handler-api.md, Activation states)."""

    WAIT_CODE = "WAIT_CODE"
    WAIT_RETRY = "WAIT_RETRY"
    WAIT_RESEND = "WAIT_RESEND"
    CANCELLED = "CANCELLED"  # SMS-Activate documents STATUS_CANCEL as "cancelled or completed"
    CODE_RECEIVED = "CODE_RECEIVED"


class RentState(str, enum.Enum):
    """getRentStatus outcomes; the non-ACTIVE ones arrive as error envelopes on the wire
    (docs/handler-api.md, Rents)."""

    WAIT_CODE = "WAIT_CODE"
    ACTIVE = "ACTIVE"  # at least one SMS received
    FINISHED = "FINISHED"
    CANCELLED = "CANCELLED"
    REVOKED = "REVOKED"


class ParseCallState(str, enum.Enum):
    """parseCall outcomes: ``{"result":"OK"}``, ``STATUS_CANCEL``, ``NO_CALL``."""

    OK = "OK"
    CANCELLED = "CANCELLED"
    NO_CALL = "NO_CALL"


@dataclass(frozen=True)
class Activation:
    """A bought number: getNumber/getExtraActivation (plain), getNumberV2 (JSON), getMultiServiceNumber (one per
    service), getAdditionalService. One type so callers need not care how it was bought."""

    activation_id: str
    phone: str
    cost: Decimal | None = None
    currency: int | None = None
    country: str | None = None
    can_get_another_sms: bool | None = None
    activation_time: datetime | None = None
    #: HeroSMS activationEndTime / Grizzly activationEnd: when the number expires
    end_time: datetime | None = None
    #: Grizzly activationCancel: last moment a cancel is allowed
    cancel_time: datetime | None = None
    operator: str | None = None
    service: str | None = None
    country_phone_code: str | None = None
    raw: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class StatusResult:
    """getStatus: the state and, for CODE_RECEIVED/WAIT_RETRY, the (previous) code."""

    state: ActivationState
    code: str | None = None
    raw: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True)
class SmsInfo:
    """getStatusV2 ``sms`` object."""

    code: str | None = None
    text: str | None = None
    date_time: datetime | None = None


@dataclass(frozen=True)
class CallInfo:
    """getStatusV2 ``call`` object (voice / call-number verification)."""

    from_number: str | None = None
    text: str | None = None
    code: str | None = None
    date_time: datetime | None = None
    url: str | None = None
    parsing_count: int | None = None


@dataclass(frozen=True)
class StatusV2:
    """getStatusV2: JSON details, or a plain state (``STATUS_CANCEL``, getStatus-style strings) mapped here."""

    state: ActivationState
    verification_type: int | None = None
    sms: SmsInfo | None = None
    call: CallInfo | None = None
    raw: Any = field(default=None, compare=False, repr=False)

    @property
    def code(self) -> str | None:
        """The code from the SMS, else from the call."""
        if self.sms is not None and self.sms.code:
            return self.sms.code
        if self.call is not None and self.call.code:
            return self.call.code
        return None


@dataclass(frozen=True)
class ActiveActivation:
    """One row of getActiveActivations. ``status`` is the provider's activationStatus, undocumented, so opaque."""

    activation_id: str
    phone: str | None = None
    service: str | None = None
    status: str | None = None
    codes: tuple[str, ...] = ()
    text: str | None = None
    cost: Decimal | None = None
    currency: int | None = None
    country: str | None = None
    country_name: str | None = None
    activation_time: datetime | None = None
    can_get_another_sms: bool | None = None
    order_id: str | None = None
    raw: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class HistoryEntry:
    """One getHistory row; ``status`` is opaque (undocumented); ``cost`` is 0 for active activations."""

    activation_id: str
    date: datetime | None = None
    phone: str | None = None
    sms: tuple[str, ...] = ()
    cost: Decimal | None = None
    status: str | None = None
    currency: int | None = None
    raw: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Balance:
    """getBalance / getBalanceAndCashBack. The currency is the account's; the answer does not say it."""

    amount: Decimal
    raw: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True)
class NumbersStatus:
    """getNumbersStatus: counts per service, forward (``_1``) counts apart; unsuffixed keys count as ``_0``."""

    counts: Mapping[str, int]
    forward_counts: Mapping[str, int]
    raw: Any = field(default=None, compare=False, repr=False)

    def __getitem__(self, service: str) -> int:
        return self.counts[service]

    def get(self, service: str, default: int = 0) -> int:
        return self.counts.get(service, default)


@dataclass(frozen=True)
class TopCountry:
    """getTopCountriesByService(Rank) entry. The ordinal key is neither a price nor a quality ranking."""

    country: str
    count: int | None = None
    price: Decimal | None = None
    retail_price: Decimal | None = None
    free_price_map: Mapping[Decimal, int] | None = None
    rank: str | None = None


@dataclass(frozen=True)
class Operators:
    """getOperators: operator names per country id (string keys); empty for OPERATORS_NOT_FOUND."""

    by_country: Mapping[str, tuple[str, ...]]
    raw: Any = field(default=None, compare=False, repr=False)

    def for_country(self, country: int | str) -> tuple[str, ...]:
        return self.by_country.get(str(country), ())


@dataclass(frozen=True)
class CountryShare:
    """getListOfTopCountriesByService entry: share of purchases and success rate, in percent."""

    country: str
    share: Decimal | None = None
    rate: Decimal | None = None


@dataclass(frozen=True)
class IncomingCallStatus:
    """getIncomingCallStatus: status 2 new, 3 done, 4 cancelled, 5 returned; ``phone`` None until a call."""

    status: int | None
    phone: str | None = None
    raw: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Price:
    """One (country, service) price: getPrices, getPricesExtended, getPricesVerification."""

    country: str
    service: str
    cost: Decimal | None = None
    count: int | None = None
    physical_count: int | None = None
    free_price_map: Mapping[Decimal, int] | None = None


@dataclass(frozen=True)
class PriceTable:
    """Prices indexed country → service, whatever nesting the action used (getPricesVerification is inverted)."""

    by_country: Mapping[str, Mapping[str, Price]]
    raw: Any = field(default=None, compare=False, repr=False)

    def get(self, country: int | str, service: str) -> Price | None:
        return self.by_country.get(str(country), {}).get(service)

    def __iter__(self) -> Iterator[Price]:
        for services in self.by_country.values():
            yield from services.values()

    def __len__(self) -> int:
        return sum(len(s) for s in self.by_country.values())


@dataclass(frozen=True)
class Country:
    """getCountries entry; indexed by ``id``, not by the JSON key (some clones' keys differ from the ids)."""

    id: str
    eng: str | None = None
    rus: str | None = None
    chn: str | None = None
    visible: bool | None = None
    retry: bool | None = None
    rent: bool | None = None
    multi_service: bool | None = None
    raw: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Service:
    """getServicesList entry."""

    code: str
    name: str | None = None


@dataclass(frozen=True)
class ExtraActivationOffer:
    """checkExtraActivation: the price and number of a possible reactivation."""

    cost: Decimal | None
    service: str | None = None
    phone: str | None = None
    country: str | None = None
    raw: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ParseCallResult:
    """parseCall outcome; NO_CALL and STATUS_CANCEL are results, PARSE_COUNT_EXCEED stays an error."""

    state: ParseCallState
    raw: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class RentServicePrice:
    """getRentServicesAndCountries ``services`` entry (``full`` = the whole number)."""

    cost: Decimal | None
    quantity: int | None


@dataclass(frozen=True)
class RentCatalogue:
    """getRentServicesAndCountries."""

    countries: tuple[str, ...]
    operators: tuple[str, ...]
    services: Mapping[str, RentServicePrice]
    currency: int | None = None
    raw: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Rent:
    """getRentNumber / continueRentNumber (a finished rent continued comes back with a NEW id)."""

    rent_id: str
    phone: str
    end_date: datetime | None = None
    raw: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class RentSms:
    """One SMS on a rented number; ``phone_from`` may be alphanumeric ("SPORTMASTER")."""

    phone_from: str | None
    text: str | None
    service: str | None = None
    date: datetime | None = None


@dataclass(frozen=True)
class RentStatus:
    """getRentStatus: the state (error envelopes STATUS_WAIT_CODE/FINISH/CANCEL/REVOKE mapped) and messages."""

    state: RentState
    messages: tuple[RentSms, ...] = ()
    quantity: int = 0
    raw: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class RentListItem:
    """getRentList entry."""

    rent_id: str
    phone: str | None = None


@dataclass(frozen=True)
class RentPriceHistory:
    """continueRentInfo ``history`` entry."""

    create_date: datetime | None
    price: Decimal | None
    hours: int | None


@dataclass(frozen=True)
class RentPrice:
    """getContinueRentPriceNumber / continueRentInfo."""

    price: Decimal | None
    currency: int | None = None
    hours: int | None = None
    history: tuple[RentPriceHistory, ...] = ()
    raw: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class PartnerProduct:
    """buyPartnerProduct: the licence key bought and the download text. ``key`` is not our API key."""

    key: str
    manual: str | None = None
    raw: Any = field(default=None, compare=False, repr=False)
