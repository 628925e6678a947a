"""Typed exceptions used inside the emulator.

Handlers raise these instead of building error bodies by hand, so that the one place that knows the dialect
(`sandbox.dialects`) decides how an error looks on the wire (plain token, JSON envelope or HeroSMS `title` JSON).
"""
from __future__ import annotations

from typing import Any, Literal

Envelope = Literal["plain", "json_error", "json_message"]


class SandboxError(Exception):
    """Base class of every error the sandbox raises on purpose."""


class ApiError(SandboxError):
    """An error answer of `handler_api.php`.

    `envelope` says how SMS-Activate itself sends it: `plain` (`NO_NUMBERS`, `WRONG_MAX_PRICE:0.25`),
    `json_error` (`{"status":"error","error":"NO_ACTIVATIONS"}`) or `json_message` (rent/partner API:
    `{"status":"error","message":"CANT_CANCEL"}`, optionally with `info`).
    """

    def __init__(self, code: str, argument: str | None = None, *, envelope: Envelope = "plain",
                 info: dict[str, Any] | None = None) -> None:
        self.code = code
        self.argument = argument
        self.envelope = envelope
        self.info = info
        super().__init__(self.token)

    @property
    def token(self) -> str:
        """The plain-text form, `CODE` or `CODE:argument`."""
        return self.code if self.argument is None else f"{self.code}:{self.argument}"


def rent_error(code: str, info: dict[str, Any] | None = None) -> ApiError:
    """A rent-API error in its `{"status":"error","message":…}` envelope."""
    return ApiError(code, envelope="json_message", info=info)


class InsufficientFunds(SandboxError):
    """The ledger cannot cover a charge; callers turn it into NO_BALANCE (or NO_BALANCE_FORWARD)."""


class OutOfStock(SandboxError):
    """No number left for a country/service; callers turn it into NO_NUMBERS."""


class ControlError(SandboxError):
    """A bad request to the control API; rendered as JSON `{"error": message}` with `status`."""

    def __init__(self, message: str, status: int = 400) -> None:
        self.message = message
        self.status = status
        super().__init__(message)
