"""Provider dialect profiles: a base URL plus the quirks of docs/dialects.md, as data.

Switching provider is configuration (``PROVIDER=herosms``), not code: the client reads these flags instead of
branching on provider names. The parser is tolerant of every dialect's shapes regardless of the profile (a
provider can change shape without notice); the profile decides what we *send* and a few strict/lenient choices.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

__all__ = ["Dialect", "DIALECTS", "UnknownDialect", "get_dialect", "dialect_names"]


@dataclass(frozen=True)
class Dialect:
    """One provider's flavour of handler_api."""

    name: str
    base_url: str
    #: setStatus value that cancels an activation: 8 (SMS-Activate) or -1 (Grizzly, sms-man, old clones)
    cancel_status: int = 8
    #: setStatus may answer HTTP 204 with an empty body on success (HeroSMS)
    set_status_accepts_204: bool = False
    #: errors come as JSON {"title","details","info"} with HTTP 4xx (HeroSMS). Recognised everywhere anyway.
    title_errors: bool = False
    #: BAD_ACTION also means "wrong key" (VakSMS): raise BadActionOrKey
    bad_action_means_bad_key: bool = False
    #: getActiveActivations puts the rows in "data" (HeroSMS). The parser reads "data" first in any case.
    active_activations_in_data: bool = False
    #: setStatus 1 ("number ready") exists (HeroSMS: no)
    supports_status_ready: bool = True
    #: the provider implements getActiveActivations
    has_active_activations: bool = True
    #: the provider implements getListOfTopCountriesByService (HeroSMS: 404 BAD_ACTION)
    has_list_of_top_countries: bool = True
    #: wire name of getMultiServiceNumber's forward list: "multiForward" (most clients) or "forward"
    multi_forward_param: str = "multiForward"
    #: wire name of the getIncomingCallStatus id
    incoming_call_id_param: str = "activationId"
    #: wire name of the buyPartnerProduct id ("id"; some documentation writes "productId")
    partner_product_param: str = "id"
    #: wire name of the rent duration ("rent_time"; one official client sends "time", which looks like a bug)
    rent_time_param: str = "rent_time"
    #: HTTP method for every action; POST sends a form body (the official PHP client's way)
    method: Literal["GET", "POST"] = "GET"
    #: where the key goes: "query" (api_key=), "form" (POST body), "header" (Authorization: ApiKey, HeroSMS)
    auth: Literal["query", "form", "header"] = "query"
    #: catalogue actions work without a key (HeroSMS, VakSMS getCountries); informative
    keyless_catalogue: bool = False
    #: account currency when the answer does not say (ISO 4217 numeric)
    default_currency: int | None = 840
    aliases: tuple[str, ...] = field(default=())

    def with_overrides(self, **changes: object) -> "Dialect":
        """A copy with some fields changed (e.g. a custom base URL from PROVIDER_URL)."""
        return replace(self, **changes)  # type: ignore[arg-type]


class UnknownDialect(ValueError):
    """A dialect name that is not in :data:`DIALECTS`; the message lists the known ones."""


_PROFILES = (
    Dialect(
        name="sms-activate",
        base_url="https://api.sms-activate.ae/stubs/handler_api.php",
        aliases=("smsactivate", "sms_activate", "sa"),
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
        aliases=("hero-sms", "hero_sms", "hero"),
    ),
    Dialect(
        name="grizzly",
        base_url="https://api.grizzlysms.com/stubs/handler_api.php",
        cancel_status=-1,
        default_currency=643,
        aliases=("grizzlysms", "grizzly-sms"),
    ),
    Dialect(
        name="smshub",
        base_url="https://smshub.org/stubs/handler_api.php",
        has_active_activations=False,
        has_list_of_top_countries=False,
        aliases=("sms-hub", "sms_hub"),
    ),
    Dialect(
        name="vaksms",
        base_url="https://vak-sms.com/stubs/handler_api.php",
        bad_action_means_bad_key=True,
        has_list_of_top_countries=False,
        keyless_catalogue=True,
        aliases=("vak-sms", "vak_sms", "vak"),
    ),
    Dialect(
        # The tolerant profile for an unknown clone or our sandbox: accepts 204, both forward names on the
        # server side are fine, nothing is refused locally.
        name="generic",
        base_url="http://127.0.0.1:8000/stubs/handler_api.php",
        set_status_accepts_204=True,
        aliases=("default", "compatible"),
    ),
)

DIALECTS: dict[str, Dialect] = {d.name: d for d in _PROFILES}
_LOOKUP: dict[str, Dialect] = {alias: d for d in _PROFILES for alias in (d.name, *d.aliases)}


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
    key = str(name).strip().lower()
    try:
        return _LOOKUP[key]
    except KeyError:
        raise UnknownDialect(
            f"unknown provider dialect {name!r}; known: {', '.join(dialect_names())}"
        ) from None
