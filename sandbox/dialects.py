"""Provider dialects as data, and the rendering of answers/errors into HTTP responses.

Handlers return a `Reply` (or raise `ApiError`); only this module knows that SMS-Activate sends plain tokens with
HTTP 200 while HeroSMS sends `{"title","details","info"}` JSON with 4xx statuses.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import ApiError

HTML = "text/html; charset=UTF-8"
JSON = "application/json"

MaxPrice = Literal["always", "with_currency", "ignored"]


@dataclass(frozen=True)
class Dialect:
    """What differs between providers that speak handler_api (docs/dialects.md)."""

    name: str
    json_errors: bool = False                 # HeroSMS {"title","details","info"} with 4xx
    set_status_no_content: bool = False       # HeroSMS answers a successful setStatus with 204
    status_ready: bool = True                 # setStatus 1 exists (not on HeroSMS)
    cancel_codes: frozenset[int] = frozenset({8})
    header_auth: bool = False                 # Authorization: ApiKey <key>
    keyless: frozenset[str] = frozenset()     # actions served without a key
    json_content_type: str = JSON             # HeroSMS: text/html for everything
    active_activations_style: str = "sms-activate"   # or "herosms" (`data` list)
    webhook_style: str = "sms-activate"       # or "herosms"
    v2_extra: str = ""                        # "herosms" | "grizzly": extra getNumberV2 fields
    cancel_window_error: bool = False         # FREE_CANCELLATION_EXPIRED / OTP_RECEIVED / ACTIVATION_NOT_ACTIVE
    missing_actions: frozenset[str] = field(default_factory=frozenset)
    max_price: MaxPrice = "always"            # "with_currency": only next to `currency`; "ignored": never read
    currency_change_error: bool = False       # a purchase `currency` other than the account's is refused
    countries_as_list: bool = False           # getCountries answers a JSON list (VakSMS)
    #: error codes this dialect spells differently: (action or "*", code, wire code)
    wire_codes: tuple[tuple[str, str, str], ...] = ()

    def on_wire(self, action: str | None, err: ApiError) -> ApiError:
        """`err` as this dialect sends it in answer to `action` (same envelope, argument and info)."""
        for on, code, wire in self.wire_codes:
            if err.code == code and on in ("*", action):
                return ApiError(wire, err.argument, envelope=err.envelope, info=err.info)
        return err


DIALECTS: dict[str, Dialect] = {
    "sms-activate": Dialect("sms-activate"),
    "herosms": Dialect("herosms", json_errors=True, set_status_no_content=True, status_ready=False,
                       header_auth=True, keyless=frozenset({"getCountries", "getServicesList", "getOperators"}),
                       json_content_type=HTML, active_activations_style="herosms", webhook_style="herosms",
                       v2_extra="herosms", cancel_window_error=True,
                       missing_actions=frozenset({"getListOfTopCountriesByService"})),
    "grizzly": Dialect("grizzly", cancel_codes=frozenset({8, -1}), v2_extra="grizzly"),
    # Only getNumber is documented (no getNumberV2); no bulk read; maxPrice together with currency;
    # WRONG_SERVICE for an unknown service; CURRENCY_CHANGE_UNAVAILABLE.
    "smshub": Dialect("smshub", max_price="with_currency", currency_change_error=True,
                      missing_actions=frozenset({"getActiveActivations", "getListOfTopCountriesByService",
                                                 "getNumberV2"}),
                      wire_codes=(("*", "BAD_SERVICE", "WRONG_SERVICE"),)),
    # A wrong (or missing) key and getStatus of an unknown id answer BAD_ACTION; getCountries is a keyless list.
    # getNumberV2 and maxPrice are not known to exist: emulated as absent and ignored, the buyer's worst case.
    "vaksms": Dialect("vaksms", max_price="ignored", countries_as_list=True, keyless=frozenset({"getCountries"}),
                      missing_actions=frozenset({"getListOfTopCountriesByService", "getNumberV2"}),
                      wire_codes=(("*", "BAD_KEY", "BAD_ACTION"), ("*", "NO_KEY", "BAD_ACTION"),
                                  ("getStatus", "NO_ACTIVATION", "BAD_ACTION"))),
}
ALIASES = {"smsactivate": "sms-activate", "sms_activate": "sms-activate", "hero-sms": "herosms",
           "hero": "herosms", "grizzlysms": "grizzly", "grizzly-sms": "grizzly", "sms-hub": "smshub",
           "vak": "vaksms", "vak-sms": "vaksms"}


def get_dialect(name: str) -> Dialect:
    """Look a dialect up by name or alias (ValueError if unknown)."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in DIALECTS:
        raise ValueError(f"unknown dialect {name!r}; known: {', '.join(DIALECTS)}")
    return DIALECTS[key]


