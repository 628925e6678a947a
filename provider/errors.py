"""Exceptions raised by the handler_api client.

Every failure the client can report is a :class:`ProviderError`, so a caller can write one ``except`` and still
decide *what to do* by the branch of the tree it lands in (the httpx style: the class says what happened, the
attributes say with what)::

    ProviderError                      .code .argument .http_status .body .action .info; class-level .kind .label
    ├── TransientError                 retry later with backoff and jitter; nothing is wrong with the request
    │   ├── NetworkError               no usable HTTP answer (refused, reset, DNS); .possibly_processed
    │   │   └── Timeout
    │   │       ├── ConnectTimeout     the request never left: safe to repeat
    │   │       └── ReadTimeout        sent, no answer: a purchase MAY have happened
    │   ├── ServerError                HTTP 5xx with a body we cannot read as a known answer
    │   ├── RateLimited                HTTP 429 / RATE_LIMIT; .retry_after (seconds or None)
    │   ├── SqlError                   ERROR_SQL (alias SQL_ERROR)
    │   ├── GenericServerError         SERVER_ERROR (rent API), NO_CONNECTION
    │   └── ChannelsLimit              CHANNELS_LIMIT: a concurrency cap; .current_threads .max_allowed
    ├── BusinessError                  a definite outcome of a well-formed request: act on it, do not retry blindly
    │   ├── NoNumbers, NoBalance, NoBalanceForward, WrongMaxPrice(.min_price), EarlyCancelDenied,
    │   │   OrderAlreadyExists, NoActivation, BadStatus, WrongActivationId, …     (see ERROR_CLASSES)
    │   └── rent states sent as errors (RentWaitCode, RentFinished, …) when an action has no better mapping
    ├── FatalError                     stop and report: configuration or account problem
    │   ├── BadKey, NoKey, Banned(.until), BadService, BadAction, BadCountry, RegionRestricted, …
    │   ├── BadActionOrKey             VakSMS answers BAD_ACTION to a wrong key: both BadKey and BadAction
    │   ├── NotSupported               the dialect has no such action/status; raised before any request
    │   └── ConfigurationError         the client cannot build a request (bad URL, …)
    └── UnexpectedAnswer               a body we do not understand for this action; .body keeps it

Every class also says what its answer means, as data: ``kind`` (an :class:`ErrorKind`, which policy keys on)
and ``label`` (the stable snake_case reason that reaches events, order records and metrics). Both are class
attributes, so they survive pickling. A class that does not set ``kind`` takes its family's (TransientError:
OUTAGE, BusinessError: OTHER, FatalError: BAD_REQUEST); ``label`` defaults to ``default_code.lower()``, else to
the class name in snake_case.

The codes, their envelopes and what otpflow does about each are in docs/handler-api.md, Errors. Aliases seen in the wild
(``NO_MEANS``, ``NO_NUMBER``, ``SQL_ERROR``) map to the canonical class; ``.code`` keeps the canonical code and
``.raw_code`` what the wire said.

The API key never reaches these objects: bodies and messages are redacted before they are stored
(:mod:`provider.redaction`), and transport exceptions are re-raised without chaining the ``requests`` exception
(whose text contains the full URL, query string and key included).
"""

from __future__ import annotations

import enum
import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, Mapping

