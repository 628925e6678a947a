"""Events per second through ONE ``celery worker`` process, as a ratio to Celery's own no-op task rate.

Both workers are real ``celery worker`` processes started the same way (``tests/support/processes.py``'s
``ChildProcess``, the Procfile's options): ``--without-mingle --without-gossip --without-heartbeat
--concurrency 1``, the same ``--loglevel`` and ``LOG_LEVEL`` (WARNING by default, so neither side measures a log
line per task), ``REMAP_SIGTERM=SIGQUIT``, the same broker (a real Redis) and the same Celery configuration
(``worker.celery_app.celery_config``: acks late, prefetch 1, ...). Only the app and the queue differ.

* ours: K webhook payloads are stored in the inbox (``Inbox.append``, as the web app stores them) for K orders
  in ``waiting`` state whose activations were bought from the sandbox (``flows.activation.place_order``, in this
  process) and whose SMS the sandbox knows. Then ONE ``otpflow.drain_inbox`` task is published (what the web app
  does for the first webhook of a burst) and the clock runs until K ``code.received`` events are on the events stream
  (blocking XREAD). With AUTO_FINISH on (the production default) the drain also calls ``setStatus 6`` on the
  sandbox after each batch's codes; the time until all K ``activation.finished`` events is printed too.
* baseline: K no-op tasks and one final marker task (it XADDs to a stream) are published to a staging list
  first, then RENAMEd onto the no-op worker's queue in one step, and the clock runs until the marker's entry is
  seen (blocking XREAD). The queue is FIFO and the worker has one process, so the marker runs last.

Neither side times its producer: everything is in Redis before the clock starts. The worker's CPU (main process
+ pool child, from /proc) over the timed window is printed per event / per task too: it does not drift with a
busy neighbour as wall time does. Rounds alternate baseline and ours; the median of per-round ratios is the
result (target >= 0.5).

``--provider-delay-ms D``: our worker reaches the sandbox through a proxy that answers D ms late (a real
provider's round trip), to show what AUTO_FINISH's per-code ``setStatus 6`` inside the drain task costs.

Redis: ``OTPFLOW_BENCH_REDIS``, else 127.0.0.1:6379 database 14, else an embedded redis-server (``--embedded``:
always a private one). Keys go under a per-run prefix and are deleted at the end.

    .venv/bin/python bench/events_throughput.py [--events 2000] [--rounds 3] [--auto-finish both|on|off]
        [--provider-delay-ms 0] [--embedded]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench._common import (DelayingProxy, delete_matching, describe_url, foreign_keys, format_ratio,  # noqa: E402
                           machine_conditions, pick_redis, process_tree_cpu, ratio, read_streams, run_script,
                           stream_tail, verdict)

REDIS_DB = 14  # tests use databases 9-13
NOOP_QUEUE_ENV = "OTPFLOW_BENCH_NOOP_QUEUE"
MARK_STREAM_ENV = "OTPFLOW_BENCH_MARK_STREAM"
TARGET_RATIO = 0.5
#: an XREAD never blocks longer than this (ms): well under any client socket timeout, so a long wait is many short
#: reads, never a redis TimeoutError
XREAD_BLOCK_MS = 1000
WORKER_OPTIONS = ("--without-mingle", "--without-gossip", "--without-heartbeat", "--concurrency", "1")


# ---------------------------------------------------------------------------------------------- the no-op app
def make_noop_app(settings: Any, queue: str, mark_stream: str) -> Any:
    """A Celery app with otpflow's Celery configuration, a no-op task and a marker task, on its own queue."""
    from celery import Celery

    from worker.celery_app import celery_config

    conf = celery_config(settings)
    conf.update(task_default_queue=queue, task_routes={"bench.*": {"queue": queue}}, beat_schedule={})
    app = Celery("bench_noop", set_as_current=False)
    app.conf.update(conf)
    app.conf.otpflow_settings = settings  # as make_celery does: the consumer's Redis gate reads it
    clients: dict[int, redis.Redis] = {}

    @app.task(name="bench.noop", ignore_result=True)
    def noop() -> None:
        return None

    @app.task(name="bench.mark", ignore_result=True)
    def mark(tag: str) -> None:
        client = clients.get(os.getpid())
        if client is None:  # one client per process, made after the fork
            client = clients[os.getpid()] = redis.Redis.from_url(settings.redis_url)
        client.xadd(mark_stream, {"tag": tag})

    return app


