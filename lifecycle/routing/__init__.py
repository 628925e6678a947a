"""Which provider (and country) an order's purchase goes to: routing as pure decisions over data kept in Redis
(each provider's health, shared by every worker as a circuit breaker, and cached prices)."""
from .choose import Candidate, Quote, Routing, candidates

__all__ = ["Candidate", "Quote", "Routing", "candidates"]