__all__ = [
    "ErrorKind", "ProviderError", "TransientError", "BusinessError", "FatalError", "UnexpectedAnswer",
    "NetworkError", "Timeout", "ConnectTimeout", "ReadTimeout", "ServerError", "RateLimited", "SqlError",
    "GenericServerError", "ChannelsLimit",
    "NoNumbers", "NoBalance", "NoBalanceForward", "WrongMaxPrice", "EarlyCancelDenied", "OrderAlreadyExists",
    "NoActivation", "NoActivations", "BadStatus", "WrongActivationId", "InvalidActivationId", "NotIncoming",
    "WrongExceptionPhone", "OperatorsNotFound", "NotAvailable", "BadForward", "WrongOperator", "AccountInactive",
    "ServiceNotAvailable", "WrongAdditionalService", "WrongSecurity", "RepeatAdditionalService",
    "RenewActivationNotAvailable", "NewActivationImpossible", "SimOffline", "ParseCountExceed", "WrongDate",
    "NoMetrics", "OutOfStock", "NoIdRent", "InvalidPhone", "IncorrectStatus", "CantCancel", "AlreadyFinished",
    "AlreadyCancelled", "InvalidTime", "MaxHoursExceed", "RentDie", "BadData", "FreeCancellationExpired",
    "OtpReceived", "NewOtpReceived", "ActivationNotActive", "CurrencyChangeUnavailable",
    "RentWaitCode", "RentFinished", "RentCancelled", "RentRevoked", "ActivationCancelled", "NoCall",
    "BadKey", "NoKey", "Banned", "BadService", "BadAction", "BadActionOrKey", "BadCountry", "RegionRestricted",
    "ServiceProhibited", "NotSupported", "ConfigurationError",
    "ERROR_CLASSES", "ALIASES", "error_for_code", "parse_banned_until", "lenient_decimal",
]

_BODY_LIMIT = 500


class ErrorKind(str, enum.Enum):
    """What a provider answer tells about the world, whatever its wire code or dialect.

    Policy (retry later, back off, fail with a reason, recover, treat as closed) is decided on the kind; the
    ``label`` of the error class is the stable reason that reaches events, order records and metrics. The table
    of codes, classes, kinds and what otpflow does is in docs/handler-api.md, Errors.
    """

    #: the provider or the network failed (no answer, 5xx, database error); the request was fine
    OUTAGE = "outage"
    #: the provider asks us to slow down (HTTP 429, RATE_LIMIT); Retry-After may say how long
    RATE_LIMITED = "rate_limited"
    #: a concurrency cap of the account was reached (CHANNELS_LIMIT); it frees up as activations close
    CAPACITY = "capacity"
    #: nothing to sell for this service/country right now; stock may come back
    NO_STOCK = "no_stock"
    #: the account has not enough money for this purchase
    NO_BALANCE = "no_balance"
    #: our maxPrice is below what the provider sells at now
    PRICE_TOO_LOW = "price_too_low"
    #: the key is wrong or missing, or the account is banned or refused from its region
    ACCOUNT_BLOCKED = "account_blocked"
    #: the request itself is wrong (unknown service/country, bad parameter); repeating it cannot help
    BAD_REQUEST = "bad_request"
    #: the provider (or the dialect) has no such action or status
    UNSUPPORTED = "unsupported"
    #: our own configuration cannot produce a request (bad base URL, …)
    MISCONFIGURED = "misconfigured"
    #: this orderId was already used: the purchase happened, recover it
    ALREADY_ORDERED = "already_ordered"
    #: too early for this change (cancel in the first two minutes); the same request will work later
    TOO_EARLY = "too_early"
    #: the free-cancel window is over; the activation or rent can no longer be cancelled
    CANCEL_WINDOW_CLOSED = "cancel_window_closed"
    #: the activation or rent is unknown or no longer active: nothing is open there any more
    CLOSED = "closed"
    #: it was already finished
    FINISHED = "finished"
    #: it was already cancelled (or revoked by the provider, with a refund)
    CANCELLED = "cancelled"
    #: a code arrived, so the change asked for (a cancel) is refused; read the code instead
    CODE_ARRIVED = "code_arrived"
    #: the status change is not allowed in the current state
    WRONG_STATE = "wrong_state"
    #: the rented number's lifetime is over; it cannot be prolonged
    EXPIRED = "expired"
    #: a body we cannot read; it may hide an effect (a purchase), so reconcile before acting
    UNREADABLE = "unreadable"
    #: an answer that is an ordinary state or an empty result for the action that asked
    OTHER = "other"


