"""JSON error answers for the whole web app.

Providers and operators read these bodies; a stable ``{"status": "error", "error": <code>, "reason": <text>}``
shape (never an HTML page, never a traceback, never a secret) makes failures diagnosable from a delivery log.
"""
from __future__ import annotations

import logging
import traceback

import redis
from flask import Flask, Response, jsonify, request
from gunicorn.http.errors import NoMoreData, ParseException
from werkzeug.exceptions import HTTPException

from config.logging_setup import redact

log = logging.getLogger("otpflow.webhook")

RETRY_AFTER_SECONDS = 5


def error_response(status: int, error: str, reason: str, *, retry_after: int | None = None,
                   extra: dict[str, object] | None = None) -> Response:
    """A JSON error body with the given status (and ``Retry-After`` when the caller should come back)."""
    body: dict[str, object] = {"status": "error", "error": error, "reason": reason}
    if extra:
        body.update(extra)
    response = jsonify(body)
    response.status_code = status
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def not_found() -> Response:
    """The one 404 body: a wrong webhook token must look exactly like a path that does not exist."""
    return error_response(404, "not_found", "not found")


def unavailable(reason: str = "storage unavailable, retry later") -> Response:
    """503 with Retry-After: the provider retries, nothing is lost."""
    return error_response(503, "unavailable", reason, retry_after=RETRY_AFTER_SECONDS)


def _snake(name: str) -> str:
    return "_".join(name.lower().replace("-", " ").split())


def register_error_handlers(app: Flask) -> None:
    """Install JSON handlers for HTTP errors, Redis outages and unexpected exceptions."""

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        if exc.code == 404:
            return not_found()
        response = error_response(exc.code or 500, _snake(exc.name or "error"), exc.description or "")
        if exc.code == 405 and exc.response is None:
            allowed = getattr(exc, "valid_methods", None)
            if allowed:
                response.headers["Allow"] = ", ".join(allowed)
        return response

    @app.errorhandler(redis.RedisError)
    def _redis_error(exc: redis.RedisError) -> Response:
        log.warning("redis unavailable on %s %s: %s", request.method, redact(request.path), type(exc).__name__)
        return unavailable()

    @app.errorhandler(RecursionError)
    def _too_deep(exc: RecursionError) -> Response:
        return error_response(400, "invalid_json", "the body is nested too deeply")

    @app.errorhandler(ParseException)
    @app.errorhandler(NoMoreData)
    def _bad_framing(exc: Exception) -> Response:
        # raised by gunicorn while the app reads the body (bad chunk sizes, a missing terminator, a client gone)
        response = error_response(400, "bad_body", "the request body could not be read (framing)")
        response.headers["Connection"] = "close"
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        # Flask would log "Exception on /webhooks/<token>"; log the redacted path ourselves instead.
        # The traceback is rendered and scrubbed here: handler filters run before formatters render exc_info.
        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        log.error("unhandled %s on %s %s\n%s", type(exc).__name__, request.method, redact(request.path),
                  redact(trace))
        return error_response(500, "internal", "internal error")
