"""The account balance and its ledger: every charge and refund is an entry, so tests can check arithmetic."""
from __future__ import annotations

from dataclasses import dataclass, asdict
from decimal import Decimal
from typing import Any

from .errors import InsufficientFunds


@dataclass(frozen=True)
class Entry:
    """One movement of money."""

    at: float
    kind: str          # charge | refund | set
    amount: Decimal    # signed: negative for charges
    ref: str           # what it was for, e.g. "activation:3936040355"
    balance_after: Decimal
    cashback_after: Decimal

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("amount", "balance_after", "cashback_after"):
            d[k] = str(d[k])
        return d


class Ledger:
    """Balance plus cashback; charges may draw on cashback first (the sticky `useCashBack`)."""

    def __init__(self, balance: Decimal, cashback: Decimal = Decimal("0")) -> None:
        self.balance = Decimal(balance)
        self.cashback = Decimal(cashback)
        self.use_cashback = False
        self.entries: list[Entry] = []

    def _record(self, at: float, kind: str, amount: Decimal, ref: str) -> None:
        self.entries.append(Entry(at, kind, amount, ref, self.balance, self.cashback))
        if len(self.entries) > 10000:
            del self.entries[:1000]

    def charge(self, amount: Decimal, ref: str, at: float) -> Decimal:
        """Take `amount`; returns the part paid from cashback (to refund it to the same pot)."""
        from_cashback = min(self.cashback, amount) if self.use_cashback else Decimal("0")
        if self.balance + from_cashback < amount:
            raise InsufficientFunds(f"{amount} > {self.balance}")
        self.cashback -= from_cashback
        self.balance -= amount - from_cashback
        self._record(at, "charge", -amount, ref)
        return from_cashback

    def refund(self, amount: Decimal, ref: str, at: float, to_cashback: Decimal = Decimal("0")) -> None:
        self.cashback += to_cashback
        self.balance += amount - to_cashback
        self._record(at, "refund", amount, ref)

    def can_pay(self, amount: Decimal) -> bool:
        return self.balance + (self.cashback if self.use_cashback else Decimal("0")) >= amount

    def set_balance(self, amount: Decimal, at: float) -> None:
        self.balance = Decimal(amount)
        self._record(at, "set", Decimal(amount), "control")
