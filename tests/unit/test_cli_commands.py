"""The operator subcommands of ``otpflow`` on fakeredis: orders, status and commands of rents, events as a table and
through a consumer group, dead letters (list, show, replay, purge) and ``order --wait``'s progress."""
from __future__ import annotations

import json
from typing import Any, Iterator

import fakeredis
import pytest

from config import domain
from config.settings import Settings
from lifecycle.activation import OrderRequest
from lifecycle.inbox import Inbox
from lifecycle.outbox.events import EventType, make_event
from lifecycle.rent import RentRequest
from otpflow import commands
from otpflow.commands import ExitCode, wait_for_order

from .test_cli_exit_codes import Cli, cli, closed_port

__all__ = ["cli", "closed_port"]  # the fixtures, shared with test_cli_exit_codes

WEBHOOK_BODY = b'{"activationId": "123", "service": "tg", "text": "code 4242", "code": "4242"}'


class Publisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def send_task(self, name: str, kwargs: dict[str, Any] | None = None, **_: Any) -> None:
        self.sent.append((name, dict(kwargs or {})))


@pytest.fixture
def redis(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Iterator[fakeredis.FakeRedis]:
    client = fakeredis.FakeRedis(decode_responses=True)
    cli.env(REDIS_URL="redis://127.0.0.1:6379/0")
    for module in ("otpflow.commands", "otpflow.dead_letters"):
        monkeypatch.setattr(f"{module}.make_redis", lambda *a, **k: client)
    yield client


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> Publisher:
    publisher = Publisher()
    monkeypatch.setattr(commands, "_publisher", lambda settings: publisher)
    monkeypatch.setattr("otpflow.dead_letters._publisher", lambda settings: publisher)
    return publisher


SETTINGS = Settings(provider_api_key="k-0123456789")


def emit(client: Any, type_: EventType, order_id: str, at: float = 1_750_000_000.0, **fields: Any) -> None:
    spec = make_event(type_, order_id, at, **fields)
    client.xadd("otpflow:events", {"type": spec.type.value, "data": spec.to_json()})


def test_orders_lists_newest_first_with_iso_times(cli: Cli, redis: Any) -> None:
    service = domain.order_service(SETTINGS, redis)
    for i in range(3):
        service.submit(OrderRequest("tg", country=0, order_id=f"o-{i}"))
    service.store.fail("o-1", reason="no_balance")
    ran = cli("orders")
    lines = ran.out.splitlines()
    assert ran.code == 0 and lines[0].split()[:3] == ["placed", "order", "state"]
    assert [line.split()[1] for line in lines[1:]] == ["o-2", "o-1", "o-0"] and "Z" in lines[1].split()[0]
    failed = cli("orders", "--state", "failed", "--json")
    rows = [json.loads(line) for line in failed.out.splitlines()]
    assert [r["order_id"] for r in rows] == ["o-1"] and rows[0]["reason"] == "no_balance"


def test_status_and_commands_of_a_rent(cli: Cli, redis: Any, published: Publisher) -> None:
    domain.rent_service(SETTINGS, redis).submit(RentRequest("full", country=0, order_id="r-1"))
    ran = cli("status", "r-1")
    body = json.loads(ran.out)
    assert ran.code == 0 and body["kind"] == "rent" and body["state"] == "pending"
    assert body["created_at"].endswith("Z") and body["history"][0]["at"].endswith("Z")
    refused = cli("command", "r-1", "finish")  # a pending rent cannot be finished yet
    assert refused.code == ExitCode.FAILED and "not allowed now" in refused.err and not published.sent
    assert cli("command", "r-1", "retry").code == ExitCode.USAGE  # not a rent command
    assert "prolong needs --hours" in cli("command", "r-1", "prolong").err
    unknown = cli("command", "nobody", "prolong")
    assert unknown.code == ExitCode.FAILED and "rent command" in unknown.err


def test_status_of_an_order_has_iso_history(cli: Cli, redis: Any) -> None:
    domain.order_service(SETTINGS, redis).submit(OrderRequest("tg", order_id="o-1"))
    body = json.loads(cli("status", "o-1").out)
    assert body["state"] == "pending" and body["history"][0]["at"].endswith("Z")
    assert cli("status", "nobody").code == ExitCode.FAILED


def test_events_as_a_table(cli: Cli, redis: Any) -> None:
    emit(redis, EventType.NUMBER_ASSIGNED, "o-1", phone="79990001122", provider="cheap")
    emit(redis, EventType.CODE_RECEIVED, "o-1", code="4242", via="webhook")
    ran = cli("events", "--table")
    lines = ran.out.splitlines()
    assert lines[0].split() == ["at", "type", "order", "detail"]
    assert lines[1].split()[1:3] == ["number.assigned", "o-1"] and "phone=79990001122" in lines[1]
    assert "code=4242 via=webhook" in lines[2]


def test_events_through_a_consumer_group_are_acknowledged(cli: Cli, redis: Any) -> None:
    emit(redis, EventType.NUMBER_ASSIGNED, "o-1")
    emit(redis, EventType.CODE_RECEIVED, "o-1", code="1", via="poll")
    first = cli("events", "--group", "ops", "--consumer", "me")
    assert [json.loads(line)["type"] for line in first.out.splitlines()] == ["number.assigned", "code.received"]
    assert cli("events", "--group", "ops", "--consumer", "me").out == ""  # acknowledged: not again
    emit(redis, EventType.ORDER_COMPLETED, "o-1")
    again = cli("events", "--group", "ops", "--consumer", "me")
    assert [json.loads(line)["type"] for line in again.out.splitlines()] == ["order.completed"]
    assert redis.xpending("otpflow:events", "ops")["pending"] == 0
    # a consumer that died before acknowledging gets its entries again
    redis.xgroup_create("otpflow:events", "ops2", id="0")
    redis.xreadgroup("ops2", "me", {"otpflow:events": ">"}, count=1)
    rerun = cli("events", "--group", "ops2", "--consumer", "me")
    assert len(rerun.out.splitlines()) == 3


def dead(redis: Any, body: bytes, reason: str = "invalid activation webhook", **meta: Any) -> str:
    inbox = Inbox(redis, domain.keys(SETTINGS), domain.inbox_config(SETTINGS))
    return inbox.dead_letter(reason, body, meta)


def test_dead_letters_list_and_show(cli: Cli, redis: Any) -> None:
    first = dead(redis, b"not json", "body is not valid JSON")
    dead(redis, WEBHOOK_BODY, provider="sms-activate")
    listed = cli("dead-letters", "list")
    lines = listed.out.splitlines()
    assert listed.code == 0 and len(lines) == 3 and "2 dead letters" in listed.err
    shown = json.loads(cli("dead-letters", "show", first).out)
    assert shown["body"] == "not json" and shown["reason"] == "body is not valid JSON" and shown["at"].endswith("Z")
    missing = cli("dead-letters", "show", "1-0")
    assert missing.code == ExitCode.FAILED and "no dead letter 1-0" in missing.err


def test_replay_appends_what_validates_now_and_keeps_the_rest(cli: Cli, redis: Any, published: Publisher) -> None:
    good = dead(redis, WEBHOOK_BODY, provider="sms-activate")
    bad = dead(redis, b'{"nothing": 1}', "unrecognised webhook")
    stored = dead(redis, WEBHOOK_BODY, "stored with unencodable characters replaced by U+FFFD", stored=True)
    ran = cli("dead-letters", "replay", good, bad, stored)
    assert ran.code == ExitCode.FAILED  # two kept
    said = dict(line.split(": ", 1) for line in ran.out.splitlines())
    assert said[good].startswith("replayed as a activation webhook of sms-activate")
    assert said[bad].startswith("kept: still not a webhook") and said[stored].startswith("kept: this webhook was")
    entries = redis.xrange("otpflow:inbox")
    assert len(entries) == 1 and entries[0][1]["prov"] == "sms-activate"
    assert json.loads(entries[0][1]["payload"])["code"] == "4242"
    assert {i for i, _ in redis.xrange("otpflow:inbox:dead")} == {bad, stored}
    assert published.sent == [("otpflow.drain_inbox", {})]
    again = dead(redis, WEBHOOK_BODY, provider="sms-activate")
    repeat = cli("dead-letters", "replay", again)
    assert repeat.code == 0 and "already delivered" in repeat.out  # the same webhook: the inbox dedupes it


def test_replay_all_and_purge(cli: Cli, redis: Any, published: Publisher) -> None:
    dead(redis, WEBHOOK_BODY)
    dead(redis, WEBHOOK_BODY.replace(b"4242", b"5353"))
    assert cli("dead-letters", "replay", "--all").code == 0 and redis.xlen("otpflow:inbox") == 2
    dead(redis, b"junk")
    assert cli("dead-letters", "purge", "--yes").code == 0 and redis.xlen("otpflow:inbox:dead") == 0


def test_a_truncated_dead_letter_is_not_replayed(cli: Cli, redis: Any) -> None:
    entry = dead(redis, b'{"activationId": "1", "text": "' + b"x" * 5000 + b'"}')
    ran = cli("dead-letters", "replay", entry)
    assert ran.code == ExitCode.FAILED and "only the first bytes" in ran.out


def seed_order(redis: Any) -> None:
    emit(redis, EventType.NUMBER_ASSIGNED, "o-1", phone="79990001122", provider="cheap", cost="0.2")
    emit(redis, EventType.NUMBER_ASSIGNED, "other", phone="1", provider="cheap")
    emit(redis, EventType.CODE_RECEIVED, "o-1", code="4242", via="webhook")
    emit(redis, EventType.ACTIVATION_FINISHED, "o-1", reason="auto")
    emit(redis, EventType.ORDER_COMPLETED, "o-1", reason="auto")


def test_wait_on_a_terminal_shows_the_steps_with_elapsed_time(capsys: pytest.CaptureFixture[str]) -> None:
    client = fakeredis.FakeRedis(decode_responses=True)
    seed_order(client)
    assert wait_for_order(client, "otpflow:events", "o-1", timeout=5, progress=True) == 0
    steps = [line.split("\r\x1b[K")[-1] for line in capsys.readouterr().out.split("\n") if line]
    assert [s.split("s  ", 1)[1] for s in steps] == [
        "number 79990001122 (cheap, 0.2): waiting for the code", "code 4242 (by webhook)", "order completed: auto"]
    assert all(s.strip().split(" ", 1)[0].replace(".", "").isdigit() for s in steps)


def test_wait_piped_prints_plain_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    client = fakeredis.FakeRedis(decode_responses=True)
    seed_order(client)
    assert wait_for_order(client, "otpflow:events", "o-1", timeout=5, progress=False) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out
    assert [json.loads(line)["type"] for line in out.splitlines()] == [
        "number.assigned", "code.received", "activation.finished", "order.completed"]


def test_wait_gives_up_after_its_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    client = fakeredis.FakeRedis(decode_responses=True)
    emit(client, EventType.NUMBER_ASSIGNED, "o-1", phone="1", provider="cheap")
    assert wait_for_order(client, "otpflow:events", "o-1", timeout=0.01, progress=False) == ExitCode.FAILED
    assert "still not ended" in capsys.readouterr().err
