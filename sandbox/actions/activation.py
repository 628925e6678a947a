"""Activation actions: buying numbers, setStatus/getStatus, calls, history, extra and additional services."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from ..activations import ACTIVE_STATES, NUMERIC_STATUS, Activation, State, parse_status, status_text
from ..catalogue import fmt_money, money_json
from ..clock import fmt_dt
from ..dialects import NO_CONTENT, Reply, as_json, plain
from ..errors import ApiError
from .params import Ctx, Handler

HISTORY_MAX_RANGE = 30 * 86400


# -- buying ---------------------------------------------------------------------------------------------------
def _excluded_prefixes(ctx: Ctx, country: int) -> list[str]:
    """`phoneException`: country code + 3–6 digits each (e.g. 7918,7900111), else WRONG_EXCEPTION_PHONE."""
    raw = ctx.get("phoneException")
    if raw is None:
        return []
    code = ctx.engine.catalogue.countries[country].phone_code
    out = []
    for item in raw.split(","):
        item = item.strip()
        if not item.isdigit() or not item.startswith(code) or not 3 <= len(item) - len(code) <= 6:
            raise ApiError("WRONG_EXCEPTION_PHONE")
        out.append(item)
    return out


def _check_currency(ctx: Ctx) -> None:
    """SMSHub-style: a purchase `currency` other than the account's is refused (the account has one currency)."""
    wanted = ctx.get("currency")
    if ctx.dialect.currency_change_error and wanted is not None and wanted != str(ctx.settings.currency):
        raise ApiError("CURRENCY_CHANGE_UNAVAILABLE")


def _max_price(ctx: Ctx) -> Decimal | None:
    """The `maxPrice` ceiling as the dialect reads it: always, only next to `currency`, or never."""
    mode = ctx.dialect.max_price
    if mode == "ignored" or (mode == "with_currency" and ctx.get("currency") is None):
        return None
    return ctx.decimal("maxPrice")


def _purchase(ctx: Ctx, *, order_id: str | None = None) -> Activation:
    """Everything getNumber and getNumberV2 share: validation in the provider's order, then the purchase."""
    engine = ctx.engine
    cat = engine.catalogue
    service = ctx.get("service")
    if service is None or service not in cat.services or service == "full":
        raise ApiError("BAD_SERVICE")
    engine.check_can_buy()
    if ctx.dialect.name == "grizzly" and ctx.get("country") == "any":
        candidates = [c for c, _, o in cat.offers_in(None, service) if o.stock > 0]
        if not candidates:
            raise ApiError("NO_NUMBERS")
        country = candidates[0]
    else:
        country = ctx.country()
    offer = cat.offer(country, service)
    if offer is None:
        raise ApiError("NO_NUMBERS")
    forward = ctx.get("forward") == "1"
    if forward and not cat.services[service].forward:
        raise ApiError("NO_NUMBERS")
    price = offer.forward_price if forward and offer.forward_price is not None else offer.price
    _check_currency(ctx)
    max_price = _max_price(ctx)
    if max_price is not None and max_price < offer.price:
        raise ApiError("WRONG_MAX_PRICE", fmt_money(offer.price))
    excluded = _excluded_prefixes(ctx, country)
    activation_type = ctx.int_or(0, "activationType")
    if activation_type not in (0, 1, 2):
        activation_type = 0
    if activation_type == 0 and ctx.flag("verification"):
        activation_type = 1     # legacy call verification (older clients send verification=true)
    if ctx.flag("useCashBack"):
        engine.ledger.use_cashback = True     # sticky, as documented
    operator = engine.pick_operator(country, ctx.get("operator"))
    return engine.buy(service=service, country=country, operator=operator, price=price,
                      activation_type=activation_type, forward=forward, order_id=order_id, excluded=excluded,
                      language=ctx.get("language"))


def get_number(ctx: Ctx) -> Reply:
    act = _purchase(ctx)
    return plain(f"ACCESS_NUMBER:{act.id}:{act.phone}")


