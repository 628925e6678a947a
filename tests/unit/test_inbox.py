"""The webhook inbox (lifecycle/inbox.py), on fakeredis[lua] and on a real Redis (the Lua script runs on both)."""
from __future__ import annotations

import base64
import json
import socket
import time
from dataclasses import replace
from typing import Iterator

import pytest
import redis

from config.redis_client import make_redis
from config.settings import Settings
from lifecycle.inbox import Inbox, InboxUnavailable, activation_fingerprint, fingerprint, rent_fingerprint
from lifecycle.inbox.stream import ENTRY_MAX_BYTES, InboxConfig
from tests.unit.lifecycle.conftest import make_inbox

SETTINGS = Settings(webhook_token="t" * 24, dead_letter_maxlen=10, webhook_dedupe_ttl=3600)

ACT = {"activationId": "635468024", "service": "go", "text": "code 1234", "code": "1234", "country": "0",
       "receivedAt": "2022-06-01 17:30:57"}


@pytest.fixture(params=["fakeredis", "real-redis"])
def client(request: pytest.FixtureRequest) -> Iterator[redis.Redis]:
    yield request.getfixturevalue("fake_redis" if request.param == "fakeredis" else "real_redis")


@pytest.fixture
def inbox(client: redis.Redis) -> Inbox:
    return make_inbox(client, SETTINGS)


def _act(**changes: object) -> dict[str, object]:
    return {**ACT, **changes}


def _append(inbox: Inbox, payload: dict[str, object]):
    return inbox.append("activation", payload, activation_fingerprint(payload))


# ------------------------------------------------------------------ append


def test_append_stores_entry_and_asks_for_a_drain(inbox: Inbox, client: redis.Redis) -> None:
    result = _append(inbox, ACT)
    assert result.duplicate is False and result.schedule_drain is True and result.entry_id
    rows = client.xrange(inbox.stream_key)
    assert [r[0] for r in rows] == [result.entry_id]
    fields = rows[0][1]
    assert fields["kind"] == "activation"
    assert json.loads(fields["payload"]) == ACT
    assert fields["fp"] == activation_fingerprint(ACT)


def test_duplicate_fingerprint_is_dropped(inbox: Inbox, client: redis.Redis) -> None:
    first = _append(inbox, ACT)
    second = _append(inbox, dict(ACT))
    assert not first.duplicate
    assert second.duplicate is True and second.entry_id is None and second.schedule_drain is False
    assert client.xlen(inbox.stream_key) == 1


def test_same_activation_new_code_is_not_a_duplicate(inbox: Inbox, client: redis.Redis) -> None:
    _append(inbox, ACT)
    assert not _append(inbox, _act(code="5678", text="code 5678")).duplicate
    assert client.xlen(inbox.stream_key) == 2


def test_drain_flag_is_set_once_per_drain_cycle(inbox: Inbox, client: redis.Redis) -> None:
    flags = [_append(inbox, _act(code=str(i))).schedule_drain for i in range(5)]
    assert flags == [True, False, False, False, False]
    inbox.begin_drain()
    assert client.exists(inbox.drain_flag_key) == 0
    assert _append(inbox, _act(code="after")).schedule_drain is True
    assert _append(inbox, _act(code="after2")).schedule_drain is False


def test_ttls_of_drain_flag_and_dedupe_key(inbox: Inbox, client: redis.Redis) -> None:
    _append(inbox, ACT)
    assert 0 < client.ttl(inbox.drain_flag_key) <= 15
    seen = inbox.keys.inbox_seen(activation_fingerprint(ACT))
    assert 3590 < client.ttl(seen) <= 3600


def test_drain_flag_expires_so_a_lost_publish_is_retried(client: redis.Redis) -> None:
    inbox = make_inbox(client, SETTINGS, drain_flag_ttl=1)
    assert _append(inbox, ACT).schedule_drain
    assert not _append(inbox, _act(code="2")).schedule_drain
    time.sleep(1.2)
    assert _append(inbox, _act(code="3")).schedule_drain


