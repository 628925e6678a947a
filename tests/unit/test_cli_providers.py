"""``otpflow balance``, ``prices`` and ``doctor`` against two sandbox providers served on loopback (getBalance and
prices only: nothing is bought), and ``doctor`` against a real Redis."""
from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Iterator

import pytest

from otpflow.commands import ExitCode
from sandbox import SandboxConfig, create_app
from sandbox.catalogue import OfferPatch
from sandbox.server import serve_in_thread

from .test_cli_exit_codes import Cli, cli, closed_port

__all__ = ["cli", "closed_port"]  # the fixtures, shared with test_cli_exit_codes

pytestmark = [pytest.mark.http]


@pytest.fixture(scope="module")
def sandboxes() -> Iterator[dict[str, Any]]:
    servers = {
        "cheap": serve_in_thread(create_app(SandboxConfig(api_key="key-cheap", balance=Decimal("12.5"), catalogue=(
            OfferPatch("tg", 0, price=Decimal("0.20"), count=2), OfferPatch("tg", 6, price=Decimal("0.90")))))),
        "steady": serve_in_thread(create_app(SandboxConfig(api_key="key-steady", balance=Decimal("3"), catalogue=(
            OfferPatch("tg", 0, price=Decimal("0.45")),)))),
    }
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def two(cli: Cli, sandboxes: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.delenv("PROVIDER_API_KEY")
    cli.env(PROVIDERS="cheap,steady", PROVIDER_READ_TIMEOUT="3", PROVIDER_CONNECT_TIMEOUT="1")
    for name, server in sandboxes.items():
        prefix = f"PROVIDER_{name.upper()}_"
        cli.env(**{f"{prefix}DIALECT": "sms-activate", f"{prefix}URL": f"{server.url}/stubs/handler_api.php",
                   f"{prefix}API_KEY": f"key-{name}", f"{prefix}WEBHOOK_TOKEN": f"token-of-{name}-0123456789"})
    return cli


def test_balance_of_every_provider(two: Cli) -> None:
    ran = two("balance", "--json")
    assert ran.code == 0, ran.err
    assert [(r["provider"], Decimal(r["balance"])) for r in json.loads(ran.out)] == [
        ("cheap", Decimal("12.5")), ("steady", Decimal("3"))]
    table = two("balance").out.splitlines()
    assert table[0].split() == ["provider", "balance", "error"] and table[1].split()[::2] == ["cheap", "-"]
    assert two("balance", "--provider", "nobody").code == ExitCode.USAGE


def test_a_refused_key_is_exit_1_and_an_unreachable_provider_exit_4(two: Cli, closed_port: int) -> None:
    two.env(PROVIDER_STEADY_API_KEY="wrong-key")
    refused = two("balance")
    assert refused.code == ExitCode.FAILED and "BadKey" in refused.out and "wrong-key" not in refused.out
    two.env(PROVIDER_STEADY_API_KEY="key-steady",
            PROVIDER_STEADY_URL=f"http://127.0.0.1:{closed_port}/stubs/handler_api.php")
    unreachable = two("balance", "--json")
    assert unreachable.code == ExitCode.PROVIDER
    rows = json.loads(unreachable.out)
    assert Decimal(rows[0]["balance"]) == Decimal("12.5") and "error" in rows[1]


def test_prices_across_providers_cheapest_first(two: Cli) -> None:
    ran = two("prices", "tg", "--country", "0", "--json")
    assert ran.code == 0, ran.err
    rows = json.loads(ran.out)
    assert [(r["provider"], Decimal(r["cost"])) for r in rows] == [("cheap", Decimal("0.2")),
                                                                    ("steady", Decimal("0.45"))]
    assert rows[0]["count"] == 2
    every_country = json.loads(two("prices", "tg", "--provider", "cheap", "--json", "--limit", "500").out)
    assert {"0", "6"} <= {str(r["country"]) for r in every_country}
    assert [r["cost"] for r in every_country] == sorted((r["cost"] for r in every_country), key=float)


@pytest.mark.redis
def test_doctor_says_each_problem_with_its_fix(two: Cli, redis_url: str) -> None:
    two.env(REDIS_URL=redis_url, API_TOKEN="api-token-0123456789abcdef")
    ran = two("doctor", "--no-public-url")
    lines = ran.out.splitlines()
    assert ran.code == ExitCode.FAILED  # no worker, no beat yet
    assert any(line.startswith("ok   redis: ") for line in lines)
    assert any(line.startswith("ok   provider cheap: answers; balance 12.5") for line in lines), lines
    worker = next(line for line in lines if line.startswith("FAIL worker"))
    assert "never heard of" in worker and "fix: start a worker" in worker
    assert any(line.startswith("FAIL beat") for line in lines)

    import time

    import redis as redis_lib

    client = redis_lib.Redis.from_url(redis_url)
    client.set("otpflow:heartbeat:beat", f"{time.time():.3f}")
    client.zadd("otpflow:heartbeat:workers", {"worker@here": time.time()})
    healthy = two("doctor", "--no-public-url")
    assert healthy.code == 0, healthy.out
    assert not any(line.startswith("FAIL") for line in healthy.out.splitlines())

    two.env(PROVIDER_CHEAP_API_KEY="wrong-key", EVENTS_MAXLEN="100000000")
    sick = two("doctor", "--no-public-url").out.splitlines()
    key = next(line for line in sick if line.startswith("FAIL provider cheap"))
    assert "refused the key" in key and "PROVIDER_CHEAP_API_KEY" in key
    if any("no maxmemory" in line for line in sick):
        return  # a server without maxmemory: nothing to outgrow
    room = next(line for line in sick if line.startswith("FAIL redis room"))
    assert "fix: set EVENTS_MAXLEN to" in room


def test_doctor_checks_that_public_url_reaches_our_webhook_paths(two: Cli) -> None:
    from config.settings import Settings
    from otpflow.doctor import Level, public_url

    class Answer:
        def __init__(self, status: int, body: dict[str, str] | None = None, allow: str = "") -> None:
            self.status_code = status
            self.headers = {"Content-Type": "application/json", **({"Allow": allow} if allow else {})}
            self._body = body or {}

        def json(self) -> dict[str, str]:
            return self._body

    def ours(url: str, timeout: float) -> Answer:
        return Answer(200, {"status": "ok"}) if url.endswith("/healthz") else Answer(405, allow="POST")

    settings = Settings.from_env()
    from dataclasses import replace

    there = replace(settings, public_url="https://app.example")
    found = list(public_url(there, get=ours))
    assert [f.level for f in found] == [Level.OK, Level.OK] and "reaches otpflow" in found[0].said
    assert "token-of" not in " ".join(f.line() for f in found)
    blocked = list(public_url(there, get=lambda url, timeout: Answer(200, {"status": "ok"}) if url.endswith(
        "/healthz") else Answer(404)))
    assert blocked[0].level is Level.FAIL and "fix: make the proxy pass /webhooks/" in blocked[0].line()
    other = list(public_url(there, get=lambda url, timeout: Answer(200, {"hello": "x"})))
    assert other[0].level is Level.FAIL and "not otpflow" in other[0].said
    assert list(public_url(settings))[0].level is Level.WARN  # not set
