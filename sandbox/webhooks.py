"""Webhook sender: real HTTP POSTs of JSON from background threads, with the provider's retry policy.

Each SMS makes one delivery (or N with `duplicate_webhooks`); a delivery is attempted until a receiver answers
200, at most `attempts` times, waiting `backoff[i]` seconds between attempts. `drop_webhooks` records a
delivery without sending it, so clients must reconcile by polling. Every delivery is kept in a log that
`/control/state` shows.
"""
from __future__ import annotations

import functools
import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import requests

from .scheduler import Scheduler


@dataclass
class Attempt:
    at: float
    status_code: int | None
    error: str | None
    elapsed: float


@dataclass
class Delivery:
    """One webhook delivery and its attempts."""

    id: str
    url: str
    kind: str                 # activation | rent
    ref: str                  # activation or rent id
    payload: dict[str, Any]
    status: str = "pending"   # pending | delivered | failed | dropped
    attempts: list[Attempt] = field(default_factory=list)
    generation: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "url": self.url, "kind": self.kind, "ref": self.ref, "payload": self.payload,
                "status": self.status,
                "attempts": [a.__dict__ for a in self.attempts]}


class WebhookSender:
    """Queues deliveries onto a Scheduler; policy is read at each attempt so settings changes apply at once."""

    def __init__(self, scheduler: Scheduler, policy: Callable[[], tuple[list[float], int, float]],
                 log_size: int = 5000) -> None:
        self._scheduler = scheduler
        self._policy = policy                 # () -> (backoff, max attempts, timeout)
        self._lock = threading.Lock()
        self._log: deque[Delivery] = deque(maxlen=log_size)
        self._ids = itertools.count(1)
        self._generation = 0
        self._local = threading.local()

    def submit(self, url: str, payload: dict[str, Any], kind: str, ref: str, copies: int = 1,
               drop: bool = False) -> list[str]:
        """Record `copies` deliveries of `payload` to `url`; send them unless `drop`. Returns their ids."""
        ids = []
        with self._lock:
            for _ in range(max(1, copies)):
                d = Delivery(f"wh-{next(self._ids)}", url, kind, ref, payload,
                             status="dropped" if drop else "pending", generation=self._generation)
                self._log.append(d)
                ids.append(d.id)
                if not drop:
                    self._scheduler.call_later(0.0, functools.partial(self._attempt, d))
        return ids

    def deliveries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [d.to_json() for d in self._log]

    def reset(self) -> None:
        with self._lock:
            self._generation += 1
            self._log.clear()

    def _session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = requests.Session()
            s.trust_env = False  # never route loopback webhooks through a proxy from the environment
            self._local.session = s
        return s

    def _attempt(self, d: Delivery) -> None:
        if d.generation != self._generation:
            return
        backoff, max_attempts, timeout = self._policy()
        body = json.dumps(d.payload, separators=(",", ":"), ensure_ascii=False).encode()
        started = time.time()
        code: int | None = None
        error: str | None = None
        try:
            r = self._session().post(d.url, data=body, timeout=(timeout, timeout),
                                     headers={"Content-Type": "application/json",
                                              "User-Agent": "otpflow-sandbox-webhook/1"})
            code = r.status_code
            r.close()
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        with self._lock:
            d.attempts.append(Attempt(started, code, error, round(time.time() - started, 4)))
            n = len(d.attempts)
            if code == 200:
                d.status = "delivered"
                return
            if n >= max_attempts:
                d.status = "failed"
                return
        delay = backoff[min(n - 1, len(backoff) - 1)] if backoff else 0.0
        self._scheduler.call_later(delay, lambda: self._attempt(d))
