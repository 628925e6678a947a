"""Keep the API key out of logs, exception texts, reprs and stored bodies.

The key travels in the query string (docs/handler-api.md, Transport and answers), so every URL is a secret. Two layers:
a :class:`Redactor` that knows the client's key (exact and URL-encoded forms), and a key-agnostic regex for
``api_key=…`` that also catches keys we were never told about (urllib3's DEBUG line logs the full request URL).
"""

from __future__ import annotations

import logging
import re
from urllib.parse import quote, quote_plus

__all__ = ["MASK", "Redactor", "redact_query", "install_urllib3_redaction"]

MASK = "***"
_QUERY_KEY_RE = re.compile(r"(?i)(api_key=|apikey=|api-key=|authorization:\s*apikey\s+)[^&\s\"'#]+")


def redact_query(text: str) -> str:
    """Mask any ``api_key=<value>`` (and ``Authorization: ApiKey <value>``) in a text, whoever's key it is."""
    if "=" not in text and ":" not in text:
        return text
    return _QUERY_KEY_RE.sub(lambda m: m.group(1) + MASK, text)


class Redactor:
    """Replaces one client's key (and its URL-encoded spellings) by ``***``; cheap when the key is absent."""

    __slots__ = ("_secrets",)

    def __init__(self, *secrets: str | None) -> None:
        found: set[str] = set()
        for secret in secrets:
            if secret and len(secret) >= 3:  # masking 1–2 chars would shred unrelated text
                found.update({secret, quote(secret, safe=""), quote_plus(secret)})
        # longest first, so an encoded form is not half-replaced by a shorter raw form
        self._secrets = tuple(sorted(found, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        """Return ``text`` with every known secret and every ``api_key=…`` masked."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return redact_query(text)

    def __repr__(self) -> str:
        return f"Redactor(<{len(self._secrets)} secret forms>)"


class _RedactingFilter(logging.Filter):
    """Masks ``api_key=…`` in a record's message and arguments before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_query(record.msg)
        if record.args:
            if isinstance(record.args, tuple):
                record.args = tuple(redact_query(a) if isinstance(a, str) else a for a in record.args)
            elif isinstance(record.args, dict):
                record.args = {k: redact_query(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True


_FILTER = _RedactingFilter("provider-redaction")


def install_urllib3_redaction() -> None:
    """Attach the filter to urllib3's connection-pool logger, which logs ``"GET /…?api_key=… HTTP/1.1"`` at DEBUG.

    Idempotent; called by every client, so enabling DEBUG logging in production never leaks a key.
    """
    for name in ("urllib3.connectionpool", "urllib3.util.retry", "requests"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
