"""Checks of amounts and text at the entry points (the order and rent APIs, the ``otpflow order`` command).

``max_price`` once had no bound: ``1e999999`` was stored, a million-digit ``maxPrice`` went to the provider, and
``1e9999999`` put a worker at 553 MB. Prices are small decimals in the account's currency, so an amount must be
finite, at least 0, at most :data:`MAX_PRICE`, with at most :data:`MAX_PLACES` decimal places. Text fields must be
text Redis can store: no lone UTF-16 surrogates, no control characters.
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

MAX_PRICE = Decimal("100000")
MAX_PLACES = 4
#: longer input is refused before it is even parsed as a number
MAX_AMOUNT_TEXT = 32


class InvalidAmount(ValueError):
    """An amount out of range, with too many decimal places, or not a number."""


def parse_amount(value: object) -> Decimal:
    """A price as a Decimal within the bounds above; :class:`InvalidAmount` naming the problem otherwise."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        raise InvalidAmount("must be a decimal number")
    text = str(value).strip()
    if len(text) > MAX_AMOUNT_TEXT:
        raise InvalidAmount(f"must be at most {MAX_AMOUNT_TEXT} characters")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise InvalidAmount("must be a decimal number") from None
    return check_amount(amount)


def check_amount(amount: Decimal) -> Decimal:
    """``amount`` if it is finite, within [0, MAX_PRICE] and has at most MAX_PLACES decimal places."""
    if not amount.is_finite():
        raise InvalidAmount("must be a finite number")
    if amount < 0 or amount > MAX_PRICE:
        raise InvalidAmount(f"must be between 0 and {MAX_PRICE}")
    exponent = amount.as_tuple().exponent
    places = Decimal(1).scaleb(-MAX_PLACES)
    if isinstance(exponent, int) and exponent < -MAX_PLACES and amount != amount.quantize(places):
        raise InvalidAmount(f"must have at most {MAX_PLACES} decimal places")
    return amount


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as given (a lone surrogate, a control character), or None."""
    for ch in value:
        code = ord(ch)
        if 0xD800 <= code <= 0xDFFF:
            return "must not contain lone UTF-16 surrogates"
        if code < 0x20 or code == 0x7F:
            return "must not contain control characters"
    return None
