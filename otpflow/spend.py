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
from otpflow.commands import ExitCode, table


def show_spend(*, as_json: bool) -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"otpflow: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    try:
        report = domain.ledger(settings, make_redis(settings)).report(domain.spend_limits(settings), time.time())
    except redis.exceptions.RedisError as exc:
        print(f"otpflow spend: Redis unavailable at REDIS_URL ({type(exc).__name__}); is it running?",
              file=sys.stderr)
        return ExitCode.REDIS
    if as_json:
        print(json.dumps(report, indent=2))
        return ExitCode.OK
    providers, accounts = report["providers"], report["accounts"]
    print(table(["provider", "hour (UTC)", "spent", "limit", "day (UTC)", "spent", "limit", "reserved"],
                [[p["provider"], p["hour"], p["spent_hour"], p["limit_hourly"], p["day"], p["spent_day"],
                  p["limit_daily"], p["reserved"]] for p in providers]))
    print()
    if not accounts:
        print("no purchases yet")
        return ExitCode.OK
    print(table(["provider", "service", "country", "charged", "refunded", "net", "numbers", "codes", "success",
                 "s to code"],
                [[a["provider"], a["service"], a["country"], a["charged"], a["refunded"], a["net"], a["numbers"],
                  a["codes"], a["success_rate"], a["seconds_to_code"]] for a in accounts]))
    return ExitCode.OK
