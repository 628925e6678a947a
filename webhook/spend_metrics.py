"""The money on ``/metrics``: each provider's spend this UTC hour and day, its limits and what is reserved
(gauges), and the accounting per provider, service and country (counters), read from the ledger at scrape time
(the same report as ``GET /api/spend``)."""
from __future__ import annotations

import time
from decimal import Decimal
from typing import Iterator

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from config import domain
from webhook.context import WebContext


def _float(value: object) -> float:
    return float(Decimal(str(value)))


class SpendMetrics(Collector):
    """Nothing when Redis is down (``otpflow_redis_up`` says so)."""

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[Metric]:
        ctx = self.ctx
        try:
            report = domain.ledger(ctx.settings, ctx.redis).report(domain.spend_limits(ctx.settings), time.time())
        except redis.exceptions.RedisError:
            return
        spent = GaugeMetricFamily("otpflow_spend", "net spend at a provider in the current UTC window, in its "
                                  "currency", labels=["provider", "window"])
        limit = GaugeMetricFamily("otpflow_spend_limit", "a provider's spend limit per UTC window, in its currency",
                                  labels=["provider", "window"])
        reserved = GaugeMetricFamily("otpflow_spend_reserved", "purchases' prices reserved and not yet settled",
                                     labels=["provider"])
        for p in report["providers"]:
            name = p["provider"]
            for window, amount, cap in (("hour", p["spent_hour"], p["limit_hourly"]),
                                        ("day", p["spent_day"], p["limit_daily"])):
                spent.add_metric([name, window], _float(amount))
                if cap is not None:
                    limit.add_metric([name, window], _float(cap))
            reserved.add_metric([name], _float(p["reserved"]))
        yield from (spent, limit, reserved)
        labels = ["provider", "service", "country"]
        charged = CounterMetricFamily("otpflow_charged", "what providers charged, as they reported it", labels=labels)
        refunded = CounterMetricFamily("otpflow_refunded", "what providers refunded (cancelled numbers)",
                                       labels=labels)
        numbers = CounterMetricFamily("otpflow_numbers_bought", "numbers bought", labels=labels)
        codes = CounterMetricFamily("otpflow_orders_coded", "orders completed with a code", labels=labels)
        for a in report["accounts"]:
            values = [a["provider"], a["service"], "" if a["country"] is None else str(a["country"])]
            charged.add_metric(values, _float(a["charged"]))
            refunded.add_metric(values, _float(a["refunded"]))
            numbers.add_metric(values, float(a["numbers"]))
            codes.add_metric(values, float(a["codes"]))
        yield from (charged, refunded, numbers, codes)
