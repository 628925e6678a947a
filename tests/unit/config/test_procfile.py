"""The Procfile as otpflow reads it: the one source of the web, worker, beat and release command lines."""
from __future__ import annotations

import os
import re
import sys
import sysconfig
from pathlib import Path

import pytest

from config.settings import Settings, declarations
from otpflow import procfile


def test_long_running_roles_leave_release_out() -> None:
    assert procfile.long_running() == ["web", "worker", "beat"]
    assert "release" in procfile.load()


def test_executables_come_from_this_interpreters_environment() -> None:
    for role, module in (("web", "gunicorn"), ("worker", "celery"), ("beat", "celery")):
        assert procfile.command(role, {}).argv[:3] == (sys.executable, "-m", module)
    release = procfile.command("release", {}).argv[0]  # a console script: otpflow has no __main__
    assert os.path.dirname(release) in {os.path.dirname(sys.executable), sysconfig.get_path("scripts")}


def test_worker_keeps_its_shutdown_and_chatter_options() -> None:
    worker = procfile.command("worker", {"PATH": "/bin"})
    assert worker.env == {"PATH": "/bin", "REMAP_SIGTERM": "SIGQUIT"}
    for option in ("--without-mingle", "--without-gossip", "--without-heartbeat"):
        assert option in worker.argv
    # the pool size is a setting carried by the Celery configuration, not by the shell
    from worker.celery_app import celery_config

    assert "--concurrency" not in worker.argv
    assert celery_config(Settings(worker_concurrency=5))["worker_concurrency"] == 5
    named = procfile.command("worker", {}, "--hostname", "w2@%h")
    assert named.argv[-2:] == ("--hostname", "w2@%h")


def test_release_checks_every_role() -> None:
    assert procfile.command("release", {}).argv[1:] == ("config", "--check", "all")


def test_shell_defaults_in_the_procfile_are_the_declared_defaults() -> None:
    """``${NAME:-x}`` only restates a declared setting's default for the platform's shell; it must not drift."""
    declared = {d.env: d for d in declarations()}
    text = procfile.PROCFILE.read_text()
    references = re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?", text)
    for name, default in references:
        assert name in declared, f"the Procfile reads {name}, which config.settings does not declare"
        if default:
            assert declared[name].default_text == f"`{default}`", name


def test_expansion_follows_the_shell() -> None:
    env = {"A": "1", "EMPTY": ""}
    assert procfile.expand("$A-${A}-${B:-2}-${EMPTY:-3}-$B.", env) == "1-1-2-3-."


@pytest.mark.parametrize("line", ["web: gunicorn app | tee log", "web: cd x && gunicorn", "web: gunicorn $(pwd)",
                                  "web: gunicorn *.py"])
def test_lines_that_need_a_shell_are_refused(tmp_path: Path, line: str) -> None:
    path = tmp_path / "Procfile"
    path.write_text(line + "\n")
    with pytest.raises(procfile.ProcfileError, match="needs a shell"):
        procfile.command("web", {}, path=path)


def test_a_missing_role_is_named(tmp_path: Path) -> None:
    path = tmp_path / "Procfile"
    path.write_text("web: gunicorn app\n")
    with pytest.raises(procfile.ProcfileError, match="no 'beat' process"):
        procfile.command("beat", {}, path=path)
