"""The balance watch, from real parts: three celery beat processes (the Procfile's, run side by side as a careless
deployment might), a real worker, a real Redis and the sandbox provider over real HTTP, whose balance the test
moves across BALANCE_LOW. Each crossing must give exactly one event, however many beats scheduled a check.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.support.pipeline import Pipeline
from tests.support.processes import celery_beat
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.redis, pytest.mark.http, pytest.mark.processes]

BEATS = ("beat", "beat-2", "beat-3")
PROVIDER = "sms-activate"   # the single provider is named after its profile


@pytest.fixture(scope="module")
def pipe(redis_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    import redis as redis_lib

    url = f"{redis_server_url}/13"
    redis_lib.Redis.from_url(url).flushdb()
    pipeline = Pipeline(redis_url=url, log_dir=Path(tmp_path_factory.mktemp("balance-logs")),
                        extra_env={"BALANCE_CHECK_INTERVAL": "0.3", "BALANCE_LOW": "50"})
    try:
        pipeline.start(web=False)
        for name in BEATS[1:]:
            pipeline.processes[name] = celery_beat(pipeline.env, pipeline.log_dir, name=name).start()
    except BaseException:
        pipeline.stop()
        raise
    yield pipeline
    pipeline.stop()


def balance_events(pipe: Pipeline) -> list[tuple[str, dict[str, Any]]]:
    return [(kind, data) for kind, data in pipe.events() if kind.startswith("balance.")]


def checks(pipe: Pipeline) -> int:
    """Balance checks completed by the workers (their counters reach Redis after every task here)."""
    return sum(pipe.task_runs("otpflow.check_balances").values())


def wait_checks(pipe: Pipeline, n: int) -> None:
    """Until ``n`` more checks have completed: later readings that saw the same side of the threshold."""
    target = checks(pipe) + n
    wait_until(lambda: checks(pipe) >= target, timeout=60, check=pipe.check_alive,
               message=lambda: f"fewer than {n} balance checks\n{pipe.logs()}")


def wait_kinds(pipe: Pipeline, kinds: list[str]) -> list[tuple[str, dict[str, Any]]]:
    return wait_until(lambda: (got := balance_events(pipe)) and [k for k, _ in got] == kinds and got,
                      timeout=60, check=pipe.check_alive,
                      message=lambda: f"balance events {balance_events(pipe)}, wanted {kinds}\n{pipe.logs()}")


def test_balance_low_and_ok_each_once_per_crossing_with_several_beats(pipe: Pipeline) -> None:
    # every beat schedules the check (the sign: each one's log names the task it sent)
    for name in BEATS:
        pipe.processes[name].wait_for_log("otpflow.check_balances", timeout=60)
    wait_checks(pipe, 6)
    assert balance_events(pipe) == []                     # 1000 is above 50: nothing to say
    reading = pipe.redis().hgetall(pipe.key("balance", PROVIDER))
    assert reading["amount"] == "1000.00" and reading.get("low", "0") == "0"

    pipe.control("settings", {"balance": "12.5"})
    ((_, low),) = wait_kinds(pipe, ["balance.low"])
    assert {k: low[k] for k in ("provider", "balance", "threshold", "currency")} == \
        {"provider": PROVIDER, "balance": "12.50", "threshold": "50", "currency": 840}
    assert "order_id" not in low and low["event_id"]
    wait_checks(pipe, 12)                                 # many more readings below the threshold, from every beat
    assert [k for k, _ in balance_events(pipe)] == ["balance.low"]

    pipe.control("settings", {"balance": "50"})            # at the threshold is no longer below it
    wait_kinds(pipe, ["balance.low", "balance.ok"])
    wait_checks(pipe, 12)
    assert [k for k, _ in balance_events(pipe)] == ["balance.low", "balance.ok"]

    pipe.control("settings", {"balance": "3"})             # a second crossing is a new fact with a new id
    events = wait_kinds(pipe, ["balance.low", "balance.ok", "balance.low"])
    wait_checks(pipe, 12)
    assert len(balance_events(pipe)) == 3
    assert len({data["event_id"] for _, data in events}) == 3