_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def _default_label(cls: type) -> str:
    """``default_code.lower()`` when the class has a code, else its name in snake_case (``ReadTimeout`` →
    ``read_timeout``)."""
    code = getattr(cls, "default_code", None)
    if code:
        return str(code).lower()
    return _CAMEL_BOUNDARY.sub("_", cls.__name__).lower()


def lenient_decimal(value: Any) -> Decimal | None:
    """A Decimal from an int/str/float/Decimal, tolerating quotes and spaces; None when it is not a number.

    Lives here (not in parsing) because error attributes such as ``WrongMaxPrice.min_price`` need it and
    parsing imports errors, not the other way round.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, str):
        text = value.strip().strip("'\"").strip().replace(",", ".") if value else ""
        if not text or len(text) > 64:
            return None
        try:
            result = Decimal(text)
        except (InvalidOperation, ValueError):
            return None
        return result if result.is_finite() else None
    return None


_BANNED_RE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T_]+(\d{1,2})[-:.](\d{1,2})(?:[-:.](\d{1,2}))?)?")


def parse_banned_until(argument: str | None) -> datetime | None:
    """Parse the ``BANNED:'YYYY-m-d H-i-s'`` argument (hyphens in the time, quotes optional).

    Lenient by design: an unreadable date gives None, never an exception, because the ban itself is the news.
    """
    if not argument:
        return None
    match = _BANNED_RE.search(argument)
    if not match:
        return None
    parts = [int(p) if p else 0 for p in match.groups()]
    try:
        return datetime(*parts)  # type: ignore[arg-type]
    except (ValueError, OverflowError):
        return None


def _rebuild(cls: type[ProviderError], state: dict[str, Any]) -> "ProviderError":
    """Unpickle helper: Celery moves exceptions between processes, and keyword-only constructors break pickle."""
    obj = cls.__new__(cls)
    Exception.__init__(obj, state.get("_message", ""))
    obj.__dict__.update(state)
    return obj


class ProviderError(Exception):
    """Base of every error the client raises; carries the wire code, its argument and the (redacted) body."""

    #: the canonical code this class stands for (None for transport-level classes)
    default_code: str | None = None
    #: True for TransientError subclasses: a caller's retry decorator can test this instead of isinstance
    transient: bool = False
    #: what the answer tells about the world (policy keys on it)
    kind: ClassVar[ErrorKind] = ErrorKind.OTHER
    #: the stable snake_case reason that reaches events, order records and metrics
    label: ClassVar[str] = "provider_error"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Give every subclass its own label: the one its body sets, else the default of :func:`_default_label`.

        ``kind`` is inherited like any class attribute, so a class that does not set it takes its family's."""
        super().__init_subclass__(**kwargs)
        if "label" not in cls.__dict__:
            cls.label = _default_label(cls)

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        argument: str | None = None,
        http_status: int | None = None,
        body: str | None = None,
        action: str | None = None,
        info: Mapping[str, Any] | None = None,
        raw_code: str | None = None,
    ) -> None:
        self.code = code if code is not None else self.default_code
        self.raw_code = raw_code if raw_code is not None else self.code
        self.argument = argument
        self.http_status = http_status
        self.body = body[:_BODY_LIMIT] if body else body
        self.action = action
        self.info: dict[str, Any] = dict(info) if isinstance(info, Mapping) else {}
        self._message = message or self._default_message()
        super().__init__(self._message)

    def _default_message(self) -> str:
        head = self.code or type(self).__name__
        if self.argument:
            head = f"{head}: {self.argument}"
        where = []
        if self.action:
            where.append(f"action={self.action}")
        if self.http_status is not None:
            where.append(f"http={self.http_status}")
        return f"{head} ({', '.join(where)})" if where else head

    def __str__(self) -> str:
        return self._message

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(code={self.code!r}, argument={self.argument!r}, "
                f"action={self.action!r}, http_status={self.http_status!r})")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), dict(self.__dict__)))


