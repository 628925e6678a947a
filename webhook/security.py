"""Webhook authentication: a secret token in the URL path, an optional source-address allowlist.

Providers sign nothing (docs/handler-api.md, Webhooks), so the token is the credential: compared in constant time, never
logged. The client address is read through exactly ``TRUSTED_PROXIES`` hops of ``X-Forwarded-For`` counted
from the right: each trusted proxy appends the address it saw, so only the rightmost N values were written by
infrastructure we trust; anything further left came from the client and may be forged.
"""
from __future__ import annotations

import functools
import hmac
import ipaddress
from typing import Iterable, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class TokenChecker:
    """Constant-time comparison of a presented token with the configured one (``hmac.compare_digest`` on bytes).

    compare_digest's time depends only on the length of the presented token, never on how much of it matches.
    """

    __slots__ = ("_expected",)

    def __init__(self, expected: str) -> None:
        if not expected:
            raise ValueError("an empty webhook token would accept anyone")
        self._expected = expected.encode("utf-8")

    def matches(self, presented: str) -> bool:
        return hmac.compare_digest(presented.encode("utf-8", "surrogatepass"), self._expected)

    def __repr__(self) -> str:
        return "TokenChecker(***)"


@functools.lru_cache(maxsize=4096)
def parse_address(value: str | None) -> IPAddress | None:
    """An IP address from a socket peer or a forwarded value (tolerates ``[v6]:port`` and ``v4:port``); else None.

    Cached: every webhook parses its peer (a provider sends from a handful of addresses), and the result is
    immutable; the bound keeps a flood of distinct addresses from growing it."""
    if not value:
        return None
    text = value.strip().strip('"')
    if text.startswith("["):
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def forwarded_chain(headers: Iterable[str]) -> list[str]:
    """All ``X-Forwarded-For`` values, in order, across repeated headers."""
    chain: list[str] = []
    for header in headers:
        chain.extend(part.strip() for part in header.split(",") if part.strip())
    return chain


def client_address(remote_addr: str | None, forwarded_for: Sequence[str], trusted_proxies: int) -> IPAddress | None:
    """The address of the client as seen by the outermost trusted proxy.

    ``trusted_proxies`` = 0: the socket peer. N > 0: the N-th ``X-Forwarded-For`` value from the right. With fewer
    values than N the request did not come through our proxies as configured: None (unknown, so not allowed).
    """
    if trusted_proxies <= 0:
        return parse_address(remote_addr)
    chain = forwarded_chain(forwarded_for)
    if len(chain) < trusted_proxies:
        return None
    return parse_address(chain[-trusted_proxies])


def address_allowed(address: IPAddress | None, allowed: Sequence[IPNetwork]) -> bool:
    """True when no allowlist is configured, or the (known) address is inside one of its networks."""
    if not allowed:
        return True
    if address is None:
        return False
    return any(address.version == net.version and address in net for net in allowed)
