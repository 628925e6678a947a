"""Chaos: kill workers mid-task, SIGTERM everything as Heroku does, restart Redis under load, make the provider fail.

After each, the ledger must hold: every webhook the web app accepted (HTTP 200) is emitted exactly once or is still
pending in the inbox; no activation is left neither finished nor cancelled past its deadline; no purchase is made
twice for one order.

These tests own their Redis (an embedded redis-server with an append-only file, so it can be stopped and started
again on the same port without losing what it acknowledged), never the machine's.

The Celery messages travel on Redis (``REDIS_URL``, as by default) or, for the tests marked ``[amqp]``, on
RabbitMQ (``CELERY_BROKER_URL``; state stays in Redis), where the two brokers behave differently in what the test
does: a whole worker's death (Redis: kombu hands the task back after ``BROKER_VISIBILITY_TIMEOUT`` at the
earliest; RabbitMQ: the moment the worker's connection closes), a shutdown with messages in flight, Redis going
away while the broker stays, and a failing provider whose orders are finished off by tasks on the broker. Each
``[amqp]`` test has a queue of its own, named after a fresh ``KEY_PREFIX`` and deleted afterwards
(``tests/support/amqp.py``, ``private_queue``), so runs sharing the RabbitMQ never see each other's messages.
Without a RabbitMQ the ``[amqp]`` tests skip, naming what was tried (``OTPFLOW_TEST_AMQP=required``, as CI sets
it, fails them instead).

Not run on both, to keep the suite's time down: the SIGKILLs of a worker's pool children (the worker, still alive,
rejects the task and the broker delivers it again at once, on either broker; on RabbitMQ
tests/integration/test_amqp_broker.py shows it) and the rent crash (see its docstring).
"""
from __future__ import annotations

import collections
import os
import re
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

import psutil
import pytest
import requests

from otpflow.embedded_redis import EmbeddedRedis
from tests.support import amqp
from tests.support.pipeline import Pipeline
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.redis, pytest.mark.http, pytest.mark.processes]

CHAOS_ENV = {"BROKER_VISIBILITY_TIMEOUT": "6", "WORKER_SOFT_SHUTDOWN_TIMEOUT": "8"}

#: the test runs twice: Celery messages on Redis, then on RabbitMQ (``broker`` is ``redis`` or ``amqp``)
ON_BOTH_BROKERS = pytest.mark.parametrize("broker", ["redis", "amqp"])

#: an activation order's terminal events (README, Downstream event contract): exactly one ends each order
TERMINAL = ("order.completed", "order.cancelled", "order.failed")


@pytest.fixture
def broker() -> str:
    """Where the Celery messages go in a test not marked ON_BOTH_BROKERS: Redis."""
    return "redis"


@pytest.fixture
def broker_env(request: pytest.FixtureRequest, broker: str) -> Iterator[dict[str, str]]:
    """The pipeline's broker settings: none on Redis; on AMQP a queue of this test alone, deleted afterwards
    (the ``pipeline`` fixture, which depends on this one, has stopped every process by then)."""
    if broker == "redis":
        yield {}
        return
    url = request.getfixturevalue("amqp_broker_url")  # skips, naming what was tried, when no RabbitMQ answers
    with amqp.private_queue(url) as env:
        yield env
    assert not amqp.queue_exists(url, env["KEY_PREFIX"]), "the run's queue outlived it"


@pytest.fixture
def own_redis() -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(appendonly=True, data_dir=tempfile.mkdtemp(prefix="otpflow-chaos-")).start()
    yield server
    server.stop()


@pytest.fixture
def pipeline(own_redis: EmbeddedRedis, tmp_path: Path, broker_env: dict[str, str]) -> Iterator[Pipeline]:
    pipe = Pipeline(redis_url=own_redis.url, log_dir=tmp_path, extra_env={**CHAOS_ENV, **broker_env})
    try:
        yield pipe
    finally:
        pipe.stop()


def sandbox_activations(pipe: Pipeline) -> list[dict]:
    activations = pipe.sandbox_state()["activations"]
    return list(activations.values()) if isinstance(activations, dict) else list(activations)


