"""The operator subcommands of ``otpflow``: orders, status, commands, events, balances, prices, raw provider
calls, config.

Orders from the CLI go through the same code as ``POST /api/orders`` (``lifecycle.activation.OrderService`` then
the ``otpflow.place_order`` task), so the three entry points (HTTP, Celery task, CLI) cannot drift apart.

Every user error is one line on stderr naming what to fix, and an :class:`ExitCode` scripts can rely on (README,
"The otpflow command"): :class:`UserError` carries both; :func:`explain` turns what escapes a command (an
unreachable Redis, a bad setting) into the same.
"""
from __future__ import annotations

import enum
import json
import sys
import time
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from config.redis_client import make_redis
from config.settings import ConfigError, Settings
from flows.names import TaskName
from otpflow.event_feed import TERMINAL, FeedEvent, feed

if TYPE_CHECKING:  # imported lazily at run time (they pull in Redis scripts and Celery)
    from celery import Celery

    from lifecycle.activation import OrderService


class ExitCode(enum.IntEnum):
    """What ``otpflow`` exits with; a public contract (README)."""

    OK = 0
    #: what was asked for did not succeed: the order failed or was cancelled, no such order, the command was
    #: refused, a provider answered an error, ``doctor`` found a problem
    FAILED = 1
    #: the command line or a setting is wrong (the message names it); also a port already in use
    USAGE = 2
    #: Redis did not answer (or refused the write): start it, or fix REDIS_URL
    REDIS = 3
    #: a provider could not be reached (network, 5xx, time-out, rate limit): try again later
    PROVIDER = 4
    #: interrupted (Ctrl-C)
    INTERRUPTED = 130


class UserError(Exception):
    """A problem the user fixes: one line, and the exit code it maps to."""

    def __init__(self, message: str, code: ExitCode = ExitCode.USAGE) -> None:
        super().__init__(message)
        self.code = code


def redis_where(url: str) -> str:
    """host:port/db of a Redis URL, without its password."""
    from urllib.parse import urlparse

    try:
        parsed = urlparse(url)
        return f"{parsed.hostname or '?'}:{parsed.port or 6379}{parsed.path or ''}"
    except ValueError:
        return "the configured Redis"


def explain(exc: BaseException) -> tuple[ExitCode, str] | None:
    """The exit code and the one line for an error that escaped a command, or None when it is a bug of ours."""
    import redis

    if isinstance(exc, UserError):
        return exc.code, str(exc)
    if isinstance(exc, ConfigError):
        return ExitCode.USAGE, "; ".join(exc.problems)
    if isinstance(exc, redis.RedisError):
        try:
            where = redis_where(Settings.from_env().redis_url)
        except ConfigError:
            where = "the configured Redis"
        if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
            return ExitCode.REDIS, (f"Redis at {where} did not answer ({type(exc).__name__}): start it, or set "
                                    f"REDIS_URL to a running one")
        return ExitCode.REDIS, f"Redis at {where} refused the command ({str(exc)[:200]})"
    return None