@dataclass(frozen=True)
class Reply:
    """A successful answer: plain text, JSON (possibly served as text/html), or empty 204."""

    body: Any
    kind: str = "plain"          # plain | json | empty
    html_json: bool = False      # JSON served as text/html (getNumbersStatus on SMS-Activate)


def plain(text: str) -> Reply:
    return Reply(text)


def as_json(data: Any, html: bool = False) -> Reply:
    return Reply(data, "json", html)


NO_CONTENT = Reply("", "empty")


def dump_json(data: Any) -> str:
    """JSON as PHP's json_encode writes it: compact, ASCII-escaped, slashes escaped."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/")


# HeroSMS HTTP statuses per error code (docs/dialects.md, HeroSMS); anything else is 400.
HERO_STATUS: dict[str, int] = {
    "NO_KEY": 401, "BAD_KEY": 401, "NO_BALANCE": 402, "NO_BALANCE_FORWARD": 402, "BANNED": 403,
    "CHANNELS_LIMIT": 403, "BAD_ACTION": 404, "NO_ACTIVATION": 404, "EARLY_CANCEL_DENIED": 409,
    "ORDER_ALREADY_EXISTS": 409, "OTP_RECEIVED": 409, "FREE_CANCELLATION_EXPIRED": 409,
    "ACTIVATION_NOT_ACTIVE": 409, "NEW_OTP_RECEIVED": 409, "BAD_STATUS": 422, "BAD_SERVICE": 422,
    "WRONG_MAX_PRICE": 422, "ERROR_SQL": 500, "SERVER_ERROR": 500,
}
HERO_DETAILS: dict[str, str] = {
    "NO_KEY": "API key is missing", "BAD_KEY": "Invalid API key", "BAD_ACTION": "Method Not Found",
    "NO_BALANCE": "Insufficient funds", "NO_ACTIVATION": "Activation not found",
    "EARLY_CANCEL_DENIED": "Activation cannot be cancelled in the first 2 minutes",
    "FREE_CANCELLATION_EXPIRED": "Free cancellation period (20 minutes) has expired",
    "OTP_RECEIVED": "Activation cannot be cancelled after the code was received",
    "ACTIVATION_NOT_ACTIVE": "Activation is not active", "BAD_STATUS": "Invalid status",
    "WRONG_MAX_PRICE": "Max price is below the minimum price", "ORDER_ALREADY_EXISTS": "Order already exists",
}


def render(result: Reply | ApiError, dialect: Dialect) -> tuple[str, int, str]:
    """(body, HTTP status, Content-Type) of an answer in a dialect."""
    if isinstance(result, ApiError):
        return render_error(result, dialect)
    if result.kind == "empty":
        return "", 204, HTML
    if result.kind == "json":
        ctype = HTML if result.html_json else dialect.json_content_type
        return dump_json(result.body), 200, ctype
    return str(result.body), 200, HTML


def render_error(err: ApiError, dialect: Dialect) -> tuple[str, int, str]:
    if err.envelope == "json_error":
        return dump_json({"status": "error", "error": err.code}), 200, dialect.json_content_type
    if err.envelope == "json_message":
        body: dict[str, Any] = {"status": "error", "message": err.code}
        if err.info is not None:
            body["info"] = err.info
        return dump_json(body), 200, dialect.json_content_type
    if dialect.json_errors and err.code not in ("NO_NUMBERS",):
        info: dict[str, Any] = dict(err.info or {})
        if err.argument is not None and not info:
            info = {"value": err.argument}
        body = {"title": err.code, "details": HERO_DETAILS.get(err.code, err.code), "info": info}
        return dump_json(body), HERO_STATUS.get(err.code, 400), JSON
    return err.token, 200, HTML
