"""Soak: a production-shaped formation under steady load and scheduled faults, then the invariants as a table.

The formation (``bench/formation.py``): 2 web (gunicorn, as the Procfile runs it), 2 Celery workers and 2 beats,
against a private Redis with its append-only file on, and two sandbox providers (``alpha`` and ``beta``, each
with its own key, webhook token and price; each posts its webhooks to one of the web processes). Loopback only.

Load: ``--clients`` threads place orders through ``POST /api/orders`` at ``--rate`` orders/s in all, for
``--duration`` seconds or ``--max-orders`` orders, each naming both providers (half prefer one, half the other).
The sandboxes deliver a code for most numbers by webhook (some twice, some dropped so that polling must find it);
some numbers get no code and time out (cancelled, refunded). Every ``--rent-every``-th order (10) is a rent
(``POST /api/rents``, 4 hours): one in three is cancelled as soon as it starts (refunded), the others get an SMS
(by webhook, twice, or only by the rent's poll) and are then finished by their client. Faults on a schedule
across the run: SIGKILL of a worker pool child, a provider outage (HTTP 500 for a few seconds), SIGTERM of a web
process as a deploy does (then a new one), a provider answering 429, a Redis restart (same port and data), SIGKILL
of a whole worker (then a new one).

After the load stops it waits for signs that every order is terminal, then checks: every accepted code emitted
exactly once, and every rent SMS; every order and rent with exactly one terminal event; every activation and rent
finished or cancelled at the provider and the sandboxes' ledgers (rents' periods and refunds included) equal to
our accounting; no number bought twice for one order; no ``event_id`` twice;
Redis memory near its baseline once retention ran; no process left behind. Exit status 1 when one fails,
2 for a bad command line.

    .venv/bin/python bench/soak.py --duration 600            # the long run (README, Benchmarks)
    .venv/bin/python bench/soak.py --duration 50 --rate 2    # about what tests/integration/test_soak.py runs
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import itertools
import json
import queue
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
import requests  # noqa: E402

from bench._common import hash_fields, machine_conditions, sigterm_as_interrupt, stream_entries  # noqa: E402
from bench.formation import Formation, FormationError, become_subreaper  # noqa: E402
from bench.ingress import HostileClients  # noqa: E402
from tests.support.waiting import wait_until  # noqa: E402

PREFIX = "otpflow"
STREAM = f"{PREFIX}:events"
#: a rent order ends with one of these, or with order.failed
RENT_TERMINAL = frozenset({"rent.finished", "rent.cancelled"})
TERMINAL = frozenset({"order.completed", "order.cancelled", "order.failed"}) | RENT_TERMINAL
RENT_SERVICE = "full"  # what the sandboxes rent out
PROVIDERS = {"alpha": Decimal("0.30"), "beta": Decimal("0.45")}
ENDED = frozenset({"FINISHED", "CANCELLED"})
MINIMUM_CALLS = 2  # a purchase and its finish


class SmsPlan(str, Enum):
    """What the provider does for one number."""

    WEBHOOK = "webhook"        # one delivery
    DUPLICATED = "duplicated"  # delivered twice
    DROPPED = "dropped"        # never delivered: polling must find the code
    NONE = "none"              # no code: the number times out and is cancelled (refunded)


#: shares of the plans, out of 20, by a hash of the order id (so a rerun treats the same id the same way)
PLAN_SHARES = ((SmsPlan.WEBHOOK, 11), (SmsPlan.DUPLICATED, 3), (SmsPlan.DROPPED, 3), (SmsPlan.NONE, 3))


class RentPlan(str, Enum):
    """What a rent order's client does once its rent started."""

    CANCEL = "cancel"          # cancels it at once: refunded
    SMS_FINISH = "sms_finish"  # waits for one SMS (its webhook delivered, doubled or dropped), then finishes it


class UsageError(Exception):
    """A bad command line: one line, exit status 2."""


@dataclass(frozen=True)
class Options:
    duration: float
    rate: float
    clients: int
    max_orders: int
    settle: float
    faults: bool
    web_concurrency: int
    worker_concurrency: int
    memory_slack_kib: int
    log_dir: Path | None
    keep_logs: bool
    #: connections held open against every web process during the load: idle ones and slow-header ones
    idle: int = 20
    slow: int = 20
    #: every N-th order is a rent (0: none)
    rent_every: int = 10


def plan_for(order_id: str) -> SmsPlan:
    slot = int(hashlib.sha256(order_id.encode()).hexdigest(), 16) % sum(n for _, n in PLAN_SHARES)
    for plan, share in PLAN_SHARES:
        if slot < share:
            return plan
        slot -= share
    return SmsPlan.WEBHOOK


def rent_plan_for(order_id: str) -> RentPlan:
    """One rent in three is cancelled, the others get an SMS and are finished (by a hash of the order id)."""
    return RentPlan.CANCEL if int(hashlib.sha256(order_id.encode()).hexdigest(), 16) % 3 == 0 else RentPlan.SMS_FINISH


@dataclass
class Sms:
    order_id: str
    provider: str
    activation_id: str
    code: str
    plan: SmsPlan
    status: int = 0
    #: set for an SMS to a rented number (``activation_id`` is then empty)
    rent_id: str = ""

    @property
    def text(self) -> str:
        return f"Your code is {self.code}"