def _v2_body(ctx: Ctx, act: Activation) -> dict[str, Any]:
    body: dict[str, Any] = {
        "activationId": int(act.id), "phoneNumber": act.phone, "activationCost": money_json(act.cost),
        "currency": ctx.settings.currency, "countryCode": str(act.country),
        "canGetAnotherSms": "1" if act.can_retry else "0", "activationTime": fmt_dt(act.created_at),
        "activationOperator": act.operator}
    if ctx.dialect.v2_extra == "herosms":
        body["countryPhoneCode"] = int(ctx.engine.catalogue.countries[act.country].phone_code)
        body["activationEndTime"] = fmt_dt(act.expires_at)
    elif ctx.dialect.v2_extra == "grizzly":
        body["activationCancel"] = fmt_dt(act.created_at + ctx.settings.refund_window)
        body["activationEnd"] = fmt_dt(act.expires_at)
    return body


def get_number_v2(ctx: Ctx) -> Reply:
    order_id = ctx.get("orderId")
    if order_id is not None and order_id in ctx.engine.orders and ctx.settings.honour_order_id:
        raise ApiError("ORDER_ALREADY_EXISTS")
    act = _purchase(ctx, order_id=order_id)
    return as_json(_v2_body(ctx, act))


def get_multi_service_number(ctx: Ctx) -> Reply:
    engine = ctx.engine
    cat = engine.catalogue
    raw = ctx.get("multiService", "service")
    services = [s.strip() for s in (raw or "").split(",") if s.strip()]
    if not services or len(set(services)) != len(services) or any(
            s not in cat.services or s == "full" for s in services):
        raise ApiError("BAD_SERVICE")
    engine.check_can_buy()
    forwards_raw = ctx.get("multiForward", "forward")
    forwards = [f.strip() for f in forwards_raw.split(",")] if forwards_raw else []
    if any(f not in ("0", "1") for f in forwards) or forwards.count("1") > 1 or len(forwards) > len(services):
        raise ApiError("BAD_FORWARD")
    forwards += ["0"] * (len(services) - len(forwards))
    country = ctx.country()
    if not cat.countries[country].multi_service:
        raise ApiError("NOT_AVAILABLE")
    prices = []
    for s, f in zip(services, forwards):
        offer = cat.offer(country, s)
        if offer is None or offer.stock <= 0 or (f == "1" and not cat.services[s].forward):
            raise ApiError("NO_NUMBERS")
        prices.append(offer.forward_price if f == "1" and offer.forward_price is not None else offer.price)
    if not engine.ledger.can_pay(sum(prices, Decimal("0"))):
        raise ApiError("NO_BALANCE")
    operator = engine.pick_operator(country, ctx.get("operator"))
    phone: str | None = None
    body = []
    for s, f, price in zip(services, forwards, prices):
        act = engine.buy(service=s, country=country, operator=operator, price=price, forward=f == "1",
                         phone=phone, kind="multi")
        phone = act.phone
        body.append({"phone": act.phone, "activation": act.id, "service": s})
    return as_json(body)


# -- status ---------------------------------------------------------------------------------------------------
def set_status(ctx: Ctx) -> Reply:
    act = ctx.engine.get_activation(ctx.get("id"))
    status = parse_status(ctx.get("status"))
    token = ctx.engine.set_status(act, status)
    return NO_CONTENT if ctx.dialect.set_status_no_content else plain(token)


def get_status(ctx: Ctx) -> Reply:
    act = ctx.engine.get_activation(ctx.get("id"))
    return plain(status_text(act, ctx.settings.status_after_finish))