def _settings(role: str | None = None) -> Settings:
    try:
        settings = Settings.from_env()
        return settings.require(role) if role else settings
    except ConfigError as exc:
        print(f"otpflow: {exc}", file=sys.stderr)
        raise SystemExit(ExitCode.USAGE) from None


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Rows in aligned columns (``-`` for a missing value)."""
    cells = [[str(h) for h in header]] + [["-" if c is None or c == "" else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells)


def _country(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise UserError(f"--country must be a country id (a whole number), got {raw!r}") from None
    if value < 0:
        raise UserError(f"--country must be 0 or more, got {raw!r}")
    return value


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def follow_events(*, start: str, follow: bool, count: int | None, order_id: str | None, as_table: bool = False,
                  group: str | None = None, consumer: str | None = None) -> int:
    """Print events: JSON lines ``{"id", "type", "data"}``, or a table (``--table``: time, type, order, detail);
    with --follow, block for new ones. ``--group NAME`` reads through that consumer group (created at ``--from``
    when missing) and acknowledges each event once printed, as a downstream consumer would."""
    settings = _settings()
    client = make_redis(settings)
    events = (_group_feed(client, settings.events_stream, group, consumer, start=start, follow=follow)
              if group else feed(client, settings.events_stream, start=start, follow=follow))
    seen = 0
    if as_table:
        print(table(EVENT_COLUMNS, []), flush=True)
    for event in events:
        if order_id and event.data.get("order_id") != order_id:
            continue
        print(table(EVENT_COLUMNS, [event_cells(event)]).split("\n", 1)[1] if as_table else event.as_json(),
              flush=True)
        seen += 1
        if count is not None and seen >= count:
            break
    return ExitCode.OK


EVENT_COLUMNS = ("at", "type", "order", "detail")
_DETAIL = ("phone", "code", "via", "reason", "provider", "cost", "rent_id", "text")


def event_cells(event: FeedEvent) -> list[object]:
    data = event.data
    detail = " ".join(f"{k}={str(data[k])[:40]}" for k in _DETAIL if data.get(k) not in (None, ""))
    return [data.get("at", ""), event.type, data.get("order_id", ""), detail]


def _group_feed(client: Any, stream: str, group: str, consumer: str | None, *, start: str,
                follow: bool) -> Iterator[FeedEvent]:
    """Events through consumer group ``group``: this consumer's unacknowledged ones first, then new ones; each is
    acknowledged after the caller had it (the caller prints it before asking for the next)."""
    import os
    import socket

    import redis

    name = consumer or f"otpflow-cli-{socket.gethostname()}-{os.getpid()}"
    try:
        client.xgroup_create(stream, group, id="0" if start in ("0", "") else start, mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise UserError(f"--group {group}: {exc}") from None
    cursor = "0"  # first what this consumer was given and never acknowledged
    while True:
        batch: Any = client.xreadgroup(group, name, {stream: cursor}, count=100,
                                       block=1000 if follow and cursor == ">" else None)
        rows = [row for _stream, entries in batch or [] for row in entries]
        if not rows:
            if cursor == "0":
                cursor = ">"
                continue
            if follow:
                continue
            return
        for entry_id, fields in rows:
            if fields is None:  # deleted (trimmed) while pending
                client.xack(stream, group, entry_id)
                continue
            try:
                data = json.loads(fields.get("data") or "{}")
            except ValueError:
                data = {"raw": fields.get("data")}
            yield FeedEvent(str(entry_id), str(fields.get("type")), data if isinstance(data, dict) else {})
            client.xack(stream, group, entry_id)


def provider_call(action: str, params: list[str]) -> int:
    """A raw handler_api call with the configured provider; prints the parsed answer or the typed error."""
    from provider import ProviderClient
    from provider.errors import ProviderError

    settings = _settings("worker")
    kwargs: dict[str, str] = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"otpflow provider: expected key=value, got {item!r}", file=sys.stderr)
            return 2
        kwargs[key] = value
    client = ProviderClient(settings.provider_api_key, dialect=settings.provider, base_url=settings.provider_url,
                            connect_timeout=settings.provider_connect_timeout,
                            read_timeout=settings.provider_read_timeout)
    try:
        answer = client.call(action, **kwargs)
    except ProviderError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if isinstance(answer, (dict, list)):
        _print_json(answer)
    else:
        print(answer)
    return 0


def show_config(role: str | None) -> int:
    """The effective settings, secrets masked (URL passwords too); warnings about risky combinations on stderr."""
    from config.logging_setup import redact

    settings = _settings(role)
    print(redact(json.dumps(settings.public_dict(), indent=2, ensure_ascii=False, default=str)))
    for warning in config_warnings(settings):
        print(f"otpflow config: warning: {warning}", file=sys.stderr)
    return 0


def config_warnings(settings: Settings) -> list[str]:
    """Settings that work but look exposed."""
    warnings: list[str] = []
    if settings.trusted_proxies > 0:
        warnings.append(
            f"TRUSTED_PROXIES={settings.trusted_proxies}: X-Forwarded-For is believed, so a client that reaches "
            f"the web port directly (not through the proxy) can forge its address"
            + (" past WEBHOOK_ALLOWED_IPS" if settings.webhook_allowed_ips else "")
            + "; make sure only the proxy can reach it (on Heroku the router is the only way in)")
    return warnings


def _order_service(settings: Settings, client: Any = None) -> OrderService:
    from config.domain import order_service

    return order_service(settings, client if client is not None else make_redis(settings))


def _publisher(settings: Settings) -> Celery:
    from worker.celery_app import make_celery

    return make_celery(settings)


def order(*, service: str, country: str | None, operator: str | None, max_price: str | None,
          activation_type: int | None, forward: bool, order_id: str | None, wait: bool, timeout: float) -> int:
    """Store the order and publish ``otpflow.place_order``: the same two steps as ``POST /api/orders``.

    The order id is chosen here when none is given, so every message can name it. When the order is stored but
    the publish fails, the order is still bought (its deadline makes the sweeper publish it): the command says so,
    and how to follow it, and exits 0; it never suggests running ``order`` again without the same id.
    """
    import uuid

    import redis

    from lifecycle.activation import OrderError, OrderRequest
    from webhook.validation import InvalidAmount, parse_amount, text_problem

    settings = _settings()
    order_id = order_id or uuid.uuid4().hex
    try:
        price = parse_amount(max_price) if max_price else None
        problem = text_problem(service) or (text_problem(operator) if operator else None)
        if problem:
            raise ValueError(f"service/operator {problem}")
        request = OrderRequest(service=service, country=_country(country),
                               operator=operator, max_price=price,
                               activation_type=activation_type, forward=forward or None, order_id=order_id)
    except InvalidAmount as exc:
        print(f"otpflow order: --max-price {exc}", file=sys.stderr)
        return 2
    except UserError as exc:
        print(f"otpflow order: {exc}", file=sys.stderr)
        return exc.code
    except (OrderError, ValueError) as exc:
        print(f"otpflow order: {exc}", file=sys.stderr)
        return 2
    try:
        placed, created = _order_service(settings).submit(request)
    except OrderError as exc:
        print(f"otpflow order: {exc}", file=sys.stderr)
        return 2
    except redis.RedisError as exc:
        print(f"otpflow order: Redis did not answer ({type(exc).__name__}); the order {order_id} may or may not "
              f"be stored. Run the same command again with --order-id {order_id}: it is idempotent and never "
              f"buys twice", file=sys.stderr)
        return ExitCode.REDIS
    published = True
    if created:
        try:
            _publisher(settings).send_task(TaskName.PLACE_ORDER.value, kwargs={"order_id": placed.order_id})
        except Exception as exc:  # kombu and Redis errors alike: the order is stored either way
            published = False
            print(f"otpflow order: the order {placed.order_id} is stored, but its purchase task could not be "
                  f"published ({type(exc).__name__}); the sweeper publishes it within a few seconds, so it will "
                  f"be bought once. Follow it with `otpflow status {placed.order_id}` or `otpflow events "
                  f"--follow --order-id {placed.order_id}`. Do not run `otpflow order` again for it (without "
                  f"--order-id {placed.order_id} that would be a second order).", file=sys.stderr)
    _print_json({"order_id": placed.order_id, "state": placed.state.value, "created": created,
                 "published": published})
    if not wait:
        return 0
    return wait_for_order(make_redis(settings), settings.events_stream, placed.order_id, timeout=timeout,
                          progress=sys.stdout.isatty())


def _order_ticks(client: Any, stream: str, order_id: str, timeout: float) -> Iterator[FeedEvent | None]:
    """The order's events from the stream's start, and None about every second while none comes; ends after
    its terminal event or at ``timeout``."""
    deadline = time.monotonic() + timeout
    cursor = "0"
    while time.monotonic() < deadline:
        batch: Any = client.xread({stream: cursor}, block=1000, count=100)
        if not batch:
            yield None
            continue
        for _stream, entries in batch:
            for entry_id, fields in entries:
                cursor = entry_id
                try:
                    data = json.loads(fields.get("data") or "{}")
                except ValueError:
                    continue
                if not isinstance(data, dict) or data.get("order_id") != order_id:
                    continue
                event = FeedEvent(str(entry_id), str(fields.get("type")), data)
                yield event
                if event.type in TERMINAL:
                    return


def milestone(event: FeedEvent) -> str | None:
    """What a person watching an order wants to read about ``event`` (None: nothing worth a line)."""
    d = event.data
    if event.type == "number.assigned":
        cost = f", {d['cost']}" if d.get("cost") else ""
        return f"number {d.get('phone', '?')} ({d.get('provider', '?')}{cost}): waiting for the code"
    if event.type == "code.received":
        return f"code {d.get('code', '?')} (by {d.get('via', '?')})"
    if event.type in ("activation.cancelled", "activation.finished") and d.get("replaced"):
        return f"number {d.get('phone', '')} given up ({d.get('reason', '')}): buying another"
    if event.type in TERMINAL:
        return f"order {event.type.split('.', 1)[1]}" + (f": {d['reason']}" if d.get("reason") else "")
    return None


def wait_for_order(client: Any, stream: str, order_id: str, *, timeout: float, progress: bool) -> int:
    """Follow one order to its end. On a terminal (``progress``): a line per step (number, code, end) with the
    elapsed time, and a status line ticking in between; piped: the events as JSON lines. Exit: 0 completed, 1
    cancelled, failed or timed out."""
    started = time.monotonic()
    status, last_type = "waiting for a number", ""
    for event in _order_ticks(client, stream, order_id, timeout):
        elapsed = time.monotonic() - started
        if event is None:
            if progress:
                sys.stdout.write(f"\r\x1b[K{elapsed:6.1f} s  {status} ...")
                sys.stdout.flush()
            continue
        last_type = event.type
        if not progress:
            print(json.dumps({"type": event.type, "data": event.data}, ensure_ascii=False), flush=True)
            continue
        said = milestone(event)
        if said:
            sys.stdout.write(f"\r\x1b[K{elapsed:6.1f} s  {said}\n")
            sys.stdout.flush()
            status = "waiting for the code" if event.type == "number.assigned" else \
                "finishing" if event.type == "code.received" else "buying another number"
    if last_type in TERMINAL:
        return TERMINAL[last_type]
    if progress:
        sys.stdout.write("\n")
    print(f"otpflow order: still not ended after {timeout:g} s; follow it with `otpflow status {order_id}`",
          file=sys.stderr)
    return ExitCode.FAILED


def rent(*, service: str, country: str | None, operator: str | None, hours: int, order_id: str | None) -> int:
    """Store a rent order and publish ``otpflow.place_rent``: the same two steps as ``POST /api/rents``."""
    from config.domain import rent_service
    from lifecycle.rent import RentError, RentRequest

    settings = _settings()
    try:
        request = RentRequest(service=service, country=int(country) if country is not None else None,
                              operator=operator, hours=int(hours), order_id=order_id)
        placed, created = rent_service(settings, make_redis(settings)).submit(request)
    except (RentError, ValueError) as exc:
        print(f"otpflow rent: {exc}", file=sys.stderr)
        return 2
    if created:
        _publisher(settings).send_task(TaskName.PLACE_RENT.value, kwargs={"order_id": placed.order_id})
    _print_json({"order_id": placed.order_id, "state": placed.state.value, "created": created})
    return 0


def status(order_id: str) -> int:
    """An order's (or a rent's) state and history, times in ISO 8601."""
    from config.domain import rent_service
    from webhook.orders_api import iso_time, order_view

    settings = _settings()
    client = make_redis(settings)
    found = _order_service(settings, client).get(order_id)
    if found is not None:
        body = order_view(found)
        body["history"] = [{"state": h.label, "at": iso_time(h.at)} for h in found.history]
        _print_json(body)
        return ExitCode.OK
    rent_order = rent_service(settings, client).get(order_id)
    if rent_order is None:
        print(f"otpflow status: no order or rent {order_id!r}", file=sys.stderr)
        return ExitCode.FAILED
    body = rent_order.public() | {"created_at": iso_time(rent_order.created_at),
                                  "end_at": iso_time(rent_order.end_at)}
    body["history"] = [{"state": label, "at": iso_time(at)} for label, at in rent_order.history]
    _print_json({k: v for k, v in body.items() if v is not None})
    return ExitCode.OK


#: commands of activation orders and of rents (``otpflow command``)
ORDER_COMMANDS = ("finish", "retry", "cancel", "replace")
RENT_COMMANDS = ("finish", "cancel", "prolong")


def send_command(order_id: str, name: str, *, hours: int | None = None) -> int:
    """finish, retry, cancel or replace an order; finish, cancel or prolong (``--hours``) a rent: recorded on the
    record, then carried out by ``otpflow.command`` / ``otpflow.rent_command`` in a worker."""
    from config.domain import rent_service
    from lifecycle.activation import CommandConflict, UnknownOrder

    settings = _settings()
    client = make_redis(settings)
    try:
        if name not in ORDER_COMMANDS:
            raise UnknownOrder(order_id)
        accepted = _order_service(settings, client).request(order_id, name)
    except UnknownOrder:
        if rent_service(settings, client).get(order_id) is not None:
            return _rent_command(settings, client, order_id, name, hours)
        known = "" if name in ORDER_COMMANDS else f" ({name} is a rent command: {', '.join(RENT_COMMANDS)})"
        print(f"otpflow command: no order {order_id!r}{known}", file=sys.stderr)
        return ExitCode.FAILED
    except CommandConflict as exc:
        print(f"otpflow command: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    _publisher(settings).send_task(TaskName.COMMAND.value, kwargs={"order_id": order_id, "command": name})
    _print_json({"order_id": order_id, "command": name, "state": accepted.state.value})
    return ExitCode.OK


def _rent_command(settings: Settings, client: Any, order_id: str, name: str, hours: int | None) -> int:
    from config.domain import rent_service
    from lifecycle.rent import RentCommandConflict, RentError

    if name not in RENT_COMMANDS:
        print(f"otpflow command: {order_id} is a rent: its commands are {', '.join(RENT_COMMANDS)}", file=sys.stderr)
        return ExitCode.USAGE
    if name == "prolong" and hours is None:
        print("otpflow command: prolong needs --hours H (4, 12, 24, then multiples of 24)", file=sys.stderr)
        return ExitCode.USAGE
    try:
        accepted = rent_service(settings, client).request(order_id, name, hours=hours)
    except RentError as exc:
        print(f"otpflow command: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except RentCommandConflict as exc:
        why = ("the provider no longer allows cancelling it (an SMS arrived, or 20 minutes passed)"
               if exc.reason == "cant_cancel" else f"not allowed now ({exc.reason})")
        print(f"otpflow command: {name} rent {order_id}: {why}", file=sys.stderr)
        return ExitCode.FAILED
    _publisher(settings).send_task(TaskName.RENT_COMMAND.value, kwargs={"order_id": order_id, "command": name})
    _print_json({"order_id": order_id, "kind": "rent", "command": name, "state": accepted.state.value})
    return ExitCode.OK


ORDER_COLUMNS = ("placed", "order", "state", "service", "country", "provider", "phone", "code", "reason")


def list_orders(*, states: Sequence[str], limit: int, as_json: bool) -> int:
    """Orders newest first (``GET /api/orders``'s listing), optionally in some states."""
    from lifecycle.activation import State
    from webhook.orders_api import order_view

    known = {s.value: s for s in State}
    wanted = [v.strip() for raw in states for v in raw.split(",") if v.strip()]
    if bad := [v for v in wanted if v not in known]:
        raise UserError(f"--state: unknown {', '.join(bad)} (known: {', '.join(known)})")
    if not 1 <= limit <= 1000:
        raise UserError("--limit: from 1 to 1000")
    settings = _settings()
    orders = _order_service(settings).recent(states=frozenset(known[v] for v in wanted), limit=limit)
    rows = [order_view(o) for o in orders]
    if as_json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False, default=str))
        return ExitCode.OK
    print(table(ORDER_COLUMNS, [[r.get("created_at"), r["order_id"], r["state"], r.get("service"), r.get("country"),
                                 r.get("provider"), r.get("phone"), r.get("code"), r.get("reason")] for r in rows]))
    return ExitCode.OK


