"""Pure parsing: (action, body, HTTP status) → typed result or typed :class:`~provider.errors.ProviderError`.

No I/O here, so every rule is unit-testable with recorded bodies. The pipeline:

1. :func:`read_answer` classifies the body by *sniffing* it (first non-blank char ``{``/``[`` → JSON; never the
   Content-Type: docs/handler-api.md, Transport and answers): ``plain`` (``TOKEN[:arg]``, split once, spaces and
   quotes stripped), ``json``, ``error`` (the JSON envelopes ``{"status":"error","error"|"message":…}`` and HeroSMS
   ``{"title","details","info"}``), ``empty`` or ``malformed``.
2. The action's parser maps *states sent as errors* to results first (getRentStatus ``STATUS_WAIT_CODE``,
   parseCall ``NO_CALL``, getActiveActivations ``NO_ACTIVATIONS`` → ``[]`` …), then :func:`raise_for_error`
   turns known codes into typed errors (HTTP 429 → RateLimited, 5xx with an unknown body → ServerError),
   then the success shape is read leniently.
3. :func:`parse_response` wraps it all: any unforeseen shape becomes :class:`UnexpectedAnswer` keeping the body;
   never a KeyError/ValueError/JSONDecodeError (enforced by hypothesis tests).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable

from . import models as m
from .coerce import to_bool, to_datetime, to_decimal, to_id, to_int, to_phone, to_str, to_str_list
from .errors import (
    STATE_CODES, ProviderError, RateLimited, ServerError, UnexpectedAnswer, canonical_code, error_for_code,
)

__all__ = ["Answer", "read_answer", "raise_for_error", "parse_response", "PARSERS", "ACTIONS"]

_STRIP = " \t\r\n'\"\ufeff"
_MAX_TOKEN = 96


@dataclass(slots=True)
class Answer:
    """A classified body. ``kind`` ∈ plain | json | error | empty | malformed."""

    kind: str
    text: str
    http_status: int = 200
    token: str | None = None
    argument: str | None = None
    value: Any = None
    info: dict[str, Any] = field(default_factory=dict)
    retry_after: float | None = None


# ------------------------------------------------------------------------------------------- stage 1: classify
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_LINE_COMMENT = re.compile(r"(?m)\s//[^\"\n]*$|^\s*//.*$")


def _loads(text: str) -> Any:
    """json.loads with Decimal floats (exact prices), then one lenient retry: trailing commas and ``//`` comments
    are the malformations of the provider's own documented examples and cost nothing to forgive."""
    try:
        return json.loads(text, parse_float=Decimal)
    except (ValueError, RecursionError):
        repaired = _TRAILING_COMMA.sub(r"\1", _LINE_COMMENT.sub("", text))
        if repaired == text:
            raise
        return json.loads(repaired, parse_float=Decimal)


def _split_code(raw: Any) -> tuple[str | None, str | None]:
    """``"WRONG_MAX_PRICE:0.5"`` → (``WRONG_MAX_PRICE``, ``0.5``); codes can contain ``:`` so split once."""
    text = to_str(raw)
    if text is None:
        return None, None
    token, sep, rest = text.partition(":")
    token = token.strip(_STRIP)
    argument = rest.strip(_STRIP) if sep else None
    return (token or None), (argument or None)


def _error_from_json(value: Any, http_status: int) -> tuple[str | None, str | None, dict[str, Any]] | None:
    """Recognise the JSON error envelopes (docs/handler-api.md, Errors: 3, 4, 5); None for a non-error JSON value."""
    if not isinstance(value, dict):
        return None
    status = value.get("status")
    status_text = status.strip().lower() if isinstance(status, str) else None
    if status_text == "success":
        return None
    raw_info = value.get("info")
    info: dict[str, Any] = dict(raw_info) if isinstance(raw_info, dict) else (
        {} if raw_info is None else {"value": raw_info})
    if status_text == "error":
        for key in ("error", "message", "title", "msg", "code"):
            if value.get(key) is not None:
                code, argument = _split_code(value.get(key))
                if argument is None and key == "title":
                    argument = to_str(value.get("details"))
                return code, argument, info
        return None, None, info
    if "title" in value and ("details" in value or "info" in value or http_status >= 400):
        code, argument = _split_code(value.get("title"))
        return code, (argument or to_str(value.get("details"))), info
    if isinstance(value.get("error"), str) and value["error"].strip():
        code, argument = _split_code(value["error"])
        return code, argument, info
    return None