_noop_app: Any = None


def __getattr__(name: str) -> Any:
    """``celery -A bench.events_throughput:noop_app worker``: built on first access, from the environment."""
    global _noop_app
    if name == "noop_app":
        if _noop_app is None:
            from config.settings import Settings

            _noop_app = make_noop_app(Settings.from_env(), os.environ[NOOP_QUEUE_ENV], os.environ[MARK_STREAM_ENV])
        return _noop_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------------------------- measurement
_local = threading.local()


def _session() -> Any:
    """One keep-alive requests session per set-up thread (control API calls)."""
    import requests

    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
    return session

@dataclass
class Timed:
    count: int
    seconds: float
    cpu: float  # worker CPU seconds (main + pool child) over the window
    finished_seconds: float | None = None  # ours with AUTO_FINISH: until all K activation.finished

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    @property
    def cpu_us(self) -> float:
        return self.cpu / self.count * 1e6 if self.count else float("nan")


def worker_process(name: str, app_spec: str, env: dict[str, str], log_dir: Path, level: str) -> Any:
    from tests.support.processes import ChildProcess, python_argv

    argv = python_argv("-m", "celery", "-A", app_spec, "worker", *WORKER_OPTIONS, "--hostname", f"{name}@%h",
                       "--loglevel", level)
    return ChildProcess(name, argv, dict(env, REMAP_SIGTERM="SIGQUIT", LOG_LEVEL=level), log_dir / f"{name}.log")


class Baseline:
    """K no-op tasks + a marker, staged, then RENAMEd onto the no-op worker's queue."""

    def __init__(self, client: redis.Redis, app: Any, queue: str, mark_stream: str, worker: Any) -> None:
        self.client, self.app, self.queue, self.mark_stream, self.worker = client, app, queue, mark_stream, worker
        self.staging = f"{queue}-staging"
        self.rounds = 0

    def run(self, k: int, timeout: float) -> Timed:
        self.rounds += 1
        tag = f"round-{self.rounds}"
        self.client.delete(self.staging)
        with self.app.producer_or_acquire() as producer:
            for _ in range(k):
                self.app.send_task("bench.noop", queue=self.staging, producer=producer)
            self.app.send_task("bench.mark", args=(tag,), queue=self.staging, producer=producer)
        staged = self.client.llen(self.staging)
        if staged != k + 1:
            raise SystemExit(f"staging list holds {staged} messages, expected {k + 1}")
        if self.client.llen(self.queue):
            raise SystemExit(f"no-op queue {self.queue} is not empty before the round")
        cursor = stream_tail(self.client, self.mark_stream)
        cpu0 = process_tree_cpu(self.worker.pid)
        t0 = time.perf_counter()
        self.client.rename(self.staging, self.queue)
        deadline = t0 + timeout
        while True:
            left = int((deadline - time.perf_counter()) * 1000)
            if left <= 0:
                raise SystemExit(f"baseline: marker not seen within {timeout:.0f}s\n{self.worker.log()[-3000:]}")
            rows = read_streams(self.client, {self.mark_stream: cursor}, block=min(left, XREAD_BLOCK_MS), count=10)
            t1 = time.perf_counter()
            tags = [fields.get("tag") for _s, entries in rows for _id, fields in entries]
            if rows:
                cursor = rows[0][1][-1][0]
            if tag in tags:
                break
        return Timed(k, t1 - t0, process_tree_cpu(self.worker.pid) - cpu0)


