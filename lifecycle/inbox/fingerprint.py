"""Fingerprints of provider webhooks: a repeat delivery of the same SMS maps to the same fingerprint.

docs/handler-api.md, Webhooks: providers deliver one SMS up to eight times; the inbox drops a repeat by this
fingerprint (kept WEBHOOK_DEDUPE_TTL seconds), and the transition's code dedupe catches what gets through.
"""
from __future__ import annotations

import enum
import hashlib
import json
from typing import Any, Iterable, Mapping


class WebhookKind(enum.StrEnum):
    """The two shapes of provider webhook (told apart by shape, docs/handler-api.md, Webhooks)."""

    ACTIVATION = "activation"
    RENT = "rent"


ACTIVATION = WebhookKind.ACTIVATION
RENT = WebhookKind.RENT
KINDS = tuple(WebhookKind)


def _text(value: object) -> str:
    """Normalise one fingerprint component: ids may arrive as numbers or strings, and nulls as missing keys."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


#: ``json.dumps`` with arguments builds an encoder per call; this one gives the same text (fingerprints stored
#: by earlier releases still match) for a third of the cost
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _digest(kind: str, parts: Iterable[object]) -> str:
    """sha1 over a JSON list: unambiguous (no separator collisions) and stable across processes."""
    encoded = _ENCODER.encode([kind, *(_text(p) for p in parts)])
    return hashlib.sha1(encoded.encode("utf-8")).hexdigest()


def activation_fingerprint(payload: Mapping[str, Any]) -> str:
    """Fingerprint of an activation webhook: (activationId, HeroSMS id, code, text, receivedAt).

    A provider's repeat delivery carries the same values, so it maps to the same fingerprint. HeroSMS ``id`` is
    included rather than used alone because its meaning is undocumented (per SMS or per activation): alone, it
    could fold a second SMS of one activation into the first.
    """
    return _digest(
        ACTIVATION,
        (payload.get("activationId"), payload.get("id"), payload.get("code"), payload.get("text"),
         payload.get("receivedAt")),
    )


def rent_fingerprint(payload: Mapping[str, Any]) -> str:
    """Fingerprint of a rent webhook: (rentId, sms.date, sms.text, sms.phoneFrom)."""
    sms = payload.get("sms")
    sms = sms if isinstance(sms, Mapping) else {}
    return _digest(RENT, (payload.get("rentId"), sms.get("date"), sms.get("text"), sms.get("phoneFrom")))


def fingerprint(kind: WebhookKind | str, payload: Mapping[str, Any]) -> str:
    """Fingerprint for either kind."""
    kind = WebhookKind(kind)
    return activation_fingerprint(payload) if kind is WebhookKind.ACTIVATION else rent_fingerprint(payload)