# ------------------------------------------------------------------------------------------ providers
def _provider_settings() -> Settings:
    """The settings, with an API key for every provider (the ``cli`` role checks none: most commands need none)."""
    settings = _settings()
    missing = [p.var("API_KEY") for p in settings.provider_configs if not p.api_key]
    if missing:
        raise UserError(f"{', '.join(missing)}: required to ask the provider (its API key)")
    return settings


def _clients(settings: Settings, only: str | None) -> dict[str, Any]:
    from flows.runtime import build_providers

    clients = build_providers(settings)
    if only is not None:
        if only not in clients:
            raise UserError(f"--provider: {only!r} is not configured (configured: {', '.join(clients)})")
        return {only: clients[only]}
    return clients


def _worse(a: ExitCode, b: ExitCode) -> ExitCode:
    """Of two outcomes, the one to exit with: a refusal (1) over an unreachable provider (4) over success."""
    rank = {ExitCode.OK: 0, ExitCode.PROVIDER: 1, ExitCode.FAILED: 2}
    return a if rank.get(a, 3) >= rank.get(b, 3) else b


def _provider_problem(exc: Exception) -> tuple[ExitCode, str]:
    """How a failed provider call is told, and what it means for the exit code."""
    from provider.errors import ErrorKind, ProviderError

    if isinstance(exc, ProviderError):
        transient = exc.kind in (ErrorKind.OUTAGE, ErrorKind.RATE_LIMITED)
        return (ExitCode.PROVIDER if transient else ExitCode.FAILED), f"{type(exc).__name__}: {exc}"
    return ExitCode.PROVIDER, f"{type(exc).__name__}: {exc}"


