"""One typed settings object, built from the environment and validated at start-up.

Every process (web, worker, beat, CLI) reads its configuration here and nowhere else, so a
missing or malformed variable stops start-up with a message that names it, instead of
surfacing later as a crash deep inside a task.
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Callable, Iterable, Mapping, TypeVar

T = TypeVar("T")

ROLES = ("web", "worker", "beat", "cli")


class ConfigError(Exception):
    """Raised when one or more settings are missing or invalid; the message names each one."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n  - " + "\n  - ".join(problems))


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected true/false, got {raw!r}")


def _parse_positive_float(raw: str) -> float:
    value = float(raw)
    if value <= 0:
        raise ValueError(f"must be > 0, got {raw!r}")
    return value


def _parse_non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError(f"must be >= 0, got {raw!r}")
    return value


def _parse_positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError(f"must be > 0, got {raw!r}")
    return value


def _parse_non_negative_float(raw: str) -> float:
    value = float(raw)
    if not value >= 0:  # also rejects nan
        raise ValueError(f"must be >= 0, got {raw!r}")
    return value


def _parse_networks(raw: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    items = [part.strip() for part in raw.split(",") if part.strip()]
    return tuple(ipaddress.ip_network(item, strict=False) for item in items)


def _parse_url(raw: str) -> str:
    value = raw.strip()
    if "://" not in value:
        raise ValueError(f"expected a URL with a scheme, got {value!r}")
    return value.rstrip("/")


def _parse_redis_url(raw: str) -> str:
    value = raw.strip()
    if not value.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("expected a redis://, rediss:// or unix:// URL")
    return value


def _parse_cert_reqs(raw: str) -> str:
    value = raw.strip().lower()
    if value not in {"none", "optional", "required"}:
        raise ValueError(f"expected none, optional or required, got {raw!r}")
    return value


def _parse_optional_decimal(raw: str) -> Decimal | None:
    return Decimal(raw) if raw.strip() else None


@dataclass(frozen=True)
class Settings:
    """Validated configuration. Build it with :meth:`from_env`; never construct it from scattered ``os.environ`` reads."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_ssl_cert_reqs: str = "none"
    port: int = 8000
    provider: str = "sms-activate"
    provider_url: str | None = None
    provider_api_key: str = field(default="", repr=False)
    provider_connect_timeout: float = 3.05
    provider_read_timeout: float = 15.0
    webhook_token: str = field(default="", repr=False)
    api_token: str = field(default="", repr=False)
    public_url: str | None = None
    events_stream: str = "otpflow:events"
    events_maxlen: int = 100_000
    activation_timeout: float = 1200.0
    poll_after: float = 30.0
    poll_interval: float = 15.0
    early_cancel_seconds: float = 120.0
    sweep_interval: float = 5.0
    sweep_batch: int = 500
    auto_finish: bool = True
    finish_timeout: float = 1200.0
    order_max_attempts: int = 3
    order_retry_delay: float = 30.0
    downstream_task: str | None = None
    downstream_queue: str | None = None
    webhook_allowed_ips: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    trusted_proxies: int = 0
    webhook_max_bytes: int = 65_536
    dead_letter_maxlen: int = 10_000
    webhook_dedupe_ttl: int = 3 * 3600
    key_prefix: str = "otpflow"
    broker_visibility_timeout: int = 300
    worker_soft_shutdown_timeout: float = 20.0
    log_level: str = "INFO"
    log_format: str = "text"
    metrics_flush_interval: float = 5.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Read every setting from ``env`` (default: ``os.environ``); collect all problems before failing."""
        source = os.environ if env is None else env
        values: dict[str, object] = {}
        problems: list[str] = []
        for env_name, (attr, parser) in ENVIRONMENT.items():
            raw = source.get(env_name)
            if raw is None or (raw.strip() == "" and attr not in _EMPTY_ALLOWED):
                continue
            try:
                values[attr] = parser(raw)
            except (ValueError, ArithmeticError) as exc:
                problems.append(f"{env_name}: {exc}")
        if problems:
            raise ConfigError(problems)
        return cls(**values)  # type: ignore[arg-type]

    def require(self, role: str) -> "Settings":
        """Check what ``role`` (web, worker, beat, cli) cannot run without; raise ConfigError naming each gap."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        problems: list[str] = []
        if role == "web":
            problems += _require_secret("WEBHOOK_TOKEN", self.webhook_token)
            problems += _require_secret("API_TOKEN", self.api_token)
        if role == "worker" and not self.provider_api_key:
            problems.append("PROVIDER_API_KEY: required by the worker (the provider's API key)")
        if self.activation_timeout <= self.early_cancel_seconds:
            problems.append("ACTIVATION_TIMEOUT: must be longer than EARLY_CANCEL_SECONDS")
        if self.worker_soft_shutdown_timeout >= 30:
            problems.append("WORKER_SOFT_SHUTDOWN_TIMEOUT: must be under 30 s (Heroku SIGKILLs 30 s after SIGTERM)")
        if self.downstream_queue and not self.downstream_task:
            problems.append("DOWNSTREAM_QUEUE: set DOWNSTREAM_TASK too (the task name to send events to)")
        if problems:
            raise ConfigError(problems)
        return self

    def key(self, *parts: str) -> str:
        """Build a Redis key under the configured prefix, so several deployments can share one Redis."""
        return ":".join((self.key_prefix, *parts))

    def public_dict(self) -> dict[str, object]:
        """Settings safe to print: secrets masked."""
        secret = {"provider_api_key", "webhook_token", "api_token"}
        out: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = ("***" if value else "") if f.name in secret else value
        return out


def _require_secret(name: str, value: str) -> list[str]:
    if not value:
        return [f"{name}: required (a long random string; generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')"]
    if len(value) < 16:
        return [f"{name}: too short ({len(value)} characters); use at least 16 random characters"]
    return []


def _ident(raw: str) -> str:
    return raw.strip()


def _optional(raw: str) -> str | None:
    return raw.strip() or None


def _log_level(raw: str) -> str:
    value = raw.strip().upper()
    if value not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ValueError(f"expected DEBUG, INFO, WARNING, ERROR or CRITICAL, got {raw!r}")
    return value


def _log_format(raw: str) -> str:
    value = raw.strip().lower()
    if value not in {"text", "json"}:
        raise ValueError(f"expected text or json, got {raw!r}")
    return value


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 < value < 65536:
        raise ValueError(f"expected a TCP port 1-65535, got {raw!r}")
    return value


_EMPTY_ALLOWED: set[str] = {"webhook_allowed_ips", "downstream_task", "downstream_queue", "public_url", "provider_url"}

ENVIRONMENT: dict[str, tuple[str, Callable[[str], object]]] = {
    "REDIS_URL": ("redis_url", _parse_redis_url),
    "REDIS_SSL_CERT_REQS": ("redis_ssl_cert_reqs", _parse_cert_reqs),
    "PORT": ("port", _port),
    "PROVIDER": ("provider", _ident),
    "PROVIDER_URL": ("provider_url", lambda raw: _parse_url(raw) if raw.strip() else None),
    "PROVIDER_API_KEY": ("provider_api_key", _ident),
    "PROVIDER_CONNECT_TIMEOUT": ("provider_connect_timeout", _parse_positive_float),
    "PROVIDER_READ_TIMEOUT": ("provider_read_timeout", _parse_positive_float),
    "WEBHOOK_TOKEN": ("webhook_token", _ident),
    "API_TOKEN": ("api_token", _ident),
    "PUBLIC_URL": ("public_url", lambda raw: _parse_url(raw) if raw.strip() else None),
    "EVENTS_STREAM": ("events_stream", _ident),
    "EVENTS_MAXLEN": ("events_maxlen", _parse_positive_int),
    "ACTIVATION_TIMEOUT": ("activation_timeout", _parse_positive_float),
    "POLL_AFTER": ("poll_after", _parse_positive_float),
    "POLL_INTERVAL": ("poll_interval", _parse_positive_float),
    "EARLY_CANCEL_SECONDS": ("early_cancel_seconds", _parse_positive_float),
    "SWEEP_INTERVAL": ("sweep_interval", _parse_positive_float),
    "SWEEP_BATCH": ("sweep_batch", _parse_positive_int),
    "AUTO_FINISH": ("auto_finish", _parse_bool),
    "FINISH_TIMEOUT": ("finish_timeout", _parse_positive_float),
    "ORDER_MAX_ATTEMPTS": ("order_max_attempts", _parse_positive_int),
    "ORDER_RETRY_DELAY": ("order_retry_delay", _parse_positive_float),
    "DOWNSTREAM_TASK": ("downstream_task", _optional),
    "DOWNSTREAM_QUEUE": ("downstream_queue", _optional),
    "WEBHOOK_ALLOWED_IPS": ("webhook_allowed_ips", _parse_networks),
    "TRUSTED_PROXIES": ("trusted_proxies", _parse_non_negative_int),
    "WEBHOOK_MAX_BYTES": ("webhook_max_bytes", _parse_positive_int),
    "DEAD_LETTER_MAXLEN": ("dead_letter_maxlen", _parse_positive_int),
    "WEBHOOK_DEDUPE_TTL": ("webhook_dedupe_ttl", _parse_positive_int),
    "KEY_PREFIX": ("key_prefix", _ident),
    "BROKER_VISIBILITY_TIMEOUT": ("broker_visibility_timeout", _parse_positive_int),
    "WORKER_SOFT_SHUTDOWN_TIMEOUT": ("worker_soft_shutdown_timeout", _parse_positive_float),
    "LOG_LEVEL": ("log_level", _log_level),
    "LOG_FORMAT": ("log_format", _log_format),
    "METRICS_FLUSH_INTERVAL": ("metrics_flush_interval", _parse_non_negative_float),
}


def describe_environment() -> Iterable[str]:
    """The environment variable names this module reads (for the README table and `otpflow config`)."""
    return ENVIRONMENT.keys()