@dataclass
class Fault:
    name: str
    at: float
    detail: str = ""
    ok: bool = False


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    xfail: bool = False


@dataclass
class Result:
    checks: list[Check] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    figures: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks) and all(f.ok for f in self.faults)

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)


# ---------------------------------------------------------------------------------------------- the run
class Soak:
    def __init__(self, options: Options, formation: Formation) -> None:
        self.o = options
        self.f = formation
        self.stop_load = threading.Event()
        self.stop_all = threading.Event()
        self.lock = threading.Lock()
        self.accepted: dict[str, float] = {}          # order id -> when accepted (epoch seconds)
        self.post_statuses: collections.Counter[str] = collections.Counter()
        self.events: list[tuple[str, str, dict[str, Any]]] = []   # (entry id, type, data)
        self.follow_errors = 0
        self.sms: list[Sms] = []
        self.sms_queues: dict[str, queue.Queue[Sms | None]] = {n: queue.Queue() for n in PROVIDERS}
        self.rents: set[str] = set()                  # order ids placed as rents
        self.rent_commands: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self.rent_command_statuses: collections.Counter[str] = collections.Counter()
        self.rent_sms_seen: set[str] = set()
        self.codes = itertools.count(100000)
        self.peak_clients = 0
        self.peak_memory = 0
        self.threads: list[threading.Thread] = []
        self.errors: list[str] = []
        self.started_at = time.time()
        #: faults and the supervisor change the formation's processes one at a time
        self.formation_lock = threading.Lock()
        self.crashes: list[str] = []

    # ---- threads ----------------------------------------------------------------------------------------------
    def _thread(self, target: Callable[..., None], name: str, *args: Any) -> None:
        def run() -> None:
            try:
                target(*args)
            except Exception as exc:  # a harness bug must show, not hang the run
                self.errors.append(f"{name}: {exc!r}")
                raise

        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def client(self, index: int, schedule: Callable[[], tuple[int, float] | None]) -> None:
        session = requests.Session()
        headers = {"Authorization": f"Bearer {self.f.api_token}"}
        while not self.stop_load.is_set():
            slot = schedule()
            if slot is None:
                return
            n, due = slot
            pause = due - time.monotonic()
            if pause > 0 and self.stop_load.wait(pause):  # the load's pace, not a wait for a sign
                return
            order_id = f"soak-{uuid.uuid4().hex[:16]}"
            names = list(PROVIDERS) if n % 2 == 0 else list(reversed(PROVIDERS))
            if self.o.rent_every and n % self.o.rent_every == self.o.rent_every - 1:
                # every other rent prefers the other provider (n alone would give rents one parity)
                names = list(PROVIDERS) if n // self.o.rent_every % 2 == 0 else list(reversed(PROVIDERS))
                body = {"service": RENT_SERVICE, "country": 0, "order_id": order_id, "providers": names, "rent_time": 4}
                self._place(session, headers, body, first_web=n % self.f.webs, path="/api/rents")
                continue
            body = {"service": "tg", "country": 0, "order_id": order_id, "providers": names}
            self._place(session, headers, body, first_web=n % self.f.webs)

    def _post(self, session: requests.Session, headers: dict[str, str], path: str, body: dict[str, Any] | None,
              first_web: int, statuses: collections.Counter[str] | None = None) -> tuple[str, str]:
        """POST until answered (2xx or 4xx), on the other web process when one is down; (status, the answer's
        first bytes), or ("none", "") when 90 s passed. ``statuses`` counts every try's status."""
        deadline = time.monotonic() + 90
        attempt = 0
        while time.monotonic() < deadline and not self.stop_all.is_set():
            web = (first_web + attempt) % self.f.webs
            attempt += 1
            try:
                response = session.post(f"{self.f.web_url(web)}{path}", json=body, headers=headers, timeout=10)
                status, text = str(response.status_code), response.text[:200]
            except requests.RequestException:
                status, text = "conn", ""
            if statuses is not None:
                with self.lock:
                    statuses[status] += 1
            if status[:1] in ("2", "4"):
                return status, text
            time.sleep(0.2)  # a client's pause before retrying: its pace, not a wait for us
        return "none", ""

    def _place(self, session: requests.Session, headers: dict[str, str], body: dict[str, Any],
               first_web: int, path: str = "/api/orders") -> None:
        """POST until accepted (the same order id: never twice)."""
        status, text = self._post(session, headers, path, body, first_web, self.post_statuses)
        if status in ("200", "202"):
            with self.lock:
                self.accepted.setdefault(body["order_id"], time.time())
                if path == "/api/rents":
                    self.rents.add(body["order_id"])
        elif status.startswith("4"):
            self.errors.append(f"order refused {status}: {text}")
        else:
            self.errors.append(f"order {body['order_id']} never accepted")

    def follow(self) -> None:
        """Read the events stream as it grows; hand each new number to its provider's SMS sender."""
        client = self.f.redis(timeout=3)
        last = "0-0"
        ticks = 0
        while not self.stop_all.is_set():
            try:
                entries = stream_entries(client, STREAM, start=f"({last}" if last != "0-0" else "-", count=500)
                ticks += 1
                if ticks % 10 == 0:
                    self.peak_clients = max(self.peak_clients, len(client.client_list()))
                    self.peak_memory = max(self.peak_memory, int(client.info("memory")["used_memory"]))
            except (redis.RedisError, OSError):
                self.follow_errors += 1
                self.stop_all.wait(0.2)
                continue
            for entry_id, fields in entries:
                last = entry_id
                data = json.loads(fields["data"])
                with self.lock:
                    self.events.append((entry_id, fields["type"], data))
                if fields["type"] == "number.assigned" and not data.get("repeated"):
                    self._plan_sms(data)
                elif fields["type"] == "rent.started":
                    self._plan_rent(data)
                elif fields["type"] == "rent.sms":
                    self._rent_sms_seen(data)
            if not entries:
                self.stop_all.wait(0.1)

    def _plan_sms(self, data: dict[str, Any]) -> None:
        plan = plan_for(str(data["order_id"]))
        if plan is SmsPlan.NONE:
            return
        sms = Sms(str(data["order_id"]), str(data["provider"]), str(data["activation_id"]), f"{next(self.codes)}",
                  plan)
        self.sms_queues[sms.provider].put(sms)

    def _plan_rent(self, data: dict[str, Any]) -> None:
        order_id = str(data["order_id"])
        if rent_plan_for(order_id) is RentPlan.CANCEL:
            self.rent_commands.put((order_id, "cancel"))
            return
        plan = plan_for(order_id)
        sms = Sms(order_id, str(data["provider"]), "", f"{next(self.codes)}",
                  SmsPlan.WEBHOOK if plan is SmsPlan.NONE else plan, rent_id=str(data["rent_id"]))
        self.sms_queues[sms.provider].put(sms)

    def _rent_sms_seen(self, data: dict[str, Any]) -> None:
        order_id = str(data["order_id"])
        if order_id not in self.rent_sms_seen and rent_plan_for(order_id) is RentPlan.SMS_FINISH:
            self.rent_sms_seen.add(order_id)
            self.rent_commands.put((order_id, "finish"))

    def command_rents(self) -> None:
        """The rent clients' finish and cancel commands, each POSTed until answered (on the other web process
        when one is down)."""
        session = requests.Session()
        headers = {"Authorization": f"Bearer {self.f.api_token}"}
        while True:
            item = self.rent_commands.get()
            if item is None:
                return
            order_id, command = item
            status, _text = self._post(session, headers, f"/api/rents/{order_id}/{command}", None, 0)
            with self.lock:
                self.rent_command_statuses[f"{command} {status}"] += 1
            if status[:1] != "2":
                self.errors.append(f"rent {order_id}: {command} answered {status}")

    def send_sms(self, provider: str) -> None:
        """One provider's SMS, one at a time, switching its drop/duplicate settings when the plan changes."""
        sandbox = self.f.sandboxes[provider]
        current: tuple[bool, int] = (False, 1)
        while True:
            sms = self.sms_queues[provider].get()
            if sms is None:
                return
            wanted = (sms.plan is SmsPlan.DROPPED, 2 if sms.plan is SmsPlan.DUPLICATED else 1)
            if wanted != current:
                sandbox.control("settings", {"drop_webhooks": wanted[0], "duplicate_webhooks": wanted[1]})
                current = wanted
            if sms.rent_id:
                response = sandbox.control("sms", {"rent_id": sms.rent_id, "text": sms.text, "phone_from": "SOAK"})
            else:
                response = sandbox.control("sms", {"activation_id": sms.activation_id, "code": sms.code,
                                                   "text": sms.text})
            sms.status = response.status_code
            with self.lock:
                self.sms.append(sms)

    def supervise(self) -> None:
        """Restart a process that exited on its own (as the platform restarts a crashed dyno) and record it: an
        unexpected exit is a failed invariant, and the restart lets the run go on to its other checks."""
        while not self.stop_all.wait(0.5):
            with self.formation_lock:
                if self.stop_load.is_set() and self.stop_all.is_set():
                    return
                for proc in self.f.exited():
                    log = proc.log().splitlines()
                    lines = [line for line in log if "CRITICAL" in line] or [line for line in log if "Error" in line]
                    why = lines[-1][:240] if lines else "(nothing logged)"
                    at = time.time() - self.started_at
                    self.crashes.append(f"{proc.name} exited {proc.proc.returncode if proc.proc else '?'} at "
                                        f"{at:.0f} s: {why}")
                    print(f"soak: {at:6.1f} s  {proc.name} EXITED on its own: {why}; starting a new one", flush=True)
                    try:
                        self.f.restart(proc.name)
                    except Exception as exc:
                        self.errors.append(f"restart of {proc.name}: {exc}")

    # ---- faults -----------------------------------------------------------------------------------------------
    def fault_plan(self) -> list[tuple[float, str, Callable[[Fault], None]]]:
        return [(0.12, "SIGKILL of a worker pool child", self.kill_pool_child),
                (0.24, "provider outage (alpha: HTTP 500, 3 s)", self.outage),
                (0.36, "SIGTERM of web1 as a deploy does, then a new web1", self.deploy_web),
                (0.48, "provider answering 429 (beta, Retry-After 1, 3 s)", self.rate_limited),
                (0.58, "Redis restart (same port and data)", self.restart_redis),
                (0.70, "SIGKILL of a whole worker, then a new one", self.kill_worker)]

    def run_faults(self, started: float) -> list[Fault]:
        faults = []
        for share, name, action in self.fault_plan():
            due = started + share * self.o.duration
            if self.stop_load.wait(max(0.0, due - time.monotonic())):  # the schedule's pace
                break
            fault = Fault(name, time.monotonic() - started)
            try:
                with self.formation_lock:
                    action(fault)
                fault.ok = True
            except Exception as exc:
                fault.detail = f"{fault.detail} FAILED: {str(exc)[:300]}".strip()
            faults.append(fault)
            print(f"soak: {fault.at:6.1f} s  {name}: {fault.detail}", flush=True)
        return faults

    def kill_pool_child(self, fault: Fault) -> None:
        worker = "worker1"
        children = self.f.pool_children(worker)
        victim = children[0]
        victim.send_signal(signal.SIGKILL)
        self.f.seen_pids.add(victim.pid)
        wait_until(lambda: (len(kids := self.f.pool_children(worker)) >= self.o.worker_concurrency
                            and victim.pid not in {k.pid for k in kids}), timeout=60, interval=0.1,
                   check=self.f.check_alive, message="no replacement pool child")
        self.f.note_children()
        fault.detail = f"child {victim.pid} of {worker} killed; the pool replaced it"

    def _fail_mode(self, provider: str, fault: Fault, mode: str, **extra: Any) -> None:
        sandbox = self.f.sandboxes[provider]
        before = sandbox.state()["requests"]
        sandbox.control("settings", {"fail_mode": mode, "fail_next": None, **extra})
        self.stop_all.wait(3.0)  # the outage's length: the fault itself
        sandbox.control("settings", {"fail_mode": None, "fail_next": None})
        after = sandbox.state()["requests"]
        fault.detail = f"{provider} failed every call for 3 s ({after - before} answered calls meanwhile)"

    def outage(self, fault: Fault) -> None:
        self._fail_mode("alpha", fault, "500")

    def rate_limited(self, fault: Fault) -> None:
        self._fail_mode("beta", fault, "429", retry_after=1)

    def deploy_web(self, fault: Fault) -> None:
        proc = self.f.processes["web1"]
        started = time.monotonic()
        proc.signal_group(signal.SIGTERM)
        assert proc.proc is not None
        code = proc.proc.wait(timeout=30)
        exited = time.monotonic() - started
        self.f.start_web(0)
        back = time.monotonic() - started
        fault.detail = f"web1 exited {code} after {exited:.1f} s; a new web1 answered {back:.1f} s in"

    def restart_redis(self, fault: Fault) -> None:
        server = self.f.redis_server
        assert server is not None
        started = time.monotonic()
        server.stop()
        server.start()
        for i in range(self.f.webs):
            self.f.wait_web(i)
        self.f.note_children()
        fault.detail = f"down and back on port {server.port}; every web ready {time.monotonic() - started:.1f} s in"

    def kill_worker(self, fault: Fault) -> None:
        started = time.monotonic()
        self.f.note_children()
        self.f.kill_group("worker2", signal.SIGKILL)
        self.f.start_worker("worker2")
        fault.detail = f"worker2 and its pool SIGKILLed; a new worker2 ready {time.monotonic() - started:.1f} s in"

    # ---- the whole run ----------------------------------------------------------------------------------------
    def run(self) -> Result:
        result = Result()
        counter = itertools.count()
        started = time.monotonic()
        self.started_at = time.time()
        limit = started + self.o.duration

        def schedule() -> tuple[int, float] | None:
            with self.lock:
                n = next(counter)
            due = started + n / self.o.rate
            if n >= self.o.max_orders or due >= limit:
                return None
            return n, due

        self._thread(self.follow, "follow")
        self._thread(self.supervise, "supervise")
        for provider in PROVIDERS:
            self._thread(self.send_sms, f"sms-{provider}", provider)
        self._thread(self.command_rents, "rent-commands")
        # hostile clients against every web process for the whole load: webhooks must keep flowing past them
        hostile = [HostileClients(port, self.o.idle, self.o.slow, self.o.duration + 60) for port in self.f.web_ports]
        for h in hostile:
            h.__enter__()
        clients = []
        for i in range(self.o.clients):
            self._thread(self.client, f"client-{i}", i, schedule)
            clients.append(self.threads[-1])
        faults = self.run_faults(started) if self.o.faults else []
        for thread in clients:
            thread.join()
        self.stop_load.set()
        for h in hostile:
            h.__exit__()
        result.figures["hostile clients"] = (f"{self.o.idle} idle and {self.o.slow} slow connections held open "
                                             f"against each of {len(hostile)} web processes during the load "
                                             f"({sum(h.reconnects for h in hostile)} reopened after the server "
                                             "closed them)")
        load_seconds = time.monotonic() - started
        print(f"soak: load stopped after {load_seconds:.1f} s: {len(self.accepted)} orders accepted; "
              "waiting for every order to end ...", flush=True)
        result.faults = faults
        settled = self.wait_terminal()
        settle_seconds = time.monotonic() - started - load_seconds
        self.verify(result, settled, load_seconds, settle_seconds)
        return result

    def terminal_orders(self) -> set[str]:
        with self.lock:
            return {d["order_id"] for _, kind, d in self.events if kind in TERMINAL}

    def wait_terminal(self) -> bool:
        def all_ended() -> bool:
            with self.lock:
                wanted = set(self.accepted)
            return wanted <= self.terminal_orders()

        try:
            wait_until(all_ended, timeout=self.o.settle, interval=0.25,
                       message=lambda: f"not terminal: {sorted(set(self.accepted) - self.terminal_orders())[:10]}")
        except AssertionError as exc:
            print(f"soak: {exc}", flush=True)
            return False
        return True

    def provider_states(self) -> dict[str, dict[str, Any]]:
        return {name: sandbox.state() for name, sandbox in self.f.sandboxes.items()}

    def wait_provider_ended(self) -> dict[str, dict[str, Any]]:
        """Sandbox states once every activation is finished or cancelled (or the time is up)."""
        holder: dict[str, dict[str, dict[str, Any]]] = {}

        def ended() -> bool:
            holder["states"] = states = self.provider_states()
            return all(a["state"] in ENDED for s in states.values() for a in (*s["activations"], *s["rents"]))

        try:
            wait_until(ended, timeout=60, interval=0.5)
        except AssertionError:
            pass
        return holder["states"]

    def accounts(self) -> list[dict[str, Any]]:
        headers = {"Authorization": f"Bearer {self.f.api_token}"}
        response = requests.get(f"{self.f.web_url(0)}/api/spend", headers=headers, timeout=10)
        response.raise_for_status()
        return list(response.json()["accounts"])

    # ---- invariants -------------------------------------------------------------------------------------------
    def verify(self, result: Result, settled: bool, load_seconds: float, settle_seconds: float) -> None:
        checks = result.checks
        states = self.wait_provider_ended()
        r = self.f.redis()
        all_events = [(entry_id, fields["type"], json.loads(fields["data"]))
                      for entry_id, fields in stream_entries(r, STREAM)]
        by_order: dict[str, list[tuple[str, dict[str, Any]]]] = collections.defaultdict(list)
        for _, kind, data in all_events:
            if data.get("order_id"):
                by_order[str(data["order_id"])].append((kind, data))
        accepted = set(self.accepted)
        with open(self.f.log_dir / "events.jsonl", "w") as dump:
            for entry_id, kind, data in all_events:
                dump.write(json.dumps({"id": entry_id, "type": kind, "data": data}) + "\n")

        # every accepted code emitted exactly once (code.received once per code per order), none invented
        delivered = [s for s in self.sms if s.status == 200 and not s.rent_id]
        emitted = collections.Counter((str(d["order_id"]), str(d["code"])) for _, k, d in all_events
                                      if k == "code.received")
        wanted = collections.Counter((s.order_id, s.code) for s in delivered)
        missing = [key for key in wanted if emitted[key] == 0]
        doubled = [key for key, n in emitted.items() if n > 1]
        invented = [key for key in emitted if key not in wanted]
        webhooks = [w for s in states.values() for w in s["webhooks"] if w["kind"] == "activation"]
        hooks = collections.Counter(w["status"] for w in webhooks)
        # and every code a delivered webhook carried (the sandbox's log: answered 200 by us) is among them
        hooked = {(str(w["payload"].get("activationId")), str(w["payload"].get("code"))) for w in webhooks
                  if w["status"] == "delivered"}
        sent = {(s.activation_id, s.code) for s in delivered}
        missing += sorted(hooked - sent)
        via = collections.Counter(str(d.get("via")) for _, k, d in all_events if k == "code.received")
        checks.append(Check("every accepted code emitted exactly once", not (missing or doubled or invented),
                            f"{len(wanted)} codes ({len(delivered)} SMS; webhooks {dict(hooks)}; via {dict(via)}); "
                            f"missing {missing[:5]}, twice {doubled[:5]}, unknown {invented[:5]}"))

        # every rent SMS emitted exactly once (rent.sms, by webhook or by the rent's poll), none invented
        checks.append(self.rent_sms_check(all_events, states))

        # every order terminal, exactly one terminal event, after which nothing of it is written
        terminals = {o: [k for k, _ in by_order.get(o, []) if k in TERMINAL] for o in accepted}
        not_ended = sorted(o for o, t in terminals.items() if not t)
        several = sorted(o for o, t in terminals.items() if len(t) > 1)
        outcomes = collections.Counter(t[0] for t in terminals.values() if t)
        ended_at = {str(d["order_id"]): int(i.split("-")[0]) / 1000 for i, k, d in all_events if k in TERMINAL}
        took = sorted((ended_at[o] - self.accepted[o], o) for o in accepted if o in ended_at)
        reasons = collections.Counter(str(d.get("reason")) for _, k, d in all_events if k == "order.failed")
        checks.append(Check("every order terminal, one terminal event", settled and not not_ended and not several,
                            f"{len(accepted)} orders: {dict(outcomes)}"
                            + (f" (failed: {dict(reasons)})" if reasons else "")
                            + (f"; not ended {not_ended[:5]}" if not_ended else "")
                            + (f"; several {several[:5]}" if several else "")))

        # every activation ended at the provider, and the providers' ledgers equal our accounting
        open_ones = [f"{n}:{a['id']}:{a['state']}" for n, s in states.items()
                     for a in (*s["activations"], *s["rents"]) if a["state"] not in ENDED]
        accounts = self.accounts_settled(states)
        books = [_books(name, state, accounts) for name, state in states.items()]
        checks.append(Check("every activation ended at the provider; ledgers equal our books",  # rents too
                            not open_ones and all(ok for _, ok in books),
                            "; ".join(line for line, _ in books) + (f"; open {open_ones[:5]}" if open_ones else "")))

        # no number bought twice for one order (our events and the providers' purchases alike)
        numbers = collections.Counter(str(d["order_id"]) for _, k, d in all_events
                                      if k in ("number.assigned", "rent.started"))
        sold = collections.Counter(str(a["order_id"]) for s in states.values() for a in s["activations"]
                                   if a.get("order_id"))
        twice = sorted({o for o, n in numbers.items() if n > 1} | {o for o, n in sold.items() if n > 1})
        checks.append(Check("no number bought twice for one order", not twice,
                            f"{sum(numbers.values())} numbers and rents assigned, {sum(sold.values())} numbers "
                            f"sold for {len(sold)} orders" + (f"; twice {twice[:5]}" if twice else "")))

        # no event_id twice in the stream
        ids = collections.Counter(str(d.get("event_id")) for _, _, d in all_events)
        repeated = [i for i, n in ids.items() if n > 1]
        checks.append(Check("no event_id twice in the events stream", not repeated,
                            f"{len(all_events)} events" + (f"; twice {repeated[:5]}" if repeated else "")))

        # figures while the formation still runs
        clients_now = len(r.client_list())
        by_process = self.f.redis_connections()
        every_call = {f: int(float(v)) for f, v in hash_fields(r, f"{PREFIX}:metrics:provider-calls").items()}
        calls = {f: v for f, v in every_call.items() if "Rent" not in f.split("|", 1)[0]}  # activations' only
        rent_calls = sum(every_call.values()) - sum(calls.values())
        by_action: collections.Counter[str] = collections.Counter()
        for f, v in calls.items():
            by_action[f.split("|", 1)[0]] += v
        served = sum(int(s["requests"]) for s in states.values())
        completed = outcomes.get("order.completed", 0)
        events_n = len(all_events)
        hook_total = sum(hooks.values())
        result.figures.update({
            "duration": f"{load_seconds:.0f} s of load, then {settle_seconds:.0f} s until every order ended",
            "orders/s": f"{len(accepted) / load_seconds:.2f} ({len(accepted)} orders by {self.o.clients} clients; "
                        f"POST answers {dict(self.post_statuses)})",
            "webhooks/s": f"{hooks['delivered'] / load_seconds:.2f} ({hooks['delivered']} delivered of "
                          f"{hook_total} provider webhooks, duplicates included; {hooks['dropped']} dropped)",
            "events/s": f"{events_n / load_seconds:.2f} ({events_n} events)",
            "provider calls per completed activation":
                f"{sum(calls.values()) / max(1, completed):.2f} (minimum {MINIMUM_CALLS}; workers counted "
                f"{sum(calls.values())} for activations and {rent_calls} for rents, the sandboxes answered "
                f"{served}, for {completed} completed; "
                + ", ".join(f"{a} {n}" for a, n in by_action.most_common()) + ")",
            "order placed to terminal event":
                (f"p50 {took[len(took) // 2][0]:.1f} s, max {took[-1][0]:.1f} s (slowest: "
                 + ", ".join(f"{o} {t:.1f} s, placed at {self.accepted[o] - self.started_at:.0f} s"
                             for t, o in took[-3:][::-1]) + ")") if took else "n/a",
            "Redis connections": f"{clients_now} at the end (CLIENT LIST), {self.peak_clients} at most during the "
                                 "run; by process: " + ", ".join(f"{k} {v}" for k, v in by_process.items()),
        })

        # no process exited on its own (a crash the platform would restart)
        self.stop_all.set()
        with self.formation_lock:
            crashes = list(self.crashes)
        checks.append(Check("no process exited on its own", not crashes,
                            "every process ran until stopped or killed by the schedule" if not crashes
                            else "; ".join(crashes[:3])))

        # no process left behind; Redis memory near its baseline once retention ran
        self.f.stop_processes()
        checks.append(self.retained_memory(r, len(accepted)))
        for q in self.sms_queues.values():
            q.put(None)
        self.rent_commands.put(None)
        for thread in self.threads:
            thread.join(timeout=10)
        self.f.stop()
        try:  # a process signalled a moment ago may still be exiting
            wait_until(lambda: not self.f.leftovers(), timeout=20, interval=0.2)
        except AssertionError:
            pass
        left = self.f.leftovers()
        checks.append(Check("no process left behind", not left,
                            f"{len(self.f.seen_pids)} processes started or seen, all reaped"
                            if not left else f"left: {left[:8]}"))
        if self.errors:
            checks.append(Check("harness ran cleanly", False, "; ".join(self.errors[:5])))

    def rent_sms_check(self, all_events: list[tuple[str, str, dict[str, Any]]],
                       states: dict[str, dict[str, Any]]) -> Check:
        """Every SMS a rented number got (the sandbox answered 200) is one rent.sms of its order; none invented."""
        name = "every rent SMS emitted exactly once"
        with self.lock:
            rents = set(self.rents)
            commands = dict(self.rent_command_statuses)
        if not rents:
            return Check(name, True, "no rents in this run (--rent-every 0)")
        delivered = [s for s in self.sms if s.status == 200 and s.rent_id]
        wanted = collections.Counter((s.order_id, s.text) for s in delivered)
        emitted = collections.Counter((str(d["order_id"]), str(d.get("text"))) for _, k, d in all_events
                                      if k == "rent.sms")
        missing = [key for key in wanted if emitted[key] == 0]
        doubled = [key for key, n in emitted.items() if n > 1]
        invented = [key for key in emitted if key not in wanted]
        hooks = collections.Counter(w["status"] for s in states.values() for w in s["webhooks"] if w["kind"] == "rent")
        via = collections.Counter(str(d.get("via")) for _, k, d in all_events if k == "rent.sms")
        ends = collections.Counter(k for _, k, d in all_events if k in TERMINAL and str(d.get("order_id")) in rents)
        return Check(name, not (missing or doubled or invented),
                     f"{len(rents)} rents ({dict(ends)}; commands {commands}); {len(wanted)} SMS (webhooks "
                     f"{dict(hooks)}; via {dict(via)}); missing {missing[:5]}, twice {doubled[:5]}, "
                     f"unknown {invented[:5]}")

    def accounts_settled(self, states: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        """Our accounting once its totals match the sandboxes' ledgers (every order is terminal by now, so they
        should at once), else the last read."""
        holder: dict[str, list[dict[str, Any]]] = {}

        def matches() -> bool:
            holder["accounts"] = accounts = self.accounts()
            return all(_books(name, state, accounts)[1] for name, state in states.items())

        try:
            wait_until(matches, timeout=20, interval=0.5)
        except AssertionError:
            pass
        return holder["accounts"]

    def retained_memory(self, r: redis.Redis, orders: int) -> Check:
        """Memory once retention ran: every key with a time to live expired, the order index's entries (pruned
        by age) and the events stream (kept by length, EVENTS_MAXLEN) gone. The formation is stopped, so the only
        client is ours, as at the baseline; the figure is read again after a restart from the append-only file,
        where the run's allocator and buffer residue no longer counts, as it did not in the fresh baseline."""
        end = int(r.info("memory")["used_memory"])
        stream_bytes = int(r.memory_usage(STREAM) or 0)
        expiring = [k for k in r.scan_iter(count=1000) if r.ttl(k) > 0]
        expiring_bytes = sum(int(r.memory_usage(k) or 0) for k in expiring)
        index_bytes = int(r.memory_usage(f"{PREFIX}:orders") or 0)
        for i in range(0, len(expiring), 500):
            r.delete(*expiring[i:i + 500])
        r.delete(STREAM, f"{PREFIX}:orders", f"{PREFIX}:rents")
        live = int(r.info("memory")["used_memory"])
        families: collections.Counter[str] = collections.Counter()
        for key in r.scan_iter(count=1000):
            families[_family(key)] += int(r.memory_usage(key) or 0)
        left = sum(families.values())
        r.close()
        server = self.f.redis_server
        assert server is not None
        server.stop()
        server.start()
        fresh = self.f.redis()
        after = int(fresh.info("memory")["used_memory"])
        fresh.close()
        baseline = self.baseline_memory
        growth = after - baseline
        limit = self.o.memory_slack_kib * 1024
        return Check("Redis memory back near its baseline once retention ran", growth <= limit,
                     f"baseline {baseline / 1024:.0f} KiB, peak {self.peak_memory / 1024:.0f} KiB, end "
                     f"{end / 1024:.0f} KiB; retention removes {len(expiring)} keys with a TTL "
                     f"({expiring_bytes / 1024:.0f} KiB, {expiring_bytes / max(1, orders):.0f} B per order), the "
                     f"events stream ({stream_bytes / 1024:.0f} KiB) and the order index ({index_bytes / 1024:.0f} "
                     f"KiB); then {live / 1024:.0f} KiB live, {after / 1024:.0f} KiB after a restart: "
                     f"{growth / 1024:+.0f} KiB (limit {self.o.memory_slack_kib} KiB; {len(families)} kinds of keys "
                     f"left, {left / 1024:.1f} KiB: "
                     + ", ".join(f"{k} {v / 1024:.1f}" for k, v in families.most_common(4)) + ")")

    baseline_memory = 0


def _family(key: str) -> str:
    """A key without its ids (``otpflow:order:<id>`` -> ``otpflow:order:*``), to group what is left by kind."""
    parts = key.split(":")
    return ":".join(p if p.isalpha() or p in ("_kombu", "unacked") or "-" in p and p.replace("-", "").isalpha()
                    else "*" for p in parts)


def _books(name: str, state: dict[str, Any], accounts: list[dict[str, Any]]) -> tuple[str, bool]:
    """One provider's ledger (charges and refunds) against our accounting for it: (a line, whether equal).

    /control/state shows the ledger's last 1,000 entries; past that the sums come from its activations."""
    ledger = state["ledger"]
    if len(ledger) < 1000:
        charged = -sum((Decimal(e["amount"]) for e in ledger if e["kind"] == "charge"), Decimal(0))
        refunded = sum((Decimal(e["amount"]) for e in ledger if e["kind"] == "refund"), Decimal(0))
    else:  # a rent is charged each period and, cancelled, refunded all of them
        paid = [(sum((Decimal(p["price"]) for p in r["history"]), Decimal(0)), r["state"])
                for r in state.get("rents", [])]
        charged = sum((Decimal(a["cost"]) for a in state["activations"]), Decimal(0)) + \
            sum((amount for amount, _ in paid), Decimal(0))
        refunded = sum((Decimal(a["cost"]) for a in state["activations"] if a["refunded"]), Decimal(0)) + \
            sum((amount for amount, st in paid if st == "CANCELLED"), Decimal(0))
    ours_c = sum((Decimal(a["charged"]) for a in accounts if a["provider"] == name), Decimal(0))
    ours_r = sum((Decimal(a["refunded"]) for a in accounts if a["provider"] == name), Decimal(0))
    line = (f"{name}: {len(state['activations'])} numbers and {len(state.get('rents', []))} rents, charged {charged} "
            f"(ours {ours_c}), "
            f"refunded {refunded} (ours {ours_r})")
    return line, charged == ours_c and refunded == ours_r


# ---------------------------------------------------------------------------------------------- report
def print_table(result: Result, options: Options, conditions: str) -> None:
    print(f"\nsoak: {conditions}")
    print("\nload held:")
    width = max(len(k) for k in result.figures) if result.figures else 10
    for key, value in result.figures.items():
        print(f"  {key:<{width}}  {value}")
    print(f"\nfaults survived ({sum(f.ok for f in result.faults)} of {len(result.faults)}):")
    for fault in result.faults:
        print(f"  {'ok  ' if fault.ok else 'FAIL'}  {fault.at:6.1f} s  {fault.name}: {fault.detail}")
    print("\ninvariants:")
    name_width = max(len(c.name) for c in result.checks)
    for check in result.checks:
        print(f"  {'ok  ' if check.ok else 'FAIL'}  {check.name:<{name_width}}  {check.detail}")
    print(f"\nsoak: {'every invariant held' if result.ok else 'INVARIANT FAILED'}", flush=True)


def run(options: Options) -> Result:
    log_dir = options.log_dir or Path(tempfile.mkdtemp(prefix="otpflow-soak-"))
    formation = Formation(log_dir=log_dir, providers=dict(PROVIDERS), web_concurrency=options.web_concurrency,
                          worker_concurrency=options.worker_concurrency)
    soak = Soak(options, formation)
    become_subreaper()
    ok = False
    try:
        formation.start_redis()
        soak.baseline_memory = int(formation.redis().info("memory")["used_memory"])
        formation.start()
        print(f"soak: formation up (logs in {log_dir}); {options.duration:g} s of load at {options.rate:g} "
              f"orders/s ...", flush=True)
        result = soak.run()
        print_table(result, options, machine_conditions())
        ok = result.ok
        return result
    finally:
        soak.stop_all.set()
        formation.stop()
        if ok and not options.keep_logs and options.log_dir is None:
            shutil.rmtree(log_dir, ignore_errors=True)
        elif not ok:
            print(f"soak: logs kept in {log_dir}", flush=True)


# ---------------------------------------------------------------------------------------------- command line
class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0: {text!r}")
        return value
    return parse


def parse_args(argv: list[str] | None) -> Options:
    p = _Parser(prog="bench/soak.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=positive(float), default=60.0, help="seconds of load (default 60)")
    p.add_argument("--rate", type=positive(float), default=2.0, help="orders per second in all (default 2)")
    p.add_argument("--clients", type=positive(int), default=3, help="client threads placing orders (default 3)")
    p.add_argument("--max-orders", type=positive(int), default=100_000, help="stop the load after this many")
    p.add_argument("--settle", type=positive(float), default=180.0,
                   help="seconds to wait after the load for every order to end (default 180)")
    p.add_argument("--no-faults", action="store_true", help="the load alone, no fault schedule")
    p.add_argument("--web-concurrency", type=positive(int), default=2, help="gunicorn workers per web (default 2)")
    p.add_argument("--worker-concurrency", type=positive(int), default=2,
                   help="pool children per Celery worker (default 2)")
    p.add_argument("--memory-slack", type=positive(int), default=256, metavar="KIB",
                   help="how far above its baseline Redis may stay once retention ran (default 256 KiB)")
    p.add_argument("--idle", type=int, default=20, help="idle connections held against each web (default 20)")
    p.add_argument("--slow", type=int, default=20, help="slow-header connections held against each web (default 20)")
    p.add_argument("--rent-every", type=int, default=10, metavar="N",
                   help="every N-th order is a rent, cancelled or given an SMS and finished (default 10; 0: none)")
    p.add_argument("--log-dir", type=Path, default=None, help="keep the processes' logs here")
    p.add_argument("--keep-logs", action="store_true", help="keep the logs' temporary directory after a pass")
    a = p.parse_args(argv)
    if a.rent_every < 0:
        raise UsageError("--rent-every must be 0 (no rents) or more")
    if a.duration < 20 and not a.no_faults:
        raise UsageError("--duration must be at least 20 s with faults (or pass --no-faults)")
    return Options(a.duration, a.rate, a.clients, a.max_orders, a.settle, not a.no_faults, a.web_concurrency,
                   a.worker_concurrency, a.memory_slack, a.log_dir, a.keep_logs, a.idle, a.slow, a.rent_every)


def main(argv: list[str] | None = None) -> int:
    try:
        options = parse_args(argv)
    except UsageError as exc:
        print(f"bench/soak.py: {exc}", file=sys.stderr)
        return 2
    sigterm_as_interrupt()  # the formation is stopped on the way out, nothing left behind
    try:
        result = run(options)
    except KeyboardInterrupt:
        print("bench/soak.py: interrupted", file=sys.stderr)
        return 130
    except (FormationError, OSError, redis.RedisError, requests.RequestException, AssertionError) as exc:
        print(f"bench/soak.py: the formation failed: {str(exc).splitlines()[0] if str(exc) else exc!r}",
              file=sys.stderr)
        return 1
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
