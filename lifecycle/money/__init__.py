"""Money: spend limits that hold under concurrency (reservations), and the accounting of what was charged and
refunded, as the providers reported it. Every amount is kept in millionths (integers), never floats."""
from .ledger import Ledger, SpendLimits, from_micros, micros, parse_amount

__all__ = ["Ledger", "SpendLimits", "from_micros", "micros", "parse_amount"]
