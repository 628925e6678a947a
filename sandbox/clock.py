"""The sandbox's notion of "now": real time plus an offset that the control API advances.

Advancing instead of mocking lets tests cross the 2-minute and 20-minute rules in milliseconds while
background threads (auto-SMS, webhooks) keep running on real time.
"""
from __future__ import annotations

import threading
import time
from datetime import datetime, timezone


class Clock:
    """Simulated wall clock (epoch seconds, UTC)."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        """Current simulated time as epoch seconds."""
        return time.time() + self._offset

    @property
    def offset(self) -> float:
        return self._offset

    def advance(self, seconds: float) -> float:
        """Move simulated time forward (never backward: the provider's clock does not go back)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += seconds
            return self._offset

    def reset(self) -> None:
        with self._lock:
            self._offset = 0.0


def fmt_dt(ts: float) -> str:
    """`YYYY-MM-DD HH:MM:SS` in UTC, the format of most provider dates (providers do not state their zone)."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def fmt_iso(ts: float) -> str:
    """`YYYY-MM-DDTHH:MM:SS`, the rent `endDate` format."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def fmt_iso_z(ts: float) -> str:
    """`YYYY-MM-DDTHH:MM:SS.ffffffZ`, the HeroSMS webhook `receivedAt` format."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
