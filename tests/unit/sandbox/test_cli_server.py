"""`python -m sandbox` as shipped: gunicorn (one gthread worker) with HTTP/1.1 keep-alive, engine threads
(webhooks, auto-SMS) in the serving process, prompt shutdown, nothing at fixed paths; `--server werkzeug` kept."""
from __future__ import annotations

import http.client
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest
import requests

from tests.support.waiting import wait_until

from .conftest import Receiver

ROOT = Path(__file__).resolve().parents[3]
KEY = "cli-server-key"

# `python -m sandbox` runs gunicorn (an arbiter and its worker) and serves on loopback
pytestmark = [pytest.mark.http, pytest.mark.processes]


class Sandbox:
    """A `python -m sandbox` subprocess and the URL from its start-up line."""

    def __init__(self, proc: subprocess.Popen[str], line: str) -> None:
        self.proc = proc
        self.line = line
        self.handler_url = next(w for w in line.split() if w.endswith("/stubs/handler_api.php"))
        self.url = self.handler_url.rsplit("/stubs/", 1)[0]
        host, port = self.url.split("//", 1)[1].rsplit(":", 1)
        self.host, self.port = host, int(port)

    def get(self, **params: str) -> str:
        return requests.get(self.handler_url, params={"api_key": KEY, **params}, timeout=5).text

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> tuple[int, float, str]:
        """Send `sig`; (exit status, seconds it took, stderr)."""
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        _, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, time.monotonic() - t0, err


def _read_line(proc: subprocess.Popen[str], timeout: float = 20) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        proc.kill()
        pytest.fail(f"sandbox printed nothing in {timeout} s: {proc.communicate()}")
    return proc.stdout.readline()


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Sandbox]]:
    """Start `python -m sandbox --port 0 --api-key KEY *args`; every started one is killed at teardown.

    XDG_RUNTIME_DIR and HOME point at tmp_path so a gunicorn control socket, if one were opened, would land
    there (and be seen by test_nothing_at_fixed_paths) instead of in the user's real directories."""
    procs: list[subprocess.Popen[str]] = []
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_PROXY": "127.0.0.1", "XDG_RUNTIME_DIR": str(tmp_path),
           "HOME": str(tmp_path)}

    def _start(*args: str, port: int = 0) -> Sandbox:
        proc = subprocess.Popen([sys.executable, "-m", "sandbox", "--port", str(port), "--api-key", KEY, *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        procs.append(proc)
        return Sandbox(proc, _read_line(proc))

    yield _start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def _two_requests_on_one_connection(sb: Sandbox) -> tuple[list[str], list[str | None], bool]:
    """(bodies, Connection headers, whether both went over the same TCP connection)."""
    conn = http.client.HTTPConnection(sb.host, sb.port, timeout=5)
    bodies, headers, ports = [], [], []
    try:
        for action in ("getBalance", "getBalance"):
            conn.request("GET", f"/stubs/handler_api.php?api_key={KEY}&action={action}")
            resp = conn.getresponse()
            bodies.append(resp.read().decode())
            headers.append(resp.getheader("Connection"))
            ports.append(conn.sock.getsockname()[1] if conn.sock is not None else None)
    finally:
        conn.close()
    return bodies, headers, ports[0] is not None and ports[0] == ports[1]


def test_serves_with_keep_alive(start: Callable[..., Sandbox]) -> None:
    sb = start()
    assert sb.line.startswith("sandbox (sms-activate) serving http://127.0.0.1:")
    bodies, headers, same = _two_requests_on_one_connection(sb)
    assert bodies == ["ACCESS_BALANCE:100.00"] * 2
    assert [h.lower() if h else h for h in headers] == ["keep-alive"] * 2
    assert same, "the second request needed a new TCP connection"


def test_werkzeug_server_still_available(start: Callable[..., Sandbox]) -> None:
    sb = start("--server", "werkzeug")
    bodies, headers, same = _two_requests_on_one_connection(sb)
    assert bodies == ["ACCESS_BALANCE:100.00"] * 2
    assert headers == ["close"] * 2 and not same   # werkzeug closes after every answer
    code, took, _ = sb.stop()
    assert code == 0 and took < 3


def test_one_state_across_connections_and_threads(start: Callable[..., Sandbox]) -> None:
    """One worker: purchases made over many concurrent connections all land in the same account."""
    from concurrent.futures import ThreadPoolExecutor

    sb = start("--balance", "1000")
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: sb.get(action="getNumber", service="tg"), range(16)))
    assert all(a.startswith("ACCESS_NUMBER:") for a in answers), answers
    state = requests.get(f"{sb.url}/control/state", timeout=5).json()
    assert len(state["activations"]) == 16