def assert_ledger(pipe: Pipeline, accepted_codes: dict[str, set[str]], *, timeout: float = 60.0) -> None:
    """Every accepted code is emitted exactly once (waiting up to ``timeout`` for pending work to drain)."""
    def missing() -> dict[str, set[str]]:
        per_activation: dict[str, list[str]] = collections.defaultdict(list)
        for kind, data in pipe.events():
            if kind == "code.received":
                per_activation[str(data["activation_id"])].append(str(data["code"]))
        duplicated = {a: c for a, c in per_activation.items() if len(c) != len(set(c))}
        assert not duplicated, f"emitted twice: {duplicated}"
        gaps = {a: codes - set(per_activation.get(a, [])) for a, codes in accepted_codes.items()}
        return {a: c for a, c in gaps.items() if c}

    wait_until(lambda: not missing(), timeout=timeout, interval=0.2,
               message=lambda: f"accepted but never emitted: {missing()}\n{pipe.logs()}")


def assert_one_purchase_per_order(pipe: Pipeline, order_ids: list[str]) -> None:
    counts = collections.Counter()
    for kind, data in pipe.events():
        if kind == "number.assigned":
            counts[data["order_id"]] += 1
    assert all(counts[o] <= 1 for o in order_ids), counts
    # the provider knows a purchase by our orderId, "<order id>-<request number>" (a re-sent request keeps its
    # number): count the provider's activations by the order they were bought for
    by_order = collections.Counter(str(a.get("order_id") or "").rpartition("-")[0] for a in sandbox_activations(pipe))
    assert all(by_order[o] <= 1 for o in order_ids), by_order


def assert_one_terminal_event(pipe: Pipeline, order_id: str) -> str:
    """Exactly one terminal event for the order, looked at again after two more sweeps (so a second one that was
    on its way has had its chance); returns its type."""
    pipe.wait_sweeps(2)
    terminal = [kind for kind, _ in pipe.events(order_id) if kind in TERMINAL]
    assert len(terminal) == 1, pipe.events(order_id)
    return terminal[0]


def assert_messages_on_rabbitmq(pipe: Pipeline) -> None:
    """The run's queue is on RabbitMQ with a consumer, and kombu's Redis transport left nothing in Redis (it keeps
    a queue as a list named after it, its bindings in ``_kombu.binding.*`` and what is unacknowledged in
    ``unacked``)."""
    url, queue = pipe.extra_env["CELERY_BROKER_URL"], pipe.extra_env["KEY_PREFIX"]
    wait_until(lambda: amqp.queue_state(url, queue)[1] >= 1, timeout=30, check=pipe.check_alive,
               message=lambda: f"no consumer on the queue {queue}\n{pipe.logs()}")
    client = pipe.redis()
    assert not client.exists(queue, "otpflow", "unacked", "unacked_index")
    assert not list(client.scan_iter("_kombu.*"))


def received_task_ids(log: str, task: str) -> list[str]:
    """Ids of the ``task`` messages a worker's log says it received (Celery's ``Task <name>[<id>] received``)."""
    return re.findall(rf"Task {re.escape(task)}\[([0-9a-f-]+)\] received", log)


