"""The ``otpflow`` command: run the whole product locally, the sandbox alone, orders, events, raw provider calls.

Each subcommand lives in its own module and is imported only when used, so ``otpflow --help`` stays fast and
``otpflow sandbox`` does not drag in Celery.

argparse, not click: click would not remove the small adapters below, which import each subcommand lazily and call
it with typed keywords (mypy checks them); click would only restate each parser as decorators on the same wrappers,
and it is not a dependency of ours (only Celery's).
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from config.settings import ROLES  # light: the standard library only

#: ``config --check all``: the checks of every role at once, as the Procfile's ``release`` process runs them
EVERY_ROLE = "all"


def _run(args: argparse.Namespace) -> int:
    from otpflow.run import run_local

    return run_local(port=args.port, demo=not args.no_demo, once=args.once, service=args.service,
                     country=args.country, sandbox_port=args.sandbox_port)


def _sandbox(args: argparse.Namespace, rest: list[str]) -> int:
    from sandbox.cli import main as sandbox_main

    return sandbox_main(rest)


def _demo(args: argparse.Namespace) -> int:
    from otpflow.demo import run_demo

    return run_demo(api_url=args.api, service=args.service, country=args.country, once=args.once,
                    timeout=args.timeout)


def _rent(args: argparse.Namespace) -> int:
    from otpflow.commands import rent

    return rent(service=args.service, country=args.country, operator=args.operator, hours=args.hours,
                order_id=args.order_id)


def _order(args: argparse.Namespace) -> int:
    from otpflow.commands import order

    return order(service=args.service, country=args.country, operator=args.operator, max_price=args.max_price,
                 activation_type=args.activation_type, forward=args.forward, order_id=args.order_id,
                 wait=args.wait, timeout=args.timeout)


def _status(args: argparse.Namespace) -> int:
    from otpflow.commands import status

    return status(args.order_id)


def _command(args: argparse.Namespace) -> int:
    from otpflow.commands import send_command

    return send_command(args.order_id, args.name, hours=args.hours)


def _events(args: argparse.Namespace) -> int:
    from otpflow.commands import follow_events

    return follow_events(start=args.start, follow=args.follow, count=args.count, order_id=args.order_id,
                         as_table=args.table, group=args.group, consumer=args.consumer)


def _orders(args: argparse.Namespace) -> int:
    from otpflow.commands import list_orders

    return list_orders(states=args.state, limit=args.limit, as_json=args.json)


def _balance(args: argparse.Namespace) -> int:
    from otpflow.commands import balance

    return balance(provider=args.provider, as_json=args.json)


def _prices(args: argparse.Namespace) -> int:
    from otpflow.commands import prices

    return prices(service=args.service, country=args.country, provider=args.provider, limit=args.limit,
                  as_json=args.json)


def _dead_letters(args: argparse.Namespace) -> int:
    from otpflow.dead_letters import run

    return run(args.action, args.ids, limit=args.limit, replay_all=args.all, yes=args.yes, as_json=args.json)


def _doctor(args: argparse.Namespace) -> int:
    from otpflow.doctor import run

    return run(skip_providers=args.no_providers, skip_public=args.no_public_url)


def _provider(args: argparse.Namespace) -> int:
    from otpflow.commands import provider_call

    return provider_call(args.action, args.params)


def _spend(args: argparse.Namespace) -> int:
    from otpflow.spend import show_spend

    return show_spend(as_json=args.json)


def _config(args: argparse.Namespace) -> int:
    from otpflow.commands import show_config

    if args.check == EVERY_ROLE:
        problem = _check_every_role()
        if problem:
            print(f"otpflow: {problem}", file=sys.stderr)
            return 2
        return show_config(None)
    return show_config(args.check)


def _check_every_role() -> str | None:
    """What ``config --check all`` (the Procfile's release step) reports: every role's problems, each once."""
    from config.settings import ConfigError, Settings

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        return str(exc)
    problems: list[str] = []
    for role in ROLES:
        try:
            settings.require(role)
        except ConfigError as exc:
            problems += [problem for problem in exc.problems if problem not in problems]
    return str(ConfigError(problems)) if problems else None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="otpflow", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run the whole pipeline locally (Redis, sandbox, web, worker, beat, demo order)")
    p.add_argument("--port", type=int, default=None, help="web port (default: $PORT or 8000)")
    p.add_argument("--sandbox-port", type=int, default=None, help="sandbox port (default: a free one)")
    p.add_argument("--no-demo", action="store_true", help="do not place the demo order")
    p.add_argument("--once", action="store_true", help="stop everything after the demo order has finished (exit 0)")
    p.add_argument("--service", default="tg", help="demo order service code (default tg)")
    p.add_argument("--country", default="0", help="demo order country id (default 0)")
    p.set_defaults(func=_run)

    p = sub.add_parser("sandbox", help="run the provider emulator alone (options: otpflow sandbox --help)",
                       add_help=False)
    p.set_defaults(func=None, raw=_sandbox)

    p = sub.add_parser("demo", help="place an order through the HTTP API and print its events as they arrive")
    p.add_argument("--api", default=None, help="base URL of the web app (default http://127.0.0.1:$PORT)")
    p.add_argument("--service", default="tg")
    p.add_argument("--country", default="0")
    p.add_argument("--once", action="store_true", help="exit when the activation is finished or cancelled")
    p.add_argument("--timeout", type=float, default=300.0)
    p.set_defaults(func=_demo)

    p = sub.add_parser("order", help="place an order (same code path as the HTTP API)")
    p.add_argument("service")
    p.add_argument("--country", default=None)
    p.add_argument("--operator", default=None)
    p.add_argument("--max-price", default=None)
    p.add_argument("--activation-type", type=int, default=None, choices=(0, 1, 2))
    p.add_argument("--forward", action="store_true")
    p.add_argument("--order-id", default=None, help="idempotency key (default: a new uuid)")
    p.add_argument("--wait", action="store_true", help="follow the order's events until it ends")
    p.add_argument("--timeout", type=float, default=1500.0)
    p.set_defaults(func=_order)

    p = sub.add_parser("rent", help="rent a number (same code path as POST /api/rents); follow with `events`")
    p.add_argument("service", nargs="?", default="full")
    p.add_argument("--country", default=None)
    p.add_argument("--operator", default=None)
    p.add_argument("--hours", type=int, default=4, help="rent_time in hours (default 4)")
    p.add_argument("--order-id", default=None, help="idempotency key (default: a new uuid)")
    p.set_defaults(func=_rent)

    p = sub.add_parser("status", help="show an order's or a rent's state and history")
    p.add_argument("order_id")
    p.set_defaults(func=_status)

    p = sub.add_parser("command", help="send a downstream command: finish, retry, cancel or replace an order; "
                                       "finish, cancel or prolong a rent")
    p.add_argument("order_id")
    p.add_argument("name", choices=("finish", "retry", "cancel", "replace", "prolong"))
    p.add_argument("--hours", type=int, default=None, help="prolong: rent_time in hours")
    p.set_defaults(func=_command)

    p = sub.add_parser("orders", help="list orders, newest first (GET /api/orders)")
    p.add_argument("--state", action="append", default=[], help="only orders in this state (repeat, or a comma list)")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=_orders)

    p = sub.add_parser("events", help="print the downstream event stream (JSON lines, or a table)")
    p.add_argument("--from", dest="start", default="0", help="stream id to start after (0 = beginning, $ = new only)")
    p.add_argument("--follow", "-f", action="store_true", help="keep waiting for new events")
    p.add_argument("--count", type=int, default=None, help="stop after this many events")
    p.add_argument("--order-id", default=None, help="only this order's events")
    p.add_argument("--table", action="store_true", help="aligned columns: time, type, order, detail")
    p.add_argument("--group", default=None, metavar="NAME",
                   help="read through this consumer group (created at --from if missing), acknowledging each event")
    p.add_argument("--consumer", default=None, help="consumer name within --group (default: host and pid)")
    p.set_defaults(func=_events)

    p = sub.add_parser("balance", help="each provider's balance (getBalance; never buys)")
    p.add_argument("--provider", default=None, help="only this provider (a name from PROVIDERS)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_balance)

    p = sub.add_parser("prices", help="what SERVICE costs at every provider, cheapest first")
    p.add_argument("service")
    p.add_argument("--country", default=None)
    p.add_argument("--provider", default=None, help="only this provider")
    p.add_argument("--limit", type=int, default=20, help="rows shown (default 20)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_prices)

    p = sub.add_parser("dead-letters", help="webhooks that could not be stored: list, show ID, replay ID|--all, "
                                            "purge --yes")
    p.add_argument("action", choices=("list", "show", "replay", "purge"))
    p.add_argument("ids", nargs="*", metavar="ID")
    p.add_argument("--all", action="store_true", help="replay: every dead letter")
    p.add_argument("--yes", action="store_true", help="purge: really delete them all")
    p.add_argument("--limit", type=int, default=50, help="list: how many, newest first")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_dead_letters)

    p = sub.add_parser("doctor", help="check configuration, Redis, providers, PUBLIC_URL and heartbeats; each "
                                      "problem with its fix")
    p.add_argument("--no-providers", action="store_true", help="do not call the providers")
    p.add_argument("--no-public-url", action="store_true", help="do not call PUBLIC_URL")
    p.set_defaults(func=_doctor)

    p = sub.add_parser("provider",
                       help="raw handler_api call: otpflow provider getBalance, otpflow provider getStatus id=123")
    p.add_argument("action")
    p.add_argument("params", nargs="*", metavar="key=value")
    p.set_defaults(func=_provider)

    p = sub.add_parser("spend", help="spend this UTC hour and day against the limits, reserved, and the accounting")
    p.add_argument("--json", action="store_true", help="the report as JSON (as GET /api/spend)")
    p.set_defaults(func=_spend)

    p = sub.add_parser("config", help="print the effective settings (secrets masked) and check them for a role")
    p.add_argument("--check", choices=(*ROLES, EVERY_ROLE), default=None,
                   help="exit 2 naming each setting ROLE cannot run with; all: every role (the release step)")
    p.set_defaults(func=_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "sandbox":
        return _sandbox(argparse.Namespace(), argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from otpflow.commands import explain

        known = explain(exc)
        if known is None:
            raise
        code, line = known
        print(f"otpflow {args.cmd}: {line}", file=sys.stderr)
        return int(code)


if __name__ == "__main__":
    sys.exit(main())
