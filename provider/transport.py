"""HTTP transport: one ``requests.Session`` (keep-alive), explicit timeouts, guarded retries, key redaction.

Why it looks the way it does:

* **One session per client**: the connection pool keeps the TLS connection alive; a provider poll loop does not
  pay a handshake per ``getStatus``.
* **Cheap per call**: the URL is built with ``urlencode`` from a pre-encoded prefix and handed as a ready
  ``PreparedRequest`` to the session's adapter with explicit proxies and no redirects, so requests skips URL
  re-parsing, environment-proxy and ``.netrc`` look-ups, hook dispatch and cookie extraction on every call (our
  own code costs ~15 µs per call; the rest is requests/urllib3/http.client and the kernel). The body is decoded
  as the declared charset or UTF-8, never by requests' charset *guessing* (slow, and wrong for short Russian
  texts). Cookies, session auth and session hooks are therefore not applied: handler_api uses none of them.
* **Retries only where safe**: :class:`RetryPolicy` re-sends on :class:`~provider.errors.TransientError` only when
  the caller says the action is idempotent. Purchases and ``setStatus`` are sent exactly once; an ambiguous
  failure surfaces with ``possibly_processed`` so the caller reconciles instead of buying twice.
* **No key leaks**: requests' exception texts contain the full URL (query string, key included). They are
  re-raised as our own errors with redacted text and *without* exception chaining, so no traceback shows them.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable, Mapping, TypeVar, cast
from urllib.parse import urlencode, urlsplit

import requests
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, NameResolutionError

from .backoff import Backoff, Jitter
from .errors import ConfigurationError, ConnectTimeout, NetworkError, ProviderError, ReadTimeout, TransientError
from .redaction import Redactor, install_urllib3_redaction

__all__ = ["RawResponse", "RetryPolicy", "Transport", "encode_params"]

_log = logging.getLogger("provider.transport")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RawResponse:
    """What the parser needs from an HTTP answer, already decoded and redacted."""

    status: int
    text: str
    retry_after: float | None = None
    elapsed: float = 0.0


@dataclass(frozen=True)
class RetryPolicy:
    """How many times an idempotent call is re-sent, and how long to wait before each re-send.

    The wait is :class:`~provider.backoff.Backoff` (full jitter by default), but never less than a server's
    Retry-After, which is itself capped at ``max(backoff.cap, 60)`` seconds so a hostile or broken header cannot
    park a worker for hours.
    """

    max_retries: int = 3
    backoff: Backoff = Backoff(0.5, 8.0, Jitter.FULL)

    def delay(self, attempt: int, retry_after: float | None = None, *,
              rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait before re-sending after failed attempt number ``attempt`` (0 for the first)."""
        delay = self.backoff.delay(attempt, rng=rng)
        if retry_after is not None:
            delay = max(delay, min(retry_after, max(self.backoff.cap, 60.0)))
        return delay