# ---------------------------------------------------------------- the three families + unexpected
class TransientError(ProviderError):
    """Try again later (backoff with jitter). The provider or the network failed, not the request."""

    transient = True
    kind = ErrorKind.OUTAGE


class BusinessError(ProviderError):
    """A definite answer about the world (no numbers, too early to cancel, …); the request itself was fine."""


class FatalError(ProviderError):
    """Configuration or account problem (bad key, banned, unknown service): retrying cannot help; report it."""

    kind = ErrorKind.BAD_REQUEST


class UnexpectedAnswer(ProviderError):
    """A body this client does not understand for the action. ``.body`` keeps it for the bug report."""

    kind = ErrorKind.UNREADABLE
    label = "unexpected_answer"


# ---------------------------------------------------------------- transport-level transient errors
class NetworkError(TransientError):
    """No usable HTTP answer. ``possibly_processed`` is False when the request surely never reached the server,
    True when it may have (read timeout, reset after sending), None when unknown: a purchase in that state must
    be reconciled (getActiveActivations / orderId), never repeated blindly."""

    def __init__(self, message: str | None = None, *, possibly_processed: bool | None = None, **kw: Any) -> None:
        self.possibly_processed = possibly_processed
        super().__init__(message, **kw)


class Timeout(NetworkError):
    """The connect or the read timed out."""


class ConnectTimeout(Timeout):
    """Connecting timed out: the request was never sent."""


class ReadTimeout(Timeout):
    """Sent, but no answer in time: the server may have acted on it."""


class ServerError(TransientError):
    """HTTP 5xx whose body is not a known answer (an HTML error page, a proxy message, nothing)."""


class RateLimited(TransientError):
    """HTTP 429 or a ``RATE_LIMIT`` title (HeroSMS); ``retry_after`` comes from the Retry-After header."""

    default_code = "RATE_LIMIT"
    kind = ErrorKind.RATE_LIMITED

    def __init__(self, message: str | None = None, *, retry_after: float | None = None, **kw: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)


class SqlError(TransientError):
    """``ERROR_SQL`` / ``SQL_ERROR``: the provider's database failed; the same request may work later."""

    default_code = "ERROR_SQL"


class GenericServerError(TransientError):
    """``SERVER_ERROR`` (rent API) or ``NO_CONNECTION``: a generic failure on the provider side."""

    default_code = "SERVER_ERROR"


class ChannelsLimit(TransientError):
    """``CHANNELS_LIMIT``: too many concurrent requests/activations (HeroSMS ``info`` has the numbers)."""

    default_code = "CHANNELS_LIMIT"
    kind = ErrorKind.CAPACITY

    @property
    def current_threads(self) -> int | None:
        value = lenient_decimal(self.info.get("current_threads"))
        return int(value) if value is not None else None

    @property
    def max_allowed(self) -> int | None:
        value = lenient_decimal(self.info.get("max_allowed"))
        return int(value) if value is not None else None


# ---------------------------------------------------------------- business outcomes
def _business(name: str, code: str, doc: str, *, kind: ErrorKind, label: str | None = None) -> type[BusinessError]:
    """A BusinessError subclass for one wire code; ``label`` defaults to the code in lower case."""
    namespace: dict[str, Any] = {"default_code": code, "__doc__": doc, "kind": kind}
    if label is not None:
        namespace["label"] = label
    return type(name, (BusinessError,), namespace)


_K = ErrorKind
NoNumbers = _business("NoNumbers", "NO_NUMBERS", "No numbers for this service/country now (alias NO_NUMBER).",
                      kind=_K.NO_STOCK)
NoBalance = _business("NoBalance", "NO_BALANCE", "Not enough money (alias NO_MEANS).", kind=_K.NO_BALANCE)
NoBalanceForward = _business("NoBalanceForward", "NO_BALANCE_FORWARD", "Not enough money for a forwarding number.",
                             kind=_K.NO_BALANCE, label="no_balance")
