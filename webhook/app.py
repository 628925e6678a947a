"""The web app factory: provider webhooks, the order and rent APIs, health and metrics.

Everything a request needs (settings, one Redis pool, the Celery producer, the inbox) is built here once and
stored as the app's :class:`~webhook.context.WebContext`, so tests inject fakes through the factory instead of
monkey-patching, and no module holds a global client.
"""
from __future__ import annotations

import logging
from typing import Any

import redis
from flask import Flask

from config.logging_setup import RedactingFilter, configure_logging, register_secrets
from config.redis_client import make_web_redis
from config.settings import ConfigError, Settings
from webhook.context import LazyCelery, WebContext, init_context
from webhook.errors import register_error_handlers
from webhook.health import health
from webhook.ingress import INGRESS_KEY, IngressPolicy, webhooks
from webhook.orders_api import orders_api
from webhook.request_ids import RequestIds
from webhook.rents_api import rents_api
from webhook.spend_api import spend_api

log = logging.getLogger("otpflow.webhook")
API_MAX_BYTES = 64 * 1024


def create_app(settings: Settings | None = None, *, redis_client: redis.Redis | None = None,
               celery_app: Any | None = None) -> Flask:
    """Build the Flask app. ``settings`` defaults to the environment (validated for the ``web`` role)."""
    if settings is None:
        settings = Settings.from_env().require("web")
    missing = [p.var("WEBHOOK_TOKEN") for p in settings.provider_configs if not p.webhook_token]
    if missing:
        raise ConfigError([f"{var}: required (the secret path segment of the webhook URL)" for var in missing])
    configure_logging(settings.log_level, settings.log_format)
    _redact_werkzeug_log()

    app = Flask("webhook")
    # API bodies are small JSON objects; webhooks have their own cap (WEBHOOK_MAX_BYTES, 413)
    app.config["MAX_CONTENT_LENGTH"] = max(settings.webhook_max_bytes, API_MAX_BYTES)
    register_secrets(settings.webhook_token, settings.api_token, settings.provider_api_key,
                     *(p.webhook_token for p in settings.provider_configs),
                     *(p.api_key for p in settings.provider_configs))
    app.json.sort_keys = False  # type: ignore[attr-defined]
    client = redis_client if redis_client is not None else make_web_redis(settings)
    celery = celery_app if celery_app is not None else LazyCelery(settings)
    init_context(app, WebContext(settings=settings, redis=client, celery=celery))
    app.extensions[INGRESS_KEY] = IngressPolicy.from_settings(settings)

    app.wsgi_app = RequestIds(app.wsgi_app)  # type: ignore[method-assign]
    register_error_handlers(app)
    app.register_blueprint(webhooks)
    app.register_blueprint(health)
    app.register_blueprint(orders_api)
    app.register_blueprint(rents_api)
    app.register_blueprint(spend_api)
    from webhook.dashboard import dashboard  # the operator's page (webhook/dashboard.py)

    app.register_blueprint(dashboard)
    return app


def warm_up(app: Flask) -> None:
    """Build the lazy Celery producer now (imports celery and kombu: hundreds of ms of CPU).

    Called once per gunicorn worker from ``webhook.wsgi``, so the first webhook that must publish a drain does not
    pay for the imports inside its request. A failure is logged, not raised: webhooks are still stored and the
    beat sweeper drains them.
    """
    celery = app.extensions["otpflow"].celery
    if isinstance(celery, LazyCelery):
        try:
            celery.get()
        except Exception as exc:  # the web process must serve webhooks without a producer
            log.warning("Celery producer not available (%s); drains rely on the beat sweeper", type(exc).__name__)


def _redact_werkzeug_log() -> None:
    """The development server logs request lines (with the webhook token); scrub them at the logger."""
    logger = logging.getLogger("werkzeug")
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())
