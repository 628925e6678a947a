"""Token comparison and client-address resolution."""
from __future__ import annotations

import ipaddress

import pytest

from webhook.security import TokenChecker, address_allowed, client_address, forwarded_chain, parse_address


def test_token_checker() -> None:
    checker = TokenChecker("s3cret-token-value")
    assert checker.matches("s3cret-token-value")
    assert not checker.matches("s3cret-token-valuE")
    assert not checker.matches("")
    assert not checker.matches("s3cret-token-value\x00")
    assert not checker.matches("\udcff")  # lone surrogate from a badly decoded path: no crash
    assert "s3cret" not in repr(checker)
    with pytest.raises(ValueError):
        TokenChecker("")


@pytest.mark.parametrize("raw, expected", [
    ("1.2.3.4", "1.2.3.4"), (" 1.2.3.4 ", "1.2.3.4"), ("1.2.3.4:5678", "1.2.3.4"), ("::1", "::1"),
    ("[2001:db8::1]:443", "2001:db8::1"), ("::ffff:1.2.3.4", "1.2.3.4"), ('"1.2.3.4"', "1.2.3.4"),
    ("unknown", None), ("", None), (None, None), ("1.2.3.999", None),
])
def test_parse_address(raw: str | None, expected: str | None) -> None:
    parsed = parse_address(raw)
    assert (str(parsed) if parsed else None) == expected


def test_forwarded_chain_joins_headers() -> None:
    assert forwarded_chain(["a, b", " c ,", ""]) == ["a", "b", "c"]


def test_client_address_counts_from_the_right() -> None:
    xff = ["9.9.9.9, 1.1.1.1", "2.2.2.2"]
    assert str(client_address("10.0.0.1", xff, 0)) == "10.0.0.1"
    assert str(client_address("10.0.0.1", xff, 1)) == "2.2.2.2"
    assert str(client_address("10.0.0.1", xff, 2)) == "1.1.1.1"
    assert str(client_address("10.0.0.1", xff, 3)) == "9.9.9.9"
    assert client_address("10.0.0.1", xff, 4) is None
    assert client_address("10.0.0.1", [], 1) is None


def test_address_allowed() -> None:
    nets = (ipaddress.ip_network("188.42.218.183/32"), ipaddress.ip_network("2001:db8::/32"))
    assert address_allowed(ipaddress.ip_address("188.42.218.183"), nets)
    assert address_allowed(ipaddress.ip_address("2001:db8::5"), nets)
    assert not address_allowed(ipaddress.ip_address("188.42.218.184"), nets)
    assert not address_allowed(None, nets)
    assert address_allowed(None, ())
