"""``otpflow dead-letters list|show|replay|purge``: the webhooks the ingress could not store, and their second chance.

A provider that changes its payload must not silently pile SMS into the dead-letter stream: ``list`` shows what is
there (``/dashboard`` and ``/metrics`` count it), ``show`` one entry whole, and ``replay`` parses a kept body again
with today's schemas (``webhook.schemas``) and appends it to the inbox as the ingress would, with the provider the
entry names (else the first configured one), then deletes the dead letter. A body that still does not validate is
kept, and the reason said. Entries kept only in part (``truncated``) or already stored (the original bytes of a
webhook stored with replaced characters) are not replayed.
"""
from __future__ import annotations

import base64
import json
import sys
from dataclasses import dataclass
from typing import Any, Mapping

from config import domain
from config.redis_client import make_redis
from config.settings import Settings
from flows.names import TaskName
from otpflow.commands import ExitCode, UserError, _print_json, _publisher, _settings, table
from webhook.orders_api import iso_time


@dataclass(frozen=True)
class DeadLetter:
    """One entry of the dead-letter stream (``lifecycle/inbox/stream.py`` writes them)."""

    entry_id: str
    fields: Mapping[str, str]

    @property
    def meta(self) -> dict[str, Any]:
        try:
            meta = json.loads(self.fields.get("meta") or "{}")
        except ValueError:
            return {}
        return meta if isinstance(meta, dict) else {}

    @property
    def at(self) -> str | None:
        try:
            return iso_time(float(self.fields.get("at") or ""))
        except ValueError:
            return None

    def raw(self) -> bytes | None:
        """The body as received, when it was kept whole (None: only its first bytes were kept)."""
        if self.fields.get("truncated") == "1":
            return None
        if self.fields.get("raw_b64"):
            original = base64.b64decode(self.fields["raw_b64"])
            return original if str(len(original)) == self.fields.get("bytes") else None
        return (self.fields.get("body") or "").encode("utf-8")

    def row(self) -> dict[str, Any]:
        return {"id": self.entry_id, "at": self.at, "reason": self.fields.get("reason", ""),
                "bytes": self.fields.get("bytes"), "provider": self.meta.get("provider"),
                "truncated": self.fields.get("truncated") == "1", "stored": bool(self.meta.get("stored"))}


def _entries(client: Any, key: str, *, count: int, ids: list[str] | None = None) -> list[DeadLetter]:
    if ids is None:
        return [DeadLetter(str(i), f) for i, f in client.xrevrange(key, count=count)]
    out = []
    for entry_id in ids:
        try:
            found = client.xrange(key, min=entry_id, max=entry_id, count=1)
        except Exception as exc:  # redis.ResponseError: not a stream id
            raise UserError(f"{entry_id!r} is not a dead-letter id (like 1733097600000-0): {exc}") from None
        if not found:
            raise UserError(f"no dead letter {entry_id} (see `otpflow dead-letters list`)", ExitCode.FAILED)
        out.append(DeadLetter(str(found[0][0]), found[0][1]))
    return out


def run(action: str, ids: list[str], *, limit: int, replay_all: bool, yes: bool, as_json: bool) -> int:
    settings = _settings()
    client = make_redis(settings)
    key = domain.keys(settings).dead_letters
    if action == "list":
        rows = [e.row() for e in _entries(client, key, count=limit)]
        if as_json:
            print(json.dumps(rows, ensure_ascii=False))
        else:
            print(table(("id", "at", "reason", "bytes", "provider", "note"),
                        [[r["id"], r["at"], r["reason"][:70], r["bytes"], r["provider"],
                          "stored" if r["stored"] else "truncated" if r["truncated"] else ""] for r in rows]))
            print(f"{client.xlen(key)} dead letters", file=sys.stderr)
        return ExitCode.OK
    if action == "show":
        if len(ids) != 1:
            raise UserError("show takes one dead-letter id")
        entry = _entries(client, key, count=1, ids=ids)[0]
        _print_json(entry.row() | {"meta": entry.meta, "body": entry.fields.get("body", ""),
                                   "raw_b64": entry.fields.get("raw_b64")})
        return ExitCode.OK
    if action == "purge":
        if not yes:
            raise UserError("purge deletes every dead letter: add --yes to mean it")
        count = client.xlen(key)
        client.delete(key)
        print(f"otpflow dead-letters: {count} deleted", file=sys.stderr)
        return ExitCode.OK
    if action == "replay":
        if replay_all == bool(ids):
            raise UserError("replay takes dead-letter ids, or --all")
        entries = _entries(client, key, count=10_000) if replay_all else _entries(client, key, count=1, ids=ids)
        return replay(settings, client, entries)
    raise UserError(f"unknown action {action!r}")


def replay(settings: Settings, client: Any, entries: list[DeadLetter]) -> int:
    """Parse each kept body again and append it to the inbox; report each on one line. Exit 1 when any was kept."""
    from lifecycle.inbox import Inbox
    from webhook.schemas import MalformedWebhook, parse_webhook

    inbox = Inbox(client, domain.keys(settings), domain.inbox_config(settings))
    providers = [p.name for p in settings.provider_configs]
    kept, drain = 0, False
    for entry in entries:
        raw = entry.raw()
        if entry.meta.get("stored"):
            print(f"{entry.entry_id}: kept: this webhook was stored already (these are its original bytes)")
            kept += 1
            continue
        if raw is None:
            print(f"{entry.entry_id}: kept: only the first bytes of this body were kept, it cannot be replayed")
            kept += 1
            continue
        try:
            parsed = parse_webhook(raw)
        except MalformedWebhook as exc:
            print(f"{entry.entry_id}: kept: still not a webhook otpflow accepts: {exc.reason}")
            kept += 1
            continue
        named = str(entry.meta.get("provider") or "")
        provider = named if named in providers else providers[0]
        result = inbox.append(parsed.kind, parsed.payload, parsed.fingerprint, provider=provider)
        client.xdel(inbox.dead_letter_key, entry.entry_id)
        drain = drain or result.schedule_drain
        said = "already delivered (a repeat of a stored webhook)" if result.duplicate else \
            f"replayed as a {parsed.kind} webhook of {provider} (inbox entry {result.entry_id})"
        print(f"{entry.entry_id}: {said}")
    if drain:
        try:
            _publisher(settings).send_task(TaskName.DRAIN_INBOX.value)
        except Exception as exc:  # the beat's sweep drains the inbox too
            print(f"otpflow dead-letters: drain not published ({type(exc).__name__}); the sweeper drains the "
                  f"inbox within SWEEP_INTERVAL", file=sys.stderr)
    return ExitCode.FAILED if kept else ExitCode.OK
