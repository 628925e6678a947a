"""Provider dialect profiles: a base URL plus the quirks of docs/dialects.md, as data.

Switching provider is configuration (``PROVIDER=herosms``), not code: the client and the flows read these fields
instead of branching on provider names. The parser is tolerant of every dialect's shapes regardless of the
profile (a provider can change shape without notice); the profile decides what we *send*, which actions are
refused locally, and which protocol promises otpflow may rely on.

Where docs/dialects.md marks a fact uncertain, a profile takes the tolerant setting, by one rule:

* an **action** of uncertain existence is assumed present, unless the documentation says it is missing: a
  missing read costs one refused call (``BAD_ACTION``), after which the caller falls back;
* a **purchase promise** of uncertain standing (``getNumberV2`` exists, ``orderId`` is honoured, ``maxPrice`` is
  enforced) is not relied on: ``getNumber`` is the one purchase every clone has, a purchase that may not be
  idempotent is never re-sent, and a ceiling the provider may ignore is checked by otpflow itself.

Every field an operator may need to correct is listed in :data:`OVERRIDABLE` with a parser of its string form;
:func:`apply_overrides` applies a mapping of such strings (e.g. from ``PROVIDER_<NAME>_<FIELD>`` variables).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from dataclasses import dataclass, field, replace
from typing import Callable, Literal, Mapping
from urllib.parse import urlsplit

__all__ = [
    "Dialect", "DIALECTS", "UnknownDialect", "BadOverride", "OVERRIDABLE", "PRICE_ACTIONS", "apply_overrides",
    "get_dialect", "dialect_names", "canonical_name",
]

Method = Literal["GET", "POST"]
Auth = Literal["query", "form", "header"]
PriceAction = Literal["getPrices", "getPricesExtended"]

#: price actions whose answer shape the client parses (country → service → cost, count, physicalCount)
PRICE_ACTIONS: tuple[PriceAction, ...] = ("getPrices", "getPricesExtended")


@dataclass(frozen=True)
class Dialect:
    """One provider's flavour of handler_api."""

    name: str
    base_url: str
    # -- sending ------------------------------------------------------------------------------------------------
    #: setStatus value that cancels an activation: 8 (SMS-Activate) or -1 (Grizzly, sms-man, old clones)
    cancel_status: int = 8
    #: HTTP method for every action; POST sends a form body (the official PHP client's way)
    method: Method = "GET"
    #: where the key goes: "query" (api_key=), "form" (POST body), "header" (Authorization: ApiKey, HeroSMS)
    auth: Auth = "query"
    #: wire name of getMultiServiceNumber's forward list: "multiForward" (most clients) or "forward"
    multi_forward_param: str = "multiForward"
    #: wire name of the getIncomingCallStatus id
    incoming_call_id_param: str = "activationId"
    #: wire name of the buyPartnerProduct id ("id"; some documentation writes "productId")
    partner_product_param: str = "id"
    #: wire name of the rent duration ("rent_time"; one official client sends "time", which looks like a bug)
    rent_time_param: str = "rent_time"
    # -- answers and errors -------------------------------------------------------------------------------------
    #: setStatus may answer HTTP 204 with an empty body on success (HeroSMS)
    set_status_accepts_204: bool = False
    #: errors come as JSON {"title","details","info"} with HTTP 4xx (HeroSMS). Recognised everywhere anyway.
    title_errors: bool = False
    #: BAD_ACTION also means "wrong key" (VakSMS): raise BadActionOrKey
    bad_action_means_bad_key: bool = False
    #: getActiveActivations puts the rows in "data" (HeroSMS). The parser reads "data" first in any case.
    active_activations_in_data: bool = False
    #: account currency when the answer does not say (ISO 4217 numeric); None: unknown
    default_currency: int | None = 840
    # -- which actions exist ------------------------------------------------------------------------------------
    #: setStatus 1 ("number ready") exists (HeroSMS: no)
    supports_status_ready: bool = True
    #: the provider implements getActiveActivations (the bulk read of a sweep)
    has_active_activations: bool = True
    #: the provider implements getListOfTopCountriesByService (HeroSMS: 404 BAD_ACTION)
    has_list_of_top_countries: bool = True
    #: the provider implements getStatusV2 (needed for call verifications)
    has_status_v2: bool = True
    #: the provider implements the rent actions (getRentNumber, getRentStatus, …)
    has_rent: bool = True
    #: setRentStatus 1 (finish early) exists; OnlineSim accepts only 2 (cancel)
    rent_finish_supported: bool = True
    #: catalogue actions work without a key (HeroSMS, VakSMS getCountries); informative
    keyless_catalogue: bool = False
    # -- buying ---------------------------------------------------------------------------------------------------
    #: the provider implements getNumberV2 (JSON answer with the cost); False: buy with getNumber
    has_number_v2: bool = True
    #: getNumberV2 honours ``orderId`` (ORDER_ALREADY_EXISTS on a repeat), so an ambiguous purchase may be re-sent
    #: with the same orderId. False: a purchase is sent once and an ambiguous failure is reconciled by reading
    idempotent_purchase: bool = False
    #: the provider refuses a purchase above ``maxPrice`` (WRONG_MAX_PRICE:<min>). False: not known to, so the
    #: buyer checks the price itself (sending maxPrice stays harmless: unknown parameters are ignored)
    max_price_supported: bool = True
    #: maxPrice is read only together with ``currency`` (SMSHub): send default_currency with it
    max_price_needs_currency: bool = False
    #: purchases take providerIds/exceptProviderIds (Grizzly, Tiger SMS, SMSBower); informative
    supports_provider_ids: bool = False
    # -- prices ---------------------------------------------------------------------------------------------------
    #: the action cheapest routing reads prices and stock with (one of PRICE_ACTIONS)
    price_action: PriceAction = "getPrices"
    #: the provider's own price actions whose shapes otpflow does not model (use ProviderClient.call); informative
    price_variants: tuple[str, ...] = ()
    # -- webhooks -------------------------------------------------------------------------------------------------
    #: addresses the provider sends webhooks from (for WEBHOOK_ALLOWED_IPS); empty: unknown
    webhook_sources: tuple[str, ...] = ()
    aliases: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        problem = _inconsistency(vars(self))
        if problem is not None:
            raise ValueError(f"dialect {self.name!r}: {problem[1]}")

    def with_overrides(self, **changes: object) -> "Dialect":
        """A copy with some fields changed (e.g. a custom base URL from PROVIDER_URL)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def purchase_action(self) -> str:
        """``getNumberV2`` where the provider has it, else ``getNumber``."""
        return "getNumberV2" if self.has_number_v2 else "getNumber"


def _inconsistency(values: Mapping[str, object]) -> tuple[tuple[str, ...], str] | None:
    """The fields of a combination that cannot work, and why; None when the combination is fine."""
    if values["auth"] == "form" and values["method"] != "POST":
        return ("auth", "method"), "auth=form needs method=POST (a GET request has no body)"
    if values["idempotent_purchase"] and not values["has_number_v2"]:
        return (("idempotent_purchase", "has_number_v2"),
                "idempotent_purchase needs has_number_v2 (orderId travels only with getNumberV2)")
    if values["price_action"] not in PRICE_ACTIONS:
        return ("price_action",), f"price_action must be one of {', '.join(PRICE_ACTIONS)}"
    return None


class UnknownDialect(ValueError):
    """A dialect name that is not in :data:`DIALECTS`; the message lists the known ones."""


_PROFILES = (
    Dialect(
        # The reference: every action of docs/handler-api.md, orderId idempotency and maxPrice as documented.
        name="sms-activate",
        base_url="https://api.sms-activate.ae/stubs/handler_api.php",
        idempotent_purchase=True,
        webhook_sources=("188.42.218.183", "142.91.156.119"),
        aliases=("smsactivate", "sa"),
    ),
    Dialect(
        name="herosms",
        base_url="https://hero-sms.com/stubs/handler_api.php",
        set_status_accepts_204=True,
        title_errors=True,
        active_activations_in_data=True,
        supports_status_ready=False,
        has_list_of_top_countries=False,
        keyless_catalogue=True,
        # Uncertain whether handler_api honours orderId (its REST API documents no idempotency): not relied on.
        idempotent_purchase=False,
        webhook_sources=("84.32.223.53", "185.138.88.87"),
        aliases=("hero", "hero-sms"),
    ),
    Dialect(
        name="grizzly",
        base_url="https://api.grizzlysms.com/stubs/handler_api.php",
        cancel_status=-1,
        default_currency=643,
        # getNumberV2 is documented (activationCancel/activationEnd); orderId idempotency is not: not relied on.
        idempotent_purchase=False,
        # maxPrice: "yes (uncertain in detail)"; getActiveActivations: "yes (uncertain)".
        supports_provider_ids=True,
        price_variants=("getPricesV2", "getPricesV3"),
        aliases=("grizzlysms", "grizzly-sms"),
    ),
    Dialect(
        name="smshub",
        base_url="https://smshub.org/stubs/handler_api.php",
        # Cancel 8 and the account currency are uncertain.
        has_active_activations=False,
        has_list_of_top_countries=False,
        # Only getNumber is documented: no getNumberV2, so no orderId.
        has_number_v2=False,
        max_price_needs_currency=True,
        aliases=("sms-hub",),
    ),
    Dialect(
        name="vaksms",
        base_url="https://vak-sms.com/stubs/handler_api.php",
        bad_action_means_bad_key=True,
        has_list_of_top_countries=False,
        keyless_catalogue=True,
        # Uncertain: cancel 8, getActiveActivations ("yes"), getPrices. Unknown: getNumberV2 and maxPrice.
        has_number_v2=False,
        max_price_supported=False,
        aliases=("vak", "vak-sms"),
    ),
    Dialect(
        # The compatibility endpoint: nothing beyond the SMS-Activate core is known. The known URLs are plain
        # HTTP; point PROVIDER_<NAME>_URL at https:// if the host serves it, since the key travels in the URL.
        name="5sim",
        base_url="http://api1.5sim.net/stubs/handler_api.php",
        has_number_v2=False,
        max_price_supported=False,
        aliases=("fivesim", "five-sim"),
    ),
    Dialect(
        name="smsman",
        base_url="https://api.sms-man.com/stubs/handler_api.php",
        cancel_status=-1,
        # "As SMS-Activate as far as known (uncertain)": purchase promises not relied on.
        has_number_v2=False,
        max_price_supported=False,
        aliases=("sms-man",),
    ),
    Dialect(
        name="tigersms",
        base_url="https://api.tiger-sms.com/stubs/handler_api.php",
        # Cancel 8 and getPrices are uncertain; maxPrice and getNumberV2 unknown. getStatusV2 is documented.
        has_number_v2=False,
        max_price_supported=False,
        supports_provider_ids=True,
        aliases=("tiger", "tiger-sms"),
    ),
    Dialect(
        name="smsbower",
        base_url="https://smsbower.online/stubs/handler_api.php",
        # Cancel 8 uncertain; maxPrice "presumably" (not relied on); getPricesV2/V3 shapes not modelled.
        has_number_v2=False,
        max_price_supported=False,
        supports_provider_ids=True,
        price_variants=("getPricesV2", "getPricesV3"),
        aliases=("bower", "sms-bower"),
    ),
    Dialect(
        # Nothing beyond the base URL is documented: the SMS-Activate core, purchase promises not relied on.
        name="365sms",
        base_url="https://365sms.ru/stubs/handler_api.php",
        has_number_v2=False,
        max_price_supported=False,
        aliases=("sms365", "365-sms"),
    ),
    Dialect(
        # The alternative API, documented with plain HTTP. setRentStatus accepts only 2 (cancel).
        name="onlinesim",
        base_url="http://api-conserver.onlinesim.io/stubs/handler_api.php",
        rent_finish_supported=False,
        has_number_v2=False,
        max_price_supported=False,
        aliases=("online-sim",),
    ),
    Dialect(
        # The tolerant profile for an unknown clone or our sandbox: accepts 204, assumes every action exists and
        # refuses nothing locally; like every clone of unknown standing, its orderId and maxPrice are not relied
        # on (override PROVIDER_<NAME>_IDEMPOTENT_PURCHASE / _MAX_PRICE_SUPPORTED where they are known to hold).
        name="generic",
        base_url="http://127.0.0.1:8000/stubs/handler_api.php",
        set_status_accepts_204=True,
        max_price_supported=False,
        aliases=("default", "compatible"),
    ),
)

DIALECTS: dict[str, Dialect] = {d.name: d for d in _PROFILES}


def canonical_name(name: str) -> str:
    """A name as looked up: lower case, without ``-``, ``_``, ``.`` and spaces (``Hero_SMS`` → ``herosms``)."""
    return re.sub(r"[-_.\s]+", "", str(name).strip().lower())


def _lookup_table() -> dict[str, Dialect]:
    table: dict[str, Dialect] = {}
    for d in _PROFILES:
        for alias in (d.name, *d.aliases):
            key = canonical_name(alias)
            if table.get(key, d) is not d:
                raise AssertionError(f"dialect alias {alias!r} names both {table[key].name} and {d.name}")
            table[key] = d
    return table


_LOOKUP = _lookup_table()


def dialect_names() -> list[str]:
    """The canonical profile names, for help texts and config validation."""
    return list(DIALECTS)


def get_dialect(name: str | Dialect) -> Dialect:
    """The profile for ``name`` (case-insensitive, common spellings accepted); a Dialect passes through.

    An unknown name raises :class:`UnknownDialect` naming the valid choices, so a typo in ``PROVIDER`` fails at
    start-up instead of silently talking SMS-Activate to another provider.
    """
    if isinstance(name, Dialect):
        return name
    try:
        return _LOOKUP[canonical_name(name)]
    except KeyError:
        raise UnknownDialect(
            f"unknown provider dialect {name!r}; known: {', '.join(dialect_names())}"
        ) from None


# ------------------------------------------------------------------------------------------- overrides
class BadOverride(ValueError):
    """An override that names no overridable field, or whose value does not parse; names both."""

    def __init__(self, field_name: str, value: str, why: str) -> None:
        self.field = field_name
        self.value = value
        super().__init__(f"{field_name}={value!r}: {why}")


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError("expected true/false (also 1/0, yes/no, on/off)")


def _url(text: str) -> str:
    value = text.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL with a host")
    return value


def _cancel_status(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError("expected an integer setStatus code (8, -1, 10, …)") from None
    if value in (1, 3, 6):
        raise ValueError("1, 3 and 6 are ready, retry and finish, not a cancel")
    return value


def _currency(text: str) -> int | None:
    value = text.strip().lower()
    if value in ("", "none", "unknown"):
        return None
    if not value.isdigit() or not 1 <= int(value) <= 999:
        raise ValueError("expected an ISO 4217 numeric code (840, 643, 978, …) or 'none'")
    return int(value)


def _addresses(text: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in text.split(",") if item.strip())
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"{item!r} is not an address or network") from None
    return items


def _choice(*allowed: str, upper: bool = False) -> Callable[[str], object]:
    def parse(text: str) -> str:
        value = text.strip().upper() if upper else text.strip()
        for option in allowed:
            if value == option or (not upper and value.lower() == option.lower()):
                return option
        raise ValueError(f"expected one of {', '.join(allowed)}")
    return parse


_BOOL_FIELDS = (
    "set_status_accepts_204", "title_errors", "bad_action_means_bad_key", "active_activations_in_data",
    "supports_status_ready", "has_active_activations", "has_list_of_top_countries", "has_status_v2", "has_rent",
    "rent_finish_supported", "keyless_catalogue", "has_number_v2", "idempotent_purchase", "max_price_supported",
    "max_price_needs_currency", "supports_provider_ids",
)

#: Dialect field name → parser of its string form (ValueError on a bad value)
OVERRIDABLE: dict[str, Callable[[str], object]] = {
    "base_url": _url,
    "cancel_status": _cancel_status,
    "method": _choice("GET", "POST", upper=True),
    "auth": _choice("query", "form", "header"),
    "multi_forward_param": _choice("multiForward", "forward"),
    "incoming_call_id_param": _choice("activationId", "id"),
    "partner_product_param": _choice("id", "productId"),
    "rent_time_param": _choice("rent_time", "time"),
    "default_currency": _currency,
    "price_action": _choice(*PRICE_ACTIONS),
    "webhook_sources": _addresses,
    **{name: _bool for name in _BOOL_FIELDS},
}
#: other spellings of a field accepted by apply_overrides (PROVIDER_<NAME>_URL names the base URL)
_FIELD_ALIASES = {"url": "base_url"}

assert set(OVERRIDABLE) <= {f.name for f in dataclasses.fields(Dialect)}


def apply_overrides(dialect: Dialect, raw: Mapping[str, str]) -> Dialect:
    """``dialect`` with the fields in ``raw`` (field name, any case → string value) parsed and replaced.

    Raises :class:`BadOverride` (a ValueError) naming the field and the value: an unknown field, a value its
    parser rejects, or a combination that cannot work (``auth=form`` with GET, …).
    """
    changes: dict[str, object] = {}
    for key, value in raw.items():
        name = _FIELD_ALIASES.get(key.strip().lower(), key.strip().lower())
        parser = OVERRIDABLE.get(name)
        if parser is None:
            raise BadOverride(key, value, f"not an overridable dialect field (known: {', '.join(sorted(OVERRIDABLE))})")
        try:
            changes[name] = parser(str(value))
        except ValueError as exc:
            raise BadOverride(name, value, str(exc)) from None
    if not changes:
        return dialect
    problem = _inconsistency({**vars(dialect), **changes})
    if problem is not None:
        fields, why = problem
        culprit = next((f for f in fields if f in changes), fields[0])
        raise BadOverride(culprit, str(_raw_value(raw, culprit)), why)
    return replace(dialect, **changes)  # type: ignore[arg-type]


def _raw_value(raw: Mapping[str, str], name: str) -> str:
    """The string an override gave for ``name`` (under any spelling), or the empty string."""
    for key, value in raw.items():
        if _FIELD_ALIASES.get(key.strip().lower(), key.strip().lower()) == name:
            return value
    return ""