def test_auto_sms_and_webhooks_work(start: Callable[..., Sandbox], receiver: Receiver) -> None:
    """The engine's scheduler threads run in the worker that serves requests (the app is built there)."""
    sb = start("--webhook-url", receiver.url, "--auto-sms-after", "0.1")
    act_id = sb.get(action="getNumber", service="tg").split(":")[1]

    def code() -> str | None:
        status = sb.get(action="getStatus", id=act_id)
        return status if status.startswith("STATUS_OK:") else None

    status = wait_until(code, timeout=5, message="no auto-SMS code")
    assert status.startswith("STATUS_OK:") and len(status.split(":")[1]) == 6
    received = receiver.wait_for(1)
    assert len(received) == 1 and str(received[0]["body"]["activationId"]) == act_id
    assert received[0]["body"]["code"] == status.split(":")[1]

    # a control-API SMS produces a webhook too
    act2 = sb.get(action="getNumber", service="vk").split(":")[1]
    receiver.wait_for(2)   # vk's auto-SMS
    r = requests.post(f"{sb.url}/control/sms", json={"activation_id": act2, "code": "424242"}, timeout=5)
    assert r.status_code == 200, r.text
    received = receiver.wait_for(3)
    assert any(h["body"].get("code") == "424242" for h in received), received


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_promptly(start: Callable[..., Sandbox], sig: int) -> None:
    """honcho (`otpflow run`) and tests stop it with SIGTERM/SIGINT, also with a kept-alive connection open."""
    sb = start()
    conn = http.client.HTTPConnection(sb.host, sb.port, timeout=5)
    conn.request("GET", f"/stubs/handler_api.php?api_key={KEY}&action=getBalance")
    assert conn.getresponse().read() == b"ACCESS_BALANCE:100.00"   # connection left open, idle
    try:
        code, took, err = sb.stop(sig)
    finally:
        conn.close()
    assert code == 0, err
    assert took < 3, f"took {took:.1f} s to stop"
    with pytest.raises(OSError):
        socket.create_connection((sb.host, sb.port), timeout=1).close()


def test_stops_promptly_during_a_slow_request(start: Callable[..., Sandbox]) -> None:
    """A request sleeping in the `timeout` fault mode does not hold shutdown up."""
    sb = start()
    requests.post(f"{sb.url}/control/settings", json={"fail_mode": "timeout", "timeout_sleep": 30},
                  timeout=5).raise_for_status()
    conn = http.client.HTTPConnection(sb.host, sb.port, timeout=10)
    conn.request("GET", f"/stubs/handler_api.php?api_key={KEY}&action=getBalance")
    # once the sandbox has counted the request it has answered it internally and sleeps before sending the answer
    wait_until(lambda: requests.get(f"{sb.url}/control/state", timeout=5).json()["requests"] >= 1, timeout=10,
               message="the request never reached the sandbox")
    try:
        code, took, err = sb.stop()
    finally:
        conn.close()
    assert code == 0, err
    assert took < 4, f"took {took:.1f} s to stop"


def test_access_log_redacts_key(start: Callable[..., Sandbox]) -> None:
    sb = start("--access-log")
    assert sb.get(action="getBalance") == "ACCESS_BALANCE:100.00"
    code, _, err = sb.stop()
    assert code == 0
    assert "api_key=***&action=getBalance" in err and KEY not in err


def test_no_access_log_by_default(start: Callable[..., Sandbox]) -> None:
    sb = start()
    assert sb.get(action="getBalance") == "ACCESS_BALANCE:100.00"
    _, _, err = sb.stop()
    assert KEY not in err and "getBalance" not in err


def test_nothing_at_fixed_paths(start: Callable[..., Sandbox], tmp_path: Path) -> None:
    """Several sandboxes run side by side; gunicorn's control socket (a fixed per-user path) is not opened."""
    a, b = start(), start()
    assert a.port != b.port
    assert a.get(action="getBalance") == b.get(action="getBalance") == "ACCESS_BALANCE:100.00"
    assert [p.name for p in tmp_path.rglob("*")] == []
    assert a.stop()[0] == 0 and b.stop()[0] == 0


def test_busy_port_fails_at_once(start: Callable[..., Sandbox]) -> None:
    sb = start()
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "sandbox", "--port", str(sb.port)], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=20)
    assert proc.returncode == 2 and f"cannot listen on 127.0.0.1:{sb.port}" in proc.stderr
    assert time.monotonic() - t0 < 5
    assert sb.get(action="getBalance") == "ACCESS_BALANCE:100.00"   # the first one is unaffected