class Ours:
    """K waiting orders with an SMS each in the sandbox, K payloads in the inbox, one drain task, K events."""

    def __init__(self, client: redis.Redis, rt: Any, producer: Any, sandbox_url: str, worker: Any,
                 auto_finish: bool) -> None:
        self.client, self.rt, self.producer, self.sandbox_url = client, rt, producer, sandbox_url
        self.worker, self.auto_finish = worker, auto_finish
        self.serial = 0

    def prepare(self, k: int) -> list[bytes]:
        """Buy K activations (waiting orders) and let the sandbox know their SMS; return the webhook bodies."""
        from flows import activation
        from lifecycle.activation import OrderRequest

        rt = self.rt
        first = self.serial
        self.serial += k

        def one(i: int) -> bytes:
            oid = f"bench-{os.getpid()}-{'af' if self.auto_finish else 'nf'}-{i:08d}"
            rt.orders.submit(OrderRequest("tg", country=0, order_id=oid))
            outcome = activation.place_order(rt, oid)
            if outcome != "waiting":
                raise RuntimeError(f"purchase of {oid}: {outcome}: {rt.activations.get(oid)}")
            order = rt.activations.get(oid)
            code = f"{i % 1_000_000:06d}"
            text = f"Your Telegram code: {code}. Do not share it."
            session = _session()
            response = session.post(f"{self.sandbox_url}/control/sms", timeout=10,
                                    json={"activation_id": order.activation_id, "code": code, "text": text})
            response.raise_for_status()
            return json.dumps({"activationId": int(order.activation_id), "service": "tg", "text": text,
                               "code": code, "country": 0, "receivedAt": time.strftime("%Y-%m-%d %H:%M:%S")},
                              separators=(",", ":")).encode()

        with ThreadPoolExecutor(4) as pool:
            return list(pool.map(one, range(first, first + k)))

    def run(self, k: int, timeout: float) -> Timed:
        from webhook.schemas import parse_webhook

        bodies = self.prepare(k)
        inbox = self.rt.inbox
        for raw in bodies:
            parsed = parse_webhook(raw)
            result = inbox.append(parsed.kind, parsed.payload, parsed.fingerprint)
            if result.duplicate:
                raise SystemExit("a preloaded webhook was taken for a duplicate")
        if inbox.pending_count() != k:
            raise SystemExit(f"inbox holds {inbox.pending_count()} entries, expected {k}")
        stream = self.rt.keys.events
        cursor = stream_tail(self.client, stream)
        cpu0 = process_tree_cpu(self.worker.pid)
        t0 = time.perf_counter()
        self.producer.send_task("otpflow.drain_inbox")
        codes = finished = 0
        t_codes: float | None = None
        t_fin: float | None = None
        cpu_codes = 0.0
        deadline = t0 + timeout
        while t_codes is None or (self.auto_finish and t_fin is None):
            left = int((deadline - time.perf_counter()) * 1000)
            if left <= 0:
                raise SystemExit(f"ours: {codes}/{k} code.received, {finished}/{k} finished within {timeout:.0f}s\n"
                                 f"{self.worker.log()[-3000:]}")
            rows = read_streams(self.client, {stream: cursor}, block=min(left, XREAD_BLOCK_MS), count=1000)
            now = time.perf_counter()
            for _s, entries in rows:
                for entry_id, fields in entries:
                    cursor = entry_id
                    kind = fields.get("type")
                    if kind == "code.received":
                        codes += 1
                    elif kind == "activation.finished":
                        finished += 1
            if t_codes is None and codes >= k:
                t_codes = now
                cpu_codes = process_tree_cpu(self.worker.pid) - cpu0
            if self.auto_finish and t_fin is None and finished >= k:
                t_fin = now
        return Timed(k, t_codes - t0, cpu_codes, None if t_fin is None else t_fin - t0)


