"""Parsing and validation of provider webhook bodies (docs/handler-api.md, Webhooks).

Providers disagree on types (ids and phone numbers as strings or numbers, HeroSMS nulls, ISO or space-separated
dates) and on Content-Type, so the body is parsed as JSON whatever the header says (form-encoded as a fallback),
the kind is told apart by shape, and ids/numbers are normalised to strings. Unknown fields are kept: a provider
adding a field must not make us reject, and so lose, its webhooks.

What cannot be encoded is replaced, not refused: a lone UTF-16 surrogate (``"\\ud83d"``, a truncated emoji) or a
byte that is not UTF-8 becomes U+FFFD, so the SMS is still stored (and its code still read); ``replaced`` tells
the caller to keep the original bytes in the dead letters as well. A body nested deeper than ``MAX_DEPTH`` levels
(arrays and objects, a form's ``sms=<json>`` counted inside its body) is malformed (400), never an error of ours,
on every Python: 3.11's JSON parser gives up near 1,000 levels, 3.13's goes to about 10,000, so the parser's own
limit would make the answer depend on the interpreter.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import parse_qsl

from marshmallow import INCLUDE, Schema, ValidationError, fields

from lifecycle.inbox import ACTIVATION, RENT, activation_fingerprint, rent_fingerprint

MAX_ID_LENGTH = 64
#: the deepest nesting of arrays and objects a webhook may have (real ones have 2 levels: a rent's ``sms`` object)
MAX_DEPTH = 32


class MalformedWebhook(Exception):
    """The body is not a webhook we can store: ``reason`` says why, ``fields`` which field (name -> messages)."""

    def __init__(self, reason: str, fields: Mapping[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fields: dict[str, Any] = dict(fields) if fields else {"_body": [reason]}


@dataclass(frozen=True)
class ParsedWebhook:
    """A validated webhook: its kind, the normalised payload (unknown fields kept) and its dedupe fingerprint.

    ``replaced``: characters that cannot be stored (lone surrogates, bytes that are not UTF-8) were replaced by
    U+FFFD; the original body should be kept in the dead letters too.
    """

    kind: str
    payload: dict[str, Any]
    fingerprint: str = field(default="")
    replaced: bool = False


REPLACEMENT = "\ufffd"
_SURROGATES = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def scrub(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD (what UTF-8, and so Redis, cannot hold)."""
    return _SURROGATES.sub(REPLACEMENT, text)


def has_surrogates(text: str) -> bool:
    return _SURROGATES.search(text) is not None


def scrub_tree(value: Any) -> tuple[Any, bool]:
    """A decoded JSON value with every string (and object key) scrubbed; and whether anything was replaced.

    Iterative, so a body as deep as the JSON parser allows cannot exhaust the stack here.
    """
    changed = False

    def clean(item: Any) -> Any:
        nonlocal changed
        if isinstance(item, str) and has_surrogates(item):
            changed = True
            return scrub(item)
        return item

    root: list[Any] = [value]
    stack: list[tuple[Any, Any]] = [(root, 0)]
    while stack:
        container, key = stack.pop()
        item = container[key]
        if isinstance(item, dict):
            if any(isinstance(k, str) and has_surrogates(k) for k in item):
                item = {clean(k): v for k, v in item.items()}
                container[key] = item
            stack.extend((item, k) for k in item)
        elif isinstance(item, list):
            stack.extend((item, i) for i in range(len(item)))
        else:
            container[key] = clean(item)
    return root[0], changed


class _Field(fields.Field):
    """A field that skips validation when it has no validators (none of ours does).

    marshmallow builds an ``And`` of the field's validators on every deserialize, even of none; on the webhook
    path that is a few thousand instructions per field per webhook for nothing (callgrind, ``bench/ingress.py``).
    """

    def _validate(self, value: Any) -> None:
        if self.validators:
            super()._validate(value)


class Text(_Field, fields.String):
    """A JSON string (or null where allowed)."""


