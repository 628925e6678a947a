"""A gunicorn logger that never writes the webhook token.

Access logs print the request path, and the path is ``/webhooks/<WEBHOOK_TOKEN>``; gunicorn's error log also
names the URI of a failed request. Every access-log atom is redacted, and the redacting filter is installed on
gunicorn's handlers each time it (re)builds them.
"""
from __future__ import annotations

import logging
from typing import Any

from gunicorn.glogging import Logger

from config.logging_setup import RedactingFilter, redact


class TracebackRedactingFilter(RedactingFilter):
    """Also scrub tracebacks: render ``exc_info`` here, since formatters would otherwise render it after filters."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        return super().filter(record)


class RedactingLogger(Logger):
    """gunicorn ``logger_class`` with ``/webhooks/<token>`` (and provider keys) masked in every line."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            for handler in logger.handlers:
                if not any(isinstance(f, TracebackRedactingFilter) for f in handler.filters):
                    handler.addFilter(TracebackRedactingFilter())

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        atoms = super().atoms(resp, req, environ, request_time)
        return {key: redact(value) if isinstance(value, str) else value for key, value in atoms.items()}

