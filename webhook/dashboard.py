"""``/dashboard``: what an operator asks at 3 a.m., on one page that refreshes itself.

Server-rendered with Flask's templates (``webhook/templates/dashboard/``); a small script of our own
(``webhook/static/dashboard/dashboard.js``) fetches the panels again every few seconds and swaps them in, so the
page changes without a reload and nothing is downloaded at run time.

Sign-in: the API token, posted in a form body (never in a URL), compared in constant time; it sets a cookie
signed with a key derived from the token (itsdangerous, Flask's own dependency), HttpOnly, SameSite=Strict,
Secure over HTTPS, valid for SESSION_SECONDS. Rotating ``API_TOKEN`` signs every session out.

Everything shown is read from Redis with the existing keys in a few round trips: in-flight orders and rents from
their deadline sets (every live record has a deadline), recent orders from the placing-time index, events and
dead letters from their streams, per-provider counts from the events (``webhook.metrics.EventCounts``), circuit
breakers, backlogs and heartbeats.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping, Sequence, TypeVar

import redis
from flask import Blueprint, Response, redirect, render_template, request, url_for
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.wrappers import Response as BaseResponse

from lifecycle.activation import Order, State
from lifecycle.money.ledger import Ledger
from lifecycle.rent import RentOrder
from lifecycle.routing.balance import BalanceReading, BalanceStore
from webhook.context import WebContext, current_context
from webhook.health import Heartbeats, queue_heartbeat_reads, read_heartbeats, stale_after
from webhook.metrics import LABEL_SEP, EventCounts
from webhook.orders_api import iso_time
from webhook.redis_state import entry_age

dashboard = Blueprint("dashboard", __name__, template_folder="templates", static_folder="static/dashboard",
                      static_url_path="/dashboard/static")

COOKIE = "otpflow_dashboard"
SESSION_SECONDS = 12 * 3600
#: how often the page fetches its panels again (milliseconds)
REFRESH_MS = 2000
IN_FLIGHT_SHOWN, RECENT_SHOWN, EVENTS_SHOWN, FAILURES_SHOWN = 50, 15, 25, 10
#: events read from the stream's tail per refresh (recent events and failures come from them)
EVENTS_SCANNED = 300
DEAD_LETTERS_SHOWN, UNKNOWN_SHOWN = 5, 3
FAILURE_TYPES = ("order.failed", "activation.cancelled", "rent.cancelled")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

T = TypeVar("T")


# ------------------------------------------------------------------------------------------ sign-in
def _serializer(api_token: str) -> URLSafeTimedSerializer:
    key = hmac.new(api_token.encode("utf-8"), b"otpflow dashboard session", hashlib.sha256).hexdigest()
    return URLSafeTimedSerializer(key, salt="otpflow-dashboard")


def token_matches(presented: str, expected: str) -> bool:
    """Constant time: both sides are hashed first, so neither length nor content leaks through timing."""
    if not expected or not presented:
        return False
    a = hashlib.sha256(presented.strip().encode("utf-8", "surrogatepass")).digest()
    return hmac.compare_digest(a, hashlib.sha256(expected.encode("utf-8")).digest())


def signed_in() -> bool:
    """Whether the request carries a valid, unexpired session cookie."""
    expected = current_context().settings.api_token
    raw = request.cookies.get(COOKIE)
    if not expected or not raw:
        return False
    try:
        _serializer(expected).loads(raw, max_age=SESSION_SECONDS)
    except BadSignature:  # also SignatureExpired
        return False
    return True


def _secured(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


@dashboard.after_request
def _headers(response: Response) -> Response:
    return _secured(response) if request.path.startswith("/dashboard") else response


@dashboard.get("/dashboard")
def page() -> Response | tuple[str, int] | str:
    if not signed_in():
        return render_template("dashboard/login.html", error=None)
    return render_template("dashboard/page.html", view=build_view(current_context()), refresh_ms=REFRESH_MS)


@dashboard.post("/dashboard/login")
def login() -> BaseResponse | tuple[str, int]:
    expected = current_context().settings.api_token
    if not token_matches(request.form.get("token", ""), expected):
        return render_template("dashboard/login.html", error="That is not the API token."), 401
    response = redirect(url_for("dashboard.page"), code=303)
    response.set_cookie(COOKIE, _serializer(expected).dumps({"v": 1}), max_age=SESSION_SECONDS, path="/dashboard",
                        httponly=True, samesite="Strict", secure=request.is_secure)
    return response


@dashboard.post("/dashboard/logout")
def logout() -> BaseResponse:
    response = redirect(url_for("dashboard.page"), code=303)
    response.delete_cookie(COOKIE, path="/dashboard", httponly=True, samesite="Strict", secure=request.is_secure)
    return response


@dashboard.get("/dashboard/panels")
def panels() -> Response | tuple[str, int] | str:
    """The panels alone, for the page's script to swap in; 401 (and the script reloads) once signed out."""
    if not signed_in():
        return "signed out", 401
    return render_template("dashboard/panels.html", view=build_view(current_context()))


