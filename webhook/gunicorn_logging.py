"""A gunicorn logger that never writes the webhook token.

Access logs print the request path, and the path is ``/webhooks/<WEBHOOK_TOKEN>``; gunicorn's error log also
names the URI of a failed request. Every access-log atom is redacted (the rest of any ``/webhooks/`` path in any
case, query-string values, the configured secrets wherever they appear, percent-encoded or not), and the
redacting filter is installed on gunicorn's handlers each time it (re)builds them.
"""
from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import unquote

from gunicorn.glogging import Logger, SafeAtoms

from config.logging_setup import RedactingFilter, redact, register_secrets
from config.settings import ConfigError, Settings

_QUERY_VALUE = re.compile(r"([?&][^=&\s\"']*=)[^&\s\"']*")
#: gunicorn's default access line, then the request id the app answered with (``X-Request-Id``), so an access
#: line can be matched with the request's own log lines; a response without one (gunicorn's own 400s) shows ``-``
ACCESS_LOG_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" request_id=%({x-request-id}o)s'


class TracebackRedactingFilter(RedactingFilter):
    """Also scrub tracebacks: render ``exc_info`` here, since formatters would otherwise render it after filters."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        return super().filter(record)


class MaskedAtoms(SafeAtoms):
    """gunicorn's access-log atoms, each masked when the line's format reads it.

    gunicorn builds an atom for every request and response header and every WSGI environ key (about 40), and the
    format reads ten of them: masking all of them cost about 770 us of the web's CPU per request (bench/ingress.py
    --access-log: 1,657 against 883 us per request without the access log), more than the app itself.
    """

    def __getitem__(self, key: str) -> Any:
        value = super().__getitem__(key)
        return mask_request_text(value) if isinstance(value, str) else value


class RedactingLogger(Logger):
    """gunicorn ``logger_class`` with ``/webhooks/<token>`` (and provider keys) masked in every line."""

    atoms_wrapper_class = MaskedAtoms

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        register_configured_secrets()
        for logger in (self.error_log, self.access_log):
            for handler in logger.handlers:
                if not any(isinstance(f, TracebackRedactingFilter) for f in handler.filters):
                    handler.addFilter(TracebackRedactingFilter())


def mask_request_text(value: str) -> str:
    """An access-log atom with secrets masked: query values (``?token=…``) and a path that names a secret only
    once percent-decoded are masked whole; then :func:`redact`."""
    value = _QUERY_VALUE.sub(r"\1***", value)
    if "%" in value and redact(unquote(value)) != unquote(value):
        return "***"
    return redact(value)


def register_configured_secrets() -> None:
    """The webhook tokens, API token and provider keys of this deployment, masked in every log line."""
    try:
        settings = Settings.from_env()
    except ConfigError:
        return  # start-up reports the configuration itself
    register_secrets(settings.webhook_token, settings.api_token, settings.provider_api_key,
                     *(p.webhook_token for p in getattr(settings, "provider_configs", ())),
                     *(p.api_key for p in getattr(settings, "provider_configs", ())))
