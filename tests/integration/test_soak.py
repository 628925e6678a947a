"""A short soak (``bench/soak.py``): the production-shaped formation (2 web, 2 workers, 2 beats, a private Redis
with its append-only file, two sandbox providers) under steady orders, rents and webhooks for about 45 s, through
every scheduled fault (a pool child and a whole worker SIGKILLed, a web process SIGTERMed as a deploy does, a Redis
restart, a provider outage, a provider answering 429), must end with every invariant holding.

The harness runs as a subprocess: it makes itself the reaper of its orphans (a SIGKILLed worker's pool), which
must not leak into the test session's process. It waits for signs (every order terminal, every activation ended
at its provider), never for a guessed time, and a busy 2-core machine only makes it take longer.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.chaos, pytest.mark.redis, pytest.mark.http, pytest.mark.processes]

ROOT = Path(__file__).resolve().parents[2]

INVARIANTS = (
    "every accepted code emitted exactly once",
    "every rent SMS emitted exactly once",
    "every order terminal, one terminal event",
    "every activation ended at the provider; ledgers equal our books",
    "no number bought twice for one order",
    "no event_id twice in the events stream",
    "no process exited on its own",   # a worker rides out the Redis restart (worker/redis_gate.py)
    "Redis memory back near its baseline once retention ran",
    "no process left behind",
)


def rows(output: str, section: str) -> list[str]:
    """The lines of one section of the report (``invariants:``, ``faults survived …``)."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(section))
    body = []
    for line in lines[start + 1:]:
        if not line.startswith("  "):
            break
        body.append(line.strip())
    return body


def run_soak(argv: list[str], timeout: float) -> tuple[int, str]:
    """Run the harness; on a time-out (ours or pytest's) SIGTERM it, so it stops its formation before exiting."""
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
        return proc.returncode, output
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.mark.timeout(900)
def test_short_soak_holds_every_invariant(tmp_path: Path) -> None:
    argv = [sys.executable, str(ROOT / "bench" / "soak.py"), "--duration", "45", "--rate", "1.5", "--clients", "3",
            "--web-concurrency", "1", "--settle", "240", "--log-dir", str(tmp_path)]
    returncode, output = run_soak(argv, timeout=780)
    assert "invariants:" in output, output[-4000:]
    invariants = rows(output, "invariants:")
    for name in INVARIANTS:
        row = next((r for r in invariants if name in r), None)
        assert row is not None, f"no row for {name!r}:\n{output[-4000:]}"
        assert row.startswith("ok"), f"{row}\n\n{output[-6000:]}"
    assert "20 idle and 20 slow connections held open against each of 2 web processes" in output  # webhooks flowed past
    faults = rows(output, "faults survived")
    assert len(faults) == 6 and all(f.startswith("ok") for f in faults), output[-4000:]
    assert returncode == 0, output[-4000:]


def test_a_bad_command_line_is_one_line() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "soak.py"), "--duration", "soon"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "--duration" in done.stderr and "Traceback" not in done.stderr