def pool_children(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def hang_next_provider_call(pipeline: Pipeline) -> None:
    """The provider processes the next call, then hangs for 30 s before answering (an ambiguous purchase)."""
    pipeline.control("settings", {"fail_mode": "timeout", "timeout_sleep": 30, "fail_next": 1})


def wait_inside_purchase(pipeline: Pipeline, bought: str) -> None:
    """Until the provider has made the purchase (``bought``: ``activations`` or ``rents`` of its state) whose
    answer hangs: the worker is then surely inside that call, for the 30 s the answer is held back."""
    wait_until(lambda: pipeline.sandbox_state()[bought], timeout=20, check=pipeline.check_alive,
               message=lambda: f"no purchase reached the provider\n{pipeline.logs()}")


def test_sigkill_of_a_pool_child_mid_purchase_buys_once(pipeline: Pipeline) -> None:
    pipeline.start()
    hang_next_provider_call(pipeline)  # so the task is inside getNumberV2 when its process dies
    order_id = pipeline.order("tg")
    worker = pipeline.processes["worker"]
    wait_inside_purchase(pipeline, "activations")
    for child in pool_children(worker.pid):
        child.send_signal(signal.SIGKILL)
    pipeline.control("settings", {"fail_mode": None})
    pipeline.wait_event(order_id, "number.assigned", timeout=60)
    assert_one_purchase_per_order(pipeline, [order_id])


@ON_BOTH_BROKERS
def test_sigkill_of_the_whole_worker_mid_purchase_is_driven_again_and_buys_once(pipeline: Pipeline,
                                                                                broker: str) -> None:
    """The whole worker (parent and pool) is SIGKILLed inside getNumberV2, its task unacknowledged; a replacement
    worker takes the order up and recovers the purchase: one number, one terminal event.

    On RabbitMQ the closed connection puts the message back at once: the replacement receives the SAME task (its
    id), the broker's redelivery. On Redis kombu gives an unacknowledged task back once it is older than
    ``BROKER_VISIBILITY_TIMEOUT`` (6 s here), but it looks for such tasks only when a worker starts and then about
    every 100 s (kombu's ``unacked_restore_interval`` x ``unacked_restore_throttle``); the replacement starts
    before the 6 s are up, so the sweeper, which re-drives a purchase once it is surely over (the provider's
    timeouts x retries + 30 s), usually gets there first, with a new task. Either way the order must end the same.
    """
    pipeline.start()
    hang_next_provider_call(pipeline)
    order_id = pipeline.order("wa")
    worker = pipeline.processes["worker"]
    wait_inside_purchase(pipeline, "activations")
    (task_id,) = received_task_ids(worker.log(), "otpflow.place_order")
    worker.signal_group(signal.SIGKILL)
    pipeline.processes.pop("worker").stop()
    pipeline.control("settings", {"fail_mode": None})
    replacement = pipeline.start_worker("worker2")
    if broker == "amqp":
        replacement.wait_for_log(f"Task otpflow.place_order[{task_id}] received", timeout=30)
    assigned = pipeline.wait_event(order_id, "number.assigned", timeout=90)
    assert order_id in replacement.log(), "the replacement worker never ran this order's purchase"
    assert_one_purchase_per_order(pipeline, [order_id])
    assert len(sandbox_activations(pipeline)) == 1, sandbox_activations(pipeline)
    pipeline.control("sms", {"activation_id": assigned["activation_id"], "code": "551177", "text": "code 551177"})
    pipeline.wait_event(order_id, "order.completed", timeout=60)
    assert assert_one_terminal_event(pipeline, order_id) == "order.completed"


@ON_BOTH_BROKERS
def test_heroku_sigterm_of_every_process_loses_nothing(pipeline: Pipeline) -> None:
    """Every process group gets SIGTERM at once, as at a Heroku restart: each exits within the 30 s before the
    SIGKILL, and after a restart every accepted code is emitted once (on AMQP the messages published while the
    formation stopped wait in the run's queue on RabbitMQ)."""
    pipeline.start()
    orders = [pipeline.order("tg") for _ in range(6)]
    assigned = {o: pipeline.wait_event(o, "number.assigned")["activation_id"] for o in orders}
    accepted: dict[str, set[str]] = collections.defaultdict(set)
    for i, (order_id, activation_id) in enumerate(assigned.items()):
        code = f"{700000 + i}"
        pipeline.control("sms", {"activation_id": activation_id, "code": code, "text": f"code {code}"})
        accepted[activation_id].add(code)
    # Heroku: SIGTERM to every process of every dyno at once, SIGKILL 30 s later.
    started = time.monotonic()
    for proc in pipeline.processes.values():
        proc.signal_group(signal.SIGTERM)
    for proc in pipeline.processes.values():
        assert proc.proc is not None
        try:
            proc.proc.wait(timeout=30)
        except Exception:
            pytest.fail(f"{proc.name} did not exit within Heroku's 30 s:\n{proc.log()[-3000:]}")
    assert time.monotonic() - started < 30
    pipeline.processes.clear()
    pipeline.start()
    assert_ledger(pipeline, accepted)
    for order_id in orders:
        pipeline.wait_event(order_id, "activation.finished", timeout=60)


@ON_BOTH_BROKERS
def test_redis_restart_while_webhooks_arrive(pipeline: Pipeline, own_redis: EmbeddedRedis, broker: str) -> None:
    """Redis stops and starts again while the provider keeps posting webhooks: 503s while it is down (the
    provider retries), never a 500, and every accepted code emitted once. On AMQP only the state goes away: the
    messages stay in RabbitMQ (nothing of kombu's in Redis afterwards) and the worker keeps its one broker
    connection through the restart (its consumer is not restarted)."""
    pipeline.start()
    orders = [pipeline.order("vk") for _ in range(4)]
    assigned = {o: pipeline.wait_event(o, "number.assigned")["activation_id"] for o in orders}
    accepted: dict[str, set[str]] = collections.defaultdict(set)
    statuses: collections.Counter[int] = collections.Counter()
    stop = threading.Event()

    def provider_like_sender() -> None:
        """Posts one SMS webhook per activation and retries it until HTTP 200, like the provider does."""
        n = 0
        while not stop.is_set():
            for activation_id in assigned.values():
                n += 1
                code = f"{n:06d}"
                payload = {"activationId": activation_id, "service": "vk", "text": f"code {code}", "code": code,
                           "country": 0, "receivedAt": "2026-11-27 12:00:00"}
                for _attempt in range(200):
                    try:
                        status = pipeline.post_webhook(payload).status_code
                    except requests.RequestException:
                        status = 0
                    statuses[status] += 1
                    if status == 200:
                        accepted[activation_id].add(code)
                        break
                    time.sleep(0.1)   # the provider's pause before retrying: its pace, not a wait for us
                if stop.is_set():
                    return
            time.sleep(0.05)          # the next SMS arrives a little later: the load's pace, not a wait

    sender = threading.Thread(target=provider_like_sender, daemon=True)
    sender.start()
    wait_until(lambda: statuses[200] > 0, message=lambda: f"no webhook accepted: {statuses}\n{pipeline.logs()}")
    own_redis.stop()
    wait_until(lambda: statuses[503] > 0, message=lambda: f"no 503 while Redis was down: {statuses}")
    own_redis.start()
    accepted_before_restart = statuses[200]
    wait_until(lambda: statuses[200] > accepted_before_restart,
               message=lambda: f"nothing accepted after Redis came back: {statuses}\n{pipeline.logs()}")
    stop.set()
    sender.join(timeout=60)
    assert statuses[503] > 0, statuses
    assert statuses[500] == 0, statuses
    # Codes after the first one for an activation are not new codes of that activation (it was finished on its
    # first code); what must hold is that the first accepted code of each activation is emitted exactly once.
    firsts = {a: {min(codes)} for a, codes in accepted.items() if codes}
    assert_ledger(pipeline, firsts, timeout=90)
    if broker == "amqp":
        assert_messages_on_rabbitmq(pipeline)
        assert pipeline.processes["worker"].log().count("Connected to amqp://") == 1, pipeline.logs()


@ON_BOTH_BROKERS
def test_provider_500s_and_timeouts_then_recovery(pipeline: Pipeline) -> None:
    """The provider answers 500s, then times out (processed, answered too late): the purchases are tried again
    until each order has one number, never two, and once nobody sends a code every activation ends cancelled,
    by tasks the sweeper publishes on the broker under test."""
    pipeline.start()
    pipeline.control("settings", {"fail_mode": "500", "fail_next": 6})
    orders = [pipeline.order("tg") for _ in range(3)]
    pipeline.control("settings", {"fail_mode": "timeout", "timeout_sleep": 5, "fail_next": 2})
    for order_id in orders:
        pipeline.wait_event(order_id, "number.assigned", timeout=90)
    pipeline.control("settings", {"fail_mode": None})
    assert_one_purchase_per_order(pipeline, orders)
    # Nobody sends a code: past the activation timeout and the provider's early-cancel window every activation
    # must end cancelled (refunded), none left open.
    pipeline.control("clock/advance", {"seconds": 125})
    for order_id in orders:
        pipeline.wait_event(order_id, "activation.cancelled", timeout=60)
    open_ones = [a for a in sandbox_activations(pipeline) if a["state"] not in {"CANCELLED", "FINISHED"}]
    assert not open_ones, open_ones


def test_sigkill_mid_rent_purchase_never_rents_twice(pipeline: Pipeline) -> None:
    """A rent has no idempotency key at the provider: after a crash mid-getRentNumber the re-driven order must
    adopt the rent the provider made (its getRentList shows one rent nobody claimed), never buy a second one.

    On Redis only: most of its ~50 s is the wait until the purchase is surely over, whichever broker, and what it
    checks (the rent adopted, not bought twice) lives in Redis and at the provider. The broker's part, a pool
    child's task rejected and delivered again, is the same as in the activation's pool-child test, which
    tests/integration/test_amqp_broker.py runs on RabbitMQ."""
    pipeline.start()
    hang_next_provider_call(pipeline)
    response = pipeline.api("POST", "/api/rents", json={"service": "full", "country": 0, "rent_time": 4})
    assert response.status_code == 202, response.text
    order_id = response.json()["order_id"]
    worker = pipeline.processes["worker"]
    wait_inside_purchase(pipeline, "rents")
    for child in pool_children(worker.pid):
        child.send_signal(signal.SIGKILL)
    pipeline.control("settings", {"fail_mode": None})
    # the sweeper re-drives a purchase only once it is surely over: (connect + read timeout) x 4 + 30 s here
    started = pipeline.wait_event(order_id, "rent.started", timeout=90)
    rents = pipeline.sandbox_state()["rents"]
    rents = list(rents.values()) if isinstance(rents, dict) else list(rents)
    assert len(rents) == 1, rents
    assert str(rents[0]["id"]) == started["rent_id"]
    assert [k for k, _ in pipeline.events(order_id)].count("rent.started") == 1


def test_sigkill_mid_purchase_on_the_second_provider_buys_nothing_twice(own_redis: EmbeddedRedis,
                                                                          tmp_path: Path) -> None:
    """Two providers: the first has no stock, so the order fails over to the second, whose purchase hangs; the
    worker's pool children are SIGKILLed inside that call. The re-delivered task asks the SAME provider again with
    the SAME orderId (recovered), never the first one, never a second number anywhere."""
    pipe = Pipeline(redis_url=own_redis.url, log_dir=tmp_path, extra_env=dict(CHAOS_ENV),
                    provider_names=("alpha", "beta"))
    try:
        pipe.start()
        pipe.control_at("alpha", "catalogue", {"service": "tg", "country": 0, "price": "0.50", "count": 0})
        pipe.control_at("beta", "settings", {"fail_mode": "timeout", "timeout_sleep": 30, "fail_next": 1})
        order_id = pipe.order("tg")
        wait_until(lambda: pipe.state_at("beta")["activations"], timeout=30, check=pipe.check_alive,
                   message=lambda: f"no purchase reached the second provider\n{pipe.logs()}")
        for child in pool_children(pipe.processes["worker"].pid):
            child.send_signal(signal.SIGKILL)
        pipe.control_at("beta", "settings", {"fail_mode": None})
        assigned = pipe.wait_event(order_id, "number.assigned", timeout=90)
        assert assigned["provider"] == "beta"
        activations = {name: pipe.state_at(name)["activations"] for name in ("alpha", "beta")}
        counts = {name: len(acts) for name, acts in activations.items()}
        assert counts == {"alpha": 0, "beta": 1}, counts
        assert [k for k, _ in pipe.events(order_id)].count("number.assigned") == 1
    finally:
        pipe.stop()


def test_sigkill_while_holding_a_reservation_neither_leaks_nor_overspends(own_redis: EmbeddedRedis,
                                                                         tmp_path: Path) -> None:
    """A daily limit that pays for two numbers; the first purchase's worker is SIGKILLed inside the call, holding
    its reservation. The re-delivered purchase settles that reservation (nothing stays held), exactly one more
    number fits, the third order fails budget_exceeded, and our books equal the sandbox's to the cent."""
    env = {**CHAOS_ENV, "SPEND_LIMIT_DAILY": "1.00", "MAX_PRICE": "0.50", "ACTIVATION_TIMEOUT": "600"}
    pipe = Pipeline(redis_url=own_redis.url, log_dir=tmp_path, extra_env=env)
    try:
        pipe.start()
        pipe.control("catalogue", {"service": "tg", "country": 0, "price": "0.50", "count": 50})
        hang_next_provider_call(pipe)
        first = pipe.order("tg")
        wait_inside_purchase(pipe, "activations")
        for child in pool_children(pipe.processes["worker"].pid):
            child.send_signal(signal.SIGKILL)
        pipe.control("settings", {"fail_mode": None})
        pipe.wait_event(first, "number.assigned", timeout=90)
        # two more orders at once: the two pool children take them in either order; exactly one fits
        later = pipe.order("tg"), pipe.order("tg")

        def outcome(order_id: str) -> str | None:
            kinds = [k for k, _ in pipe.events(order_id)]
            return next((k for k in kinds if k in ("number.assigned", "order.failed")), None)

        wait_until(lambda: all(outcome(o) for o in later), timeout=60, check=pipe.check_alive,
                   message=lambda: f"not settled: {[pipe.events(o) for o in later]}")
        assert sorted(str(outcome(o)) for o in later) == ["number.assigned", "order.failed"]
        (failed,) = [d for o in later for k, d in pipe.events(o) if k == "order.failed"]
        assert failed["reason"] == "budget_exceeded"
        assert len(sandbox_activations(pipe)) == 2
        report = pipe.api("GET", "/api/spend").json()
        (window,) = report["providers"]
        charged = -sum(float(e["amount"]) for e in pipe.sandbox_state()["ledger"] if e["kind"] == "charge")
        assert float(window["spent_day"]) == charged == 1.0 and float(window["reserved"]) == 0
        (acct,) = report["accounts"]
        assert float(acct["charged"]) == charged and acct["numbers"] == 2
    finally:
        pipe.stop()