class IdString(_Field):
    """A string or an integer (never a bool or a float), normalised to a non-empty string.

    Activation ids exceed 2^31 and some providers send them as JSON numbers, others as strings.
    """

    default_error_messages = {
        "invalid": "must be a string or an integer",
        "empty": "must not be empty",
        "too_long": f"must be at most {MAX_ID_LENGTH} characters",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise self.make_error("invalid")
        text = value.strip() if isinstance(value, str) else str(value)
        if not text:
            raise self.make_error("empty")
        if len(text) > MAX_ID_LENGTH:
            raise self.make_error("too_long")
        return text


class LooseText(_Field):
    """Text that some providers send as a number (a numeric code, a phone number); normalised to a string."""

    default_error_messages = {"invalid": "must be a string or a number"}

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self.make_error("invalid")
        return value if isinstance(value, str) else str(value)


class ActivationWebhookSchema(Schema):
    """SMS-Activate ``{activationId, service, text, code, country, receivedAt}``."""

    class Meta:
        unknown = INCLUDE

    activationId = IdString()
    service = Text(allow_none=True)
    text = Text(allow_none=True)
    code = LooseText(allow_none=True)
    country = IdString(allow_none=True)
    receivedAt = Text(allow_none=True)


class HeroSmsActivationWebhookSchema(ActivationWebhookSchema):
    """The HeroSMS superset: also ``id``, ``phoneFrom`` and ``event``.

    A schema of its own, used only when one of those fields is there: marshmallow walks every declared field,
    present or not, and each costs about as much as a present one; most webhooks carry none of the three.
    """

    id = IdString(allow_none=True)  # HeroSMS; meaning undocumented
    phoneFrom = LooseText(allow_none=True)  # HeroSMS
    event = Text(allow_none=True)  # HeroSMS: "sms-incoming"


#: the fields only the HeroSMS superset declares
HEROSMS_FIELDS = frozenset(HeroSmsActivationWebhookSchema._declared_fields) - frozenset(
    ActivationWebhookSchema._declared_fields)


class RentSmsSchema(Schema):
    """The ``sms`` object of a rent webhook."""

    class Meta:
        unknown = INCLUDE

    phoneFrom = LooseText(allow_none=True)
    text = Text(allow_none=True)
    date = Text(allow_none=True)


class RentWebhookSchema(Schema):
    """``{rentId, sms: {phoneFrom, text, date}}``; rentId and phoneFrom as strings or numbers."""

    class Meta:
        unknown = INCLUDE

    rentId = IdString(required=True)
    sms = fields.Nested(RentSmsSchema, required=True)


_ACTIVATION = ActivationWebhookSchema()
_HEROSMS_ACTIVATION = HeroSmsActivationWebhookSchema()
_RENT = RentWebhookSchema()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    """``1e400`` would parse to infinity, which JSON cannot represent when we store the payload again."""
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


#: one decoder for every body: ``json.loads`` with hooks builds a new decoder per call, about a third of its cost
#: on a webhook-sized body (callgrind)
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def _nested_deeper_than(limit: int, value: Any, text: str | bytes) -> bool:
    """Whether the decoded ``value`` (from ``text``) nests arrays and objects more than ``limit`` levels deep.

    Iterative; a body with at most ``limit`` opening brackets cannot be that deep, so the common small webhook
    costs two counts of its text and no walk.
    """
    brackets = text.count(b"[") + text.count(b"{") if isinstance(text, bytes) else text.count("[") + text.count("{")
    if brackets <= limit:
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _form_body(text: str) -> dict[str, Any] | None:
    """Form-encoded fallback: ``a=1&b=2``; ``sms[text]=…`` or ``sms=<json>`` become the nested ``sms`` object."""
    pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False)
    if not pairs:
        return None
    body: dict[str, Any] = {}
    sms: dict[str, Any] = {}
    for key, value in pairs:
        if key.startswith("sms[") and key.endswith("]"):
            sms[key[4:-1]] = value
        elif key == "sms" and value.lstrip().startswith("{"):
            try:
                decoded = _DECODER.decode(value)
            except RecursionError as exc:
                raise MalformedWebhook("sms field is nested too deeply") from exc
            except ValueError:
                body[key] = value
            else:
                if _nested_deeper_than(MAX_DEPTH - 1, decoded, value):  # the body object is one level more
                    raise MalformedWebhook("sms field is nested too deeply")
                body[key] = decoded
        else:
            body[key] = value
    if sms:
        existing = body.get("sms")
        body["sms"] = {**(existing if isinstance(existing, dict) else {}), **sms}
    return body