OrderAlreadyExists = _business(
    "OrderAlreadyExists", "ORDER_ALREADY_EXISTS",
    "getNumberV2 orderId was already used: the first purchase happened; recover it, do not buy again.",
    kind=_K.ALREADY_ORDERED)
NoActivation = _business("NoActivation", "NO_ACTIVATION", "The activation id does not exist (for this account).",
                         kind=_K.CLOSED)
NoActivations = _business("NoActivations", "NO_ACTIVATIONS", "No active activations (a list action maps it to []).",
                          kind=_K.CLOSED)
BadStatus = _business("BadStatus", "BAD_STATUS", "This setStatus value is not allowed in the activation's state.",
                      kind=_K.WRONG_STATE)
WrongActivationId = _business("WrongActivationId", "WRONG_ACTIVATION_ID", "Invalid or inactive (parent) activation id.",
                              kind=_K.CLOSED)
InvalidActivationId = _business("InvalidActivationId", "INVALID_ACTIVATION_ID", "Invalid activation id.",
                                kind=_K.CLOSED)
NotIncoming = _business("NotIncoming", "NOT_INCOMING", "The activation is not a call verification.",
                        kind=_K.BAD_REQUEST)
WrongExceptionPhone = _business("WrongExceptionPhone", "WRONG_EXCEPTION_PHONE", "Bad phoneException mask list.",
                                kind=_K.BAD_REQUEST)
OperatorsNotFound = _business("OperatorsNotFound", "OPERATORS_NOT_FOUND",
                              "No operators (getOperators maps it to empty).", kind=_K.OTHER)
NotAvailable = _business("NotAvailable", "NOT_AVAILABLE", "Multiservice is not available for this country.",
                         kind=_K.BAD_REQUEST)
BadForward = _business("BadForward", "BAD_FORWARD", "Bad forward/multiForward list (at most one 1).",
                       kind=_K.BAD_REQUEST)
WrongOperator = _business("WrongOperator", "WRONG_OPERATOR", "Operator not valid here (alias BAD_OPERATOR).",
                          kind=_K.BAD_REQUEST)
AccountInactive = _business("AccountInactive", "ACCOUNT_INACTIVE", "No numbers available for the account now.",
                            kind=_K.NO_STOCK)
ServiceNotAvailable = _business(
    "ServiceNotAvailable", "WHATSAPP_NOT_AVAILABLE",
    "A service-specific stock/eligibility refusal (WHATSAPP_NOT_AVAILABLE, NO_YULA_MAIL).", kind=_K.NO_STOCK)
WrongAdditionalService = _business("WrongAdditionalService", "WRONG_ADDITIONAL_SERVICE",
                                   "Only forwarding-capable services can be added.", kind=_K.BAD_REQUEST)
WrongSecurity = _business("WrongSecurity", "WRONG_SECURITY", "Parent has no forwarding, or is finished/inactive.",
                          kind=_K.BAD_REQUEST)
RepeatAdditionalService = _business("RepeatAdditionalService", "REPEAT_ADDITIONAL_SERVICE",
                                    "This additional service was already bought.", kind=_K.BAD_REQUEST)
RenewActivationNotAvailable = _business("RenewActivationNotAvailable", "RENEW_ACTIVATION_NOT_AVAILABLE",
                                        "The number cannot be reactivated.", kind=_K.BAD_REQUEST)
NewActivationImpossible = _business("NewActivationImpossible", "NEW_ACTIVATION_IMPOSSIBLE",
                                    "Reactivation refused.", kind=_K.BAD_REQUEST)
SimOffline = _business("SimOffline", "SIM_OFFLINE", "The SIM of the number is offline.", kind=_K.BAD_REQUEST)
ParseCountExceed = _business("ParseCountExceed", "PARSE_COUNT_EXCEED", "parseCall: at most 4 attempts.",
                             kind=_K.BAD_REQUEST)
