"""Benchmark: what one log line costs through otpflow's handler (redaction, bound ids), against plain logging.

A transition line as the worker writes it (``lifecycle/cas.py``: the order, its states and the activation in
``extra``, a request id, a task id and a task name bound), written ``--lines`` times to /dev/null through the
handler ``config.logging_setup.configure_logging`` installs, in the text and the JSON format. The baseline, in
the same run: the same call through a bare ``logging.StreamHandler`` with the standard formatter (no redaction, no
ids). Reported: microseconds per line (the best of ``--rounds``: another process's load only ever adds time) and
the ratio to the baseline.

    .venv/bin/python bench/log_lines.py [--lines 20000] [--rounds 3]
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import IO, Callable, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import run_script  # noqa: E402
from config import log_context  # noqa: E402
from config.logging_setup import JsonFormatter, RedactingFilter, TextFormatter, register_secrets  # noqa: E402

ORDER_ID = "c975e7eb0a13496787d5d2ac49dcdddd"
EXTRA = {"order_id": ORDER_ID, "provider": "sms-activate", "activation_id": "3936044586",
         "from_state": "buying|pending", "to_state": "waiting", "status": "ok", "state": "waiting"}
BOUND = {log_context.LogId.REQUEST_ID: "be446c0a416fa70f69c1d6352adbb488",
         log_context.LogId.TASK_ID: "084315c4-492c-494f-8a8a-495d991bd1f6",
         log_context.LogId.TASK_NAME: "otpflow.place_order"}


def logger_with(handler: logging.Handler, name: str) -> logging.Logger:
    log = logging.getLogger(f"bench.log_lines.{name}")
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.INFO)
    return log


def per_line(log: logging.Logger, lines: int, rounds: int) -> float:
    """Best-of-rounds microseconds per transition line."""
    def write() -> None:
        log.info("order %s: %s -> %s %s", ORDER_ID, "buying|pending", "waiting", "ok", extra=EXTRA)

    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _i in range(lines):
            write()
        best = min(best, (time.perf_counter() - start) / lines * 1e6)
    return best


def handler(stream: IO[str], formatter: logging.Formatter, redacting: bool) -> logging.Handler:
    h = logging.StreamHandler(stream)
    h.setFormatter(formatter)
    if redacting:
        h.addFilter(RedactingFilter())
    return h


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=20000, help="lines per round and handler (default 20000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per handler; the best is reported (3)")
    args = parser.parse_args(argv)
    if args.lines < 1 or args.rounds < 1:
        parser.error("--lines and --rounds must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # secrets registered as the web and the worker register theirs: every line is checked for each
    register_secrets("bench_" + "k3Jd93nD0aQ1xP7zR2vL", "bench_api_" + "x" * 16, "bench-key-0123456789")
    with open(os.devnull, "w") as sink:
        handlers: dict[str, Callable[[], logging.Handler]] = {
            "baseline (plain logging)": lambda: handler(sink, logging.Formatter(
                "%(asctime)s %(levelname)s %(name)s: %(message)s"), redacting=False),
            "otpflow text": lambda: handler(sink, TextFormatter(), redacting=True),
            "otpflow json": lambda: handler(sink, JsonFormatter(), redacting=True),
        }
        results: dict[str, float] = {}
        token = log_context.push(BOUND)
        try:
            for i, (name, make) in enumerate(handlers.items()):
                results[name] = per_line(logger_with(make(), str(i)), args.lines, args.rounds)
        finally:
            log_context.pop(token)
    base = results["baseline (plain logging)"]
    print(f"{args.lines} transition lines x {args.rounds} rounds to /dev/null (best round):")
    for name, us in results.items():
        print(f"  {name:26s}: {us:6.1f} µs per line ({us / base:.2f}x the baseline)")
    return 0


if __name__ == "__main__":
    run_script(main)
