"""Turn webhook inbox entries into transitions (used by the ``otpflow.drain_inbox`` task).

Activation webhook -> ``receive_code(via=webhook)``; rent webhook -> ``receive_sms``; a webhook for an activation
or rent we do not know -> ``inbox.record_unknown`` (answered 200 long ago; kept for inspection) AND held for an
hour (:mod:`lifecycle.inbox.held`): it may be early, its purchase answer not yet stored; the purchase flow replays it
with :meth:`InboxConsumer.replay_held` right after storing the number. Repeats of the same SMS are dropped by the
code/fingerprint dedupe inside the transition, whatever the inbox's own dedupe let through.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Protocol, Sequence

from ..activation.store import ActivationStore, CodeArrival
from ..cas import CasStatus, Result
from ..keys import external
from ..outbox.events import Via
from ..rent.store import RentStore
from .fingerprint import WebhookKind
from .held import HeldWebhooks

log = logging.getLogger(__name__)

_CODE_RE = re.compile(r"(?<!\d)(\d{4,8})(?!\d)")


class InboxEntryLike(Protocol):
    @property
    def entry_id(self) -> str: ...
    @property
    def kind(self) -> WebhookKind: ...
    @property
    def payload(self) -> Mapping[str, Any]: ...


class InboxLike(Protocol):
    def record_unknown(self, kind: WebhookKind, payload: Mapping[str, Any], provider: str = "") -> Any: ...


@dataclass
class DrainReport:
    """What one batch did; ``coded`` lists orders that just got a code (to finish at once under AUTO_FINISH)."""

    processed: list[str] = field(default_factory=list)
    coded: list[str] = field(default_factory=list)
    duplicates: int = 0
    unknown: int = 0
    stale: int = 0
    invalid: int = 0
    held: int = 0


def extract_code(code: Any, text: Any) -> str | None:
    """The code as sent, else the first 4-8 digit run of the text (docs/handler-api.md, Webhooks: a code may be
    missing from the payload, so extract it yourself)."""
    if code not in (None, "") and str(code).strip():
        return str(code).strip()
    if isinstance(text, str):
        match = _CODE_RE.search(text)
        if match:
            return match.group(1)
    return None


def _str(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    return text or None


class InboxConsumer:
    """Applies inbox entries; acknowledging them is the caller's job (after this returns)."""

    def __init__(self, activations: ActivationStore, rents: RentStore, held: HeldWebhooks, inbox: InboxLike, *,
                 default_provider: str = "") -> None:
        self.activations = activations
        self.rents = rents
        self.held = held
        self.inbox = inbox
        #: whose an entry stored without a provider is (stored by a web process of a single-provider version)
        self.default_provider = default_provider

    def _provider(self, entry: InboxEntryLike) -> str:
        return getattr(entry, "provider", "") or self.default_provider

    def handle_batch(self, entries: Sequence[InboxEntryLike]) -> DrainReport:
        """Apply a batch: its activation ids looked up in one round trip, its codes applied in one more (each
        still its own compare-and-set, in the batch's order); rents, unknown and held webhooks one by one."""
        report = DrainReport()
        by_provider: dict[str, list[str]] = {}
        for e in entries:
            if e.kind == WebhookKind.ACTIVATION and (aid := _activation_id(e.payload)):
                by_provider.setdefault(self._provider(e), []).append(aid)
        index = {(provider, aid): order for provider, ids in by_provider.items()
                 for aid, order in self.activations.orders_for_activations(provider, ids).items()}
        arrivals: list[tuple[str, CodeArrival, Mapping[str, Any], str]] = []
        for entry in entries:
            provider = self._provider(entry)
            resolved = self._resolve(entry, provider, index, report)
            if resolved is not None:
                arrivals.append((*resolved, entry.payload, provider))
            report.processed.append(entry.entry_id)
        results = self.activations.receive_codes([(order_id, arrival) for order_id, arrival, _p, _n in arrivals])
        for (order_id, _arrival, payload, provider), result in zip(arrivals, results):
            self._account(order_id, result, payload, provider, report)
        return report

    def _handle(self, entry: InboxEntryLike, provider: str, index: Mapping[tuple[str, str], str | None],
                report: DrainReport) -> None:
        """One entry on its own (a held webhook's replay)."""
        resolved = self._resolve(entry, provider, index, report)
        if resolved is not None:
            order_id, arrival = resolved
            result = self.activations.receive_code(order_id, code=arrival.code, via=arrival.via, text=arrival.text,
                                                   activation_id=arrival.activation_id)
            self._account(order_id, result, entry.payload, provider, report)

    def _resolve(self, entry: InboxEntryLike, provider: str, index: Mapping[tuple[str, str], str | None],
                 report: DrainReport) -> tuple[str, CodeArrival] | None:
        """The order and code an activation entry brings; everything else (a rent's SMS, an unknown or early
        webhook, one without a code) is dealt with here and gives None."""
        payload = entry.payload
        if entry.kind == WebhookKind.RENT:
            self._handle_rent(payload, provider, report)
            return None
        if entry.kind != WebhookKind.ACTIVATION:
            report.invalid += 1
            log.warning("inbox entry %s has unknown kind %r", entry.entry_id, entry.kind)
            return None
        activation_id = _activation_id(payload)
        if not activation_id:
            report.unknown += 1
            self.inbox.record_unknown(WebhookKind.ACTIVATION, dict(payload), provider)
            return None
        order_id = index.get((provider, activation_id))
        if order_id is None:
            order_id = self.activations.order_for_activation(provider, activation_id)
        if not order_id:
            order_id = self._hold(WebhookKind.ACTIVATION, provider, activation_id, payload, report)
        if not order_id:
            return None
        text = _str(payload.get("text"))
        code = extract_code(payload.get("code"), text)
        if code is None:
            # A call without a code, or an SMS without digits: nothing to emit; the poll will reconcile.
            report.invalid += 1
            return None
        return order_id, CodeArrival(code, Via.WEBHOOK, text, activation_id)

    def _account(self, order_id: str, result: Result[Any], payload: Mapping[str, Any], provider: str,
                 report: DrainReport) -> None:
        """Count what applying a code did."""
        if result.ok:
            report.coded.append(order_id)
        elif result.status is CasStatus.DUP:
            report.duplicates += 1
        elif result.status is CasStatus.MISSING:
            report.unknown += 1
            self.inbox.record_unknown(WebhookKind.ACTIVATION, dict(payload), provider)
        else:
            report.stale += 1   # finished/cancelled already, or a replaced number's: never moves state back

    def _hold(self, kind: WebhookKind, provider: str, ident: str, payload: Mapping[str, Any],
              report: DrainReport) -> str | None:
        """Unknown id: record it for inspection and hold it for a replay; if the id got indexed meanwhile (the
        purchase answer was stored between our lookup and the hold), return its order to apply it now."""
        known = self.held.hold(kind, external(provider, ident), payload)
        if known:
            return known
        report.unknown += 1
        report.held += 1
        self.inbox.record_unknown(kind, dict(payload), provider)
        return None

    def replay_held(self, kind: WebhookKind | str, provider: str, ident: str) -> DrainReport:
        """Apply webhooks held for ``ident`` at ``provider`` (called right after its purchase answer is stored
        and indexed).

        Each goes through the normal path (``via: webhook``); the code/fingerprint dedupe makes a second replay
        (a crash before the held list was trimmed) harmless."""
        report = DrainReport()
        kind = WebhookKind(kind)
        ref = external(provider, ident)
        held = self.held.peek(kind, ref)
        if not held:
            return report
        for i, payload in enumerate(held):
            entry_id = f"held-{i}"
            self._handle(_Held(entry_id, kind, payload, provider), provider, {}, report)
            report.processed.append(entry_id)
        self.held.drop(kind, ref, len(held))
        log.info("replayed %d early %s webhook(s) for %s", len(held), kind.value, ref)
        return report

    def _handle_rent(self, payload: Mapping[str, Any], provider: str, report: DrainReport) -> None:
        rent_id = _str(payload.get("rentId") or payload.get("rent_id"))
        raw_sms = payload.get("sms")
        sms: Mapping[str, Any] = raw_sms if isinstance(raw_sms, Mapping) else {}
        if not rent_id:
            report.unknown += 1
            self.inbox.record_unknown(WebhookKind.RENT, dict(payload), provider)
            return
        order_id = self.rents.order_for_rent(provider, rent_id) or \
            self._hold(WebhookKind.RENT, provider, rent_id, payload, report)
        if not order_id:
            return
        result = self.rents.receive_sms(order_id, rent_id=rent_id, text=_str(sms.get("text")),
                                        phone_from=_str(sms.get("phoneFrom")), date=_str(sms.get("date")),
                                        via=Via.WEBHOOK)
        if result.status is CasStatus.DUP:
            report.duplicates += 1
        elif not result.ok:
            report.stale += 1


def _activation_id(payload: Mapping[str, Any]) -> str | None:
    return _str(payload.get("activationId") or payload.get("activation_id"))


@dataclass(frozen=True)
class _Held:
    entry_id: str
    kind: WebhookKind
    payload: Mapping[str, Any]
    provider: str


__all__ = ["InboxConsumer", "DrainReport", "extract_code"]
