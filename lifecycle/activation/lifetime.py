"""The provider's own deadlines of an activation (its end, its last free-cancel moment), on our clock.

The provider's dates carry no time zone and its clock is not ours (docs/handler-api.md, Data types and Timing rules),
so a stated moment is read relative to the purchase time stated beside it (``activationTime``): zone and clock
cancel out, and the span is added to the moment the purchase answer reached us. Without a purchase time, a date
with a zone is used as stated; a naive one, which could be hours off, is ignored. A span that is not positive is
nonsense and ignored too: then ACTIVATION_TIMEOUT alone applies, as for a provider that states nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from provider.models import Activation


@dataclass(frozen=True)
class ProviderTimes:
    """An activation's end and last free-cancel moment as unix times on our clock (None: not stated)."""

    end_at: float | None = None
    cancel_by: float | None = None


NO_TIMES = ProviderTimes()


def on_our_clock(moment: datetime | None, *, bought: datetime | None, received: float) -> float | None:
    """``moment`` (the provider's) as a unix time on our clock, given the purchase time the provider stated
    (``bought``) and when its answer arrived here (``received``)."""
    if moment is None:
        return None
    if bought is not None and (moment.tzinfo is None) == (bought.tzinfo is None):
        span = (moment - bought).total_seconds()
        return received + span if span > 0 else None
    if moment.tzinfo is not None:
        stated = moment.timestamp()
        return stated if stated > received else None
    return None


def provider_times(act: Activation, *, received: float) -> ProviderTimes:
    """The deadlines a purchase answer states (HeroSMS ``activationEndTime``, Grizzly ``activationEnd`` and
    ``activationCancel``)."""
    return ProviderTimes(end_at=on_our_clock(act.end_time, bought=act.activation_time, received=received),
                         cancel_by=on_our_clock(act.cancel_time, bought=act.activation_time, received=received))
