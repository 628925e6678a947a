"""Lenient coercions (docs/handler-api.md, Data types): odd values give None, never an exception."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from provider.coerce import to_bool, to_datetime, to_decimal, to_id, to_int, to_phone, to_str_list


@pytest.mark.parametrize("value,expected", [
    ("2022-06-01 17:30:57", datetime(2022, 6, 1, 17, 30, 57)),
    ("2020-01-31T12:01:52", datetime(2020, 1, 31, 12, 1, 52)),
    ("2026-09-08T10:15:30.000000Z", datetime(2026, 9, 8, 10, 15, 30, tzinfo=timezone.utc)),
    ("2026-09-08T10:15:30+03:00", datetime(2026, 9, 8, 10, 15, 30, tzinfo=timezone(timedelta(hours=3)))),
    ("2022-6-1 7:30:57", datetime(2022, 6, 1, 7, 30, 57)),
    ("2022-06-01", datetime(2022, 6, 1)),
    ("0000-00-00 00:00:00", None), ("2022-13-01 00:00:00", None), ("yesterday", None), ("", None),
    (None, None), (True, None), ([], None),
    (1704067200, datetime(2024, 1, 1, tzinfo=timezone.utc)),
])
def test_to_datetime(value, expected):
    assert to_datetime(value) == expected


@pytest.mark.parametrize("value,expected", [
    (12.5, Decimal("12.5")), ("0.105", Decimal("0.105")), (" '17.154' ", Decimal("17.154")), (100, Decimal(100)),
    ("1,5", Decimal("1.5")), ("abc", None), ("NaN", None), ("Infinity", None), (True, None), (None, None),
    ({}, None), ("9" * 100, None),
])
def test_to_decimal(value, expected):
    assert to_decimal(value) == expected


def test_ids_phones_ints_bools_lists():
    assert to_id(3936040355) == "3936040355" and to_id(" '42' ") == "42" and to_id(False) is None
    assert to_id(Decimal("635468024")) == "635468024"
    assert to_phone(777777777) == "777777777" and to_phone(False) is None and to_phone("+7999") == "7999"
    assert to_int("4") == 4 and to_int("4.0") == 4 and to_int("4.5") is None and to_int(True) is None
    assert to_bool("1") is True and to_bool(0) is False and to_bool("maybe") is None
    assert to_str_list(["a", None, 1]) == ("a", "1") and to_str_list(None) == () and to_str_list("x") == ("x",)
