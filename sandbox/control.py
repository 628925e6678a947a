"""Control API (JSON, under /control/): how tests drive the emulated provider.

Deliver SMS and calls, advance the clock, change settings, dump or reset state. Unauthenticated on purpose:
the sandbox listens on loopback and holds only fake money.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from .catalogue import OfferPatch
from .engine import Engine
from .errors import ControlError

bp = Blueprint("sandbox_control", __name__, url_prefix="/control")


def _engine() -> Engine:
    return current_app.extensions["sandbox"]


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if data is None and request.form:
        data = request.form.to_dict()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ControlError("body must be a JSON object")
    return data


@bp.errorhandler(ControlError)
def _control_error(exc: ControlError) -> tuple[Response, int]:
    return jsonify({"error": exc.message}), exc.status


@bp.post("/sms")
def sms() -> Response:
    """`{"activation_id","code"?,"text"?}` or `{"rent_id","text","phone_from"?}`: an SMS arrives."""
    body = _body()
    engine = _engine()
    with engine.lock:
        if body.get("rent_id") is not None:
            text = body.get("text")
            if not text:
                raise ControlError("text is required for a rent SMS")
            return jsonify(engine.deliver_rent_sms(str(body["rent_id"]), str(text), body.get("phone_from"),
                                                   body.get("service")))
        if body.get("activation_id") is None:
            raise ControlError("activation_id or rent_id is required")
        code = body.get("code")
        text = body.get("text")
        return jsonify(engine.deliver_sms(str(body["activation_id"]), None if code is None else str(code),
                                          None if text is None else str(text), body.get("phone_from")))


@bp.post("/call")
def call() -> Response:
    """`{"activation_id","from"?,"code"?,"text"?}`: a verification call arrives."""
    body = _body()
    if body.get("activation_id") is None:
        raise ControlError("activation_id is required")
    engine = _engine()
    with engine.lock:
        code = body.get("code")
        return jsonify(engine.deliver_call(str(body["activation_id"]), body.get("from"),
                                           None if code is None else str(code), body.get("text")))


@bp.post("/clock/advance")
def clock_advance() -> Response:
    """`{"seconds": 130}`: move simulated time forward; expiries apply at once."""
    body = _body()
    try:
        seconds = float(body.get("seconds", 0))
    except (TypeError, ValueError):
        raise ControlError("seconds must be a number") from None
    engine = _engine()
    with engine.lock:
        try:
            engine.clock.advance(seconds)
        except ValueError as exc:
            raise ControlError(str(exc)) from None
        engine.sweep()
        return jsonify(_clock_json(engine))


@bp.get("/clock")
def clock() -> Response:
    return jsonify(_clock_json(_engine()))


def _clock_json(engine: Engine) -> dict[str, Any]:
    from .clock import fmt_dt
    now = engine.now()
    return {"now": now, "now_text": fmt_dt(now), "offset": engine.clock.offset}


@bp.route("/settings", methods=["GET", "POST"])
def settings() -> Response:
    """POST any subset of the settings (sandbox/README.md, Control API); answers the full settings."""
    engine = _engine()
    with engine.lock:
        if request.method == "POST":
            try:
                return jsonify(engine.update_settings(_body()))
            except (TypeError, ValueError) as exc:
                raise ControlError(f"bad setting value: {exc}") from None
        return jsonify(engine.settings_json())


@bp.route("/catalogue", methods=["GET", "POST"])
def catalogue() -> Response:
    """GET: every offer. POST one offer `{"service","country","price"?,"count"?,"physical_count"?}` or
    `{"offers":[…]}`: prices and stock change at once, all or none; answers `{"offers":[the changed offers]}`."""
    engine = _engine()
    if request.method == "GET":
        with engine.lock:
            return jsonify(engine.catalogue_json())
    body = _body()
    items = body["offers"] if set(body) == {"offers"} else [body]
    if not isinstance(items, list) or not items:
        raise ControlError("offers must be a non-empty list")
    try:
        patches = [OfferPatch.from_json(item) for item in items]
    except ValueError as exc:
        raise ControlError(str(exc)) from None
    with engine.lock:
        return jsonify({"offers": engine.patch_catalogue(patches)})


@bp.get("/state")
def state() -> Response:
    engine = _engine()
    with engine.lock:
        return jsonify(engine.state_json())


@bp.post("/reset")
def reset() -> Response:
    engine = _engine()
    engine.reset()
    return jsonify({"ok": True})


@bp.post("/rent/revoke")
def rent_revoke() -> Response:
    """Extension: `{"rent_id"}`: the provider blocks a rented number (STATUS_REVOKE, refund)."""
    body = _body()
    if body.get("rent_id") is None:
        raise ControlError("rent_id is required")
    engine = _engine()
    with engine.lock:
        return jsonify(engine.revoke_rent(str(body["rent_id"])))
