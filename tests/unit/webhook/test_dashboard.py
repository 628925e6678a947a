"""/dashboard: sign-in with the API token (cookie rules), and what the panels show, on fakeredis."""
from __future__ import annotations

import time
from typing import Any

import pytest

from lifecycle.activation import OrderRequest
from lifecycle.outbox.events import EventType, make_event
from webhook import dashboard as dash

from .conftest import API_TOKEN, WEBHOOK, Harness, MakeHarness
from .test_health import _down


def sign_in(harness: Harness, token: str = API_TOKEN) -> Any:
    return harness.client.post("/dashboard/login", data={"token": token})


def test_signed_out_gets_the_form_and_nothing_else(harness: Harness) -> None:
    harness.ctx.orders.submit(OrderRequest("tg", order_id="secret-order"))
    rv = harness.client.get("/dashboard")
    page = rv.get_data(as_text=True)
    assert rv.status_code == 200 and 'action="/dashboard/login"' in page and 'method="post"' in page
    assert "secret-order" not in page
    assert harness.client.get("/dashboard/panels").status_code == 401
    assert harness.client.get("/dashboard/data.json").status_code == 401


def test_wrong_token_is_refused_without_a_cookie(harness: Harness) -> None:
    rv = sign_in(harness, "not-the-token")
    assert rv.status_code == 401 and "Set-Cookie" not in rv.headers
    assert "not the API token" in rv.get_data(as_text=True)
    assert sign_in(harness, "").status_code == 401


