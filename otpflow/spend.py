"""``otpflow spend``: what each provider spent this UTC hour and day against its limits, what is reserved, and the
accounting per provider, service and country (the same report as ``GET /api/spend``)."""
from __future__ import annotations

import json
import sys
import time

import redis

from config import domain
from config.redis_client import make_redis
from config.settings import ConfigError, Settings


def _row(cells: list[object], widths: list[int]) -> str:
    return "  ".join(str("-" if c is None else c).ljust(w) for c, w in zip(cells, widths)).rstrip()


def _table(header: list[str], rows: list[list[object]]) -> list[str]:
    every: list[list[object]] = [list(header), *rows]
    widths = [max(len(str("-" if r[i] is None else r[i])) for r in every) for i in range(len(header))]
    return [_row(list(header), widths), *(_row(r, widths) for r in rows)]


def show_spend(*, as_json: bool) -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"otpflow: {exc}", file=sys.stderr)
        return 2
    try:
        report = domain.ledger(settings, make_redis(settings)).report(domain.spend_limits(settings),
                                                                               time.time())
    except redis.exceptions.RedisError as exc:
        print(f"otpflow spend: Redis unavailable at REDIS_URL ({type(exc).__name__}); is it running?",
              file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(report, indent=2))
        return 0
    providers, accounts = report["providers"], report["accounts"]
    print("\n".join(_table(["provider", "hour (UTC)", "spent", "limit", "day (UTC)", "spent", "limit", "reserved"],
                           [[p["provider"], p["hour"], p["spent_hour"], p["limit_hourly"], p["day"], p["spent_day"],
                             p["limit_daily"], p["reserved"]] for p in providers])))
    print()
    if not accounts:
        print("no purchases yet")
        return 0
    print("\n".join(_table(["provider", "service", "country", "charged", "refunded", "net", "numbers", "codes",
                            "success", "s to code"],
                           [[a["provider"], a["service"], a["country"], a["charged"], a["refunded"], a["net"],
                             a["numbers"], a["codes"], a["success_rate"], a["seconds_to_code"]] for a in accounts])))
    return 0
