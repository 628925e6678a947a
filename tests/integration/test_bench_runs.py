"""Every benchmark script in ``bench/`` runs to its end, with tiny counts, as a user would start it.

A benchmark that dies half-way on a busy machine (a blocking read past the client's socket time-out, a server
that did not start, a baseline round that raises) gives no figure at all; these runs catch that before a user
does. They check that each script exits 0 and prints its ratio against the baseline it measured in the same
run, never what the figures are: timings are the machine's, not the code's (the README's Benchmarks table says
what full runs gave). ``bench/soak.py`` has its own test (``test_soak.py``).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.redis, pytest.mark.http, pytest.mark.processes]

ROOT = Path(__file__).resolve().parents[2]

#: script -> (tiny arguments, a line fragment its report must contain)
RUNS: dict[str, tuple[list[str], str]] = {
    "ingress.py": (["--requests", "60", "--rounds", "1", "--warmup", "10", "--workers", "1", "--idle", "2",
                    "--slow", "2", "--max-seconds", "30"], "ratio"),
    # under valgrind when it is installed (about a minute, start-up mostly), else one line saying it is not
    "ingress_instructions.py": (["--requests", "5", "--warmup", "2"], "instruction"),
    "e2e_latency.py": (["--rounds", "1", "--sequential", "4", "--concurrent", "4", "--threads", "2", "--warmup",
                        "2", "--rate", "20", "--rate-seconds", "1", "--paced-senders", "4"], "where ours went"),
    "log_lines.py": (["--lines", "50", "--rounds", "1"], "the baseline"),
    "events_throughput.py": (["--events", "40", "--rounds", "1"], "no-op"),
    "sweep.py": (["--n", "200"], "per waiting activation"),
    "client_cpu.py": (["--calls", "20", "--rounds", "1"], "official"),
    "sandbox_rate.py": (["--seconds", "0.5", "--rounds", "1"], "hello"),
}


@pytest.mark.parametrize("script", sorted(RUNS))
def test_bench_script_runs_to_its_end(script: str, redis_url: str) -> None:
    argv, expected = RUNS[script]
    env = {**os.environ, "OTPFLOW_BENCH_REDIS": redis_url}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / script), *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"bench/{script} exited {proc.returncode}:\n{output[-4000:]}"
    assert "Traceback" not in output, output[-4000:]
    assert expected in output, f"bench/{script} printed no {expected!r}:\n{output[-4000:]}"
