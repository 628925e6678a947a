"""GET /api/spend (webhook/spend_api.py): the bearer token guards it; it shows each provider's windows against its
limits, what is reserved, and the accounting rows the ledger keeps."""
from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest

from config.settings import Settings
from lifecycle.keys import Keys
from lifecycle.money import Ledger, SpendLimits

TOKEN = "api-token-0123456789abcdef"


@pytest.fixture
def client(fake_redis: Any) -> Any:
    from webhook.app import create_app

    settings = Settings.from_env({"API_TOKEN": TOKEN, "WEBHOOK_TOKEN": "webhook-token-0123456789",
                                  "SPEND_LIMIT_DAILY": "5.00"})
    return create_app(settings, redis_client=fake_redis, celery_app=None).test_client()


def test_spend_needs_the_token(client: Any) -> None:
    assert client.get("/api/spend").status_code == 401
    assert client.get("/api/spend", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_spend_shows_windows_reservations_and_accounts(client: Any, fake_redis: Any) -> None:
    ledger, now = Ledger(fake_redis, Keys()), time.time()
    assert ledger.reserve("sms-activate", "r1", Decimal("0.25"), SpendLimits(daily=Decimal("5")), now=now,
                          hold_for=600) == ""
    for side in ledger.bought("sms-activate", "r0", "tg", 0, Decimal("0.40"), now):  # as a transition applies them
        if side.op == "hincrby":
            fake_redis.hincrby(side.key, side.field, side.amount)
        elif side.op == "hset":
            fake_redis.hset(side.key, side.field, side.value)
        else:
            fake_redis.hdel(side.key, side.field) if side.op == "hdel" else fake_redis.zrem(side.key, side.field)
    body = client.get("/api/spend", headers={"Authorization": f"Bearer {TOKEN}"}).get_json()
    (prov,) = body["providers"]
    assert prov["provider"] == "sms-activate" and prov["limit_daily"] == "5.00" and prov["limit_hourly"] is None
    assert prov["reserved"] == "0.25" and Decimal(prov["spent_day"]) == Decimal("0.40")
    (acct,) = body["accounts"]
    assert (acct["service"], acct["country"], acct["charged"], acct["numbers"]) == ("tg", 0, "0.4", 1)


def test_otpflow_spend_prints_the_same_report(fake_redis: Any, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from otpflow import cli, spend

    monkeypatch.setattr(spend, "make_redis", lambda settings: fake_redis)
    monkeypatch.setenv("SPEND_LIMIT_HOURLY", "1.5")
    Ledger(fake_redis, Keys()).reserve("sms-activate", "r1", Decimal("0.5"), SpendLimits(hourly=Decimal("1.5")),
                                       now=time.time(), hold_for=600)
    assert cli.main(["spend", "--json"]) == 0
    (prov,) = json.loads(capsys.readouterr().out)["providers"]
    assert prov["limit_hourly"] == "1.5" and prov["reserved"] == "0.5"
    assert cli.main(["spend"]) == 0
    out = capsys.readouterr().out
    assert "sms-activate" in out and "no purchases yet" in out


def test_otpflow_spend_names_a_bad_setting_without_a_traceback(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from otpflow import cli

    monkeypatch.setenv("SPEND_LIMIT_DAILY", "lots")
    assert cli.main(["spend"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "  - SPEND_LIMIT_DAILY: expected an amount" in err


def test_metrics_show_the_spend_and_the_accounting(client: Any, fake_redis: Any) -> None:
    ledger, now = Ledger(fake_redis, Keys()), time.time()
    for side in ledger.bought("sms-activate", "r0", "tg", 0, Decimal("0.40"), now):
        if side.op == "hincrby":
            fake_redis.hincrby(side.key, side.field, side.amount)
        elif side.op == "hset":
            fake_redis.hset(side.key, side.field, side.value)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'otpflow_spend{provider="sms-activate",window="day"} 0.4' in text
    assert 'otpflow_spend_limit{provider="sms-activate",window="day"} 5.0' in text
    assert 'otpflow_charged_total{country="0",provider="sms-activate",service="tg"} 0.4' in text
    assert 'otpflow_numbers_bought_total{country="0",provider="sms-activate",service="tg"} 1.0' in text
