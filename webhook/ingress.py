"""``POST /webhooks/<token>``: receive a provider webhook, store it durably, answer fast.

The request does exactly one Redis round trip on the happy path (the inbox Lua append) and, at most once per
drain cycle, one Celery publish. It answers 200 only after the payload is in Redis, 503 when Redis fails (the
provider retries), 400 for a body we cannot store (kept in the dead-letter stream), 404 for a wrong token, 403
for an address outside the allowlist, 413 for an oversized body. No provider call happens here.
"""
from __future__ import annotations

import ipaddress
import logging
import time
import traceback
from dataclasses import dataclass
from typing import IO, Any, Callable, cast

from flask import Blueprint, Request, Response, current_app, request

from config.logging_setup import redact
from config.settings import Settings
from flows.names import TaskName
from lifecycle.inbox import InboxUnavailable
from webhook.context import WebContext, current_context
from webhook.errors import error_response, not_found, unavailable
from webhook.metrics import DIRECT_PEERS, DRAIN_PUBLISH_FAILURES, OUTCOMES, WEBHOOK_SECONDS, WEBHOOKS
from webhook.schemas import MalformedWebhook, parse_webhook
from webhook.security import IPNetwork, TokenChecker, address_allowed, client_address

log = logging.getLogger("otpflow.webhook")

# Bounded publish retries: a broker hiccup must not hold the provider past its timeout (HeroSMS: 3 s).
DRAIN_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.1, "interval_max": 0.2}
DEAD_LETTER_META_MAX = 200
INGRESS_KEY = "otpflow.ingress"
ACCEPTED_BODY = b'{"status":"accepted"}\n'
DUPLICATE_BODY = b'{"status":"duplicate"}\n'

webhooks = Blueprint("webhooks", __name__)

_COUNTERS = {outcome: WEBHOOKS.labels(outcome=outcome) for outcome in OUTCOMES}


@dataclass(frozen=True)
class IngressPolicy:
    """What the ingress checks, computed once per app from the settings."""

    #: each provider's webhook token and its name: the token a webhook arrives on says whose it is
    tokens: tuple[tuple[TokenChecker, str], ...]
    allowed: tuple[IPNetwork, ...]
    trusted_proxies: int
    max_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> "IngressPolicy":
        tokens = tuple((TokenChecker(p.webhook_token), p.name) for p in settings.provider_configs if p.webhook_token)
        return cls(tokens, tuple(settings.webhook_allowed_ips), settings.trusted_proxies, settings.webhook_max_bytes)

    def provider_of(self, token: str) -> str | None:
        """Whose webhook token ``token`` is; every token is compared (in constant time), match or not."""
        found = None
        for checker, name in self.tokens:
            if checker.matches(token) and found is None:
                found = name
        return found


class BodyUnreadable(Exception):
    """The request body could not be read: bad chunked framing, a client gone or too slow mid-body."""


def read_capped(stream: IO[bytes], limit: int) -> bytes:
    """Read at most ``limit`` bytes; a chunked body has no Content-Length, so the cap is the only bound.

    Whatever the server raises while reading (gunicorn's InvalidChunkSize, ChunkMissingTerminator, NoMoreData, a
    socket time-out) is the client's framing, not our error: :class:`BodyUnreadable`.
    """
    chunks: list[bytes] = []
    remaining = limit
    try:
        while remaining > 0:
            chunk = stream.read(min(remaining, 65_536))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    except Exception as exc:  # the WSGI server's own body errors; none of them is ours
        raise BodyUnreadable(type(exc).__name__) from exc
    return b"".join(chunks)


@webhooks.post("/webhooks/<token>")
def receive(token: str) -> Response:
    """Count and time every answer by outcome; the work is in :func:`_handle`."""
    started = time.perf_counter()
    outcome = "unavailable"
    try:
        response, outcome = _handle(token, current_context(), current_app.extensions[INGRESS_KEY])
        return response
    except Exception as exc:  # never a 500: the provider retries a 503, and the log says what broke
        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        log.error("unhandled %s while receiving a webhook; answering 503\n%s", type(exc).__name__, redact(trace))
        outcome = "error"
        return unavailable("internal error, retry later")
    finally:
        _COUNTERS[outcome].inc()
        WEBHOOK_SECONDS.observe(time.perf_counter() - started)


