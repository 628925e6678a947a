"""One typed settings object, built from the environment and validated at start-up.

Every process (web, worker, beat, CLI) reads its configuration here and nowhere else, so a
missing or malformed variable stops start-up with a message that names it, instead of
surfacing later as a crash deep inside a task. Each setting is declared once, as a field of
``Settings`` whose metadata names its variable, parser, roles and meaning; ``from_env`` reads
them, and ``declarations()`` lists them for the README table and ``otpflow config``.
"""
from __future__ import annotations

import ipaddress
from decimal import Decimal
import os
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Mapping

from lifecycle.money import SpendLimits
from lifecycle.routing import Routing

from .providers import ProviderConfig, ProviderConfigError, parse_amount, parse_count, parse_names
from .providers import load as load_providers
from .providers import require as require_providers

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


#: URL schemes kombu can carry the Celery messages over: Redis, or AMQP 0-9-1 (RabbitMQ, CloudAMQP)
BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps", "pyamqp")


def _parse_broker_url(raw: str) -> str:
    """A Celery broker URL; the message names only the scheme, never the URL (it may hold a password)."""
    value = raw.strip()
    scheme, sep, rest = value.partition("://")
    if not sep or scheme.lower() not in BROKER_SCHEMES:
        shown = f"scheme {scheme.lower()!r}" if sep else "no scheme"
        raise ValueError(f"expected a {', '.join(s + '://' for s in BROKER_SCHEMES)} URL, got {shown}")
    if not rest.rpartition("@")[2].split("/", 1)[0]:
        raise ValueError(f"expected a host after {scheme}://")
    return value


def _parse_cert_reqs(raw: str) -> str:
    value = raw.strip().lower()
    if value not in {"none", "optional", "required"}:
        raise ValueError(f"expected none, optional or required, got {raw!r}")
    return value


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


def _parse_routing(raw: str) -> Routing:
    try:
        return Routing(raw.strip().lower())
    except ValueError:
        raise ValueError(f"expected {' or '.join(r.value for r in Routing)}, got {raw!r}") from None


def _parse_service_timeouts(raw: str) -> tuple[tuple[str, float], ...]:
    """``ya:2400,ig:3600``: seconds to wait for a code, per service code."""
    out: dict[str, float] = {}
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        service, sep, seconds = item.partition(":")
        if not sep or not service.strip():
            raise ValueError(f"expected service:seconds pairs such as ya:2400,ig:3600, got {item!r}")
        if service.strip() in out:
            raise ValueError(f"service {service.strip()!r} is named twice")
        out[service.strip()] = _parse_positive_float(seconds)
    return tuple(out.items())


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 < value < 65536:
        raise ValueError(f"expected a TCP port 1-65535, got {raw!r}")
    return value


_WEB: tuple[str, ...] = ("web",)
_WORKER: tuple[str, ...] = ("worker",)
_BEAT: tuple[str, ...] = ("beat",)
_SETTING = "otpflow.setting"


@dataclass(frozen=True)
class Setting:
    """How one setting is read from the environment and documented; carried by its field's ``metadata``."""

    env: str
    parse: Callable[[str], Any]
    roles: tuple[str, ...]
    doc: str
    secret: bool = False
    #: an empty value means something (e.g. "off") instead of "unset, use the default"
    blank_is_value: bool = False
    #: the default in words, where the value itself says nothing to a reader (``None`` -> "the profile's")
    shown_default: str | None = None


def setting(env: str, default: Any, *, parse: Callable[[str], Any], roles: tuple[str, ...], doc: str,
            secret: bool = False, blank_is_value: bool = False, shown_default: str | None = None) -> Any:
    """A ``Settings`` field with its declaration: the environment variable, parser, roles and one line of doc."""
    unknown = set(roles) - set(ROLES)
    if unknown or not roles:
        raise ValueError(f"{env}: roles must be among {ROLES}, got {roles!r}")
    declared = Setting(env=env, parse=parse, roles=roles, doc=doc, secret=secret, blank_is_value=blank_is_value,
                       shown_default=shown_default)
    return field(default=default, repr=not secret, metadata={_SETTING: declared})


@dataclass(frozen=True)
class Declaration:
    """One setting as declared: its ``Settings`` attribute, default and :class:`Setting`."""

    attr: str
    default: object
    setting: Setting

    @property
    def env(self) -> str:
        return self.setting.env

    @property
    def default_text(self) -> str:
        """The default as the README writes it: a literal in backticks, a phrase, or "—" for none."""
        if self.setting.shown_default is not None:
            return self.setting.shown_default
        value = self.default
        if value is None or value == "" or value == ():
            return "—"
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, float) and value.is_integer():
            text = str(int(value))
        else:
            text = str(value)
        return f"`{text}`"


