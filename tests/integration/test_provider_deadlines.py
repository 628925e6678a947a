"""The provider's own deadlines, from real parts: two sandbox providers over real HTTP that state each activation's
end and free-cancel time in getNumberV2 (HeroSMS ``activationEndTime``; Grizzly ``activationCancel`` and
``activationEnd``), a real Redis, real celery worker and beat processes.

Both sandboxes allow a free cancel for 20 of their seconds only, while ACTIVATION_TIMEOUT is 600 s: waiting for it
would cancel too late (HeroSMS answers FREE_CANCELLATION_EXPIRED and keeps the money; Grizzly cancels without a
refund). Their clocks are two hours ahead of ours, as a provider in another zone would be. otpflow must cancel
CANCEL_MARGIN before the window closes, measured from the purchase time each provider states; then the sandbox's
clock is driven past the window, and the money stays refunded.
"""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import pytest

from lifecycle.activation.record import F_CANCEL_BY, F_END_AT, F_NUMBER_AT
from tests.support.pipeline import Pipeline
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.redis, pytest.mark.http, pytest.mark.processes]

NAMES = ("hero", "grizzly")
WINDOW = 20.0   # the sandboxes' free-cancel window, in their (simulated) seconds
MARGIN = 12.0   # CANCEL_MARGIN: otpflow cancels 8 s after the purchase
SKEW = 7200.0   # the sandboxes' clocks run two hours ahead of ours


@pytest.fixture(scope="module")
def pipe(redis_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    import redis as redis_lib

    url = f"{redis_server_url}/13"
    redis_lib.Redis.from_url(url).flushdb()
    env = {"PROVIDER_HERO_DIALECT": "herosms", "PROVIDER_GRIZZLY_DIALECT": "grizzly", "ACTIVATION_TIMEOUT": "600",
           "CANCEL_MARGIN": str(MARGIN), "EARLY_CANCEL_SECONDS": "2"}
    rules = {"refund_window": WINDOW, "early_cancel_seconds": 2.0}
    pipeline = Pipeline(redis_url=url, log_dir=Path(tmp_path_factory.mktemp("deadline-logs")), provider_names=NAMES,
                        extra_env=env)
    try:
        pipeline.start(per_provider={"hero": {"dialect": "herosms", "activation_lifetime": WINDOW, **rules},
                                     "grizzly": {"dialect": "grizzly", "activation_lifetime": 600.0, **rules}})
        for name in NAMES:
            pipeline.control_at(name, "clock/advance", {"seconds": SKEW})
    except BaseException:
        pipeline.stop()
        raise
    yield pipeline
    pipeline.stop()


def sandbox_activation(pipe: Pipeline, name: str, activation_id: str) -> dict[str, Any]:
    return next(a for a in pipe.state_at(name)["activations"] if str(a["id"]) == activation_id)


@pytest.mark.parametrize("name", NAMES)
def test_cancelled_before_the_free_cancel_time_with_the_clock_driven_past_it(pipe: Pipeline, name: str) -> None:
    balance_before = Decimal(pipe.state_at(name)["balance"])
    order_id = pipe.order("tg", providers=[name])
    assigned = pipe.wait_event(order_id, "number.assigned", timeout=60)
    assert assigned["provider"] == name
    record = pipe.redis().hgetall(pipe.key("order", order_id))
    # the provider's dates, two hours off our clock, are measured from the purchase time it states beside them
    assert float(record[F_CANCEL_BY if name == "grizzly" else F_END_AT]) - float(record[F_NUMBER_AT]) == \
        pytest.approx(WINDOW, abs=1.5)

    cancelled = pipe.wait_event(order_id, "activation.cancelled", timeout=60)
    assert cancelled["reason"] == "timeout" and cancelled["activation_id"] == assigned["activation_id"]
    act = sandbox_activation(pipe, name, assigned["activation_id"])
    assert act["state"] == "CANCELLED" and act["end_reason"] == "cancelled" and act["refunded"] is True
    assert act["ended_at"] - act["created_at"] < WINDOW          # inside the window, on the provider's clock

    # the provider's clock driven past the window: the cancel stands, the money is back
    pipe.control_at(name, "clock/advance", {"seconds": 3 * WINDOW})
    act = sandbox_activation(pipe, name, assigned["activation_id"])
    assert act["state"] == "CANCELLED" and act["refunded"] is True
    assert Decimal(pipe.state_at(name)["balance"]) == balance_before
    failed = pipe.wait_event(order_id, "order.failed")
    assert failed["reason"] == "timeout"
    assert not [r for r in pipe.provider_calls("setStatus") if "free" in r.lower()]


def test_a_code_in_time_is_kept_and_the_number_finished(pipe: Pipeline) -> None:
    """The earlier deadline does not cut a number short that got its code: it is finished as usual."""
    order_id = pipe.order("tg", providers=["grizzly"])
    assigned = pipe.wait_event(order_id, "number.assigned", timeout=60)
    pipe.control_at("grizzly", "sms", {"activation_id": assigned["activation_id"], "code": "515151"})
    assert pipe.wait_event(order_id, "code.received")["code"] == "515151"
    pipe.wait_event(order_id, "order.completed")
    wait_until(lambda: sandbox_activation(pipe, "grizzly", assigned["activation_id"])["state"] == "FINISHED",
               message="the number was not finished at the provider")