def _encode_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, set, frozenset)):
        return ",".join(_encode_value(v) for v in value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return str(int(value.timestamp()))
    return str(value)


def encode_params(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Wire form of parameters: None dropped, booleans ``true``/``false``, lists comma-joined (docs/handler-api.md,
    Transport and answers)."""
    return [(k, _encode_value(v)) for k, v in params.items() if v is not None]


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _charset(content_type: str | None) -> str:
    if content_type:
        for part in content_type.split(";")[1:]:
            name, _, val = part.partition("=")
            if name.strip().lower() == "charset" and val.strip():
                return val.strip().strip("\"'")
    return "utf-8"


def _not_sent(exc: BaseException) -> bool:
    """True when urllib3 says the connection was never established (so the request never left)."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, (NewConnectionError, ConnectTimeoutError, NameResolutionError, ConnectionRefusedError)):
            return True
        stack.extend([getattr(item, "reason", None), item.__cause__, item.__context__])
        stack.extend(a for a in getattr(item, "args", ()) if isinstance(a, BaseException))
    return False


#: ``observer(action, result, seconds)`` after every attempt: ``result`` is ``ok`` or the error's class name
CallObserver = Callable[[str, str, float], None]


#: actions whose ``id`` parameter is something else than an activation or rent id (a product's)
_ID_IS_NOT_AN_ACTIVATION = frozenset({"buyPartnerProduct"})


def _host(base_url: str) -> str:
    """Host and port of the provider's URL, for log lines: never its path, query (the key) or user part."""
    try:
        parts = urlsplit(base_url)
        return f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname or "?"
    except ValueError:
        return "?"


class Transport:
    """Sends one handler_api call and returns a :class:`RawResponse`; knows nothing about actions' meaning."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        method: str = "GET",
        auth: str = "query",
        connect_timeout: float = 3.05,
        read_timeout: float = 15.0,
        session: requests.Session | None = None,
        headers: Mapping[str, str] | None = None,
        proxies: Mapping[str, str] | None = None,
        trust_env: bool = False,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        redactor: Redactor | None = None,
        observer: CallObserver | None = None,
        name: str | None = None,
    ) -> None:
        install_urllib3_redaction()
        self._observer = observer
        #: the provider's configured name on each call's log line (its host names it when there is none)
        self.name = name
        self._host = _host(base_url)
        self.base_url = base_url
        self.method = method.upper()
        self.auth = auth
        self.timeout = (connect_timeout, read_timeout)
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._redact = redactor or Redactor(api_key)
        self._owns_session = session is None
        self.session = session or requests.Session()
        if trust_env and proxies is None:
            proxies = requests.utils.get_environ_proxies(base_url)
        self._proxies = dict(proxies or {})
        base_headers = {
            "User-Agent": "otpflow-provider/0.1",
            "Accept": "*/*",
            "Accept-Encoding": "gzip, deflate",
            "Connection": "keep-alive",
        }
        base_headers.update(headers or {})
        key_pairs: list[tuple[str, str]] = []
        if auth == "header":
            base_headers["Authorization"] = f"ApiKey {api_key}"
        else:
            key_pairs = [("api_key", api_key)]
        self._headers = base_headers
        self._key_pairs = key_pairs
        sep = "&" if "?" in base_url else "?"
        if self.method == "GET" or auth == "query":
            self._url_prefix = base_url + sep + (urlencode(key_pairs) + "&" if key_pairs else "")
        else:
            self._url_prefix = base_url + sep
        self._query_carries_key = self.method == "GET" or auth == "query"

    # ----------------------------------------------------------------------------------------------- sending
    def _prepare(self, action: str, params: Mapping[str, Any]) -> requests.PreparedRequest:
        pairs = [("action", action), *encode_params(params)]
        request = requests.PreparedRequest()
        request.method = self.method
        request.headers = CaseInsensitiveDict(self._headers)
        if self.method == "GET":
            request.url = self._url_prefix + urlencode(pairs)
            request.body = None
        else:
            if self._query_carries_key:
                request.url = self._url_prefix.rstrip("&?")
                form = pairs
            else:
                request.url = self.base_url
                form = [*self._key_pairs, *pairs]
            body = urlencode(form).encode("ascii")
            request.body = body
            request.headers["Content-Type"] = "application/x-www-form-urlencoded"
            request.headers["Content-Length"] = str(len(body))
        return request

    def send(self, action: str, params: Mapping[str, Any]) -> RawResponse:
        """One HTTP exchange. Network failures become :class:`NetworkError` subclasses with redacted text."""
        try:
            request = self._prepare(action, params)
        except (UnicodeError, ValueError) as exc:
            raise ConfigurationError(self._redact(f"cannot build request for {action}: {exc}"),
                                     action=action) from None
        started = time.monotonic()
        failure: Exception | None = None
        try:
            # The session's adapter directly: Session.send would add hook dispatch, cookie extraction and a
            # redirect generator per call, none of which a handler_api call uses (we never follow redirects).
            session = self.session
            # The casts only narrow types: _prepare always sets the url, and session.verify (typed Optional) is
            # passed through as it is.
            response = session.get_adapter(cast(str, request.url)).send(
                request, stream=False, timeout=self.timeout, verify=cast("bool | str", session.verify),
                cert=session.cert, proxies=self._proxies)
        except requests.exceptions.RequestException as exc:
            failure = self._wrap(exc, action)
        except OSError as exc:  # a custom adapter or a socket error that escaped requests
            failure = NetworkError(self._redact(f"{type(exc).__name__}: {exc} ({action})"), action=action,
                                   possibly_processed=None)
        if failure is not None:
            # Raised outside the except block: no __context__ pointing at requests' URL-bearing exception.
            raise failure
        content = response.content or b""
        text = content.decode(_charset(response.headers.get("Content-Type")), errors="replace") \
            if content else ""
        if text:
            text = self._redact(text)
        elapsed = time.monotonic() - started
        retry_after = _parse_retry_after(response.headers.get("Retry-After")) if response.status_code in (
            429, 503) else None
        if _log.isEnabledFor(logging.DEBUG):
            _log.debug("provider %s -> HTTP %s in %.3fs (%d bytes)", action, response.status_code, elapsed,
                       len(content))
        return RawResponse(status=response.status_code, text=text, retry_after=retry_after, elapsed=elapsed)

    def _wrap(self, exc: requests.exceptions.RequestException, action: str) -> Exception:
        message = self._redact(f"{type(exc).__name__}: {exc} ({action})")
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return ConnectTimeout(message, action=action, possibly_processed=False)
        if isinstance(exc, requests.exceptions.ReadTimeout):
            return ReadTimeout(message, action=action, possibly_processed=True)
        if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                            requests.exceptions.InvalidSchema, requests.exceptions.InvalidHeader)):
            return ConfigurationError(message, action=action)
        if isinstance(exc, requests.exceptions.ConnectionError):
            return NetworkError(message, action=action, possibly_processed=False if _not_sent(exc) else None)
        return NetworkError(message, action=action, possibly_processed=None)

    # ----------------------------------------------------------------------------------------------- retrying
    def request(self, action: str, params: Mapping[str, Any], parse: Callable[[RawResponse], T], *,
                idempotent: bool) -> T:
        """Send and parse; on a TransientError retry with backoff, but only if ``idempotent``.

        Parsing is inside the loop so a transient *answer* (ERROR_SQL, 5xx, 429) is retried like a network
        failure. Attempt counts and delays are logged without URLs.
        """
        attempts = 1 + (self.retry.max_retries if idempotent else 0)
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                value = parse(self.send(action, params))
            except TransientError as exc:
                self._observe(action, params, exc, started)
                attempt += 1
                if attempt >= attempts:
                    raise
                delay = self.retry.delay(attempt - 1, getattr(exc, "retry_after", None))
                _log.info("provider %s transient %s (attempt %d/%d), retrying in %.2fs", action,
                          exc.code or type(exc).__name__, attempt, attempts, delay)
                self._sleep(delay)
            except ProviderError as exc:
                self._observe(action, params, exc, started)
                raise
            else:
                self._observe(action, params, None, started)
                return value

    def _observe(self, action: str, params: Mapping[str, Any], error: ProviderError | None,
                 started: float) -> None:
        """Log one attempt and tell the observer how it went: ``ok`` or the error's class name (a bounded set of
        labels). The line names the action, result, time, provider and activation id: never the URL or key."""
        result = "ok" if error is None else type(error).__name__
        seconds = time.monotonic() - started
        if _log.isEnabledFor(logging.INFO):
            activation_id = None if action in _ID_IS_NOT_AN_ACTIVATION else \
                params.get("id", params.get("activationId"))
            _log.info("provider %s %s %s in %.1f ms", self.name or self._host, action, result, seconds * 1000,
                      extra={"action": action, "result": result, "elapsed_ms": round(seconds * 1000, 1),
                             "host": self._host, "provider": self.name,
                             "activation_id": None if activation_id is None else str(activation_id)})
        if self._observer is None:
            return
        try:
            self._observer(action, result, seconds)
        except Exception:  # noqa: BLE001 - metrics never break a provider call
            _log.debug("provider call observer failed", exc_info=True)

    def close(self) -> None:
        """Close the pool if we created the session (an injected session belongs to its owner)."""
        if self._owns_session:
            self.session.close()

    def __repr__(self) -> str:
        return f"Transport(base_url={self._redact(self.base_url)!r}, method={self.method!r}, auth={self.auth!r})"

