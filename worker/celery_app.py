"""The Celery app factory, its configuration and the beat schedule.

``celery -A worker.celery_app worker`` and ``celery -A worker.celery_app beat`` use the module-level ``app``,
built from ``Settings.from_env()``. The web app and the CLI call ``make_celery(settings)`` only to publish by
name (``send_task``); they never import ``tasks``.

The broker is ``CELERY_BROKER_URL`` when set (RabbitMQ over AMQP, or another Redis), else ``REDIS_URL``; only the
Celery messages go there, state stays in ``REDIS_URL``. On Redis a task of a lost worker comes back after
``BROKER_VISIBILITY_TIMEOUT``; on AMQP the broker gives an unacknowledged task to another consumer as soon as the
connection that took it closes (or misses its heartbeats), so that setting has no effect there.
"""
from __future__ import annotations

import enum
import ssl
from typing import Any
from urllib.parse import urlsplit

from celery import Celery

from config.settings import ConfigError, Settings
from flows.names import TaskName

#: our tasks' queue on REDIS_URL (a worker started without -Q consumes it: it is the default queue)
QUEUE = "otpflow"
BROKER_SOCKET_TIMEOUT = 10.0
BROKER_CONNECT_TIMEOUT = 5.0
#: kombu's Redis transport for processes that only publish (worker/broker_transport.py)
PUBLISH_ONLY_TRANSPORT = "worker.broker_transport:PublishOnlyTransport"
#: seconds between AMQP heartbeats: a worker whose connection died unseen (a NAT, a frozen dyno) is noticed,
#: and its unacknowledged task handed to another consumer, within about two of them
AMQP_HEARTBEAT = 30.0


class BrokerKind(enum.Enum):
    """The transport the Celery messages travel on; each takes its own options."""

    REDIS = "redis"
    AMQP = "amqp"


def broker_url(settings: Settings) -> str:
    """Where the Celery messages go: ``CELERY_BROKER_URL``, or ``REDIS_URL`` when it is empty."""
    return settings.celery_broker_url or settings.redis_url


def broker_kind(url: str) -> BrokerKind:
    scheme = url.partition("://")[0].lower()
    return BrokerKind.AMQP if scheme in {"amqp", "amqps", "pyamqp"} else BrokerKind.REDIS


def task_queue(settings: Settings) -> str:
    """Our tasks' queue: ``otpflow`` on ``REDIS_URL`` (as always), ``KEY_PREFIX`` on a ``CELERY_BROKER_URL``, so
    deployments (and test runs) sharing one broker, each with its own prefix, never take each other's tasks."""
    return settings.key_prefix if settings.celery_broker_url else QUEUE


def _ssl_options(url: str, settings: Settings) -> dict[str, Any] | None:
    if not url.startswith("rediss://"):
        return None
    reqs = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
    return {"ssl_cert_reqs": reqs[settings.redis_ssl_cert_reqs]}


def _redis_broker_options(url: str, settings: Settings) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "broker_transport_options": {
            # tasks are short and nothing waits on an ETA, so a lost worker's task comes back within
            # BROKER_VISIBILITY_TIMEOUT (default 300 s) instead of Celery's default hour
            "visibility_timeout": settings.broker_visibility_timeout,
            "socket_timeout": BROKER_SOCKET_TIMEOUT,
            "socket_connect_timeout": BROKER_CONNECT_TIMEOUT,
            "retry_on_timeout": True,
            "health_check_interval": 30,
        },
    }
    ssl_opts = _ssl_options(url, settings)
    if ssl_opts is not None:
        conf["broker_use_ssl"] = ssl_opts
    return conf


def _amqp_broker_options(url: str) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "broker_heartbeat": AMQP_HEARTBEAT,
        "broker_connection_timeout": BROKER_CONNECT_TIMEOUT,
        # a publish returns only once the broker holds the message (durable queue, persistent message), as an
        # LPUSH to Redis does: a webhook answered 200 or an order answered 202 has its task stored
        "broker_transport_options": {"confirm_publish": True},
    }
    if url.lower().startswith("amqps://"):
        # kombu's bare TLS checks the chain against the system's certificates but not the name: check both
        # (CloudAMQP's certificates are public ones)
        conf["broker_use_ssl"] = {"cert_reqs": ssl.CERT_REQUIRED, "server_hostname": urlsplit(url).hostname}
    return conf


