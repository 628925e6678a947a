"""The Procfile is where process command lines are written; this module reads them for everything else.

``otpflow run`` and the integration tests start web, worker and beat from here, so what runs locally and in tests
is what the platform runs. The platform hands each line to a shell; this module understands the part of shell
syntax the Procfile uses (leading ``NAME=value`` assignments, ``$NAME``, ``${NAME}``, ``${NAME:-default}``) and
refuses anything else, so a Procfile that only a shell could run fails here rather than differing silently.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from honcho.environ import parse_procfile

PROCFILE = Path(__file__).resolve().parents[1] / "Procfile"

#: process types the platform runs once per deploy, not as long-running processes
ONE_OFF = frozenset({"release"})

_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", re.DOTALL)
_VARIABLE = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}"
                       r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")
_SHELL_ONLY = re.compile(r"[|&;<>()`*?\[\]~]|\$(?![A-Za-z_{])")


class ProcfileError(Exception):
    """The Procfile lacks a process type, or a line needs a shell to run."""


@dataclass(frozen=True)
class Command:
    """One process as the Procfile starts it: argv with variables expanded, and its whole environment."""

    role: str
    argv: tuple[str, ...]
    env: dict[str, str]

    def shell(self) -> str:
        """The argv quoted for a shell (honcho runs each command through one)."""
        return shlex.join(self.argv)


def load(path: Path = PROCFILE) -> dict[str, str]:
    """Process type -> command line, in the Procfile's order."""
    return dict(parse_procfile(path.read_text()).processes)


def long_running(path: Path = PROCFILE) -> list[str]:
    """The process types that run continuously (every one but ``release``)."""
    return [role for role in load(path) if role not in ONE_OFF]


def command(role: str, env: Mapping[str, str], *extra: str, path: Path = PROCFILE) -> Command:
    """``role``'s command with ``env``'s values, its executable from this interpreter's environment.

    ``extra`` arguments are appended; an option given again there overrides the Procfile's (celery's and
    gunicorn's parsers keep an option's last value).
    """
    lines = load(path)
    if role not in lines:
        raise ProcfileError(f"{path.name} has no {role!r} process (it has: {', '.join(lines)})")
    line = lines[role]
    words = shlex.split(line)
    for word in words:
        if _SHELL_ONLY.search(_VARIABLE.sub("", word)):
            raise ProcfileError(f"{path.name} {role}: {word!r} needs a shell; keep to NAME=value, words and $VARS")
    process_env = dict(env)
    while words and _ASSIGNMENT.fullmatch(words[0]):
        name, value = _ASSIGNMENT.fullmatch(words.pop(0)).groups()  # type: ignore[union-attr]
        process_env[name] = expand(value, process_env)
    if not words:
        raise ProcfileError(f"{path.name} {role}: no command")
    argv = [expand(word, process_env) for word in words]
    return Command(role, (*resolve_executable(argv[0]), *argv[1:], *extra), process_env)


def expand(word: str, env: Mapping[str, str]) -> str:
    """Substitute ``$NAME``, ``${NAME}`` and ``${NAME:-default}`` (default when unset or empty) as a shell would."""
    def value(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("bare")
        found = env.get(name, "")
        default = match.group("default")
        return found if found or default is None else default

    return _VARIABLE.sub(value, word)


def resolve_executable(name: str) -> list[str]:
    """How this interpreter runs ``name``: ``python -m name`` when it is a runnable package (celery, gunicorn).

    ``-m`` puts the working directory first on ``sys.path``, as the platform's ``python``-launched processes see
    the app; otherwise the console script of this interpreter's environment (its venv), else ``PATH``'s.
    """
    if os.sep in name:
        return [name]
    spec = importlib.util.find_spec(name) if name.isidentifier() else None
    for location in (spec.submodule_search_locations or []) if spec else []:
        if os.path.isfile(os.path.join(location, "__main__.py")):
            return [sys.executable, "-m", name]
    for directory in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return [candidate]
    return [shutil.which(name) or name]