def get_status_v2(ctx: Ctx) -> Reply:
    act = ctx.engine.get_activation(ctx.get("id"))
    if act.state == State.CANCELLED:
        return plain("STATUS_CANCEL")
    if act.state == State.FINISHED:
        text = status_text(act, ctx.settings.status_after_finish)   # may raise NO_ACTIVATION
        if text == "STATUS_CANCEL":
            return plain(text)
    sms = act.sms[-1] if act.sms else None
    body: dict[str, Any] = {
        "verificationType": act.activation_type,
        "sms": {"dateTime": fmt_dt(sms.received_at), "code": sms.code, "text": sms.text} if sms else None,
        "call": None}
    if act.call is not None:
        c = act.call
        body["call"] = {"from": c.phone_from, "text": c.text, "code": c.code, "dateTime": fmt_dt(c.received_at),
                        "url": c.url, "parsingCount": c.parsing_count}
    return as_json(body)


def get_full_sms(ctx: Ctx) -> Reply:
    """Legacy `getFullSms`, still sent by the official clients: emulator extension."""
    act = ctx.engine.get_activation(ctx.get("id"))
    if act.state == State.CANCELLED:
        return plain("STATUS_CANCEL")
    if not act.sms:
        return plain("STATUS_WAIT_CODE")
    return plain(f"FULL_SMS:{act.sms[-1].text}")


def get_incoming_call_status(ctx: Ctx) -> Reply:
    act = ctx.engine.get_activation(ctx.get("activationId", "id"), bad="INVALID_ACTIVATION_ID",
                                    missing="INVALID_ACTIVATION_ID")
    if act.activation_type not in (1, 2):
        raise ApiError("NOT_INCOMING")
    if act.active:
        status = "2"
    elif act.state == State.FINISHED:
        status = "3"
    elif act.end_reason == "expired":
        status = "5"
    else:
        status = "4"
    return as_json({"status": status, "phone": act.call.phone_from if act.call else False})


def parse_call(ctx: Ctx) -> Reply:
    act = ctx.engine.get_activation(ctx.get("id", "activationId"), missing="WRONG_ACTIVATION_ID")
    if act.state == State.CANCELLED:
        return plain("STATUS_CANCEL")
    if not act.active:
        raise ApiError("WRONG_ACTIVATION_ID")
    if act.call is None:
        return plain("NO_CALL")
    if act.call.parsing_count >= 4:
        return plain("PARSE_COUNT_EXCEED")
    act.call.parsing_count += 1
    if ctx.get("newLang"):
        act.language = ctx.get("newLang")
    return as_json({"result": "OK"})


# -- lists ----------------------------------------------------------------------------------------------------
def _active_entry(ctx: Ctx, act: Activation) -> dict[str, Any]:
    country = ctx.engine.catalogue.countries[act.country]
    return {"activationId": act.id, "serviceCode": act.service, "phoneNumber": act.phone,
            "activationCost": money_json(act.cost), "activationStatus": NUMERIC_STATUS[act.state],
            "smsCode": [s.code for s in act.sms] or ([act.call.code] if act.call else None),
            "smsText": "".join(f"[{s.text}]" for s in act.sms) or None,
            "activationTime": fmt_dt(act.created_at), "discount": "0.00",
            "repeated": "1" if act.kind == "extra" else "0", "countryCode": str(act.country),
            "countryName": country.eng, "canGetAnotherSms": "1" if act.can_retry else "0",
            "currency": ctx.settings.currency,
            "orderId": act.order_id}    # emulator extension: lets a client recover after ORDER_ALREADY_EXISTS


def get_active_activations(ctx: Ctx) -> Reply:
    acts = [a for a in ctx.engine.activations.values() if a.state in ACTIVE_STATES]
    entries = [_active_entry(ctx, a) for a in acts]
    if ctx.dialect.active_activations_style == "herosms":
        start = max(0, ctx.int_or(0, "start"))
        limit = max(1, ctx.int_or(100, "limit"))
        page = entries[start:start + limit]
        return as_json({"status": "success", "data": page,
                        "activeActivations": {"count": len(entries), "rows": []}})
    if not entries:
        raise ApiError("NO_ACTIVATIONS", envelope="json_error")
    return as_json({"status": "success", "activeActivations": entries})