def celery_config(settings: Settings) -> dict[str, Any]:
    """Every Celery setting we rely on, as data (tests assert on it)."""
    queue = task_queue(settings)
    routes: dict[str, dict[str, str]] = {"otpflow.*": {"queue": queue}}  # every TaskName is otpflow.*
    if settings.downstream_task:
        routes[settings.downstream_task] = {"queue": settings.downstream_queue or queue}
    url = broker_url(settings)
    conf: dict[str, Any] = {
        "broker_url": url,
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        # acknowledged once the task ran: on either broker a task whose process died is delivered again
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # one unacknowledged task per process (AMQP's basic.qos; kombu counts them itself on Redis)
        "worker_prefetch_multiplier": 1,
        "worker_concurrency": settings.worker_concurrency,
        "task_default_queue": queue,
        "task_routes": routes,
        "broker_connection_retry_on_startup": True,
        # at most REDIS_MAX_CONNECTIONS pooled broker connections per process to publish through (a thread waits
        # for a free one); the consumer's own connection is not pooled. kombu's Redis channels keep their own
        # max_connections: each channel is used by one thread at a time, so it never opens more than two anyway
        "broker_pool_limit": settings.redis_max_connections,
        # a Redis result backend's pool (none is configured: results are ignored), so no pool is left uncapped
        "redis_max_connections": settings.redis_max_connections,
        # a full or read-only Redis refuses kombu's writes with ResponseErrors: restart the consumer instead of
        # exiting with "Unrecoverable error", and let it reconnect only once Redis accepts writes again (on AMQP
        # too: the tasks' state is written to Redis whichever broker carries them)
        "broker_channel_error_retry": True,
        "worker_consumer": "worker.redis_gate:GatedConsumer",
        # Heroku SIGKILLs 30 s after SIGTERM: finish or requeue running tasks well before that
        "worker_soft_shutdown_timeout": settings.worker_soft_shutdown_timeout,
        # no ETA tasks exist, so an idle worker has nothing to requeue: exit at once instead of waiting the timeout
        "worker_enable_soft_shutdown_on_idle": False,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        "worker_hijack_root_logger": False,
        # the in-memory scheduler: no schedule file, so several beats never share (or corrupt) one, and a beat
        # restarted on an ephemeral dyno loses nothing (the schedule is one short interval)
        "beat_scheduler": "celery.beat:Scheduler",
        "beat_schedule": {
            "otpflow-sweep": {
                "task": TaskName.SWEEP.value,
                "schedule": settings.sweep_interval,
                # a sweep that could not run in time is useless later: drop it rather than pile them up
                "options": {"expires": max(settings.sweep_interval * 2, 10.0)},
            },
            "otpflow-check-balances": {
                "task": TaskName.CHECK_BALANCES.value,
                "schedule": settings.balance_check_interval,
                # a late check is replaced by the next one: never a queue of them
                "options": {"expires": max(settings.balance_check_interval, 10.0)},
            },
        },
        "timezone": "UTC",
        "enable_utc": True,
    }
    if broker_kind(url) is BrokerKind.AMQP:
        conf.update(_amqp_broker_options(url))
    else:
        conf.update(_redis_broker_options(url, settings))
    backend_ssl = _ssl_options(settings.redis_url, settings)
    if backend_ssl is not None:
        conf["redis_backend_use_ssl"] = backend_ssl
    return conf


def publish_only_options(settings: Settings) -> dict[str, Any]:
    """Celery settings for a process that publishes and never consumes (the web, the beat, a worker's pool child):
    on a Redis broker each pooled producer then holds one Redis connection instead of two
    (worker/broker_transport.py). Nothing on AMQP."""
    if broker_kind(broker_url(settings)) is BrokerKind.REDIS:
        return {"broker_transport": PUBLISH_ONLY_TRANSPORT}
    return {}


def make_celery(settings: Settings | None = None) -> Celery:
    """A Celery app for ``settings`` (publishing, or running workers and beat)."""
    settings = settings or Settings.from_env()
    app = Celery("otpflow", set_as_current=False)
    app.conf.update(celery_config(settings))
    app.conf.otpflow_settings = settings
    return app


def install_runtime(app: Celery, settings: Settings) -> None:
    """Tell the tasks how to build their per-process runtime (Redis, provider client, publisher)."""
    from config.redis_client import make_redis
    from flows.runtime import Runtime, build_providers
    from tasks.runtime import set_factory
    from telemetry.worker_counters import TASK_METRICS

    def factory() -> Runtime:
        def publish(name: str, kwargs: Any) -> None:
            app.send_task(name, kwargs=dict(kwargs))
        # provider calls by action and result go into the worker counters, on /metrics
        return Runtime(settings=settings, redis=make_redis(settings),
                       provider=build_providers(settings, observer=TASK_METRICS.record_call), publish=publish)

    set_factory(factory)


def _build_module_app() -> Celery:
    from . import signals

    try:
        settings = Settings.from_env()
        settings.require("beat")  # the checks every role shares; workers check PROVIDER_API_KEY at start-up
    except ConfigError as exc:
        signals.refuse_start(exc)  # one line and exit 2, not Celery's "Unable to load celery application"
    celery_app = make_celery(settings)
    celery_app.set_current()
    celery_app.set_default()
    import tasks  # registers the shared tasks

    signals.connect(celery_app, settings, publish_only=publish_only_options(settings))
    install_runtime(celery_app, settings)
    return celery_app


_app: Celery | None = None


def __getattr__(name: str) -> Any:
    """The module-level ``app`` for ``celery -A worker.celery_app``, built on first access (PEP 562).

    Lazy so that importing ``make_celery`` (the web app, the CLI, tests) reads no environment, connects no
    signal handlers and installs no task runtime.
    """
    global _app
    if name == "app":
        if _app is None:
            _app = _build_module_app()
        return _app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
