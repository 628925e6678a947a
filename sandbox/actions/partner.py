"""Partner API: `buyPartnerProduct` (docs/handler-api.md, Transport and answers)."""
from __future__ import annotations

import string

from ..dialects import Reply, as_json
from ..errors import ApiError, InsufficientFunds, rent_error
from .params import Ctx, Handler


def buy_partner_product(ctx: Ctx) -> Reply:
    engine = ctx.engine
    if not ctx.settings.partner_verified:
        raise ApiError("BAD_ACTION")          # BAD_ACTION also means "reseller not verified"
    raw = ctx.get("id", "productId")
    if raw is None or not raw.isdigit() or int(raw) not in engine.catalogue.products:
        raise rent_error("BAD_DATA")
    product = engine.catalogue.products[int(raw)]
    try:
        engine.ledger.charge(product.price, f"partner:{product.id}", engine.now())
    except InsufficientFunds:
        raise rent_error("NO_BALANCE") from None
    key = "".join(engine.rng.choice(string.ascii_letters + string.digits) for _ in range(25))
    engine.partner_keys.append({"product": product.id, "key": key})
    return as_json({"status": "success", "key": key,
                    "manual": f"Ссылка на загрузку софта: https://sandbox.invalid/download/{product.id}"})


HANDLERS: dict[str, Handler] = {"buyPartnerProduct": buy_partner_product}