@dashboard.get("/dashboard/data.json")
def data() -> Response | tuple[Response, int]:
    """What the panels show, as JSON (times in ISO 8601)."""
    if not signed_in():
        response = Response(json.dumps({"status": "error", "error": "unauthorized", "reason": "sign in"}),
                            status=401, mimetype="application/json")
        return response
    return Response(json.dumps(build_view(current_context()), default=str), mimetype="application/json")


# ------------------------------------------------------------------------------------------ wording
def duration(seconds: float | None) -> str:
    """A span the way a person says it: ``4 s``, ``3 min``, ``2 h 5 min``, ``3 d``."""
    if seconds is None:
        return "—"
    s = abs(seconds)
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{s // 60:.0f} min"
    if s < 86400:
        return f"{s // 3600:.0f} h {s % 3600 // 60:.0f} min"
    return f"{s // 86400:.0f} d"


def until(at: float | None, now: float) -> str:
    """``in 4 s`` for a time ahead, ``4 s ago`` (overdue) for one behind."""
    if at is None:
        return "—"
    return f"in {duration(at - now)}" if at >= now else f"{duration(now - at)} ago"


# ------------------------------------------------------------------------------------------ the view
@dataclass(frozen=True)
class Reads:
    """The replies of the one pipelined round trip the view starts with."""

    deadlines: list[tuple[str, float]]
    live_orders: int
    due_orders: int
    rent_deadlines: list[tuple[str, float]]
    live_rents: int
    due_rents: int
    inbox_pending: int
    inbox_oldest: Any
    dead_count: int
    dead_letters: list[tuple[str, dict[str, str]]]
    unknown_count: int
    unknown: list[tuple[str, dict[str, str]]]
    unsettled: int
    events: list[tuple[str, dict[str, str]]]
    recent_ids: list[str]
    beat_raw: Any
    workers_raw: Any
    breakers: list[Any]


def _read(ctx: WebContext, now: float) -> Reads:
    k = ctx.keys
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.zrange(k.deadlines, 0, IN_FLIGHT_SHOWN - 1, withscores=True)
    pipe.zcard(k.deadlines)
    pipe.zcount(k.deadlines, "-inf", now)
    pipe.zrange(k.rent_deadlines, 0, IN_FLIGHT_SHOWN - 1, withscores=True)
    pipe.zcard(k.rent_deadlines)
    pipe.zcount(k.rent_deadlines, "-inf", now)
    pipe.xlen(k.inbox)
    pipe.xrange(k.inbox, count=1)
    pipe.xlen(k.dead_letters)
    pipe.xrevrange(k.dead_letters, count=DEAD_LETTERS_SHOWN)
    pipe.xlen(k.unknown_webhooks)
    pipe.xrevrange(k.unknown_webhooks, count=UNKNOWN_SHOWN)
    pipe.zcard(k.unsettled)
    pipe.xrevrange(k.events, count=EVENTS_SCANNED)
    pipe.zrevrange(k.orders, 0, RECENT_SHOWN - 1)
    queue_heartbeat_reads(pipe, k)
    for p in ctx.settings.provider_configs:
        pipe.hget(k.breaker(p.name), "open_until")
    replies = pipe.execute()
    names = [f.name for f in fields(Reads) if f.name != "breakers"]
    return Reads(**dict(zip(names, replies)), breakers=replies[len(names):])


def _safe(step: Callable[[], T], default: T) -> T:
    """One optional part of the view: an error there leaves its panel empty instead of failing the page."""
    try:
        return step()
    except (redis.RedisError, ValueError, KeyError, TypeError):
        return default


def build_view(ctx: WebContext, now: float | None = None) -> dict[str, Any]:
    """Everything the panels show, as plain data (the JSON endpoint serves it as is)."""
    now = time.time() if now is None else now
    counts = EventCounts(ctx.redis, ctx.keys)
    try:
        counts.advance()
        reads = _read(ctx, now)
    except redis.RedisError as exc:
        return {"now": iso_time(now), "redis_error": f"Redis did not answer ({type(exc).__name__})"}
    beats = read_heartbeats(reads.beat_raw, reads.workers_raw, now=now, limit=stale_after(ctx.settings))
    order_ids = [i for i, _ in reads.deadlines] + [i for i in reads.recent_ids]
    empty_orders: dict[str, Order | None] = {}
    orders = _safe(lambda: ctx.orders.store.get_many(dict.fromkeys(order_ids)), empty_orders)
    empty_rents: dict[str, RentOrder | None] = {}
    rents = _safe(lambda: ctx.rents.store.get_many([i for i, _ in reads.rent_deadlines]), empty_rents)
    events = [_event_row(entry_id, fields) for entry_id, fields in reads.events]
    totals = counts.read()
    return {
        "now": iso_time(now),
        "redis_error": None,
        "heartbeats": _heartbeat_rows(beats),
        "backlogs": {
            "orders_live": reads.live_orders, "orders_due": reads.due_orders,
            "rents_live": reads.live_rents, "rents_due": reads.due_rents,
            "inbox_pending": reads.inbox_pending,
            "inbox_oldest": duration(entry_age(reads.inbox_oldest, now)) if reads.inbox_pending else "—",
            "dead_letters": reads.dead_count, "unknown_webhooks": reads.unknown_count,
            "unsettled": reads.unsettled,
        },
        "in_flight": _in_flight(ctx, reads.deadlines, orders, now),
        "rents": _rents(reads.rent_deadlines, rents, now),
        "recent": [_order_row(o, now) for i in reads.recent_ids if (o := orders.get(i)) is not None],
        "events": events[:EVENTS_SHOWN],
        "failures": [e for e in events if e["type"] in FAILURE_TYPES][:FAILURES_SHOWN],
        "dead_letters": [_dead_letter_row(i, f) for i, f in reads.dead_letters],
        "unknown": [_unknown_row(i, f) for i, f in reads.unknown],
        "providers": provider_rows(ctx, totals, reads.breakers, now, money=_money(ctx, now)),
        "share": via_share(totals),
    }


def _heartbeat_rows(beats: Heartbeats) -> dict[str, Any]:
    def row(name: str, age: float | None, stale: bool) -> dict[str, Any]:
        return {"name": name, "age": "never" if age is None else f"{duration(age)} ago", "stale": stale}

    return {"beat": row("beat", beats.beat.age, beats.beat.stale),
            "worker": row("worker", beats.worker.age, beats.worker.stale),
            "workers": [row(w.name, w.age, w.stale) for w in beats.workers],
            "stale_after": duration(beats.stale_after)}


def _cancel_at(ctx: WebContext, order: Order) -> float | None:
    """When waiting stops: a number without a code is cancelled, a coded one finished (the activation config's
    own rule); an order without a number stops buying at its ORDER_TIMEOUT."""
    if order.state in (State.PENDING, State.BUYING):
        return order.until
    return ctx.orders.store.config.timeout_at(order)


def _order_row(order: Order, now: float) -> dict[str, Any]:
    return {"order_id": order.order_id, "state": order.state.value, "service": order.service,
            "country": "" if order.country is None else order.country, "provider": order.provider or "",
            "phone": order.phone or "", "code": order.code or "", "via": order.via or "",
            "reason": order.reason or "", "numbers": order.numbers, "cost": order.cost or "",
            "placed": iso_time(order.created_at), "age": duration(now - order.created_at)}


def _in_flight(ctx: WebContext, deadlines: Sequence[tuple[str, float]], orders: Mapping[str, Order | None],
               now: float) -> list[dict[str, Any]]:
    rows = []
    for order_id, due in deadlines:
        order = orders.get(order_id)
        if order is None or order.state.terminal:
            continue
        rows.append(_order_row(order, now) | {"next_step": until(due, now), "overdue": due < now - 5,
                                              "gives_up": until(_cancel_at(ctx, order), now),
                                              "created_at": order.created_at})
    rows.sort(key=lambda r: r.pop("created_at"), reverse=True)
    return rows


def _rents(deadlines: Sequence[tuple[str, float]], rents: Mapping[str, RentOrder | None],
           now: float) -> list[dict[str, Any]]:
    rows = []
    for order_id, due in deadlines:
        rent = rents.get(order_id)
        if rent is None or rent.state.terminal:
            continue
        rows.append({"order_id": rent.order_id, "state": rent.state.value, "service": rent.service,
                     "provider": rent.provider or "", "phone": rent.phone or "", "rent_id": rent.rent_id or "",
                     "sms": rent.sms_count, "age": duration(now - rent.created_at), "next_step": until(due, now),
                     "ends": until(rent.end_at, now), "placed": iso_time(rent.created_at)})
    return rows


def _event_row(entry_id: str, fields: Mapping[str, str]) -> dict[str, Any]:
    try:
        data = json.loads(fields.get("data") or "{}")
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    kind = str(fields.get("type", ""))
    detail = [f"{k}={data[k]}" for k in ("code", "via", "reason", "phone", "provider", "cost") if data.get(k)]
    return {"id": entry_id, "type": kind, "at": data.get("at") or "", "order_id": data.get("order_id", ""),
            "detail": " ".join(detail)}


def _dead_letter_row(entry_id: str, fields: Mapping[str, str]) -> dict[str, Any]:
    at = _float(fields.get("at"))
    return {"id": entry_id, "reason": fields.get("reason", ""), "bytes": fields.get("bytes", ""),
            "at": iso_time(at) if at else "", "body": (fields.get("body") or "")[:160],
            "truncated": fields.get("truncated") == "1"}


def _unknown_row(entry_id: str, fields: Mapping[str, str]) -> dict[str, Any]:
    at = _float(fields.get("at"))
    return {"id": entry_id, "kind": fields.get("kind", ""), "provider": fields.get("provider", ""),
            "at": iso_time(at) if at else "", "payload": (fields.get("payload") or "")[:160]}


def _float(raw: str | None) -> float | None:
    try:
        return float(raw) if raw else None
    except ValueError:
        return None


# ------------------------------------------------------------------------------------------ per provider
def _sum(counts: Mapping[str, float], kind: str, match: Callable[[list[str]], bool]) -> float:
    total = 0.0
    for field, value in counts.items():
        head, *labels = field.split(LABEL_SEP)
        if head == kind and match(labels):
            total += value
    return total


@dataclass(frozen=True)
class Money:
    """A provider's last balance reading and this UTC hour's and day's net spend (lifecycle.money, routing)."""

    balance: str
    spend: str
    low: bool = False


def _money(ctx: WebContext, now: float) -> dict[str, Money]:
    names = [p.name for p in ctx.settings.provider_configs]
    none: dict[str, BalanceReading | None] = {}
    readings = _safe(lambda: BalanceStore(ctx.redis, ctx.keys).last_many(names), none)
    ledger = Ledger(ctx.redis, ctx.keys)
    out = {}
    for config in ctx.settings.provider_configs:
        reading = readings.get(config.name)
        balance = f"{reading.amount} ({duration(now - reading.at)} ago)" if reading else "not read yet"
        spent = _safe(lambda: ledger.spent(config.name, now), None)
        limits = config.limits
        if spent is None:
            spend = "—"
        else:
            hour = f"{spent[0]}" + (f" of {limits.hourly}" if limits.hourly is not None else "")
            day = f"{spent[1]}" + (f" of {limits.daily}" if limits.daily is not None else "")
            spend = f"{day} today · {hour} this hour"
        out[config.name] = Money(balance, spend, bool(reading and reading.low))
    return out


def provider_rows(ctx: WebContext, counts: Mapping[str, float], breakers: Sequence[Any], now: float, *,
                  money: Mapping[str, Money] | None = None) -> list[dict[str, Any]]:
    """Per configured provider: its last balance, this UTC day's and hour's spend (against its limits), numbers
    bought, finished (charged), cancelled (refunded), success rate, codes by webhook and by poll, mean time to
    code, failed orders, its circuit breaker."""
    rows = []
    for config, open_until in zip(ctx.settings.provider_configs, breakers):
        name = config.name
        cash = (money or {}).get(name, Money("—", "—"))
        bought = _sum(counts, "number", lambda lb: lb[-1] == name)
        finished = _sum(counts, "activation", lambda lb: lb[0] == "finished" and lb[-1] == name)
        cancelled = _sum(counts, "activation", lambda lb: lb[0] == "cancelled" and lb[-1] == name)
        webhook = _sum(counts, "code", lambda lb: lb[0] == "webhook" and lb[-1] == name)
        poll = _sum(counts, "code", lambda lb: lb[0] == "poll" and lb[-1] == name)
        ttc_sum = _sum(counts, "ttc_sum", lambda lb: lb[0] == name)
        ttc_count = _sum(counts, "ttc_count", lambda lb: lb[0] == name)
        failed = _sum(counts, "order", lambda lb: lb[0] == "failed" and lb[-1] == name)
        ended = finished + cancelled
        until_at = _float(open_until if isinstance(open_until, str) else None)
        rows.append({
            "name": name, "dialect": config.dialect.name,
            "breaker": f"open, {until(until_at, now)}" if until_at and until_at > now else "closed",
            "breaker_open": bool(until_at and until_at > now),
            "bought": int(bought), "finished": int(finished), "cancelled": int(cancelled),
            "success": f"{100 * finished / ended:.0f} %" if ended else "—",
            "codes_webhook": int(webhook), "codes_poll": int(poll),
            "time_to_code": duration(ttc_sum / ttc_count) if ttc_count else "—",
            "failed_orders": int(failed),
            "balance": cash.balance, "balance_low": cash.low, "spend": cash.spend,
        })
    return rows


def via_share(counts: Mapping[str, float]) -> dict[str, Any]:
    """Codes that came by webhook and by poll, over every provider."""
    webhook = _sum(counts, "code", lambda lb: lb[0] == "webhook")
    poll = _sum(counts, "code", lambda lb: lb[0] == "poll")
    total = webhook + poll
    return {"webhook": int(webhook), "poll": int(poll),
            "webhook_percent": round(100 * webhook / total) if total else None}