WrongDate = _business("WrongDate", "WRONG_DATE", "getHistory: not a timestamp, or beyond 30 days.",
                      kind=_K.BAD_REQUEST)
NoMetrics = _business("NoMetrics", "NO_METRICS", "No statistics for this service.", kind=_K.OTHER)
OutOfStock = _business("OutOfStock", "OUT_OF_STOCK", "Rent: nothing in stock.", kind=_K.NO_STOCK)
NoIdRent = _business("NoIdRent", "NO_ID_RENT", "Rent id missing or unknown.", kind=_K.CLOSED)
InvalidPhone = _business("InvalidPhone", "INVALID_PHONE", "Not your rent (wrong rent id).", kind=_K.CLOSED)
IncorrectStatus = _business("IncorrectStatus", "INCORECT_STATUS", "setRentStatus: bad status (sic: INCORECT).",
                            kind=_K.WRONG_STATE)
CantCancel = _business("CantCancel", "CANT_CANCEL",
                       "Rent can no longer be cancelled (after 20 minutes; presumably also once an SMS arrived).",
                       kind=_K.CANCEL_WINDOW_CLOSED)
AlreadyFinished = _business("AlreadyFinished", "ALREADY_FINISH", "Rent already finished.", kind=_K.FINISHED)
AlreadyCancelled = _business("AlreadyCancelled", "ALREADY_CANCEL", "Rent already cancelled.", kind=_K.CANCELLED)
InvalidTime = _business("InvalidTime", "INVALID_TIME", "Rent hours out of the allowed range.", kind=_K.BAD_REQUEST)
RentDie = _business("RentDie", "RENT_DIE", "The rented number's lifetime has expired.", kind=_K.EXPIRED)
BadData = _business("BadData", "BAD_DATA", "buyPartnerProduct: bad product id.", kind=_K.BAD_REQUEST)
FreeCancellationExpired = _business("FreeCancellationExpired", "FREE_CANCELLATION_EXPIRED",
                                    "HeroSMS: the 20-minute free-cancel window is over.",
                                    kind=_K.CANCEL_WINDOW_CLOSED)
OtpReceived = _business("OtpReceived", "OTP_RECEIVED", "HeroSMS: cannot cancel after the code arrived.",
                        kind=_K.CODE_ARRIVED)
NewOtpReceived = _business("NewOtpReceived", "NEW_OTP_RECEIVED", "HeroSMS: a new code arrived meanwhile.",
                           kind=_K.CODE_ARRIVED)
ActivationNotActive = _business("ActivationNotActive", "ACTIVATION_NOT_ACTIVE", "HeroSMS: activation not active.",
                                kind=_K.CLOSED)
CurrencyChangeUnavailable = _business("CurrencyChangeUnavailable", "CURRENCY_CHANGE_UNAVAILABLE",
                                      "SMSHub: currency cannot be changed.", kind=_K.BAD_REQUEST)
# States that some actions send inside an error envelope; action parsers map them to results first.
RentWaitCode = _business("RentWaitCode", "STATUS_WAIT_CODE", "Rent: waiting for the first SMS (sent as an error).",
                         kind=_K.OTHER)
RentFinished = _business("RentFinished", "STATUS_FINISH", "Rent paid and finished.", kind=_K.FINISHED)
RentCancelled = _business("RentCancelled", "STATUS_CANCEL", "Rent/activation cancelled.", kind=_K.CANCELLED)
RentRevoked = _business("RentRevoked", "STATUS_REVOKE", "Rent number blocked by the provider; money returned.",
                        kind=_K.CANCELLED)
ActivationCancelled = RentCancelled
NoCall = _business("NoCall", "NO_CALL", "parseCall: no call yet.", kind=_K.OTHER)


