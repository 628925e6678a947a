"""The relay flow: forward the events stream to DOWNSTREAM_TASK, at least once (acked after publishing)."""
from __future__ import annotations

from lifecycle.outbox.events import Event

from .names import TaskName
from .runtime import Runtime


def relay_events(rt: Runtime, *, max_batches: int = 20) -> int:
    """Publish new events as DOWNSTREAM_TASK; returns how many were relayed."""
    task = rt.settings.downstream_task
    if not task:
        return 0

    def publish(event: Event) -> None:
        rt.publish(task, event.as_kwargs())

    relay = rt.relay(publish)
    total = 0
    for _ in range(max_batches):
        n = relay.run_once()
        total += n
        if n == 0:
            break
    return total


def kick_relay(rt: Runtime) -> None:
    """Publish a relay task when DOWNSTREAM_TASK is set, at most once per second (a SET NX flag)."""
    if not rt.settings.downstream_task:
        return
    if rt.redis.set(rt.keys.relay_kick, "1", nx=True, px=1000):
        rt.publish(TaskName.RELAY_EVENTS, {})
