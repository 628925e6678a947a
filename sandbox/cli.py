"""Command line: `python -m sandbox` / `otpflow sandbox` serve one emulated provider until interrupted.

By default under gunicorn (one gthread worker, HTTP/1.1 keep-alive, like the nginx-fronted real providers);
`--server werkzeug` keeps the old in-thread werkzeug server, which closes the connection after every answer.
"""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from .app import create_app, engine_of
from .catalogue import Catalogue, OfferPatch
from .config import SandboxConfig
from .dialects import DIALECTS
from .server import serve_in_thread



def mask(secret: str) -> str:
    """A key as the start banner shows it: its first two characters and its length, never the key."""
    return f"{secret[:2]}… ({len(secret)} characters)" if len(secret) > 4 else "***"

def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _service_country(parts: list[str], text: str) -> tuple[str, int]:
    try:
        return parts[0], int(parts[1])
    except (IndexError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r}: expected SERVICE:COUNTRY:… (e.g. tg:0:…)") from None


def _price_option(text: str) -> OfferPatch:
    """`--price tg:0:0.25`: service, country, price."""
    parts = text.split(":")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"{text!r}: expected SERVICE:COUNTRY:PRICE (e.g. tg:0:0.25)")
    service, country = _service_country(parts, text)
    try:
        return OfferPatch.from_json({"service": service, "country": country, "price": parts[2]})
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def _stock_option(text: str) -> int | OfferPatch:
    """`--stock 5` (every offer) or `--stock tg:0:5` (count and real stock) or `--stock tg:0:5:0` (count 5,
    real stock 0)."""
    if text.strip().isdigit():
        return int(text)
    parts = text.split(":")
    if len(parts) not in (3, 4):
        raise argparse.ArgumentTypeError(f"{text!r}: expected N or SERVICE:COUNTRY:COUNT[:PHYSICAL] (e.g. tg:0:5)")
    service, country = _service_country(parts, text)
    data: dict[str, Any] = {"service": service, "country": country, "count": parts[2]}
    if len(parts) == 4:
        data["physical_count"] = parts[3]
    try:
        return OfferPatch.from_json(data)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def read_catalogue(path: str) -> list[OfferPatch]:
    """A JSON file of offers: a list of `{"service","country","price"?,"count"?,"physical_count"?}` or
    `{"offers": [...]}` (the body of POST /control/catalogue)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read catalogue {path}: {exc}") from None
    items = data.get("offers") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ValueError(f"catalogue {path}: expected a list of offers or {{\"offers\": [...]}}")
    try:
        return [OfferPatch.from_json(item) for item in items]
    except ValueError as exc:
        raise ValueError(f"catalogue {path}: {exc}") from None


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    """The SandboxConfig the options describe (ValueError for a catalogue that cannot apply)."""
    patches: list[OfferPatch] = read_catalogue(args.catalogue) if args.catalogue else []
    patches += args.price or []
    stock_all = 100
    for item in args.stock or []:
        if isinstance(item, int):
            stock_all = item
        else:
            patches.append(item)
    config = SandboxConfig(api_key=args.api_key, webhook_url=args.webhook_url, auto_sms_after=args.auto_sms_after,
                           dialect=args.dialect, balance=args.balance, access_log=args.access_log,
                           currency=args.currency, seed=args.seed, stock=stock_all, catalogue=tuple(patches))
    Catalogue(stock=config.stock).apply(config.catalogue)    # fail now, not in the server's worker
    return config


def build_parser(prog: str = "sandbox") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Serve an SMS-Activate handler_api emulator (test money only).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8099)
    p.add_argument("--api-key", default="sandbox-key")
    p.add_argument("--webhook-url", default=None, help="account-wide activation webhook URL")
    p.add_argument("--auto-sms-after", type=float, default=None, metavar="SECONDS",
                   help="deliver a code this many seconds after each purchase")
    p.add_argument("--dialect", default="sms-activate", choices=sorted(DIALECTS))
    p.add_argument("--balance", type=_decimal, default=Decimal("100"))
    p.add_argument("--currency", type=int, default=840, help="the account's currency (ISO 4217 numeric)")
    p.add_argument("--price", type=_price_option, action="append", metavar="SERVICE:COUNTRY:PRICE",
                   help="an offer's price, e.g. tg:0:0.25 (repeatable)")
    p.add_argument("--stock", type=_stock_option, action="append", metavar="N|SERVICE:COUNTRY:COUNT[:PHYSICAL]",
                   help="stock of every offer (N), or of one: tg:0:5, or count 5 with real stock 0: tg:0:5:0 "
                        "(repeatable)")
    p.add_argument("--catalogue", metavar="FILE",
                   help="JSON offers applied first: [{\"service\",\"country\",\"price\",\"count\","
                        "\"physical_count\"}] (the body of POST /control/catalogue)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of phones, codes and ids (two sandboxes with one seed give the same ids)")
    p.add_argument("--access-log", action="store_true", help="log each request (api_key redacted)")
    p.add_argument("--server", default="gunicorn", choices=("gunicorn", "werkzeug"),
                   help="gunicorn (default): one gthread worker, HTTP/1.1 keep-alive; werkzeug: the old "
                        "threaded dev server (Connection: close on every answer)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run until SIGINT/SIGTERM; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.server == "werkzeug":
        return _serve_werkzeug(config, args)
    from .gunicorn_server import bind, serve  # imports gunicorn only when it is used

    try:
        listener = bind(args.host, args.port)
    except OSError as exc:
        print(f"sandbox: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    url = _url(args.host, listener.getsockname()[1])
    # create_app runs in the gunicorn worker, so the engine's threads live where requests are served
    return serve(lambda: create_app(config), listener, access_log=args.access_log,
                 on_ready=lambda: _announce(config, url))


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _announce(config: SandboxConfig, url: str) -> None:
    """The one line naming the URL (tests and users wait for it; the app is ready when it appears)."""
    print(f"sandbox ({config.dialect}) serving {url}/stubs/handler_api.php "
          f"(api key {mask(config.api_key)}); control API at {url}/control/", flush=True)


def _serve_werkzeug(config: SandboxConfig, args: argparse.Namespace) -> int:
    """The old server: werkzeug in a thread of this process, stopped by SIGTERM/SIGINT."""
    app = create_app(config)
    try:
        server = serve_in_thread(app, args.host, args.port, access_log=args.access_log)
    except OSError as exc:
        print(f"sandbox: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        engine_of(app).close()
        return 2
    done = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    _announce(config, server.url)
    done.wait()
    server.stop()
    return 0
