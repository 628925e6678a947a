"""Smoke tests of the end-to-end benchmark scripts: they import, and their pure helpers compute the right figures."""
from __future__ import annotations

import importlib
import json
import math

import pytest

from bench import _common
from bench._common import format_ratio, percentile, ratio, summarize, verdict


@pytest.mark.parametrize("module", ["bench._common", "bench.e2e_latency", "bench.events_throughput"])
def test_bench_modules_import_without_side_effects(module: str) -> None:
    mod = importlib.import_module(module)
    assert mod.__doc__


def test_percentile_is_nearest_rank() -> None:
    data = list(range(1, 101))  # 1..100
    assert percentile(data, 0.5) == 50
    assert percentile(data, 0.9) == 90
    assert percentile(data, 0.99) == 99
    assert percentile(data, 1.0) == 100
    assert percentile(data, 0.0) == 1
    assert percentile(list(reversed(data)), 0.5) == 50  # order of the input does not matter


def test_percentile_small_and_empty_series() -> None:
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([1.0, 2.0], 0.5) == 1.0
    assert percentile([1.0, 2.0], 0.51) == 2.0
    assert math.isnan(percentile([], 0.5))
    with pytest.raises(ValueError):
        percentile([1.0], 1.5)


def test_percentile_never_interpolates() -> None:
    data = [0.001, 0.002, 0.010, 0.500]
    for q in (0.1, 0.5, 0.9, 0.99):
        assert percentile(data, q) in data


def test_summarize_reports_milliseconds() -> None:
    s = summarize([i / 1000 for i in range(1, 101)])  # 1..100 ms given in seconds
    assert s.n == 100
    assert s.p50 == pytest.approx(50.0)
    assert s.p90 == pytest.approx(90.0)
    assert s.p99 == pytest.approx(99.0)
    assert s.max == pytest.approx(100.0)
    assert s.mean == pytest.approx(50.5)
    assert "p99" in s.line()
    empty = summarize([])
    assert empty.n == 0 and math.isnan(empty.p50)


def test_ratio_and_its_formatting() -> None:
    assert ratio(3.0, 1.5) == 2.0
    assert math.isnan(ratio(1.0, 0.0))
    assert math.isnan(ratio(float("nan"), 1.0))
    assert format_ratio(3.0, 1.5) == "2.00x"
    assert format_ratio(1.0, 3.0, 3) == "0.333x"
    assert format_ratio(1.0, 0.0) == "n/a"


def test_verdict_against_targets() -> None:
    assert verdict(0.6, 0.5, higher_is_better=True) == "met"
    assert verdict(0.4, 0.5, higher_is_better=True) == "MISSED"
    assert verdict(9.0, 10.0, higher_is_better=False) == "met"
    assert verdict(10.0, 10.0, higher_is_better=False) == "met"
    assert verdict(51.0, 50.0, higher_is_better=False) == "MISSED"
    assert verdict(float("nan"), 1.0, higher_is_better=True) == "n/a"


def test_raw_post_request_is_well_formed() -> None:
    body = b'{"a":1}'
    raw = _common.http_post_bytes(8000, "/webhooks/tok", body)
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /webhooks/tok HTTP/1.1\r\n")
    assert b"Content-Length: 7" in head
    assert rest == body


def test_e2e_entry_matchers() -> None:
    from bench.e2e_latency import baseline_key, ours_key, webhook_body

    body = webhook_body("3936040355", 42)
    payload = json.loads(body)
    assert payload["activationId"] == 3936040355 and payload["code"] == "000042"
    assert baseline_key({"payload": body.decode()}) == "3936040355"
    assert baseline_key({"payload": "not json"}) is None
    event = {"type": "code.received", "data": json.dumps({"activation_id": "3936040355", "order_id": "o"})}
    assert ours_key(event) == "3936040355"
    assert ours_key({"type": "activation.finished", "data": event["data"]}) is None
    assert ours_key({"type": "code.received", "data": "{"}) is None


def test_events_throughput_rates() -> None:
    from bench.events_throughput import Timed

    t = Timed(count=2000, seconds=2.0, cpu=0.5)
    assert t.rate == 1000.0
    assert t.cpu_us == pytest.approx(250.0)
    assert Timed(count=0, seconds=0.0, cpu=0.0).rate == 0.0