def _handle(token: str, ctx: WebContext, policy: IngressPolicy) -> tuple[Response, str]:
    provider = policy.provider_of(token)
    if provider is None:
        return not_found(), "unauthorized"
    req: Request = cast(Any, request)._get_current_object()  # one proxy lookup, not one per attribute

    if policy.trusted_proxies:
        warn_direct_peer(req.remote_addr)
    forwarded = req.headers.getlist("X-Forwarded-For") if policy.trusted_proxies else []
    address = client_address(req.remote_addr, forwarded, policy.trusted_proxies)
    if not address_allowed(address, policy.allowed):
        log.warning("webhook refused: client address %s is not in WEBHOOK_ALLOWED_IPS", address or "unknown")
        return error_response(403, "forbidden", "client address not allowed"), "forbidden"

    declared = req.content_length
    if declared is not None and declared > policy.max_bytes:
        return _too_large(policy), "too_large"
    # With a declared length (already <= the cap) read exactly that; a chunked body is read up to cap + 1 bytes.
    try:
        raw = read_capped(req.stream, declared if declared is not None else policy.max_bytes + 1)
    except BodyUnreadable as exc:
        log.info("webhook body unreadable (%s)", exc)
        response = error_response(400, "bad_body", "the request body could not be read (framing)")
        response.headers["Connection"] = "close"  # where the next request would start is unknown
        return response, "malformed"
    if len(raw) > policy.max_bytes:
        return _too_large(policy), "too_large"

    try:
        parsed = parse_webhook(raw)
    except MalformedWebhook as exc:
        return _reject(ctx, exc, raw, address, provider)

    if not ctx.breaker.allow():
        return unavailable(), "unavailable"
    try:
        result = ctx.inbox.append(parsed.kind, parsed.payload, parsed.fingerprint, provider=provider)
    except InboxUnavailable as exc:
        log.warning("webhook not stored, answering 503: %s", type(exc.__cause__ or exc).__name__)
        ctx.breaker.failed(exc)
        return unavailable(), "unavailable"
    ctx.breaker.succeeded()
    if parsed.replaced:
        _keep_original(ctx, raw, address)

    if result.duplicate:
        return _static(DUPLICATE_BODY), "duplicate"
    if result.schedule_drain:
        _publish_drain(ctx)
    return _static(ACCEPTED_BODY), "accepted"


_direct_peer_warned = False


def warn_direct_peer(remote_addr: str | None) -> None:
    """With TRUSTED_PROXIES > 0 the socket peer should be the proxy, on a private network. A public peer means
    the port is reachable directly, and such a client can forge X-Forwarded-For past WEBHOOK_ALLOWED_IPS: count
    it, and say so once per process."""
    global _direct_peer_warned
    try:
        public = remote_addr is not None and ipaddress.ip_address(remote_addr).is_global
    except ValueError:
        return
    if not public:
        return
    DIRECT_PEERS.inc()
    if not _direct_peer_warned:
        _direct_peer_warned = True
        log.warning("TRUSTED_PROXIES is set but a webhook came straight from the public address %s: a client "
                    "reaching this port directly can forge X-Forwarded-For past WEBHOOK_ALLOWED_IPS; expose the "
                    "port only through the proxy", remote_addr)


def _static(body: bytes) -> Response:
    """The two success answers are constants: skip JSON encoding on the hot path."""
    return Response(body, status=200, mimetype="application/json")


def _too_large(policy: IngressPolicy) -> Response:
    return error_response(413, "too_large", f"body exceeds {policy.max_bytes} bytes")


def _keep_original(ctx: WebContext, raw: bytes, address: Any) -> None:
    """The webhook was stored with characters replaced: keep the body as received next to the rejects (a second
    round trip, only in this rare case); a failure costs the copy, never the stored webhook."""
    try:
        ctx.inbox.dead_letter("stored with unencodable characters replaced by U+FFFD", raw,
                              {"stored": True, "remote": str(address or request.remote_addr or "")})
    except InboxUnavailable as err:
        log.warning("original of a stored webhook not kept: %s", type(err.__cause__ or err).__name__)


def _reject(ctx: WebContext, exc: MalformedWebhook, raw: bytes, address: Any,
            provider: str) -> tuple[Response, str]:
    """400 after keeping the body in the dead-letter stream; 503 if even that cannot be stored (nothing lost).
    The provider whose token it came on is kept, so a replay stores it as that provider's."""
    meta = {
        "provider": provider,
        "fields": exc.fields,
        "remote": str(address) if address is not None else (request.remote_addr or ""),
        "content_type": (request.content_type or "")[:DEAD_LETTER_META_MAX],
        "bytes": len(raw),
    }
    if not ctx.breaker.allow():
        return unavailable(), "unavailable"
    try:
        ctx.inbox.dead_letter(exc.reason, raw, meta)
    except InboxUnavailable as err:
        ctx.breaker.failed(err)
        log.warning("malformed webhook not dead-lettered, answering 503: %s", type(err.__cause__ or err).__name__)
        return unavailable(), "unavailable"
    log.info("malformed webhook dead-lettered: %s", exc.reason)
    return error_response(400, "malformed", exc.reason, extra={"fields": exc.fields}), "malformed"


def _publish_drain(ctx: WebContext, send: Callable[..., Any] | None = None) -> None:
    """Publish one drain task; a failure is logged, not raised: the payload is stored and the sweeper re-drains.

    The drain flag stays set until its TTL expires, so a broken broker costs at most one failed publish per TTL
    instead of one per webhook.
    """
    try:
        (send or ctx.celery.send_task)(TaskName.DRAIN_INBOX.value, retry=True, retry_policy=DRAIN_RETRY_POLICY)
    except Exception as exc:  # any broker/import failure must not turn a stored webhook into a 5xx
        DRAIN_PUBLISH_FAILURES.inc()
        log.warning("drain publish failed after the webhook was stored (%s); the sweeper will drain it",
                    type(exc).__name__)