def read_answer(body: str | bytes | None, http_status: int = 200, *, retry_after: float | None = None) -> Answer:
    """Classify a body. Never raises: classification is data, policy comes later."""
    if body is None:
        text = ""
    elif isinstance(body, (bytes, bytearray)):
        text = bytes(body).decode("utf-8", errors="replace")
    else:
        text = body
    stripped = text.strip(" \t\r\n\ufeff")
    if not stripped:
        return Answer("empty", text, http_status, retry_after=retry_after)
    first = stripped[0]
    if first in "{[":
        try:
            value = _loads(stripped)
        except (ValueError, RecursionError):
            return Answer("malformed", text, http_status, retry_after=retry_after)
        envelope = _error_from_json(value, http_status)
        if envelope is not None:
            code, argument, info = envelope
            return Answer("error", text, http_status, token=code, argument=argument, value=value, info=info,
                          retry_after=retry_after)
        return Answer("json", text, http_status, value=value, retry_after=retry_after)
    token, sep, rest = stripped.partition(":")
    token = token.strip(_STRIP)
    argument = rest.strip(_STRIP) if sep else None
    return Answer("plain", text, http_status, token=token, argument=argument or None, retry_after=retry_after)


# ------------------------------------------------------------------------------------------- stage 2: errors
@dataclass(slots=True)
class Context:
    """Per-call knobs the pure parser needs from the dialect."""

    action: str
    bad_action_means_bad_key: bool = False
    accept_204: bool = True


def _unexpected(answer: Answer, ctx: Context, why: str) -> UnexpectedAnswer:
    return UnexpectedAnswer(
        f"unexpected answer to {ctx.action} (http={answer.http_status}): {why}",
        code=answer.token if answer.kind in ("plain", "error") and answer.token and len(answer.token) <= _MAX_TOKEN
        else None,
        argument=answer.argument, http_status=answer.http_status, body=answer.text, action=ctx.action,
        info=answer.info,
    )


def raise_for_error(answer: Answer, ctx: Context) -> None:
    """Raise the typed error an answer stands for; return if it may be a success.

    Plain tokens that are *states* (``STATUS_CANCEL``, ``NO_CALL`` …) are left to the action parser; in a JSON
    error envelope they are errors unless the action parser mapped them before calling this.
    """
    status = answer.http_status
    if answer.kind in ("plain", "error") and answer.token and len(answer.token) <= _MAX_TOKEN:
        if not (answer.kind == "plain" and canonical_code(answer.token) in STATE_CODES):
            error = error_for_code(
                answer.token, argument=answer.argument, http_status=status, body=answer.text,
                action=ctx.action, info=answer.info, bad_action_means_bad_key=ctx.bad_action_means_bad_key,
                retry_after=answer.retry_after,
            )
            if error is not None:
                raise error
    if status == 429:
        raise RateLimited(retry_after=answer.retry_after, http_status=status, body=answer.text,
                          action=ctx.action, info=answer.info)
    if status >= 500:
        raise ServerError(f"HTTP {status} from provider ({ctx.action})", code=answer.token if answer.kind ==
                          "error" else None, http_status=status, body=answer.text, action=ctx.action,
                          info=answer.info)
    if answer.kind == "error":
        raise _unexpected(answer, ctx, f"unknown error code {answer.token!r}")
    if status >= 300:
        raise _unexpected(answer, ctx, f"HTTP {status}")
    if answer.kind == "malformed":
        raise _unexpected(answer, ctx, "malformed JSON")


def _expect_json(answer: Answer, ctx: Context, kind: type | tuple[type, ...] = (dict, list)) -> Any:
    raise_for_error(answer, ctx)
    if answer.kind != "json" or not isinstance(answer.value, kind):
        raise _unexpected(answer, ctx, "expected a JSON " + (
            kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)))
    return answer.value


def _expect_plain(answer: Answer, ctx: Context, *tokens: str) -> Answer:
    raise_for_error(answer, ctx)
    if answer.kind != "plain" or answer.token not in tokens:
        raise _unexpected(answer, ctx, f"expected {'/'.join(tokens)}")
    return answer


