"""Log lines as a deployment writes them (the redacting filter, then the JSON formatter), captured for assertions."""
from __future__ import annotations

import contextlib
import io
import json
import logging
from typing import Any, Iterator

from config.logging_setup import JsonFormatter, RedactingFilter


class Captured:
    """What one handler, set up as ``configure_logging`` sets up its own, wrote."""

    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines()]

    def by_logger(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line["logger"] == name]


@contextlib.contextmanager
def json_lines(level: int = logging.INFO) -> Iterator[Captured]:
    """Every logger's lines at ``level`` and up, as LOG_FORMAT=json writes them, while the block runs."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    before = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield Captured(stream)
    finally:
        root.removeHandler(handler)
        root.setLevel(before)


def json_objects(text: str) -> list[dict[str, Any]]:
    """The JSON objects among a process's output lines (LOG_FORMAT=json), skipping anything else it printed
    (banners, gunicorn's access lines)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                out.append(value)
    return out
