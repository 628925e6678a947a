"""The gunicorn configuration and the redacting access logger."""
from __future__ import annotations

import datetime
import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest
from gunicorn.config import Config

from webhook.gunicorn_logging import ACCESS_LOG_FORMAT, RedactingLogger
from webhook.gunicorn_worker import BODY_PREFETCH_MAX, HEADER_BYTES_MAX, request_complete

from .conftest import TOKEN

CONF = Path(__file__).resolve().parents[3] / "webhook" / "gunicorn_conf.py"


def _environ(path: str) -> dict[str, str]:
    return {"REQUEST_METHOD": "POST", "RAW_URI": path, "PATH_INFO": path, "QUERY_STRING": "",
            "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "HTTP_USER_AGENT": "test"}


def test_access_and_error_logs_never_contain_the_token(tmp_path: Path) -> None:
    access, error = tmp_path / "access.log", tmp_path / "error.log"
    cfg = Config()
    cfg.set("accesslog", str(access))
    cfg.set("errorlog", str(error))
    cfg.set("access_log_format", '%(h)s "%(r)s" %(s)s %(U)s %({raw_uri}e)s %({path_info}e)s')
    logger = RedactingLogger(cfg)
    path = f"/webhooks/{TOKEN}"
    resp = SimpleNamespace(status="200 OK", sent=20, headers=[("Content-Type", "application/json")])
    req = SimpleNamespace(headers=[("HOST", "x")])
    logger.access(resp, req, _environ(path), datetime.timedelta(milliseconds=3))
    logger.error("Error handling request %s", path)
    try:
        raise ValueError(f"bad {path}")
    except ValueError:
        logger.exception("Error handling request %s", path)
    for handler in logger.error_log.handlers + logger.access_log.handlers:
        handler.flush()
    text = access.read_text() + error.read_text()
    assert "/webhooks/***" in access.read_text() and "/webhooks/***" in error.read_text()
    assert TOKEN not in text


def test_the_access_line_ends_with_the_answer_s_request_id_and_masks_the_token(tmp_path: Path) -> None:
    access = tmp_path / "access.log"
    cfg = Config()
    cfg.set("accesslog", str(access))
    cfg.set("access_log_format", ACCESS_LOG_FORMAT)
    logger = RedactingLogger(cfg)
    path = f"/webhooks/{TOKEN}"
    answered = SimpleNamespace(status="200 OK", sent=20, headers=[("X-Request-Id", "req-acc-1")])
    bare = SimpleNamespace(status="400 Bad Request", sent=0, headers=[])  # gunicorn's own answer: no id
    req = SimpleNamespace(headers=[("HOST", "x"), ("X-REQUEST-ID", "what the client sent")])
    logger.access(answered, req, _environ(path), datetime.timedelta(milliseconds=3))
    logger.access(bare, req, _environ(path), datetime.timedelta(milliseconds=3))
    for handler in logger.access_log.handlers:
        handler.flush()
    first, second = access.read_text().splitlines()
    assert first.endswith(" request_id=req-acc-1") and "/webhooks/***" in first
    assert second.endswith(" request_id=-")
    assert TOKEN not in access.read_text()


def test_gunicorn_conf(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PORT", "5123")
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    monkeypatch.setenv("TRUSTED_PROXIES", "1")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    conf = runpy.run_path(str(CONF))
    assert conf["bind"] == "0.0.0.0:5123"
    assert conf["workers"] == 3 and conf["worker_class"] == "webhook.gunicorn_worker.BufferingThreadWorker"
    assert conf["threads"] == 4 and conf["keepalive"] == 0  # every request through the event loop's buffer
    assert conf["graceful_timeout"] < 30 and conf["timeout"] == 30
    assert conf["forwarded_allow_ips"] == "*"
    assert conf["logger_class"] == "webhook.gunicorn_logging.RedactingLogger"
    assert conf["access_log_format"] == ACCESS_LOG_FORMAT
    (tmp_path / "counter_1.db").write_bytes(b"")
    conf["on_starting"](None)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv("TRUSTED_PROXIES", "0")
    monkeypatch.delenv("WEB_CONCURRENCY")
    conf = runpy.run_path(str(CONF))
    assert conf["forwarded_allow_ips"] == "127.0.0.1,::1" and conf["workers"] == 2


@pytest.mark.parametrize("data, complete", [
    (b"", False),
    (b"POST /webhooks/x HTTP/1.1\r\nHost: a\r\n", False),                       # headers still arriving
    (b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n", True),
    (b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nabc", False),                 # body still arriving
    (b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nabcde", True),
    (b"POST / HTTP/1.1\r\ncontent-length: 2\r\nContent-Length: 3\r\n\r\n", True),  # the parser refuses it
    (b"POST / HTTP/1.1\r\nContent-Length: 99\r\nExpect: 100-continue\r\n\r\n", True),  # waits for 100
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", False),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", True),
    (b"GET /" + b"a" * (HEADER_BYTES_MAX + 1), True),                                # too long: the parser says 400
    (b"POST / HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n" + b"x" * BODY_PREFETCH_MAX, True),
])
def test_a_request_is_handed_to_a_thread_only_once_it_has_arrived(data: bytes, complete: bool) -> None:
    assert request_complete(data) is complete
