"""Property test: any sequence of purchases, SMS, status changes and clock moves keeps the books straight.

Money: balance == start + sum(ledger amounts). Stock: every number taken is either held by an active or
finished activation or back in stock. Refunds: only activations that never got a code are refunded.
"""
from __future__ import annotations

from decimal import Decimal

from hypothesis import HealthCheck, given, settings, strategies as st

from sandbox import SandboxConfig, create_app, engine_of
from sandbox.activations import State

from .conftest import Api, Control

OPS = st.lists(st.one_of(
    st.tuples(st.just("buy"), st.sampled_from(["tg", "wa", "vk"]), st.sampled_from([0, 1, 2])),
    st.tuples(st.just("sms"), st.integers(0, 20), st.just(0)),
    st.tuples(st.just("set"), st.integers(0, 20), st.sampled_from([1, 3, 6, 8])),
    st.tuples(st.just("advance"), st.sampled_from([30, 121, 600, 1300]), st.just(0)),
), max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_books_balance(ops) -> None:
    app = create_app(SandboxConfig(api_key="k", seed=1, stock=5, balance=Decimal("3")))
    engine = engine_of(app)
    api, control = Api(app.test_client(), key="k"), Control(app.test_client())
    start_stock = {k: o.stock for k, o in engine.catalogue.offers.items()}
    ids: list[str] = []
    try:
        for op, a, b in ops:
            if op == "buy":
                body = api("getNumber", service=a, country=b)
                assert body.startswith("ACCESS_NUMBER:") or body in ("NO_BALANCE", "NO_NUMBERS"), body
                if body.startswith("ACCESS_NUMBER:"):
                    ids.append(body.split(":")[1])
            elif op == "sms" and ids:
                act = engine.activations[ids[a % len(ids)]]
                r = control.client.post("/control/sms", json={"activation_id": act.id, "code": "1234"})
                assert r.status_code in (200, 409)
            elif op == "set" and ids:
                body = api("setStatus", id=ids[a % len(ids)], status=b)
                assert body in ("ACCESS_READY", "ACCESS_RETRY_GET", "ACCESS_ACTIVATION", "ACCESS_CANCEL",
                                "EARLY_CANCEL_DENIED", "BAD_STATUS"), body
            elif op == "advance":
                control.advance(a)
        st_ = control.state()
        balance = Decimal(st_["balance"])
        assert balance == Decimal("3") + sum((Decimal(e["amount"]) for e in st_["ledger"]), Decimal("0"))
        assert balance >= 0
        for key, start in start_stock.items():
            held = sum(1 for x in engine.activations.values()
                       if (x.country, x.service) == key and not (x.state == State.CANCELLED))
            assert engine.catalogue.offers[key].stock + held == start
        for x in engine.activations.values():
            assert not (x.refunded and x.has_code)
            assert x.refunded == (x.state == State.CANCELLED)
            if x.state == State.WAIT_CODE:
                assert x.expires_at > engine.now()
    finally:
        engine.close()
