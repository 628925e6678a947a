"""Countries, services, operators, prices and stock: what the emulated provider sells.

Stock is real: a purchase takes a number out of it and a cancel (or an expiry without a code) puts it back, so
`getNumbersStatus`/`getPrices` answers move with the state of the account. Each offer also has an advertised
`count` that may exceed its real stock (`physicalCount`), as live providers' do (docs/handler-api.md, Transport
and answers). Prices and stock are settable per sandbox with `OfferPatch` (start-up and control API).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Container, Mapping

from .errors import OutOfStock


@dataclass(frozen=True)
class Country:
    """One country of `getCountries`."""

    id: int
    eng: str
    rus: str
    chn: str
    phone_prefix: str       # international prefix, digits only
    national_digits: int    # digits after the prefix
    phone_code: str         # HeroSMS `countryPhoneCode`
    retry: int = 1          # a repeated SMS (setStatus 3) is available
    rent: int = 1
    multi_service: int = 1
    visible: int = 1
    operators: tuple[str, ...] = ()


@dataclass(frozen=True)
class Service:
    """One service code of `getServicesList`."""

    code: str
    name_en: str
    name_ru: str
    forward: bool = False   # numbers with call forwarding exist (getAdditionalService needs it)


@dataclass
class Offer:
    """Price and stock of one service in one country."""

    price: Decimal
    stock: int
    retail_price: Decimal
    forward_price: Decimal | None = None
    rent_price_4h: Decimal | None = None   # rent cost for 4 hours; None = not rentable
    rent_stock: int = 0
    sold: int = 0                          # purchases, for getListOfTopCountriesByService `share`
    succeeded: int = 0                     # finished with a code, for `rate`
    phantom: int = 0                       # advertised `count` minus real stock (`physicalCount`)

    @property
    def count(self) -> int:
        """What the provider advertises (`count`): real stock plus the phantom numbers, never negative."""
        return max(0, self.stock + self.phantom)

    def set_price(self, price: Decimal) -> None:
        """A new activation price; the retail and forwarding prices follow it (rent prices do not)."""
        self.price = price
        self.retail_price = (price * 2).quantize(Decimal("0.01"))
        self.forward_price = (price * Decimal("1.5")).quantize(Decimal("0.01"))


_PATCH_KEYS = frozenset({"service", "country", "price", "count", "physical_count"})


@dataclass(frozen=True)
class OfferPatch:
    """A change to one offer: its price and/or stock (`count` advertised, `physical_count` real).

    `count` alone sets both; `physical_count` alone sets the real stock and keeps the gap to the advertised count;
    both set each. Only existing activation offers can be changed (every service is sold in every country).
    """

    service: str
    country: int
    price: Decimal | None = None
    count: int | None = None
    physical_count: int | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "OfferPatch":
        """From `{"service","country","price"?,"count"?,"physical_count"?}` (ValueError naming what is wrong)."""
        if not isinstance(data, Mapping):
            raise ValueError("an offer must be a JSON object")
        unknown = sorted(set(data) - _PATCH_KEYS)
        if unknown:
            raise ValueError(f"unknown offer field(s) {', '.join(unknown)}; known: {', '.join(sorted(_PATCH_KEYS))}")
        service = data.get("service")
        if not isinstance(service, str) or not service:
            raise ValueError("offer needs a service code")
        return cls(service=service, country=_whole(data.get("country"), "country"),
                   price=None if data.get("price") is None else _price(data["price"]),
                   count=None if data.get("count") is None else _count(data["count"], "count"),
                   physical_count=None if data.get("physical_count") is None
                   else _count(data["physical_count"], "physical_count"))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"service": self.service, "country": self.country}
        if self.price is not None:
            out["price"] = fmt_money(self.price)
        if self.count is not None:
            out["count"] = self.count
        if self.physical_count is not None:
            out["physical_count"] = self.physical_count
        return out


def _whole(value: Any, name: str) -> int:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{name} must be an integer")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ValueError(f"{name} must be an integer, not {value!r}") from None
    return number


def _count(value: Any, name: str) -> int:
    number = _whole(value, name)
    if number < 0:
        raise ValueError(f"{name} must not be negative")
    return number


def _price(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueError("price must be a decimal number")
    try:
        price = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"price must be a decimal number, not {value!r}") from None
    if not price.is_finite() or price < 0:
        raise ValueError(f"price must be a finite number >= 0, not {value!r}")
    return price


@dataclass(frozen=True)
class Product:
    """A partner-software product of `buyPartnerProduct`."""

    id: int
    name: str
    price: Decimal


DEFAULT_COUNTRIES: tuple[Country, ...] = (
    Country(0, "Russia", "Россия", "俄罗斯", "79", 9, "7",
            operators=("beeline", "megafon", "mts", "tele2", "yota")),
    Country(1, "Ukraine", "Украина", "乌克兰", "380", 9, "380",
            operators=("kyivstar", "life", "mts", "utel")),
    Country(2, "Kazakhstan", "Казахстан", "哈萨克斯坦", "77", 9, "7",
            operators=("activ", "altel", "beeline", "tele2")),
    Country(6, "Indonesia", "Индонезия", "印度尼西亚", "628", 10, "62", rent=0),
    Country(16, "United Kingdom", "Великобритания", "英国", "447", 9, "44", retry=0, rent=0, multi_service=0),
    Country(187, "USA", "США", "美国", "1", 10, "1", multi_service=0),
)

DEFAULT_SERVICES: tuple[Service, ...] = (
    Service("tg", "Telegram", "Telegram"),
    Service("wa", "WhatsApp", "WhatsApp", forward=True),
    Service("vk", "VKontakte", "ВКонтакте", forward=True),
    Service("ok", "Odnoklassniki", "Одноклассники", forward=True),
    Service("go", "Google,youtube,Gmail", "Google,youtube,Gmail"),
    Service("fb", "facebook", "facebook"),
    Service("ig", "Instagram+Threads", "Instagram+Threads"),
    Service("ya", "Yandex", "Яндекс"),
    Service("full", "Full rent", "Полная аренда"),
)

DEFAULT_PRODUCTS: tuple[Product, ...] = (
    Product(1, "Partner software (demo)", Decimal("1.00")),
    Product(2, "Partner software Pro (demo)", Decimal("5.00")),
)

# Extra activation (getExtraActivation) and additional service (getAdditionalService) prices.
EXTRA_ACTIVATION_FACTOR = Decimal("0.8")
ADDITIONAL_SERVICE_PRICE = Decimal("0.05")


class Catalogue:
    """Countries × services with prices and stock; not thread-safe on its own (the engine holds the lock)."""

    def __init__(self, countries: tuple[Country, ...] = DEFAULT_COUNTRIES,
                 services: tuple[Service, ...] = DEFAULT_SERVICES,
                 products: tuple[Product, ...] = DEFAULT_PRODUCTS,
                 offers: dict[tuple[int, str], Offer] | None = None, stock: int = 100) -> None:
        self.countries: dict[int, Country] = {c.id: c for c in countries}
        self.services: dict[str, Service] = {s.code: s for s in services}
        self.products: dict[int, Product] = {p.id: p for p in products}
        self.offers: dict[tuple[int, str], Offer] = offers if offers is not None else _default_offers(stock)

    # -- look-ups ---------------------------------------------------------------------------------------------
    def offer(self, country: int, service: str) -> Offer | None:
        return self.offers.get((country, service))

    def offers_in(self, country: int | None = None, service: str | None = None) -> list[tuple[int, str, Offer]]:
        """Offers filtered by country and/or service, in catalogue order."""
        return [(c, s, o) for (c, s), o in self.offers.items()
                if (country is None or c == country) and (service is None or s == service)]

    # -- stock ------------------------------------------------------------------------------------------------
    def take(self, country: int, service: str) -> Offer:
        """Take one number out of stock (raises OutOfStock)."""
        offer = self.offers.get((country, service))
        if offer is None or offer.stock <= 0:
            raise OutOfStock(f"{country}/{service}")
        offer.stock -= 1
        offer.sold += 1
        return offer

    def give_back(self, country: int, service: str) -> None:
        """Return a number to stock (cancel, expiry without a code)."""
        offer = self.offers.get((country, service))
        if offer is not None:
            offer.stock += 1

    def take_rent(self, country: int, service: str) -> Offer:
        offer = self.offers.get((country, service))
        if offer is None or offer.rent_price_4h is None or offer.rent_stock <= 0:
            raise OutOfStock(f"rent {country}/{service}")
        offer.rent_stock -= 1
        return offer

    def give_back_rent(self, country: int, service: str) -> None:
        offer = self.offers.get((country, service))
        if offer is not None:
            offer.rent_stock += 1

    def set_stock(self, value: int | dict[str, dict[str, int]]) -> None:
        """Set stock: an int for every offer, or `{"<country>": {"<service>": n}}`."""
        if isinstance(value, bool):
            raise ValueError("stock must be an int or a mapping")
        if isinstance(value, int):
            for each in self.offers.values():
                each.stock = value
            return
        for country, per_service in value.items():
            for service, n in per_service.items():
                offer = self.offers.get((int(country), service))
                if offer is None:
                    raise ValueError(f"no offer for country {country} service {service}")
                offer.stock = int(n)

    def check(self, patch: OfferPatch) -> None:
        """Raise ValueError if `patch` cannot apply (an unknown service or country)."""
        if patch.service not in self.services or patch.service == "full":
            raise ValueError(f"unknown service {patch.service!r}")
        if patch.country not in self.countries:
            raise ValueError(f"unknown country {patch.country}")
        if (patch.country, patch.service) not in self.offers:
            raise ValueError(f"no offer for {patch.service} in country {patch.country}")

    def apply(self, patches: list[OfferPatch] | tuple[OfferPatch, ...]) -> list[tuple[int, str, Offer]]:
        """Apply every patch, or none if one cannot apply (ValueError); the offers changed, in patch order."""
        for patch in patches:
            self.check(patch)
        changed: list[tuple[int, str, Offer]] = []
        for patch in patches:
            offer = self.offers[(patch.country, patch.service)]
            if patch.price is not None:
                offer.set_price(patch.price)
            if patch.physical_count is not None:
                if patch.count is not None:
                    offer.phantom = patch.count - patch.physical_count
                offer.stock = patch.physical_count
            elif patch.count is not None:
                offer.stock = patch.count
                offer.phantom = 0
            changed.append((patch.country, patch.service, offer))
        return changed

    def rent_price(self, country: int, service: str, hours: int) -> Decimal:
        """Rent cost: the 4-hour price pro rata, never below it (the provider's shortest tier)."""
        offer = self.offers[(country, service)]
        assert offer.rent_price_4h is not None
        return max(offer.rent_price_4h, (offer.rent_price_4h * hours / 4).quantize(Decimal("0.01")))

    # -- phones -----------------------------------------------------------------------------------------------
    def new_phone(self, country: int, rng: random.Random, avoid: Container[str], excluded_prefixes: list[str]) -> str:
        """A fresh phone number of the country not in `avoid` and not starting with an excluded prefix."""
        c = self.countries[country]
        for _ in range(200):
            phone = c.phone_prefix + "".join(rng.choice("0123456789") for _ in range(c.national_digits))
            if phone in avoid or any(phone.startswith(p) for p in excluded_prefixes):
                continue
            return phone
        raise OutOfStock(f"no phone for {country} outside {excluded_prefixes}")


def _default_offers(stock: int) -> dict[tuple[int, str], Offer]:
    base = {"tg": "0.25", "wa": "0.40", "vk": "0.12", "ok": "0.10", "go": "0.105", "fb": "0.08",
            "ig": "0.09", "ya": "0.06", "full": "0.50"}
    factor = {0: Decimal("1"), 1: Decimal("0.8"), 2: Decimal("0.9"), 6: Decimal("0.6"), 16: Decimal("1.5"),
              187: Decimal("2")}
    offers: dict[tuple[int, str], Offer] = {}
    for country, f in factor.items():
        for service, p in base.items():
            if service == "full" and country not in (0, 1, 2, 187):
                continue
            price = (Decimal(p) * f).quantize(Decimal("0.001")).normalize()
            if price.as_tuple().exponent > -2:  # type: ignore[operator]
                price = price.quantize(Decimal("0.01"))
            rentable = country in (0, 1, 2, 187)
            offers[(country, service)] = Offer(
                price=price, stock=0 if service == "full" else stock,
                retail_price=(price * 2).quantize(Decimal("0.01")),
                forward_price=(price * Decimal("1.5")).quantize(Decimal("0.01")),
                rent_price_4h=(price * 4).quantize(Decimal("0.01")) if rentable else None,
                rent_stock=20 if rentable else 0)
    return offers


def offer_json(country: int, service: str, offer: Offer) -> dict[str, Any]:
    """One offer as the control API shows it (prices as strings, exact)."""
    return {"service": service, "country": country, "price": fmt_money(offer.price), "count": offer.count,
            "physical_count": offer.stock, "retail_price": fmt_money(offer.retail_price),
            "forward_price": None if offer.forward_price is None else fmt_money(offer.forward_price),
            "sold": offer.sold}


def fmt_money(value: Decimal) -> str:
    """Money as the provider prints it: at least two decimals (`12.50`), more only when present (`17.154`)."""
    value = value.normalize()
    if value.as_tuple().exponent > -2:  # type: ignore[operator]
        value = value.quantize(Decimal("0.01"))
    return f"{value:f}"


def money_json(value: Decimal) -> float:
    """Money as a JSON number (PHP's json_encode prints floats)."""
    return float(value)