class WrongMaxPrice(BusinessError):
    """``WRONG_MAX_PRICE:<min>``: maxPrice is below the current minimum; ``min_price`` says what would do."""

    default_code = "WRONG_MAX_PRICE"
    kind = ErrorKind.PRICE_TOO_LOW

    @property
    def min_price(self) -> Decimal | None:
        value = lenient_decimal(self.argument)
        if value is None:
            for key in ("minPrice", "min_price", "min", "value"):
                value = lenient_decimal(self.info.get(key))
                if value is not None:
                    break
        return value


class EarlyCancelDenied(BusinessError):
    """Cancel refused in the first 2 minutes: "try again later", not a failure (HeroSMS: info.minActivationTime)."""

    default_code = "EARLY_CANCEL_DENIED"
    kind = ErrorKind.TOO_EARLY

    @property
    def min_activation_time(self) -> int | None:
        value = lenient_decimal(self.info.get("minActivationTime"))
        return int(value) if value is not None else None


class MaxHoursExceed(BusinessError):
    """continueRentNumber: too many hours; ``max_hours`` is the ``info.max`` payload, the most allowed."""

    default_code = "MAX_HOURS_EXCEED"
    kind = ErrorKind.BAD_REQUEST

    @property
    def max_hours(self) -> int | None:
        value = lenient_decimal(self.info.get("max", self.argument))
        return int(value) if value is not None else None


# ---------------------------------------------------------------- fatal
class BadKey(FatalError):
    """Wrong API key."""

    default_code = "BAD_KEY"
    kind = ErrorKind.ACCOUNT_BLOCKED


class NoKey(FatalError):
    """API key missing or blank."""

    default_code = "NO_KEY"
    kind = ErrorKind.ACCOUNT_BLOCKED
    label = "bad_key"


class BadAction(FatalError):
    """Unknown action, reseller not verified (buyPartnerProduct), or a method the provider lacks."""

    default_code = "BAD_ACTION"
    kind = ErrorKind.UNSUPPORTED


class BadActionOrKey(BadAction, BadKey):
    """VakSMS answers BAD_ACTION to a wrong key (and to an unknown id): catchable as either."""

    kind = ErrorKind.UNSUPPORTED
    label = "bad_action"


class Banned(FatalError):
    """``BANNED:'YYYY-m-d H-i-s'``: the account is blocked; ``until`` is None when the date is unreadable."""

    default_code = "BANNED"
    kind = ErrorKind.ACCOUNT_BLOCKED

    @property
    def until(self) -> datetime | None:
        found = parse_banned_until(self.argument)
        if found is None:  # HeroSMS-style title envelope: the date travels in info
            for key in ("until", "value", "bannedUntil"):
                value = self.info.get(key)
                if isinstance(value, str) and (found := parse_banned_until(value)) is not None:
                    break
        return found


class BadService(FatalError):
    """Unknown service code (also WRONG_SERVICE)."""

    default_code = "BAD_SERVICE"


class BadCountry(FatalError):
    """Unknown country id (BAD_COUNTRY / WRONG_COUNTRY)."""

    default_code = "BAD_COUNTRY"


class RegionRestricted(FatalError):
    """Grizzly ``SERVICE_UNAVAILABLE_REGION``: access from this region/IP is restricted."""

    default_code = "SERVICE_UNAVAILABLE_REGION"
    kind = ErrorKind.ACCOUNT_BLOCKED
    label = "region_restricted"


class ServiceProhibited(FatalError):
    """Grizzly free text "The service is prohibited for sale by administration"."""

    default_code = "SERVICE_PROHIBITED"


class NotSupported(FatalError):
    """The configured dialect has no such action or status (e.g. setStatus 1 on HeroSMS). Raised locally."""

    default_code = "NOT_SUPPORTED"
    kind = ErrorKind.UNSUPPORTED


class ConfigurationError(FatalError):
    """The client cannot build or send the request (invalid base URL, unsupported scheme, …)."""

    default_code = "CONFIGURATION"
    kind = ErrorKind.MISCONFIGURED


