"""A tiny timer thread: run callables at a real-time moment, on a small worker pool.

Webhook attempts and auto-SMS deliveries are scheduled here so that nothing slow ever runs inside a request
handler, and a slow receiver (3 s timeout) cannot hold up other deliveries.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

log = logging.getLogger(__name__)


class Scheduler:
    """Heap of (due monotonic time, seq, fn); one dispatcher thread, `workers` executor threads."""

    def __init__(self, workers: int = 8, name: str = "sandbox-scheduler") -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._workers = workers
        self._name = name
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._stopped = False

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        """Run `fn` after `delay` real seconds (starts the threads on first use)."""
        with self._cond:
            if self._stopped:
                return
            self._ensure_started()
            heapq.heappush(self._heap, (time.monotonic() + max(0.0, delay), next(self._seq), fn))
            self._cond.notify()

    def clear(self) -> None:
        """Forget everything not yet started (reset)."""
        with self._cond:
            self._heap.clear()

    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify_all()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def _ensure_started(self) -> None:
        if self._thread is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix=self._name)
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = None if not self._heap else self._heap[0][0] - time.monotonic()
                    self._cond.wait(timeout)
                if self._stopped:
                    return
                _, _, fn = heapq.heappop(self._heap)
            assert self._pool is not None
            try:
                self._pool.submit(self._safe, fn)
            except RuntimeError:  # pool shut down
                return

    @staticmethod
    def _safe(fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:  # a background job must never kill the thread
            log.exception("sandbox background job failed")
