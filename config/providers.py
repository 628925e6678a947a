"""The providers otpflow buys from: ``PROVIDERS=hero,grizzly`` and the ``PROVIDER_<NAME>_*`` variables of each.

For every name ``N`` in ``PROVIDERS`` (upper case in variable names, ``-`` as ``_``): ``PROVIDER_N_DIALECT`` (a
profile; default: the name itself when it names one), ``PROVIDER_N_URL`` (default: the profile's),
``PROVIDER_N_API_KEY`` (required by the worker), ``PROVIDER_N_WEBHOOK_TOKEN`` (required by the web, at least 16
characters, different for every provider: it tells whose webhook arrived), and ``PROVIDER_N_<FIELD>`` for any
overridable profile field (``provider.dialects.OVERRIDABLE``, e.g. ``PROVIDER_HERO_CANCEL_STATUS=-1``).

Without ``PROVIDERS`` the single-provider variables keep working unchanged (``PROVIDER``, ``PROVIDER_URL``,
``PROVIDER_API_KEY``, ``WEBHOOK_TOKEN``): one provider, named after its profile.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Mapping

from lifecycle.money import SpendLimits
from provider.dialects import OVERRIDABLE, Dialect, UnknownDialect, apply_overrides, get_dialect

#: a provider's name: in PROVIDERS, in Redis keys, in events and metrics
NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
#: the variables of one provider, by suffix: (required by which roles, doc)
TEMPLATES: dict[str, tuple[tuple[str, ...], str]] = {
    "DIALECT": ((), "the provider's profile (default: its name, when that names a profile)"),
    "URL": ((), "override of the profile's handler_api URL"),
    "API_KEY": (("worker", "cli"), "this provider's API key (required); never logged"),
    "WEBHOOK_TOKEN": (("web", "worker"), "secret path segment of this provider's webhooks (>= 16 characters, "
                                         "different for every provider)"),
    "SPEND_LIMIT_HOURLY": ((), "at most this much spent at this provider in one calendar UTC hour (its currency)"),
    "SPEND_LIMIT_DAILY": ((), "at most this much spent at this provider in one calendar UTC day (its currency)"),
    "BALANCE_LOW": ((), "balance.low when this provider's balance falls below this (its currency), balance.ok when "
                        "it recovers (default: BALANCE_LOW)"),
    "MAX_ACTIVE": ((), "at most this many numbers open (bought, not yet finished or cancelled) at this provider at "
                       "once (default: MAX_ACTIVE)"),
}


class ProviderConfigError(ValueError):
    """Some provider variables are bad; ``problems`` names each one."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class ProviderConfig:
    """One provider account: its name, its dialect (profile plus overrides), its key and its webhook token."""

    name: str
    dialect: Dialect
    api_key: str = field(default="", repr=False)
    webhook_token: str = field(default="", repr=False)
    #: the variable prefix this provider's settings came from (for messages): PROVIDER_HERO_ or PROVIDER_
    prefix: str = "PROVIDER_"
    #: spend limits in the provider's currency (PROVIDER_<N>_SPEND_LIMIT_*, or SPEND_LIMIT_* for the single one)
    limits: SpendLimits = SpendLimits()
    #: the low-balance threshold of this provider (PROVIDER_<N>_BALANCE_LOW); None: BALANCE_LOW applies
    balance_low: Decimal | None = None
    #: at most this many numbers open at this provider at once (PROVIDER_<N>_MAX_ACTIVE); None: MAX_ACTIVE applies
    max_active: int | None = None

    @property
    def base_url(self) -> str:
        return self.dialect.base_url

    def var(self, suffix: str) -> str:
        """The variable that sets ``suffix`` for this provider (its legacy name in single-provider mode)."""
        if self.prefix == "PROVIDER_":
            return {"API_KEY": "PROVIDER_API_KEY", "WEBHOOK_TOKEN": "WEBHOOK_TOKEN", "DIALECT": "PROVIDER",
                    "URL": "PROVIDER_URL"}.get(suffix, f"PROVIDER_{suffix}")
        return f"{self.prefix}{suffix}"


def env_name(name: str) -> str:
    """``hero-sms`` -> ``HERO_SMS`` (the part of a variable name)."""
    return name.upper().replace("-", "_")


def parse_names(raw: str) -> tuple[str, ...]:
    """``PROVIDERS``: comma-separated names in the default order of preference."""
    names = tuple(part.strip().lower() for part in raw.split(",") if part.strip())
    bad = [n for n in names if not NAME.fullmatch(n)]
    if bad:
        raise ValueError(f"provider names are lower-case letters, digits and '-' (got {', '.join(bad)})")
    if len(set(names)) != len(names):
        raise ValueError("a provider is named twice")
    return names


def parse_count(raw: str) -> int:
    """A count of at least 1 (``MAX_ACTIVE``)."""
    try:
        value = int(raw.strip())
    except ValueError:
        raise ValueError(f"expected a whole number of at least 1, got {raw!r}") from None
    if value < 1:
        raise ValueError(f"expected a whole number of at least 1, got {raw!r}")
    return value


