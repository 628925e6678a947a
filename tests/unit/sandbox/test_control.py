"""Control API contract (docs/contracts.md `sandbox/`)."""
from __future__ import annotations

from .conftest import Api, Control


def test_clock_advance_and_get(control: Control) -> None:
    before = control.client.get("/control/clock").get_json()
    after = control.advance(130)
    assert after["offset"] == 130 and after["now"] - before["now"] >= 130
    control.post("clock/advance", {"seconds": -1}, status=400)
    control.post("clock/advance", {"seconds": "x"}, status=400)


def test_sms_errors(api: Api, control: Control) -> None:
    control.post("sms", {}, status=400)
    control.post("sms", {"activation_id": "1"}, status=404)
    control.post("sms", {"rent_id": "1", "text": "x"}, status=404)
    act_id, _ = api.buy()
    control.advance(121)
    api("setStatus", id=act_id, status=8)
    control.post("sms", {"activation_id": act_id}, status=409)


def test_sms_code_defaults(api: Api, control: Control) -> None:
    act_id, _ = api.buy()
    got = control.post("sms", {"activation_id": act_id, "text": "Your code: 4821"})
    assert got["code"] == "4821"
    b, _ = api.buy()
    got = control.post("sms", {"activation_id": b})
    assert len(got["code"]) == 6 and got["text"] == f"Your code is {got['code']}"


def test_settings_round_trip(control: Control) -> None:
    s = control.settings(webhook_url="http://127.0.0.1:1/x", drop_webhooks=True, duplicate_webhooks=2,
                         auto_sms_after=None, webhook_backoff=[0.1, 0.2], balance="5")
    assert s["webhook_url"] == "http://127.0.0.1:1/x" and s["drop_webhooks"] is True
    assert s["duplicate_webhooks"] == 2 and s["webhook_backoff"] == [0.1, 0.2] and s["balance"] == "5"
    assert "api_key" not in s
    assert control.client.get("/control/settings").get_json()["duplicate_webhooks"] == 2


def test_state_dump(api: Api, control: Control) -> None:
    act_id, _ = api.buy()
    rid = api.json("getRentNumber", service="vk")["phone"]["id"]
    st = control.state()
    assert st["balance"] == str(api.balance())
    assert [a["id"] for a in st["activations"]] == [act_id]
    assert [r["id"] for r in st["rents"]] == [str(rid)]
    assert {"webhooks", "ledger", "settings", "now", "clock_offset"} <= set(st)


def test_reset_restores_start(api: Api, control: Control) -> None:
    api.buy()
    control.advance(50)
    control.settings(balance="1")
    control.post("reset")
    st = control.state()
    assert st["activations"] == [] and st["balance"] == "100" and st["clock_offset"] == 0