@dataclass(frozen=True)
class Settings:
    """Validated configuration. Build it with :meth:`from_env`; never construct it from scattered ``os.environ`` reads.

    Each field declares its environment variable (see :func:`setting`); :func:`declarations` lists them.
    """

    redis_url: str = setting(
        "REDIS_URL", "redis://127.0.0.1:6379/0", parse=_parse_redis_url, roles=ROLES,
        doc="Redis for state, deadlines, inbox and events, and the broker unless CELERY_BROKER_URL (rediss:// for TLS)")
    redis_ssl_cert_reqs: str = setting(
        "REDIS_SSL_CERT_REQS", "none", parse=_parse_cert_reqs, roles=ROLES,
        doc="certificate check for rediss://: none, optional or required")
    celery_broker_url: str = setting(
        "CELERY_BROKER_URL", "", parse=_parse_broker_url, roles=ROLES,
        doc="the Celery messages' broker when not REDIS_URL: amqp://user:pass@host/vhost (RabbitMQ, CloudAMQP), "
            "amqps://, or redis(s)://; state, deadlines, inbox and events stay in REDIS_URL")
    port: int = setting(
        "PORT", 8000, parse=_port, roles=("web", "cli"), doc="web port (the platform sets it)")
    provider: str = setting(
        "PROVIDER", "sms-activate", parse=_ident, roles=("worker", "cli"),
        doc="dialect profile: sms-activate, herosms, grizzly, smshub, vaksms, generic")
    provider_url: str | None = setting(
        "PROVIDER_URL", None, parse=_parse_url, roles=("worker", "cli"), shown_default="the profile's",
        doc="override of the handler_api URL (a mirror or the sandbox)")
    provider_api_key: str = setting(
        "PROVIDER_API_KEY", "", parse=_ident, roles=("worker", "cli"), secret=True,
        doc="the provider's API key (required by the worker); never logged")
    provider_connect_timeout: float = setting(
        "PROVIDER_CONNECT_TIMEOUT", 3.05, parse=_parse_positive_float, roles=("worker", "cli"),
        doc="seconds to connect to the provider")
    provider_read_timeout: float = setting(
        "PROVIDER_READ_TIMEOUT", 15.0, parse=_parse_positive_float, roles=("worker", "cli"),
        doc="seconds to wait for the provider's answer")
    webhook_token: str = setting(
        "WEBHOOK_TOKEN", "", parse=_ident, roles=("web", "worker"), secret=True,
        doc="secret path segment of POST /webhooks/<token> (required by the web, >= 16 characters)")
    api_token: str = setting(
        "API_TOKEN", "", parse=_ident, roles=("web", "cli"), secret=True,
        doc="bearer token of the order and rent APIs (required by the web, >= 16 characters)")
    public_url: str | None = setting(
        "PUBLIC_URL", None, parse=_parse_url, roles=_WORKER,
        doc="this app's external base URL; rents get PUBLIC_URL/webhooks/<token> as their webhook")
    events_stream: str = setting(
        "EVENTS_STREAM", "otpflow:events", parse=_ident, roles=("worker", "cli"),
        doc="the downstream event stream")
    events_maxlen: int = setting(
        "EVENTS_MAXLEN", 20_000, parse=_parse_positive_int, roles=_WORKER,
        doc="approximate length the event stream is trimmed to (about 360 B of Redis each: the default keeps ~7 MB, "
            "room for the smallest 25 MB plan; raise it with the plan, so slow consumers can fall further behind)")
    activation_timeout: float = setting(
        "ACTIVATION_TIMEOUT", 1200.0, parse=_parse_positive_float, roles=_WORKER,
        doc="seconds to wait for a code before cancelling")
    poll_after: float = setting(
        "POLL_AFTER", 30.0, parse=_parse_positive_float, roles=_WORKER,
        doc="seconds without a webhook before reconciling with the provider")
    poll_interval: float = setting(
        "POLL_INTERVAL", 15.0, parse=_parse_positive_float, roles=_WORKER, doc="seconds between polls")
    early_cancel_seconds: float = setting(
        "EARLY_CANCEL_SECONDS", 120.0, parse=_parse_positive_float, roles=_WORKER,
        doc="the provider's no-cancel window after a purchase")
    cancel_margin: float = setting(
        "CANCEL_MARGIN", 60.0, parse=_parse_non_negative_float, roles=_WORKER,
        doc="seconds before the provider's own free-cancel time or end of an activation (where it states them) "
            "that otpflow stops waiting and cancels")
    service_timeouts: tuple[tuple[str, float], ...] = setting(
        "SERVICE_TIMEOUTS", (), parse=_parse_service_timeouts, roles=_WORKER,
        shown_default="none (`ACTIVATION_TIMEOUT` for every service)",
        doc="seconds to wait for a code per service, e.g. ya:2400,ig:3600 (capped by the provider's own times)")
    sweep_interval: float = setting(
        "SWEEP_INTERVAL", 5.0, parse=_parse_positive_float, roles=_BEAT, doc="beat period of the deadline sweeper")
    sweep_batch: int = setting(
        "SWEEP_BATCH", 500, parse=_parse_positive_int, roles=_WORKER, doc="due deadline entries claimed per batch")
    auto_finish: bool = setting(
        "AUTO_FINISH", True, parse=_parse_bool, roles=_WORKER,
        doc="finish (setStatus 6) as soon as a code arrives; false: wait for downstream's finish")
    finish_timeout: float = setting(
        "FINISH_TIMEOUT", 1200.0, parse=_parse_positive_float, roles=_WORKER,
        doc="with AUTO_FINISH=false, finish after this many seconds anyway")
    order_max_attempts: int = setting(
        "ORDER_MAX_ATTEMPTS", 3, parse=_parse_positive_int, roles=_WORKER, doc="purchase attempts on NO_NUMBERS")
    order_max_numbers: int = setting(
        "ORDER_MAX_NUMBERS", 3, parse=_parse_positive_int, roles=_WORKER,
        doc="numbers an order may buy until a code is accepted: a number without a code is replaced (cancelled, "
            "so refunded)")
    order_timeout: float = setting(
        "ORDER_TIMEOUT", 3600.0, parse=_parse_positive_float, roles=("worker", "web"),
        doc="seconds after an order is placed that no replacement number is bought any more")
    order_retry_delay: float = setting(
        "ORDER_RETRY_DELAY", 30.0, parse=_parse_positive_float, roles=_WORKER,
        doc="seconds between purchase attempts")
    order_retention_seconds: int = setting(
        "ORDER_RETENTION_SECONDS", 7 * 24 * 3600, parse=_parse_positive_int, roles=("web", "worker", "cli"),
        doc="seconds an ended order or rent stays in Redis (its record, its numbers' index entries, its listing): "
            "a repeated order_id gets it back, GET /api/orders shows it, a finished rent can still be prolonged; "
            "about 1.6 KiB each (README, Sizing Redis)")
    downstream_task: str | None = setting(
        "DOWNSTREAM_TASK", None, parse=_optional, roles=_WORKER,
        doc="also send each event as this Celery task (kwargs = the event)")
    downstream_queue: str | None = setting(
        "DOWNSTREAM_QUEUE", None, parse=_optional, roles=_WORKER,
        doc="the queue DOWNSTREAM_TASK is sent to")
    webhook_allowed_ips: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = setting(
        "WEBHOOK_ALLOWED_IPS", (), parse=_parse_networks, roles=_WEB, shown_default="any",
        doc="comma list of addresses/networks allowed to post webhooks")
    trusted_proxies: int = setting(
        "TRUSTED_PROXIES", 0, parse=_parse_non_negative_int, roles=_WEB,
        doc="how many X-Forwarded-For hops to trust")
    webhook_max_bytes: int = setting(
        "WEBHOOK_MAX_BYTES", 65_536, parse=_parse_positive_int, roles=_WEB, doc="larger webhook bodies get 413")
    dead_letter_maxlen: int = setting(
        "DEAD_LETTER_MAXLEN", 10_000, parse=_parse_positive_int, roles=("web", "worker"),
        doc="malformed and unknown webhooks kept for inspection")
    drain_linger: float = setting(
        "DRAIN_LINGER", 0.25, parse=_parse_non_negative_float, roles=_WORKER,
        doc="seconds a drain that emptied the inbox waits for the next webhook before it ends (0: it ends at "
            "once); while it waits, webhooks reach it without a Celery task each")
    webhook_dedupe_ttl: int = setting(
        "WEBHOOK_DEDUPE_TTL", 3 * 3600, parse=_parse_positive_int, roles=_WEB,
        doc="seconds a delivered SMS is remembered to drop the provider's repeats")
    key_prefix: str = setting(
        "KEY_PREFIX", "otpflow", parse=_ident, roles=ROLES,
        doc="prefix of every Redis key, so deployments can share a Redis")
    broker_visibility_timeout: int = setting(
        "BROKER_VISIBILITY_TIMEOUT", 300, parse=_parse_positive_int, roles=_WORKER,
        doc="seconds before a task of a lost worker is delivered again")
    worker_soft_shutdown_timeout: float = setting(
        "WORKER_SOFT_SHUTDOWN_TIMEOUT", 20.0, parse=_parse_positive_float, roles=_WORKER,
        doc="on SIGTERM, seconds running tasks may finish (under 30, Heroku's limit)")
    log_level: str = setting(
        "LOG_LEVEL", "INFO", parse=_log_level, roles=ROLES,
        doc="DEBUG, INFO, WARNING, ERROR or CRITICAL")
    log_format: str = setting(
        "LOG_FORMAT", "text", parse=_log_format, roles=ROLES,
        doc="text, or json: one object per line with the request, task, order, activation and provider ids bound")
    metrics_flush_interval: float = setting(
        "METRICS_FLUSH_INTERVAL", 5.0, parse=_parse_non_negative_float, roles=_WORKER,
        doc="seconds a worker process keeps its task counters before adding them to Redis (0: every task)")
    web_concurrency: int = setting(
        "WEB_CONCURRENCY", 2, parse=_parse_positive_int, roles=_WEB, doc="gunicorn sync workers")
    web_threads: int = setting(
        "WEB_THREADS", 4, parse=_parse_positive_int, roles=_WEB,
        doc="threads per gunicorn worker; each serves only requests that have fully arrived")
    web_read_timeout: float = setting(
        "WEB_READ_TIMEOUT", 10.0, parse=_parse_positive_float, roles=_WEB,
        doc="seconds a client has from connecting to sending its whole request; slower ones are disconnected")
    gunicorn_accesslog: str | None = setting(
        "GUNICORN_ACCESSLOG", "-", parse=_optional, roles=_WEB, blank_is_value=True,
        doc="gunicorn access log target (- is stdout; empty: off)")
    prometheus_multiproc_dir: str | None = setting(
        "PROMETHEUS_MULTIPROC_DIR", None, parse=_optional, roles=_WEB,
        shown_default="a fresh temporary directory",
        doc="where gunicorn workers share their webhook counters for /metrics (prometheus_client reads it too)")
    worker_concurrency: int = setting(
        "WORKER_CONCURRENCY", 2, parse=_parse_positive_int, roles=_WORKER, doc="Celery prefork children")
    redis_max_connections: int = setting(
        "REDIS_MAX_CONNECTIONS", 1, parse=_parse_positive_int, roles=ROLES,
        doc="per process (a gunicorn worker, a Celery pool child, the worker's main process, the beat, the CLI): the "
            "connections it may open to REDIS_URL for state, and the broker connections it may pool to publish "
            "(Celery's broker_pool_limit); a thread finding them all busy waits for one (the web 1 s, then 503). A "
            "command takes well under a millisecond, so one serves a web process's threads; raise it when Redis is "
            "far away (README, Sizing Redis)")
    providers: tuple[str, ...] = setting(
        "PROVIDERS", (), parse=parse_names, roles=ROLES, shown_default="one provider: `PROVIDER`",
        doc="provider names in the default order of preference, each set up by PROVIDER_<NAME>_* (README, Providers)")
    routing: Routing = setting(
        "ROUTING", Routing.PRIORITY, parse=_parse_routing, roles=_WORKER,
        doc="priority (the order of PROVIDERS) or cheapest (by cached prices, ties by preference)")
    provider_cooldown: float = setting(
        "PROVIDER_COOLDOWN", 30.0, parse=_parse_positive_float, roles=_WORKER,
        doc="seconds a provider that failed 3 times in a row is skipped; then one probe may try it")
    spend_limit_hourly: Decimal | None = setting(
        "SPEND_LIMIT_HOURLY", None, parse=parse_amount, roles=_WORKER, shown_default="none",
        doc="the single provider's spend limit per calendar UTC hour, in its currency (PROVIDER_<N>_SPEND_LIMIT_HOURLY "
            "for each of PROVIDERS)")
    spend_limit_daily: Decimal | None = setting(
        "SPEND_LIMIT_DAILY", None, parse=parse_amount, roles=_WORKER, shown_default="none",
        doc="the single provider's spend limit per calendar UTC day, in its currency (PROVIDER_<N>_SPEND_LIMIT_DAILY)")
    max_price: Decimal | None = setting(
        "MAX_PRICE", None, parse=parse_amount, roles=("worker", "web"), shown_default="none",
        doc="the price cap of an order that names none; sent as maxPrice where the dialect takes it, and reserved")
    price_cache_ttl: float = setting(
        "PRICE_CACHE_TTL", 300.0, parse=_parse_positive_float, roles=_WORKER,
        doc="seconds a provider's cached prices and stock are trusted by cheapest routing")
    balance_check_interval: float = setting(
        "BALANCE_CHECK_INTERVAL", 300.0, parse=_parse_positive_float, roles=("worker", "beat"),
        doc="beat period of the balance watch (getBalance at every provider); routing trusts a balance read within "
            "twice this")
    balance_low: Decimal | None = setting(
        "BALANCE_LOW", None, parse=parse_amount, roles=_WORKER, shown_default="none (off)",
        doc="balance.low when a provider's balance falls below this (its currency), balance.ok when it recovers "
            "(PROVIDER_<N>_BALANCE_LOW for one of PROVIDERS)")
    max_active: int | None = setting(
        "MAX_ACTIVE", None, parse=parse_count, roles=_WORKER, shown_default="none",
        doc="at most this many numbers open at once at each provider (PROVIDER_<N>_MAX_ACTIVE for one of PROVIDERS); "
            "further orders wait in Redis or go to another provider")
    #: every provider, resolved from PROVIDERS and PROVIDER_<NAME>_* (or the single-provider variables); not a
    #: variable of its own, so it carries no declaration
    provider_configs: tuple[ProviderConfig, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.provider_configs:
            try:
                configs = load_providers(self.providers, {}, legacy_dialect=self.provider,
                                         legacy_url=self.provider_url, legacy_key=self.provider_api_key,
                                         legacy_token=self.webhook_token,
                                         legacy_limits=SpendLimits(self.spend_limit_hourly, self.spend_limit_daily))
            except ProviderConfigError as exc:
                raise ConfigError(exc.problems) from None
            object.__setattr__(self, "provider_configs", configs)

    def provider_config(self, name: str) -> ProviderConfig:
        """The provider called ``name`` (KeyError when none is)."""
        for config in self.provider_configs:
            if config.name == name:
                return config
        raise KeyError(name)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Read every declared setting from ``env`` (default: ``os.environ``); collect all problems before failing.

        An empty variable counts as unset (its default applies) unless its declaration says blank is a value.
        """
        source = os.environ if env is None else env
        values: dict[str, Any] = {}
        problems: list[str] = []
        for declared in declarations():
            raw = source.get(declared.env)
            if raw is None or (raw.strip() == "" and not declared.setting.blank_is_value):
                continue
            try:
                values[declared.attr] = declared.setting.parse(raw)
            except (ValueError, ArithmeticError) as exc:
                problems.append(f"{declared.env}: {exc}")
        if problems:
            raise ConfigError(problems)
        try:
            values["provider_configs"] = load_providers(
                values.get("providers", ()), source, legacy_dialect=values.get("provider", "sms-activate"),
                legacy_url=values.get("provider_url"), legacy_key=values.get("provider_api_key", ""),
                legacy_token=values.get("webhook_token", ""),
                legacy_limits=SpendLimits(values.get("spend_limit_hourly"), values.get("spend_limit_daily")))
        except ProviderConfigError as exc:
            raise ConfigError(exc.problems) from None
        return cls(**values)

    def require(self, role: str) -> "Settings":
        """Check what ``role`` (web, worker, beat, cli) cannot run without; raise ConfigError naming each gap."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        problems: list[str] = []
        if role == "web":
            problems += _require_secret("API_TOKEN", self.api_token)
        problems += require_providers(self.provider_configs, role if role != "cli" else "")
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
        out: dict[str, object] = {}
        for declared in declarations():
            value = getattr(self, declared.attr)
            out[declared.attr] = ("***" if value else "") if declared.setting.secret else value
        out["provider_configs"] = [{"name": p.name, "dialect": p.dialect.name, "url": p.base_url,
                                    "api_key": "***" if p.api_key else "", "webhook_token":
                                    "***" if p.webhook_token else ""} for p in self.provider_configs]
        return out


def _require_secret(name: str, value: str) -> list[str]:
    if not value:
        return [f"{name}: required (a long random string; generate one with: "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))')"]
    if len(value) < 16:
        return [f"{name}: too short ({len(value)} characters); use at least 16 random characters"]
    return []


def declarations() -> tuple[Declaration, ...]:
    """Every setting, in declaration order: its attribute, default and :class:`Setting` (README, ``otpflow config``)."""
    return _DECLARATIONS


_DECLARATIONS: tuple[Declaration, ...] = tuple(
    Declaration(attr=f.name, default=f.default, setting=f.metadata[_SETTING]) for f in fields(Settings)
    if _SETTING in f.metadata
)