# ---------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000, help="K: events (and no-op tasks) per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per mode (median reported)")
    parser.add_argument("--auto-finish", choices=("both", "on", "off"), default="both",
                        help="AUTO_FINISH of our worker: on = the production default (setStatus 6 after codes)")
    parser.add_argument("--log-level", choices=("WARNING", "INFO"), default="WARNING",
                        help="--loglevel and LOG_LEVEL of both workers")
    parser.add_argument("--timeout", type=float, default=120.0, help="time bound per timed round")
    parser.add_argument("--provider-delay-ms", type=float, default=0.0,
                        help="our worker reaches the sandbox through a proxy adding this delay per call (a real "
                             "provider's round trip); matters only with AUTO_FINISH on")
    parser.add_argument("--embedded", action="store_true",
                        help="always use a private embedded redis-server (ignores OTPFLOW_BENCH_REDIS and :6379)")
    args = parser.parse_args(argv)

    from config.redis_client import make_redis
    from config.settings import Settings
    from flows.runtime import Runtime, build_provider
    from tests.support.pipeline import Pipeline
    from worker.celery_app import make_celery

    redis_url, embedded = pick_redis(REDIS_DB, embedded=args.embedded)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    others = foreign_keys(client, ())
    if others:
        print(f"note: {describe_url(redis_url)} already holds {others} keys of others; a shared Redis is noisy "
              f"(FLUSHDB, SCRIPT FLUSH, other workers on the 'otpflow' queue): --embedded runs a private one",
              flush=True)
    prefix = f"otpflow-evt-{os.getpid()}"
    noop_queue = f"{prefix}-noop"
    mark_stream = f"{prefix}:marks"
    queue_existed = client.exists("otpflow") == 1
    modes = {"both": [False, True], "on": [True], "off": [False]}[args.auto_finish]
    purchases = (args.rounds + 1) * args.events * len(modes) + 100
    log_dir = Path(tempfile.mkdtemp(prefix="otpflow-evt-"))
    pipeline = Pipeline(redis_url=redis_url, log_dir=log_dir, extra_env={
        "KEY_PREFIX": prefix, "EVENTS_STREAM": f"{prefix}:events", "EVENTS_MAXLEN": str(10 * purchases),
        "POLL_AFTER": "30", "POLL_INTERVAL": "15", "SWEEP_INTERVAL": "5", "ACTIVATION_TIMEOUT": "1200",
        "EARLY_CANCEL_SECONDS": "120", "ORDER_RETRY_DELAY": "5", "PROVIDER_READ_TIMEOUT": "15",
        "PROVIDER_CONNECT_TIMEOUT": "3.05", NOOP_QUEUE_ENV: noop_queue, MARK_STREAM_ENV: mark_stream,
    })
    workers: list[Any] = []
    proxy: DelayingProxy | None = None
    results: dict[bool, list[tuple[Timed, Timed]]] = {}
    code = 1
    try:
        pipeline.start_sandbox(drop_webhooks=True, stock=purchases)
        pipeline.control("settings", {"balance": str(purchases)})
        if args.provider_delay_ms > 0:
            proxy = DelayingProxy(pipeline.sandbox_server.url, args.provider_delay_ms / 1000.0)
        env = pipeline.env
        noop_worker = worker_process("noop", "bench.events_throughput:noop_app", env, log_dir, args.log_level).start()
        workers.append(noop_worker)
        noop_settings = Settings.from_env(env)
        baseline = Baseline(client, make_noop_app(noop_settings, noop_queue, mark_stream), noop_queue, mark_stream,
                            noop_worker)
        baseline.run(20, timeout=60)  # warm-up; also waits for the worker to be ready
        for auto_finish in modes:
            wenv = dict(env, AUTO_FINISH="true" if auto_finish else "false")
            settings = Settings.from_env(wenv)  # the set-up in this process talks to the sandbox directly
            if proxy is not None:
                wenv["PROVIDER_URL"] = f"{proxy.url}/stubs/handler_api.php"
            ours_worker = worker_process(f"otpflow-af-{'on' if auto_finish else 'off'}", "worker.celery_app", wenv,
                                         log_dir, args.log_level).start()
            workers.append(ours_worker)
            rt = Runtime(settings=settings, redis=make_redis(settings), provider=build_provider(settings),
                         publish=lambda *_: None, consumer_name="bench-setup")
            ours = Ours(client, rt, make_celery(settings), pipeline.sandbox_server.url, ours_worker, auto_finish)
            ours.run(20, timeout=60)  # warm-up + readiness
            label = f"AUTO_FINISH {'on ' if auto_finish else 'off'}"
            rounds: list[tuple[Timed, Timed]] = []
            for i in range(args.rounds):
                b = baseline.run(args.events, args.timeout)
                o = ours.run(args.events, args.timeout)
                rounds.append((b, o))
                fin = (f" | all finished {o.count / o.finished_seconds:6.0f}/s" if o.finished_seconds else "")
                print(f"{label} round {i + 1}: no-op {b.rate:6.0f} tasks/s ({b.cpu_us:4.0f} us CPU/task) | ours "
                      f"{o.rate:6.0f} events/s ({o.cpu_us:4.0f} us CPU/event){fin} | ratio "
                      f"{format_ratio(o.rate, b.rate, 3)}", flush=True)
            results[auto_finish] = rounds
            ours_worker.stop()
            rt.redis.close()
        code = report(args, redis_url, client, results)
    finally:
        for proc in workers:
            proc.stop()
        if proxy is not None:
            proxy.stop()
        pipeline.stop()
        delete_matching(client, f"{prefix}:*", f"{prefix}-*", f"_kombu.binding.{prefix}-*",
                        f"_kombu.binding_permanent.{prefix}-*")
        if not queue_existed:
            client.delete("otpflow")
        client.close()
        if embedded is not None:
            embedded.stop()
    print(f"logs: {log_dir}")
    return code