def test_dedupe_expires_after_its_ttl(client: redis.Redis) -> None:
    inbox = make_inbox(client, replace(SETTINGS, webhook_dedupe_ttl=1))
    assert not _append(inbox, ACT).duplicate
    assert _append(inbox, ACT).duplicate
    time.sleep(1.2)
    assert not _append(inbox, ACT).duplicate


def test_failed_xadd_leaves_no_dedupe_marker(inbox: Inbox, client: redis.Redis) -> None:
    """The entry is written before the marker: a failed write must not turn the provider's retry into a 'duplicate'."""
    client.set(inbox.stream_key, "not a stream")
    with pytest.raises(InboxUnavailable):
        _append(inbox, ACT)
    assert client.exists(inbox.keys.inbox_seen(activation_fingerprint(ACT))) == 0
    assert client.exists(inbox.drain_flag_key) == 0
    client.delete(inbox.stream_key)
    assert not _append(inbox, ACT).duplicate


def test_append_rejects_unknown_kind_and_empty_fingerprint(inbox: Inbox) -> None:
    with pytest.raises(ValueError):
        inbox.append("call", ACT, "x")
    with pytest.raises(ValueError):
        inbox.append("activation", ACT, "")


def test_redis_down_raises_inbox_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = replace(SETTINGS, redis_url=f"redis://127.0.0.1:{port}/0")
    inbox = make_inbox(make_redis(settings), settings)
    with pytest.raises(InboxUnavailable) as info:
        _append(inbox, ACT)
    assert isinstance(info.value, redis.RedisError)
    with pytest.raises(InboxUnavailable):
        inbox.dead_letter("x", "y")
    with pytest.raises(InboxUnavailable):
        inbox.read_batch("c")


# ------------------------------------------------------------------ dead letters and unknown webhooks


def test_dead_letter_keeps_body_reason_and_meta(inbox: Inbox, client: redis.Redis) -> None:
    inbox.dead_letter("body is not valid JSON", "{nope", {"remote": "1.2.3.4"})
    (entry_id, fields), = client.xrange(inbox.dead_letter_key)
    assert fields["reason"] == "body is not valid JSON"
    assert fields["body"] == "{nope" and fields["truncated"] == "0"
    assert json.loads(fields["meta"]) == {"remote": "1.2.3.4"}
    assert inbox.dead_letter_count() == 1