# ---------------------------------------------------------------- code registry
ERROR_CLASSES: dict[str, type[ProviderError]] = {
    cls.default_code: cls  # type: ignore[misc]
    for cls in (
        SqlError, GenericServerError, ChannelsLimit, RateLimited,
        NoNumbers, NoBalance, NoBalanceForward, WrongMaxPrice, EarlyCancelDenied, OrderAlreadyExists,
        NoActivation, NoActivations, BadStatus, WrongActivationId, InvalidActivationId, NotIncoming,
        WrongExceptionPhone, OperatorsNotFound, NotAvailable, BadForward, WrongOperator, AccountInactive,
        ServiceNotAvailable, WrongAdditionalService, WrongSecurity, RepeatAdditionalService,
        RenewActivationNotAvailable, NewActivationImpossible, SimOffline, ParseCountExceed, WrongDate, NoMetrics,
        OutOfStock, NoIdRent, InvalidPhone, IncorrectStatus, CantCancel, AlreadyFinished, AlreadyCancelled,
        InvalidTime, MaxHoursExceed, RentDie, BadData, FreeCancellationExpired, OtpReceived, NewOtpReceived,
        ActivationNotActive, CurrencyChangeUnavailable, RentWaitCode, RentFinished, RentCancelled, RentRevoked,
        NoCall, BadKey, NoKey, BadAction, Banned, BadService, BadCountry, RegionRestricted,
    )
}

#: wire spellings that mean a canonical code (docs/handler-api.md, Errors)
ALIASES: dict[str, str] = {
    "NO_MEANS": "NO_BALANCE",
    "NO_NUMBER": "NO_NUMBERS",
    "SQL_ERROR": "ERROR_SQL",
    "NO_CONNECTION": "SERVER_ERROR",
    "WRONG_SERVICE": "BAD_SERVICE",
    "WRONG_COUNTRY": "BAD_COUNTRY",
    "BAD_OPERATOR": "WRONG_OPERATOR",
    "NO_YULA_MAIL": "WHATSAPP_NOT_AVAILABLE",
    "INCORRECT_STATUS": "INCORECT_STATUS",
    "ALREADY_FINISHED": "ALREADY_FINISH",
    "ALREADY_CANCELLED": "ALREADY_CANCEL",
    "RATE_LIMITED": "RATE_LIMIT",
    "TOO_MANY_REQUESTS": "RATE_LIMIT",
    "THE SERVICE IS PROHIBITED FOR SALE BY ADMINISTRATION": "SERVICE_PROHIBITED",
}
ERROR_CLASSES["SERVICE_PROHIBITED"] = ServiceProhibited

#: codes that are states on some actions; in plain text they are never raised by the envelope step
STATE_CODES = frozenset({"STATUS_WAIT_CODE", "STATUS_FINISH", "STATUS_CANCEL", "STATUS_REVOKE", "NO_CALL"})


def canonical_code(raw: str) -> str:
    """Upper-case, alias-resolved form of a wire code (``no_means`` → ``NO_BALANCE``)."""
    upper = raw.upper()
    return ALIASES.get(upper, upper)


def error_for_code(
    raw_code: str,
    *,
    argument: str | None = None,
    http_status: int | None = None,
    body: str | None = None,
    action: str | None = None,
    info: Mapping[str, Any] | None = None,
    bad_action_means_bad_key: bool = False,
    retry_after: float | None = None,
) -> ProviderError | None:
    """The typed error for a wire code, or None when the code is not an error we know."""
    code = canonical_code(raw_code)
    cls = ERROR_CLASSES.get(code)
    if cls is None:
        return None
    if cls is BadAction and bad_action_means_bad_key:
        cls = BadActionOrKey
    kwargs: dict[str, Any] = dict(code=code, raw_code=raw_code, argument=argument, http_status=http_status,
                                  body=body, action=action, info=info)
    if cls is RateLimited:
        return RateLimited(retry_after=retry_after, **kwargs)
    return cls(**kwargs)