def test_soak_helpers() -> None:
    """bench/soak.py's pure parts: the SMS plan by order id, its shares, the ledger check and the command line."""
    from bench.soak import PLAN_SHARES, SmsPlan, UsageError, _books, _family, parse_args, plan_for

    plans = [plan_for(f"soak-{i}") for i in range(4000)]
    assert plan_for("soak-1") is plan_for("soak-1")
    for plan, share in PLAN_SHARES:
        assert abs(plans.count(plan) / len(plans) - share / 20) < 0.03, plan
    assert set(plans) == set(SmsPlan)
    assert _family("otpflow:order:soak-1a2b") == "otpflow:order:*"
    state = {"ledger": [{"kind": "charge", "amount": "-0.30"}, {"kind": "refund", "amount": "0.30"},
                        {"kind": "charge", "amount": "-0.30"}],
             "activations": [{"cost": "0.30", "refunded": True}, {"cost": "0.30", "refunded": False}]}
    ours = [{"provider": "alpha", "charged": "0.6", "refunded": "0.3"}]
    assert _books("alpha", state, ours)[1]
    assert not _books("alpha", state, [{"provider": "alpha", "charged": "0.3", "refunded": "0.3"}])[1]
    with pytest.raises(UsageError):
        parse_args(["--rate", "0"])
    with pytest.raises(UsageError):
        parse_args(["--duration", "10"])
    assert parse_args(["--duration", "10", "--no-faults"]).faults is False
    # rents: a third cancelled, the rest finished after an SMS; past 1,000 ledger entries their periods count
    from bench.soak import RentPlan, rent_plan_for

    rents = [rent_plan_for(f"soak-{i}") for i in range(3000)]
    assert abs(rents.count(RentPlan.CANCEL) / len(rents) - 1 / 3) < 0.03
    assert parse_args(["--rent-every", "0"]).rent_every == 0
    with pytest.raises(UsageError):
        parse_args(["--rent-every", "-1"])
    big = {"ledger": [{"kind": "charge", "amount": "-0.30"}] * 1000,
           "activations": [{"cost": "0.30", "refunded": False}],
           "rents": [{"history": [{"price": "2.00"}, {"price": "1.50"}], "state": "CANCELLED"},
                     {"history": [{"price": "2.00"}], "state": "FINISHED"}]}
    assert _books("alpha", big, [{"provider": "alpha", "charged": "5.80", "refunded": "3.50"}])[1]


def test_sweep_helpers() -> None:
    """bench/sweep.py's pure parts: the counts, which part of an activation a key is, the scaling verdict."""
    from dataclasses import replace

    from bench.sweep import (Footprint, SweepRun, UsageError, family, median_run, parse_args, parse_counts, scaling,
                             scaling_line)

    assert parse_counts("10000,100_000") == [10_000, 100_000]
    for bad in ("", "10,5", "0", "10,10", "ten"):
        with pytest.raises(UsageError):
            parse_counts(bad)
    assert parse_args(["--n", "50"]).counts == [50]
    assert parse_args([]).counts == [10_000]  # bounded by default
    assert family("b123:order:00ff", "b123") == "record"
    assert family("b123:aid:sms-activate:3936040359", "b123") == "index"     # retired (an ended order's)
    assert family("b123:aix:sms-activate:517", "b123") == "index"            # a live entries' bucket
    assert family("b123:deadlines", "b123") == "deadline" and family("b123:orders", "b123") == "listing"
    assert family("b123:open:sms-activate", "b123") == "open slot" and family("b123:events", "b123") == "events"
    assert family("b123:acct-index", "b123") == "other"
    fp = Footprint(n=10, by_family={"record": 3000, "index": 900, "deadline": 900, "events": 3500})
    assert fp.state == 480 and fp.with_events == 830 and fp.core == 480
    small = SweepRun(count=1000, wall=1.0, cpu=0.5, calls={"get_active_activations": 1})
    big = SweepRun(count=10_000, wall=9.0, cpu=5.5, calls={"get_active_activations": 1})
    assert scaling(small, big) == {"bound": 10.0, "wall": 9.0, "cpu": 11.0}
    runs = [replace(small, wall=w, cpu=c) for w, c in ((3.0, 0.2), (1.0, 0.9), (2.0, 0.5))]
    assert (median_run(runs).wall, median_run(runs).cpu) == (2.0, 0.5)
    assert median_run(runs[:2]).wall == 2.0
    line = scaling_line(small, big)
    assert "CPU 11.00x (MISSED)" in line and "wall 9.00x (met)" in line
