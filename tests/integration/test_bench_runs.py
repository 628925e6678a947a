"""Every benchmark script in ``bench/`` runs to its end, with tiny counts, as a user would start it.

A benchmark that dies half-way on a busy machine (a blocking read past the client's socket time-out, a server
that did not start, a baseline round that raises) gives no figure at all; these runs catch that before a user
does. They check that each script exits 0 and prints its ratio against the baseline it measured in the same
run, never what the figures are: timings are the machine's, not the code's (the README's Benchmarks table says
what full runs gave). ``bench/soak.py`` has its own test (``test_soak.py``).
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.support.waiting import wait_until

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


def test_sigterm_stops_what_a_bench_script_started(redis_url: str, tmp_path: Path) -> None:
    """``kill`` (SIGTERM, what a CI job's time-out sends) stops the gunicorn and Celery processes a benchmark
    started, as Ctrl-C does: Python's default for SIGTERM would end the script alone and leave them running."""
    env = {**os.environ, "OTPFLOW_BENCH_REDIS": redis_url}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = tmp_path / "e2e.log"
    # a set-up of 2,000 orders: long enough to be interrupted while every process it starts is up
    argv = ["--rounds", "1", "--sequential", "1000", "--concurrent", "1000", "--rate", "0", "--warmup", "2"]
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "e2e_latency.py"), *argv], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    script = psutil.Process(proc.pid)
    seen: list[psutil.Process] = []

    def started() -> list[psutil.Process]:
        seen[:] = script.children(recursive=True)
        names = []
        for child in seen:
            with contextlib.suppress(psutil.Error):  # a process may end between the listing and the look
                names.append(" ".join(child.cmdline()))
        joined = " ".join(names)
        return seen if "celery" in joined and "webhook.wsgi" in joined and "baseline_factory" in joined else []

    def running() -> None:
        if proc.poll() is not None:
            raise AssertionError(f"bench/e2e_latency.py exited {proc.returncode}:\n{log.read_text()[-4000:]}")

    try:
        tree = wait_until(started, timeout=120, check=running, message="the script's servers and worker never ran")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 130, log.read_text()[-4000:]
        _gone, alive = psutil.wait_procs(tree, timeout=60)
        assert not alive, f"left running after SIGTERM: {alive}"
        assert "interrupted" in log.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for child in seen:
            with contextlib.suppress(psutil.Error):
                child.kill()
