"""Command line: `python -m sandbox` / `otpflow sandbox` serve one emulated provider until interrupted.

By default under gunicorn (one gthread worker, HTTP/1.1 keep-alive, like the nginx-fronted real providers);
`--server werkzeug` keeps the old in-thread werkzeug server, which closes the connection after every answer.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from decimal import Decimal, InvalidOperation

from .app import create_app, engine_of
from .config import SandboxConfig
from .dialects import DIALECTS
from .server import serve_in_thread


def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


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
    p.add_argument("--access-log", action="store_true", help="log each request (api_key redacted)")
    p.add_argument("--server", default="gunicorn", choices=("gunicorn", "werkzeug"),
                   help="gunicorn (default): one gthread worker, HTTP/1.1 keep-alive; werkzeug: the old "
                        "threaded dev server (Connection: close on every answer)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run until SIGINT/SIGTERM; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = SandboxConfig(api_key=args.api_key, webhook_url=args.webhook_url, auto_sms_after=args.auto_sms_after,
                           dialect=args.dialect, balance=args.balance, access_log=args.access_log)
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
          f"(api key {config.api_key}); control API at {url}/control/", flush=True)


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
