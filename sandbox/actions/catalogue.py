"""Read-only catalogue actions: balance, countries, services, operators, prices, number counts, top lists."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from ..catalogue import fmt_money, money_json
from ..dialects import Reply, as_json, plain
from ..errors import ApiError
from .params import Ctx, Handler

RANK_DISCOUNT = Decimal("0.95")   # getTopCountriesByServiceRank: the account's loyalty tier (emulated)


def get_balance(ctx: Ctx) -> Reply:
    return plain(f"ACCESS_BALANCE:{fmt_money(ctx.engine.ledger.balance)}")


def get_balance_and_cashback(ctx: Ctx) -> Reply:
    ledger = ctx.engine.ledger
    return plain(f"ACCESS_BALANCE:{fmt_money(ledger.balance + ledger.cashback)}")


def _service(ctx: Ctx, required: bool, error: str = "BAD_SERVICE") -> str | None:
    service = ctx.get("service")
    if service is None:
        if required:
            raise ApiError(error)
        return None
    if service not in ctx.engine.catalogue.services or service == "full":
        raise ApiError(error)
    return service


def _activation_offers(ctx: Ctx, country: int | None, service: str | None) -> list[tuple[int, str, Any]]:
    return [(c, s, o) for c, s, o in ctx.engine.catalogue.offers_in(country, service) if s != "full"]


def get_numbers_status(ctx: Ctx) -> Reply:
    country = ctx.country()
    seed_style = ctx.settings.numbers_status_style == "seed"
    body: dict[str, Any] = {}
    services = ctx.engine.catalogue.services
    for _, s, o in _activation_offers(ctx, country, None):
        if seed_style:
            body[f"{s}_0"] = o.count
            if services[s].forward:
                body[f"{s}_1"] = o.count
        else:
            body[s] = str(o.count)
    return as_json(body, html=True)   # SMS-Activate serves this JSON as text/html


def _top_countries(ctx: Ctx, discount: Decimal) -> Reply:
    service = _service(ctx, required=False)
    free_price = ctx.flag("freePrice")
    rows: dict[int, dict[str, Any]] = {}
    for c, s, o in _activation_offers(ctx, None, service):
        row = rows.setdefault(c, {"country": c, "count": 0, "price": None, "retail_price": None})
        row["count"] += o.count
        price = (o.price * discount).quantize(Decimal("0.001")).normalize()
        if row["price"] is None or price < row["price"]:
            row["price"], row["retail_price"] = price, o.retail_price
        if free_price:
            row.setdefault("freePriceMap", {})
            key = fmt_money(price)
            row["freePriceMap"][key] = row["freePriceMap"].get(key, 0) + o.count
    ordered = sorted(rows.values(), key=lambda r: (-r["count"], r["country"]))
    body = {}
    for i, row in enumerate(ordered):
        row["price"] = money_json(row["price"])
        row["retail_price"] = money_json(row["retail_price"])
        body[str(i)] = row
    return as_json(body)


def get_top_countries_by_service(ctx: Ctx) -> Reply:
    return _top_countries(ctx, Decimal("1"))


def get_top_countries_by_service_rank(ctx: Ctx) -> Reply:
    return _top_countries(ctx, RANK_DISCOUNT)


def get_list_of_top_countries_by_service(ctx: Ctx) -> Reply:
    service = _service(ctx, required=True, error="WRONG_SERVICE")
    assert service is not None
    offers = _activation_offers(ctx, None, service)
    total_sold = sum(o.sold for _, _, o in offers)
    total_stock = sum(o.stock for _, _, o in offers) or 1
    rows = []
    for c, _, o in offers:
        share = o.sold * 100 / total_sold if total_sold else o.stock * 100 / total_stock
        rate = o.succeeded * 100 / o.sold if o.sold else 75.0
        rows.append({"country": c, "share": round(share, 2), "rate": round(rate, 2)})
    rows.sort(key=lambda r: (-r["share"], r["country"]))
    length = max(1, ctx.int_or(10, "length"))
    page = max(1, ctx.int_or(1, "page"))
    return as_json(rows[(page - 1) * length: page * length])


def get_operators(ctx: Ctx) -> Reply:
    countries = ctx.engine.catalogue.countries
    raw = ctx.get("country")
    if raw is None:
        ops = {str(c.id): list(c.operators) for c in countries.values() if c.operators}
    else:
        c = countries.get(int(raw)) if raw.isdigit() else None
        if c is None or not c.operators:
            raise ApiError("OPERATORS_NOT_FOUND", envelope="json_error")
        ops = {str(c.id): list(c.operators)}
    return as_json({"status": "success", "countryOperators": ops})


def _country_filter(ctx: Ctx) -> int | None | bool:
    raw = ctx.get("country")
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return False


def get_prices(ctx: Ctx, extended: bool = False) -> Reply:
    country = _country_filter(ctx)
    service = ctx.get("service")
    body: dict[str, dict[str, Any]] = {}
    if country is False:
        return as_json(body)
    for c, s, o in _activation_offers(ctx, country, service):
        # `count` is what the provider advertises, `physicalCount` what it can really sell
        entry: dict[str, Any] = {"cost": money_json(o.price), "count": o.count, "physicalCount": o.stock}
        if extended and ctx.flag("freePrice"):
            entry["freePriceMap"] = {fmt_money(o.price): o.count}
        body.setdefault(str(c), {})[s] = entry
    return as_json(body)


def get_prices_extended(ctx: Ctx) -> Reply:
    return get_prices(ctx, extended=True)


def get_prices_verification(ctx: Ctx) -> Reply:
    service = ctx.get("service")
    body: dict[str, dict[str, Any]] = {}
    for c, s, o in _activation_offers(ctx, None, service):
        body.setdefault(s, {})[str(c)] = {"count": o.count, "price": fmt_money(o.price)}
    return as_json(body)


def get_countries(ctx: Ctx) -> Reply:
    hero = ctx.dialect.name == "herosms"
    body = {}
    for c in ctx.engine.catalogue.countries.values():
        entry: dict[str, Any] = {"id": c.id, "rus": c.rus, "eng": c.eng, "chn": c.chn, "visible": c.visible,
                                 "retry": c.retry, "rent": c.rent}
        if not hero:
            entry["multiService"] = c.multi_service
        body[str(c.id)] = entry
    return as_json(list(body.values()) if ctx.dialect.countries_as_list else body)


def get_services_list(ctx: Ctx) -> Reply:
    cat = ctx.engine.catalogue
    raw = ctx.get("country")
    lang = (ctx.get("lang") or "en").lower()
    codes = [s for s in cat.services if s != "full"]
    if raw is not None:
        wanted = int(raw) if raw.isdigit() else -1
        codes = [s for s in codes if cat.offer(wanted, s) is not None]
    services = [{"code": s, "name": cat.services[s].name_ru if lang == "ru" else cat.services[s].name_en}
                for s in codes]
    return as_json({"status": "success", "services": services})


HANDLERS: dict[str, Handler] = {
    "getBalance": get_balance,
    "getBalanceAndCashBack": get_balance_and_cashback,
    "getNumbersStatus": get_numbers_status,
    "getTopCountriesByService": get_top_countries_by_service,
    "getTopCountriesByServiceRank": get_top_countries_by_service_rank,
    "getListOfTopCountriesByService": get_list_of_top_countries_by_service,
    "getOperators": get_operators,
    "getPrices": get_prices,
    "getPricesExtended": get_prices_extended,
    "getPricesVerification": get_prices_verification,
    "getCountries": get_countries,
    "getServicesList": get_services_list,
}
