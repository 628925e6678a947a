"""Lenient value coercions for provider JSON: numbers-as-strings, ids as strings, odd dates (docs/handler-api.md,
Data types).

Every function returns None for a value it cannot read instead of raising: one odd field must not lose an
answer that is otherwise usable (a bought number with an unreadable ``activationTime`` is still a bought number).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from .errors import lenient_decimal

__all__ = ["to_decimal", "to_int", "to_str", "to_id", "to_phone", "to_bool", "to_datetime", "to_str_list"]

to_decimal = lenient_decimal

_QUOTES = " \t\r\n'\""


def to_str(value: Any) -> str | None:
    """A stripped string for str/int/Decimal; None for null, booleans, containers and blanks."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        return text or None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        if value.is_finite() and value == value.to_integral_value():
            return str(int(value))
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return None


def to_id(value: Any) -> str | None:
    """An activation/rent id as a string (ids exceed 2^31; some clones use 16 digits). Quotes are stripped."""
    if isinstance(value, str):
        text = value.strip(_QUOTES)
        return text or None
    return to_str(value)


def to_phone(value: Any) -> str | None:
    """A phone number as a string (JSON may give a number; ``false`` means "none yet"; masks are kept)."""
    text = to_id(value)
    if text is None:
        return None
    return text[1:] if text.startswith("+") else text


def to_int(value: Any) -> int | None:
    """An int from 4, "4", "4.0", Decimal("4"); None otherwise (booleans are not ints here)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    number = lenient_decimal(value)
    if number is None or number != number.to_integral_value():
        return None
    return int(number)


_TRUE = frozenset({"1", "true", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "no", "n", "off", ""})


def to_bool(value: Any) -> bool | None:
    """True/False from booleans, 1/0 and their string forms ("canGetAnotherSms":"1"); None when unclear."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, Decimal)):
        return value != 0
    if isinstance(value, str):
        text = value.strip().strip(_QUOTES).lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    return None


_DATE_RE = re.compile(
    r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T]+(\d{1,2})[:\-](\d{1,2})(?:[:\-](\d{1,2})(?:\.(\d{1,9}))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?\s*$"
)


def to_datetime(value: Any) -> datetime | None:
    """Parse ``YYYY-MM-DD HH:MM:SS`` (naive: the provider's zone is unstated), ISO with ``T``, fractions and
    ``Z``/offsets (aware), and Unix timestamps. ``0000-00-00 00:00:00`` and garbage give None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        try:
            seconds = float(value)
            if 0 < seconds < 32503680000:  # before year 3000
                return datetime.fromtimestamp(seconds, tz=timezone.utc)
        except (ValueError, OverflowError, OSError):
            return None
        return None
    if not isinstance(value, str) or len(value) > 64:
        return None
    match = _DATE_RE.match(value)
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        micro = int((fraction or "0")[:6].ljust(6, "0"))
        result = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
                          micro)
        if zone:
            if zone == "Z":
                result = result.replace(tzinfo=timezone.utc)
            else:
                sign = 1 if zone[0] == "+" else -1
                digits = zone[1:].replace(":", "")
                offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
                result = result.replace(tzinfo=timezone(sign * offset))
        return result
    except (ValueError, OverflowError):
        return None


def to_str_list(value: Any) -> tuple[str, ...]:
    """SMS codes/texts come as a list, a single string, or null: always a tuple of non-empty strings."""
    if value is None or isinstance(value, bool):
        return ()
    if isinstance(value, (list, tuple)):
        out = []
        for item in value:
            text = to_str(item)
            if text is not None:
                out.append(text)
        return tuple(out)
    text = to_str(value)
    return (text,) if text is not None else ()
