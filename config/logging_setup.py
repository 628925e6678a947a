"""Logging set-up shared by every process, with the provider key scrubbed from every record.

The provider's API key travels in query strings, so any library that logs a URL (urllib3, requests, werkzeug)
could leak it. A filter on the root handlers rewrites ``api_key=…`` (and ``Authorization: ApiKey …``) in each
record's final message before it is written.

Both formats carry the ids bound in :mod:`config.log_context` (request, task, order, activation, provider): the JSON
format (``LOG_FORMAT=json``) as fields of each line, the text format as a short ``[key=value …]`` tail.
"""
from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Mapping

from .log_context import EVENT_FIELDS, LogId, current

_SECRET_PATTERNS = (
    re.compile(r"(api_key=)[^&\s'\"]+", re.IGNORECASE),
    re.compile(r"(ApiKey\s+)[^\s'\"]+", re.IGNORECASE),
    # the whole rest of the path: /WEBHOOKS/<token> and /webhooks/x/../<token> name the token too
    re.compile(r"(/webhooks/)[^\s?#'\"]+", re.IGNORECASE),
    # the password of a redis://user:password@host URL (REDIS_URL)
    re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s'\"]*:)[^@\s'\"]+(?=@)", re.IGNORECASE),
)
#: what each of those patterns starts from: a text with none of them needs none of the four substitutions (most
#: lines, and nearly every id): a line costs 18 µs instead of 47 (text; JSON 22 instead of 63: bench/log_lines.py)
_PATTERN_STARTS = re.compile(r"api_key=|apikey\s|/webhooks/|://", re.IGNORECASE)
#: exact secrets of this process (webhook tokens, API token, provider keys), masked wherever they appear
_SECRETS: set[str] = set()


def register_secrets(*secrets: str | None) -> None:
    """Mask these values in every line from now on, whatever surrounds them (at least 8 characters each)."""
    _SECRETS.update(s for s in secrets if s and len(s) >= 8)


def redact(text: str) -> str:
    """Mask provider keys, webhook tokens, URL passwords and every registered secret in free text."""
    if _PATTERN_STARTS.search(text) is not None:
        for pattern in _SECRET_PATTERNS:
            text = pattern.sub(r"\1***", text)
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "***")
    return text


_PLAIN = logging.Formatter()


class RedactingFilter(logging.Filter):
    """Renders the record's message once, scrubs it, and freezes it so formatters cannot re-expand secrets."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not kill logging
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            # render the traceback now (formatters reuse exc_text), so a URL with the key inside an exception
            # message cannot reach the output unredacted
            record.exc_text = _PLAIN.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def line_ids(record: logging.LogRecord) -> dict[str, str]:
    """The ids of one line: those bound now, overridden by the record's own (``extra={"order_id": …}``)."""
    bound: Mapping[str, str] = current()
    ids: dict[str, str] = {}
    for key in LogId:
        value = getattr(record, key.value, None)
        if value is None or value == "":
            value = bound.get(key.value)
        if value is not None and value != "":
            ids[key.value] = redact(str(value))
    return ids


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log drains: time, level, logger and message, then every id of the line
    (:func:`line_ids`) and the fields of its event (a transition's states, a provider call's action and time)."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        payload.update(line_ids(record))
        for attr in EVENT_FIELDS:
            value = getattr(record, attr, None)
            if value is not None:
                payload[attr] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            payload["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(payload, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message``, then the line's ids as ``[order_id=… task_id=…]`` when it has any."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)  # the line before any traceback, which format() appends
        ids = line_ids(record)
        return text + " [" + " ".join(f"{k}={v}" for k, v in ids.items()) + "]" if ids else text


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Install one stderr handler with redaction; idempotent (safe to call from every entry point)."""
    root = logging.getLogger()
    for handler in root.handlers:
        if getattr(handler, "_otpflow", False):
            root.setLevel(level)
            return
    handler = logging.StreamHandler(sys.stderr)
    handler._otpflow = True  # type: ignore[attr-defined]
    handler.addFilter(RedactingFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    # urllib3 logs full request URLs (with api_key) at DEBUG; keep it quiet even when the app is verbose.
    logging.getLogger("urllib3").setLevel(logging.WARNING)


def install_redaction_on_existing_handlers() -> None:
    """Celery and gunicorn install their own handlers; add the redacting filter to each of them."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
