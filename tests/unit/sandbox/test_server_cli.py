"""serve_in_thread, `python -m sandbox`, and keeping the api key out of access logs."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from sandbox import SandboxConfig, create_app, engine_of
from sandbox.catalogue import OfferPatch
from sandbox.cli import build_parser, config_from_args
from sandbox.server import redact, serve_in_thread
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[3]


def test_redact() -> None:
    assert redact("GET /stubs/handler_api.php?api_key=s3cret&action=getBalance HTTP/1.1") == \
        "GET /stubs/handler_api.php?api_key=***&action=getBalance HTTP/1.1"


def test_cli_defaults() -> None:
    args = build_parser().parse_args([])
    assert (args.host, args.api_key, args.dialect, args.auto_sms_after) == ("127.0.0.1", "sandbox-key",
                                                                            "sms-activate", None)


def test_cli_catalogue_options(tmp_path: Path) -> None:
    offers = tmp_path / "offers.json"
    offers.write_text(json.dumps({"offers": [{"service": "wa", "country": 0, "price": "0.9", "count": 3}]}))
    args = build_parser().parse_args(["--price", "tg:0:0.30", "--stock", "tg:0:5", "--stock", "vk:1:50:0",
                                      "--stock", "7", "--catalogue", str(offers), "--currency", "643",
                                      "--seed", "11", "--dialect", "vaksms"])
    config = config_from_args(args)
    assert config.catalogue == (OfferPatch("wa", 0, price=Decimal("0.9"), count=3),
                                OfferPatch("tg", 0, price=Decimal("0.30")), OfferPatch("tg", 0, count=5),
                                OfferPatch("vk", 1, count=50, physical_count=0))
    assert (config.stock, config.currency, config.seed, config.dialect) == (7, 643, 11, "vaksms")
    app = create_app(config)
    try:
        prices = app.test_client().get("/stubs/handler_api.php", query_string={
            "api_key": config.api_key, "action": "getPrices"}).get_json()
    finally:
        engine_of(app).close()
    assert prices["0"]["tg"] == {"cost": 0.3, "count": 5, "physicalCount": 5}
    assert prices["1"]["vk"] == {"cost": 0.096, "count": 50, "physicalCount": 0}
    assert prices["0"]["wa"]["count"] == 3 and prices["187"]["tg"]["count"] == 7


@pytest.mark.parametrize("argv", [
    ["--price", "tg:0"], ["--price", "tg:x:1"], ["--price", "tg:0:cheap"], ["--stock", "tg:0:-1"],
    ["--stock", "tg:0"], ["--price", "nosuch:0:1"], ["--stock", "tg:999:1"], ["--catalogue", "/nonexistent.json"],
    ["--dialect", "klingon"],
])
def test_cli_bad_catalogue_options_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from sandbox.cli import main
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert capsys.readouterr().err


@pytest.mark.http
def test_access_log_redacts_key(caplog: pytest.LogCaptureFixture) -> None:
    srv = serve_in_thread(create_app(SandboxConfig(api_key="s3cret-key")), access_log=True)
    try:
        with caplog.at_level(logging.INFO, logger="sandbox.access"):
            r = requests.get(srv.handler_url, params={"api_key": "s3cret-key", "action": "getBalance"}, timeout=5)
            assert r.text == "ACCESS_BALANCE:100.00"
            # the server thread writes the access line after sending the answer
            wait_until(lambda: "action=getBalance" in caplog.text, timeout=5, message="no access log line")
    finally:
        srv.stop()
    assert "api_key=***" in caplog.text and "s3cret-key" not in caplog.text


@pytest.mark.http
@pytest.mark.processes
def test_python_dash_m_sandbox_serves(tmp_path: Path) -> None:
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_PROXY": "127.0.0.1"}
    proc = subprocess.Popen([sys.executable, "-m", "sandbox", "--port", str(port), "--api-key", "cli-key",
                             "--webhook-url", "http://127.0.0.1:9/x", "--auto-sms-after", "0.1",
                             "--dialect", "sms-activate", "--price", "tg:0:0.75", "--stock", "tg:0:3:2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/stubs/handler_api.php" in line
        url = f"http://127.0.0.1:{port}/stubs/handler_api.php"
        prices = requests.get(url, params={"api_key": "cli-key", "action": "getPrices", "service": "tg",
                                           "country": "0"}, timeout=5).json()
        assert prices == {"0": {"tg": {"cost": 0.75, "count": 3, "physicalCount": 2}}}
        body = requests.get(url, params={"api_key": "cli-key", "action": "getNumber", "service": "tg"},
                            timeout=5).text
        act_id = body.split(":")[1]

        def code() -> str | None:
            status = requests.get(url, params={"api_key": "cli-key", "action": "getStatus", "id": act_id},
                                  timeout=5).text
            return status if status.startswith("STATUS_OK:") else None

        status = wait_until(code, timeout=5, message="no auto-SMS code")
        assert status.startswith("STATUS_OK:") and len(status.split(":")[1]) == 6
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "cli-key" not in err          # no per-request access log with the key