def test_dead_letter_body_is_bounded_in_utf8_bytes(inbox: Inbox, client: redis.Redis) -> None:
    """A 64 KiB body of two-byte characters once became a 48 KiB dead letter: the cap is in bytes now."""
    inbox.dead_letter("too long", "é" * 32_768)
    (_id, fields), = client.xrange(inbox.dead_letter_key)
    assert len(fields["body"].encode()) <= ENTRY_MAX_BYTES and fields["body"] == "é" * (ENTRY_MAX_BYTES // 2)
    assert fields["truncated"] == "1" and fields["bytes"] == str(65_536)


def test_bytes_that_are_not_utf8_keep_their_original_prefix(inbox: Inbox, client: redis.Redis) -> None:
    raw = b'{"activationId": "\xff\xfe"}'
    inbox.dead_letter("bad", raw)
    (_id, fields), = client.xrange(inbox.dead_letter_key)
    assert base64.b64decode(fields["raw_b64"]) == raw and fields["body"].startswith('{"activationId": "\ufffd')


def test_unknown_payloads_are_bounded_in_bytes(inbox: Inbox, client: redis.Redis) -> None:
    inbox.record_unknown("activation", {"activationId": "1", "text": "x" * 60_000})
    inbox.record_unknown("activation", {"activationId": "2", "text": "short"})
    (_a, big), (_b, small) = client.xrange(inbox.unknown_key)
    assert len(big["payload"].encode()) == ENTRY_MAX_BYTES and big["truncated"] == "1" and int(big["bytes"]) > 60_000
    assert json.loads(small["payload"])["text"] == "short" and "truncated" not in small


def test_inspection_streams_are_bounded_by_bytes_too() -> None:
    """The count limit applies, or fewer entries when the byte budget says so (sized for a 25 MB plan)."""
    assert InboxConfig(dead_letter_maxlen=10).inspection_maxlen == 10
    worst = InboxConfig(dead_letter_maxlen=10_000)
    assert worst.inspection_maxlen * (worst.entry_max_bytes + 1024) <= worst.stream_max_bytes <= 2 * 1024 * 1024


def test_dead_letter_and_unknown_streams_are_trimmed(inbox: Inbox, client: redis.Redis) -> None:
    for i in range(1000):
        inbox.dead_letter("r", f"body {i}")
        inbox.record_unknown("activation", {"activationId": str(i)})
    assert client.xlen(inbox.dead_letter_key) == inbox.config.inspection_maxlen
    assert client.xlen(inbox.unknown_key) == inbox.config.inspection_maxlen
    last = client.xrevrange(inbox.unknown_key, count=1)[0][1]
    assert last["kind"] == "activation" and json.loads(last["payload"]) == {"activationId": "999"}


# ------------------------------------------------------------------ consumer side


def test_read_batch_ack_and_pending_count(inbox: Inbox, client: redis.Redis) -> None:
    ids = [_append(inbox, _act(code=str(i))).entry_id for i in range(5)]
    assert inbox.pending_count() == 5
    first = inbox.read_batch("worker-1", count=3)
    assert [e.entry_id for e in first] == ids[:3]
    assert first[0].kind == "activation" and first[0].payload == _act(code="0")
    assert first[0].fingerprint == activation_fingerprint(_act(code="0"))
    rest = inbox.read_batch("worker-1", count=10)
    assert [e.entry_id for e in rest] == ids[3:]
    assert inbox.read_batch("worker-1") == []
    assert inbox.ack([e.entry_id for e in first]) == 3
    assert inbox.pending_count() == 2
    assert client.xpending(inbox.stream_key, inbox.group)["pending"] == 2
    assert inbox.ack([e.entry_id for e in rest]) == 2
    assert inbox.pending_count() == 0 and client.xlen(inbox.stream_key) == 0
    assert inbox.ack([]) == 0


def test_group_creation_is_idempotent_and_survives_stream_deletion(inbox: Inbox, client: redis.Redis) -> None:
    assert inbox.read_batch("c") == []  # MKSTREAM on an empty inbox
    inbox.ensure_group()
    inbox.ensure_group()
    client.delete(inbox.stream_key)  # group gone with it
    _append(inbox, ACT)
    assert [e.payload for e in inbox.read_batch("c")] == [ACT]


def test_claim_stale_takes_over_a_dead_consumers_entries(inbox: Inbox, client: redis.Redis) -> None:
    ids = [_append(inbox, _act(code=str(i))).entry_id for i in range(3)]
    assert len(inbox.read_batch("dead-worker")) == 3
    assert inbox.claim_stale("rescuer", min_idle_ms=60_000) == []  # not idle long enough
    time.sleep(0.02)
    claimed = inbox.claim_stale("rescuer", min_idle_ms=10, count=2)
    assert [e.entry_id for e in claimed] == ids[:2]
    claimed += inbox.claim_stale("rescuer", min_idle_ms=10)
    assert sorted(e.entry_id for e in claimed) == sorted(ids)
    consumers = {c["name"]: c["pending"] for c in client.xinfo_consumers(inbox.stream_key, inbox.group)}
    assert consumers.get("rescuer") == 3 and consumers.get("dead-worker", 0) == 0
    inbox.ack(ids)
    assert inbox.pending_count() == 0


def test_claim_stale_skips_entries_deleted_while_pending(inbox: Inbox, client: redis.Redis) -> None:
    ids = [_append(inbox, _act(code=str(i))).entry_id for i in range(2)]
    inbox.read_batch("dead-worker")
    client.xdel(inbox.stream_key, ids[0])
    time.sleep(0.02)
    assert [e.entry_id for e in inbox.claim_stale("rescuer", min_idle_ms=10)] == [ids[1]]
    # the deleted entry does not linger in the pending list (Redis 6.2 claims it as a nil row without its id)
    pending = client.xpending_range(inbox.stream_key, inbox.group, min="-", max="+", count=10)
    assert [row["message_id"] for row in pending] == [ids[1]]


def test_undecodable_entry_goes_to_dead_letters_and_is_acked(inbox: Inbox, client: redis.Redis) -> None:
    inbox.ensure_group()
    bad = client.xadd(inbox.stream_key, {"kind": "activation", "payload": "{not json"})
    good = _append(inbox, ACT).entry_id
    entries = inbox.read_batch("c")
    assert [e.entry_id for e in entries] == [good]
    assert inbox.dead_letter_count() == 1
    assert json.loads(client.xrange(inbox.dead_letter_key)[0][1]["meta"])["entry_id"] == bad
    assert inbox.pending_count() == 1  # only the good one remains


# ------------------------------------------------------------------ fingerprints


def test_activation_fingerprint_normalises_ids_and_ignores_key_order() -> None:
    as_numbers = {"receivedAt": "2022-06-01 17:30:57", "code": "1234", "text": "code 1234", "activationId": 635468024}
    assert activation_fingerprint(as_numbers) == activation_fingerprint(ACT)
    assert activation_fingerprint(_act(code="1235")) != activation_fingerprint(ACT)
    assert activation_fingerprint(_act(receivedAt="2022-06-01 17:30:58")) != activation_fingerprint(ACT)
    assert activation_fingerprint(_act(activationId="1")) != activation_fingerprint(ACT)
    assert activation_fingerprint(_act(service="other", country="7")) == activation_fingerprint(ACT)


def test_herosms_id_is_part_of_the_activation_fingerprint() -> None:
    base = _act(id="sms-1")
    assert activation_fingerprint(base) != activation_fingerprint(_act(id="sms-2"))
    assert activation_fingerprint(base) == activation_fingerprint({**base, "event": "sms-incoming"})


def test_null_and_missing_text_fingerprint_alike_and_no_separator_collisions() -> None:
    assert activation_fingerprint({"activationId": "1", "code": None}) == activation_fingerprint({"activationId": "1"})
    assert activation_fingerprint({"activationId": "1", "code": "2|3"}) != \
        activation_fingerprint({"activationId": "1|2", "code": "3"})


def test_rent_fingerprint() -> None:
    rent = {"rentId": "26251422", "sms": {"phoneFrom": "SPORTMASTER", "text": "2792", "date": "2025-06-17 16:01:10"}}
    assert rent_fingerprint(rent) == rent_fingerprint({**rent, "rentId": 26251422})
    assert rent_fingerprint(rent) != rent_fingerprint({**rent, "sms": {**rent["sms"], "text": "2793"}})
    assert rent_fingerprint(rent) != rent_fingerprint({**rent, "sms": {**rent["sms"], "phoneFrom": "X"}})
    assert fingerprint("rent", rent) == rent_fingerprint(rent)
    assert fingerprint("activation", ACT) != fingerprint("rent", {"rentId": ACT["activationId"]})
    with pytest.raises(ValueError):
        fingerprint("call", {})


def test_append_reloads_the_script_after_a_script_flush(inbox: Inbox, client: redis.Redis) -> None:
    """A Redis restart or failover forgets scripts: the append must load it again, not fail with NOSCRIPT."""
    _append(inbox, ACT)
    client.script_flush()
    assert not _append(inbox, _act(code="9")).duplicate
    assert client.xlen(inbox.stream_key) == 2
