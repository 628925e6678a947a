"""``otpflow run``'s own parts, in-process: the busy-port check, every role's settings checked up front, the lines
it prints for another shell, and an output that survives a terminal that went away."""
from __future__ import annotations

import io
import socket

from otpflow import procfile
from otpflow.run import QuietOutput, access_notes, busy_port_message, port_in_use, role_problems

ENV = {"REDIS_URL": "redis://127.0.0.1:6379/0", "API_TOKEN": "generated-token-0123456789",
       "WEBHOOK_TOKEN": "webhook-token-0123456789", "PROVIDER_API_KEY": "key-0123456789"}


def test_a_listening_port_is_in_use_and_a_closed_one_is_not() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert port_in_use(port)
    assert not port_in_use(port)
    assert busy_port_message(8000).startswith("port 8000 is already in use") and "--port N" in busy_port_message(8000)


def test_every_role_is_checked_before_anything_starts() -> None:
    roles = procfile.long_running()
    assert role_problems(ENV, roles) == []
    problems = role_problems(ENV | {"WORKER_SOFT_SHUTDOWN_TIMEOUT": "40", "API_TOKEN": "short"}, roles)
    assert any(p.startswith("API_TOKEN: too short") for p in problems)
    assert sum(p.startswith("WORKER_SOFT_SHUTDOWN_TIMEOUT") for p in problems) == 1  # each problem once
    assert role_problems(ENV | {"LOG_LEVEL": "loud"}, roles) == [
        "LOG_LEVEL: expected DEBUG, INFO, WARNING, ERROR or CRITICAL, got 'loud'"]


def test_the_notes_give_urls_and_the_generated_token_but_never_a_password() -> None:
    lines = access_notes(ENV, 8123, generated_token=True)
    text = "\n".join(lines)
    assert "http://127.0.0.1:8123/dashboard" in text and "http://127.0.0.1:8123/metrics" in text
    assert "API_TOKEN  generated-token-0123456789 (generated for this run)" in text
    assert "export REDIS_URL=redis://127.0.0.1:6379/0 API_TOKEN=generated-token-0123456789" in text
    theirs = "\n".join(access_notes(ENV | {"REDIS_URL": "rediss://u:secret@host:6379"}, 8123, generated_token=False))
    assert "secret" not in theirs and "generated-token" not in theirs


def test_output_to_a_vanished_terminal_is_dropped_not_raised() -> None:
    class Gone(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError(5, "Input/output error")

    out = QuietOutput(Gone())
    out.write("line\n")
    out.write("again\n")
    out.flush()
    assert out.stream is None and out.isatty() is False
    kept = io.StringIO()
    QuietOutput(kept).write("shown\n")
    assert kept.getvalue() == "shown\n"
