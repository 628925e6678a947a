"""``ProviderClient``: one method per handler_api action (docs/handler-api.md), typed results, typed errors.

Method names are the action in snake_case (``getNumberV2`` → ``get_number_v2``); parameters are Python names
(``max_price``), translated to the wire names the dialect wants (``maxPrice``, ``multiForward`` or ``forward`` …).
Each method documents only what docs/handler-api.md does not say; the parsing rules live in :mod:`provider.parsing`.

Retry policy: read-only actions and ``getNumberV2`` *with* an ``orderId`` are retried on transient failures;
every other purchase, ``setStatus``, ``setRentStatus`` and ``parseCall`` is sent exactly once, because an
ambiguous failure may hide an effect (docs/handler-api.md, Transport and answers and Buying a number).
"""

from __future__ import annotations

import time
from datetime import datetime
from decimal import Decimal
from typing import Any, Callable, Iterable, Mapping, Sequence

import requests

from . import models as m
from .backoff import Backoff, Jitter
from .dialects import Dialect, get_dialect
from .errors import BadActionOrKey, NoActivation, NotSupported, ProviderError
from .parsing import parse_response
from .redaction import Redactor
from .transport import CallObserver, RawResponse, RetryPolicy, Transport

__all__ = ["ProviderClient", "READ_ONLY_ACTIONS", "PURCHASE_ACTIONS"]

#: actions that change nothing on the provider: safe to repeat after an ambiguous failure
READ_ONLY_ACTIONS = frozenset({
    "getNumbersStatus", "getTopCountriesByService", "getTopCountriesByServiceRank", "getBalance",
    "getBalanceAndCashBack", "getOperators", "getActiveActivations", "getStatus", "getStatusV2", "getHistory",
    "getListOfTopCountriesByService", "getIncomingCallStatus", "getPrices", "getPricesExtended",
    "getPricesVerification", "getCountries", "getServicesList", "checkExtraActivation",
    "getRentServicesAndCountries", "getRentStatus", "getRentList", "getContinueRentPriceNumber",
    "continueRentInfo", "getFullSms", "getAllSms", "getPricesV2", "getPricesV3",
    "getListOfCountriesAndOperators", "getCurrentActivations", "getListOfActiveActivations",
})
#: actions that spend money: never repeated blindly (getNumberV2 is repeatable only with an orderId)
PURCHASE_ACTIONS = frozenset({
    "getNumber", "getNumberV2", "getMultiServiceNumber", "getRentNumber", "continueRentNumber",
    "getExtraActivation", "getAdditionalService", "buyPartnerProduct",
})

Ids = str | int
_List = str | Iterable[str] | None


def _flag(value: bool | None) -> str | None:
    """Protocol booleans are the string ``true``; False is simply not sent."""
    return "true" if value else None


def _zero_one(value: bool | int | None) -> int | None:
    return None if value is None else int(bool(value))


def _join(value: _List) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return ",".join(str(v) for v in value)


def _timestamp(value: datetime | int | None) -> int | None:
    if isinstance(value, datetime):
        return int(value.timestamp())
    return value


