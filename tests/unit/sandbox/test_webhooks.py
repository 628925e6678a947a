"""Webhook sender over real HTTP to a local receiver: payloads, retries, duplicates, drops."""
from __future__ import annotations

import time

import pytest

from tests.support.waiting import wait_until

from .conftest import Api, Control, Receiver

pytestmark = pytest.mark.http

FAST = [0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02]


def setup(make_app, receiver: Receiver, **kw):
    app = make_app(webhook_url=receiver.url, webhook_backoff=tuple(FAST), **kw)
    return Api(app.test_client()), Control(app.test_client())


def wait_status(control: Control, status: str, timeout: float = 5.0) -> list[dict]:
    """The delivery log, once it is not empty and every delivery in it has ``status``."""
    def settled() -> list[dict] | None:
        hooks = control.state()["webhooks"]
        return hooks if hooks and all(h["status"] == status for h in hooks) else None

    return wait_until(settled, timeout=timeout, interval=0.01, message=lambda: str(control.state()["webhooks"]))


def codes_received(receiver: Receiver) -> list[str]:
    return [r["body"].get("code") for r in receiver.received]


def test_activation_payload_exact(make_app, receiver: Receiver) -> None:
    api, control = setup(make_app, receiver)
    act_id, _ = api.buy("wa", country=2)
    control.sms(act_id, "654321", text="Your WhatsApp code 654-321")
    (got,) = receiver.wait_for(1)
    assert got["path"] == "/hook/tok"
    assert got["headers"]["Content-Type"] == "application/json"
    body = got["body"]
    assert list(body) == ["activationId", "service", "text", "code", "country", "receivedAt"]
    assert body["activationId"] == int(act_id) and body["service"] == "wa" and body["country"] == 2
    assert body["code"] == "654321" and body["text"] == "Your WhatsApp code 654-321"
    assert time.strptime(body["receivedAt"], "%Y-%m-%d %H:%M:%S")
    wait_status(control, "delivered")


def test_herosms_payload(make_app, receiver: Receiver) -> None:
    api, control = setup(make_app, receiver, dialect="herosms")
    act_id, _ = api.buy()
    control.sms(act_id, "111222", phone_from="Telegram")
    body = receiver.wait_for(1)[0]["body"]
    assert body["activationId"] == act_id and body["phoneFrom"] == "Telegram" and body["id"]
    assert body["receivedAt"].endswith("Z") and "T" in body["receivedAt"]


def test_rent_payload_goes_to_the_rent_url(make_app, receiver: Receiver) -> None:
    app = make_app(webhook_url=None)
    api, control = Api(app.test_client()), Control(app.test_client())
    rid = api.json("getRentNumber", service="tg", url=receiver.url + "/rent")["phone"]["id"]
    control.post("sms", {"rent_id": str(rid), "text": "Код 2792", "phone_from": "SPORTMASTER"})
    body = receiver.wait_for(1)[0]["body"]
    assert body["rentId"] == str(rid)
    assert body["sms"]["phoneFrom"] == "SPORTMASTER" and body["sms"]["text"] == "Код 2792"
    assert time.strptime(body["sms"]["date"], "%Y-%m-%d %H:%M:%S")


def test_retry_until_200(make_app, receiver: Receiver) -> None:
    receiver.script = [500, 503, 404]
    api, control = setup(make_app, receiver)
    act_id, _ = api.buy()
    control.sms(act_id)
    assert [r["answered"] for r in receiver.wait_for(4)] == [500, 503, 404, 200]
    (hook,) = wait_status(control, "delivered")
    assert [a["status_code"] for a in hook["attempts"]] == [500, 503, 404, 200]


def test_gives_up_after_8_attempts(make_app, receiver: Receiver) -> None:
    receiver.script = [500] * 20
    api, control = setup(make_app, receiver)
    act_id, _ = api.buy()
    control.sms(act_id)
    (hook,) = wait_status(control, "failed")
    assert len(hook["attempts"]) == 8
    # "failed" is final (the sender schedules nothing after it), and an attempt is recorded only once the
    # receiver has answered it: every POST there will ever be has arrived
    assert len(receiver.received) == 8


