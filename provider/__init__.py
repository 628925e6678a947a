"""handler_api client for SMS-Activate-compatible providers.

``ProviderClient`` (one method per action, typed results in :mod:`provider.models`, typed errors in
:mod:`provider.errors`), dialect profiles in :mod:`provider.dialects`, pure parsing in :mod:`provider.parsing`,
and the project's one backoff type in :mod:`provider.backoff`. This package depends on nothing else of otpflow.
"""

from . import errors, models
from .backoff import Backoff, Jitter
from .client import PURCHASE_ACTIONS, READ_ONLY_ACTIONS, ProviderClient
from .dialects import (
    DIALECTS, OVERRIDABLE, PRICE_ACTIONS, BadOverride, Dialect, UnknownDialect, apply_overrides, dialect_names,
    get_dialect,
)
from .errors import BusinessError, ErrorKind, FatalError, ProviderError, TransientError, UnexpectedAnswer
from .models import (
    Activation, ActivationState, ActiveActivation, Balance, ParseCallState, RentState, StatusResult, StatusV2,
)
from .parsing import parse_response

__all__ = [
    "ProviderClient", "get_dialect", "Dialect", "DIALECTS", "UnknownDialect", "dialect_names", "parse_response",
    "OVERRIDABLE", "PRICE_ACTIONS", "BadOverride", "apply_overrides",
    "READ_ONLY_ACTIONS", "PURCHASE_ACTIONS", "errors", "models", "Backoff", "Jitter",
    "ErrorKind", "ProviderError", "TransientError", "BusinessError", "FatalError", "UnexpectedAnswer",
    "Activation", "ActivationState", "ActiveActivation", "Balance", "StatusResult", "StatusV2", "RentState",
    "ParseCallState",
]