def _state_code(answer: Answer) -> str | None:
    """The canonical code of a plain or error-envelope answer (for actions that turn states into results).

    Only for 2xx and 4xx answers (HeroSMS sends its errors with 4xx); a 3xx or 5xx is never a state."""
    if not (answer.http_status < 300 or 400 <= answer.http_status < 500):
        return None
    if answer.kind in ("plain", "error") and answer.token and len(answer.token) <= _MAX_TOKEN:
        return canonical_code(answer.token)
    return None


def _rows(value: Any) -> list[Any]:
    """A list from a JSON list, or from an object keyed by ordinals (``{"0":{…},"1":{…}}``), in key order."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        def order(key: str) -> tuple[int, int | str]:
            number = to_int(key)
            return (0, number) if number is not None else (1, key)
        return [value[k] for k in sorted(value, key=order)]
    return []


# ------------------------------------------------------------------------------------------- stage 3: actions
def _parse_balance(answer: Answer, ctx: Context) -> m.Balance:
    _expect_plain(answer, ctx, "ACCESS_BALANCE")
    amount = to_decimal(answer.argument)
    if amount is None:
        raise _unexpected(answer, ctx, "ACCESS_BALANCE without a number")
    return m.Balance(amount=amount, raw=answer.text.strip())


def _activation_from_plain(answer: Answer, ctx: Context, tokens: tuple[str, ...]) -> m.Activation:
    _expect_plain(answer, ctx, *tokens)
    activation_id, _, phone = (answer.argument or "").partition(":")
    activation_id = activation_id.strip(_STRIP)
    phone_text = to_phone(phone.strip(_STRIP))
    if not activation_id or not phone_text:
        raise _unexpected(answer, ctx, f"{answer.token} without id and phone")
    return m.Activation(activation_id=activation_id, phone=phone_text, raw=answer.text.strip())


def _activation_from_json(row: Any, answer: Answer, ctx: Context, service: str | None = None) -> m.Activation:
    if not isinstance(row, dict):
        raise _unexpected(answer, ctx, "activation is not an object")
    activation_id = to_id(row.get("activationId", row.get("activation", row.get("id"))))
    phone = to_phone(row.get("phoneNumber", row.get("phone", row.get("number"))))
    if not activation_id or not phone:
        raise _unexpected(answer, ctx, "activation without id or phone")
    return m.Activation(
        activation_id=activation_id,
        phone=phone,
        cost=to_decimal(row.get("activationCost", row.get("cost"))),
        currency=to_int(row.get("currency")),
        country=to_id(row.get("countryCode", row.get("country"))),
        can_get_another_sms=to_bool(row.get("canGetAnotherSms")),
        activation_time=to_datetime(row.get("activationTime")),
        end_time=to_datetime(row.get("activationEndTime", row.get("activationEnd", row.get("expiredAt")))),
        cancel_time=to_datetime(row.get("activationCancel")),
        operator=to_str(row.get("activationOperator", row.get("operator"))),
        service=to_str(row.get("service", service)),
        country_phone_code=to_id(row.get("countryPhoneCode")),
        raw=row,
    )


def _parse_number(answer: Answer, ctx: Context) -> m.Activation:
    if answer.kind == "json" and isinstance(answer.value, dict):  # a clone answering getNumber like V2
        raise_for_error(answer, ctx)
        return _activation_from_json(answer.value, answer, ctx)
    return _activation_from_plain(answer, ctx, ("ACCESS_NUMBER",))


def _parse_number_v2(answer: Answer, ctx: Context) -> m.Activation:
    if answer.kind == "plain" and answer.token == "ACCESS_NUMBER":  # a clone answering V2 like V1
        return _activation_from_plain(answer, ctx, ("ACCESS_NUMBER",))
    return _activation_from_json(_expect_json(answer, ctx, dict), answer, ctx)


def _parse_additional(answer: Answer, ctx: Context) -> m.Activation:
    return _activation_from_plain(answer, ctx, ("ADDITIONAL", "ACCESS_NUMBER"))


def _parse_extra(answer: Answer, ctx: Context) -> m.Activation:
    return _activation_from_plain(answer, ctx, ("ACCESS_NUMBER", "ADDITIONAL"))


def _parse_multi(answer: Answer, ctx: Context) -> list[m.Activation]:
    rows = _rows(_expect_json(answer, ctx))
    if not rows:
        raise _unexpected(answer, ctx, "no activations in a purchase answer")
    return [_activation_from_json(row, answer, ctx) for row in rows]


def _parse_set_status(answer: Answer, ctx: Context) -> str:
    if answer.kind == "empty" and answer.http_status == 204 and ctx.accept_204:
        return ""  # HeroSMS answers a successful setStatus with 204 and no body
    raise_for_error(answer, ctx)
    if answer.kind == "plain" and answer.token and answer.token.startswith("ACCESS_"):
        return answer.token
    if answer.kind == "json" and isinstance(answer.value, dict) and str(answer.value.get("status")).lower() in (
            "success", "ok", "true"):
        return "success"
    raise _unexpected(answer, ctx, "expected ACCESS_*")


_STATUS_TOKENS = {
    "STATUS_WAIT_CODE": m.ActivationState.WAIT_CODE,
    "STATUS_WAIT_RETRY": m.ActivationState.WAIT_RETRY,
    "STATUS_WAIT_RESEND": m.ActivationState.WAIT_RESEND,
    "STATUS_CANCEL": m.ActivationState.CANCELLED,
    "STATUS_OK": m.ActivationState.CODE_RECEIVED,
}


def _plain_status(answer: Answer) -> tuple[m.ActivationState, str | None] | None:
    code = _state_code(answer)
    state = _STATUS_TOKENS.get(code) if code else None
    if state is None:
        return None
    if state is m.ActivationState.CODE_RECEIVED and not answer.argument:
        return None
    return state, answer.argument


def _parse_status(answer: Answer, ctx: Context) -> m.StatusResult:
    found = _plain_status(answer)
    if found is not None:
        return m.StatusResult(state=found[0], code=found[1], raw=answer.text.strip())
    if answer.kind == "json" and isinstance(answer.value, dict):  # a clone answering getStatus like V2
        v2 = _parse_status_v2(answer, ctx)
        return m.StatusResult(state=v2.state, code=v2.code, raw=answer.text.strip())
    raise_for_error(answer, ctx)
    raise _unexpected(answer, ctx, "expected STATUS_*")


def _sms_info(value: Any) -> m.SmsInfo | None:
    if isinstance(value, list):
        value = next((v for v in reversed(value) if isinstance(v, dict)), None)
    if not isinstance(value, dict):
        return None
    code = to_str(value.get("code"))
    text = to_str(value.get("text"))
    when = to_datetime(value.get("dateTime", value.get("date")))
    if code is None and text is None and when is None:
        return None
    return m.SmsInfo(code=code, text=text, date_time=when)


def _call_info(value: Any) -> m.CallInfo | None:
    if isinstance(value, list):
        value = next((v for v in reversed(value) if isinstance(v, dict)), None)
    if not isinstance(value, dict):
        return None
    info = m.CallInfo(
        from_number=to_phone(value.get("from")), text=to_str(value.get("text")), code=to_str(value.get("code")),
        date_time=to_datetime(value.get("dateTime", value.get("date"))), url=to_str(value.get("url")),
        parsing_count=to_int(value.get("parsingCount")),
    )
    return None if info == m.CallInfo() else info


def _parse_status_v2(answer: Answer, ctx: Context) -> m.StatusV2:
    found = _plain_status(answer)
    if found is not None:
        state, code = found
        sms = m.SmsInfo(code=code) if code and state is m.ActivationState.CODE_RECEIVED else None
        return m.StatusV2(state=state, sms=sms, raw=answer.text.strip())
    value = _expect_json(answer, ctx, dict)
    if not any(k in value for k in ("verificationType", "sms", "call")):
        raise _unexpected(answer, ctx, "no verificationType/sms/call")
    sms = _sms_info(value.get("sms"))
    call = _call_info(value.get("call"))
    has_code = bool((sms and sms.code) or (call and call.code))
    return m.StatusV2(
        state=m.ActivationState.CODE_RECEIVED if has_code else m.ActivationState.WAIT_CODE,
        verification_type=to_int(value.get("verificationType")), sms=sms, call=call, raw=value,
    )


def _parse_active_activations(answer: Answer, ctx: Context) -> list[m.ActiveActivation]:
    if _state_code(answer) == "NO_ACTIVATIONS":
        return []
    value = _expect_json(answer, ctx)
    rows: Any = value
    if isinstance(value, dict):
        data = value.get("data")
        if isinstance(data, list):  # HeroSMS: read "data" first
            rows = data
        else:
            rows = value.get("activeActivations", [])
            if isinstance(rows, dict):
                rows = rows.get("rows", rows.get("data", rows)) if ("rows" in rows or "data" in rows) else rows
    result = []
    for row in _rows(rows):
        if not isinstance(row, dict):
            continue
        activation_id = to_id(row.get("activationId", row.get("id")))
        if not activation_id:
            continue
        codes = to_str_list(row.get("smsCode", row.get("code")))
        result.append(m.ActiveActivation(
            activation_id=activation_id,
            phone=to_phone(row.get("phoneNumber", row.get("phone"))),
            service=to_str(row.get("serviceCode", row.get("service"))),
            status=to_str(row.get("activationStatus", row.get("status"))),
            codes=codes,
            text=to_str(row.get("smsText", row.get("text"))),
            cost=to_decimal(row.get("activationCost", row.get("cost"))),
            currency=to_int(row.get("currency")),
            country=to_id(row.get("countryCode", row.get("country"))),
            country_name=to_str(row.get("countryName")),
            activation_time=to_datetime(row.get("activationTime", row.get("createdAt"))),
            can_get_another_sms=to_bool(row.get("canGetAnotherSms")),
            order_id=to_id(row.get("orderId", row.get("order_id"))),
            raw=row,
        ))
    return result


def _parse_history(answer: Answer, ctx: Context) -> list[m.HistoryEntry]:
    value = _expect_json(answer, ctx)
    if isinstance(value, dict) and isinstance(value.get("data"), (list, dict)):
        value = value["data"]
    result = []
    for row in _rows(value):
        if not isinstance(row, dict):
            continue
        activation_id = to_id(row.get("id", row.get("activationId")))
        if not activation_id:
            continue
        sms = row.get("sms")
        if isinstance(sms, str) and sms.strip().startswith("["):  # the doc's JSON-in-a-string variant
            try:
                sms = json.loads(sms)
            except (ValueError, RecursionError):
                pass
        result.append(m.HistoryEntry(
            activation_id=activation_id, date=to_datetime(row.get("date")), phone=to_phone(row.get("phone")),
            sms=to_str_list(sms), cost=to_decimal(row.get("cost")), status=to_str(row.get("status")),
            currency=to_int(row.get("currency")), raw=row,
        ))
    return result


def _parse_numbers_status(answer: Answer, ctx: Context) -> m.NumbersStatus:
    value = _expect_json(answer, ctx, dict)
    counts: dict[str, int] = {}
    forward: dict[str, int] = {}
    for key, raw in value.items():
        count = to_int(raw)
        if count is None or not isinstance(key, str):
            continue
        if key.endswith("_1"):
            forward[key[:-2]] = count
        elif key.endswith("_0"):
            counts[key[:-2]] = count
        else:
            counts[key] = count
    return m.NumbersStatus(counts=counts, forward_counts=forward, raw=value)


def _free_price_map(value: Any) -> dict[Decimal, int] | None:
    if not isinstance(value, dict):
        return None
    out = {}
    for price, count in value.items():
        p, c = to_decimal(price), to_int(count)
        if p is not None and c is not None:
            out[p] = c
    return out


def _parse_top_countries(answer: Answer, ctx: Context) -> list[m.TopCountry]:
    value = _expect_json(answer, ctx)
    items = value.items() if isinstance(value, dict) else enumerate(value)
    result = []
    for rank, row in items:
        if not isinstance(row, dict):
            continue
        country = to_id(row.get("country"))
        if country is None:
            continue
        result.append(m.TopCountry(
            country=country, count=to_int(row.get("count")), price=to_decimal(row.get("price")),
            retail_price=to_decimal(row.get("retail_price")),
            free_price_map=_free_price_map(row.get("freePriceMap")), rank=str(rank),
        ))
    return result


def _parse_operators(answer: Answer, ctx: Context) -> m.Operators:
    if _state_code(answer) == "OPERATORS_NOT_FOUND":
        return m.Operators(by_country={}, raw=answer.value)
    value = _expect_json(answer, ctx, dict)
    raw_ops = value.get("countryOperators", value)
    by_country: dict[str, tuple[str, ...]] = {}
    if isinstance(raw_ops, dict):
        for country, names in raw_ops.items():
            if isinstance(names, (list, tuple, str)):
                by_country[str(country)] = to_str_list(names)
            elif isinstance(names, dict):
                by_country[str(country)] = to_str_list(list(names.values()))
    elif isinstance(raw_ops, list):
        by_country[""] = to_str_list(raw_ops)
    else:
        raise _unexpected(answer, ctx, "no countryOperators")
    return m.Operators(by_country=by_country, raw=value)


def _parse_list_top_countries(answer: Answer, ctx: Context) -> list[m.CountryShare]:
    value = _expect_json(answer, ctx)
    result = []
    for row in _rows(value):
        if isinstance(row, dict) and to_id(row.get("country")) is not None:
            result.append(m.CountryShare(country=to_id(row.get("country")) or "",
                                         share=to_decimal(row.get("share")), rate=to_decimal(row.get("rate"))))
    return result


def _parse_incoming_call(answer: Answer, ctx: Context) -> m.IncomingCallStatus:
    value = _expect_json(answer, ctx, dict)
    if "status" not in value:
        raise _unexpected(answer, ctx, "no status")
    return m.IncomingCallStatus(status=to_int(value.get("status")), phone=to_phone(value.get("phone")), raw=value)


def _price(country: str, service: str, row: Any) -> m.Price | None:
    if not isinstance(row, dict) or not any(k in row for k in ("cost", "price", "count")):
        return None
    return m.Price(
        country=country, service=service, cost=to_decimal(row.get("cost", row.get("price"))),
        count=to_int(row.get("count")), physical_count=to_int(row.get("physicalCount")),
        free_price_map=_free_price_map(row.get("freePriceMap")),
    )


def _parse_prices(answer: Answer, ctx: Context) -> m.PriceTable:
    value = _expect_json(answer, ctx)
    table: dict[str, dict[str, m.Price]] = {}
    if isinstance(value, dict):
        for country, services in value.items():
            if not isinstance(services, dict):
                continue
            for service, row in services.items():
                price = _price(str(country), str(service), row)
                if price is not None:
                    table.setdefault(str(country), {})[str(service)] = price
    return m.PriceTable(by_country=table, raw=value)


def _parse_prices_verification(answer: Answer, ctx: Context) -> m.PriceTable:
    value = _expect_json(answer, ctx)
    table: dict[str, dict[str, m.Price]] = {}
    if isinstance(value, dict):
        for service, countries in value.items():
            if not isinstance(countries, dict):
                continue
            for country, row in countries.items():
                price = _price(str(country), str(service), row)
                if price is not None:
                    table.setdefault(str(country), {})[str(service)] = price
    return m.PriceTable(by_country=table, raw=value)


def _parse_countries(answer: Answer, ctx: Context) -> list[m.Country]:
    value = _expect_json(answer, ctx)
    items = value.items() if isinstance(value, dict) else ((None, row) for row in value)
    result = []
    for key, row in items:
        if not isinstance(row, dict):
            continue
        country_id = to_id(row.get("id")) or to_id(key)
        if country_id is None:
            continue
        result.append(m.Country(
            id=country_id, eng=to_str(row.get("eng", row.get("name"))), rus=to_str(row.get("rus")),
            chn=to_str(row.get("chn")), visible=to_bool(row.get("visible")), retry=to_bool(row.get("retry")),
            rent=to_bool(row.get("rent")), multi_service=to_bool(row.get("multiService")), raw=row,
        ))
    return result


def _parse_services_list(answer: Answer, ctx: Context) -> list[m.Service]:
    value = _expect_json(answer, ctx)
    rows = value.get("services", value) if isinstance(value, dict) else value
    result = []
    if isinstance(rows, dict) and not all(isinstance(v, dict) for v in rows.values()):
        for code, name in rows.items():
            if to_str(code) and code != "status":
                result.append(m.Service(code=str(code), name=to_str(name)))
        return result
    for row in _rows(rows):
        if isinstance(row, dict) and to_str(row.get("code")):
            result.append(m.Service(code=to_str(row.get("code")) or "", name=to_str(row.get("name"))))
    return result


def _parse_check_extra(answer: Answer, ctx: Context) -> m.ExtraActivationOffer:
    value = _expect_json(answer, ctx, dict)
    if "cost" not in value:
        raise _unexpected(answer, ctx, "no cost")
    return m.ExtraActivationOffer(
        cost=to_decimal(value.get("cost")), service=to_str(value.get("service")),
        phone=to_phone(value.get("phone")), country=to_id(value.get("country")), raw=value,
    )


def _parse_parse_call(answer: Answer, ctx: Context) -> m.ParseCallResult:
    code = _state_code(answer)
    if code == "STATUS_CANCEL":
        return m.ParseCallResult(state=m.ParseCallState.CANCELLED, raw=answer.text.strip())
    if code == "NO_CALL":
        return m.ParseCallResult(state=m.ParseCallState.NO_CALL, raw=answer.text.strip())
    raise_for_error(answer, ctx)
    if answer.kind == "plain" and answer.token == "OK":
        return m.ParseCallResult(state=m.ParseCallState.OK, raw=answer.text.strip())
    value = _expect_json(answer, ctx, dict)
    if str(value.get("result", value.get("status", ""))).strip().upper() not in ("OK", "SUCCESS"):
        raise _unexpected(answer, ctx, "expected result OK")
    return m.ParseCallResult(state=m.ParseCallState.OK, raw=value)


def _expect_success(answer: Answer, ctx: Context) -> dict[str, Any]:
    value = _expect_json(answer, ctx, dict)
    status = value.get("status")
    if status is not None and str(status).strip().lower() != "success":
        raise _unexpected(answer, ctx, f"status {status!r}")
    return value


def _parse_rent_catalogue(answer: Answer, ctx: Context) -> m.RentCatalogue:
    value = _expect_json(answer, ctx, dict)
    if "services" not in value:
        raise _unexpected(answer, ctx, "no services")
    services: dict[str, m.RentServicePrice] = {}
    raw_services = value.get("services")
    if isinstance(raw_services, dict):
        for name, row in raw_services.items():
            if isinstance(row, dict):
                services[str(name)] = m.RentServicePrice(cost=to_decimal(row.get("cost")),
                                                         quantity=to_int(row.get("quant", row.get("count"))))

    def values(v: Any) -> tuple[str, ...]:
        return to_str_list(list(v.values()) if isinstance(v, dict) else v)

    return m.RentCatalogue(countries=values(value.get("countries")), operators=values(value.get("operators")),
                           services=services, currency=to_int(value.get("currency")), raw=value)


def _parse_rent(answer: Answer, ctx: Context) -> m.Rent:
    value = _expect_success(answer, ctx)
    phone = value.get("phone")
    if not isinstance(phone, dict):
        raise _unexpected(answer, ctx, "no phone object")
    rent_id, number = to_id(phone.get("id")), to_phone(phone.get("number", phone.get("phone")))
    if not rent_id or not number:
        raise _unexpected(answer, ctx, "rent without id or number")
    return m.Rent(rent_id=rent_id, phone=number, end_date=to_datetime(phone.get("endDate")), raw=value)


_RENT_STATES = {
    "STATUS_WAIT_CODE": m.RentState.WAIT_CODE,
    "STATUS_FINISH": m.RentState.FINISHED,
    "STATUS_CANCEL": m.RentState.CANCELLED,
    "STATUS_REVOKE": m.RentState.REVOKED,
}


def _parse_rent_status(answer: Answer, ctx: Context) -> m.RentStatus:
    code = _state_code(answer)
    if code in _RENT_STATES:
        return m.RentStatus(state=_RENT_STATES[code], raw=answer.value if answer.kind == "error" else answer.text)
    value = _expect_success(answer, ctx)
    messages = []
    for row in _rows(value.get("values")):
        if isinstance(row, dict):
            messages.append(m.RentSms(
                phone_from=to_str(row.get("phoneFrom")), text=to_str(row.get("text")),
                service=to_str(row.get("service")), date=to_datetime(row.get("date")),
            ))
    quantity = to_int(value.get("quantity"))
    state = m.RentState.ACTIVE if messages or (quantity or 0) > 0 else m.RentState.WAIT_CODE
    return m.RentStatus(state=state, messages=tuple(messages),
                        quantity=quantity if quantity is not None else len(messages), raw=value)


def _parse_set_rent_status(answer: Answer, ctx: Context) -> bool:
    if answer.kind == "empty" and answer.http_status in (200, 204):
        return True
    _expect_success(answer, ctx)
    return True


def _parse_rent_list(answer: Answer, ctx: Context) -> list[m.RentListItem]:
    if _state_code(answer) == "NO_NUMBERS":  # "no rented numbers" is an empty list, not a failure
        return []
    value = _expect_success(answer, ctx)
    result = []
    for row in _rows(value.get("values")):
        if isinstance(row, dict) and to_id(row.get("id")):
            result.append(m.RentListItem(rent_id=to_id(row.get("id")) or "", phone=to_phone(row.get("phone"))))
    return result


def _parse_rent_price(answer: Answer, ctx: Context) -> m.RentPrice:
    value = _expect_success(answer, ctx)
    if "price" not in value:
        raise _unexpected(answer, ctx, "no price")
    history = []
    for row in _rows(value.get("history")):
        if isinstance(row, dict):
            history.append(m.RentPriceHistory(create_date=to_datetime(row.get("createDate")),
                                              price=to_decimal(row.get("price")), hours=to_int(row.get("hours"))))
    return m.RentPrice(price=to_decimal(value.get("price")), currency=to_int(value.get("currency")),
                       hours=to_int(value.get("hours")), history=tuple(history), raw=value)


def _parse_partner(answer: Answer, ctx: Context) -> m.PartnerProduct:
    value = _expect_success(answer, ctx)
    key = to_str(value.get("key"))
    if not key:
        raise _unexpected(answer, ctx, "no key")
    return m.PartnerProduct(key=key, manual=to_str(value.get("manual")), raw=value)


def parse_generic(answer: Answer, ctx: Context) -> Any:
    """Any action: known errors raise; otherwise the stripped text, the JSON value, or "" for an empty 2xx."""
    raise_for_error(answer, ctx)
    if answer.kind == "json":
        return answer.value
    if answer.kind == "empty":
        return ""
    return answer.text.strip(" \t\r\n\ufeff")


PARSERS: dict[str, Callable[[Answer, Context], Any]] = {
    "getNumbersStatus": _parse_numbers_status,
    "getTopCountriesByService": _parse_top_countries,
    "getTopCountriesByServiceRank": _parse_top_countries,
    "getBalance": _parse_balance,
    "getBalanceAndCashBack": _parse_balance,
    "getOperators": _parse_operators,
    "getActiveActivations": _parse_active_activations,
    "getNumber": _parse_number,
    "getNumberV2": _parse_number_v2,
    "getMultiServiceNumber": _parse_multi,
    "setStatus": _parse_set_status,
    "getStatus": _parse_status,
    "getStatusV2": _parse_status_v2,
    "getHistory": _parse_history,
    "getListOfTopCountriesByService": _parse_list_top_countries,
    "getIncomingCallStatus": _parse_incoming_call,
    "getPrices": _parse_prices,
    "getPricesExtended": _parse_prices,
    "getPricesVerification": _parse_prices_verification,
    "getCountries": _parse_countries,
    "getServicesList": _parse_services_list,
    "getAdditionalService": _parse_additional,
    "getExtraActivation": _parse_extra,
    "checkExtraActivation": _parse_check_extra,
    "parseCall": _parse_parse_call,
    "getRentServicesAndCountries": _parse_rent_catalogue,
    "getRentNumber": _parse_rent,
    "getRentStatus": _parse_rent_status,
    "setRentStatus": _parse_set_rent_status,
    "getRentList": _parse_rent_list,
    "continueRentNumber": _parse_rent,
    "getContinueRentPriceNumber": _parse_rent_price,
    "continueRentInfo": _parse_rent_price,
    "buyPartnerProduct": _parse_partner,
}
ACTIONS = tuple(PARSERS)

# Bugs in a parser must not escape as these; they become UnexpectedAnswer with the body attached.
_PARSE_BUGS = (KeyError, IndexError, TypeError, ValueError, AttributeError, ArithmeticError, RecursionError)


def parse_response(
    action: str,
    body: str | bytes | None,
    http_status: int = 200,
    *,
    retry_after: float | None = None,
    bad_action_means_bad_key: bool = False,
    accept_204: bool = True,
    generic: bool = False,
) -> Any:
    """Parse one answer to ``action``: a typed result, or raise a ProviderError subclass (nothing else).

    ``generic=True`` (used by ``ProviderClient.call``) skips the typed parser and returns text/JSON.
    """
    ctx = Context(action=action, bad_action_means_bad_key=bad_action_means_bad_key, accept_204=accept_204)
    answer = read_answer(body, http_status, retry_after=retry_after)
    parser = parse_generic if generic else PARSERS.get(action, parse_generic)
    try:
        return parser(answer, ctx)
    except ProviderError:
        raise
    except _PARSE_BUGS as exc:
        raise _unexpected(answer, ctx, f"{type(exc).__name__} while reading it") from None

