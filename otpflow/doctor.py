"""``otpflow doctor``: is this deployment able to work, and if not, what to change.

It checks, in order: the configuration of every role; Redis (reachable, ``maxmemory-policy``, room for what the
settings will keep, connections); the broker when ``CELERY_BROKER_URL`` names one of its own (one connection,
worker/broker_probe.py); every provider (``getBalance`` only: it never buys); whether ``PUBLIC_URL``
reaches our web app and its webhook paths; the worker and beat heartbeats; the inbox and dead letters. Each
finding is one line, ``ok``, ``warn`` or ``FAIL``, and every problem says its fix. Exit 0 without a FAIL, else 1.
"""
from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from config.settings import ConfigError, Settings
from otpflow.commands import ExitCode, redis_where

#: bytes one event takes in the stream, on average (the README's sizing: "about 400 B per event")
EVENT_BYTES = 400
#: what the settings may keep in Redis should stay under this share of maxmemory (the rest: records, broker, slack)
ROOM_SHARE = 0.5
HTTP_TIMEOUT = 5.0
#: Redis connections kombu's consumer holds in a worker's main process when the broker is REDIS_URL: its BRPOP, the
#: remote-control subscription and two for acknowledgements and restores (measured with bench/connections.py)
WORKER_MAIN_BROKER_CONNECTIONS = 4
#: what an ``otpflow`` command (this one) needs next to the formation
CLI_CONNECTIONS = 1
#: seconds the broker probe may take to connect and to hear each answer of the handshake
BROKER_TIMEOUT = 3.0