class ProviderClient:
    """A handler_api client for one account on one provider. Usable as a context manager to close its pool.

    Safe to share between the threads of one process: a call keeps no state on the client (the transport sends
    through the session's adapter, a thread-safe urllib3 pool of 10 connections, with no cookie jar or hooks),
    which is how ``otpflow.finish_coded`` overlaps its provider calls. Build a new one after ``fork``.
    """

    def __init__(
        self,
        api_key: str,
        dialect: str | Dialect = "sms-activate",
        base_url: str | None = None,
        connect_timeout: float = 3.05,
        read_timeout: float = 15.0,
        max_retries: int = 3,
        *,
        session: requests.Session | None = None,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
        method: str | None = None,
        auth: str | None = None,
        proxies: Mapping[str, str] | None = None,
        trust_env: bool = False,
        headers: Mapping[str, str] | None = None,
        observer: CallObserver | None = None,
        name: str | None = None,
    ) -> None:
        self.dialect = get_dialect(dialect)
        self.base_url = base_url or self.dialect.base_url
        self._redact = Redactor(api_key)
        self._transport = Transport(
            self.base_url, api_key,
            method=method or self.dialect.method, auth=auth or self.dialect.auth,
            connect_timeout=connect_timeout, read_timeout=read_timeout, session=session, headers=headers,
            proxies=proxies, trust_env=trust_env,
            retry=RetryPolicy(max_retries=max_retries, backoff=Backoff(backoff_base, backoff_max, Jitter.FULL)),
            sleep=sleep, redactor=self._redact, observer=observer, name=name,
        )
        self._parsers: dict[tuple[str, bool], Callable[[RawResponse], Any]] = {}

    # ------------------------------------------------------------------------------------------- plumbing
    def __repr__(self) -> str:
        return f"ProviderClient(dialect={self.dialect.name!r}, base_url={self._redact(self.base_url)!r})"

    def __enter__(self) -> "ProviderClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release pooled connections."""
        self._transport.close()

    @property
    def session(self) -> requests.Session:
        """The underlying session (mount adapters on it in tests)."""
        return self._transport.session

    def _parser(self, action: str, generic: bool = False) -> Callable[[RawResponse], Any]:
        key = (action, generic)
        parser = self._parsers.get(key)
        if parser is None:
            bad_action_key = self.dialect.bad_action_means_bad_key
            accept_204 = self.dialect.set_status_accepts_204

            def parser(raw: RawResponse) -> Any:
                return parse_response(action, raw.text, raw.status, retry_after=raw.retry_after,
                                      bad_action_means_bad_key=bad_action_key, accept_204=accept_204,
                                      generic=generic)
            self._parsers[key] = parser
        return parser

    def _do(self, action: str, params: Mapping[str, Any] | None = None, *, idempotent: bool | None = None,
            generic: bool = False) -> Any:
        if idempotent is None:
            idempotent = action in READ_ONLY_ACTIONS
        return self._transport.request(action, params or {}, self._parser(action, generic), idempotent=idempotent)

    def _require(self, supported: bool, what: str) -> None:
        if not supported:
            raise NotSupported(f"{what} is not supported by the {self.dialect.name!r} dialect", action=what)

    def call(self, action: str, **params: Any) -> Any:
        """Any action, raw: the stripped text for a plain answer, dict/list for JSON, "" for an empty 2xx.

        Known error codes still raise typed errors. Retried only for read-only actions (and getNumberV2 with
        an ``orderId``)."""
        idempotent = action in READ_ONLY_ACTIONS or (action == "getNumberV2" and bool(params.get("orderId")))
        return self._do(action, params, idempotent=idempotent, generic=True)

    # ------------------------------------------------------------------------------------------- catalogue
    def get_numbers_status(self, country: int | str | None = None, operator: _List = None,
                           **extra: Any) -> m.NumbersStatus:
        """Available counts per service (``_0``/``_1`` suffixes and string counts normalised)."""
        return self._do("getNumbersStatus", {"country": country, "operator": _join(operator), **extra})

    def get_top_countries_by_service(self, service: str | None = None, free_price: bool | None = None,
                                     **extra: Any) -> list[m.TopCountry]:
        """Top countries, in the provider's ordinal order (not a price or quality ranking)."""
        return self._do("getTopCountriesByService", {"service": service, "freePrice": _flag(free_price), **extra})

    def get_top_countries_by_service_rank(self, service: str | None = None, free_price: bool | None = None,
                                          **extra: Any) -> list[m.TopCountry]:
        """As get_top_countries_by_service, with the account's loyalty-rank prices."""
        return self._do("getTopCountriesByServiceRank",
                        {"service": service, "freePrice": _flag(free_price), **extra})

    def get_balance(self) -> m.Balance:
        """Account balance (currency: the account's; not in the answer)."""
        return self._do("getBalance")

    def get_balance_and_cash_back(self) -> m.Balance:
        """Balance including cashback (when the profile setting says so)."""
        return self._do("getBalanceAndCashBack")

    def get_operators(self, country: int | str | None = None, **extra: Any) -> m.Operators:
        """Operators per country; OPERATORS_NOT_FOUND gives an empty result."""
        return self._do("getOperators", {"country": country, **extra})

    def get_list_of_top_countries_by_service(self, service: str, length: int | None = None,
                                             page: int | None = None, **extra: Any) -> list[m.CountryShare]:
        """Purchase share and success rate per country (HeroSMS lacks it: NotSupported)."""
        self._require(self.dialect.has_list_of_top_countries, "getListOfTopCountriesByService")
        return self._do("getListOfTopCountriesByService",
                        {"service": service, "length": length, "page": page, **extra})

    def get_prices(self, service: str | None = None, country: int | str | None = None,
                   currency: int | None = None, **extra: Any) -> m.PriceTable:
        """Prices country → service (cost, count, physicalCount)."""
        return self._do("getPrices", {"service": service, "country": country, "currency": currency, **extra})

    def get_prices_extended(self, service: str | None = None, country: int | str | None = None,
                            free_price: bool | None = None, **extra: Any) -> m.PriceTable:
        """Prices with Free Price maps where the provider gives them."""
        return self._do("getPricesExtended",
                        {"service": service, "country": country, "freePrice": _flag(free_price), **extra})

    def get_prices_verification(self, service: str | None = None, **extra: Any) -> m.PriceTable:
        """Verification prices; the service → country answer is re-indexed country → service."""
        return self._do("getPricesVerification", {"service": service, **extra})

    def get_countries(self) -> list[m.Country]:
        """Countries, identified by their ``id`` field (object or list answers)."""
        return self._do("getCountries")

    def get_services_list(self, country: int | str | None = None, lang: str | None = None,
                          **extra: Any) -> list[m.Service]:
        """Service codes and names."""
        return self._do("getServicesList", {"country": country, "lang": lang, **extra})

    # ------------------------------------------------------------------------------------------- activations
    def _number_params(self, service: str, country: int | str | None, forward: bool | int | None,
                       max_price: Decimal | str | float | None, phone_exception: _List, operator: _List,
                       activation_type: int | None, language: str | None, user_id: str | int | None,
                       ref: str | None, use_cash_back: bool | None, provider_ids: _List,
                       except_provider_ids: _List, currency: int | None, extra: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "service": service, "country": country, "forward": _zero_one(forward),
            "maxPrice": max_price if not isinstance(max_price, float) else repr(max_price),
            "phoneException": _join(phone_exception), "operator": _join(operator),
            "activationType": activation_type, "language": language, "userId": user_id, "ref": ref,
            "useCashBack": _flag(use_cash_back), "providerIds": _join(provider_ids),
            "exceptProviderIds": _join(except_provider_ids), "currency": currency, **extra,
        }

    def get_number(self, service: str, country: int | str | None = None, *, forward: bool | int | None = None,
                   max_price: Decimal | str | float | None = None, phone_exception: _List = None,
                   operator: _List = None, activation_type: int | None = None, language: str | None = None,
                   user_id: str | int | None = None, ref: str | None = None, use_cash_back: bool | None = None,
                   provider_ids: _List = None, except_provider_ids: _List = None, currency: int | None = None,
                   **extra: Any) -> m.Activation:
        """Buy a number (``ACCESS_NUMBER:id:phone``). Sent once, never retried: prefer get_number_v2 + order_id."""
        return self._do("getNumber", self._number_params(
            service, country, forward, max_price, phone_exception, operator, activation_type, language, user_id,
            ref, use_cash_back, provider_ids, except_provider_ids, currency, extra), idempotent=False)

    def get_number_v2(self, service: str, country: int | str | None = None, order_id: str | None = None,
                      max_price: Decimal | str | float | None = None, operator: _List = None,
                      activation_type: int | None = None, forward: bool | int | None = None, *,
                      phone_exception: _List = None, language: str | None = None, user_id: str | int | None = None,
                      ref: str | None = None, use_cash_back: bool | None = None, provider_ids: _List = None,
                      except_provider_ids: _List = None, currency: int | None = None,
                      **extra: Any) -> m.Activation:
        """Buy a number (JSON answer with cost, times, operator). With ``order_id`` the provider deduplicates
        (ORDER_ALREADY_EXISTS), so transient failures are retried; without it, sent exactly once."""
        params = self._number_params(service, country, forward, max_price, phone_exception, operator,
                                     activation_type, language, user_id, ref, use_cash_back, provider_ids,
                                     except_provider_ids, currency, extra)
        params["orderId"] = order_id
        return self._do("getNumberV2", params, idempotent=bool(order_id))

    def get_multi_service_number(self, services: Sequence[str] | str, forward: Sequence[bool | int] | None = None,
                                 *, operator: _List = None, ref: str | None = None,
                                 country: int | str | None = None, **extra: Any) -> list[m.Activation]:
        """One number for several services: one Activation per service (``service`` set). ``forward`` holds one
        0/1 per service (at most one 1), sent as the dialect's ``multiForward``/``forward``."""
        params: dict[str, Any] = {"multiService": _join(services), "operator": _join(operator), "ref": ref,
                                  "country": country, **extra}
        if forward is not None:
            params[self.dialect.multi_forward_param] = ",".join(str(int(bool(f))) for f in forward)
        return self._do("getMultiServiceNumber", params, idempotent=False)

    def set_status(self, activation_id: Ids, status: int, forward: str | None = None) -> str:
        """Change an activation's state; returns the answer token (``ACCESS_CANCEL`` …, "" for HTTP 204).
        Never retried: a lost answer is resolved by get_status."""
        if int(status) == 1:
            self._require(self.dialect.supports_status_ready, "setStatus 1")
        return self._do("setStatus", {"id": activation_id, "status": int(status), "forward": forward},
                        idempotent=False)

    def cancel_activation(self, activation_id: Ids) -> str:
        """Cancel with the dialect's code (8, or -1 for Grizzly). EARLY_CANCEL_DENIED = try after 2 minutes."""
        return self.set_status(activation_id, self.dialect.cancel_status)

    def finish_activation(self, activation_id: Ids) -> str:
        """setStatus 6: confirm the code and close the activation."""
        return self.set_status(activation_id, 6)

    def request_another_sms(self, activation_id: Ids) -> str:
        """setStatus 3: ask for one more code (free)."""
        return self.set_status(activation_id, 3)

    def report_number_ready(self, activation_id: Ids) -> str:
        """setStatus 1 (optional "SMS sent"); NotSupported where the dialect has no status 1."""
        return self.set_status(activation_id, 1)

    def get_status(self, activation_id: Ids) -> m.StatusResult:
        """The activation's state and code (``STATUS_OK: '123'`` style quirks tolerated)."""
        try:
            return self._do("getStatus", {"id": activation_id})
        except BadActionOrKey as exc:
            raise self._unknown_id_or_bad_key(exc) from None

    def get_status_v2(self, activation_id: Ids) -> m.StatusV2:
        """SMS/call details; a plain ``STATUS_CANCEL`` (or getStatus-style answer) is mapped to a state. (A
        BAD_ACTION here stays one: on a dialect that may lack getStatusV2 it can mean just that.)"""
        return self._do("getStatusV2", {"id": activation_id})

    def _unknown_id_or_bad_key(self, exc: BadActionOrKey) -> ProviderError:
        """A dialect that answers BAD_ACTION both to a wrong key and to getStatus of an id it does not know
        (VakSMS, docs/dialects.md): one getBalance tells them apart. The key works: the id is unknown, raised
        as NoActivation like every other dialect says it (the activation is closed). It does not, or the check
        itself fails: the original error (a failed check says nothing about the id)."""
        try:
            self.get_balance()
        except ProviderError:
            return exc
        return NoActivation(raw_code=exc.raw_code, http_status=exc.http_status, body=exc.body, action=exc.action)

    def get_active_activations(self, start: int | None = None, limit: int | None = None,
                               **extra: Any) -> list[m.ActiveActivation]:
        """Current activations; NO_ACTIVATIONS gives []. HeroSMS ``data`` rows are read first."""
        self._require(self.dialect.has_active_activations, "getActiveActivations")
        return self._do("getActiveActivations", {"start": start, "limit": limit, **extra})

    def find_activation_by_order_id(self, order_id: str) -> m.ActiveActivation | None:
        """Recover the activation an ``orderId`` bought (after ORDER_ALREADY_EXISTS), where rows carry orderId."""
        for row in self.get_active_activations():
            if row.order_id == order_id:
                return row
        return None

    def get_history(self, start: datetime | int | None = None, end: datetime | int | None = None,
                    offset: int | None = None, limit: int | None = None, **extra: Any) -> list[m.HistoryEntry]:
        """Past activations (Unix timestamps; datetimes are converted; at most 30 days)."""
        return self._do("getHistory", {"start": _timestamp(start), "end": _timestamp(end), "offset": offset,
                                       "limit": limit, **extra})

    def get_incoming_call_status(self, activation_id: Ids) -> m.IncomingCallStatus:
        """Call-verification status (wire id name per dialect, ``activationId`` by default)."""
        return self._do("getIncomingCallStatus", {self.dialect.incoming_call_id_param: activation_id})

    def get_additional_service(self, *, activation_id: Ids, service: str) -> m.Activation:
        """Buy an adjacent service on a forwarding number. Keyword-only: the official clients disagree on the
        argument order."""
        return self._do("getAdditionalService", {"service": service, "id": activation_id}, idempotent=False)

    def get_extra_activation(self, activation_id: Ids) -> m.Activation:
        """Reactivate a number that had a successful activation (a purchase: sent once)."""
        return self._do("getExtraActivation", {"activationId": activation_id}, idempotent=False)

    def check_extra_activation(self, activation_id: Ids) -> m.ExtraActivationOffer:
        """Price and availability of a reactivation."""
        return self._do("checkExtraActivation", {"activationId": activation_id})

    def parse_call(self, activation_id: Ids, new_lang: str) -> m.ParseCallResult:
        """Re-parse a voice call in another language; NO_CALL and STATUS_CANCEL are results. Not retried: each
        attempt counts against the limit of 4."""
        return self._do("parseCall", {"id": activation_id, "newLang": new_lang}, idempotent=False)

    # ------------------------------------------------------------------------------------------- rent
    def get_rent_services_and_countries(self, rent_time: int | None = None, operator: _List = None,
                                        country: int | str | None = None, currency: int | None = None,
                                        incoming_call: bool | None = None, **extra: Any) -> m.RentCatalogue:
        """Rent prices and stock."""
        return self._do("getRentServicesAndCountries", {
            self.dialect.rent_time_param: rent_time, "operator": _join(operator), "country": country,
            "currency": currency, "incomingCall": _flag(incoming_call), **extra})

    def get_rent_number(self, service: str, rent_time: int | None = None, operator: _List = None,
                        country: int | str | None = None, url: str | None = None,
                        incoming_call: bool | None = None, **extra: Any) -> m.Rent:
        """Rent a number; ``url`` is this rent's webhook (the profile webhook is not used for rent)."""
        return self._do("getRentNumber", {
            "service": service, self.dialect.rent_time_param: rent_time, "operator": _join(operator),
            "country": country, "url": url, "incomingCall": _flag(incoming_call), **extra}, idempotent=False)

    def get_rent_status(self, rent_id: Ids, page: int | None = None, size: int | None = None) -> m.RentStatus:
        """SMS on a rented number; the STATUS_* error envelopes become RentState values."""
        return self._do("getRentStatus", {"id": rent_id, "page": page, "size": size})

    def set_rent_status(self, rent_id: Ids, status: int) -> bool:
        """1 = finish, 2 = cancel (≤ 20 min). Not retried."""
        return self._do("setRentStatus", {"id": rent_id, "status": int(status)}, idempotent=False)

    def finish_rent(self, rent_id: Ids) -> bool:
        """setRentStatus 1."""
        return self.set_rent_status(rent_id, 1)

    def cancel_rent(self, rent_id: Ids) -> bool:
        """setRentStatus 2 (CANT_CANCEL after 20 minutes)."""
        return self.set_rent_status(rent_id, 2)

    def get_rent_list(self, length: int | None = None, page: int | None = None,
                      **extra: Any) -> list[m.RentListItem]:
        """Current rents; the NO_NUMBERS envelope ("none rented") gives []."""
        return self._do("getRentList", {"length": length, "page": page, **extra})

    def continue_rent_number(self, rent_id: Ids, rent_time: int | None = None, **extra: Any) -> m.Rent:
        """Prolong (a purchase: sent once). A finished rent comes back with a NEW rent_id."""
        return self._do("continueRentNumber", {"id": rent_id, self.dialect.rent_time_param: rent_time, **extra},
                        idempotent=False)

    def get_continue_rent_price_number(self, rent_id: Ids, rent_time: int, currency: int | None = None,
                                       **extra: Any) -> m.RentPrice:
        """Price of a prolongation (``rent_time`` always sent: no default is documented). Deprecated by
        continueRentInfo."""
        return self._do("getContinueRentPriceNumber", {
            "id": rent_id, self.dialect.rent_time_param: rent_time, "currency": currency, **extra})

    def continue_rent_info(self, rent_id: Ids, hours: int, need_history: bool | None = None,
                           **extra: Any) -> m.RentPrice:
        """Price of a prolongation with optional history."""
        return self._do("continueRentInfo", {"id": rent_id, "hours": hours,
                                             "needHistory": None if need_history is None else
                                             ("true" if need_history else "false"), **extra})

    # ------------------------------------------------------------------------------------------- partner
    def buy_partner_product(self, product_id: Ids, **extra: Any) -> m.PartnerProduct:
        """Buy partner software (a purchase: sent once); wire id name per dialect (``id``/``productId``)."""
        return self._do("buyPartnerProduct", {self.dialect.partner_product_param: product_id, **extra},
                        idempotent=False)