def report(args: argparse.Namespace, redis_url: str, client: redis.Redis,
           results: dict[bool, list[tuple[Timed, Timed]]]) -> int:
    print()
    print(f"redis {describe_url(redis_url)} | one celery worker each, --concurrency 1, --loglevel {args.log_level} | "
          f"K = {args.events} per round | {args.rounds} rounds per mode | provider round trip: sandbox"
          f"{f' + {args.provider_delay_ms:g} ms' if args.provider_delay_ms else ' (loopback, ~1 ms)'}")
    print(f"machine: {machine_conditions(client)}")
    ok = True
    for auto_finish, rounds in results.items():
        ratios = [ratio(o.rate, b.rate) for b, o in rounds]
        cpu_ratios = [ratio(b.cpu_us, o.cpu_us) for b, o in rounds]
        med = statistics.median(ratios)
        b_rate = statistics.median(b.rate for b, _ in rounds)
        o_rate = statistics.median(o.rate for _, o in rounds)
        b_cpu = statistics.median(b.cpu_us for b, _ in rounds)
        o_cpu = statistics.median(o.cpu_us for _, o in rounds)
        name = "on (production default)" if auto_finish else "off"
        print(f"AUTO_FINISH {name}:")
        print(f"  baseline  Celery no-op task : {b_rate:7.0f} tasks/s   {b_cpu:5.0f} us worker CPU per task")
        print(f"  ours      inbox -> event    : {o_rate:7.0f} events/s  {o_cpu:5.0f} us worker CPU per event")
        if auto_finish:
            fins = [o.count / o.finished_seconds for _, o in rounds if o.finished_seconds]
            if fins:
                print(f"  ours      until all finished: {statistics.median(fins):7.0f} activations/s "
                      f"(code + setStatus 6 + finish transition)")
        print(f"  ratio ours/no-op (median of rounds {', '.join(f'{r:.3f}' for r in ratios)}) : {med:.3f}   "
              f"target >= {TARGET_RATIO} {verdict(med, TARGET_RATIO, higher_is_better=True)}")
        print(f"  CPU ratio (no-op CPU per task / ours CPU per event; the CPU-bound ratio on an idle machine): "
              f"{statistics.median(cpu_ratios):.3f}")
        ok = ok and med >= TARGET_RATIO
    return 0 if ok else 1


if __name__ == "__main__":
    run_script(main)