class Level(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Finding:
    level: Level
    topic: str
    said: str
    fix: str = ""

    def line(self) -> str:
        return f"{self.level.value:<4} {self.topic}: {self.said}" + (f" — fix: {self.fix}" if self.fix else "")


def ok(topic: str, said: str) -> Finding:
    return Finding(Level.OK, topic, said)


def warn(topic: str, said: str, fix: str) -> Finding:
    return Finding(Level.WARN, topic, said, fix)


def fail(topic: str, said: str, fix: str) -> Finding:
    return Finding(Level.FAIL, topic, said, fix)


# ------------------------------------------------------------------------------------------ configuration
def configuration(settings: Settings) -> Iterator[Finding]:
    for role in ("web", "worker", "beat"):
        try:
            settings.require(role)
        except ConfigError as exc:
            for problem in exc.problems:
                name, _, why = problem.partition(":")
                yield fail(f"config ({role})", problem, f"set {name.strip()} in the {role}'s environment"
                           if why else "see README, Configuration")
        else:
            yield ok(f"config ({role})", "every setting it needs is set and valid")


# ------------------------------------------------------------------------------------------ Redis
def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB"


def redis_checks(settings: Settings, client: Any) -> Iterator[Finding]:
    where = redis_where(settings.redis_url)
    try:
        client.ping()
        memory, clients, server = client.info("memory"), client.info("clients"), client.info("server")
    except Exception as exc:
        yield fail("redis", f"{where} did not answer ({type(exc).__name__})",
                   "start Redis, or set REDIS_URL to a running one (Heroku: heroku addons:create heroku-redis)")
        return
    version = server.get("valkey_version") or server.get("redis_version") or "?"
    yield ok("redis", f"{where} answers ({'valkey' if server.get('valkey_version') else 'redis'} {version})")
    policy = str(memory.get("maxmemory_policy", "?"))
    if policy != "noeviction":
        yield fail("redis memory policy", f"maxmemory-policy is {policy}: Redis may evict the broker's queues or "
                   "the inbox", "set it to noeviction (redis-cli CONFIG SET maxmemory-policy noeviction; Heroku: "
                   "heroku redis:maxmemory --policy noeviction)")
    else:
        yield ok("redis memory policy", "noeviction")
    yield from _room(settings, int(memory.get("maxmemory") or 0), int(memory.get("used_memory") or 0))
    maxclients, connected = int(clients.get("maxclients") or 0), int(clients.get("connected_clients") or 0)
    yield from _connections(settings, maxclients, connected)


@dataclass(frozen=True)
class ConnectionEstimate:
    """The most connections to REDIS_URL one web dyno, one worker dyno and the beat open with these settings."""

    web: int
    worker: int
    beat: int

    @property
    def total(self) -> int:
        return self.web + self.worker + self.beat

    def said(self) -> str:
        return f"{self.total} (web {self.web}, worker {self.worker}, beat {self.beat})"


def connection_estimate(settings: Settings) -> ConnectionEstimate:
    """README, Sizing Redis: every process's pools hold at most REDIS_MAX_CONNECTIONS (N) each; on a broker that is
    REDIS_URL each pooled producer is one more connection (worker/broker_transport.py), and the worker's main
    process holds kombu's consumer connections besides its one for the Redis gate."""
    n = settings.redis_max_connections
    on_redis = not settings.celery_broker_url or settings.celery_broker_url.rstrip("/") == \
        settings.redis_url.rstrip("/")
    per_web = min(n, settings.web_threads) * (2 if on_redis else 1)
    per_child = n * (2 if on_redis else 1)  # a finishing batch's threads share the child's pools
    worker = 1 + (WORKER_MAIN_BROKER_CONNECTIONS if on_redis else 0) + settings.worker_concurrency * per_child
    return ConnectionEstimate(web=settings.web_concurrency * per_web, worker=worker, beat=1 if on_redis else 0)


def _connections(settings: Settings, maxclients: int, connected: int) -> Iterator[Finding]:
    if not maxclients:
        return
    need = connection_estimate(settings)
    if need.total + CLI_CONNECTIONS > maxclients:
        fixes = ["set REDIS_MAX_CONNECTIONS=1"] if settings.redis_max_connections > 1 else []
        fixes += ["lower WEB_CONCURRENCY or WORKER_CONCURRENCY", "move the Celery messages to RabbitMQ "
                  "(CELERY_BROKER_URL)", "take a plan with more connections"]
        yield warn("redis connections", f"1 web, 1 worker and 1 beat with these settings may open {need.said()} "
                   f"connections, and this command one: more than the {maxclients} this Redis allows "
                   f"({connected} in use now)", ", ".join(fixes[:-1]) + f" or {fixes[-1]}")
    elif connected >= 0.8 * maxclients:
        yield warn("redis connections", f"{connected} of {maxclients} in use (1 web, 1 worker and 1 beat with these "
                   f"settings open at most {need.said()})", "look for other clients (CLIENT LIST), lower "
                   "WEB_CONCURRENCY / WORKER_CONCURRENCY or take a plan with more connections")
    else:
        yield ok("redis connections", f"{connected} of {maxclients} in use; 1 web, 1 worker and 1 beat with these "
                 f"settings open at most {need.said()}")


def _room(settings: Settings, limit: int, used: int) -> Iterator[Finding]:
    from lifecycle.inbox.stream import STREAM_MAX_BYTES

    kept = settings.events_maxlen * EVENT_BYTES + 2 * STREAM_MAX_BYTES
    if not limit:
        yield ok("redis room", f"{_mb(used)} used, no maxmemory set (the settings keep up to about {_mb(kept)})")
        return
    if kept > ROOM_SHARE * limit:
        fit = max(1000, int((ROOM_SHARE * limit - 2 * STREAM_MAX_BYTES) // EVENT_BYTES))
        yield fail("redis room", f"EVENTS_MAXLEN={settings.events_maxlen} keeps about {_mb(kept)} of events and "
                   f"inspection streams, more than half of maxmemory ({_mb(limit)}): writes would fail before the "
                   "stream trims", f"set EVENTS_MAXLEN to {fit} or less, or take a bigger Redis")
    elif used > 0.8 * limit:
        yield warn("redis room", f"{_mb(used)} of {_mb(limit)} used", "find what grows (otpflow dead-letters list, "
                   "the inbox backlog) or take a bigger Redis")
    else:
        yield ok("redis room", f"{_mb(used)} of {_mb(limit)} used; the settings keep up to about {_mb(kept)}")


# ------------------------------------------------------------------------------------------ broker
#: what to do about a broker that refused us, by the error's type (else: it did not answer)
_BROKER_FIXES = {
    "AccessRefused": "set the user and password of CELERY_BROKER_URL to an account of that broker",
    "NotAllowed": "set CELERY_BROKER_URL's vhost to one that exists there and the user may use (the path after the "
                  "host; // is the default vhost /)",
    "AuthenticationError": "set the password of CELERY_BROKER_URL to that Redis's",
}
_BROKER_DOWN_FIX = ("start the broker there, or set CELERY_BROKER_URL to a running one (Heroku: heroku addons:create "
                    "cloudamqp:lemur --as CELERY_BROKER), or unset it to carry the messages on REDIS_URL")


def broker_checks(settings: Settings, prober: Callable[..., Any] | None = None) -> Iterator[Finding]:
    """``CELERY_BROKER_URL`` accepts a connection (login and vhost included); nothing to do when it is unset or is
    ``REDIS_URL``: the Redis checks above cover that one. The broker is named without its user or password."""
    from worker.broker_probe import probe, probed_url

    url = probed_url(settings)
    if url is None:
        yield ok("broker", "the Celery messages go through REDIS_URL (checked above)")
        return
    status = (prober or probe)(settings, url, timeout=BROKER_TIMEOUT)
    if status.reachable:
        yield ok("broker", f"{status.where} accepts connections")
        return
    refused = status.error in _BROKER_FIXES
    why = status.error + (f": {status.detail}" if status.detail else "")
    yield fail("broker", f"{status.where} {'refused us' if refused else 'did not answer'} ({why})",
               _BROKER_FIXES.get(status.error, _BROKER_DOWN_FIX))


# ------------------------------------------------------------------------------------------ providers
def providers(settings: Settings) -> Iterator[Finding]:
    from flows.runtime import build_providers
    from provider.errors import ErrorKind, ProviderError

    for name, client in build_providers(settings).items():
        config = settings.provider_config(name)
        topic = f"provider {name}"
        if not config.api_key:
            yield fail(topic, "no API key", f"set {config.var('API_KEY')}")
            continue
        try:
            amount = client.get_balance().amount
        except ProviderError as exc:
            if exc.kind in (ErrorKind.OUTAGE, ErrorKind.RATE_LIMITED):
                yield fail(topic, f"not reachable at {config.base_url} ({type(exc).__name__})",
                           f"check {config.var('URL')} and the network; try again later")
            elif exc.kind is ErrorKind.ACCOUNT_BLOCKED:
                yield fail(topic, f"refused the key ({type(exc).__name__})",
                           f"set {config.var('API_KEY')} to the account's API key (the provider's profile page)")
            else:
                yield fail(topic, f"getBalance failed ({type(exc).__name__}: {exc})",
                           f"check {config.var('DIALECT')} and {config.var('URL')}")
            continue
        if amount <= 0:
            yield warn(topic, f"balance {amount}: nothing can be bought", "top up the account")
        else:
            yield ok(topic, f"answers; balance {amount} ({config.dialect.name})")


# ------------------------------------------------------------------------------------------ PUBLIC_URL
def public_url(settings: Settings, get: Callable[..., Any] | None = None) -> Iterator[Finding]:
    """``PUBLIC_URL`` must reach this app: ``/healthz`` answers ours, and each webhook path exists (a GET there is
    answered 405, POST only, by our app: the path is routed to us). Nothing is posted: a probe would be stored."""
    import requests

    get = get or requests.get
    if not settings.public_url:
        yield warn("PUBLIC_URL", "not set: rents get no webhook URL, and this check cannot run",
                   "set PUBLIC_URL to this app's external base URL (https://<app>.herokuapp.com)")
        return
    base = settings.public_url.rstrip("/")
    try:
        health = get(f"{base}/healthz", timeout=HTTP_TIMEOUT)
        ours = health.status_code == 200 and health.headers.get("Content-Type", "").startswith("application/json") \
            and health.json().get("status") == "ok"
    except (requests.RequestException, ValueError) as exc:
        yield fail("PUBLIC_URL", f"{base}/healthz did not answer ({type(exc).__name__})",
                   "check PUBLIC_URL, DNS and that the web process is running")
        return
    if not ours:
        yield fail("PUBLIC_URL", f"{base}/healthz answered {health.status_code}, not otpflow",
                   "point PUBLIC_URL at this app (it must serve /healthz and /webhooks/<token>)")
        return
    for config in settings.provider_configs:
        if not config.webhook_token:
            continue
        try:
            answer = get(f"{base}/webhooks/{config.webhook_token}", timeout=HTTP_TIMEOUT)
        except requests.RequestException as exc:
            yield fail(f"webhook path ({config.name})", f"did not answer ({type(exc).__name__})",
                       "check the proxy in front of the app")
            continue
        if answer.status_code == 405 and "POST" in answer.headers.get("Allow", ""):
            yield ok(f"webhook path ({config.name})", f"{base}/webhooks/*** reaches otpflow")
        else:
            yield fail(f"webhook path ({config.name})", f"a GET answered {answer.status_code} instead of 405 "
                       "(POST only)", "make the proxy pass /webhooks/ to the web process")


# ------------------------------------------------------------------------------------------ processes
def heartbeats(settings: Settings, client: Any) -> Iterator[Finding]:
    from config import domain
    from webhook.health import queue_heartbeat_reads, read_heartbeats, stale_after
    from webhook.redis_state import entry_age

    keys = domain.keys(settings)
    try:
        pipe = client.pipeline(transaction=False)
        queue_heartbeat_reads(pipe, keys)
        pipe.xrange(keys.inbox, count=1)
        pipe.xlen(keys.dead_letters)
        beat_raw, workers_raw, oldest, dead = pipe.execute()
    except Exception:
        return  # Redis is down: said above
    now = time.time()
    beats = read_heartbeats(beat_raw, workers_raw, now=now, limit=stale_after(settings))
    if beats.worker.stale:
        said = "never heard of" if beats.worker.age is None else f"last task {beats.worker.age:.0f} s ago"
        yield fail("worker", said, "start a worker (heroku ps:scale worker=1; locally: otpflow run)")
    else:
        yield ok("worker", f"last task {beats.worker.age:.0f} s ago ({len(beats.workers)} node(s))")
    if beats.beat.stale:
        said = "no sweep yet" if beats.beat.age is None else f"last sweep {beats.beat.age:.0f} s ago"
        yield fail("beat", said, "run exactly one beat (heroku ps:scale beat=1), and a worker to run its sweeps")
    else:
        yield ok("beat", f"last sweep {beats.beat.age:.0f} s ago")
    age = entry_age(oldest, now)
    if age > 60:
        yield warn("inbox", f"the oldest stored webhook has waited {age:.0f} s for a drain",
                   "check the worker's log; a full Redis pauses it (otpflow doctor: redis room)")
    if dead:
        yield warn("dead letters", f"{dead} webhooks could not be stored",
                   "look at them with otpflow dead-letters list; replay the ones a fix now accepts")


def run(*, skip_providers: bool = False, skip_public: bool = False) -> int:
    from config.redis_client import make_redis

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        for problem in exc.problems:
            print(fail("config", problem, "fix this variable (README, Configuration)").line())
        return ExitCode.FAILED
    findings: list[Finding] = []

    def say(found: Iterator[Finding]) -> None:
        for finding in found:
            findings.append(finding)
            print(finding.line(), flush=True)

    say(configuration(settings))
    client = make_redis(settings, socket_timeout=3.0, connect_timeout=2.0, retries=0)
    say(redis_checks(settings, client))
    say(broker_checks(settings))
    if not skip_providers:
        say(providers(settings))
    if not skip_public:
        say(public_url(settings))
    say(heartbeats(settings, client))
    failed = [f for f in findings if f.level is Level.FAIL]
    print(f"{len(failed)} problem(s), {sum(f.level is Level.WARN for f in findings)} warning(s)" if failed else
          "no problem found" + (f" ({sum(f.level is Level.WARN for f in findings)} warning(s))"
                                if any(f.level is Level.WARN for f in findings) else ""))
    return ExitCode.FAILED if failed else ExitCode.OK


__all__ = ["Finding", "Level", "run"]