def balance(*, provider: str | None, as_json: bool) -> int:
    """Each provider's balance, asked now (getBalance: reads only, never buys). Exit 1 when a provider refused
    (a bad key), 4 when one could not be reached, else 0."""
    settings = _provider_settings()
    rows: list[dict[str, Any]] = []
    worst = ExitCode.OK
    for name, client in _clients(settings, provider).items():
        try:
            rows.append({"provider": name, "balance": str(client.get_balance().amount)})
        except Exception as exc:  # every provider is asked, whatever the others answer
            code, said = _provider_problem(exc)
            worst = _worse(worst, code)
            rows.append({"provider": name, "error": said})
    if as_json:
        print(json.dumps(rows, ensure_ascii=False))
    else:
        print(table(("provider", "balance", "error"), [[r["provider"], r.get("balance"), r.get("error")]
                                                       for r in rows]))
    return worst


PRICE_READERS = {"getPrices": "get_prices", "getPricesExtended": "get_prices_extended",
                 "getPricesVerification": "get_prices_verification"}


def prices(*, service: str, country: str | None, provider: str | None, limit: int, as_json: bool) -> int:
    """What ``service`` costs at every provider (each with its dialect's price action), cheapest first."""
    settings = _provider_settings()
    wanted = _country(country)
    rows: list[dict[str, Any]] = []
    worst = ExitCode.OK
    for name, client in _clients(settings, provider).items():
        reader = PRICE_READERS.get(settings.provider_config(name).dialect.price_action, "get_prices")
        try:
            kwargs: dict[str, Any] = {"service": service}
            if reader != "get_prices_verification" and wanted is not None:
                kwargs["country"] = wanted
            found = getattr(client, reader)(**kwargs)
        except Exception as exc:
            code, said = _provider_problem(exc)
            worst = _worse(worst, code)
            rows.append({"provider": name, "error": said})
            continue
        for price in found:
            if price.service == service and (wanted is None or str(price.country) == str(wanted)):
                rows.append({"provider": name, "country": price.country,
                             "cost": None if price.cost is None else str(price.cost), "count": price.count,
                             "physical": price.physical_count})
    priced = sorted((r for r in rows if "error" not in r), key=lambda r: (r["cost"] is None, _cost(r["cost"])))
    shown = priced[:limit] + [r for r in rows if "error" in r]
    if as_json:
        print(json.dumps(shown, ensure_ascii=False))
    else:
        print(table(("provider", "country", "cost", "count", "physical", "error"),
                    [[r["provider"], r.get("country"), r.get("cost"), r.get("count"), r.get("physical"),
                      r.get("error")] for r in shown]))
        if not priced and worst == ExitCode.OK:
            print(f"otpflow prices: no provider sells {service}" + (f" in country {wanted}" if wanted is not None
                                                                     else ""), file=sys.stderr)
    return worst


def _cost(raw: str | None) -> float:
    try:
        return float(raw) if raw is not None else 0.0
    except ValueError:
        return 0.0
