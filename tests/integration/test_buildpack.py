"""The app built as Heroku's Python buildpack builds it, and run as the platform runs it.

The build: a copy of the working tree (the slug's source), a fresh virtualenv, and only ``pip install -r
requirements.txt`` in it, which is all the buildpack runs: no dev extras, no local Redis. The run: the Procfile's
``release`` process, then ``web``, ``worker`` and ``beat`` under that venv's honcho, with ``$PORT`` and a
``rediss://`` REDIS_URL served with a self-signed certificate (as Heroku Redis serves it), and the environment
app.json gives a new app (its generated secrets, its values; a placeholder where a person types one). The
interpreter running the tests stands in for the platform's Python (``.python-version``).

Needs the package index (PyPI; pip's cache makes repeats quick), ``openssl`` and a redis-server or valkey-server
built with TLS; each test is skipped with the reason when one is missing.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import psutil
import pytest
import redis
import requests
from packaging.markers import Marker
from packaging.utils import canonicalize_name

from otpflow import procfile
from otpflow.embedded_redis import EmbeddedRedisError, free_port, redis_server_binary
from tests.support.processes import answers_200
from tests.support.waiting import wait_until
from tests.unit.test_lock import read_lock

ROOT = Path(__file__).resolve().parents[2]
#: what a person types into the fields app.json leaves empty, for the ones a new app cannot start without
PLACEHOLDERS = {"PROVIDER_API_KEY": "sandbox-test-key"}
#: what the build leaves out of the slug's source: version control, local venvs, caches and build output
NOT_IN_SLUG = (".git", ".venv*", "__pycache__", "*.egg-info", "build", "dist", ".pytest_cache", ".hypothesis",
               ".mypy_cache", ".otpflow", "*.rdb")
#: what a Redis or Valkey built without TLS says about --tls-port (lower case)
NO_TLS_SIGNS = ("bad directive", "not compiled", "unknown option", "tls support")


@dataclass(frozen=True)
class Build:
    """The slug: the app's source and the virtualenv the buildpack made for it."""

    app: Path
    venv: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def platform_env(self, **config: str) -> dict[str, str]:
        """A dyno's environment: no variable of ours or of the test run, the venv first on PATH, then ``config``."""
        return {"PATH": f"{self.bin}{os.pathsep}/usr/local/bin{os.pathsep}/usr/bin{os.pathsep}/bin",
                "HOME": str(self.app), "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", **config}


def index_unreachable() -> str | None:
    """Why pip cannot reach its package index now (None when it can)."""
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
    try:
        response = requests.head(f"{index}/pip/", timeout=10, allow_redirects=True)
    except requests.RequestException as exc:
        return f"{index} cannot be reached ({type(exc).__name__})"
    return None if response.status_code < 400 else f"{index} answers HTTP {response.status_code}"


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    reason = index_unreachable()
    if reason:
        pytest.skip(f"the build installs requirements.txt from the package index: {reason}")
    base = tmp_path_factory.mktemp("buildpack")
    app, venv = base / "app", base / "venv"
    shutil.copytree(ROOT, app, ignore=shutil.ignore_patterns(*NOT_IN_SLUG), symlinks=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
                           "-r", "requirements.txt"], cwd=app, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"pip install -r requirements.txt failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    return Build(app, venv)


def app_json_env() -> dict[str, str]:
    """The config vars app.json gives a new app: a generated secret (64 hex digits, like the platform's), the
    declared value, or what a person would type for a required one."""
    manifest = json.loads((ROOT / "app.json").read_text())
    env: dict[str, str] = {}
    for name, spec in manifest["env"].items():
        if spec.get("generator") == "secret":
            env[name] = secrets.token_hex(32)
        elif "value" in spec:
            env[name] = str(spec["value"])
        elif spec.get("required", True):
            assert name in PLACEHOLDERS, f"app.json requires {name}: add what a person would type to PLACEHOLDERS"
            env[name] = PLACEHOLDERS[name]
    return env