def parse_body(raw: bytes) -> Any:
    """JSON whatever the Content-Type (providers are unreliable there), form-encoded as a fallback.

    Bytes that are not UTF-8 are decoded as U+FFFD (the caller scrubs and flags what was replaced).
    """
    if not raw.strip():
        raise MalformedWebhook("empty body")
    encoding = "utf-8"
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        decoded = raw.decode("utf-8", errors="replace")
    else:
        encoding = json.detect_encoding(raw)
    try:
        # a BOM, UTF-16 or UTF-32 is read as json.loads reads bytes (a bad one is a ValueError: not JSON)
        text = decoded if encoding == "utf-8" else raw.decode(encoding, "surrogatepass")
        decoded_json = _DECODER.decode(text)
    except RecursionError as exc:
        raise MalformedWebhook("body is nested too deeply") from exc
    except ValueError as exc:
        json_error = exc
    else:
        if _nested_deeper_than(MAX_DEPTH, decoded_json, text):
            raise MalformedWebhook("body is nested too deeply")
        return decoded_json
    stripped = decoded.lstrip()
    if "=" in decoded and not stripped.startswith(("{", "[", '"')):
        form = _form_body(decoded)
        if form:
            return form
    raise MalformedWebhook(f"body is not valid JSON: {scrub(str(json_error))[:200]}")


def classify(body: Any) -> str:
    """Tell the kind by shape: ``rentId``/``sms`` means rent, ``activationId``/``id`` means activation."""
    if not isinstance(body, dict):
        raise MalformedWebhook(f"expected a JSON object, got {_json_type(body)}")
    if "rentId" in body or "sms" in body:
        return RENT
    if "activationId" in body or "id" in body:
        return ACTIVATION
    raise MalformedWebhook(
        "unrecognised webhook: expected activationId (activation) or rentId and sms (rent)",
        {"activationId": ["missing"], "rentId": ["missing"]},
    )


def validate(body: Any, *, replaced: bool = False) -> ParsedWebhook:
    """Validate a decoded (and scrubbed) body; raise :class:`MalformedWebhook` naming each bad field."""
    kind = classify(body)
    if kind == RENT:
        schema: Schema = _RENT
    else:
        schema = _ACTIVATION if HEROSMS_FIELDS.isdisjoint(body) else _HEROSMS_ACTIVATION
    try:
        payload = schema.load(body)
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        raise MalformedWebhook(f"invalid {kind} webhook: {_describe(messages)}", messages) from exc
    if kind == ACTIVATION and not payload.get("activationId"):
        # HeroSMS may name the activation only by ``id``: fall back to it, so the drain can look it up (or
        # record it as unknown). Checked here rather than in schema hooks: hooks cost on every webhook.
        if not payload.get("id"):
            messages = {"activationId": ["required (or HeroSMS 'id')"]}
            raise MalformedWebhook(f"invalid activation webhook: {_describe(messages)}", messages)
        payload["activationId"] = payload["id"]
    fp = rent_fingerprint(payload) if kind == RENT else activation_fingerprint(payload)
    return ParsedWebhook(kind=kind, payload=payload, fingerprint=fp, replaced=replaced)


def parse_webhook(raw: bytes) -> ParsedWebhook:
    """Raw request body to a validated webhook (what cannot be encoded replaced, see the module doc)."""
    try:
        body, replaced = parse_body(raw), False
        # only a JSON \u escape (perhaps percent-encoded in a form field) can make a lone surrogate
        if b"%" in raw or _SURROGATE_ESCAPE.search(raw):
            body, replaced = scrub_tree(body)
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            replaced = True
        return validate(body, replaced=replaced)
    except RecursionError as exc:  # a validator or schema walking a deep body
        raise MalformedWebhook("body is nested too deeply") from exc


def _describe(messages: Mapping[str, Any], prefix: str = "") -> str:
    parts: list[str] = []
    for name, value in messages.items():
        path = f"{prefix}{name}"
        if isinstance(value, Mapping):
            parts.append(_describe(value, path + "."))
        elif isinstance(value, list):
            parts.append(f"{path}: {'; '.join(str(v) for v in value)}")
        else:
            parts.append(f"{path}: {value}")
    return ", ".join(parts)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__