def parse_amount(raw: str) -> Decimal:
    """A money amount: a decimal >= 0 with at most 6 places (the ledger keeps millionths)."""
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:
        raise ValueError(f"expected an amount such as 12.50, got {raw!r}") from None
    exponent = value.as_tuple().exponent
    if not value.is_finite() or value < 0 or value > Decimal("1e9") or -exponent > 6:  # type: ignore[operator]
        raise ValueError(f"expected an amount from 0 to 1000000000 with at most 6 decimals, got {raw!r}")
    return value


def load(names: tuple[str, ...], env: Mapping[str, str], *, legacy_dialect: str, legacy_url: str | None,
         legacy_key: str, legacy_token: str, legacy_limits: SpendLimits = SpendLimits()) -> tuple[ProviderConfig, ...]:
    """Every configured provider, validated as far as the environment alone allows (dialects, overrides).

    Raises :class:`ProviderConfigError` naming every bad variable; required values are checked per role by
    :func:`require`."""
    problems: list[str] = []
    if not names:
        try:
            dialect = get_dialect(legacy_dialect)
        except UnknownDialect as exc:
            raise ProviderConfigError([f"PROVIDER: {exc}"]) from None
        if legacy_url:
            dialect = dialect.with_overrides(base_url=legacy_url)
        return (ProviderConfig(dialect.name, dialect, legacy_key, legacy_token, limits=legacy_limits),)
    out = []
    for name in names:
        prefix = f"PROVIDER_{env_name(name)}_"
        raw = {k[len(prefix):]: v.strip() for k, v in env.items() if k.startswith(prefix) and v.strip()}
        try:
            dialect = get_dialect(raw.get("DIALECT") or name)
        except UnknownDialect as exc:
            problems.append(f"{prefix}DIALECT: {exc}" if raw.get("DIALECT") else
                            f"{prefix}DIALECT: required ({name!r} is not a profile name: {exc})")
            continue
        overrides = {suffix.lower(): value for suffix, value in raw.items()
                     if suffix.lower() in OVERRIDABLE and suffix not in TEMPLATES}
        if raw.get("URL"):
            overrides["base_url"] = raw["URL"]
        unknown = sorted(s for s in raw if s not in TEMPLATES and s.lower() not in OVERRIDABLE)
        problems += [f"{prefix}{s}: not a provider setting (known: {', '.join(_known())})" for s in unknown]
        try:
            dialect = apply_overrides(dialect, overrides)
        except ValueError as exc:
            problems.append(f"{prefix}: {exc}")
            continue
        limits = []
        for window in ("HOURLY", "DAILY"):
            value = raw.get(f"SPEND_LIMIT_{window}")
            try:
                limits.append(parse_amount(value) if value else None)
            except ValueError as exc:
                problems.append(f"{prefix}SPEND_LIMIT_{window}: {exc}")
                limits.append(None)
        balance_low = None
        if raw.get("BALANCE_LOW"):
            try:
                balance_low = parse_amount(raw["BALANCE_LOW"])
            except ValueError as exc:
                problems.append(f"{prefix}BALANCE_LOW: {exc}")
        max_active = None
        if raw.get("MAX_ACTIVE"):
            try:
                max_active = parse_count(raw["MAX_ACTIVE"])
            except ValueError as exc:
                problems.append(f"{prefix}MAX_ACTIVE: {exc}")
        out.append(ProviderConfig(name, dialect, raw.get("API_KEY", ""), raw.get("WEBHOOK_TOKEN", ""), prefix,
                                  limits=SpendLimits(hourly=limits[0], daily=limits[1]), balance_low=balance_low,
                                  max_active=max_active))
    if problems:
        raise ProviderConfigError(problems)
    return tuple(out)


def require(providers: tuple[ProviderConfig, ...], role: str) -> list[str]:
    """What ``role`` cannot run without, for every provider: keys for the worker, distinct tokens for the web."""
    problems: list[str] = []
    if role in ("worker", "cli"):
        problems += [f"{p.var('API_KEY')}: required by the {role} ({p.name}'s API key)" for p in providers
                     if not p.api_key]
    if role in ("web", "worker"):
        seen: dict[str, str] = {}
        for p in providers:
            var = p.var("WEBHOOK_TOKEN")
            if role == "web" and not p.webhook_token:
                problems.append(f"{var}: required (a long random string; generate one with: python -c "
                                "'import secrets; print(secrets.token_urlsafe(32))')")
            elif p.webhook_token and len(p.webhook_token) < 16:
                problems.append(f"{var}: too short ({len(p.webhook_token)} characters); use at least 16")
            elif p.webhook_token in seen:
                problems.append(f"{var}: the same as {seen[p.webhook_token]}; every provider needs its own token")
            if p.webhook_token:
                seen.setdefault(p.webhook_token, var)
    return problems


def _known() -> list[str]:
    return [*TEMPLATES, *(f.upper() for f in sorted(OVERRIDABLE))]