def test_app_json_describes_the_procfile_and_the_settings() -> None:
    from config.settings import ROLES, Settings, declarations

    manifest = json.loads((ROOT / "app.json").read_text())
    assert set(manifest["formation"]) == set(procfile.long_running()), "app.json's formation: one per Procfile role"
    assert any(addon["plan"].startswith("heroku-redis") for addon in manifest["addons"])
    declared = {d.setting.env for d in declarations()}
    assert set(manifest["env"]) <= declared, f"app.json sets unknown variables: {set(manifest['env']) - declared}"
    assert all(spec.get("description") for spec in manifest["env"].values())
    for secret in ("WEBHOOK_TOKEN", "API_TOKEN"):
        assert manifest["env"][secret].get("generator") == "secret"
    settings = Settings.from_env(app_json_env())
    for role in ROLES:
        settings.require(role)


@pytest.mark.processes
@pytest.mark.timeout(900)
def test_the_lock_alone_installs_the_app_and_nothing_local(build: Build) -> None:
    python = str(build.bin / "python")
    check = subprocess.run([python, "-m", "pip", "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    listed = subprocess.run([python, "-m", "pip", "list", "--format", "json", "--disable-pip-version-check"],
                            capture_output=True, text=True, check=True)
    installed = {canonicalize_name(item["name"]) for item in json.loads(listed.stdout)}
    lock = read_lock(build.app / "requirements.txt")
    wanted = {name for name, pins in lock.pins.items()
              if any(pin.marker is None or Marker(pin.marker).evaluate() for pin in pins)}
    assert installed - {"pip", "setuptools", "wheel"} == wanted | {"otpflow"}
    assert (build.bin / "otpflow").exists()


@pytest.mark.processes
@pytest.mark.timeout(900)
def test_release_phase_passes_with_app_json_config_and_names_what_is_missing(build: Build) -> None:
    release = procfile.load(build.app / "Procfile").get("release")
    if release is None:
        pytest.skip("the Procfile has no release process")
    config = app_json_env() | {"REDIS_URL": "rediss://127.0.0.1:1/0", "PORT": "5000"}
    ran = subprocess.run(["bash", "-c", release], cwd=build.app, env=build.platform_env(**config),
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert config["WEBHOOK_TOKEN"] not in ran.stdout + ran.stderr
    incomplete = {k: v for k, v in config.items() if k != "PROVIDER_API_KEY"}
    ran = subprocess.run(["bash", "-c", release], cwd=build.app, env=build.platform_env(**incomplete),
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode != 0 and "PROVIDER_API_KEY" in ran.stdout + ran.stderr, ran.stdout + ran.stderr


def tls_server_candidates() -> list[str]:
    """redis-server and valkey-server on PATH, then the suite's own server binary."""
    try:
        suite: str | None = redis_server_binary()
    except EmbeddedRedisError:
        suite = None
    found = [shutil.which("redis-server"), shutil.which("valkey-server"), suite]
    return list(dict.fromkeys(path for path in found if path))


@pytest.fixture(scope="module")
def tls_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis serving only TLS with a self-signed certificate on a free port, like Heroku Redis."""
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl (for a self-signed certificate)")
    workdir = tmp_path_factory.mktemp("tls-redis")
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=otpflow-self-signed"], check=True, capture_output=True)
    refused: list[str] = []
    for binary in tls_server_candidates():
        port = free_port()
        url = f"rediss://127.0.0.1:{port}/0"
        proc = subprocess.Popen([binary, "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert),
                                 "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert), "--tls-auth-clients",
                                 "no", "--save", "", "--appendonly", "no", "--dir", str(workdir), "--loglevel",
                                 "warning"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

        def answers(url: str = url) -> bool:
            try:
                return bool(redis.Redis.from_url(url, ssl_cert_reqs=None, socket_timeout=1).ping())
            except redis.RedisError:
                return False

        wait_until(lambda proc=proc, answers=answers: proc.poll() is not None or answers(), timeout=15,
                   message=f"{binary} neither served TLS nor exited")
        if proc.poll() is None:
            try:
                yield url
            finally:
                proc.terminate()
                proc.wait(timeout=10)
            return
        output = (proc.stdout.read() if proc.stdout else "").strip()
        assert any(sign in output.lower() for sign in NO_TLS_SIGNS), f"{binary} exited: {output[-500:]}"
        refused.append(f"{binary}: {output.splitlines()[-1] if output else 'exited'}")
    pytest.skip(f"needs a redis-server or valkey-server built with TLS (tried: {'; '.join(refused) or 'none found'})")


def processes_of(run_id: str) -> list[psutil.Process]:
    """Every live process whose environment carries ``run_id`` (honcho and all it started, however deep)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("OTPFLOW_BUILDPACK_RUN") == run_id and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.mark.processes
@pytest.mark.redis
@pytest.mark.timeout(900)
def test_web_worker_and_beat_run_from_the_lock_install_over_rediss(build: Build, tls_redis_url: str,
                                                                     tmp_path: Path) -> None:
    from sandbox import SandboxConfig, create_app
    from sandbox.server import serve_in_thread

    roles = ["web", "worker", "beat"]
    declared = [role for role in procfile.load(build.app / "Procfile") if role in roles]
    base_port = free_port()
    web_port = base_port + 100 * declared.index("web")  # honcho gives each process type the next hundred
    config = app_json_env() | {"REDIS_URL": tls_redis_url, "PORT": str(base_port), "WEB_CONCURRENCY": "1",
                               "WORKER_CONCURRENCY": "1", "SWEEP_INTERVAL": "0.5"}
    sandbox = serve_in_thread(create_app(SandboxConfig(api_key=config["PROVIDER_API_KEY"])))
    config["PROVIDER_URL"] = f"{sandbox.url}/stubs/handler_api.php"
    run_id = uuid.uuid4().hex
    log_path = tmp_path / "honcho.log"
    with open(log_path, "wb") as log:
        honcho = subprocess.Popen([str(build.bin / "honcho"), "start", "-f", "Procfile", *roles], cwd=build.app,
                                  env=build.platform_env(**config, OTPFLOW_BUILDPACK_RUN=run_id),
                                  stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  start_new_session=True)

    def output() -> str:
        return log_path.read_text(errors="replace")

    def running() -> None:
        if honcho.poll() is not None:
            raise AssertionError(f"honcho exited ({honcho.returncode}):\n{output()[-6000:]}")

    store = redis.Redis.from_url(tls_redis_url, ssl_cert_reqs=None, decode_responses=True)
    try:
        wait_until(lambda: answers_200(f"http://127.0.0.1:{web_port}/readyz"), timeout=90, check=running,
                   message=lambda: f"/readyz on {web_port} did not answer 200\n{output()[-6000:]}")
        wait_until(lambda: re.search(r"^\S+ worker\.1\s+\|.* ready\.$", output(), re.MULTILINE), timeout=90,
                   check=running, message=lambda: f"the worker did not log ready.\n{output()[-6000:]}")
        wait_until(lambda: int(store.get("otpflow:sweep:runs") or 0) >= 1, timeout=60, check=running,
                   message=lambda: f"no sweep ran (beat schedules it, the worker runs it)\n{output()[-6000:]}")
        response = requests.post(f"http://127.0.0.1:{web_port}/api/orders", json={"service": "tg", "country": 0},
                                 headers={"Authorization": f"Bearer {config['API_TOKEN']}"}, timeout=10)
        assert response.status_code == 202, response.text
        order_id = response.json()["order_id"]
        wait_until(lambda: any(fields["type"] == "number.assigned" and json.loads(fields["data"])["order_id"]
                               == order_id for _id, fields in store.xrange("otpflow:events")),
                   timeout=60, check=running, message=lambda: f"no number.assigned\n{output()[-6000:]}")
        assert processes_of(run_id), "the processes carry the run's mark"
        honcho.send_signal(signal.SIGTERM)  # the platform's stop; honcho passes it to every process
        honcho.wait(timeout=60)
        wait_until(lambda: not processes_of(run_id), timeout=30,
                   message=lambda: f"left running: {[(p.pid, p.cmdline()) for p in processes_of(run_id)]}")
        assert not answers_200(f"http://127.0.0.1:{web_port}/readyz")
    finally:
        if honcho.poll() is None:
            os.killpg(honcho.pid, signal.SIGKILL)
            honcho.wait(timeout=10)
        for leftover in processes_of(run_id):
            leftover.kill()
        store.close()
        sandbox.stop()
