"""handler_api actions: the registry and the dispatcher (authentication, then the action's handler)."""
from __future__ import annotations

import hmac
from typing import Mapping

from ..dialects import Reply
from ..engine import Engine
from ..errors import ApiError
from . import activation, catalogue, partner, rent
from .params import Ctx, Handler

HANDLERS: dict[str, Handler] = {**catalogue.HANDLERS, **activation.HANDLERS, **rent.HANDLERS,
                                **partner.HANDLERS}


def dispatch(engine: Engine, params: Mapping[str, str], authorization: str | None = None) -> Reply | ApiError:
    """Answer one handler_api request. Takes the engine lock for the whole request (one lock around state)."""
    with engine.lock:
        engine.requests += 1
        engine.sweep()
        dialect = engine.dialect
        action = params.get("action") or None
        try:
            if action not in dialect.keyless:
                key = params.get("api_key") or None
                if key is None and dialect.header_auth and authorization:
                    scheme, _, token = authorization.partition(" ")
                    if scheme.lower() == "apikey" and token.strip():
                        key = token.strip()
                if key is None:
                    raise ApiError("NO_KEY")
                if not hmac.compare_digest(key.encode(), engine.settings.api_key.encode()):
                    raise ApiError("BAD_KEY")
            if action is None or action not in HANDLERS or action in dialect.missing_actions:
                raise ApiError("BAD_ACTION")
            return HANDLERS[action](Ctx(engine, params))
        except ApiError as err:
            return dialect.on_wire(action, err)


__all__ = ["HANDLERS", "dispatch", "Ctx"]
