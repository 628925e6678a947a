"""Every user error of ``otpflow`` is one line naming what to fix, with the exit code the README promises."""
from __future__ import annotations

import socket
import subprocess
import sys
from dataclasses import dataclass
from typing import Iterator

import pytest

from otpflow.cli import main
from otpflow.commands import ExitCode
from tests.support.processes import ROOT

API_TOKEN = "cli-api-token-0123456789"


@dataclass
class Ran:
    code: int
    out: str
    err: str


class Cli:
    """``otpflow`` run in-process with an environment of its own."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
        self.monkeypatch, self.capsys = monkeypatch, capsys

    def env(self, **values: str) -> None:
        for name, value in values.items():
            self.monkeypatch.setenv(name, value)

    def __call__(self, *args: str) -> Ran:
        self.capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse, and settings that stop a command before it starts
            code = int(exc.code or 0)
        captured = self.capsys.readouterr()
        return Ran(code, captured.out, captured.err)


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], closed_port: int) -> Iterator[Cli]:
    import os

    for name in list(os.environ):
        if name.startswith(("PROVIDER", "REDIS_", "WEBHOOK_", "API_TOKEN", "EVENTS_", "KEY_PREFIX", "LOG_")):
            monkeypatch.delenv(name)
    runner = Cli(monkeypatch, capsys)
    runner.env(REDIS_URL=f"redis://127.0.0.1:{closed_port}/0", PROVIDER_API_KEY="k-0123456789", API_TOKEN=API_TOKEN)
    yield runner


def one_line(ran: Ran) -> str:
    lines = [line for line in ran.err.splitlines() if line.strip()]
    assert len(lines) == 1, ran.err
    assert "Traceback" not in ran.err
    return lines[0]


@pytest.mark.parametrize("args", [("status", "x"), ("orders",), ("events",), ("dead-letters", "list"),
                                  ("command", "x", "finish"), ("rent", "full"), ("events", "--group", "g")])
def test_an_unreachable_redis_is_one_line_and_exit_3(cli: Cli, closed_port: int, args: tuple[str, ...]) -> None:
    ran = cli(*args)
    assert ran.code == ExitCode.REDIS == 3
    line = one_line(ran)
    assert f"127.0.0.1:{closed_port}" in line and "REDIS_URL" in line and line.startswith(f"otpflow {args[0]}:")


def test_order_against_an_unreachable_redis_names_its_order_id(cli: Cli) -> None:
    ran = cli("order", "tg", "--order-id", "mine-1")
    assert ran.code == ExitCode.REDIS and "mine-1" in one_line(ran)


@pytest.mark.parametrize(("args", "names"), [
    (("order", "tg", "--max-price", "abc"), "--max-price"),
    (("order", "tg", "--max-price", "1e999999"), "--max-price"),
    (("order", "tg", "--country", "abc"), "--country"),
    (("orders", "--state", "lost"), "--state"),
    (("orders", "--limit", "0"), "--limit"),
    (("prices", "tg", "--country", "-3"), "--country"),
    (("dead-letters", "purge"), "--yes"),
    (("dead-letters", "replay"), "--all"),
    (("dead-letters", "show", "not-an-id", "other"), "one dead-letter id"),
])
def test_a_bad_option_is_one_line_and_exit_2(cli: Cli, args: tuple[str, ...], names: str) -> None:
    ran = cli(*args)
    assert ran.code == ExitCode.USAGE == 2
    assert names in one_line(ran)


def test_a_bad_setting_is_one_line_naming_it(cli: Cli) -> None:
    cli.env(LOG_LEVEL="loud")
    ran = cli("status", "x")
    assert ran.code == ExitCode.USAGE and "LOG_LEVEL" in ran.err and "Traceback" not in ran.err


def test_a_role_level_setting_error_names_the_variable(cli: Cli) -> None:
    cli.env(PROVIDERS="hero", PROVIDER_HERO_DIALECT="herosms")
    ran = cli("balance")
    assert ran.code == ExitCode.USAGE and "PROVIDER_HERO_API_KEY" in ran.err and "Traceback" not in ran.err


def test_argparse_errors_exit_2(cli: Cli) -> None:
    assert cli("command", "x", "explode").code == 2
    assert cli("no-such-command").code == 2


def test_exit_codes_are_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## The `otpflow` command", 1)[1].split("\n## ", 1)[0]
    for code in ExitCode:
        assert f"| `{code.value}` |" in section, f"exit code {code.value} ({code.name}) is not in the README table"


def test_a_bug_of_ours_still_shows_its_traceback() -> None:
    """Only user errors are turned into one line: anything else must stay visible to be fixed."""
    from otpflow.commands import explain

    assert explain(ZeroDivisionError()) is None


def test_the_installed_command_exits_3_without_a_traceback(closed_port: int) -> None:
    """The same through a real process, as a script would run it."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROVIDER", "REDIS_"))}
    env["REDIS_URL"] = f"redis://127.0.0.1:{closed_port}/0"
    done = subprocess.run([sys.executable, "-m", "otpflow.cli", "status", "x"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 3 and "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_every_subcommand_is_in_the_readme_table() -> None:
    from otpflow.cli import build_parser

    readme = (ROOT / "README.md").read_text()
    section = readme.split("## The `otpflow` command", 1)[1].split("\n## ", 1)[0]
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "cmd")
    hidden = {"demo"}  # the local run's own helper
    for name in sub.choices:  # type: ignore[union-attr]
        if name not in hidden:
            assert f"`otpflow {name}" in section, f"otpflow {name} is not in the README's command table"
