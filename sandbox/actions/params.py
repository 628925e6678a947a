"""Request context for action handlers: merged query and form parameters, with their aliases.

The aliases are those of docs/handler-api.md, Transport and answers.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Callable, Mapping

from ..config import SandboxConfig
from ..dialects import Dialect, Reply
from ..engine import Engine
from ..errors import ApiError


@dataclass
class Ctx:
    """One handler_api request: the engine (lock held) and its merged query/form parameters."""

    engine: Engine
    params: Mapping[str, str]

    @property
    def dialect(self) -> Dialect:
        return self.engine.dialect

    @property
    def settings(self) -> SandboxConfig:
        return self.engine.settings

    def get(self, *names: str) -> str | None:
        """First non-blank value among `names` (aliases such as `id`|`activationId`)."""
        for name in names:
            value = self.params.get(name)
            if value is not None and str(value).strip() != "":
                return str(value).strip()
        return None

    def flag(self, *names: str) -> bool:
        value = self.get(*names)
        return value is not None and value.lower() in ("true", "1", "yes")

    def int_or(self, default: int, *names: str) -> int:
        value = self.get(*names)
        try:
            return int(value) if value is not None else default
        except ValueError:
            return default

    def country(self, error: str = "BAD_COUNTRY", default: int | None = None) -> int:
        """The `country` parameter (account default when absent); unknown → `error` (the code is uncertain)."""
        raw = self.get("country")
        if raw is None:
            return self.settings.default_country if default is None else default
        try:
            country = int(raw)
        except ValueError:
            raise ApiError(error) from None
        if country not in self.engine.catalogue.countries:
            raise ApiError(error)
        return country

    def decimal(self, name: str) -> Decimal | None:
        raw = self.get(name)
        if raw is None:
            return None
        try:
            value = Decimal(raw.replace(",", "."))
        except ArithmeticError:
            return Decimal("-1")
        return value if value.is_finite() else Decimal("-1")


Handler = Callable[[Ctx], Reply]