def get_history(ctx: Ctx) -> Reply:
    now = ctx.engine.now()

    def ts(name: str, default: float) -> float:
        raw = ctx.get(name)
        if raw is None:
            return default
        try:
            return float(int(raw))
        except ValueError:
            raise ApiError("WRONG_DATE") from None

    end = ts("end", now)
    start = ts("start", end - HISTORY_MAX_RANGE)
    if end < start or end - start > HISTORY_MAX_RANGE:
        raise ApiError("WRONG_DATE")
    offset = max(0, ctx.int_or(0, "offset"))
    limit = min(100, max(1, ctx.int_or(50, "limit", "size")))
    acts = sorted((a for a in ctx.engine.activations.values() if start <= a.created_at <= end),
                  key=lambda a: (a.created_at, int(a.id)), reverse=True)
    rows = [{"id": int(a.id), "date": fmt_dt(a.created_at), "phone": a.phone,
             "sms": [s.text for s in a.sms] or None,
             "cost": 0 if a.active else (0 if a.refunded else money_json(a.cost)),
             "status": NUMERIC_STATUS[a.state], "currency": ctx.settings.currency}
            for a in acts[offset:offset + limit]]
    return as_json(rows)


# -- extra / additional ---------------------------------------------------------------------------------------
def get_additional_service(ctx: Ctx) -> Reply:
    engine = ctx.engine
    parent = engine.get_activation(ctx.get("id", "activationId"), missing="WRONG_ACTIVATION_ID")
    service = ctx.get("service")
    cat = engine.catalogue
    if service is None or service not in cat.services or not cat.services[service].forward:
        raise ApiError("WRONG_ADDITIONAL_SERVICE")
    if not parent.forward or parent.state not in (State.CODE_RECEIVED, State.WAIT_RETRY):
        raise ApiError("WRONG_SECURITY")
    if service == parent.service or service in parent.additional_services:
        raise ApiError("REPEAT_ADDITIONAL_SERVICE")
    act = engine.buy(service=service, country=parent.country, operator=parent.operator,
                     price=engine.additional_price(), phone=parent.phone, kind="additional", parent_id=parent.id,
                     take_stock=False)
    parent.additional_services.add(service)
    return plain(f"ADDITIONAL:{act.id}:{act.phone}")


def _extra_parent(ctx: Ctx) -> Activation:
    engine = ctx.engine
    parent = engine.get_activation(ctx.get("activationId", "id"), missing="WRONG_ACTIVATION_ID")
    if parent.state != State.FINISHED or not parent.has_code:
        raise ApiError("RENEW_ACTIVATION_NOT_AVAILABLE")
    return parent


def get_extra_activation(ctx: Ctx) -> Reply:
    engine = ctx.engine
    parent = _extra_parent(ctx)
    if any(a.active and a.phone == parent.phone for a in engine.activations.values()):
        raise ApiError("NEW_ACTIVATION_IMPOSSIBLE")
    act = engine.buy(service=parent.service, country=parent.country, operator=parent.operator,
                     price=engine.extra_price(parent), phone=parent.phone, kind="extra", parent_id=parent.id,
                     take_stock=False)
    return plain(f"ACCESS_NUMBER:{act.id}:{act.phone}")


def check_extra_activation(ctx: Ctx) -> Reply:
    parent = _extra_parent(ctx)
    return as_json({"status": "success", "cost": money_json(ctx.engine.extra_price(parent)),
                    "service": parent.service, "phone": int(parent.phone), "country": parent.country})


HANDLERS: dict[str, Handler] = {
    "getNumber": get_number,
    "getNumberV2": get_number_v2,
    "getMultiServiceNumber": get_multi_service_number,
    "setStatus": set_status,
    "getStatus": get_status,
    "getStatusV2": get_status_v2,
    "getFullSms": get_full_sms,
    "getIncomingCallStatus": get_incoming_call_status,
    "parseCall": parse_call,
    "getActiveActivations": get_active_activations,
    "getHistory": get_history,
    "getAdditionalService": get_additional_service,
    "getExtraActivation": get_extra_activation,
    "checkExtraActivation": check_extra_activation,
}
