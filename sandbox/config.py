"""SandboxConfig: everything the emulator can be told at start-up; most fields can be changed at run time
through `POST /control/settings` (the engine keeps a mutable copy)."""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from .catalogue import OfferPatch

# 8 attempts in all: the first at once, then 7 waits that add up to ~1.9 h ("within 2 hours, at most 8 times").
DEFAULT_WEBHOOK_BACKOFF: tuple[float, ...] = (30.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3000.0)

FAIL_MODES = ("500", "500_after", "timeout", "ERROR_SQL", "429")
STATUS_AFTER_FINISH = ("STATUS_CANCEL", "STATUS_OK", "NO_ACTIVATION")


@dataclass
class SandboxConfig:
    """Start-up settings of one emulated provider account."""

    api_key: str = "sandbox-key"
    webhook_url: str | None = None                 # account-wide activation webhook (rents use their own `url`)
    auto_sms_after: float | None = None            # real seconds after a purchase until a code arrives by itself
    dialect: str = "sms-activate"                  # sms-activate | herosms | grizzly | smshub | vaksms
    balance: Decimal = Decimal("100")
    cashback: Decimal = Decimal("0")
    currency: int = 840
    default_country: int = 0
    stock: int = 100                               # numbers per country/service at start
    catalogue: tuple[OfferPatch, ...] = ()         # per-offer prices and stock, applied over the defaults
    # Timing rules (simulated seconds).
    activation_lifetime: float = 1200.0
    early_cancel_seconds: float = 120.0
    refund_window: float = 1200.0
    rent_cancel_window: float = 1200.0
    rent_die_after: float = 86400.0                # a finished rent can be prolonged (re-ordered) for this long
    # Behaviour flags for protocol uncertainties.
    status_after_finish: str = "STATUS_CANCEL"     # getStatus after setStatus 6: one of STATUS_AFTER_FINISH
    numbers_status_style: str = "live"             # getNumbersStatus keys: live {"wa":"828"} | seed {"wa_0":828}
    max_active: int | None = None                  # concurrent activations before CHANNELS_LIMIT
    banned_until: str | None = None                # "YYYY-m-d H-i-s": purchases answer BANNED:<it>
    partner_verified: bool = True                  # buyPartnerProduct: False -> BAD_ACTION
    honour_order_id: bool = True                   # False: a repeated getNumberV2 orderId buys again
    # Webhooks.
    duplicate_webhooks: int = 1
    drop_webhooks: bool = False
    webhook_backoff: tuple[float, ...] = DEFAULT_WEBHOOK_BACKOFF
    webhook_attempts: int = 8
    webhook_timeout: float = 3.0
    # Fault injection on handler_api requests.
    fail_mode: str | None = None                   # None | "500" | "500_after" | "timeout" | "ERROR_SQL" | "429"
    fail_next: int | None = None                   # None = until cleared
    timeout_sleep: float = 20.0                    # seconds a "timeout" request sleeps (> client read timeout)
    retry_after: int | None = 1                    # Retry-After seconds of a "429" answer; None: no header
    seed: int | None = None                        # RNG seed for phones, codes and ids
    access_log: bool = False                       # werkzeug per-request log (api_key redacted) in server/cli
    extra: dict[str, object] = field(default_factory=dict)
