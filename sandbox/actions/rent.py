"""Rent actions (docs/handler-api.md, Rents): every answer is JSON; errors use the `message` envelope."""
from __future__ import annotations

from typing import Any

from ..catalogue import money_json
from ..clock import fmt_dt, fmt_iso
from ..dialects import Reply, as_json
from ..errors import ApiError, rent_error
from ..rents import MAX_HOURS, Rent, RentState, parse_hours, status_error
from .params import Ctx, Handler


def _rent_country(ctx: Ctx, error: str) -> int:
    try:
        country = ctx.country(error=error, default=0)
    except ApiError:
        raise rent_error(error) from None
    if not ctx.engine.catalogue.countries[country].rent:
        raise rent_error(error)
    return country


def get_rent_services_and_countries(ctx: Ctx) -> Reply:
    cat = ctx.engine.catalogue
    hours = parse_hours(ctx.get("rent_time", "time"))
    country = _rent_country(ctx, "OUT_OF_STOCK")
    rent_countries = [c.id for c in cat.countries.values() if c.rent]
    operators = sorted({*cat.countries[country].operators, "any"})
    services = {s: {"cost": money_json(cat.rent_price(country, s, hours)), "quant": o.rent_stock}
                for c, s, o in cat.offers_in(country, None) if o.rent_price_4h is not None}
    if not services:
        raise rent_error("OUT_OF_STOCK")
    return as_json({"countries": {str(i): c for i, c in enumerate(rent_countries)},
                    "operators": {str(i): op for i, op in enumerate(operators)},
                    "services": services, "currency": ctx.settings.currency})


def _rent_body(rent: Rent) -> dict[str, Any]:
    return {"status": "success", "phone": {"id": int(rent.id), "endDate": fmt_iso(rent.end_at),
                                           "number": rent.phone}}


def get_rent_number(ctx: Ctx) -> Reply:
    engine = ctx.engine
    service = ctx.get("service")
    if service is None or service not in engine.catalogue.services:
        raise rent_error("BAD_SERVICE")
    try:
        engine.check_can_buy()
    except ApiError as exc:
        if exc.code == "BANNED":
            raise
        raise rent_error(exc.code) from None
    hours = parse_hours(ctx.get("rent_time", "time"))
    country = _rent_country(ctx, "NO_NUMBERS")
    operator = engine.pick_operator(country, ctx.get("operator"))
    rent = engine.rent(service=service, country=country, hours=hours, operator=operator, url=ctx.get("url"),
                       incoming_call=ctx.flag("incomingCall"))
    return as_json(_rent_body(rent))


def get_rent_status(ctx: Ctx) -> Reply:
    rent = ctx.engine.get_rent(ctx.get("id"))
    status_error(rent)
    if not rent.sms:
        raise rent_error("STATUS_WAIT_CODE")
    page = max(0, ctx.int_or(0, "page"))       # pages from 0, default 0 (uncertain: docs/handler-api.md, Rents)
    size = max(1, ctx.int_or(10, "size"))
    newest_first = list(reversed(rent.sms))
    chunk = newest_first[page * size:(page + 1) * size]
    values = {str(i): {"phoneFrom": s.phone_from, "text": s.text, "service": s.service, "date": fmt_dt(s.date)}
              for i, s in enumerate(chunk)}
    return as_json({"status": "success", "quantity": str(len(rent.sms)), "values": values})


def set_rent_status(ctx: Ctx) -> Reply:
    rent = ctx.engine.get_rent(ctx.get("id"))
    ctx.engine.set_rent_status(rent, ctx.get("status"))
    return as_json({"status": "success"})


def get_rent_list(ctx: Ctx) -> Reply:
    rents = sorted((r for r in ctx.engine.rents.values() if r.state == RentState.ACTIVE),
                   key=lambda r: (r.created_at, int(r.id)), reverse=True)
    if not rents:
        raise rent_error("NO_NUMBERS")
    length = max(1, ctx.int_or(10, "length"))
    page = max(1, ctx.int_or(1, "page"))
    chunk = rents[(page - 1) * length: page * length]
    return as_json({"status": "success",
                    "values": {str(i): {"id": r.id, "phone": r.phone} for i, r in enumerate(chunk)}})


def continue_rent_number(ctx: Ctx) -> Reply:
    rent = ctx.engine.get_rent(ctx.get("id"))
    hours = parse_hours(ctx.get("rent_time", "time"))
    return as_json(_rent_body(ctx.engine.continue_rent(rent, hours)))


def _prolong_price(ctx: Ctx, *hour_names: str) -> tuple[Rent, int, float]:
    engine = ctx.engine
    rent = engine.get_rent(ctx.get("id"))
    hours = parse_hours(ctx.get(*hour_names))
    if rent.state in (RentState.CANCELLED, RentState.REVOKED) or rent.successor is not None:
        raise rent_error("RENT_DIE")
    if rent.state == RentState.ACTIVE and rent.total_hours + hours > MAX_HOURS:
        raise rent_error("MAX_HOURS_EXCEED", info={"max": MAX_HOURS - rent.total_hours})
    return rent, hours, money_json(engine.catalogue.rent_price(rent.country, rent.service, hours))


def get_continue_rent_price_number(ctx: Ctx) -> Reply:
    _, _, price = _prolong_price(ctx, "rent_time", "time", "hours")
    return as_json({"status": "success", "price": price, "currency": ctx.settings.currency})


def continue_rent_info(ctx: Ctx) -> Reply:
    rent, hours, price = _prolong_price(ctx, "hours", "rent_time", "time")
    body: dict[str, Any] = {"status": "success", "price": price, "currency": ctx.settings.currency,
                            "hours": hours}
    if ctx.flag("needHistory"):
        body["history"] = {str(i): {"createDate": fmt_dt(p.created_at), "price": str(p.price), "hours": p.hours}
                           for i, p in enumerate(rent.history)}
    return as_json(body)


HANDLERS: dict[str, Handler] = {
    "getRentServicesAndCountries": get_rent_services_and_countries,
    "getRentNumber": get_rent_number,
    "getRentStatus": get_rent_status,
    "setRentStatus": set_rent_status,
    "getRentList": get_rent_list,
    "continueRentNumber": continue_rent_number,
    "getContinueRentPriceNumber": get_continue_rent_price_number,
    "continueRentInfo": continue_rent_info,
}