def test_connection_errors_are_retried(make_app) -> None:
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                                   # nothing listens there now
    app = make_app(webhook_url=f"http://127.0.0.1:{port}/x", webhook_backoff=(0.01,), webhook_attempts=3)
    api, control = Api(app.test_client()), Control(app.test_client())
    act_id, _ = api.buy()
    control.sms(act_id)
    (hook,) = wait_status(control, "failed")
    assert len(hook["attempts"]) == 3 and all(a["error"] for a in hook["attempts"])


def test_duplicate_mode(make_app, receiver: Receiver) -> None:
    api, control = setup(make_app, receiver, duplicate_webhooks=3)
    act_id, _ = api.buy()
    control.sms(act_id, "777777")
    got = receiver.wait_for(3)
    hooks = wait_status(control, "delivered")   # final: each copy answered 200 and is never sent again
    assert len(hooks) == 3 and all(len(h["attempts"]) == 1 for h in hooks)
    assert len(receiver.received) == 3
    assert all(g["body"]["code"] == "777777" for g in got)


def test_drop_mode_records_without_sending(make_app, receiver: Receiver) -> None:
    api, control = setup(make_app, receiver)
    control.settings(drop_webhooks=True)
    act_id, _ = api.buy()
    control.sms(act_id, "888888")
    (hook,) = control.state()["webhooks"]
    assert hook["status"] == "dropped" and hook["payload"]["code"] == "888888"
    assert api("getStatus", id=act_id) == "STATUS_OK:888888"     # reconcile by polling
    # a later SMS, sent normally, arrives: had the dropped one been queued before it, it would have arrived too
    control.settings(drop_webhooks=False)
    later, _ = api.buy()
    control.sms(later, "999999")
    receiver.wait_for(1)
    assert codes_received(receiver) == ["999999"]


def test_slow_receiver_times_out_and_is_retried(make_app) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    calls: list[float] = []

    class Slow(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            calls.append(time.monotonic())
            self.rfile.read(int(self.headers["Content-Length"]))
            if len(calls) == 1:
                time.sleep(0.6)   # the behaviour under test: a receiver slower than the sender's 0.2 s timeout
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        app = make_app(webhook_url=f"http://127.0.0.1:{srv.server_port}/", webhook_backoff=(0.01,),
                       webhook_timeout=0.2)
        api, control = Api(app.test_client()), Control(app.test_client())
        act_id, _ = api.buy()
        control.sms(act_id)
        (hook,) = wait_status(control, "delivered")
        assert hook["attempts"][0]["error"] and hook["attempts"][1]["status_code"] == 200
    finally:
        srv.shutdown()
        srv.server_close()


def test_auto_sms_delivers_a_code_and_webhook(make_app, receiver: Receiver) -> None:
    api, control = setup(make_app, receiver, auto_sms_after=0.05)
    act_id, _ = api.buy()
    body = receiver.wait_for(1)[0]["body"]
    assert len(body["code"]) == 6 and body["code"].isdigit()
    assert body["text"] == f"Your code is {body['code']}"
    assert api("getStatus", id=act_id) == f"STATUS_OK:{body['code']}"


def test_auto_sms_skips_cancelled_activations(make_app, receiver: Receiver) -> None:
    api, control = setup(make_app, receiver, auto_sms_after=0.3)
    act_id, _ = api.buy()
    control.advance(121)
    assert api("setStatus", id=act_id, status=8) == "ACCESS_CANCEL"
    # the auto-SMS of an activation bought later is due later: once its webhook arrived, the cancelled
    # activation's auto-SMS has had its turn
    later, _ = api.buy()
    receiver.wait_for(1)
    assert [r["body"]["activationId"] for r in receiver.received] == [int(later)]


def test_reset_forgets_pending_deliveries(make_app, receiver: Receiver) -> None:
    receiver.script = [500] * 20
    app = make_app(webhook_url=receiver.url, webhook_backoff=(0.2,))
    api, control = Api(app.test_client()), Control(app.test_client())
    act_id, _ = api.buy()
    control.sms(act_id, "111111")
    receiver.wait_for(1)
    control.post("reset")
    assert control.state()["webhooks"] == [] and control.state()["activations"] == []
    # a delivery made after the reset retries 0.2 s after its first attempt, later than the forgotten one's
    # retry was due: once the new one's retry has arrived, the old one had its chance
    later, _ = api.buy()
    control.sms(later, "222222")
    receiver.wait_for(3)
    assert codes_received(receiver) == ["111111", "222222", "222222"]