def test_sign_in_sets_a_strict_http_only_cookie_and_no_token_in_any_url(harness: Harness) -> None:
    rv = sign_in(harness)
    assert rv.status_code == 303 and rv.headers["Location"].endswith("/dashboard")
    cookie = rv.headers["Set-Cookie"]
    assert cookie.startswith(f"{dash.COOKIE}=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Path=/dashboard" in cookie and "Secure" not in cookie  # plain HTTP here; Secure over HTTPS
    assert API_TOKEN not in cookie and API_TOKEN not in rv.headers["Location"]
    page = harness.client.get("/dashboard").get_data(as_text=True)
    assert 'id="panels"' in page and API_TOKEN not in page
    # a token in the query string signs nobody in
    other = harness.app.test_client()
    assert 'id="panels"' not in other.get(f"/dashboard?token={API_TOKEN}").get_data(as_text=True)


def test_cookie_is_secure_over_https(harness: Harness) -> None:
    rv = harness.client.post("/dashboard/login", data={"token": API_TOKEN}, base_url="https://localhost")
    assert "Secure" in rv.headers["Set-Cookie"]


def test_sign_out_clears_the_cookie(harness: Harness) -> None:
    sign_in(harness)
    rv = harness.client.post("/dashboard/logout")
    assert rv.status_code == 303 and f"{dash.COOKIE}=;" in rv.headers["Set-Cookie"]
    assert harness.client.get("/dashboard/panels").status_code == 401


def test_a_cookie_of_another_token_or_an_expired_one_is_refused(make_harness: MakeHarness,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    other = make_harness(api_token="another-token-0123456789abcdef")
    sign_in(other, "another-token-0123456789abcdef")
    forged = other.client.get_cookie(dash.COOKIE, path="/dashboard")
    assert forged is not None
    h = make_harness()
    h.client.set_cookie(dash.COOKIE, forged.value, path="/dashboard")
    assert h.client.get("/dashboard/panels").status_code == 401  # API_TOKEN rotated: every session is out
    sign_in(h)
    assert h.client.get("/dashboard/panels").status_code == 200
    monkeypatch.setattr(dash, "SESSION_SECONDS", -1)
    assert h.client.get("/dashboard/panels").status_code == 401


def test_security_headers(harness: Harness) -> None:
    rv = harness.client.get("/dashboard")
    assert "script-src 'self'" in rv.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in rv.headers["Content-Security-Policy"]
    assert rv.headers["Cache-Control"] == "no-store" and rv.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" not in harness.client.get("/healthz").headers


def test_script_and_style_are_served_from_the_package(harness: Harness) -> None:
    script = harness.client.get("/dashboard/static/dashboard.js")
    assert script.status_code == 200 and "fetch(" in script.get_data(as_text=True)
    assert harness.client.get("/dashboard/static/dashboard.css").status_code == 200
    sign_in(harness)
    page = harness.client.get("/dashboard").get_data(as_text=True)
    assert 'src="/dashboard/static/dashboard.js"' in page and 'data-source="/dashboard/panels"' in page
    assert "<script>" not in page  # no inline script: the CSP allows only our own file


def placed(harness: Harness, order_id: str, *, number: bool = True) -> None:
    store = harness.ctx.orders.store
    harness.ctx.orders.submit(OrderRequest("tg", country=0, order_id=order_id))
    if number:
        store.start_buying(order_id)
        store.choose_provider(order_id, provider="sms-activate", country=0, calls=1)
        store.assign_number(order_id, provider="sms-activate", activation_id=f"a-{order_id}", phone="79990001122",
                            cost="0.5", currency=643)


def test_panels_show_orders_in_flight_recent_events_and_backlogs(harness: Harness) -> None:
    placed(harness, "flying-1")
    placed(harness, "pending-1", number=False)
    harness.client.post(WEBHOOK, data=b"<script>alert(1)</script>")  # a dead letter, shown escaped
    sign_in(harness)
    view = harness.client.get("/dashboard/data.json").get_json()
    flying = {o["order_id"]: o for o in view["in_flight"]}
    assert flying["flying-1"]["state"] == "waiting" and flying["flying-1"]["phone"] == "79990001122"
    assert flying["flying-1"]["gives_up"].startswith("in ") and flying["pending-1"]["state"] == "pending"
    assert [o["order_id"] for o in view["recent"]] == ["pending-1", "flying-1"]
    assert view["events"][0]["type"] == "number.assigned" and view["events"][0]["order_id"] == "flying-1"
    assert view["backlogs"]["orders_live"] == 2 and view["backlogs"]["dead_letters"] == 1
    assert view["heartbeats"]["worker"]["age"] == "never" and view["heartbeats"]["worker"]["stale"] is True
    provider = view["providers"][0]
    assert provider["name"] == "sms-activate" and provider["bought"] == 1 and provider["breaker"] == "closed"
    assert provider["balance"] == "not read yet" and "today" in provider["spend"]

    html = harness.client.get("/dashboard/panels").get_data(as_text=True)
    assert 'data-order-id="flying-1" data-state="waiting"' in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html


def test_providers_show_success_share_and_time_to_code(harness: Harness) -> None:
    stream = harness.ctx.keys.events
    t0 = time.time() - 100
    where = {"service": "tg", "country": 0, "provider": "sms-activate"}
    for i, (via, after) in enumerate([("webhook", 10.0), ("webhook", 20.0), ("poll", 30.0)]):
        order = f"o{i}"
        for kind, at, extra in [(EventType.NUMBER_ASSIGNED, t0, {}),
                                (EventType.CODE_RECEIVED, t0 + after, {"code": "1", "via": via}),
                                (EventType.ACTIVATION_FINISHED, t0 + after, {"reason": "auto"})]:
            spec = make_event(kind, order, at, activation_id=f"a{i}", **where, **extra)
            harness.redis.xadd(stream, {"type": spec.type.value, "data": spec.to_json()})
    spec = make_event(EventType.ACTIVATION_CANCELLED, "o9", t0, activation_id="a9", reason="timeout", **where)
    harness.redis.xadd(stream, {"type": spec.type.value, "data": spec.to_json()})
    sign_in(harness)
    view = harness.client.get("/dashboard/data.json").get_json()
    provider = view["providers"][0]
    assert (provider["finished"], provider["cancelled"], provider["success"]) == (3, 1, "75 %")
    assert (provider["codes_webhook"], provider["codes_poll"], provider["time_to_code"]) == (2, 1, "20 s")
    assert view["share"] == {"webhook": 2, "poll": 1, "webhook_percent": 67}
    assert [f["order_id"] for f in view["failures"]] == ["o9"]


def test_heartbeats_and_rents_in_flight(harness: Harness) -> None:
    from lifecycle.rent import RentRequest

    now = time.time()
    harness.redis.set(harness.ctx.keys.beat_heartbeat, f"{now - 3:.3f}")
    harness.redis.zadd(harness.ctx.keys.worker_heartbeats, {"worker@box": now - 1})
    harness.ctx.rents.submit(RentRequest("full", country=0, order_id="rent-1"))
    sign_in(harness)
    view = harness.client.get("/dashboard/data.json").get_json()
    assert view["heartbeats"]["beat"]["stale"] is False and view["heartbeats"]["beat"]["age"].endswith("s ago")
    assert [w["name"] for w in view["heartbeats"]["workers"]] == ["worker@box"]
    assert [r["order_id"] for r in view["rents"]] == ["rent-1"] and view["backlogs"]["rents_live"] == 1
    html = harness.client.get("/dashboard/panels").get_data(as_text=True)
    assert 'data-heartbeat="beat"' in html and 'data-rent-id="rent-1"' in html


def test_redis_down_is_said_plainly(make_harness: MakeHarness, closed_port: int) -> None:
    h = _down(make_harness, closed_port)
    sign_in(h)
    rv = h.client.get("/dashboard")
    assert rv.status_code == 200 and "Redis did not answer (ConnectionError)" in rv.get_data(as_text=True)


@pytest.mark.parametrize(("seconds", "said"), [(4.2, "4 s"), (185, "3 min"), (7500, "2 h 5 min"),
                                               (3 * 86400 + 5, "3 d"), (None, "—")])
def test_durations_read_like_speech(seconds: float | None, said: str) -> None:
    assert dash.duration(seconds) == said


def test_until_says_ahead_or_overdue() -> None:
    assert dash.until(110.0, 100.0) == "in 10 s" and dash.until(90.0, 100.0) == "10 s ago"
